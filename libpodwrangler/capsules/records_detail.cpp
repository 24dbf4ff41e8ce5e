#include <podwrangler/capsules/records_detail.hpp>

#include <podwrangler/errors.hpp>

#include <chrono>

namespace pw::capsules::detail {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void prepare_insert(CapsuleRecord& rec, CapsuleEvent& first) {
  if (!is_capsule_id(rec.id)) throw CapsuleValidationError("id", "must be \"cap-\" and 16 lowercase hex digits");
  rec.version = 1;
  if (rec.created_ms == 0) rec.created_ms = now_ms();
  if (rec.updated_ms == 0) rec.updated_ms = rec.created_ms;
  first.capsule_id = rec.id;
  first.seq = 1;
  if (first.at_ms == 0) first.at_ms = now_ms();
}

void prepare_update(CapsuleRecord& rec, std::optional<CapsuleEvent>& event) {
  rec.updated_ms = now_ms();
  if (!event) return;
  event->capsule_id = rec.id;
  if (event->at_ms == 0) event->at_ms = rec.updated_ms;
}

bool reserves_owner_session(const CapsuleRecord& rec) noexcept {
  return rec.state != CapsuleState::destroyed && !rec.spec.owner.empty() && !rec.spec.session.empty();
}

void throw_exists(const std::string& id) { throw CapsuleConflictError("capsule " + id + " already exists"); }

void throw_owner_session_taken(const std::string& owner, const std::string& session) {
  throw CapsuleConflictError("owner '" + owner + "' already has a capsule for session '" + session + "'");
}

void throw_changed_concurrently(const std::string& id) {
  throw CapsuleConflictError("capsule " + id + " was changed concurrently");
}

void throw_state_change_without_event(const std::string& id) {
  throw CapsuleValidationError("event", "the state of capsule " + id + " changes: an event must come with it");
}

void throw_not_destroyed(const std::string& id) {
  throw CapsuleConflictError("capsule " + id + " is not destroyed: only destroyed capsules are purged");
}

void throw_not_found(const std::string& id) { throw CapsuleNotFoundError(id); }

}  // namespace pw::capsules::detail

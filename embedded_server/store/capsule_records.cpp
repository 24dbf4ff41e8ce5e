// pw::capsules::CapsuleRecords on the server's Store (Store::capsule_records(), store.hpp):
// records ⇄ rows (the model's JSON for the spec and the record's other fields, columns for
// what is filtered, ordered and compared), the rules every implementation shares
// (podwrangler/capsules/records_detail.hpp), and the store's outcomes as the library's
// capsule errors. The SQL lives in capsule_rows.cpp, written once for both backends.
//
// Program side only (podwrangler_store): the PostgreSQL module deals in rows and never
// links the capsule model.
#include "embedded_server/store/store.hpp"

#include <podwrangler/capsules/records.hpp>
#include <podwrangler/capsules/records_detail.hpp>

#include <nlohmann/json.hpp>

namespace pw::server {
namespace {

namespace caps = pw::capsules;

// The record's fields that are columns (everything else goes into `record`).
constexpr const char* COLUMN_FIELDS[] = {"id", "state", "spec", "created_ms", "updated_ms", "version"};

// JSON text for a text column: invalid UTF-8 (a log line, say) becomes U+FFFD, not an error.
std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

CapsuleRow to_row(const caps::CapsuleRecord& rec) {
  CapsuleRow row;
  row.id = rec.id;
  row.state = std::string(caps::to_string(rec.state));
  row.owner = rec.spec.owner;
  row.session = rec.spec.session;
  row.labels = rec.spec.labels;
  row.spec = dump(nlohmann::json(rec.spec));
  nlohmann::json rest = rec;
  for (const char* field : COLUMN_FIELDS) rest.erase(field);
  row.record = dump(rest);
  row.created_ms = rec.created_ms;
  row.updated_ms = rec.updated_ms;
  row.version = rec.version;
  return row;
}

caps::CapsuleRecord from_row(const CapsuleRow& row) {
  try {
    nlohmann::json j = nlohmann::json::parse(row.record);
    if (!j.is_object()) throw StoreError("capsule " + row.id + ": its stored record is not a JSON object");
    j["id"] = row.id;
    j["state"] = row.state;
    j["spec"] = nlohmann::json::parse(row.spec);
    j["created_ms"] = row.created_ms;
    j["updated_ms"] = row.updated_ms;
    j["version"] = row.version;
    caps::CapsuleRecord rec = j.get<caps::CapsuleRecord>();
    // The columns are what filters compare: they win.
    rec.spec.owner = row.owner;
    rec.spec.session = row.session;
    rec.spec.labels = row.labels;
    return rec;
  } catch (const nlohmann::json::exception& e) {
    throw StoreError("capsule " + row.id + ": unreadable stored record: " + e.what());
  }
}

CapsuleEventRow to_event_row(const caps::CapsuleEvent& e) {
  return {e.capsule_id, e.seq, e.at_ms, e.from, e.to, e.reason};
}

caps::CapsuleEvent from_event_row(const CapsuleEventRow& e) {
  return {e.seq, e.capsule_id, e.at_ms, e.from, e.to, e.reason};
}

class StoreCapsuleRecords final : public caps::CapsuleRecords {
 public:
  explicit StoreCapsuleRecords(Store& store) : store_(store) {}

  void insert(const caps::CapsuleRecord& rec, const caps::CapsuleEvent& first) override {
    caps::CapsuleRecord r = rec;
    caps::CapsuleEvent e = first;
    caps::detail::prepare_insert(r, e);
    try {
      store_.insert_capsule(to_row(r), to_event_row(e));
    } catch (const StoreConflictError&) {
      // The id, or the owner+session's unique index.
      if (store_.get_capsule(r.id)) caps::detail::throw_exists(r.id);
      caps::detail::throw_owner_session_taken(r.spec.owner, r.spec.session);
    }
  }

  void update(caps::CapsuleRecord& rec, const std::optional<caps::CapsuleEvent>& event) override {
    caps::CapsuleRecord r = rec;
    std::optional<caps::CapsuleEvent> e = event;
    caps::detail::prepare_update(r, e);
    CapsuleRow row = to_row(r);
    std::optional<CapsuleEventRow> event_row;
    if (e) event_row = to_event_row(*e);
    CapsuleWrite what = CapsuleWrite::missing;
    try {
      what = store_.update_capsule(row, event_row);
    } catch (const StoreConflictError&) {
      caps::detail::throw_owner_session_taken(r.spec.owner, r.spec.session);
    }
    switch (what) {
      case CapsuleWrite::written: break;
      case CapsuleWrite::stale: caps::detail::throw_changed_concurrently(r.id);
      case CapsuleWrite::missing: caps::detail::throw_not_found(r.id);
      case CapsuleWrite::needs_event: caps::detail::throw_state_change_without_event(r.id);
    }
    r.version = row.version;
    r.created_ms = row.created_ms;
    rec = std::move(r);
  }

  std::optional<caps::CapsuleRecord> get(const std::string& id) override {
    std::optional<CapsuleRow> row = store_.get_capsule(id);
    if (!row) return std::nullopt;
    return from_row(*row);
  }

  std::vector<caps::CapsuleRecord> list(const caps::CapsuleFilter& filter) override {
    CapsuleRowFilter f;
    if (filter.state) f.state = std::string(caps::to_string(*filter.state));
    f.owner = filter.owner;
    f.session = filter.session;
    f.labels = filter.labels;
    f.include_destroyed = filter.include_destroyed;
    f.limit = filter.limit;
    std::vector<caps::CapsuleRecord> out;
    for (const auto& row : store_.list_capsules(f)) out.push_back(from_row(row));
    return out;
  }

  std::vector<caps::CapsuleEvent> events(const std::string& id, int limit) override {
    std::vector<caps::CapsuleEvent> out;
    for (const auto& e : store_.capsule_events(id, limit)) out.push_back(from_event_row(e));
    return out;
  }

  void purge(const std::string& id) override {
    if (store_.purge_capsule(id) == CapsulePurge::not_destroyed) caps::detail::throw_not_destroyed(id);
  }

 private:
  Store& store_;
};

}  // namespace

std::shared_ptr<capsules::CapsuleRecords> Store::capsule_records() {
  return std::make_shared<StoreCapsuleRecords>(*this);
}

}  // namespace pw::server

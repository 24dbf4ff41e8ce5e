#pragma once
// The rules every CapsuleRecords implementation applies the same way (the memory one here,
// the server's Store in embedded_server/store/capsule_records.cpp): defaults filled before a
// write, what a record's owner+session reserves, and the errors with their messages. Not a
// public interface: only the implementations include it.
#include <podwrangler/capsules/model.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace pw::capsules::detail {

// Unix epoch milliseconds, now.
std::int64_t now_ms();

// Before an insert: the id must be a capsule id (else CapsuleValidationError "id"); version
// becomes 1, created_ms now when 0, updated_ms created_ms when 0; the event gets the
// capsule's id, seq 1, and at_ms now when 0.
void prepare_insert(CapsuleRecord& rec, CapsuleEvent& first);
// Before an update: updated_ms becomes now; the event (if any) gets the capsule's id and
// at_ms now when 0.
void prepare_update(CapsuleRecord& rec, std::optional<CapsuleEvent>& event);

// Whether `rec` reserves its owner+session: not destroyed, and both non-empty. Two records
// that reserve the same pair cannot both be stored.
bool reserves_owner_session(const CapsuleRecord& rec) noexcept;

// The errors, one message each.
[[noreturn]] void throw_exists(const std::string& id);                                              // conflict
[[noreturn]] void throw_owner_session_taken(const std::string& owner, const std::string& session);  // conflict
[[noreturn]] void throw_changed_concurrently(const std::string& id);                                // conflict
[[noreturn]] void throw_state_change_without_event(const std::string& id);                          // validation
[[noreturn]] void throw_not_destroyed(const std::string& id);                                       // conflict (purge)
[[noreturn]] void throw_not_found(const std::string& id);

}  // namespace pw::capsules::detail

#pragma once
// Where capsule state lives: rows and lifecycle events, never only memory, so a restarted
// server (or a second replica) carries on. The server implements it on its Store (SQLite
// and PostgreSQL, embedded_server/store/capsule_records.cpp: Store::capsule_records());
// make_memory_capsule_records() serves library users and tests that need no database, with
// the same semantics (records_detail.hpp holds the rules both apply).
// Thread-safe. Errors: CapsuleNotFoundError; CapsuleConflictError when an update lost a
// race (the record's version changed since it was read).
#include <podwrangler/capsules/model.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pw::capsules {

class CapsuleRecords {
 public:
  virtual ~CapsuleRecords() = default;
  // Inserts the record (version 1) and its first event, in one transaction.
  // (created_ms 0 = now, updated_ms 0 = created_ms, the event's at_ms 0 = now.)
  // CapsuleValidationError for an id that is not a capsule id; CapsuleConflictError when the
  // id exists, or when a live (not destroyed) capsule already has the record's non-empty
  // owner+session (one live capsule per owner+session, across replicas).
  virtual void insert(const CapsuleRecord& rec, const CapsuleEvent& first) = 0;
  // Writes rec if the stored version is still rec.version, bumping it (rec.version is
  // updated); with an event, appends it in the same transaction. A record whose state
  // changes must come with an event.
  // (rec.updated_ms becomes now; created_ms stays as stored. CapsuleNotFoundError for an
  // unknown id; CapsuleValidationError for a state change without an event;
  // CapsuleConflictError when the owner+session is taken. Nothing is written on any error.)
  virtual void update(CapsuleRecord& rec, const std::optional<CapsuleEvent>& event) = 0;
  virtual std::optional<CapsuleRecord> get(const std::string& id) = 0;
  // Newest first.
  // (created_ms, then id, descending. A filter's state, when set, lists that state even if
  // it is destroyed; include_destroyed applies only without one.)
  virtual std::vector<CapsuleRecord> list(const CapsuleFilter& filter) = 0;
  // Oldest first; limit 0 = all.
  // (With a limit, the newest `limit` events, still oldest first. Unknown id: none.)
  virtual std::vector<CapsuleEvent> events(const std::string& id, int limit = 0) = 0;
  // Removes a destroyed record and its events for good (retention).
  // (CapsuleConflictError for a capsule that is not destroyed; an unknown id is a no-op.)
  virtual void purge(const std::string& id) = 0;
};

std::unique_ptr<CapsuleRecords> make_memory_capsule_records();

}  // namespace pw::capsules

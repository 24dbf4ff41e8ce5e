#pragma once
// Where capsule state lives: rows and lifecycle events, never only memory, so a restarted
// server (or a second replica) carries on. The server implements it on its Store (SQLite
// and PostgreSQL, embedded_server/store/capsule_records.cpp); MemoryCapsuleRecords serves
// library users and tests that need no database.
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
  virtual void insert(const CapsuleRecord& rec, const CapsuleEvent& first) = 0;
  // Writes rec if the stored version is still rec.version, bumping it (rec.version is
  // updated); with an event, appends it in the same transaction. A record whose state
  // changes must come with an event.
  virtual void update(CapsuleRecord& rec, const std::optional<CapsuleEvent>& event) = 0;
  virtual std::optional<CapsuleRecord> get(const std::string& id) = 0;
  // Newest first.
  virtual std::vector<CapsuleRecord> list(const CapsuleFilter& filter) = 0;
  // Oldest first; limit 0 = all.
  virtual std::vector<CapsuleEvent> events(const std::string& id, int limit = 0) = 0;
  // Removes a destroyed record and its events for good (retention).
  virtual void purge(const std::string& id) = 0;
};

std::unique_ptr<CapsuleRecords> make_memory_capsule_records();

}  // namespace pw::capsules

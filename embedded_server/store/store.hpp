#pragma once
// Store: the server's persistence (pods and command history) behind one interface with
// SQLite and PostgreSQL implementations. Every method is safe to call from any thread
// (each implementation keeps its own connection pool). Nothing here holds state that
// another server process on the same database would need: several replicas work.
#include "embedded_server/store/command_status.hpp"

#include <podwrangler/secret.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace pw::capsules {
class CapsuleRecords;
}

namespace pw::server {

// Thrown for a duplicate alias (→ HTTP 409).
class StoreConflictError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// The database cannot be reached or a statement failed (→ HTTP 503/500). The message
// is for logs only; API bodies never carry it (it may contain SQL).
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// The secret key cannot decrypt the key check stored in the database: the database was
// written with another key. Thrown by the stores while opening (nothing has been written);
// open_store() turns it into pw::PodConfigValidationError("PODWRANGLER_SECRET_KEY", …).
class StoreKeyMismatchError : public StoreError {
 public:
  using StoreError::StoreError;
};

using Labels = std::map<std::string, std::string>;

struct PodRecord {
  std::string alias;
  SecretString url;          // the full URL, token included; stored encrypted
  std::string url_redacted;  // redact_url(url): what APIs and logs show
  std::string provider;      // catalog name: plaintty, local, docker, kubernetes, …
  Labels labels;
  std::string created_at;  // RFC 3339 UTC with milliseconds, set by the store
  std::string updated_at;
  // Non-empty when the stored URL cannot be decrypted with this server's key (a row written
  // by a mis-keyed server before the key check existed, or a corrupt value): `url` is then
  // empty and this says why, without secrets. Listing never fails because of such a row.
  std::string url_error;
};

// Partial update: unset fields stay as they are.
struct PodPatch {
  std::optional<SecretString> url;
  std::optional<std::string> url_redacted;
  std::optional<std::string> provider;
  std::optional<Labels> labels;
};

struct CommandRecord {
  std::int64_t id = 0;
  std::string alias;
  std::string command;                            // as given (commands are the user's text, not secrets)
  CommandStatus status = CommandStatus::running;  // stored as its name (command_status.hpp)
  std::optional<int> exit_code;
  std::string output;  // exact bytes (any byte values, NUL and invalid UTF-8 included)
  std::optional<std::string> error;
  double duration = 0.0;  // seconds
  bool truncated = false;
  std::string pod_label;
  std::string started_at;  // RFC 3339 UTC, ms
  std::optional<std::string> finished_at;
  std::string server_id;  // which server process ran it ("host:pid:start")
};

struct CommandFilter {
  std::optional<std::string> alias;
  std::optional<CommandStatus> status;
  std::optional<std::string> since;       // RFC 3339 UTC: started_at >= since
  std::optional<std::int64_t> before_id;  // pagination cursor: id < before_id
  int limit = 50;                         // newest first
};

// A replica's lease row (see replicas.hpp). Times are RFC 3339 UTC with milliseconds.
struct ReplicaLeaseRow {
  std::string server_id;
  std::string started_at;
  std::string last_seen;   // the last heartbeat
  std::string expires_at;  // last_seen + the lease the replica announced
};
// A replica whose lease expired, closed by reap_expired_replicas.
struct ReapedReplica {
  std::string server_id;
  std::string last_seen;  // its last heartbeat: the finished_at of its closed rows
  int commands = 0;       // running rows marked interrupted
};

struct CommandStart {
  std::string alias;
  std::string command;
  std::string pod_label;
  std::string started_at;  // now_rfc3339() from the caller (so results and history agree);
                           // empty: the store uses now
};

// ---- capsules (capsule_rows.cpp) ----
// A capsule as stored: the columns the list filters, the order and the compare-and-set read,
// and the rest of pw::capsules::CapsuleRecord as JSON text (capsule_records.cpp converts).
// Text is stored clean (codec.hpp), as everywhere.
struct CapsuleRow {
  std::string id;
  std::string state;  // pw::capsules::to_string(CapsuleState)
  std::string owner;
  std::string session;
  Labels labels;
  std::string spec;    // the CapsuleSpec's JSON
  std::string record;  // the record's other fields, as JSON
  std::int64_t created_ms = 0;
  std::int64_t updated_ms = 0;
  std::int64_t version = 0;
};
struct CapsuleEventRow {
  std::string capsule_id;
  std::int64_t seq = 0;  // assigned by the store: 1, 2, … per capsule
  std::int64_t at_ms = 0;
  std::string from;
  std::string to;
  std::string reason;
};
struct CapsuleRowFilter {
  std::optional<std::string> state;  // when set, destroyed rows are not left out
  std::string owner;                 // "" = any
  std::string session;               // "" = any
  Labels labels;                     // every pair must be in the row's labels
  bool include_destroyed = false;
  int limit = 0;  // 0 = no limit
};
// What update_capsule did.
enum class CapsuleWrite {
  written,      // row.version is the new version
  stale,        // the stored version is not row.version: nothing written
  missing,      // no such capsule: nothing written
  needs_event,  // the state changes but no event came with it: nothing written
};
enum class CapsulePurge { purged, missing, not_destroyed };

class Store {
 public:
  virtual ~Store() = default;

  virtual std::string kind() const = 0;  // "sqlite" | "postgresql"
  // A cheap round trip to the database.
  virtual bool ping() noexcept = 0;

  // Pods, ordered by alias. `selector` keeps pods whose labels contain every pair.
  virtual std::vector<PodRecord> list_pods(const Labels& selector = {}) = 0;
  virtual std::optional<PodRecord> get_pod(const std::string& alias) = 0;
  // An opaque token that changes whenever any pod changes (a counter in the database,
  // so it holds across server replicas): lets callers reuse what they built from a
  // listing. Empty when unknown.
  virtual std::string pods_version() = 0;
  // Sets created_at/updated_at; throws StoreConflictError for a duplicate alias.
  virtual PodRecord create_pod(const PodRecord& pod) = 0;
  // nullopt when the alias does not exist.
  virtual std::optional<PodRecord> update_pod(const std::string& alias, const PodPatch& patch) = 0;
  virtual bool delete_pod(const std::string& alias) = 0;

  // Records commands as `running` (one transaction for all of them) before they start;
  // returns their ids in order.
  virtual std::vector<std::int64_t> begin_commands(const std::vector<CommandStart>& starts,
                                                   const std::string& server_id) = 0;
  // Completes a running row (status, exit code, output, error, duration, finished_at).
  virtual void finish_command(const CommandRecord& done) = 0;
  // Marks this server's still-running rows `interrupted` (graceful shutdown); returns how many.
  virtual int interrupt_running(const std::string& server_id) = 0;
  // Marks running rows of server ids that are no longer alive (same host, dead pid), with
  // finished_at = the server's last heartbeat when it held a lease (else now), and drops
  // their leases.
  virtual int interrupt_orphans(const std::vector<std::string>& dead_server_ids) = 0;
  // The distinct server ids that own `running` rows.
  virtual std::vector<std::string> running_server_ids() = 0;

  virtual std::vector<CommandRecord> list_commands(const CommandFilter& filter) = 0;
  virtual std::optional<CommandRecord> get_command(std::int64_t id) = 0;

  // ---- replica leases (replicas.hpp runs them) ----
  // Registers or renews `server_id`'s lease: last_seen = now, expires_at = now + lease_s.
  // "now" is the database's clock on PostgreSQL (replicas on several hosts need no
  // synchronised clocks) and the local clock on SQLite (one host). Returns false when no
  // lease row existed (the first call, or another replica had already reaped this one).
  virtual bool heartbeat(const std::string& server_id, const std::string& started_at, double lease_s) = 0;
  // Deletes `server_id`'s lease (a clean stop, after interrupt_running).
  virtual void release_lease(const std::string& server_id) = 0;
  // Every lease whose expires_at has passed (but `self_id`'s): in one transaction, marks its
  // running rows `interrupted` with finished_at = its last heartbeat (or the row's
  // started_at when the command started after it) and deletes the lease. Several replicas
  // may call this at once: each dead replica is closed by exactly one of them.
  virtual std::vector<ReapedReplica> reap_expired_replicas(const std::string& self_id) = 0;
  // The lease rows, by server id.
  virtual std::vector<ReplicaLeaseRow> replicas() = 0;

  // ---- capsules: rows and lifecycle events ----
  // The capsule state of pw::capsules::CapsuleRecords, made by capsule_records() below; these
  // are its row-level steps. Each write is one transaction: nothing is ever half written.
  // Inserts `row` with version 1 and `first` as its event 1. StoreConflictError when the id
  // exists or, for a row that is not destroyed, another live capsule has its non-empty
  // owner+session (a unique index: replicas cannot both win).
  virtual void insert_capsule(const CapsuleRow& row, const CapsuleEventRow& first) = 0;
  // Compare-and-set: writes every field but id and created_ms where the stored version is
  // row.version, then bumps it (row.version and row.created_ms are set to the stored ones);
  // with an event, appends it (next seq) in the same transaction. StoreConflictError when
  // the owner+session is taken.
  virtual CapsuleWrite update_capsule(CapsuleRow& row, const std::optional<CapsuleEventRow>& event) = 0;
  virtual std::optional<CapsuleRow> get_capsule(const std::string& id) = 0;
  // Newest first (created_ms, then id, descending).
  virtual std::vector<CapsuleRow> list_capsules(const CapsuleRowFilter& filter) = 0;
  // Oldest first; with limit > 0, the `limit` newest ones (still oldest first).
  virtual std::vector<CapsuleEventRow> capsule_events(const std::string& id, int limit) = 0;
  // Deletes a destroyed capsule and its events.
  virtual CapsulePurge purge_capsule(const std::string& id) = 0;

  // The capsule records (pw::capsules::CapsuleRecords) on this store's database, for the
  // capsule manager: thread-safe, and errors as that interface says (CapsuleConflictError,
  // CapsuleNotFoundError, CapsuleValidationError; StoreError when the database fails).
  // A new view each call, holding a reference to this Store: it must not outlive the Store.
  // Defined in capsule_records.cpp (the program's side: the PostgreSQL module never sees
  // the capsule model).
  std::shared_ptr<capsules::CapsuleRecords> capsule_records();
};

// Opens (and migrates) the store a database URL names, and checks the secret key: the first
// open stores an AES-256-GCM encrypted known value (the key check) in the database; every
// later open must decrypt it, else pw::PodConfigValidationError (field
// "PODWRANGLER_SECRET_KEY", one line, never the key) and nothing is written.
// SQLite files (database, -wal, -shm, -journal) are made 0600 and directories it creates
// 0700, also when they exist with looser modes (files we own).
//   sqlite+aiosqlite:///./pods.db, sqlite:///relative.db, sqlite:////abs/path.db,
//   sqlite:///:memory: ; postgresql+asyncpg://user:pass@host:port/db, postgresql://…,
//   postgres://…
// Throws pw::PodConfigValidationError (field "database_url") for an unusable URL and
// StoreError when the database cannot be opened; messages never contain the password.
std::unique_ptr<Store> open_store(const std::string& database_url);

// "sqlite" or "postgresql" for a database URL (the same forms); throws like open_store.
std::string database_kind(const std::string& database_url);

// $XDG_DATA_HOME/podwrangler (or ~/.local/share/podwrangler), created 0700 on demand
// (missing parents too, as the XDG spec says), chmod 0700 when it exists looser and we own it.
std::string data_dir();
// The same path, without creating or changing anything.
std::string data_dir_path();
// sqlite:///<data_dir>/pods.db — the default database.
std::string default_database_url();

// Now as RFC 3339 UTC with milliseconds: 2026-11-25T16:00:00.123Z.
std::string now_rfc3339();
// Now + `seconds` (may be fractional or negative) in the same form.
std::string now_plus_rfc3339(double seconds);
// Normalises a user-given time (RFC 3339 with or without fraction/zone, or a unix
// timestamp in seconds) to the stored form; nullopt when it is not a time.
std::optional<std::string> normalize_time(const std::string& text);

}  // namespace pw::server

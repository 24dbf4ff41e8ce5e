#pragma once
// The store core: everything the SQLite and PostgreSQL stores do alike, written once.
//
// It holds the SQL both backends run (one text, written with PostgreSQL's typed placeholders
// "$1::text"; render() gives SQLite's "?1"), the WHERE clauses of the command history, the
// argument preparation (text clean-up, sealing, time normalisation), the mapping of result
// rows to records, the migration runner with the key check, and StoreCore, the Store methods.
// A backend supplies what differs: its connection and pool, statement preparation and
// parameter binding (Session), reading its column types (Row), its transactions and error
// mapping, and the few steps whose SQL differs: inserting a batch of commands, the clock of
// replica leases, reaping expired leases.
//
// Part of podwrangler_store_common: the PostgreSQL module links its own copy. Nothing here
// holds process-wide mutable state.
#include "embedded_server/store/codec.hpp"
#include "embedded_server/store/migrations.hpp"
#include "embedded_server/store/secret_box.hpp"
#include "embedded_server/store/store.hpp"

#include <utility>
#include <array>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace pw::server::detail {

// ---- SQL ----

// How a backend writes statement parameters.
enum class Placeholders {
  postgres,  // $1::text, as the statements are written
  sqlite,    // ?1 (and max() for GREATEST())
};

// `sql` (written for PostgreSQL) for `style`: for SQLite every "$N" or "$N::type" becomes
// "?N" and "GREATEST(" becomes "max(" (SQLite's scalar max of its arguments).
std::string render(std::string_view sql, Placeholders style);

// The statements the core runs, by number: statement_table() holds them in this order, then
// the backend's own.
enum CoreStatement : int {
  PING,
  PODS_VERSION,
  LIST_PODS,
  GET_POD,
  INSERT_POD,
  UPDATE_POD,
  DELETE_POD,
  FINISH_COMMAND,
  INTERRUPT_SERVER,
  INTERRUPT_ORPHAN,
  RUNNING_SERVERS,
  DELETE_LEASE,
  LIST_LEASES,
  GET_COMMAND,
  MIGRATION_VERSION,
  MIGRATION_RECORD,
  KEY_CHECK_READ,
  KEY_CHECK_WRITE,
  POD_SECRETS,
  LIST_COMMANDS,  // + a filter mask (list_commands_sql): 16 statements
  // Capsules (capsule_rows.cpp: CAPSULE_SQL holds them in this order).
  INSERT_CAPSULE = LIST_COMMANDS + 16,
  INSERT_CAPSULE_EVENT,
  UPDATE_CAPSULE,
  GET_CAPSULE,
  CAPSULE_EVENTS,
  LAST_CAPSULE_EVENTS,
  PURGE_CAPSULE,
  LIST_CAPSULES,  // + a filter mask (list_capsules_sql): 32 statements
  // Written by each backend (the first two of statement_table's `own`): the clock differs.
  RENEW_LEASE = LIST_CAPSULES + 32,  // $1 server id, then StoreCore::lease_times(); no row
                                     // changed: no lease
  INSERT_LEASE,                      // the same, then started_at ('': the heartbeat's time)
  OWN_STATEMENTS,                    // the backend's other statements start here
};

// list_commands: the statement for one combination of filters (bit 0 alias, 1 status,
// 2 since, 3 before_id); parameters are numbered in that order, the limit last.
std::string list_commands_sql(unsigned mask);

// The capsule statements INSERT_CAPSULE … PURGE_CAPSULE, in that order (capsule_rows.cpp).
extern const std::array<const char*, LIST_CAPSULES - INSERT_CAPSULE> CAPSULE_SQL;

// list_capsules: the statement for one combination of filters (bit 0 state, 1 owner,
// 2 session, 3 not destroyed, 4 a (created_ms, id) cursor: rows strictly older); parameters
// are numbered in that order (the cursor takes two), the limit last. Newest first.
std::string list_capsules_sql(unsigned mask);

// Every statement a backend runs, rendered for `style`: the core's (CoreStatement order),
// then `own`, numbered from RENEW_LEASE.
std::vector<std::string> statement_table(Placeholders style, std::initializer_list<const char*> own);

// ---- parameters and rows ----

// A statement parameter. Text and blobs are referenced, not copied: the string must outlive
// the Session::run it is passed to, so temporaries are refused.
struct Value {
  enum class Type { null, text, blob, integer, real, boolean };
  Type type = Type::null;
  const std::string* str = nullptr;  // text, blob
  std::int64_t integer_value = 0;    // integer, boolean (0/1)
  double real_value = 0;             // real

  static Value null() { return {}; }
  static Value text(const std::string& s) { return {Type::text, &s}; }
  static Value blob(const std::string& s) { return {Type::blob, &s}; }
  static Value text(std::string&&) = delete;
  static Value blob(std::string&&) = delete;
  static Value integer(std::int64_t v) { return {Type::integer, nullptr, v}; }
  static Value real(double v) { return {Type::real, nullptr, 0, v}; }
  static Value boolean(bool v) { return {Type::boolean, nullptr, v ? 1 : 0}; }
  // SQL NULL when unset.
  static Value text(const std::optional<std::string>& s) { return s ? text(*s) : null(); }
  static Value blob(const std::optional<std::string>& s) { return s ? blob(*s) : null(); }
  static Value text(std::optional<std::string>&&) = delete;
  static Value blob(std::optional<std::string>&&) = delete;
};
using Params = std::vector<Value>;

// A BLOB/bytea column as the backend returns it: the bytes themselves (SQLite), or with `hex`
// PostgreSQL's bytea text form "\x…".
struct StoredBytes {
  std::string_view data;
  bool hex = false;
  // The bytes; throws StoreError for a bytea text that is not "\x" + hex.
  std::string bytes() const;
};

// One result row, read by column number (the SELECT's column order).
class Row {
 public:
  virtual bool is_null(int col) const = 0;
  virtual std::string_view text(int col) const = 0;  // valid while the row is
  virtual std::int64_t integer(int col) const = 0;
  virtual double real(int col) const = 0;
  virtual bool boolean(int col) const = 0;
  virtual StoredBytes blob(int col) const = 0;  // valid while the row is
  std::string str(int col) const { return std::string(text(col)); }

 protected:
  ~Row() = default;
};
using RowFn = std::function<void(const Row&)>;

// What a store keeps per pooled connection besides the connection.
struct ConnectionCaches {
  UrlCache urls;      // decrypted pod URLs
  PodListCache pods;  // list_pods' last result (all pods) and the pods_version it was read under
};

// One leased connection as the core uses it.
class Session {
 public:
  // Runs statement `id` of the backend's table (prepared once per connection) with `params`
  // bound in order, calls `on_row` for each result row, and returns how many rows an INSERT,
  // UPDATE or DELETE changed (meaningless for a query). Throws StoreConflictError for a
  // duplicate key, else StoreError.
  std::int64_t run(int id, const Params& params = {}, const RowFn& on_row = {}) { return execute(id, params, on_row); }
  // Runs SQL text that may hold several statements and takes no parameters (migrations).
  virtual void script(const char* sql) = 0;
  // A write transaction (SQLite: BEGIN IMMEDIATE, the write lock up front).
  virtual void begin() = 0;
  virtual void commit() = 0;
  virtual void rollback() noexcept = 0;  // when a transaction is open
  // In the migration transaction: keeps other processes out until it ends. SQLite's
  // BEGIN IMMEDIATE already does; PostgreSQL takes an advisory lock.
  virtual void lock_migrations() {}
  virtual ConnectionCaches& caches() = 0;

 protected:
  ~Session() = default;
  virtual std::int64_t execute(int id, const Params& params, const RowFn& on_row) = 0;
};

// begin() … commit(); rolled back unless committed.
class Transaction {
 public:
  explicit Transaction(Session& s) : s_(s) { s_.begin(); }
  ~Transaction() {
    if (!done_) s_.rollback();
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit() {
    s_.commit();
    done_ = true;
  }

 private:
  Session& s_;
  bool done_ = false;
};

// ---- records ----

// A command row (COMMAND_COLUMNS order: GET_COMMAND, LIST_COMMANDS).
CommandRecord read_command(const Row& row);
// A lease row (LIST_LEASES).
ReplicaLeaseRow read_lease(const Row& row);

// The Store methods whose logic is the same on both backends, over a Session.
class StoreCore : public Store {
 public:
  std::string kind() const override { return kind_; }
  bool ping() noexcept override;
  std::vector<PodRecord> list_pods(const Labels& selector) override;
  std::optional<PodRecord> get_pod(const std::string& alias) override;
  std::string pods_version() override;
  PodRecord create_pod(const PodRecord& pod) override;
  std::optional<PodRecord> update_pod(const std::string& alias, const PodPatch& patch) override;
  bool delete_pod(const std::string& alias) override;
  std::vector<std::int64_t> begin_commands(const std::vector<CommandStart>& starts,
                                           const std::string& server_id) override;
  void finish_command(const CommandRecord& done) override;
  int interrupt_running(const std::string& server_id) override;
  int interrupt_orphans(const std::vector<std::string>& dead_server_ids) override;
  std::vector<std::string> running_server_ids() override;
  std::vector<CommandRecord> list_commands(const CommandFilter& filter) override;
  std::optional<CommandRecord> get_command(std::int64_t id) override;
  bool heartbeat(const std::string& server_id, const std::string& started_at, double lease_s) override;
  void release_lease(const std::string& server_id) override;
  std::vector<ReapedReplica> reap_expired_replicas(const std::string& self_id) override;
  std::vector<ReplicaLeaseRow> replicas() override;
  // capsule_rows.cpp
  void insert_capsule(const CapsuleRow& row, const CapsuleEventRow& first) override;
  CapsuleWrite update_capsule(CapsuleRow& row, const std::optional<CapsuleEventRow>& event) override;
  std::optional<CapsuleRow> get_capsule(const std::string& id) override;
  std::vector<CapsuleRow> list_capsules(const CapsuleRowFilter& filter) override;
  std::vector<CapsuleEventRow> capsule_events(const std::string& id, int limit) override;
  CapsulePurge purge_capsule(const std::string& id) override;

 protected:
  StoreCore(const char* kind, const SecretBox& box) : kind_(kind), box_(box) {}

  // ---- the steps whose SQL differs ----
  // Inserts `running` rows for `starts` (their text already clean), started at `now`, in one
  // transaction or statement; returns their ids in order.
  virtual std::vector<std::int64_t> insert_commands(Session& s, const std::vector<CommandStart>& starts,
                                                    const std::string& server_id, const std::string& now) = 0;
  // The parameters RENEW_LEASE and INSERT_LEASE take after the server id: where the lease's
  // times come from.
  virtual std::vector<std::string> lease_times(double lease_s) const = 0;
  // Takes the expired leases but `self_id`'s (in one transaction or statement), closes their
  // running rows at their last heartbeat with `why`, and reports them.
  virtual std::vector<ReapedReplica> reap(Session& s, const std::string& self_id, const std::string& why) = 0;

  // Runs `body` on a pooled connection. A backend may run it a second time, on a fresh
  // connection, when the first turned out broken: `body` starts from scratch each time.
  virtual void with_session(const std::function<void(Session&)>& body) = 0;

  // with_session for a body that returns a value (only a completed run's value counts).
  template <class F>
  auto with(F&& f) -> decltype(f(std::declval<Session&>())) {
    using R = decltype(f(std::declval<Session&>()));
    if constexpr (std::is_void_v<R>) {
      with_session([&](Session& s) { f(s); });
    } else {
      std::optional<R> out;
      with_session([&](Session& s) { out.emplace(f(s)); });
      return std::move(*out);
    }
  }

  // Applies the migrations `MIGRATIONS` lacks in the database (Migration::*script: the
  // backend's SQL) and checks the secret key, in one transaction on a pooled connection.
  // Throws StoreKeyMismatchError when the database was written with another key. The
  // backend's constructor calls it (its with_session is ready by then).
  void migrate(const char* Migration::*script);

  // A pod row (POD_COLUMNS order), its URL decrypted through the connection's cache.
  PodRecord read_pod(Session& s, const Row& row) const;

  const std::string kind_;
  const SecretBox box_;

 private:
  void migrate_on(Session& s, const char* Migration::*script);
  void check_key(Session& s);
};

}  // namespace pw::server::detail

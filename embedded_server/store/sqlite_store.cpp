// The SQLite Store over the sqlite3 C API.
//
// The statements, record mapping and the Store methods that are the same on PostgreSQL live
// in store_core.hpp; this file binds and reads SQLite's types and holds what only SQLite does.
//
// Connections: a small pool (up to 8, opened lazily; one for ":memory:", whose database
// lives in its connection), each opened in multi-thread mode (SQLITE_OPEN_NOMUTEX) and used
// by one thread at a time, with its prepared statements, decrypted-URL cache and last
// list_pods result (reused while the pods_version counter is unchanged: a one-row read
// instead of reading, parsing and decrypting every pod). Pragmas:
// WAL, synchronous=NORMAL, foreign_keys=ON, busy_timeout 5000 ms. Multi-statement writes
// run in BEGIN IMMEDIATE transactions (the write lock up front: no deadlock upgrading a
// read lock); single statements are atomic on their own.
//
// Files: the database file is created 0600 before SQLite opens it (SQLite gives its -wal,
// -shm and -journal files the database file's mode), and existing files we own lose any
// group/other bits at open (private_files.hpp).
#include "embedded_server/store/sqlite_store.hpp"

#include "embedded_server/store/codec.hpp"
#include "embedded_server/store/connection_pool.hpp"
#include "embedded_server/store/private_files.hpp"
#include "embedded_server/store/store_core.hpp"

#include <sqlite3.h>

#include <utility>
#include <filesystem>

namespace pw::server::detail {

namespace {

constexpr int MAX_CONNECTIONS = 8;
constexpr int BUSY_TIMEOUT_MS = 5000;

// SQLite's own statements, after the core's (statement_table).
enum SqliteStatement : int {
  SQ_INSERT_COMMAND = OWN_STATEMENTS,
  SQ_EXPIRED_LEASES,
  SQ_REAP_COMMANDS,
  SQ_BEGIN,
  SQ_COMMIT,
  SQ_ROLLBACK,
};

const std::vector<std::string>& statements() {
  static const std::vector<std::string> table =
      statement_table(Placeholders::sqlite,
                      {
                          // RENEW_LEASE, INSERT_LEASE: ?2 now and ?3 now + the lease, on this host's clock.
                          "UPDATE replicas SET last_seen = ?2, expires_at = ?3 WHERE server_id = ?1",
                          "INSERT INTO replicas (server_id, started_at, last_seen, expires_at) VALUES (?1, "
                          "COALESCE(NULLIF(?4, ''), ?2), ?2, ?3) ON CONFLICT (server_id) DO UPDATE SET last_seen "
                          "= excluded.last_seen, expires_at = excluded.expires_at",
                          "INSERT INTO commands (alias, command, status, output, duration, truncated, pod_label, "
                          "started_at, server_id) VALUES (?1, ?2, 'running', '', 0, 0, ?3, ?4, ?5) RETURNING id",
                          "SELECT server_id, last_seen FROM replicas WHERE expires_at < ?1 AND server_id <> ?2 "
                          "ORDER BY server_id",
                          "UPDATE commands SET status = 'interrupted', finished_at = max(?2, started_at), error = "
                          "COALESCE(error, ?3) WHERE status = 'running' AND server_id = ?1",
                          "BEGIN IMMEDIATE",
                          "COMMIT",
                          "ROLLBACK",
                      });
  return table;
}

[[noreturn]] void fail(sqlite3* db, const std::string& what) {
  throw StoreError("sqlite: " + what + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
}

struct Connection {
  sqlite3* db = nullptr;
  std::vector<sqlite3_stmt*> stmts = std::vector<sqlite3_stmt*>(statements().size(), nullptr);
  ConnectionCaches caches;

  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    for (auto* s : stmts) sqlite3_finalize(s);
    sqlite3_close_v2(db);
  }

  // Statement `id`, prepared on first use and kept for the connection's life.
  sqlite3_stmt* get(int id) {
    const auto i = static_cast<std::size_t>(id);
    if (!stmts[i] &&
        sqlite3_prepare_v3(db, statements()[i].c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmts[i], nullptr) != SQLITE_OK)
      fail(db, "prepare");
    return stmts[i];
  }

  void exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : sqlite3_errmsg(db);
      sqlite3_free(err);
      throw StoreError("sqlite: " + msg);
    }
  }
};

// The current row of a stepping statement. Text and blobs are read as the stored bytes
// (sqlite3_column_blob: no conversion, NUL bytes kept).
class SqliteRow final : public Row {
 public:
  explicit SqliteRow(sqlite3_stmt* s) : s_(s) {}
  bool is_null(int col) const override { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  std::string_view text(int col) const override {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(s_, col));
    const int n = sqlite3_column_bytes(s_, col);
    return p ? std::string_view(p, static_cast<std::size_t>(n)) : std::string_view();
  }
  std::int64_t integer(int col) const override { return sqlite3_column_int64(s_, col); }
  double real(int col) const override { return sqlite3_column_double(s_, col); }
  bool boolean(int col) const override { return sqlite3_column_int64(s_, col) != 0; }
  StoredBytes blob(int col) const override { return {text(col)}; }

 private:
  sqlite3_stmt* s_;
};

class SqliteSession final : public Session {
 public:
  explicit SqliteSession(Connection& c) : c_(c) {}

  void script(const char* sql) override { c_.exec(sql); }
  void begin() override { run(SQ_BEGIN); }
  void commit() override { run(SQ_COMMIT); }
  void rollback() noexcept override {
    if (sqlite3_get_autocommit(c_.db)) return;
    sqlite3_stmt* s = nullptr;
    try {
      s = c_.get(SQ_ROLLBACK);
    } catch (...) {
    }
    if (s) {
      sqlite3_step(s);
      sqlite3_reset(s);
    }
  }
  ConnectionCaches& caches() override { return c_.caches; }

 protected:
  std::int64_t execute(int id, const Params& params, const RowFn& on_row) override {
    sqlite3_stmt* s = c_.get(id);
    // Reset and unbound however this ends. Text and blobs are bound SQLITE_STATIC: Value
    // refers to strings that outlive the call.
    struct Reset {
      sqlite3_stmt* stmt;
      ~Reset() {
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
      }
    } reset{s};
    for (std::size_t i = 0; i < params.size(); ++i) bind(s, static_cast<int>(i) + 1, params[i]);
    while (step(s))
      if (on_row) on_row(SqliteRow(s));
    return sqlite3_stmt_readonly(s) ? 0 : sqlite3_changes(c_.db);
  }

 private:
  void bind(sqlite3_stmt* s, int i, const Value& v) {
    int rc = SQLITE_OK;
    switch (v.type) {
      case Value::Type::null: rc = sqlite3_bind_null(s, i); break;
      case Value::Type::text:
        rc = sqlite3_bind_text(s, i, v.str->data(), static_cast<int>(v.str->size()), SQLITE_STATIC);
        break;
      case Value::Type::blob:
        rc = sqlite3_bind_blob(s, i, v.str->data(), static_cast<int>(v.str->size()), SQLITE_STATIC);
        break;
      case Value::Type::integer:
      case Value::Type::boolean: rc = sqlite3_bind_int64(s, i, v.integer_value); break;
      case Value::Type::real: rc = sqlite3_bind_double(s, i, v.real_value); break;
    }
    if (rc != SQLITE_OK) fail(c_.db, "bind");
  }

  // true: a row is ready; false: done.
  bool step(sqlite3_stmt* s) {
    const int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
      throw StoreConflictError(sqlite3_errmsg(c_.db));
    fail(c_.db, "step");
  }

  Connection& c_;
};

class SqliteStore final : public StoreCore {
 public:
  SqliteStore(std::string path, SecretBox box)
      : StoreCore("sqlite", box), path_(std::move(path)), pool_(path_ == ":memory:" ? 1 : MAX_CONNECTIONS) {
    if (path_ != ":memory:") secure_files();
    migrate(&Migration::sqlite_sql);
  }

 protected:
  // One INSERT per command, in one transaction.
  std::vector<std::int64_t> insert_commands(Session& s, const std::vector<CommandStart>& starts,
                                            const std::string& server_id, const std::string& now) override {
    std::vector<std::int64_t> ids;
    ids.reserve(starts.size());
    Transaction tx(s);
    for (const auto& start : starts)
      s.run(SQ_INSERT_COMMAND,
            {Value::text(start.alias), Value::text(start.command), Value::text(start.pod_label), Value::text(now),
             Value::text(server_id)},
            [&](const Row& r) { ids.push_back(r.integer(0)); });
    tx.commit();
    return ids;
  }

  // This host's clock: a SQLite database has replicas on one host only.
  std::vector<std::string> lease_times(double lease_s) const override {
    return {now_rfc3339(), now_plus_rfc3339(lease_s)};
  }

  // In one BEGIN IMMEDIATE transaction: the expired leases, then each one's rows and lease.
  std::vector<ReapedReplica> reap(Session& s, const std::string& self_id, const std::string& why) override {
    const std::string now = now_rfc3339();
    std::vector<ReapedReplica> out;
    Transaction tx(s);
    s.run(SQ_EXPIRED_LEASES, {Value::text(now), Value::text(self_id)}, [&](const Row& r) {
      out.push_back({r.str(0), r.str(1), 0});
    });
    for (auto& dead : out) {
      const Params rows{Value::text(dead.server_id), Value::text(dead.last_seen), Value::text(why)};
      dead.commands = static_cast<int>(s.run(SQ_REAP_COMMANDS, rows));
      s.run(DELETE_LEASE, {Value::text(dead.server_id)});
    }
    tx.commit();
    return out;
  }

 private:
  // A pooled connection, returned on scope exit.
  class Lease {
   public:
    explicit Lease(SqliteStore& s) : s_(s), c_(s.acquire()) {}
    ~Lease() { s_.release(std::move(c_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Connection& operator*() { return *c_; }

   private:
    SqliteStore& s_;
    std::unique_ptr<Connection> c_;
  };

  void with_session(const std::function<void(Session&)>& body) override {
    Lease l(*this);
    SqliteSession s(*l);
    body(s);
  }

  std::unique_ptr<Connection> acquire() {
    return pool_.acquire([](Connection&) { return true; }, [this] { return open_connection(); });
  }

  void release(std::unique_ptr<Connection> c) {
    // Never hand out a connection mid-transaction.
    pool_.release(std::move(c), [](Connection& k) { return sqlite3_get_autocommit(k.db) != 0; });
  }

  std::unique_ptr<Connection> open_connection() {
    auto c = std::make_unique<Connection>();
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path_.c_str(), &c->db, flags, nullptr) != SQLITE_OK) fail(c->db, "cannot open " + path_);
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    if (path_ != ":memory:") c->exec("PRAGMA journal_mode = WAL");
    c->exec("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON");
    return c;
  }

  // The database file exists 0600 before SQLite opens it (its -wal/-shm/-journal files
  // then get the same mode), and older files lose group/other access.
  void secure_files() {
    ensure_private_file(path_);
    std::error_code ec;
    // SQLite puts the side files next to the file a symlink points to.
    std::string real = std::filesystem::canonical(path_, ec).string();
    if (ec) real = path_;
    if (real != path_) tighten_file(real);
    for (const char* suffix : {"-wal", "-shm", "-journal"}) tighten_file(real + suffix);
  }

  const std::string path_;
  ConnectionPool<Connection> pool_;
};

}  // namespace

std::unique_ptr<Store> open_sqlite_store(const std::string& path) {
  return std::make_unique<SqliteStore>(path, SecretBox::from_environment());
}

}  // namespace pw::server::detail

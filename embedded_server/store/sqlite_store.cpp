// The SQLite Store over the sqlite3 C API.
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
#include "embedded_server/store/migrations.hpp"
#include "embedded_server/store/private_files.hpp"
#include "embedded_server/store/secret_box.hpp"

#include <podwrangler/redact.hpp>

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <utility>

namespace pw::server::detail {

namespace {

constexpr int MAX_CONNECTIONS = 8;
constexpr int BUSY_TIMEOUT_MS = 5000;

#define POD_COLUMNS "alias, url_redacted, url_secret, provider, labels, created_at, updated_at"
#define COMMAND_COLUMNS                                                                        \
  "id, alias, command, status, exit_code, output, error, duration, truncated, pod_label, " \
  "started_at, finished_at, server_id, output_raw"

enum StmtId {
  S_LIST_PODS,
  S_GET_POD,
  S_INSERT_POD,
  S_UPDATE_POD,
  S_DELETE_POD,
  S_INSERT_COMMAND,
  S_FINISH_COMMAND,
  S_INTERRUPT_SERVER,
  S_INTERRUPT_ORPHAN,
  S_RUNNING_SERVERS,
  S_RENEW_LEASE,
  S_INSERT_LEASE,
  S_DELETE_LEASE,
  S_EXPIRED_LEASES,
  S_REAP_COMMANDS,
  S_LIST_LEASES,
  S_GET_COMMAND,
  S_PING,
  S_PODS_VERSION,
  S_BEGIN,
  S_COMMIT,
  S_ROLLBACK,
  S_COUNT
};

constexpr std::array<const char*, S_COUNT> SQL{
    "SELECT " POD_COLUMNS " FROM pods ORDER BY alias",
    "SELECT " POD_COLUMNS " FROM pods WHERE alias = ?1",
    "INSERT INTO pods (" POD_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    "UPDATE pods SET url_redacted = COALESCE(?2, url_redacted), url_secret = COALESCE(?3, "
    "url_secret), provider = COALESCE(?4, provider), labels = COALESCE(?5, labels), updated_at = ?6 "
    "WHERE alias = ?1 RETURNING " POD_COLUMNS,
    "DELETE FROM pods WHERE alias = ?1",
    "INSERT INTO commands (alias, command, status, output, duration, truncated, pod_label, "
    "started_at, server_id) VALUES (?1, ?2, 'running', '', 0, 0, ?3, ?4, ?5)",
    "UPDATE commands SET status = ?2, exit_code = ?3, output = ?4, error = ?5, duration = ?6, "
    "truncated = ?7, finished_at = ?8, output_raw = ?9 WHERE id = ?1",
    "UPDATE commands SET status = 'interrupted', finished_at = ?2, error = COALESCE(error, ?3) "
    "WHERE status = 'running' AND server_id = ?1",
    // A dead server's rows end at its last heartbeat when it held a lease, else now.
    "UPDATE commands SET status = 'interrupted', finished_at = COALESCE((SELECT max(r.last_seen, "
    "commands.started_at) FROM replicas r WHERE r.server_id = ?1), ?2), error = COALESCE(error, ?3) "
    "WHERE status = 'running' AND server_id = ?1",
    "SELECT DISTINCT server_id FROM commands WHERE status = 'running' ORDER BY server_id",
    "UPDATE replicas SET last_seen = ?2, expires_at = ?3 WHERE server_id = ?1",
    "INSERT INTO replicas (server_id, started_at, last_seen, expires_at) VALUES (?1, ?4, ?2, ?3) "
    "ON CONFLICT (server_id) DO UPDATE SET last_seen = excluded.last_seen, expires_at = "
    "excluded.expires_at",
    "DELETE FROM replicas WHERE server_id = ?1",
    "SELECT server_id, last_seen FROM replicas WHERE expires_at < ?1 AND server_id <> ?2 ORDER BY "
    "server_id",
    "UPDATE commands SET status = 'interrupted', finished_at = max(?2, started_at), error = "
    "COALESCE(error, ?3) WHERE status = 'running' AND server_id = ?1",
    "SELECT server_id, started_at, last_seen, expires_at FROM replicas ORDER BY server_id",
    "SELECT " COMMAND_COLUMNS " FROM commands WHERE id = ?1",
    "SELECT 1",
    "SELECT version FROM pods_version WHERE id = 1",
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
};

// list_commands: one statement per combination of filters (bit 0 alias, 1 status, 2 since,
// 3 before_id).
std::string list_commands_sql(unsigned mask) {
  std::string sql = "SELECT " COMMAND_COLUMNS " FROM commands";
  const char* sep = " WHERE ";
  auto add = [&](const char* cond) {
    sql += sep;
    sql += cond;
    sep = " AND ";
  };
  if (mask & 1u) add("alias = ?1");
  if (mask & 2u) add("status = ?2");
  if (mask & 4u) add("started_at >= ?3");
  if (mask & 8u) add("id < ?4");
  sql += " ORDER BY id DESC LIMIT ?5";
  return sql;
}

[[noreturn]] void fail(sqlite3* db, const std::string& what) {
  throw StoreError("sqlite: " + what + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
}

struct Connection {
  sqlite3* db = nullptr;
  std::array<sqlite3_stmt*, S_COUNT> stmts{};
  std::array<sqlite3_stmt*, 16> list_stmts{};
  UrlCache urls;
  // list_pods' last result (all pods) and the pods_version it was read under.
  PodListCache pods;

  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    for (auto* s : stmts) sqlite3_finalize(s);
    for (auto* s : list_stmts) sqlite3_finalize(s);
    sqlite3_close_v2(db);
  }

  sqlite3_stmt* prepare(const char* sql, sqlite3_stmt*& slot) {
    if (!slot && sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &slot, nullptr) != SQLITE_OK)
      fail(db, "prepare");
    return slot;
  }
  sqlite3_stmt* get(StmtId id) { return prepare(SQL[static_cast<std::size_t>(id)], stmts[static_cast<std::size_t>(id)]); }
  sqlite3_stmt* get_list(unsigned mask) {
    if (!list_stmts[mask]) {
      std::string sql = list_commands_sql(mask);
      prepare(sql.c_str(), list_stmts[mask]);
    }
    return list_stmts[mask];
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

// A statement in use: reset and unbound when the scope ends. Bound text/blobs are
// SQLITE_STATIC: they must outlive this object (declare them before it).
class Use {
 public:
  Use(Connection& c, sqlite3_stmt* s) : c_(c), s_(s) {}
  ~Use() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;

  void text(int i, const std::string& v) { check(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC)); }
  void blob(int i, const std::string& v) { check(sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC)); }
  // SQLITE_STATIC: a temporary would be gone before the statement runs.
  void text(int, std::string&&) = delete;
  void blob(int, std::string&&) = delete;
  void integer(int i, std::int64_t v) { check(sqlite3_bind_int64(s_, i, v)); }
  void real(int i, double v) { check(sqlite3_bind_double(s_, i, v)); }
  void null(int i) { check(sqlite3_bind_null(s_, i)); }

  // true: a row is ready; false: done.
  bool step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) throw_constraint();
    fail(c_.db, "step");
  }
  void run() {
    while (step()) {
    }
  }

  std::string str(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_blob(s_, col));
    int n = sqlite3_column_bytes(s_, col);
    return p ? std::string(p, static_cast<std::size_t>(n)) : std::string();
  }
  std::string_view view(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_blob(s_, col));
    int n = sqlite3_column_bytes(s_, col);
    return p ? std::string_view(p, static_cast<std::size_t>(n)) : std::string_view();
  }
  bool is_null(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  std::int64_t i64(int col) const { return sqlite3_column_int64(s_, col); }
  double dbl(int col) const { return sqlite3_column_double(s_, col); }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail(c_.db, "bind");
  }
  [[noreturn]] void throw_constraint() { throw StoreConflictError(sqlite3_errmsg(c_.db)); }
  Connection& c_;
  sqlite3_stmt* s_;
};

// BEGIN IMMEDIATE … COMMIT; rolled back unless committed.
class Tx {
 public:
  explicit Tx(Connection& c) : c_(c) { Use(c_, c_.get(S_BEGIN)).run(); }
  void commit() {
    Use(c_, c_.get(S_COMMIT)).run();
    done_ = true;
  }
  ~Tx() {
    if (!done_ && !sqlite3_get_autocommit(c_.db)) {
      sqlite3_stmt* s = nullptr;
      try {
        s = c_.get(S_ROLLBACK);
      } catch (...) {
      }
      if (s) {
        sqlite3_step(s);
        sqlite3_reset(s);
      }
    }
  }
  Tx(const Tx&) = delete;
  Tx& operator=(const Tx&) = delete;

 private:
  Connection& c_;
  bool done_ = false;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(std::string path, SecretBox box)
      : path_(std::move(path)), box_(std::move(box)), pool_(path_ == ":memory:" ? 1 : MAX_CONNECTIONS) {
    if (path_ != ":memory:") secure_files();
    auto c = open_connection();
    migrate(*c);
    pool_.adopt(std::move(c));
  }

  std::string kind() const override { return "sqlite"; }

  bool ping() noexcept override {
    try {
      Lease l(*this);
      Use u(*l, l->get(S_PING));
      return u.step();
    } catch (...) {
      return false;
    }
  }

  std::vector<PodRecord> list_pods(const Labels& selector_in) override {
    Labels buf;
    const Labels& selector = clean(selector_in, buf);
    Lease l(*this);
    Connection& c = *l;
    // Version first, then rows: a change committed in between only costs a re-read later.
    std::string version;  // empty: unknown (never trusted by the cache)
    {
      Use v(c, c.get(S_PODS_VERSION));
      if (v.step()) version = std::to_string(v.i64(0));
    }
    const auto& all = c.pods.get(version, [&] {
      std::vector<PodRecord> pods;
      Use u(c, c.get(S_LIST_PODS));
      while (u.step()) pods.push_back(read_pod(c, u, labels_from_json(u.view(4))));
      return pods;
    });
    return select_pods(all, selector);
  }

  std::string pods_version() override {
    Lease l(*this);
    Connection& c = *l;
    Use v(c, c.get(S_PODS_VERSION));
    return v.step() ? std::to_string(v.i64(0)) : std::string{};
  }

  std::optional<PodRecord> get_pod(const std::string& alias) override {
    Lease l(*this);
    std::string b;
    const std::string& a = clean(alias, b);
    Use u(*l, l->get(S_GET_POD));
    u.text(1, a);
    if (!u.step()) return std::nullopt;
    return read_pod(*l, u, labels_from_json(u.view(4)));
  }

  PodRecord create_pod(const PodRecord& pod) override {
    PodRecord r;
    std::string b1, b2, b3;
    r.alias = clean(pod.alias, b1);
    r.url = pod.url;
    r.url_redacted = clean(pod.url_redacted.empty() ? redact_url(pod.url.reveal()) : pod.url_redacted, b2);
    r.provider = clean(pod.provider, b3);
    const std::string labels = labels_to_json(pod.labels);
    r.labels = labels_from_json(labels);
    r.created_at = r.updated_at = now_rfc3339();
    const std::string sealed = box_.seal(pod.url.reveal(), r.alias);
    Lease l(*this);
    Use u(*l, l->get(S_INSERT_POD));
    u.text(1, r.alias);
    u.text(2, r.url_redacted);
    u.blob(3, sealed);
    u.text(4, r.provider);
    u.text(5, labels);
    u.text(6, r.created_at);
    try {
      u.run();
    } catch (const StoreConflictError&) {
      throw StoreConflictError("pod '" + r.alias + "' already exists");
    }
    return r;
  }

  std::optional<PodRecord> update_pod(const std::string& alias, const PodPatch& patch) override {
    std::string b1, b2, b3;
    const std::string& a = clean(alias, b1);
    std::optional<std::string> redacted, sealed, provider, labels;
    if (patch.url) {
      sealed = box_.seal(patch.url->reveal(), a);
      redacted = clean(patch.url_redacted ? *patch.url_redacted : redact_url(patch.url->reveal()), b2);
    } else if (patch.url_redacted) {
      redacted = clean(*patch.url_redacted, b2);
    }
    if (patch.provider) provider = clean(*patch.provider, b3);
    if (patch.labels) labels = labels_to_json(*patch.labels);
    const std::string now = now_rfc3339();
    Lease l(*this);
    Use u(*l, l->get(S_UPDATE_POD));
    u.text(1, a);
    if (redacted) u.text(2, *redacted);
    if (sealed) u.blob(3, *sealed);
    if (provider) u.text(4, *provider);
    if (labels) u.text(5, *labels);
    u.text(6, now);
    if (!u.step()) return std::nullopt;
    PodRecord r = read_pod(*l, u, labels_from_json(u.view(4)));
    u.run();
    return r;
  }

  bool delete_pod(const std::string& alias) override {
    std::string b;
    const std::string& a = clean(alias, b);
    Lease l(*this);
    Use u(*l, l->get(S_DELETE_POD));
    u.text(1, a);
    u.run();
    const bool deleted = sqlite3_changes(l->db) > 0;
    return deleted;
  }

  std::vector<std::int64_t> begin_commands(const std::vector<CommandStart>& starts,
                                           const std::string& server_id) override {
    std::vector<std::int64_t> ids;
    if (starts.empty()) return ids;
    ids.reserve(starts.size());
    std::string bs;
    const std::string& sid = clean(server_id, bs);
    const std::string now = now_rfc3339();
    Lease l(*this);
    Tx tx(*l);
    for (const auto& s : starts) {
      std::string b1, b2, b3;
      const std::string& a = clean(s.alias, b1);
      const std::string& cmd = clean(s.command, b2);
      const std::string& label = clean(s.pod_label, b3);
      Use u(*l, l->get(S_INSERT_COMMAND));
      u.text(1, a);
      u.text(2, cmd);
      u.text(3, label);
      u.text(4, now);
      u.text(5, sid);
      u.run();
      ids.push_back(sqlite3_last_insert_rowid(l->db));
    }
    tx.commit();
    return ids;
  }

  void finish_command(const CommandRecord& done) override {
    const std::string status(to_string(done.status));
    std::string b1, b2;
    // The output's exact bytes: as text when it is clean text, else sanitised text for
    // readers of `output` plus the bytes in output_raw.
    const bool raw = !is_clean_text(done.output);
    const std::string& output = raw ? (b1 = sanitize_text(done.output)) : done.output;
    std::optional<std::string> error;
    if (done.error) error = clean(*done.error, b2);
    std::string finished = now_rfc3339();
    if (done.finished_at)
      if (auto n = normalize_time(*done.finished_at)) finished = *n;
    Lease l(*this);
    Use u(*l, l->get(S_FINISH_COMMAND));
    u.integer(1, done.id);
    u.text(2, status);
    if (done.exit_code) u.integer(3, *done.exit_code);
    u.text(4, output);
    if (error) u.text(5, *error);
    u.real(6, done.duration);
    u.integer(7, done.truncated ? 1 : 0);
    u.text(8, finished);
    if (raw) u.blob(9, done.output);
    u.run();
  }

  int interrupt_running(const std::string& server_id) override {
    Lease l(*this);
    return interrupt(*l, server_id, "the server stopped before the command finished");
  }

  int interrupt_orphans(const std::vector<std::string>& dead_server_ids) override {
    if (dead_server_ids.empty()) return 0;
    const std::string now = now_rfc3339();
    const std::string why = ORPHAN_REASON;
    Lease l(*this);
    Tx tx(*l);
    int n = 0;
    for (const auto& id : dead_server_ids) {
      std::string b;
      const std::string& sid = clean(id, b);
      {
        Use u(*l, l->get(S_INTERRUPT_ORPHAN));
        u.text(1, sid);
        u.text(2, now);
        u.text(3, why);
        u.run();
        n += sqlite3_changes(l->db);
      }
      Use d(*l, l->get(S_DELETE_LEASE));
      d.text(1, sid);
      d.run();
    }
    tx.commit();
    return n;
  }

  bool heartbeat(const std::string& server_id, const std::string& started_at, double lease_s) override {
    std::string b1, b2;
    const std::string& sid = clean(server_id, b1);
    const std::string& started = clean(started_at, b2);
    const std::string now = now_rfc3339();
    const std::string expires = now_plus_rfc3339(lease_s);
    Lease l(*this);
    {
      Use u(*l, l->get(S_RENEW_LEASE));
      u.text(1, sid);
      u.text(2, now);
      u.text(3, expires);
      u.run();
      if (sqlite3_changes(l->db) > 0) return true;
    }
    Use u(*l, l->get(S_INSERT_LEASE));
    u.text(1, sid);
    u.text(2, now);
    u.text(3, expires);
    u.text(4, started.empty() ? now : started);
    u.run();
    return false;
  }

  void release_lease(const std::string& server_id) override {
    std::string b;
    const std::string& sid = clean(server_id, b);
    Lease l(*this);
    Use d(*l, l->get(S_DELETE_LEASE));
    d.text(1, sid);
    d.run();
  }

  std::vector<ReapedReplica> reap_expired_replicas(const std::string& self_id) override {
    std::string b;
    const std::string& self = clean(self_id, b);
    const std::string now = now_rfc3339();
    const std::string why = LEASE_REASON;
    std::vector<ReapedReplica> out;
    Lease l(*this);
    Tx tx(*l);
    {
      Use u(*l, l->get(S_EXPIRED_LEASES));
      u.text(1, now);
      u.text(2, self);
      while (u.step()) out.push_back({u.str(0), u.str(1), 0});
    }
    for (auto& r : out) {
      {
        Use u(*l, l->get(S_REAP_COMMANDS));
        u.text(1, r.server_id);
        u.text(2, r.last_seen);
        u.text(3, why);
        u.run();
        r.commands = sqlite3_changes(l->db);
      }
      Use d(*l, l->get(S_DELETE_LEASE));
      d.text(1, r.server_id);
      d.run();
    }
    tx.commit();
    return out;
  }

  std::vector<ReplicaLeaseRow> replicas() override {
    Lease l(*this);
    Use u(*l, l->get(S_LIST_LEASES));
    std::vector<ReplicaLeaseRow> out;
    while (u.step()) out.push_back({u.str(0), u.str(1), u.str(2), u.str(3)});
    return out;
  }

  std::vector<std::string> running_server_ids() override {
    Lease l(*this);
    Use u(*l, l->get(S_RUNNING_SERVERS));
    std::vector<std::string> out;
    while (u.step()) out.push_back(u.str(0));
    return out;
  }

  std::vector<CommandRecord> list_commands(const CommandFilter& f) override {
    std::vector<CommandRecord> out;
    if (f.limit <= 0) return out;
    std::string b1, since;
    unsigned mask = 0;
    if (f.alias) mask |= 1u;
    if (f.status) mask |= 2u;
    if (f.since) {
      auto n = normalize_time(*f.since);
      if (!n) throw StoreError("invalid 'since' time");
      since = *n;
      mask |= 4u;
    }
    if (f.before_id) mask |= 8u;
    std::string alias, status;
    if (f.alias) alias = clean(*f.alias, b1);
    if (f.status) status = to_string(*f.status);
    Lease l(*this);
    Use u(*l, l->get_list(mask));
    if (f.alias) u.text(1, alias);
    if (f.status) u.text(2, status);
    if (f.since) u.text(3, since);
    if (f.before_id) u.integer(4, *f.before_id);
    u.integer(5, f.limit);
    out.reserve(static_cast<std::size_t>(std::min(f.limit, 1000)));
    while (u.step()) out.push_back(read_command(u));
    return out;
  }

  std::optional<CommandRecord> get_command(std::int64_t id) override {
    Lease l(*this);
    Use u(*l, l->get(S_GET_COMMAND));
    u.integer(1, id);
    if (!u.step()) return std::nullopt;
    return read_command(u);
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
    Connection* operator->() { return c_.get(); }

   private:
    SqliteStore& s_;
    std::unique_ptr<Connection> c_;
  };

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
    if (sqlite3_open_v2(path_.c_str(), &c->db, flags, nullptr) != SQLITE_OK)
      fail(c->db, "cannot open " + path_);
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

  // In the migration transaction: the database's key check opens with our key, or is
  // created. A database from before the key check (pods but no check) must have at least
  // one pod URL our key opens, so that the check is not made with a wrong key.
  void check_key(Connection& c) {
    auto one = [&](const char* sql, auto&& row) {
      sqlite3_stmt* s = nullptr;
      if (sqlite3_prepare_v2(c.db, sql, -1, &s, nullptr) != SQLITE_OK) fail(c.db, "key check");
      sqlite3_bind_text(s, 1, KEY_CHECK_NAME, -1, SQLITE_STATIC);
      int rc;
      bool more = true;
      while (more && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        const auto* p = static_cast<const char*>(sqlite3_column_blob(s, 0));
        const auto n = static_cast<std::size_t>(sqlite3_column_bytes(s, 0));
        const auto* a = reinterpret_cast<const char*>(sqlite3_column_text(s, 1));
        more = row(std::string_view(p ? p : "", n), std::string(a ? a : ""));
      }
      sqlite3_finalize(s);
    };
    std::optional<bool> stored;
    one("SELECT value, name FROM meta WHERE name = ?1", [&](std::string_view v, const std::string&) {
      stored = box_.opens_key_check(v);
      return false;
    });
    if (stored) {
      if (!*stored) throw StoreKeyMismatchError(box_.mismatch_message());
      return;
    }
    bool any = false, opened = false;
    one("SELECT url_secret, alias FROM pods", [&](std::string_view v, const std::string& alias) {
      any = true;
      opened = box_.open(v, alias).has_value();
      return !opened;
    });
    if (any && !opened) throw StoreKeyMismatchError(box_.mismatch_message());
    const std::string check = box_.seal_key_check();
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(c.db, "INSERT INTO meta (name, value) VALUES (?1, ?2)", -1, &s, nullptr) != SQLITE_OK)
      fail(c.db, "key check");
    sqlite3_bind_text(s, 1, KEY_CHECK_NAME, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, check.data(), static_cast<int>(check.size()), SQLITE_STATIC);
    const int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) fail(c.db, "key check");
  }

  void migrate(Connection& c) {
    Tx tx(c);
    c.exec(SQLITE_MIGRATIONS_TABLE);
    int current = 0;
    {
      sqlite3_stmt* s = nullptr;
      if (sqlite3_prepare_v2(c.db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", -1, &s,
                             nullptr) != SQLITE_OK)
        fail(c.db, "migrations");
      if (sqlite3_step(s) == SQLITE_ROW) current = sqlite3_column_int(s, 0);
      sqlite3_finalize(s);
    }
    for (const auto& m : MIGRATIONS) {
      if (m.version <= current) continue;
      c.exec(m.sqlite_sql);
      sqlite3_stmt* s = nullptr;
      if (sqlite3_prepare_v2(c.db, "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                             -1, &s, nullptr) != SQLITE_OK)
        fail(c.db, "migrations");
      std::string now = now_rfc3339();
      sqlite3_bind_int(s, 1, m.version);
      sqlite3_bind_text(s, 2, now.data(), static_cast<int>(now.size()), SQLITE_TRANSIENT);
      int rc = sqlite3_step(s);
      sqlite3_finalize(s);
      if (rc != SQLITE_DONE) fail(c.db, "migration " + std::to_string(m.version));
    }
    check_key(c);
    tx.commit();
  }

  PodRecord read_pod(Connection& c, const Use& u, Labels labels) {
    PodRecord r;
    r.alias = u.str(0);
    r.url_redacted = u.str(1);
    if (const std::string* url = c.urls.get(box_, r.alias, u.view(2))) r.url = SecretString(*url);
    else r.url_error = URL_UNREADABLE;
    r.provider = u.str(3);
    r.labels = std::move(labels);
    r.created_at = u.str(5);
    r.updated_at = u.str(6);
    return r;
  }

  static CommandRecord read_command(const Use& u) {
    CommandRecord r;
    r.id = u.i64(0);
    r.alias = u.str(1);
    r.command = u.str(2);
    r.status = command_status_from_stored(u.str(3));
    if (!u.is_null(4)) r.exit_code = static_cast<int>(u.i64(4));
    r.output = u.is_null(13) ? u.str(5) : u.str(13);  // output_raw: the exact bytes
    if (!u.is_null(6)) r.error = u.str(6);
    r.duration = u.dbl(7);
    r.truncated = u.i64(8) != 0;
    r.pod_label = u.str(9);
    r.started_at = u.str(10);
    if (!u.is_null(11)) r.finished_at = u.str(11);
    r.server_id = u.str(12);
    return r;
  }

  static constexpr const char* ORPHAN_REASON = "the server process running the command ended";
  static constexpr const char* LEASE_REASON =
      "the server running the command stopped renewing its lease (it ended or lost the database)";

  static int interrupt(Connection& c, const std::string& server_id, const std::string& why) {
    std::string b;
    const std::string& sid = clean(server_id, b);
    const std::string now = now_rfc3339();
    Use u(c, c.get(S_INTERRUPT_SERVER));
    u.text(1, sid);
    u.text(2, now);
    u.text(3, why);
    u.run();
    return sqlite3_changes(c.db);
  }

  const std::string path_;
  const SecretBox box_;
  ConnectionPool<Connection> pool_;
};

}  // namespace

std::unique_ptr<Store> open_sqlite_store(const std::string& path) {
  return std::make_unique<SqliteStore>(path, SecretBox::from_environment());
}

}  // namespace pw::server::detail

// The PostgreSQL Store over libpq.
//
// The statements, record mapping and the Store methods that are the same on SQLite live in
// store_core.hpp; this file binds and reads PostgreSQL's types (parameters and results in
// text form, bytea parameters in binary) and holds what only PostgreSQL does.
//
// Connections: a pool of up to 8, opened lazily, each with its own server-side prepared
// statements (prepared on first use), decrypted-URL cache and last list_pods result (reused
// while the pods_version counter is unchanged: one one-row round trip instead of reading,
// parsing and decrypting every pod). When a statement fails
// because the connection broke (server restart, network), that connection is dropped, the
// pool's epoch advances so every idle connection opened before is dropped too, and the
// operation is retried once on a fresh connection if the broken one had been idle in the
// pool (a stale connection). A PostgreSQL restart thus costs no failed call once the
// server is back. Every message from libpq is scrubbed of the password before it goes into
// a StoreError.
//
// Replica leases use the database's clock (now() as RFC 3339 UTC text), so replicas on
// several hosts need no synchronised clocks; expired leases are taken with FOR UPDATE SKIP
// LOCKED, so replicas reaping at once neither wait for nor deadlock with each other, and a
// lease being renewed is never reaped.
#include "embedded_server/store/postgres_store.hpp"

#include "embedded_server/store/codec.hpp"
#include "embedded_server/store/connection_pool.hpp"
#include "embedded_server/store/store_core.hpp"

#include <podwrangler/redact.hpp>

#include <libpq-fe.h>

#include <utility>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace pw::server::detail {

namespace {

constexpr int MAX_CONNECTIONS = 8;

// PostgreSQL's own statements, after the core's (statement_table).
enum PostgresStatement : int {
  PG_INSERT_COMMANDS = OWN_STATEMENTS,
  PG_REAP,
};

// The database's clock as stored times ("2026-11-25T16:00:00.123Z"), and that plus $2 seconds.
#define PG_TIME_TEXT(ts) "to_char((" ts ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define PG_NOW_TEXT PG_TIME_TEXT("now()")
#define PG_NOW_PLUS_TEXT PG_TIME_TEXT("now() + make_interval(secs => $2::double precision)")

const std::vector<std::string>& statements() {
  static const std::vector<std::string> table =
      statement_table(Placeholders::postgres,
                      {
                          // RENEW_LEASE, INSERT_LEASE: $2 the lease in seconds, on the database's clock.
                          "UPDATE replicas SET last_seen = " PG_NOW_TEXT ", expires_at = " PG_NOW_PLUS_TEXT
                          " WHERE server_id = $1::text",
                          "INSERT INTO replicas (server_id, started_at, last_seen, expires_at) VALUES ($1::text, "
                          "COALESCE(NULLIF($3::text, ''), " PG_NOW_TEXT "), " PG_NOW_TEXT ", " PG_NOW_PLUS_TEXT
                          ") ON CONFLICT (server_id) DO UPDATE SET last_seen = EXCLUDED.last_seen, expires_at = "
                          "EXCLUDED.expires_at",
                          // One statement for the whole batch; rows are inserted (and ids drawn) in array order.
                          "INSERT INTO commands (alias, command, status, output, duration, truncated, pod_label, "
                          "started_at, server_id) SELECT x.a, x.c, 'running', '', 0, FALSE, x.l, $2::text, "
                          "$3::text FROM json_to_recordset($1::json) AS x(i bigint, a text, c text, l text) "
                          "ORDER BY x.i RETURNING id",
                          // One statement: take the expired leases (skipping any another replica is reaping or
                          // its owner is renewing), close their running rows at their last heartbeat, report.
                          "WITH dead AS (DELETE FROM replicas WHERE server_id IN (SELECT server_id FROM replicas "
                          "WHERE expires_at < " PG_NOW_TEXT " AND server_id <> $1::text FOR UPDATE SKIP LOCKED) "
                          "RETURNING server_id, last_seen), closed AS (UPDATE commands c SET status = "
                          "'interrupted', finished_at = GREATEST(d.last_seen, c.started_at), error = "
                          "COALESCE(c.error, $2::text) FROM dead d WHERE c.status = 'running' AND c.server_id = "
                          "d.server_id RETURNING c.server_id) SELECT d.server_id, d.last_seen, (SELECT count(*) "
                          "FROM closed x WHERE x.server_id = d.server_id) FROM dead d ORDER BY d.server_id",
                      });
  return table;
}

// The connection broke (as opposed to a statement error on a healthy connection).
class ConnectionLost : public StoreError {
 public:
  using StoreError::StoreError;
};

struct ResultFree {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultFree>;

struct Connection {
  PGconn* conn = nullptr;
  std::uint64_t epoch = 0;
  std::vector<bool> prepared = std::vector<bool>(statements().size());  // per statement
  ConnectionCaches caches;

  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { PQfinish(conn); }
  bool broken() const { return PQstatus(conn) != CONNECTION_OK; }
};

// Row `i` of a result in text form: numbers as decimal text, booleans as t/f, bytea as "\x…".
class PgRow final : public Row {
 public:
  PgRow(const PGresult* r, int i) : r_(r), i_(i) {}
  bool is_null(int col) const override { return PQgetisnull(r_, i_, col) != 0; }
  std::string_view text(int col) const override {
    return {PQgetvalue(r_, i_, col), static_cast<std::size_t>(PQgetlength(r_, i_, col))};
  }
  std::int64_t integer(int col) const override { return std::strtoll(PQgetvalue(r_, i_, col), nullptr, 10); }
  double real(int col) const override { return std::strtod(PQgetvalue(r_, i_, col), nullptr); }
  bool boolean(int col) const override { return PQgetvalue(r_, i_, col)[0] == 't'; }
  StoredBytes blob(int col) const override { return {text(col), true}; }

 private:
  const PGresult* r_;
  int i_;
};

class PostgresStore final : public StoreCore {
 public:
  PostgresStore(std::string uri, std::string password, SecretBox box)
      : StoreCore("postgresql", box), uri_(std::move(uri)), password_(std::move(password)) {
    migrate(&Migration::postgres_sql);
  }

 protected:
  // One statement for the whole batch (a JSON array of the commands).
  std::vector<std::int64_t> insert_commands(Session& s, const std::vector<CommandStart>& starts,
                                            const std::string& server_id, const std::string& now) override {
    std::string json = "[";
    for (std::size_t i = 0; i < starts.size(); ++i) {
      if (i) json += ',';
      json += "{\"i\":" + std::to_string(i) + ",\"a\":";
      append_json_string(json, starts[i].alias);
      json += ",\"c\":";
      append_json_string(json, starts[i].command);
      json += ",\"l\":";
      append_json_string(json, starts[i].pod_label);
      json += '}';
    }
    json += ']';
    std::vector<std::int64_t> ids;
    ids.reserve(starts.size());
    s.run(PG_INSERT_COMMANDS, {Value::text(json), Value::text(now), Value::text(server_id)},
          [&](const Row& r) { ids.push_back(r.integer(0)); });
    std::sort(ids.begin(), ids.end());  // ids were drawn in input order
    if (ids.size() != starts.size()) throw StoreError("begin_commands: unexpected row count");
    return ids;
  }

  // The database's clock (the statements add the lease to now()): replicas on several hosts
  // need no synchronised clocks.
  std::vector<std::string> lease_times(double lease_s) const override {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.3f", lease_s == lease_s ? lease_s : 0.0);
    return {buf};
  }

  // One statement (PG_REAP).
  std::vector<ReapedReplica> reap(Session& s, const std::string& self_id, const std::string& why) override {
    std::vector<ReapedReplica> out;
    s.run(PG_REAP, {Value::text(self_id), Value::text(why)}, [&](const Row& r) {
      out.push_back({r.str(0), r.str(1), static_cast<int>(r.integer(2))});
    });
    return out;
  }

 private:
  // A connection as the core uses it: statements prepared on first use (named "pw<id>").
  class PgSession final : public Session {
   public:
    PgSession(PostgresStore& store, Connection& c) : store_(store), c_(c) {}

    void script(const char* sql) override { store_.simple(c_, sql); }
    void begin() override { store_.simple(c_, "BEGIN"); }
    void commit() override { store_.simple(c_, "COMMIT"); }
    void rollback() noexcept override {
      if (PQtransactionStatus(c_.conn) != PQTRANS_IDLE) Result r(PQexec(c_.conn, "ROLLBACK"));
    }
    void lock_migrations() override {
      const std::string lock = "SELECT pg_advisory_xact_lock(" + std::to_string(MIGRATION_LOCK_KEY) + ")";
      store_.simple(c_, lock.c_str());
    }
    ConnectionCaches& caches() override { return c_.caches; }

   protected:
    std::int64_t execute(int id, const Params& params, const RowFn& on_row) override {
      Result r = store_.exec(c_, id, params);
      if (on_row) {
        const int n = PQntuples(r.get());
        for (int i = 0; i < n; ++i) on_row(PgRow(r.get(), i));
      }
      return std::atoll(PQcmdTuples(r.get()));
    }

   private:
    PostgresStore& store_;
    Connection& c_;
  };

  // ---- pool ----
  struct Lease {
    PostgresStore& s;
    std::unique_ptr<Connection> c;
    bool reused = false;
    ~Lease() {
      if (c) s.release(std::move(c));
    }
  };

  void with_session(const std::function<void(Session&)>& body) override {
    for (int attempt = 0;; ++attempt) {
      Lease l{*this, nullptr};
      l.c = acquire(l.reused);
      try {
        PgSession s(*this, *l.c);
        body(s);
        return;
      } catch (const ConnectionLost& e) {
        drop(std::move(l.c));
        if (attempt == 0 && l.reused) continue;  // a stale pooled connection: once more, fresh
        throw StoreError(e.what());
      } catch (...) {
        // A statement error inside a transaction leaves it aborted: roll back (or drop).
        if (l.c && PQtransactionStatus(l.c->conn) != PQTRANS_IDLE) {
          Result r(PQexec(l.c->conn, "ROLLBACK"));
          if (PQtransactionStatus(l.c->conn) != PQTRANS_IDLE) drop(std::move(l.c));
        }
        throw;
      }
    }
  }

  std::unique_ptr<Connection> acquire(bool& reused) {
    // Not one opened before a connection was seen broken (the server may have restarted).
    return pool_.acquire([this](Connection& c) { return c.epoch >= epoch_.load() && !c.broken(); },
                         [this] { return open_connection(); }, &reused);
  }

  void release(std::unique_ptr<Connection> c) {
    pool_.release(std::move(c), [this](Connection& k) {
      return !k.broken() && PQtransactionStatus(k.conn) == PQTRANS_IDLE && k.epoch >= epoch_.load();
    });
  }

  void drop(std::unique_ptr<Connection> c) {
    if (!c) return;
    ++epoch_;
    pool_.release(std::move(c), [](Connection&) { return false; });
  }

  std::unique_ptr<Connection> open_connection() {
    auto c = std::make_unique<Connection>();
    c->epoch = epoch_.load();
    // Keywords before dbname are defaults the URI may override; those after it win.
    const char* keys[] = {"connect_timeout", "application_name", "dbname", "client_encoding", nullptr};
    const char* vals[] = {"5", "podwrangler", uri_.c_str(), "UTF8", nullptr};
    c->conn = PQconnectdbParams(keys, vals, 1);
    if (!c->conn) throw StoreError("postgresql: out of memory");
    if (PQstatus(c->conn) != CONNECTION_OK)
      throw StoreError("postgresql: cannot connect: " + scrub(PQerrorMessage(c->conn)));
    // Server notices ("relation … already exists, skipping") are not errors: not on stderr.
    PQsetNoticeProcessor(
        c->conn, [](void*, const char*) {}, nullptr);
    return c;
  }

  // ---- statements ----
  std::string scrub(const std::string& msg) const {
    std::string m = password_.empty() ? msg : redact_value(msg, password_);
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
    return m;
  }

  [[noreturn]] void fail(Connection& c, PGresult* r, const std::string& what) const {
    std::string msg = scrub(r ? PQresultErrorMessage(r) : PQerrorMessage(c.conn));
    if (msg.empty()) msg = scrub(PQerrorMessage(c.conn));
    const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    if (state && std::strcmp(state, "23505") == 0) throw StoreConflictError(msg);
    // SQLSTATE class 08: connection exceptions; 57P01-57P03: server shutting down / restarting.
    bool conn_gone =
        c.broken() || !r || (state && (std::strncmp(state, "08", 2) == 0 || std::strncmp(state, "57P0", 4) == 0));
    if (conn_gone)  // with_session drops this connection (no PQreset: a fresh one replaces it)
      throw ConnectionLost("postgresql: " + what + ": connection lost: " + msg);
    throw StoreError("postgresql: " + what + ": " + msg);
  }

  // Statement `id` (prepared on this connection on first use) with `params`: text
  // parameters, numbers as decimal text, booleans as t/f, blobs in binary.
  Result exec(Connection& c, int id, const Params& params) {
    static const std::vector<std::string> NAMES = [] {
      std::vector<std::string> n(statements().size());
      for (std::size_t i = 0; i < n.size(); ++i) n[i] = "pw" + std::to_string(i);
      return n;
    }();
    const auto i = static_cast<std::size_t>(id);
    if (!c.prepared[i]) {
      Result p(PQprepare(c.conn, NAMES[i].c_str(), statements()[i].c_str(), 0, nullptr));
      if (!p || PQresultStatus(p.get()) != PGRES_COMMAND_OK) fail(c, p.get(), "prepare");
      c.prepared[i] = true;
    }
    const std::size_t n = params.size();
    std::vector<std::string> numbers(n);  // the text of numbers and booleans
    std::vector<const char*> values(n);
    std::vector<int> lengths(n), formats(n);
    for (std::size_t k = 0; k < n; ++k) {
      const Value& v = params[k];
      switch (v.type) {
        case Value::Type::null: break;
        case Value::Type::text: values[k] = v.str->c_str(); break;
        case Value::Type::blob:
          values[k] = v.str->data();
          lengths[k] = static_cast<int>(v.str->size());
          formats[k] = 1;
          break;
        case Value::Type::integer: numbers[k] = std::to_string(v.integer_value); break;
        case Value::Type::boolean: numbers[k] = v.integer_value ? "t" : "f"; break;
        case Value::Type::real: {
          char buf[40];
          std::snprintf(buf, sizeof buf, "%.17g", v.real_value);
          numbers[k] = buf;
          break;
        }
      }
      if (!numbers[k].empty()) values[k] = numbers[k].c_str();
    }
    Result r(PQexecPrepared(c.conn, NAMES[i].c_str(), static_cast<int>(n), values.data(), lengths.data(),
                            formats.data(), 0));
    auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail(c, r.get(), "statement");
    return r;
  }

  void simple(Connection& c, const char* sql) {
    Result r(PQexec(c.conn, sql));
    auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail(c, r.get(), "statement");
  }

  const std::string uri_;
  const std::string password_;
  ConnectionPool<Connection> pool_{MAX_CONNECTIONS};
  std::atomic<std::uint64_t> epoch_{0};
};

}  // namespace

std::unique_ptr<Store> open_postgres_store(const std::string& uri, const std::string& password) {
  return std::make_unique<PostgresStore>(uri, password, SecretBox::from_environment());
}

}  // namespace pw::server::detail

// ---- the module's entry points (see postgres_store.hpp): nothing is thrown out of them ----

namespace {

void copy_message(const char* msg, char* err, std::size_t errlen) noexcept {
  if (!err || errlen == 0) return;
  std::snprintf(err, errlen, "%s", msg ? msg : "");
}

}  // namespace

extern "C" {

int pw_pg_module_abi(void) { return PW_PG_MODULE_ABI; }

int pw_pg_conninfo_parse(const char* uri, pw_pg_option_fn emit, void* ctx, char* err, std::size_t errlen) {
  char* perr = nullptr;
  PQconninfoOption* opts = PQconninfoParse(uri ? uri : "", &perr);
  if (!opts) {
    copy_message(perr ? perr : "malformed URL", err, errlen);
    PQfreemem(perr);
    return -1;
  }
  int rc = 0;
  try {
    for (auto* o = opts; o->keyword; ++o)
      if (o->val) emit(ctx, o->keyword, o->val);
  } catch (const std::exception& e) {
    copy_message(e.what(), err, errlen);
    rc = -1;
  } catch (...) {
    copy_message("unexpected error", err, errlen);
    rc = -1;
  }
  PQconninfoFree(opts);
  return rc;
}

pw::server::Store* pw_store_open_postgres(const char* uri, const char* password, char* err, std::size_t errlen,
                                          int* kind) {
  if (kind) *kind = PW_PG_ERR_STORE;
  try {
    return pw::server::detail::open_postgres_store(uri ? uri : "", password ? password : "").release();
  } catch (const pw::server::StoreKeyMismatchError& e) {
    if (kind) *kind = PW_PG_ERR_KEY_MISMATCH;
    copy_message(e.what(), err, errlen);
  } catch (const std::exception& e) {
    copy_message(e.what(), err, errlen);
  } catch (...) {
    copy_message("postgresql: unexpected error", err, errlen);
  }
  return nullptr;
}

}  // extern "C"

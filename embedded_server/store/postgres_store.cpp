// The PostgreSQL Store over libpq.
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
#include "embedded_server/store/migrations.hpp"
#include "embedded_server/store/secret_box.hpp"

#include <podwrangler/redact.hpp>

#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <array>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <utility>

namespace pw::server::detail {

namespace {

constexpr int MAX_CONNECTIONS = 8;

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
  S_INSERT_COMMANDS,
  S_FINISH_COMMAND,
  S_INTERRUPT_SERVER,
  S_INTERRUPT_ORPHAN,
  S_RUNNING_SERVERS,
  S_RENEW_LEASE,
  S_INSERT_LEASE,
  S_DELETE_LEASE,
  S_REAP,
  S_LIST_LEASES,
  S_GET_COMMAND,
  S_PING,
  S_PODS_VERSION,
  S_COUNT
};

// The database's clock as stored times ("2026-11-25T16:00:00.123Z"), and that plus $2 seconds.
#define PG_TIME_TEXT(ts) "to_char((" ts ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define PG_NOW_TEXT PG_TIME_TEXT("now()")
#define PG_NOW_PLUS_TEXT PG_TIME_TEXT("now() + make_interval(secs => $2::double precision)")

constexpr std::array<const char*, S_COUNT> SQL{
    "SELECT " POD_COLUMNS " FROM pods ORDER BY alias",
    "SELECT " POD_COLUMNS " FROM pods WHERE alias = $1::text",
    "INSERT INTO pods (" POD_COLUMNS ") VALUES ($1::text, $2::text, $3::bytea, $4::text, $5::text, "
    "$6::text, $6::text)",
    "UPDATE pods SET url_redacted = COALESCE($2::text, url_redacted), url_secret = "
    "COALESCE($3::bytea, url_secret), provider = COALESCE($4::text, provider), labels = "
    "COALESCE($5::text, labels), updated_at = $6::text WHERE alias = $1::text RETURNING " POD_COLUMNS,
    "DELETE FROM pods WHERE alias = $1::text",
    // One statement for the whole batch; rows are inserted (and ids drawn) in array order.
    "INSERT INTO commands (alias, command, status, output, duration, truncated, pod_label, "
    "started_at, server_id) SELECT x.a, x.c, 'running', '', 0, FALSE, x.l, $2::text, $3::text FROM "
    "json_to_recordset($1::json) AS x(i bigint, a text, c text, l text) ORDER BY x.i RETURNING id",
    "UPDATE commands SET status = $2::text, exit_code = $3::integer, output = $4::text, error = "
    "$5::text, duration = $6::double precision, truncated = $7::boolean, finished_at = $8::text, "
    "output_raw = $9::bytea WHERE id = $1::bigint",
    "UPDATE commands SET status = 'interrupted', finished_at = $2::text, error = COALESCE(error, "
    "$3::text) WHERE status = 'running' AND server_id = $1::text",
    // A dead server's rows end at its last heartbeat when it held a lease, else now.
    "UPDATE commands SET status = 'interrupted', finished_at = COALESCE((SELECT "
    "GREATEST(r.last_seen, commands.started_at) FROM replicas r WHERE r.server_id = $1::text), "
    "$2::text), error = COALESCE(error, $3::text) WHERE status = 'running' AND server_id = $1::text",
    "SELECT DISTINCT server_id FROM commands WHERE status = 'running' ORDER BY server_id",
    "UPDATE replicas SET last_seen = " PG_NOW_TEXT ", expires_at = " PG_NOW_PLUS_TEXT
    " WHERE server_id = $1::text",
    "INSERT INTO replicas (server_id, started_at, last_seen, expires_at) VALUES ($1::text, "
    "COALESCE(NULLIF($3::text, ''), " PG_NOW_TEXT "), " PG_NOW_TEXT ", " PG_NOW_PLUS_TEXT
    ") ON CONFLICT (server_id) DO UPDATE SET last_seen = EXCLUDED.last_seen, expires_at = "
    "EXCLUDED.expires_at",
    "DELETE FROM replicas WHERE server_id = $1::text",
    // One statement: take the expired leases (skipping any another replica is reaping or
    // its owner is renewing), close their running rows at their last heartbeat, report.
    "WITH dead AS (DELETE FROM replicas WHERE server_id IN (SELECT server_id FROM replicas WHERE "
    "expires_at < " PG_NOW_TEXT " AND server_id <> $1::text FOR UPDATE SKIP LOCKED) RETURNING "
    "server_id, last_seen), closed AS (UPDATE commands c SET status = 'interrupted', finished_at = "
    "GREATEST(d.last_seen, c.started_at), error = COALESCE(c.error, $2::text) FROM dead d WHERE "
    "c.status = 'running' AND c.server_id = d.server_id RETURNING c.server_id) SELECT d.server_id, "
    "d.last_seen, (SELECT count(*) FROM closed x WHERE x.server_id = d.server_id) FROM dead d "
    "ORDER BY d.server_id",
    "SELECT server_id, started_at, last_seen, expires_at FROM replicas ORDER BY server_id",
    "SELECT " COMMAND_COLUMNS " FROM commands WHERE id = $1::bigint",
    "SELECT 1",
    "SELECT version FROM pods_version WHERE id = 1",
};

// list_commands: one statement per combination of filters (bit 0 alias, 1 status, 2 since,
// 3 before_id); parameters are numbered in that order, the limit last.
std::string list_commands_sql(unsigned mask) {
  std::string sql = "SELECT " COMMAND_COLUMNS " FROM commands";
  const char* sep = " WHERE ";
  int n = 0;
  auto add = [&](const char* col_op, const char* type) {
    sql += sep;
    sql += col_op;
    sql += " $" + std::to_string(++n) + "::" + type;
    sep = " AND ";
  };
  if (mask & 1u) add("alias =", "text");
  if (mask & 2u) add("status =", "text");
  if (mask & 4u) add("started_at >=", "text");
  if (mask & 8u) add("id <", "bigint");
  sql += " ORDER BY id DESC LIMIT $" + std::to_string(++n) + "::bigint";
  return sql;
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

// One statement parameter: text (format 0) or binary (format 1), or SQL NULL.
struct Param {
  const char* data = nullptr;
  int length = 0;
  int format = 0;
  static Param text(const std::string& s) { return {s.c_str(), static_cast<int>(s.size()), 0}; }
  static Param binary(const std::string& s) { return {s.data(), static_cast<int>(s.size()), 1}; }
  static Param null() { return {}; }
};

struct Connection {
  PGconn* conn = nullptr;
  std::uint64_t epoch = 0;
  std::uint32_t prepared = 0;       // bit per StmtId
  std::uint32_t prepared_list = 0;  // bit per list_commands mask
  UrlCache urls;
  // list_pods' last result (all pods) and the pods_version it was read under.
  PodListCache pods;

  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { PQfinish(conn); }
  bool broken() const { return PQstatus(conn) != CONNECTION_OK; }
};

class PostgresStore final : public Store {
 public:
  PostgresStore(std::string uri, std::string password, SecretBox box)
      : uri_(std::move(uri)), password_(std::move(password)), box_(std::move(box)) {
    auto c = open_connection();
    migrate(*c);
    pool_.adopt(std::move(c));
  }

  std::string kind() const override { return "postgresql"; }

  bool ping() noexcept override {
    try {
      return with_conn([&](Connection& c) { return PQntuples(exec(c, S_PING, {}).get()) == 1; });
    } catch (...) {
      return false;
    }
  }

  std::vector<PodRecord> list_pods(const Labels& selector_in) override {
    Labels buf;
    const Labels& selector = clean(selector_in, buf);
    return with_conn([&](Connection& c) {
      // Version first, then rows: a change committed in between only costs a re-read later.
      std::string version;
      {
        Result v = exec(c, S_PODS_VERSION, {});
        if (PQntuples(v.get()) == 1) version = view(v, 0, 0);
      }
      const auto& all = c.pods.get(version, [&] {
        Result r = exec(c, S_LIST_PODS, {});
        const int n = PQntuples(r.get());
        std::vector<PodRecord> pods;
        pods.reserve(static_cast<std::size_t>(n));
        for (int i = 0; i < n; ++i) pods.push_back(read_pod(c, r, i, labels_from_json(view(r, i, 4))));
        return pods;
      });
      return select_pods(all, selector);
    });
  }

  std::string pods_version() override {
    return with_conn([&](Connection& c) {
      Result v = exec(c, S_PODS_VERSION, {});
      return PQntuples(v.get()) == 1 ? std::string(view(v, 0, 0)) : std::string{};
    });
  }

  std::optional<PodRecord> get_pod(const std::string& alias) override {
    std::string b;
    const std::string& a = clean(alias, b);
    return with_conn([&](Connection& c) -> std::optional<PodRecord> {
      Result r = exec(c, S_GET_POD, {Param::text(a)});
      if (PQntuples(r.get()) == 0) return std::nullopt;
      return read_pod(c, r, 0, labels_from_json(view(r, 0, 4)));
    });
  }

  PodRecord create_pod(const PodRecord& pod) override {
    PodRecord rec;
    std::string b1, b2, b3;
    rec.alias = clean(pod.alias, b1);
    rec.url = pod.url;
    rec.url_redacted =
        clean(pod.url_redacted.empty() ? redact_url(pod.url.reveal()) : pod.url_redacted, b2);
    rec.provider = clean(pod.provider, b3);
    const std::string labels = labels_to_json(pod.labels);
    rec.labels = labels_from_json(labels);
    rec.created_at = rec.updated_at = now_rfc3339();
    const std::string sealed = box_.seal(pod.url.reveal(), rec.alias);
    with_conn([&](Connection& c) {
      try {
        exec(c, S_INSERT_POD,
             {Param::text(rec.alias), Param::text(rec.url_redacted), Param::binary(sealed),
              Param::text(rec.provider), Param::text(labels), Param::text(rec.created_at)});
      } catch (const StoreConflictError&) {
        throw StoreConflictError("pod '" + rec.alias + "' already exists");
      }
      return 0;
    });
    return rec;
  }

  std::optional<PodRecord> update_pod(const std::string& alias, const PodPatch& patch) override {
    std::string b1, b2, b3;
    const std::string& a = clean(alias, b1);
    std::optional<std::string> redacted, sealed, provider, labels;
    if (patch.url) {
      sealed = box_.seal(patch.url->reveal(), a);
      redacted =
          clean(patch.url_redacted ? *patch.url_redacted : redact_url(patch.url->reveal()), b2);
    } else if (patch.url_redacted) {
      redacted = clean(*patch.url_redacted, b2);
    }
    if (patch.provider) provider = clean(*patch.provider, b3);
    if (patch.labels) labels = labels_to_json(*patch.labels);
    const std::string now = now_rfc3339();
    auto opt = [](const std::optional<std::string>& v) { return v ? Param::text(*v) : Param::null(); };
    return with_conn([&](Connection& c) -> std::optional<PodRecord> {
      Result r = exec(c, S_UPDATE_POD,
                      {Param::text(a), opt(redacted), sealed ? Param::binary(*sealed) : Param::null(),
                       opt(provider), opt(labels), Param::text(now)});
      if (PQntuples(r.get()) == 0) return std::nullopt;
      return read_pod(c, r, 0, labels_from_json(view(r, 0, 4)));
    });
  }

  bool delete_pod(const std::string& alias) override {
    std::string b;
    const std::string& a = clean(alias, b);
    return with_conn([&](Connection& c) {
      Result r = exec(c, S_DELETE_POD, {Param::text(a)});
      return affected(r) > 0;
    });
  }

  std::vector<std::int64_t> begin_commands(const std::vector<CommandStart>& starts,
                                           const std::string& server_id) override {
    std::vector<std::int64_t> ids;
    if (starts.empty()) return ids;
    std::string json = "[";
    std::string b1, b2, b3, bs;
    for (std::size_t i = 0; i < starts.size(); ++i) {
      if (i) json += ',';
      json += "{\"i\":" + std::to_string(i) + ",\"a\":";
      append_json_string(json, clean(starts[i].alias, b1));
      json += ",\"c\":";
      append_json_string(json, clean(starts[i].command, b2));
      json += ",\"l\":";
      append_json_string(json, clean(starts[i].pod_label, b3));
      json += '}';
    }
    json += ']';
    const std::string& sid = clean(server_id, bs);
    const std::string now = now_rfc3339();
    return with_conn([&](Connection& c) {
      Result r = exec(c, S_INSERT_COMMANDS, {Param::text(json), Param::text(now), Param::text(sid)});
      const int n = PQntuples(r.get());
      std::vector<std::int64_t> out;
      out.reserve(static_cast<std::size_t>(n));
      for (int i = 0; i < n; ++i) out.push_back(std::strtoll(PQgetvalue(r.get(), i, 0), nullptr, 10));
      std::sort(out.begin(), out.end());  // ids were drawn in input order
      if (out.size() != starts.size()) throw StoreError("begin_commands: unexpected row count");
      return out;
    });
  }

  void finish_command(const CommandRecord& done) override {
    const std::string status(to_string(done.status));
    std::string b1, b2;
    // The output's exact bytes: as text when it is clean text, else sanitised text for
    // readers of `output` plus the bytes in output_raw (bytea, sent in binary).
    const bool raw = !is_clean_text(done.output);
    const std::string& output = raw ? (b1 = sanitize_text(done.output)) : done.output;
    std::optional<std::string> error;
    if (done.error) error = clean(*done.error, b2);
    std::string finished = now_rfc3339();
    if (done.finished_at)
      if (auto n = normalize_time(*done.finished_at)) finished = *n;
    const std::string id = std::to_string(done.id);
    const std::string exit_code = done.exit_code ? std::to_string(*done.exit_code) : std::string();
    char dur[40];
    std::snprintf(dur, sizeof dur, "%.17g", done.duration);
    const std::string duration = dur;
    const std::string truncated = done.truncated ? "t" : "f";
    with_conn([&](Connection& c) {
      exec(c, S_FINISH_COMMAND,
           {Param::text(id), Param::text(status), done.exit_code ? Param::text(exit_code) : Param::null(),
            Param::text(output), error ? Param::text(*error) : Param::null(), Param::text(duration),
            Param::text(truncated), Param::text(finished), raw ? Param::binary(done.output) : Param::null()});
      return 0;
    });
  }

  int interrupt_running(const std::string& server_id) override {
    return with_conn([&](Connection& c) {
      return interrupt(c, server_id, "the server stopped before the command finished");
    });
  }

  int interrupt_orphans(const std::vector<std::string>& dead_server_ids) override {
    if (dead_server_ids.empty()) return 0;
    const std::string now = now_rfc3339();
    const std::string why = "the server process running the command ended";
    return with_conn([&](Connection& c) {
      simple(c, "BEGIN");
      int n = 0;
      for (const auto& id : dead_server_ids) {
        std::string b;
        const std::string& sid = clean(id, b);
        n += affected(exec(c, S_INTERRUPT_ORPHAN, {Param::text(sid), Param::text(now), Param::text(why)}));
        exec(c, S_DELETE_LEASE, {Param::text(sid)});
      }
      simple(c, "COMMIT");
      return n;
    });
  }

  bool heartbeat(const std::string& server_id, const std::string& started_at, double lease_s) override {
    std::string b1, b2;
    const std::string& sid = clean(server_id, b1);
    const std::string& started = clean(started_at, b2);
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.3f", lease_s == lease_s ? lease_s : 0.0);
    const std::string lease = buf;
    return with_conn([&](Connection& c) {
      if (affected(exec(c, S_RENEW_LEASE, {Param::text(sid), Param::text(lease)})) > 0) return true;
      exec(c, S_INSERT_LEASE, {Param::text(sid), Param::text(lease), Param::text(started)});
      return false;
    });
  }

  void release_lease(const std::string& server_id) override {
    std::string b;
    const std::string& sid = clean(server_id, b);
    with_conn([&](Connection& c) {
      exec(c, S_DELETE_LEASE, {Param::text(sid)});
      return 0;
    });
  }

  std::vector<ReapedReplica> reap_expired_replicas(const std::string& self_id) override {
    std::string b;
    const std::string& self = clean(self_id, b);
    const std::string why =
        "the server running the command stopped renewing its lease (it ended or lost the database)";
    return with_conn([&](Connection& c) {
      Result r = exec(c, S_REAP, {Param::text(self), Param::text(why)});
      std::vector<ReapedReplica> out;
      for (int i = 0; i < PQntuples(r.get()); ++i)
        out.push_back({std::string(view(r, i, 0)), std::string(view(r, i, 1)),
                       std::atoi(PQgetvalue(r.get(), i, 2))});
      return out;
    });
  }

  std::vector<ReplicaLeaseRow> replicas() override {
    return with_conn([&](Connection& c) {
      Result r = exec(c, S_LIST_LEASES, {});
      std::vector<ReplicaLeaseRow> out;
      for (int i = 0; i < PQntuples(r.get()); ++i)
        out.push_back({std::string(view(r, i, 0)), std::string(view(r, i, 1)),
                       std::string(view(r, i, 2)), std::string(view(r, i, 3))});
      return out;
    });
  }

  std::vector<std::string> running_server_ids() override {
    return with_conn([&](Connection& c) {
      Result r = exec(c, S_RUNNING_SERVERS, {});
      std::vector<std::string> out;
      for (int i = 0; i < PQntuples(r.get()); ++i) out.emplace_back(view(r, i, 0));
      return out;
    });
  }

  std::vector<CommandRecord> list_commands(const CommandFilter& f) override {
    if (f.limit <= 0) return {};
    std::string b1, since;
    unsigned mask = 0;
    std::vector<Param> params;
    std::string alias, status, before, limit = std::to_string(f.limit);
    if (f.alias) {
      mask |= 1u;
      alias = clean(*f.alias, b1);
    }
    if (f.status) {
      mask |= 2u;
      status = to_string(*f.status);
    }
    if (f.since) {
      auto n = normalize_time(*f.since);
      if (!n) throw StoreError("invalid 'since' time");
      since = *n;
      mask |= 4u;
    }
    if (f.before_id) {
      mask |= 8u;
      before = std::to_string(*f.before_id);
    }
    if (f.alias) params.push_back(Param::text(alias));
    if (f.status) params.push_back(Param::text(status));
    if (f.since) params.push_back(Param::text(since));
    if (f.before_id) params.push_back(Param::text(before));
    params.push_back(Param::text(limit));
    return with_conn([&](Connection& c) {
      const std::string name = "pwl" + std::to_string(mask);
      if (!(c.prepared_list & (1u << mask))) {
        prepare(c, name.c_str(), list_commands_sql(mask).c_str());
        c.prepared_list |= 1u << mask;
      }
      Result r = run_prepared(c, name.c_str(), params);
      std::vector<CommandRecord> out;
      const int n = PQntuples(r.get());
      out.reserve(static_cast<std::size_t>(n));
      for (int i = 0; i < n; ++i) out.push_back(read_command(r, i));
      return out;
    });
  }

  std::optional<CommandRecord> get_command(std::int64_t id) override {
    const std::string sid = std::to_string(id);
    return with_conn([&](Connection& c) -> std::optional<CommandRecord> {
      Result r = exec(c, S_GET_COMMAND, {Param::text(sid)});
      if (PQntuples(r.get()) == 0) return std::nullopt;
      return read_command(r, 0);
    });
  }

 private:
  // ---- pool ----
  struct Lease {
    PostgresStore& s;
    std::unique_ptr<Connection> c;
    bool reused = false;
    ~Lease() {
      if (c) s.release(std::move(c));
    }
  };

  template <class F>
  auto with_conn(F&& f) -> decltype(f(std::declval<Connection&>())) {
    for (int attempt = 0;; ++attempt) {
      Lease l{*this, nullptr};
      l.c = acquire(l.reused);
      try {
        return f(*l.c);
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
    PQsetNoticeProcessor(c->conn, [](void*, const char*) {}, nullptr);
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
    bool conn_gone = c.broken() || !r ||
                     (state && (std::strncmp(state, "08", 2) == 0 || std::strncmp(state, "57P0", 4) == 0));
    if (conn_gone)  // with_conn drops this connection (no PQreset: a fresh one replaces it)
      throw ConnectionLost("postgresql: " + what + ": connection lost: " + msg);
    throw StoreError("postgresql: " + what + ": " + msg);
  }

  void prepare(Connection& c, const char* name, const char* sql) {
    Result r(PQprepare(c.conn, name, sql, 0, nullptr));
    if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) fail(c, r.get(), "prepare");
  }

  Result run_prepared(Connection& c, const char* name, const std::vector<Param>& params) {
    std::array<const char*, 16> values{};
    std::array<int, 16> lengths{}, formats{};
    const std::size_t n = params.size();
    for (std::size_t i = 0; i < n; ++i) {
      values[i] = params[i].data;
      lengths[i] = params[i].length;
      formats[i] = params[i].format;
    }
    Result r(PQexecPrepared(c.conn, name, static_cast<int>(n), values.data(), lengths.data(),
                            formats.data(), 0));
    auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail(c, r.get(), "statement");
    return r;
  }

  Result exec(Connection& c, StmtId id, const std::vector<Param>& params) {
    static_assert(S_COUNT <= 32, "Connection::prepared has one bit per statement");
    static const std::array<std::string, S_COUNT> NAMES = [] {
      std::array<std::string, S_COUNT> n;
      for (std::size_t i = 0; i < n.size(); ++i) n[i] = "pw" + std::to_string(i);
      return n;
    }();
    const auto i = static_cast<std::size_t>(id);
    if (!(c.prepared & (1u << i))) {
      prepare(c, NAMES[i].c_str(), SQL[i]);
      c.prepared |= 1u << i;
    }
    return run_prepared(c, NAMES[i].c_str(), params);
  }

  void simple(Connection& c, const char* sql) {
    Result r(PQexec(c.conn, sql));
    auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail(c, r.get(), "statement");
  }

  static int affected(const Result& r) { return std::atoi(PQcmdTuples(r.get())); }

  static std::string_view view(const Result& r, int row, int col) {
    return {PQgetvalue(r.get(), row, col), static_cast<std::size_t>(PQgetlength(r.get(), row, col))};
  }
  static bool is_null(const Result& r, int row, int col) { return PQgetisnull(r.get(), row, col) != 0; }

  PodRecord read_pod(Connection& c, const Result& r, int i, Labels labels) const {
    PodRecord p;
    p.alias = view(r, i, 0);
    p.url_redacted = view(r, i, 1);
    if (const std::string* url = c.urls.get(box_, p.alias, view(r, i, 2), true)) p.url = SecretString(*url);
    else p.url_error = URL_UNREADABLE;
    p.provider = view(r, i, 3);
    p.labels = std::move(labels);
    p.created_at = view(r, i, 5);
    p.updated_at = view(r, i, 6);
    return p;
  }

  static CommandRecord read_command(const Result& r, int i) {
    CommandRecord c;
    c.id = std::strtoll(PQgetvalue(r.get(), i, 0), nullptr, 10);
    c.alias = view(r, i, 1);
    c.command = view(r, i, 2);
    c.status = command_status_from_stored(view(r, i, 3));
    if (!is_null(r, i, 4)) c.exit_code = std::atoi(PQgetvalue(r.get(), i, 4));
    if (is_null(r, i, 13)) {
      c.output = view(r, i, 5);
    } else {  // output_raw, the exact bytes, as bytea text "\x…"
      const std::string_view raw = view(r, i, 13);
      if (raw.size() < 2 || raw[0] != '\\' || raw[1] != 'x') throw StoreError("corrupt output_raw value");
      c.output = hex_decode(raw.substr(2));
    }
    if (!is_null(r, i, 6)) c.error = std::string(view(r, i, 6));
    c.duration = std::strtod(PQgetvalue(r.get(), i, 7), nullptr);
    c.truncated = PQgetvalue(r.get(), i, 8)[0] == 't';
    c.pod_label = view(r, i, 9);
    c.started_at = view(r, i, 10);
    if (!is_null(r, i, 11)) c.finished_at = std::string(view(r, i, 11));
    c.server_id = view(r, i, 12);
    return c;
  }

  int interrupt(Connection& c, const std::string& server_id, const std::string& why) {
    std::string b;
    const std::string& sid = clean(server_id, b);
    const std::string now = now_rfc3339();
    Result r = exec(c, S_INTERRUPT_SERVER, {Param::text(sid), Param::text(now), Param::text(why)});
    return affected(r);
  }

  // Runs a query with binary results (bytea as raw bytes); throws on failure.
  Result query_binary(Connection& c, const char* sql, const std::vector<Param>& params) {
    std::array<const char*, 4> values{};
    std::array<int, 4> lengths{}, formats{};
    for (std::size_t i = 0; i < params.size() && i < values.size(); ++i) {
      values[i] = params[i].data;
      lengths[i] = params[i].length;
      formats[i] = params[i].format;
    }
    Result r(PQexecParams(c.conn, sql, static_cast<int>(params.size()), nullptr, values.data(),
                          lengths.data(), formats.data(), 1));
    auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail(c, r.get(), "key check");
    return r;
  }

  // In the migration transaction (under its advisory lock): the database's key check opens
  // with our key, or is created. A database from before the key check (pods but no check)
  // must have at least one pod URL our key opens, so the check is never made with a wrong key.
  void check_key(Connection& c) {
    const std::string name = KEY_CHECK_NAME;
    Result k = query_binary(c, "SELECT value FROM meta WHERE name = $1::text", {Param::text(name)});
    if (PQntuples(k.get()) > 0) {
      if (!box_.opens_key_check(view(k, 0, 0))) throw StoreKeyMismatchError(box_.mismatch_message());
      return;
    }
    Result pods = query_binary(c, "SELECT url_secret, alias FROM pods", {});
    const int n = PQntuples(pods.get());
    bool opened = n == 0;
    for (int i = 0; i < n && !opened; ++i)
      opened = box_.open(view(pods, i, 0), view(pods, i, 1)).has_value();
    if (!opened) throw StoreKeyMismatchError(box_.mismatch_message());
    const std::string check = box_.seal_key_check();
    query_binary(c, "INSERT INTO meta (name, value) VALUES ($1::text, $2::bytea)",
                 {Param::text(name), Param::binary(check)});
  }

  void migrate(Connection& c) {
    try {
      simple(c, "BEGIN");
      const std::string lock = "SELECT pg_advisory_xact_lock(" + std::to_string(MIGRATION_LOCK_KEY) + ")";
      simple(c, lock.c_str());
      simple(c, POSTGRES_MIGRATIONS_TABLE);
      Result r(PQexec(c.conn, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
      if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK) fail(c, r.get(), "migrations");
      const int current = std::atoi(PQgetvalue(r.get(), 0, 0));
      for (const auto& m : MIGRATIONS) {
        if (m.version <= current) continue;
        simple(c, m.postgres_sql);
        const std::string v = std::to_string(m.version), now = now_rfc3339();
        const char* vals[] = {v.c_str(), now.c_str()};
        Result ins(PQexecParams(c.conn,
                                "INSERT INTO schema_migrations (version, applied_at) VALUES "
                                "($1::integer, $2::text)",
                                2, nullptr, vals, nullptr, nullptr, 0));
        if (!ins || PQresultStatus(ins.get()) != PGRES_COMMAND_OK) fail(c, ins.get(), "migrations");
      }
      check_key(c);
      simple(c, "COMMIT");
    } catch (...) {
      if (PQtransactionStatus(c.conn) != PQTRANS_IDLE) Result r(PQexec(c.conn, "ROLLBACK"));
      throw;
    }
  }

  const std::string uri_;
  const std::string password_;
  const SecretBox box_;
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

int pw_pg_conninfo_parse(const char* uri, pw_pg_option_fn emit, void* ctx, char* err,
                         std::size_t errlen) {
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

pw::server::Store* pw_store_open_postgres(const char* uri, const char* password, char* err,
                                          std::size_t errlen, int* kind) {
  if (kind) *kind = PW_PG_ERR_STORE;
  try {
    return pw::server::detail::open_postgres_store(uri ? uri : "", password ? password : "")
        .release();
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

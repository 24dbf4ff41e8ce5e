#include "embedded_server/store/store_core.hpp"

#include <podwrangler/redact.hpp>

#include <algorithm>
#include <array>

namespace pw::server::detail {

namespace {

#define POD_COLUMNS "alias, url_redacted, url_secret, provider, labels, created_at, updated_at"
#define COMMAND_COLUMNS                                                                    \
  "id, alias, command, status, exit_code, output, error, duration, truncated, pod_label, " \
  "started_at, finished_at, server_id, output_raw"

// The core's statements, in CoreStatement order.
constexpr std::array<const char*, LIST_COMMANDS> CORE_SQL{
    "SELECT 1",
    "SELECT version FROM pods_version WHERE id = 1",
    "SELECT " POD_COLUMNS " FROM pods ORDER BY alias",
    "SELECT " POD_COLUMNS " FROM pods WHERE alias = $1::text",
    "INSERT INTO pods (" POD_COLUMNS
    ") VALUES ($1::text, $2::text, $3::bytea, $4::text, $5::text, "
    "$6::text, $6::text)",
    "UPDATE pods SET url_redacted = COALESCE($2::text, url_redacted), url_secret = "
    "COALESCE($3::bytea, url_secret), provider = COALESCE($4::text, provider), labels = "
    "COALESCE($5::text, labels), updated_at = $6::text WHERE alias = $1::text "
    "RETURNING " POD_COLUMNS,
    "DELETE FROM pods WHERE alias = $1::text",
    "UPDATE commands SET status = $2::text, exit_code = $3::integer, output = $4::text, error = "
    "$5::text, duration = $6::float8, truncated = $7::boolean, finished_at = $8::text, "
    "output_raw = $9::bytea WHERE id = $1::bigint",
    "UPDATE commands SET status = 'interrupted', finished_at = $2::text, error = COALESCE(error, "
    "$3::text) WHERE status = 'running' AND server_id = $1::text",
    // A dead server's rows end at its last heartbeat when it held a lease, else now.
    "UPDATE commands SET status = 'interrupted', finished_at = COALESCE((SELECT "
    "GREATEST(r.last_seen, commands.started_at) FROM replicas r WHERE r.server_id = $1::text), "
    "$2::text), error = COALESCE(error, $3::text) WHERE status = 'running' AND server_id = "
    "$1::text",
    "SELECT DISTINCT server_id FROM commands WHERE status = 'running' ORDER BY server_id",
    "DELETE FROM replicas WHERE server_id = $1::text",
    "SELECT server_id, started_at, last_seen, expires_at FROM replicas ORDER BY server_id",
    "SELECT " COMMAND_COLUMNS " FROM commands WHERE id = $1::bigint",
    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1::integer, $2::text)",
    "SELECT value FROM meta WHERE name = $1::text",
    "INSERT INTO meta (name, value) VALUES ($1::text, $2::bytea)",
    "SELECT url_secret, alias FROM pods",
};

// Why rows end `interrupted` (their `error`).
constexpr const char* STOPPED_REASON = "the server stopped before the command finished";
constexpr const char* ORPHAN_REASON = "the server process running the command ended";
constexpr const char* LEASE_REASON =
    "the server running the command stopped renewing its lease (it ended or lost the database)";

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_word(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_'; }

// The SQL text of a pod's labels, or NULL (unchanged) for a patch without labels.
std::optional<std::string> labels_json(const std::optional<Labels>& labels) {
  if (!labels) return std::nullopt;
  return labels_to_json(*labels);
}

}  // namespace

std::string render(std::string_view sql, Placeholders style) {
  if (style == Placeholders::postgres) return std::string(sql);
  constexpr std::string_view GREATEST = "GREATEST(";
  std::string out;
  out.reserve(sql.size());
  std::size_t i = 0;
  while (i < sql.size()) {
    if (sql[i] == '$' && i + 1 < sql.size() && is_digit(sql[i + 1])) {
      out += '?';
      ++i;
      while (i < sql.size() && is_digit(sql[i])) out += sql[i++];
      if (sql.substr(i, 2) == "::") {  // the type: SQLite binds typed values instead
        i += 2;
        while (i < sql.size() && is_word(sql[i])) ++i;
      }
    } else if (sql.substr(i, GREATEST.size()) == GREATEST) {
      out += "max(";
      i += GREATEST.size();
    } else {
      out += sql[i++];
    }
  }
  return out;
}

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

std::vector<std::string> statement_table(Placeholders style, std::initializer_list<const char*> own) {
  std::vector<std::string> table;
  table.reserve(OWN_STATEMENTS + own.size());
  for (const char* sql : CORE_SQL) table.push_back(render(sql, style));
  for (unsigned mask = 0; mask < 16; ++mask) table.push_back(render(list_commands_sql(mask), style));
  for (const char* sql : CAPSULE_SQL) table.push_back(render(sql, style));
  for (unsigned mask = 0; mask < 32; ++mask) table.push_back(render(list_capsules_sql(mask), style));
  for (const char* sql : own) table.push_back(render(sql, style));
  return table;
}

std::string StoredBytes::bytes() const {
  if (!hex) return std::string(data);
  if (data.size() < 2 || data[0] != '\\' || data[1] != 'x') throw StoreError("corrupt bytea value in the database");
  return hex_decode(data.substr(2));
}

// ---- records ----

CommandRecord read_command(const Row& row) {
  CommandRecord r;
  r.id = row.integer(0);
  r.alias = row.text(1);
  r.command = row.text(2);
  r.status = command_status_from_stored(row.text(3));
  if (!row.is_null(4)) r.exit_code = static_cast<int>(row.integer(4));
  // output_raw, when set, holds the exact bytes (`output` their sanitised text).
  r.output = row.is_null(13) ? row.str(5) : row.blob(13).bytes();
  if (!row.is_null(6)) r.error = row.str(6);
  r.duration = row.real(7);
  r.truncated = row.boolean(8);
  r.pod_label = row.text(9);
  r.started_at = row.text(10);
  if (!row.is_null(11)) r.finished_at = row.str(11);
  r.server_id = row.text(12);
  return r;
}

ReplicaLeaseRow read_lease(const Row& row) { return {row.str(0), row.str(1), row.str(2), row.str(3)}; }

PodRecord StoreCore::read_pod(Session& s, const Row& row) const {
  PodRecord r;
  r.alias = row.text(0);
  r.url_redacted = row.text(1);
  const StoredBytes secret = row.blob(2);
  if (const std::string* url = s.caches().urls.get(box_, r.alias, secret.data, secret.hex))
    r.url = SecretString(*url);
  else
    r.url_error = URL_UNREADABLE;
  r.provider = row.text(3);
  r.labels = labels_from_json(row.text(4));
  r.created_at = row.text(5);
  r.updated_at = row.text(6);
  return r;
}

// ---- the Store methods ----

bool StoreCore::ping() noexcept {
  try {
    return with([](Session& s) {
      bool row = false;
      s.run(PING, {}, [&](const Row&) { row = true; });
      return row;
    });
  } catch (...) {
    return false;
  }
}

namespace {

// The pods_version counter as text; empty when unknown (never trusted by the cache).
std::string read_pods_version(Session& s) {
  std::string version;
  s.run(PODS_VERSION, {}, [&](const Row& r) { version = std::to_string(r.integer(0)); });
  return version;
}

}  // namespace

std::vector<PodRecord> StoreCore::list_pods(const Labels& selector_in) {
  Labels buf;
  const Labels& selector = clean(selector_in, buf);
  return with([&](Session& s) {
    // Version first, then rows: a change committed in between only costs a re-read later.
    const std::string version = read_pods_version(s);
    const auto& all = s.caches().pods.get(version, [&] {
      std::vector<PodRecord> pods;
      s.run(LIST_PODS, {}, [&](const Row& r) { pods.push_back(read_pod(s, r)); });
      return pods;
    });
    return select_pods(all, selector);
  });
}

std::string StoreCore::pods_version() {
  return with([](Session& s) { return read_pods_version(s); });
}

std::optional<PodRecord> StoreCore::get_pod(const std::string& alias) {
  std::string b;
  const std::string& a = clean(alias, b);
  return with([&](Session& s) {
    std::optional<PodRecord> pod;
    s.run(GET_POD, {Value::text(a)}, [&](const Row& r) { pod = read_pod(s, r); });
    return pod;
  });
}

PodRecord StoreCore::create_pod(const PodRecord& pod) {
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
  with([&](Session& s) {
    try {
      s.run(INSERT_POD, {Value::text(r.alias), Value::text(r.url_redacted), Value::blob(sealed),
                         Value::text(r.provider), Value::text(labels), Value::text(r.created_at)});
    } catch (const StoreConflictError&) {
      throw StoreConflictError("pod '" + r.alias + "' already exists");
    }
  });
  return r;
}

std::optional<PodRecord> StoreCore::update_pod(const std::string& alias, const PodPatch& patch) {
  std::string b1, b2, b3;
  const std::string& a = clean(alias, b1);
  std::optional<std::string> redacted, sealed, provider;
  if (patch.url) {
    sealed = box_.seal(patch.url->reveal(), a);
    redacted = clean(patch.url_redacted ? *patch.url_redacted : redact_url(patch.url->reveal()), b2);
  } else if (patch.url_redacted) {
    redacted = clean(*patch.url_redacted, b2);
  }
  if (patch.provider) provider = clean(*patch.provider, b3);
  const std::optional<std::string> labels = labels_json(patch.labels);
  const std::string now = now_rfc3339();
  return with([&](Session& s) {
    std::optional<PodRecord> pod;
    s.run(UPDATE_POD,
          {Value::text(a), Value::text(redacted), Value::blob(sealed), Value::text(provider), Value::text(labels),
           Value::text(now)},
          [&](const Row& r) { pod = read_pod(s, r); });
    return pod;
  });
}

bool StoreCore::delete_pod(const std::string& alias) {
  std::string b;
  const std::string& a = clean(alias, b);
  return with([&](Session& s) { return s.run(DELETE_POD, {Value::text(a)}) > 0; });
}

std::vector<std::int64_t> StoreCore::begin_commands(const std::vector<CommandStart>& starts,
                                                    const std::string& server_id) {
  if (starts.empty()) return {};
  std::vector<CommandStart> clean_starts;
  clean_starts.reserve(starts.size());
  std::string b1, b2, b3, bs;
  for (const auto& st : starts)
    clean_starts.push_back({clean(st.alias, b1), clean(st.command, b2), clean(st.pod_label, b3), st.started_at});
  const std::string& sid = clean(server_id, bs);
  const std::string now = now_rfc3339();
  return with([&](Session& s) { return insert_commands(s, clean_starts, sid, now); });
}

void StoreCore::finish_command(const CommandRecord& done) {
  std::string b1, b2;
  const std::string status(to_string(done.status));
  // The output's exact bytes: as text when it is clean text, else sanitised text for
  // readers of `output` plus the bytes in output_raw.
  const bool raw = !is_clean_text(done.output);
  const std::string& output = raw ? (b1 = sanitize_text(done.output)) : done.output;
  std::optional<std::string> error;
  if (done.error) error = clean(*done.error, b2);
  std::string finished = now_rfc3339();
  if (done.finished_at)
    if (auto n = normalize_time(*done.finished_at)) finished = *n;
  with([&](Session& s) {
    s.run(FINISH_COMMAND, {Value::integer(done.id), Value::text(status),
                           done.exit_code ? Value::integer(*done.exit_code) : Value::null(), Value::text(output),
                           Value::text(error), Value::real(done.duration), Value::boolean(done.truncated),
                           Value::text(finished), raw ? Value::blob(done.output) : Value::null()});
  });
}

int StoreCore::interrupt_running(const std::string& server_id) {
  std::string b;
  const std::string& sid = clean(server_id, b);
  const std::string now = now_rfc3339();
  const std::string why = STOPPED_REASON;
  return with([&](Session& s) {
    return static_cast<int>(s.run(INTERRUPT_SERVER, {Value::text(sid), Value::text(now), Value::text(why)}));
  });
}

int StoreCore::interrupt_orphans(const std::vector<std::string>& dead_server_ids) {
  if (dead_server_ids.empty()) return 0;
  const std::string now = now_rfc3339();
  const std::string why = ORPHAN_REASON;
  return with([&](Session& s) {
    Transaction tx(s);
    int n = 0;
    for (const auto& id : dead_server_ids) {
      std::string b;
      const std::string& sid = clean(id, b);
      n += static_cast<int>(s.run(INTERRUPT_ORPHAN, {Value::text(sid), Value::text(now), Value::text(why)}));
      s.run(DELETE_LEASE, {Value::text(sid)});
    }
    tx.commit();
    return n;
  });
}

std::vector<std::string> StoreCore::running_server_ids() {
  return with([](Session& s) {
    std::vector<std::string> ids;
    s.run(RUNNING_SERVERS, {}, [&](const Row& r) { ids.push_back(r.str(0)); });
    return ids;
  });
}

std::vector<CommandRecord> StoreCore::list_commands(const CommandFilter& f) {
  if (f.limit <= 0) return {};
  // The WHERE clause has one condition per filter given, in list_commands_sql's order.
  std::string b1, status, since;
  unsigned mask = 0;
  Params params;
  if (f.alias) {
    mask |= 1u;
    params.push_back(Value::text(clean(*f.alias, b1)));
  }
  if (f.status) {
    mask |= 2u;
    status = to_string(*f.status);
    params.push_back(Value::text(status));
  }
  if (f.since) {
    auto n = normalize_time(*f.since);
    if (!n) throw StoreError("invalid 'since' time");
    since = *n;
    mask |= 4u;
    params.push_back(Value::text(since));
  }
  if (f.before_id) {
    mask |= 8u;
    params.push_back(Value::integer(*f.before_id));
  }
  params.push_back(Value::integer(f.limit));
  return with([&](Session& s) {
    std::vector<CommandRecord> out;
    out.reserve(static_cast<std::size_t>(std::min(f.limit, 1000)));
    s.run(LIST_COMMANDS + static_cast<int>(mask), params, [&](const Row& r) { out.push_back(read_command(r)); });
    return out;
  });
}

std::optional<CommandRecord> StoreCore::get_command(std::int64_t id) {
  return with([&](Session& s) {
    std::optional<CommandRecord> command;
    s.run(GET_COMMAND, {Value::integer(id)}, [&](const Row& r) { command = read_command(r); });
    return command;
  });
}

bool StoreCore::heartbeat(const std::string& server_id, const std::string& started_at, double lease_s) {
  std::string b1, b2;
  const std::string& sid = clean(server_id, b1);
  const std::string& started = clean(started_at, b2);
  const std::vector<std::string> times = lease_times(lease_s);
  return with([&](Session& s) {
    Params params{Value::text(sid)};
    for (const auto& t : times) params.push_back(Value::text(t));
    if (s.run(RENEW_LEASE, params) > 0) return true;
    params.push_back(Value::text(started));
    s.run(INSERT_LEASE, params);
    return false;
  });
}

std::vector<ReapedReplica> StoreCore::reap_expired_replicas(const std::string& self_id) {
  std::string b;
  const std::string& self = clean(self_id, b);
  const std::string why = LEASE_REASON;
  return with([&](Session& s) { return reap(s, self, why); });
}

void StoreCore::release_lease(const std::string& server_id) {
  std::string b;
  const std::string& sid = clean(server_id, b);
  with([&](Session& s) { s.run(DELETE_LEASE, {Value::text(sid)}); });
}

std::vector<ReplicaLeaseRow> StoreCore::replicas() {
  return with([](Session& s) {
    std::vector<ReplicaLeaseRow> rows;
    s.run(LIST_LEASES, {}, [&](const Row& r) { rows.push_back(read_lease(r)); });
    return rows;
  });
}

// ---- opening ----

void StoreCore::migrate(const char* Migration::*script) {
  with([&](Session& s) { migrate_on(s, script); });
}

void StoreCore::migrate_on(Session& s, const char* Migration::*script) {
  Transaction tx(s);
  s.lock_migrations();
  s.script(MIGRATIONS_TABLE);
  std::int64_t current = 0;
  s.run(MIGRATION_VERSION, {}, [&](const Row& r) { current = r.integer(0); });
  for (const auto& m : MIGRATIONS) {
    if (m.version <= current) continue;
    s.script(m.*script);
    const std::string now = now_rfc3339();
    s.run(MIGRATION_RECORD, {Value::integer(m.version), Value::text(now)});
  }
  check_key(s);
  tx.commit();
}

// In the migration transaction: the database's key check opens with our key, or is
// created. A database from before the key check (pods but no check) must have at least one
// pod URL our key opens, so that the check is never made with a wrong key.
void StoreCore::check_key(Session& s) {
  const std::string name = KEY_CHECK_NAME;
  std::optional<bool> stored;
  s.run(KEY_CHECK_READ, {Value::text(name)}, [&](const Row& r) { stored = box_.opens_key_check(r.blob(0).bytes()); });
  if (stored) {
    if (!*stored) throw StoreKeyMismatchError(box_.mismatch_message());
    return;
  }
  bool any = false, opened = false;
  s.run(POD_SECRETS, {}, [&](const Row& r) {
    any = true;
    if (!opened) opened = box_.open(r.blob(0).bytes(), r.text(1)).has_value();
  });
  if (any && !opened) throw StoreKeyMismatchError(box_.mismatch_message());
  const std::string check = box_.seal_key_check();
  s.run(KEY_CHECK_WRITE, {Value::text(name), Value::blob(check)});
}

}  // namespace pw::server::detail

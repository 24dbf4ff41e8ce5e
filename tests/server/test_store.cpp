// The Store suite: every behaviour case runs, through TEST_CASE_TEMPLATE, on SQLite (a temp
// file) and on a real PostgreSQL 15 (one throwaway cluster for the binary, a fresh database
// per case); backend-specific cases (URL forms, key file, PG restart, racing migrations)
// follow.
#include "embedded_server/replicas.hpp"
#include "embedded_server/store/codec.hpp"
#include "embedded_server/store/migrations.hpp"
#include "embedded_server/store/secret_box.hpp"
#include "embedded_server/store/store.hpp"
#include "embedded_server/store/store_core.hpp"

#include <podwrangler/errors.hpp>
#include <podwrangler/redact.hpp>

#include <doctest/doctest.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixtures.hpp"
#include "postgres.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

using namespace pw::server;
using pw::testing::PostgresCluster;
using pw::testing::TempDir;

namespace pw::server {
// The rows' statuses are checked against the names they are stored under.
bool operator==(CommandStatus s, std::string_view name) { return to_string(s) == name; }
}  // namespace pw::server

namespace {

constexpr const char* TEST_KEY = "store-suite-secret-key";

// Process-wide test environment, set before any test runs: a private XDG_DATA_HOME (the
// real data dir is never touched) and a fixed PODWRANGLER_SECRET_KEY.
struct TestEnv {
  TempDir xdg;
  TestEnv() {
    ::setenv("XDG_DATA_HOME", xdg.path().c_str(), 1);
    ::setenv("PODWRANGLER_SECRET_KEY", TEST_KEY, 1);
  }
};
const TestEnv& test_env() {
  static TestEnv env;
  return env;
}
[[maybe_unused]] const TestEnv& g_env = test_env();

PostgresCluster& cluster() {
  static PostgresCluster c;  // started on first use, stopped at exit
  return c;
}

// Sets an environment variable for a scope.
struct ScopedEnv {
  std::string name;
  std::optional<std::string> old;
  ScopedEnv(std::string n, const char* value) : name(std::move(n)) {
    if (const char* o = std::getenv(name.c_str())) old = o;
    if (value)
      ::setenv(name.c_str(), value, 1);
    else
      ::unsetenv(name.c_str());
  }
  ~ScopedEnv() {
    if (old)
      ::setenv(name.c_str(), old->c_str(), 1);
    else
      ::unsetenv(name.c_str());
  }
};

// ---- the two backends, with the same face ----

struct SqliteDb {
  static constexpr const char* kind = "sqlite";
  TempDir dir;
  std::string path = dir.file("pods.db");
  std::string url = "sqlite:///" + path;  // sqlite:////tmp/… (absolute)

  // Rows one a line, columns joined by '|', NULL as "" (psql -At's format).
  std::string query(const std::string& sql) const {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
    std::string out;
    bool first = true;
    while (sqlite3_step(st) == SQLITE_ROW) {
      if (!first) out += '\n';
      first = false;
      for (int i = 0; i < sqlite3_column_count(st); ++i) {
        if (i) out += '|';
        const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(st, i));
        if (t) out.append(t, static_cast<std::size_t>(sqlite3_column_bytes(st, i)));
      }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }
  // Everything the database holds about pods, as bytes: the file and its WAL.
  std::string raw_pods() const { return pw::testing::read_file(path) + pw::testing::read_file(path + "-wal"); }
  // Runs SQL that changes the database (as another program would).
  void exec(const std::string& sql) const {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    CAPTURE(std::string(err ? err : ""));
    sqlite3_free(err);
    sqlite3_close(db);
    REQUIRE(rc == SQLITE_OK);
  }
};

struct PostgresDb {
  static constexpr const char* kind = "postgresql";
  std::string name = cluster().create_database();
  std::string url = cluster().url(name);

  std::string query(const std::string& sql) const { return cluster().psql(name, sql); }
  // Every column of every pod row as PostgreSQL renders it as text (bytea as hex), plus
  // the bytea decoded as escape text.
  std::string raw_pods() const {
    return query("SELECT t::text FROM pods t") + "\n" + query("SELECT encode(url_secret, 'escape') FROM pods");
  }
  void exec(const std::string& sql) const { (void)query(sql); }
};

#define BOTH_BACKENDS SqliteDb, PostgresDb

PodRecord pod(const std::string& alias, Labels labels = {},
              const std::string& url = "wss://pods.example:8443/x?token=tok-") {
  PodRecord p;
  p.alias = alias;
  p.url = pw::SecretString(url == "wss://pods.example:8443/x?token=tok-" ? url + alias : url);
  p.url_redacted = pw::redact_url(p.url.reveal());
  p.provider = "plaintty";
  p.labels = std::move(labels);
  return p;
}

std::vector<std::string> aliases(const std::vector<PodRecord>& pods) {
  std::vector<std::string> out;
  for (const auto& p : pods) out.push_back(p.alias);
  return out;
}

std::vector<std::int64_t> ids(const std::vector<CommandRecord>& rows) {
  std::vector<std::int64_t> out;
  for (const auto& r : rows) out.push_back(r.id);
  return out;
}

bool is_stored_time(const std::string& t) {
  if (t.size() != 24) return false;
  const std::string shape = "dddd-dd-ddTdd:dd:dd.dddZ";
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (shape[i] == 'd' ? !std::isdigit(static_cast<unsigned char>(t[i])) : t[i] != shape[i]) return false;
  }
  return true;
}

CommandRecord finished(std::int64_t id, CommandStatus status, std::optional<int> exit_code, const std::string& output) {
  CommandRecord c;
  c.id = id;
  c.status = status;
  c.exit_code = exit_code;
  c.output = output;
  c.duration = 0.25;
  return c;
}

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace

// ================= behaviour, on both backends =================

TEST_CASE_TEMPLATE("store: kind, ping, create/get/list ordered by alias", B, BOTH_BACKENDS) {
  B db;
  auto store = open_store(db.url);
  CHECK(store->kind() == B::kind);
  CHECK(store->ping());
  CHECK(store->list_pods().empty());

  for (const char* a : {"web-2", "Web-1", "api", "web-10", "db.main"}) store->create_pod(pod(a, {{"app", "x"}}));
  auto created = store->create_pod(pod("zeta", {{"app", "web"}, {"env", "prod"}}));
  CHECK(is_stored_time(created.created_at));
  CHECK(created.created_at == created.updated_at);
  CHECK(created.url.reveal() == "wss://pods.example:8443/x?token=tok-zeta");

  // Bytewise order (uppercase before lowercase) on both backends.
  CHECK(aliases(store->list_pods()) == std::vector<std::string>{"Web-1", "api", "db.main", "web-10", "web-2", "zeta"});

  auto got = store->get_pod("zeta");
  REQUIRE(got);
  CHECK(got->alias == "zeta");
  CHECK(got->url.reveal() == "wss://pods.example:8443/x?token=tok-zeta");
  CHECK(got->url_redacted == "wss://pods.example:8443/x?token=***");
  CHECK(got->provider == "plaintty");
  CHECK(got->labels == Labels{{"app", "web"}, {"env", "prod"}});
  CHECK(got->created_at == created.created_at);
  CHECK(got->updated_at == created.updated_at);
  CHECK_FALSE(store->get_pod("nope"));
  CHECK_FALSE(store->get_pod("ZETA"));

  // list_pods returns the same records as get_pod.
  auto listed = store->list_pods();
  CHECK(listed.back().url.reveal() == got->url.reveal());
  CHECK(listed.back().labels == got->labels);
}

TEST_CASE_TEMPLATE("store: duplicate alias is a conflict", B, BOTH_BACKENDS) {
  B db;
  auto store = open_store(db.url);
  store->create_pod(pod("web-1"));
  try {
    store->create_pod(pod("web-1", {}, "ws://elsewhere/"));
    FAIL("no conflict");
  } catch (const StoreConflictError& e) {
    CHECK(std::string(e.what()).find("web-1") != std::string::npos);
  }
  CHECK(store->list_pods().size() == 1);
  CHECK(store->get_pod("web-1")->url.reveal() == "wss://pods.example:8443/x?token=tok-web-1");
  // The store stays usable after the failed insert.
  store->create_pod(pod("web-2"));
  CHECK(store->list_pods().size() == 2);
}

TEST_CASE_TEMPLATE("store: partial update", B, BOTH_BACKENDS) {
  B db;
  auto store = open_store(db.url);
  auto created = store->create_pod(pod("web-1", {{"app", "web"}}));
  sleep_ms(5);

  PodPatch labels_only;
  labels_only.labels = Labels{{"tier", "front"}};
  auto u1 = store->update_pod("web-1", labels_only);
  REQUIRE(u1);
  CHECK(u1->labels == Labels{{"tier", "front"}});
  CHECK(u1->url.reveal() == created.url.reveal());
  CHECK(u1->url_redacted == created.url_redacted);
  CHECK(u1->provider == "plaintty");
  CHECK(u1->created_at == created.created_at);
  CHECK(u1->updated_at > created.updated_at);
  CHECK(is_stored_time(u1->updated_at));

  sleep_ms(5);
  PodPatch url_and_provider;
  url_and_provider.url = pw::SecretString("local://?token=newsecret99");
  url_and_provider.provider = "local";
  auto u2 = store->update_pod("web-1", url_and_provider);
  REQUIRE(u2);
  CHECK(u2->url.reveal() == "local://?token=newsecret99");
  CHECK(u2->url_redacted == pw::redact_url("local://?token=newsecret99"));  // derived when not given
  CHECK(u2->url_redacted.find("newsecret99") == std::string::npos);
  CHECK(u2->provider == "local");
  CHECK(u2->labels == Labels{{"tier", "front"}});
  CHECK(u2->created_at == created.created_at);
  CHECK(u2->updated_at > u1->updated_at);

  auto again = store->get_pod("web-1");
  REQUIRE(again);
  CHECK(again->url.reveal() == "local://?token=newsecret99");
  CHECK(again->updated_at == u2->updated_at);

  PodPatch empty_labels;
  empty_labels.labels = Labels{};
  CHECK(store->update_pod("web-1", empty_labels)->labels.empty());

  CHECK_FALSE(store->update_pod("missing", labels_only));
  CHECK_FALSE(store->get_pod("missing"));
}

TEST_CASE_TEMPLATE("store: delete", B, BOTH_BACKENDS) {
  B db;
  auto store = open_store(db.url);
  store->create_pod(pod("a"));
  store->create_pod(pod("b"));
  CHECK(store->delete_pod("a"));
  CHECK_FALSE(store->delete_pod("a"));
  CHECK_FALSE(store->get_pod("a"));
  CHECK(aliases(store->list_pods()) == std::vector<std::string>{"b"});
  // The alias is free again.
  store->create_pod(pod("a", {}, "ws://new/"));
  CHECK(store->get_pod("a")->url.reveal() == "ws://new/");
}

TEST_CASE_TEMPLATE("store: label selector keeps pods whose labels contain every pair", B, BOTH_BACKENDS) {
  B db;
  auto store = open_store(db.url);
  store->create_pod(pod("a", {{"app", "web"}, {"env", "prod"}}));
  store->create_pod(pod("b", {{"app", "web"}}));
  store->create_pod(pod("c", {}));
  store->create_pod(pod("d", {{"app", "db"}, {"env", "prod"}}));
  using V = std::vector<std::string>;
  CHECK(aliases(store->list_pods({})) == V{"a", "b", "c", "d"});
  CHECK(aliases(store->list_pods({{"app", "web"}})) == V{"a", "b"});
  CHECK(aliases(store->list_pods({{"env", "prod"}})) == V{"a", "d"});
  CHECK(aliases(store->list_pods({{"app", "web"}, {"env", "prod"}})) == V{"a"});
  CHECK(aliases(store->list_pods({{"env", "dev"}})).empty());
  CHECK(aliases(store->list_pods({{"app", ""}})).empty());
  CHECK(aliases(store->list_pods({{"app", "web"}, {"missing", "x"}})).empty());
}

TEST_CASE_TEMPLATE("store: begin_commands records running rows", B, BOTH_BACKENDS) {
  B db;
  auto store = open_store(db.url);
  CHECK(store->begin_commands({}, "host:1:1").empty());
  auto ids1 = store->begin_commands({{"a", "echo 1", "pod a"}, {"b", "echo 2", "pod b"}, {"c", "ls", ""}}, "host:1:1");
  REQUIRE(ids1.size() == 3);
  CHECK(ids1[0] < ids1[1]);
  CHECK(ids1[1] < ids1[2]);
  auto ids2 = store->begin_commands({{"a", "uptime", "pod a"}}, "host:2:1");
  REQUIRE(ids2.size() == 1);
  CHECK(ids2[0] > ids1[2]);

  // Each id belongs to the start at its position.
  CHECK(store->get_command(ids1[0])->alias == "a");
  CHECK(store->get_command(ids1[2])->command == "ls");
  CHECK(store->get_command(ids2[0])->server_id == "host:2:1");
  std::vector<CommandStart> many;
  for (int i = 0; i < 50; ++i) many.push_back({"p" + std::to_string(i), "c" + std::to_string(i), ""});
  auto ids3 = store->begin_commands(many, "host:3:1");
  REQUIRE(ids3.size() == 50);
  for (int i = 0; i < 50; ++i) {
    auto r = store->get_command(ids3[static_cast<std::size_t>(i)]);
    REQUIRE(r);
    CHECK(r->alias == "p" + std::to_string(i));
    CHECK(r->command == "c" + std::to_string(i));
  }

  auto row = store->get_command(ids1[1]);
  REQUIRE(row);
  CHECK(row->id == ids1[1]);
  CHECK(row->alias == "b");
  CHECK(row->command == "echo 2");
  CHECK(row->pod_label == "pod b");
  CHECK(row->status == "running");
  CHECK_FALSE(row->exit_code);
  CHECK(row->output.empty());
  CHECK_FALSE(row->error);
  CHECK(row->duration == 0.0);
  CHECK_FALSE(row->truncated);
  CHECK(is_stored_time(row->started_at));
  CHECK_FALSE(row->finished_at);
  CHECK(row->server_id == "host:1:1");
  CHECK_FALSE(store->get_command(ids3.back() + 1000));
  CHECK_FALSE(store->get_command(-1));
}

TEST_CASE_TEMPLATE("store: finish_command completes a row", B, BOTH_BACKENDS) {
  B db;
  auto store = open_store(db.url);
  auto ids = store->begin_commands({{"a", "false", "A"}, {"b", "echo hi", "B"}, {"c", "x", "C"}}, "s1");

  CommandRecord fail = finished(ids[0], CommandStatus::failed, 1, "");
  fail.duration = 1.0 / 3.0;
  store->finish_command(fail);
  CommandRecord ok = finished(ids[1], CommandStatus::succeeded, 0, "hi\n");
  ok.truncated = true;
  ok.finished_at = "2026-11-25T17:00:00.5+01:00";
  store->finish_command(ok);
  CommandRecord err = finished(ids[2], CommandStatus::error, std::nullopt, "partial");
  err.error = "pod connection error: refused";
  store->finish_command(err);

  auto f = store->get_command(ids[0]);
  REQUIRE(f);
  CHECK(f->status == "failed");
  CHECK(f->exit_code == 1);
  CHECK(f->duration == 1.0 / 3.0);  // exact round trip
  CHECK_FALSE(f->truncated);
  REQUIRE(f->finished_at);
  CHECK(is_stored_time(*f->finished_at));
  CHECK(*f->finished_at >= f->started_at);
  CHECK(f->command == "false");
  CHECK(f->pod_label == "A");

  auto s = store->get_command(ids[1]);
  CHECK(s->status == "succeeded");
  CHECK(s->exit_code == 0);
  CHECK(s->output == "hi\n");
  CHECK(s->truncated);
  CHECK(s->finished_at == std::optional<std::string>("2026-11-25T16:00:00.500Z"));

  auto e = store->get_command(ids[2]);
  CHECK(e->status == "error");
  CHECK_FALSE(e->exit_code);
  CHECK(e->error == std::optional<std::string>("pod connection error: refused"));
  CHECK(e->output == "partial");

  // No other status can be written: CommandRecord::status is a CommandStatus, stored by name.
  CHECK(store->get_command(ids[0])->status == "failed");
}

TEST_CASE_TEMPLATE("store: interrupt_running touches only its own server id", B, BOTH_BACKENDS) {
  B db;
  auto store = open_store(db.url);
  auto mine = store->begin_commands({{"a", "sleep 100", ""}, {"b", "sleep 100", ""}, {"c", "true", ""}}, "me:1:1");
  auto theirs = store->begin_commands({{"a", "sleep 100", ""}}, "other:2:2");
  store->finish_command(finished(mine[2], CommandStatus::succeeded, 0, "done"));

  CHECK(store->interrupt_running("me:1:1") == 2);
  CHECK(store->interrupt_running("me:1:1") == 0);
  for (auto id : {mine[0], mine[1]}) {
    auto r = store->get_command(id);
    CHECK(r->status == "interrupted");
    CHECK(r->finished_at);
    CHECK(r->error);
  }
  auto done = store->get_command(mine[2]);
  CHECK(done->status == "succeeded");
  CHECK(done->output == "done");
  CHECK_FALSE(done->error);
  CHECK(store->get_command(theirs[0])->status == "running");
  CHECK(store->running_server_ids() == std::vector<std::string>{"other:2:2"});
}

TEST_CASE_TEMPLATE("store: running_server_ids and interrupt_orphans", B, BOTH_BACKENDS) {
  B db;
  auto store = open_store(db.url);
  CHECK(store->running_server_ids().empty());
  auto a = store->begin_commands({{"p", "x", ""}, {"q", "x", ""}}, "h:10:1");
  auto b = store->begin_commands({{"p", "y", ""}}, "h:20:1");
  auto c = store->begin_commands({{"p", "z", ""}}, "h:30:1");
  auto d = store->begin_commands({{"p", "w", ""}}, "h:40:1");
  store->finish_command(finished(d[0], CommandStatus::succeeded, 0, ""));
  CHECK(store->running_server_ids() == std::vector<std::string>{"h:10:1", "h:20:1", "h:30:1"});

  CHECK(store->interrupt_orphans({}) == 0);
  CHECK(store->interrupt_orphans({"h:10:1", "h:30:1", "h:40:1", "never:0:0"}) == 3);
  CHECK(store->running_server_ids() == std::vector<std::string>{"h:20:1"});
  CHECK(store->get_command(a[0])->status == "interrupted");
  CHECK(store->get_command(a[1])->status == "interrupted");
  CHECK(store->get_command(c[0])->status == "interrupted");
  CHECK(store->get_command(b[0])->status == "running");
  CHECK(store->get_command(d[0])->status == "succeeded");
}

TEST_CASE_TEMPLATE("store: list_commands filters and cursor pagination", B, BOTH_BACKENDS) {
  B db;
  auto store = open_store(db.url);
  std::vector<std::int64_t> all;
  for (int i = 0; i < 12; ++i) {
    auto id = store->begin_commands({{i % 3 == 0 ? "web" : "db", "cmd " + std::to_string(i), ""}}, "s")[0];
    all.push_back(id);
    if (i % 2 == 0) store->finish_command(finished(id, CommandStatus::succeeded, 0, ""));
  }
  sleep_ms(20);
  const std::string mid = now_rfc3339();
  sleep_ms(20);
  for (int i = 12; i < 25; ++i) {
    auto id = store->begin_commands({{i % 3 == 0 ? "web" : "db", "cmd " + std::to_string(i), ""}}, "s")[0];
    all.push_back(id);
    if (i % 2 == 0) store->finish_command(finished(id, CommandStatus::failed, 2, ""));
  }
  std::vector<std::int64_t> desc(all.rbegin(), all.rend());

  CommandFilter f;
  f.limit = 1000;
  CHECK(ids(store->list_commands(f)) == desc);
  f.limit = 5;
  CHECK(ids(store->list_commands(f)) == std::vector<std::int64_t>(desc.begin(), desc.begin() + 5));
  f.limit = 0;
  CHECK(store->list_commands(f).empty());

  // alias
  CommandFilter fa;
  fa.alias = "web";
  fa.limit = 100;
  auto web = store->list_commands(fa);
  CHECK(web.size() == 9);  // i = 0,3,…,24
  for (const auto& r : web) CHECK(r.alias == "web");
  CHECK(std::is_sorted(web.begin(), web.end(), [](auto& x, auto& y) { return x.id > y.id; }));

  // status
  CommandFilter fs;
  fs.status = CommandStatus::running;
  fs.limit = 100;
  auto running = store->list_commands(fs);
  CHECK(running.size() == 12);  // the odd i
  for (const auto& r : running) CHECK(r.status == "running");
  fs.status = CommandStatus::failed;
  CHECK(store->list_commands(fs).size() == 7);  // even i in 12..24
  fs.status = CommandStatus::timeout;
  CHECK(store->list_commands(fs).empty());

  // since: RFC 3339 UTC, an offset form of the same instant, and unix seconds
  CommandFilter fsince;
  fsince.limit = 100;
  fsince.since = mid;
  auto recent = store->list_commands(fsince);
  CHECK(ids(recent) == std::vector<std::int64_t>(desc.begin(), desc.begin() + 13));
  for (const auto& r : recent) CHECK(r.started_at >= mid);
  fsince.since = "2000-01-01T00:00:00Z";
  CHECK(store->list_commands(fsince).size() == 25);
  fsince.since = "9000-01-01T00:00:00+05:00";
  CHECK(store->list_commands(fsince).empty());
  fsince.since = "946684800";  // 2000-01-01, unix seconds
  CHECK(store->list_commands(fsince).size() == 25);

  // combined: alias + status + since
  CommandFilter fc;
  fc.alias = "web";
  fc.status = CommandStatus::failed;
  fc.since = mid;
  fc.limit = 100;
  auto combo = store->list_commands(fc);
  CHECK(combo.size() == 3);  // i = 12, 18, 24
  for (const auto& r : combo) {
    CHECK(r.alias == "web");
    CHECK(r.status == "failed");
    CHECK(r.exit_code == 2);
  }

  // cursor pagination: pages of 7, newest first, no gaps or duplicates
  for (bool with_alias : {false, true}) {
    CommandFilter p;
    p.limit = 7;
    if (with_alias) p.alias = "db";
    std::vector<std::int64_t> seen;
    int pages = 0;
    while (true) {
      auto page = store->list_commands(p);
      if (page.empty()) break;
      ++pages;
      CHECK(page.size() <= 7);
      for (const auto& r : page) seen.push_back(r.id);
      p.before_id = page.back().id;
      REQUIRE(pages < 10);
    }
    std::vector<std::int64_t> expect;
    for (std::size_t k = 0; k < desc.size(); ++k) {
      int i = static_cast<int>(desc.size() - 1 - k);
      if (!with_alias || i % 3 != 0) expect.push_back(desc[k]);
    }
    CHECK(seen == expect);
    CHECK(pages == static_cast<int>((expect.size() + 6) / 7));
  }
  CommandFilter fb;
  fb.before_id = desc.back();  // nothing older than the oldest
  CHECK(store->list_commands(fb).empty());
  CHECK_THROWS_AS(([&] {
                    CommandFilter bad;
                    bad.since = "yesterday";
                    store->list_commands(bad);
                  }()),
                  StoreError);
}

TEST_CASE_TEMPLATE("store: text round-trips, with defined sanitisation", B, BOTH_BACKENDS) {
  B db;
  auto store = open_store(db.url);
  const std::string fffd = "\xEF\xBF\xBD";
  const std::string unicode = "héllo wörld ✓ 日本語 🚀 \u200b\u202e";
  const std::string control = std::string("tab\tnl\ncr\rbell\x07 esc\x1b[31m del\x7f end");
  const std::string sqlish = "'; DROP TABLE pods; -- \" \\ %_ $1 ?1 :name";
  const std::string invalid =
      std::string("bad \xff\xfe byte, lone \xc3, overlong \xc0\xaf, surrogate \xed\xa0\x80, end");
  const std::string invalid_clean = "bad " + fffd + fffd + " byte, lone " + fffd + ", overlong " + fffd + fffd +
                                    ", surrogate " + fffd + fffd + fffd + ", end";
  const std::string with_nul = std::string("a\0b\0", 4);
  const std::string with_nul_clean = "a" + fffd + "b" + fffd;

  struct Case {
    std::string in, out;
  };
  const std::vector<Case> cases{{unicode, unicode},       {control, control},         {sqlish, sqlish},
                                {invalid, invalid_clean}, {with_nul, with_nul_clean}, {"", ""}};
  CHECK(detail::sanitize_text(invalid) == invalid_clean);
  CHECK(detail::sanitize_text(with_nul) == with_nul_clean);

  for (const auto& c : cases) {
    CAPTURE(c.in);
    auto id = store->begin_commands({{"pod" + c.in, "cmd " + c.in, "label " + c.in}}, "srv " + c.in)[0];
    CommandRecord done = finished(id, CommandStatus::failed, 3, "out " + c.in);
    done.error = "err " + c.in;
    store->finish_command(done);
    auto r = store->get_command(id);
    REQUIRE(r);
    CHECK(r->alias == "pod" + c.out);
    CHECK(r->command == "cmd " + c.out);
    CHECK(r->pod_label == "label " + c.out);
    CHECK(r->output == "out " + c.in);  // output bytes are kept exactly (other text is sanitised)
    CHECK(r->error == std::optional<std::string>("err " + c.out));
    CHECK(r->server_id == "srv " + c.out);
    // The filters find the row under its stored (sanitised) and given spelling.
    CommandFilter f;
    f.alias = "pod" + c.in;
    CHECK(ids(store->list_commands(f)) == std::vector<std::int64_t>{id});

    PodRecord p = pod("p-" + c.in, {{"k " + c.in, "v " + c.in}, {"quote\"back\\slash", "{}[]:,"}}, "ws://h/" + c.in);
    p.provider = "prov " + c.in;
    store->create_pod(p);
    auto got = store->get_pod("p-" + c.in);
    REQUIRE(got);
    CHECK(got->alias == "p-" + c.out);
    CHECK(got->url.reveal() == "ws://h/" + c.in);  // the URL is encrypted bytes: kept exactly
    CHECK(got->provider == "prov " + c.out);
    CHECK(got->labels == Labels{{"k " + c.out, "v " + c.out}, {"quote\"back\\slash", "{}[]:,"}});
    CHECK(aliases(store->list_pods({{"k " + c.in, "v " + c.in}})) == std::vector<std::string>{"p-" + c.out});
  }
  // Large outputs.
  std::string big(1 << 20, 'x');
  for (std::size_t i = 0; i < big.size(); i += 997) big[i] = static_cast<char>('a' + i % 26);
  auto id = store->begin_commands({{"big", "yes", ""}}, "s")[0];
  store->finish_command(finished(id, CommandStatus::succeeded, 0, big));
  CHECK(store->get_command(id)->output == big);
}

TEST_CASE_TEMPLATE("store: the token never appears in plain text in the database", B, BOTH_BACKENDS) {
  B db;
  const std::string token = "TOKEN-7f3a9c1e55d24b8a";
  {
    auto store = open_store(db.url);
    store->create_pod(pod("secret-pod", {{"app", "web"}}, "wss://pods.example/x?token=" + token + "&cols=80"));
    PodPatch patch;
    patch.url = pw::SecretString("wss://pods.example/y?token=" + token + "2");
    store->create_pod(pod("other", {}, "k8s://ns/pod?token=" + token + "3"));
    store->update_pod("other", patch);
    CHECK(store->get_pod("secret-pod")->url.reveal().find(token) != std::string::npos);
    const std::string raw = db.raw_pods();
    CHECK(raw.find("secret-pod") != std::string::npos);  // the check can see the rows
    CHECK(raw.find("token=***") != std::string::npos);
    CHECK(raw.find(token) == std::string::npos);
    CHECK(raw.find("TOKEN-7f3a") == std::string::npos);
  }
  const std::string raw = db.raw_pods();  // and after the store closed (WAL checkpointed)
  CHECK(raw.find("secret-pod") != std::string::npos);
  CHECK(raw.find(token) == std::string::npos);
  // The stored secret is versioned ciphertext: 1 + 12 + len + 16 bytes.
  const std::string url = "wss://pods.example/x?token=" + token + "&cols=80";
  CHECK(db.query("SELECT length(url_secret) FROM pods WHERE alias = 'secret-pod'") ==
        std::to_string(1 + 12 + url.size() + 16));
}

TEST_CASE_TEMPLATE("store: a pod URL moved to another row does not decrypt; listing still works", B, BOTH_BACKENDS) {
  B db;
  auto store = open_store(db.url);
  store->create_pod(pod("web-1", {{"app", "web"}}));
  store->create_pod(pod("web-2", {{"app", "web"}}));
  CHECK(store->get_pod("web-1")->url.reveal() == "wss://pods.example:8443/x?token=tok-web-1");
  // A ciphertext moved to another row does not decrypt (the alias is authenticated).
  db.exec(
      "UPDATE pods SET url_secret = (SELECT url_secret FROM pods WHERE alias = 'web-1') "
      "WHERE alias = 'web-2'");
  auto fresh = open_store(db.url);  // no decrypted-URL cache yet
  for (auto* s : {store.get(), fresh.get()}) {
    auto bad = s->get_pod("web-2");
    REQUIRE(bad);
    CHECK(bad->url.empty());
    CHECK(bad->url_error == detail::URL_UNREADABLE);
    CHECK(bad->url_redacted == "wss://pods.example:8443/x?token=***");
    // One unreadable row never fails a listing (it would fail every fan-out): it is listed
    // with its reason, the others as usual.
    auto pods = s->list_pods({{"app", "web"}});
    REQUIRE(pods.size() == 2);
    CHECK(pods[0].url.reveal() == "wss://pods.example:8443/x?token=tok-web-1");
    CHECK(pods[0].url_error.empty());
    CHECK(pods[1].url.empty());
    CHECK(pods[1].url_error == detail::URL_UNREADABLE);
  }
  // Registering the URL again repairs it.
  PodPatch patch;
  patch.url = pw::SecretString("wss://pods.example:8443/x?token=tok-web-2b");
  store->update_pod("web-2", patch);
  CHECK(store->get_pod("web-2")->url.reveal() == "wss://pods.example:8443/x?token=tok-web-2b");
  CHECK(store->get_pod("web-2")->url_error.empty());
}

TEST_CASE_TEMPLATE("security: a server whose secret key cannot open the database's key check does not start", B,
                   BOTH_BACKENDS) {
  const std::string other_key = "a-different-key-Hunter2";
  auto refused = [&](const std::string& url) {
    try {
      open_store(url);
      return std::string("opened");
    } catch (const pw::PodConfigValidationError& e) {
      const std::string msg = e.what();
      CHECK(e.field() == "PODWRANGLER_SECRET_KEY");
      CHECK(msg.find("PODWRANGLER_SECRET_KEY") != std::string::npos);
      CHECK(msg.find("different key") != std::string::npos);
      CHECK(msg.find('\n') == std::string::npos);  // one line
      CHECK(msg.find(other_key) == std::string::npos);
      CHECK(msg.find(TEST_KEY) == std::string::npos);
      return std::string("refused");
    }
  };
  B db;
  {
    auto store = open_store(db.url);  // first open: the key check is made
    store->create_pod(pod("web-1"));
    store->begin_commands({{"web-1", "ls", ""}}, "s");
  }
  CHECK(db.query("SELECT name FROM meta") == "key_check");
  const std::string hex = std::is_same_v<B, PostgresDb> ? "encode(value, 'hex')" : "hex(value)";
  auto snapshot = [&] {
    return db.query("SELECT count(*) FROM pods") + "/" + db.query("SELECT count(*) FROM commands") + "/" +
           db.query("SELECT count(*) FROM replicas") + "/" + db.query("SELECT " + hex + " FROM meta") + "/" +
           db.query("SELECT count(*) FROM schema_migrations");
  };
  const std::string before = snapshot();
  {
    ScopedEnv key("PODWRANGLER_SECRET_KEY", other_key.c_str());
    CHECK(refused(db.url) == "refused");
  }
  CHECK(snapshot() == before);  // the mis-keyed server wrote nothing
  CHECK(open_store(db.url)->get_pod("web-1")->url.reveal() == "wss://pods.example:8443/x?token=tok-web-1");

  // A database from before the key check (pods, no check): the first key to open it must
  // decrypt its pods; a wrong one does not get to plant its own check.
  db.exec("DELETE FROM meta");
  {
    ScopedEnv key("PODWRANGLER_SECRET_KEY", other_key.c_str());
    CHECK(refused(db.url) == "refused");
  }
  CHECK(db.query("SELECT count(*) FROM meta") == "0");
  CHECK(open_store(db.url)->get_pod("web-1"));
  CHECK(db.query("SELECT name FROM meta") == "key_check");
  {
    ScopedEnv key("PODWRANGLER_SECRET_KEY", other_key.c_str());
    CHECK(refused(db.url) == "refused");
  }
  // An empty database takes whichever key opens it first.
  B fresh;
  {
    ScopedEnv key("PODWRANGLER_SECRET_KEY", other_key.c_str());
    open_store(fresh.url)->create_pod(pod("x"));
  }
  CHECK(refused(fresh.url) == "refused");
}

TEST_CASE_TEMPLATE("store: migrations are applied once; reopening is a no-op", B, BOTH_BACKENDS) {
  B db;
  {
    auto s1 = open_store(db.url);
    s1->create_pod(pod("keep"));
    s1->begin_commands({{"keep", "ls", ""}}, "s");
  }
  const std::string before = db.query("SELECT version, applied_at FROM schema_migrations ORDER BY version");
  CHECK(before.rfind("1|", 0) == 0);
  {
    auto s2 = open_store(db.url);
    auto s3 = open_store(db.url);  // two stores on one database at once
    CHECK(s2->get_pod("keep"));
    CHECK(s3->list_commands({}).size() == 1);
    s3->create_pod(pod("more"));
    CHECK(s2->list_pods().size() == 2);
  }
  CHECK(db.query("SELECT version, applied_at FROM schema_migrations ORDER BY version") == before);
  CHECK(db.query("SELECT count(*) FROM schema_migrations") == std::to_string(detail::MIGRATIONS.size()));
}

TEST_CASE_TEMPLATE("store: changes made by another store on the database are seen at once", B, BOTH_BACKENDS) {
  B db;
  auto s1 = open_store(db.url);
  auto s2 = open_store(db.url);  // as another replica would
  s1->create_pod(pod("a", {{"app", "web"}}));
  // Warm every pooled connection of s1 (list results may be cached per connection).
  {
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t)
      ts.emplace_back([&] {
        for (int i = 0; i < 20; ++i) CHECK(s1->list_pods().size() == 1);
      });
    for (auto& t : ts) t.join();
  }
  s2->create_pod(pod("b"));
  PodPatch patch;
  patch.labels = Labels{{"app", "api"}};
  s2->update_pod("a", patch);
  for (int i = 0; i < 10; ++i) {
    auto pods = s1->list_pods();
    REQUIRE(pods.size() == 2);
    CHECK(pods[0].labels == Labels{{"app", "api"}});
    CHECK(aliases(s1->list_pods({{"app", "web"}})).empty());
  }
  CHECK(s2->delete_pod("b"));
  for (int i = 0; i < 10; ++i) CHECK(aliases(s1->list_pods()) == std::vector<std::string>{"a"});
  // A write through s1 is seen by s2, and by s1's other connections.
  s1->delete_pod("a");
  CHECK(s2->list_pods().empty());
  for (int i = 0; i < 10; ++i) CHECK(s1->list_pods().empty());
}

TEST_CASE_TEMPLATE("store: concurrent begin/finish from 8 threads", B, BOTH_BACKENDS) {
  B db;
  auto store = open_store(db.url);
  store->create_pod(pod("shared"));
  constexpr int THREADS = 8, PER_THREAD = 200;
  std::vector<std::vector<std::int64_t>> got(THREADS);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < THREADS; ++t) {
    threads.emplace_back([&, t] {
      try {
        for (int i = 0; i < PER_THREAD; ++i) {
          const std::string tag = std::to_string(t) + "-" + std::to_string(i);
          auto id = store->begin_commands({{"shared", "echo " + tag, "L" + tag}}, "srv-" + std::to_string(t))[0];
          CommandRecord done = finished(id, CommandStatus::succeeded, 0, "out " + tag);
          store->finish_command(done);
          got[static_cast<std::size_t>(t)].push_back(id);
          if (i % 50 == 0) {
            (void)store->list_pods();
            (void)store->list_commands({});
          }
        }
      } catch (const std::exception& e) {
        ++errors;
        MESSAGE("thread error: " << std::string(e.what()));
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(errors == 0);
  std::set<std::int64_t> distinct;
  for (const auto& v : got) distinct.insert(v.begin(), v.end());
  CHECK(distinct.size() == THREADS * PER_THREAD);

  CommandFilter all;
  all.limit = THREADS * PER_THREAD + 10;
  auto rows = store->list_commands(all);
  REQUIRE(rows.size() == THREADS * PER_THREAD);
  int complete = 0;
  for (const auto& r : rows) {
    const std::string tag = r.command.substr(5);
    complete += r.status == "succeeded" && r.output == "out " + tag && r.pod_label == "L" + tag &&
                r.finished_at.has_value() && r.exit_code == 0 && r.server_id == "srv-" + tag.substr(0, tag.find('-'));
  }
  CHECK(complete == THREADS * PER_THREAD);
  CHECK(store->running_server_ids().empty());
}

// ---- fidelity: output bytes ----

namespace {
std::string sha256_hex(const std::string& s) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
  static constexpr char HEX[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : d) {
    out += HEX[c >> 4];
    out += HEX[c & 0xF];
  }
  return out;
}
}  // namespace

TEST_CASE_TEMPLATE("fidelity: command output bytes round-trip exactly (all 256 byte values, 1 MiB random)", B,
                   BOTH_BACKENDS) {
  B db;
  auto store = open_store(db.url);
  std::string all256;
  for (int round = 0; round < 2; ++round)
    for (int b = 0; b < 256; ++b) all256 += static_cast<char>(b);
  std::string random(1 << 20, '\0');
  REQUIRE(RAND_bytes(reinterpret_cast<unsigned char*>(random.data()), static_cast<int>(random.size())) == 1);
  struct Case {
    const char* name;
    std::string bytes;
  };
  const std::vector<Case> cases{{"all 256 byte values", all256},
                                {"1 MiB random", random},
                                {"NUL only", std::string(3, '\0')},
                                {"invalid UTF-8", "\xff\xfe lone \xc3 overlong \xc0\xaf surrogate \xed\xa0\x80"},
                                {"clean text", "héllo ✓ 🚀\ttab\r\n"},
                                {"empty", ""}};
  std::vector<std::int64_t> ids;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(cases[i].name);
    auto id = store->begin_commands({{"bin", "head -c 1M /dev/urandom", ""}}, "s")[0];
    ids.push_back(id);
    CommandRecord done = finished(id, CommandStatus::succeeded, 0, cases[i].bytes);
    done.truncated = i % 2 == 1;  // stored as given, either way
    store->finish_command(done);
    auto r = store->get_command(id);
    REQUIRE(r);
    CHECK(r->output.size() == cases[i].bytes.size());
    CHECK(sha256_hex(r->output) == sha256_hex(cases[i].bytes));
    CHECK(r->truncated == (i % 2 == 1));
  }
  // Listing returns the same bytes, and a fresh store (no cache) too.
  auto fresh = open_store(db.url);
  CommandFilter f;
  f.alias = "bin";
  const auto rows = fresh->list_commands(f);
  REQUIRE(rows.size() == cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(cases[i].name);
    const auto& r = rows[cases.size() - 1 - i];  // newest first
    CHECK(r.id == ids[i]);
    CHECK(sha256_hex(r.output) == sha256_hex(cases[i].bytes));
    CHECK(r.truncated == (i % 2 == 1));
  }
  // Clean text stays plain text in `output` (no second copy); the rest keeps a sanitised
  // text for older readers next to the exact bytes.
  CHECK(db.query("SELECT count(*) FROM commands WHERE output_raw IS NULL") == "2");
  // Rows written before output_raw existed (output_raw NULL) read as they were.
  db.exec("UPDATE commands SET output = 'legacy text', output_raw = NULL WHERE id = " + std::to_string(ids[0]));
  CHECK(fresh->get_command(ids[0])->output == "legacy text");
}

// ---- replica leases ----

TEST_CASE_TEMPLATE("replicas: an expired lease's running rows become interrupted at its last heartbeat", B,
                   BOTH_BACKENDS) {
  B db;
  auto live = open_store(db.url);
  auto doomed = open_store(db.url);  // the replica that will die
  const std::string dead_id = "elsewhere:1:1:m", live_id = "here:2:2:m";
  CHECK_FALSE(doomed->heartbeat(dead_id, "2026-01-01T00:00:00.000Z", 0.4));  // registered
  auto ids = doomed->begin_commands({{"p", "sleep 60", ""}, {"q", "sleep 60", ""}}, dead_id);
  auto quick = doomed->begin_commands({{"p", "true", ""}}, dead_id)[0];
  doomed->finish_command(finished(quick, CommandStatus::succeeded, 0, "ok"));
  auto other = live->begin_commands({{"p", "sleep 60", ""}}, "never-leased:3:3");
  sleep_ms(30);
  CHECK(doomed->heartbeat(dead_id, "2026-01-01T00:00:00.000Z", 0.4));  // renewed
  const auto leases = live->replicas();
  REQUIRE(leases.size() == 1);
  CHECK(leases[0].server_id == dead_id);
  CHECK(leases[0].started_at == "2026-01-01T00:00:00.000Z");
  CHECK(is_stored_time(leases[0].last_seen));
  CHECK(leases[0].expires_at > leases[0].last_seen);
  const std::string last_seen = leases[0].last_seen;
  CHECK(last_seen >= live->get_command(ids[1])->started_at);

  CHECK(live->reap_expired_replicas(live_id).empty());  // not expired yet
  CHECK(live->get_command(ids[0])->status == "running");
  doomed.reset();  // it dies: no more heartbeats, nothing released
  sleep_ms(600);
  // Its own lease is never reaped by itself.
  CHECK(live->reap_expired_replicas(dead_id).empty());
  const auto reaped = live->reap_expired_replicas(live_id);
  REQUIRE(reaped.size() == 1);
  CHECK(reaped[0].server_id == dead_id);
  CHECK(reaped[0].last_seen == last_seen);
  CHECK(reaped[0].commands == 2);
  for (auto id : ids) {
    auto r = live->get_command(id);
    CHECK(r->status == "interrupted");
    CHECK(r->finished_at == std::optional<std::string>(last_seen));  // the time of death
    REQUIRE(r->error);
    CHECK(r->error->find("lease") != std::string::npos);
  }
  CHECK(live->get_command(quick)->status == "succeeded");
  CHECK(live->get_command(quick)->output == "ok");
  CHECK(live->get_command(other[0])->status == "running");  // no lease, not judged here
  CHECK(live->replicas().empty());
  CHECK(live->reap_expired_replicas(live_id).empty());  // closed once

  // A replica that was presumed dead and comes back gets its lease again, and is told.
  CHECK_FALSE(live->heartbeat(dead_id, "", 30));
  CHECK(live->heartbeat(dead_id, "", 30));
}

TEST_CASE_TEMPLATE("replicas: a live lease's rows are left alone", B, BOTH_BACKENDS) {
  B db;
  auto a = open_store(db.url);
  auto b = open_store(db.url);
  a->heartbeat("a:1:1:m", "", 30);
  // A 1 s lease renewed every 100 ms: it never lapses even when a loaded machine (or ASan) delays
  // a renewal behind the reaper's writes, yet without the renewals it would lapse halfway through.
  b->heartbeat("b:2:2:m", "", 1.0);
  auto ra = a->begin_commands({{"p", "sleep 60", ""}}, "a:1:1:m");
  auto rb = b->begin_commands({{"p", "sleep 60", ""}}, "b:2:2:m");
  // b renews every 100 ms while a reaps as fast as it can, for about two seconds.
  std::atomic<bool> stop{false};
  std::atomic<int> reaped{0};
  std::thread reaper([&] {
    while (!stop) reaped += static_cast<int>(a->reap_expired_replicas("a:1:1:m").size());
  });
  for (int i = 0; i < 20; ++i) {
    sleep_ms(100);
    CHECK(b->heartbeat("b:2:2:m", "", 1.0));
  }
  stop = true;
  reaper.join();
  CHECK(reaped == 0);
  CHECK(b->reap_expired_replicas("b:2:2:m").empty());
  CHECK(a->get_command(ra[0])->status == "running");
  CHECK(a->get_command(rb[0])->status == "running");
  CHECK(a->replicas().size() == 2);
  // A clean stop releases the lease; its rows were closed by interrupt_running first.
  CHECK(b->interrupt_running("b:2:2:m") == 1);
  b->release_lease("b:2:2:m");
  CHECK(a->replicas().size() == 1);
}

TEST_CASE_TEMPLATE("replicas: interrupt_orphans ends a leased server's rows at its last heartbeat", B, BOTH_BACKENDS) {
  B db;
  auto store = open_store(db.url);
  store->heartbeat("h:10:1:m", "", 30);
  auto ids = store->begin_commands({{"p", "x", ""}}, "h:10:1:m");
  sleep_ms(20);
  store->heartbeat("h:10:1:m", "", 30);
  const std::string last_seen = store->replicas().at(0).last_seen;
  auto unleased = store->begin_commands({{"p", "y", ""}}, "h:20:1");
  sleep_ms(20);
  CHECK(store->interrupt_orphans({"h:10:1:m", "h:20:1"}) == 2);
  CHECK(store->get_command(ids[0])->finished_at == std::optional<std::string>(last_seen));
  CHECK(*store->get_command(unleased[0])->finished_at > last_seen);  // no lease: now
  CHECK(store->replicas().empty());
}

TEST_CASE_TEMPLATE("replicas: a live replica closes a dead one's rows within lease + heartbeat", B, BOTH_BACKENDS) {
  B db;
  auto sa = open_store(db.url);
  auto sb = open_store(db.url);
  const ReplicaTiming timing{0.1, 0.4};
  std::mutex mu;
  std::vector<std::string> lines;
  auto log = [&](const std::string& l) {
    std::lock_guard lk(mu);
    lines.push_back(l);
  };
  const std::string a_id = "host-a:101:1:m", b_id = "host-b:202:1:m";
  auto a = std::make_unique<ReplicaLease>(*sa, a_id, timing, log);
  ReplicaLease b(*sb, b_id, timing, log);
  auto ids = sa->begin_commands({{"p", "sleep 60", ""}}, a_id);
  sleep_ms(800);  // several leases long: both alive, nothing closed
  CHECK(sb->get_command(ids[0])->status == "running");
  CHECK(sb->replicas().size() == 2);

  a.reset();  // its heartbeats stop, as after SIGKILL (the lease is not released)
  const auto t0 = std::chrono::steady_clock::now();
  std::string last_seen;
  for (const auto& r : sb->replicas())
    if (r.server_id == a_id) last_seen = r.last_seen;
  REQUIRE_FALSE(last_seen.empty());
  std::optional<CommandRecord> row;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)) {
    row = sb->get_command(ids[0]);
    if (row->status != "running") break;
    sleep_ms(20);
  }
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(row->status == "interrupted");
  CHECK(row->finished_at == std::optional<std::string>(last_seen));
  CHECK(took <= timing.max_detection_s() + 0.3);
  MESSAGE("dead replica's row closed after " << took << " s (lease " << timing.lease_s << " s, heartbeat "
                                             << timing.heartbeat_s << " s)");
  {
    std::lock_guard lk(mu);
    bool said = false;
    for (const auto& l : lines) said = said || l.find(a_id + " stopped renewing its lease") != std::string::npos;
    CHECK(said);
  }
  b.stop();  // clean stop: the lease goes
  CHECK(sb->replicas().empty());
}

TEST_CASE("replicas: server ids, dead local servers, timing settings") {
  const std::string self = make_server_id();
  const auto f = [](const std::string& id) {
    std::vector<std::string> out;
    std::size_t i = 0, j;
    while ((j = id.find(':', i)) != std::string::npos) {
      out.push_back(id.substr(i, j - i));
      i = j + 1;
    }
    out.push_back(id.substr(i));
    return out;
  }(self);
  REQUIRE(f.size() == 4);
  CHECK(f[1] == std::to_string(::getpid()));
  const std::string host = f[0], machine = f[3];

  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  REQUIRE(child > 0);
  ::waitpid(child, nullptr, 0);  // a pid that no longer exists
  const std::string gone = std::to_string(child), alive = std::to_string(::getppid());
  const std::vector<std::string> ids{
      self,
      host + ":" + gone + ":5:" + machine,                        // dead, here: yes
      host + ":" + alive + ":5:" + machine,                       // alive: no
      host + ":" + std::to_string(::getpid()) + ":4:" + machine,  // our pid, earlier start: yes
      host + ":" + gone + ":5:" + "ffffffff.1",                   // another machine/namespace: no
      host + ":" + gone + ":5",                                   // the older form: hostname only
      "other-host:" + gone + ":5:" + machine,                     // another host: no
      host + ":notapid:5:" + machine,
      host + ":-3:5:" + machine,
      "junk"};
  CHECK(dead_local_servers(ids, self) == std::vector<std::string>{ids[1], ids[3], ids[5]});

  {
    ScopedEnv h("PODWRANGLER_REPLICA_HEARTBEAT_S", nullptr);
    ScopedEnv l("PODWRANGLER_REPLICA_LEASE_S", nullptr);
    auto t = ReplicaTiming::from_env();
    CHECK(t.heartbeat_s == 5.0);
    CHECK(t.lease_s == 20.0);
    CHECK(t.max_detection_s() == 25.0);
  }
  {
    ScopedEnv h("PODWRANGLER_REPLICA_HEARTBEAT_S", "0.5");
    ScopedEnv l("PODWRANGLER_REPLICA_LEASE_S", "2");
    auto t = ReplicaTiming::from_env();
    CHECK(t.heartbeat_s == 0.5);
    CHECK(t.lease_s == 2.0);
  }
  for (auto [name, value] : std::vector<std::pair<const char*, const char*>>{
           {"PODWRANGLER_REPLICA_HEARTBEAT_S", "0"},
           {"PODWRANGLER_REPLICA_HEARTBEAT_S", "5s"},
           {"PODWRANGLER_REPLICA_HEARTBEAT_S", " 5"},
           {"PODWRANGLER_REPLICA_LEASE_S", "nan"},
           {"PODWRANGLER_REPLICA_LEASE_S", "-1"},
           {"PODWRANGLER_REPLICA_LEASE_S", "9"}}) {  // less than two heartbeats
    CAPTURE(name);
    CAPTURE(value);
    ScopedEnv e(name, value);
    try {
      ReplicaTiming::from_env();
      FAIL("accepted");
    } catch (const pw::PodConfigValidationError& err) {
      CHECK(err.field() == name);
    }
  }
}

// ================= SQLite only =================

TEST_CASE("sqlite: open_store URL forms") {
  TempDir dir;
  auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  struct Restore {
    std::filesystem::path p;
    ~Restore() { std::filesystem::current_path(p); }
  } restore{cwd};

  {
    auto s = open_store("sqlite:///rel.db");  // relative to the working directory
    s->create_pod(pod("r"));
  }
  CHECK(std::filesystem::exists(dir.path() / "rel.db"));
  {
    auto s = open_store("sqlite+aiosqlite:///./pods.db");
    s->create_pod(pod("a"));
  }
  CHECK(std::filesystem::exists(dir.path() / "pods.db"));
  // The same file, through its absolute form.
  CHECK(open_store("sqlite:///" + dir.file("pods.db"))->get_pod("a"));
  CHECK(open_store("SQLite+pysqlite:///" + dir.file("pods.db"))->get_pod("a"));
  // A missing parent directory is created.
  const std::string nested = dir.file("new/sub/dir/pods.db");
  open_store("sqlite:///" + nested)->create_pod(pod("n"));
  CHECK(std::filesystem::exists(nested));
  CHECK(open_store("sqlite:///new/sub/dir/pods.db")->get_pod("n"));  // relative form

  // In memory: private to the store, usable from several threads (one connection).
  for (const char* mem : {"sqlite:///:memory:", "sqlite://"}) {
    auto m = open_store(mem);
    CHECK(m->kind() == "sqlite");
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t)
      ts.emplace_back([&, t] {
        for (int i = 0; i < 20; ++i) m->create_pod(pod("m" + std::to_string(t) + "-" + std::to_string(i)));
      });
    for (auto& t : ts) t.join();
    CHECK(m->list_pods().size() == 80);
    CHECK(open_store(mem)->list_pods().empty());
  }
  CHECK_FALSE(std::filesystem::exists(dir.path() / ":memory:"));

  CHECK(database_kind("sqlite:///x.db") == "sqlite");
  CHECK(database_kind("sqlite+aiosqlite:///./pods.db") == "sqlite");
  CHECK(database_kind("postgresql+asyncpg://u:p@h:5432/db") == "postgresql");
  CHECK(database_kind("postgresql+psycopg://u@h/db") == "postgresql");
  CHECK(database_kind("postgres://h/db") == "postgresql");
  CHECK(database_kind("postgresql://h/db?sslmode=disable") == "postgresql");
}

TEST_CASE("store: bad database URLs are validation errors without the password") {
  const std::string pass = "Hunter2Passw0rd";
  for (const std::string& url :
       {std::string(""), std::string("pods.db"), std::string("mysql://root:" + pass + "@db/pods"),
        std::string("postgresql+asyncpg//user:" + pass + "@host/db"), "user:" + pass + "@host/db",
        "sqlite://user:" + pass + "@host/x.db", "sqlite:///pods.db?mode=ro&password=" + pass,
        "postgresql+bad!driver://u:" + pass + "@h/db", "postgresql://u:" + pass + "@h:notaport/db",
        "http://u:" + pass + "@example.com/"}) {
    CAPTURE(url);
    try {
      open_store(url);
      FAIL("accepted");
    } catch (const pw::PodConfigValidationError& e) {
      CHECK(e.field() == "database_url");
      CHECK(std::string(e.what()).find(pass) == std::string::npos);
    }
    CHECK_THROWS_AS(database_kind(url), pw::PodConfigValidationError);
  }
}

TEST_CASE("sqlite: unopenable file is a StoreError") {
  TempDir dir;
  const std::string notdb = dir.file("junk.db");
  {
    std::ofstream f(notdb);
    f << std::string(8192, 'j');
  }
  CHECK_THROWS_AS(open_store("sqlite:///" + notdb), StoreError);
  std::filesystem::create_directories(dir.path() / "adir.db");
  CHECK_THROWS_AS(open_store("sqlite:///" + dir.file("adir.db")), StoreError);
}

TEST_CASE("sqlite: WAL journal and the history indexes") {
  SqliteDb db;
  auto store = open_store(db.url);
  store->create_pod(pod("x"));
  CHECK(db.query("PRAGMA journal_mode") == "wal");
  // (the capsule tables' indexes: test_capsule_records.cpp)
  CHECK(db.query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name NOT LIKE 'capsule%' ORDER BY "
                 "name") ==
        "commands_alias_id\ncommands_running_server\ncommands_started_at\ncommands_status_id\n"
        "sqlite_autoindex_meta_1\nsqlite_autoindex_pods_1\nsqlite_autoindex_replicas_1");
}

TEST_CASE("security: the SQLite database, its WAL and SHM and the key file are 0600, the data dir 0700") {
  TempDir xdg;
  ScopedEnv e1("XDG_DATA_HOME", xdg.path().c_str());
  ScopedEnv e2("PODWRANGLER_SECRET_KEY", nullptr);  // the key file is made too
  struct Umask {
    mode_t old = ::umask(022);  // the usual umask, under which SQLite's files were 0644
    ~Umask() { ::umask(old); }
  } umask_022;
  auto mode = [](const std::string& p) -> unsigned {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return 01000000;  // missing
    return st.st_mode & 07777;
  };
  const std::string dir = xdg.file("podwrangler");
  const std::string db = dir + "/pods.db";
  {
    auto store = open_store(default_database_url());
    store->create_pod(pod("m"));
    auto id = store->begin_commands({{"m", "ls", ""}}, "s")[0];
    store->finish_command(finished(id, CommandStatus::succeeded, 0, "history"));
    CHECK(mode(dir) == 0700);
    CHECK(mode(db) == 0600);
    CHECK(mode(db + "-wal") == 0600);  // present while the store is open
    CHECK(mode(db + "-shm") == 0600);
    CHECK(mode(dir + "/secret.key") == 0600);

    // Loosened while in use (an older version made them 0644, a user ran chmod): the next
    // open makes them private again.
    for (const auto& f : {db, db + "-wal", db + "-shm", dir + "/secret.key"}) ::chmod(f.c_str(), 0644);
    ::chmod(dir.c_str(), 0755);
    auto again = open_store(default_database_url());
    CHECK(again->get_pod("m"));
    CHECK(mode(dir) == 0700);
    CHECK(mode(db) == 0600);
    CHECK(mode(db + "-wal") == 0600);
    CHECK(mode(db + "-shm") == 0600);
    CHECK(mode(dir + "/secret.key") == 0600);
  }

  // A database file that exists 0644 before the first open, in a directory of the user's.
  TempDir own;
  ::chmod(own.path().c_str(), 0755);
  const std::string pre = own.file("pre.db");
  { std::ofstream touch(pre); }
  ::chmod(pre.c_str(), 0644);
  {
    auto store = open_store("sqlite:///" + pre);
    store->create_pod(pod("p"));
    CHECK(mode(pre) == 0600);
    CHECK(mode(pre + "-wal") == 0600);
    CHECK(mode(pre + "-shm") == 0600);
  }
  CHECK(mode(own.path().string()) == 0755);  // the user's own directory is left alone
  // Directories it creates for a database are 0700, each of them.
  {
    auto store = open_store("sqlite:///" + own.file("new/sub/pods.db"));
    store->create_pod(pod("n"));
    CHECK(mode(own.file("new")) == 0700);
    CHECK(mode(own.file("new/sub")) == 0700);
    CHECK(mode(own.file("new/sub/pods.db")) == 0600);
    CHECK(mode(own.file("new/sub/pods.db-wal")) == 0600);
  }
  // Under a permissive umask too.
  {
    struct Umask0 {
      mode_t old = ::umask(0);
      ~Umask0() { ::umask(old); }
    } umask_0;
    auto store = open_store("sqlite:///" + own.file("open/pods.db"));
    store->create_pod(pod("o"));
    CHECK(mode(own.file("open")) == 0700);
    CHECK(mode(own.file("open/pods.db")) == 0600);
    CHECK(mode(own.file("open/pods.db-wal")) == 0600);
    CHECK(mode(own.file("open/pods.db-shm")) == 0600);
  }
}

TEST_CASE("store: key file when PODWRANGLER_SECRET_KEY is unset") {
  TempDir xdg;
  ScopedEnv e1("XDG_DATA_HOME", xdg.path().c_str());
  ScopedEnv e2("PODWRANGLER_SECRET_KEY", nullptr);
  const std::string dir = data_dir();
  CHECK(dir == xdg.file("podwrangler"));
  struct stat st {};
  REQUIRE(::stat(dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  CHECK(default_database_url() == "sqlite:///" + dir + "/pods.db");
  CHECK(default_database_url().rfind("sqlite:////", 0) == 0);

  {
    auto store = open_store(default_database_url());
    store->create_pod(pod("k"));
  }
  const std::string key_path = dir + "/secret.key";
  REQUIRE(::stat(key_path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(st.st_size == 32);
  const std::string key = pw::testing::read_file(key_path);
  // Reopened: the same key file is read, the URL decrypts.
  CHECK(open_store(default_database_url())->get_pod("k")->url.reveal() == "wss://pods.example:8443/x?token=tok-k");
  CHECK(pw::testing::read_file(key_path) == key);
  // The key file is not the env key: with the env key set, the database does not open.
  {
    ScopedEnv e3("PODWRANGLER_SECRET_KEY", TEST_KEY);
    CHECK_THROWS_AS(open_store(default_database_url()), pw::PodConfigValidationError);
  }
  // And the other way round: the message names the variable and the key file.
  {
    TempDir other;
    ScopedEnv e4("XDG_DATA_HOME", other.path().c_str());
    {
      ScopedEnv e5("PODWRANGLER_SECRET_KEY", TEST_KEY);
      open_store("sqlite:///" + other.file("env.db"))->create_pod(pod("e"));
    }
    try {
      open_store("sqlite:///" + other.file("env.db"));
      FAIL("opened with the key file");
    } catch (const pw::PodConfigValidationError& e) {
      const std::string msg = e.what();
      CHECK(msg.find("PODWRANGLER_SECRET_KEY is unset") != std::string::npos);
      CHECK(msg.find(other.file("podwrangler/secret.key")) != std::string::npos);
    }
  }
  // A truncated key file is an error, not a silently new key.
  {
    std::ofstream f(key_path, std::ios::trunc);
    f << "short";
  }
  CHECK_THROWS_AS(open_store(default_database_url()), StoreError);
}

TEST_CASE("store: XDG_DATA_HOME unset or relative falls back to ~/.local/share") {
  TempDir home;
  ScopedEnv e1("HOME", home.path().c_str());
  {
    ScopedEnv e2("XDG_DATA_HOME", nullptr);
    CHECK(data_dir() == home.file(".local/share/podwrangler"));
  }
  {
    ScopedEnv e2("XDG_DATA_HOME", "relative/dir");
    CHECK(data_dir() == home.file(".local/share/podwrangler"));
  }
}

TEST_CASE("store: times and statuses") {
  const auto n = now_rfc3339();
  CHECK(is_stored_time(n));
  CHECK(normalize_time(n) == n);
  using O = std::optional<std::string>;
  CHECK(normalize_time("2026-11-25T16:00:00Z") == O("2026-11-25T16:00:00.000Z"));
  CHECK(normalize_time("2026-11-25T16:00:00.123456Z") == O("2026-11-25T16:00:00.123Z"));
  CHECK(normalize_time("2026-11-25T16:00:00.1z") == O("2026-11-25T16:00:00.100Z"));
  CHECK(normalize_time("2026-11-25t16:00:00+02:00") == O("2026-11-25T14:00:00.000Z"));
  CHECK(normalize_time("2026-11-25T01:30:00-05:30") == O("2026-11-25T07:00:00.000Z"));
  CHECK(normalize_time("2026-12-31T23:30:00-01:00") == O("2027-01-01T00:30:00.000Z"));
  CHECK(normalize_time("2024-02-29 10:00:00") == O("2024-02-29T10:00:00.000Z"));
  CHECK(normalize_time("2026-11-25T16:00") == O("2026-11-25T16:00:00.000Z"));
  CHECK(normalize_time("2026-11-25") == O("2026-11-25T00:00:00.000Z"));
  CHECK(normalize_time("0") == O("1970-01-01T00:00:00.000Z"));
  CHECK(normalize_time("1764086400") == O("2025-11-25T16:00:00.000Z"));
  CHECK(normalize_time("1764086400.25") == O("2025-11-25T16:00:00.250Z"));
  for (const char* junk : {"", "yesterday", "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z", "2026-11-25T24:00:00Z",
                           "2026-11-25T16:00:00+25:00", "2026-11-25T16:00:00X", "2026-11-25T16:00:00.Z", "-5", "1e9",
                           "12.", "1.2.3", "99999999999999999999", "2026-11-25T16:00:00Z trailing"}) {
    CAPTURE(junk);
    CHECK_FALSE(normalize_time(junk));
  }
  for (const char* s : {"running", "succeeded", "failed", "timeout", "error", "interrupted"}) {
    CAPTURE(s);
    REQUIRE(command_status_from_string(s));
    CHECK(to_string(*command_status_from_string(s)) == s);
  }
  CHECK_FALSE(command_status_from_string("Running"));
  CHECK_FALSE(command_status_from_string(""));
  // A name this version does not know (a newer replica's) is listed as an error.
  CHECK(command_status_from_stored("paused") == CommandStatus::error);
}

TEST_CASE("store core: one SQL text, rendered for each backend's placeholders") {
  using detail::Placeholders;
  using detail::render;
  const std::string pg =
      "UPDATE t SET a = $2::text, d = $10::float8 WHERE id = $1::bigint AND "
      "b = GREATEST(x, y) AND c = '$'";
  CHECK(render(pg, Placeholders::postgres) == pg);
  CHECK(render(pg, Placeholders::sqlite) == "UPDATE t SET a = ?2, d = ?10 WHERE id = ?1 AND b = max(x, y) AND c = '$'");
  // The history's WHERE clause: one condition per filter given, numbered in order, the
  // limit last.
  const std::string select = detail::list_commands_sql(0);
  CHECK(select.find(" FROM commands ORDER BY id DESC LIMIT $1::bigint") != std::string::npos);
  const auto where = [&](unsigned mask, Placeholders style) {
    const std::string sql = render(detail::list_commands_sql(mask), style);
    return sql.substr(sql.find(" FROM commands"));
  };
  CHECK(where(1u | 2u | 4u | 8u, Placeholders::postgres) ==
        " FROM commands WHERE alias = $1::text AND status = $2::text AND started_at >= $3::text "
        "AND id < $4::bigint ORDER BY id DESC LIMIT $5::bigint");
  CHECK(where(2u | 8u, Placeholders::sqlite) ==
        " FROM commands WHERE status = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3");
  // A backend's own statements follow the core's: the lease statements first.
  const auto table = detail::statement_table(Placeholders::sqlite, {"renew", "insert", "own $1"});
  REQUIRE(table.size() == detail::OWN_STATEMENTS + 1);
  CHECK(table[detail::RENEW_LEASE] == "renew");
  CHECK(table[detail::INSERT_LEASE] == "insert");
  CHECK(table[detail::OWN_STATEMENTS] == "own ?1");
  CHECK(table[detail::LIST_COMMANDS + 15] == render(detail::list_commands_sql(15), Placeholders::sqlite));
}

// ================= PostgreSQL only =================

TEST_CASE("postgresql: URL driver forms reach the same database; errors hide the password") {
  auto& c = cluster();
  const std::string db = c.create_database();
  const std::string rest = "pw@127.0.0.1:" + std::to_string(c.port()) + "/" + db;
  open_store("postgresql://" + rest)->create_pod(pod("via-plain"));
  for (const std::string scheme : {"postgresql+asyncpg", "postgresql+psycopg", "postgres", "postgresql"}) {
    CAPTURE(scheme);
    auto s = open_store(scheme + "://" + rest);
    CHECK(s->kind() == "postgresql");
    CHECK(s->get_pod("via-plain"));
  }
  CHECK(open_store("postgresql+asyncpg://" + rest + "?ssl=disable")->ping());

  // Unreachable server, password in the URL: StoreError without the password.
  const std::string pass = "S3cretPassw0rd!";
  const int dead_port = pw::testing::free_port();
  try {
    open_store("postgresql+asyncpg://pw:" + pass + "@127.0.0.1:" + std::to_string(dead_port) + "/x");
    FAIL("connected to nothing");
  } catch (const StoreError& e) {
    CHECK(std::string(e.what()).find(pass) == std::string::npos);
    CHECK(std::string(e.what()).find("postgresql") != std::string::npos);
  }
  // Missing database: also a StoreError.
  CHECK_THROWS_AS(open_store("postgresql://pw:" + pass + "@127.0.0.1:" + std::to_string(c.port()) + "/nosuchdb"),
                  StoreError);
}

TEST_CASE("postgresql: two servers migrating one database at once both succeed") {
  auto& c = cluster();
  for (int round = 0; round < 3; ++round) {
    const std::string db = c.create_database();
    const std::string url = c.url(db);
    std::vector<std::unique_ptr<Store>> stores(4);
    std::vector<std::string> errors(4);
    std::vector<std::thread> ts;
    for (std::size_t i = 0; i < stores.size(); ++i)
      ts.emplace_back([&, i] {
        try {
          stores[i] = open_store(url);
        } catch (const std::exception& e) {
          errors[i] = e.what();
        }
      });
    for (auto& t : ts) t.join();
    for (std::size_t i = 0; i < stores.size(); ++i) {
      CAPTURE(errors[i]);
      CHECK(stores[i]);
    }
    CHECK(c.psql(db, "SELECT count(*) FROM schema_migrations") == std::to_string(detail::MIGRATIONS.size()));
    stores[0]->create_pod(pod("p"));
    CHECK(stores[3]->get_pod("p"));
  }
}

TEST_CASE("postgresql: the store survives a server restart") {
  auto& c = cluster();
  PostgresDb db;
  auto store = open_store(db.url);
  store->create_pod(pod("before"));
  // Fill the pool with several connections.
  {
    std::vector<std::thread> ts;
    for (int t = 0; t < 6; ++t)
      ts.emplace_back([&] {
        for (int i = 0; i < 20; ++i) (void)store->list_pods();
      });
    for (auto& t : ts) t.join();
  }

  auto works_after_at_most_one_failure = [&](auto op) {
    int failures = 0;
    for (int i = 0; i < 2; ++i) {
      try {
        op();
        return failures;
      } catch (const StoreError& e) {
        MESSAGE("failure after restart: " << std::string(e.what()));
        ++failures;
      }
    }
    return failures;
  };

  SUBCASE("graceful restart") {
    c.restart();
    CHECK(works_after_at_most_one_failure([&] { CHECK(store->get_pod("before")); }) == 0);
    // Every pooled connection was stale: all of them are replaced, from many threads.
    std::atomic<int> errors{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 6; ++t)
      ts.emplace_back([&] {
        try {
          for (int i = 0; i < 10; ++i) (void)store->list_pods();
        } catch (...) {
          ++errors;
        }
      });
    for (auto& t : ts) t.join();
    CHECK(errors == 0);
  }
  SUBCASE("postmaster killed, down for a while, then back") {
    c.kill_postmaster();
    CHECK_FALSE(store->ping());
    CHECK_THROWS_AS(store->list_pods(), StoreError);
    CHECK_THROWS_AS(store->begin_commands({{"before", "ls", ""}}, "s"), StoreError);
    c.start();
    CHECK(works_after_at_most_one_failure([&] { store->create_pod(pod("after")); }) <= 1);
    CHECK(store->ping());
    CHECK(aliases(store->list_pods()) == std::vector<std::string>{"after", "before"});
    auto id = store->begin_commands({{"after", "ls", ""}}, "s");
    CHECK(id.size() == 1);
  }
}

// ================= throughput =================

// 4 threads listing at once share the pool and each connection's listing cache; every call
// must still see all 100 pods. The rate is reported, not checked (bench/ measures the server).
TEST_CASE_TEMPLATE("store: list_pods throughput with 100 pods", B, BOTH_BACKENDS) {
  B db;
  auto store = open_store(db.url);
  for (int i = 0; i < 100; ++i)
    store->create_pod(pod("pod-" + std::to_string(i), {{"app", i % 2 ? "web" : "db"}, {"env", "prod"}}));
  constexpr int THREADS = 4, CALLS = 500;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> ts;
  std::atomic<std::size_t> rows{0};
  for (int t = 0; t < THREADS; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < CALLS; ++i) rows += store->list_pods().size();
    });
  for (auto& t : ts) t.join();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(rows == std::size_t{THREADS} * CALLS * 100);
  MESSAGE(std::string(B::kind) << ": " << THREADS * CALLS / s << " list_pods/s (" << THREADS << " threads)");
}

// The capsule records suite (pw::capsules::CapsuleRecords): one set of behaviour cases, run
// through TEST_CASE_TEMPLATE on the three implementations — in memory
// (make_memory_capsule_records), the server's Store on SQLite (a temp file) and on a real
// PostgreSQL 15 (a throwaway cluster of this file's own, a fresh database per case). Then
// what only the databases do: migrating a database of the previous schema version, reopening,
// and a PostgreSQL server restart under an open store.
#include "embedded_server/store/migrations.hpp"
#include "embedded_server/store/secret_box.hpp"
#include "embedded_server/store/store.hpp"
#include "embedded_server/store/store_core.hpp"

#include <podwrangler/capsules/model.hpp>
#include <podwrangler/capsules/records.hpp>
#include <podwrangler/errors.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include "fixtures.hpp"
#include "postgres.hpp"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

using namespace pw::capsules;
using pw::server::open_store;
using pw::server::Store;
using pw::testing::PostgresCluster;
using pw::testing::TempDir;

namespace {

// The store reads its secret key from the environment (test_store.cpp sets one for the whole
// binary before main; this keeps the suite runnable on its own too).
void ensure_env() {
  static TempDir xdg;
  if (!std::getenv("XDG_DATA_HOME")) ::setenv("XDG_DATA_HOME", xdg.path().c_str(), 1);
  if (!std::getenv("PODWRANGLER_SECRET_KEY")) ::setenv("PODWRANGLER_SECRET_KEY", "capsule-records-suite-key", 1);
}

PostgresCluster& cluster() {
  static PostgresCluster c;  // started on first use, stopped at exit
  return c;
}

std::string hex(const std::string& bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 0xF];
  }
  return out;
}

// ---- the databases, with the same face ----

struct SqliteDb {
  static constexpr const char* kind = "sqlite";
  TempDir dir;
  std::string path = dir.file("pods.db");
  std::string url = "sqlite:///" + path;

  // Rows one a line, columns joined by '|' (psql -At's format); SQL that changes the
  // database too (as another program would).
  std::string query(const std::string& sql) const {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    std::string out;
    char* err = nullptr;
    auto row = [](void* o, int n, char** values, char**) {
      auto& s = *static_cast<std::string*>(o);
      if (!s.empty()) s += '\n';
      for (int i = 0; i < n; ++i) s += std::string(i ? "|" : "") + (values[i] ? values[i] : "");
      return 0;
    };
    const int rc = sqlite3_exec(db, sql.c_str(), row, &out, &err);
    CAPTURE(std::string(err ? err : ""));
    sqlite3_free(err);
    sqlite3_close(db);
    REQUIRE(rc == SQLITE_OK);
    return out;
  }
  static const char* script(const pw::server::detail::Migration& m) { return m.sqlite_sql; }
  static std::string blob(const std::string& bytes) { return "X'" + hex(bytes) + "'"; }
  std::string tables() const { return query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"); }
};

struct PostgresDb {
  static constexpr const char* kind = "postgresql";
  std::string name = cluster().create_database();
  std::string url = cluster().url(name);

  std::string query(const std::string& sql) const { return cluster().psql(name, sql); }
  static const char* script(const pw::server::detail::Migration& m) { return m.postgres_sql; }
  static std::string blob(const std::string& bytes) { return "'\\x" + hex(bytes) + "'::bytea"; }
  std::string tables() const {
    return query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1");
  }
};

// ---- the three implementations, with the same face ----

struct MemoryRecords {
  static constexpr const char* kind = "memory";
  static constexpr bool database = false;
  std::shared_ptr<CapsuleRecords> records = make_memory_capsule_records();
  CapsuleRecords& operator*() { return *records; }
  CapsuleRecords* operator->() { return records.get(); }
  std::string query(const std::string&) const { return ""; }
};

template <class Db>
struct StoreRecords {
  static constexpr const char* kind = Db::kind;
  static constexpr bool database = true;
  Db db;
  std::unique_ptr<Store> store = (ensure_env(), open_store(db.url));
  std::shared_ptr<CapsuleRecords> records = store->capsule_records();
  CapsuleRecords& operator*() { return *records; }
  CapsuleRecords* operator->() { return records.get(); }
  std::string query(const std::string& sql) const { return db.query(sql); }
  // Closes the store and opens the database again (a server restart).
  void reopen() {
    records.reset();
    store.reset();
    store = open_store(db.url);
    records = store->capsule_records();
  }
};
using SqliteRecords = StoreRecords<SqliteDb>;
using PostgresRecords = StoreRecords<PostgresDb>;

#define ALL_RECORDS MemoryRecords, SqliteRecords, PostgresRecords
#define DATABASE_RECORDS SqliteRecords, PostgresRecords

// ---- records ----

// A record with every field set to something other than its default.
CapsuleRecord full_record(const std::string& owner = "", const std::string& session = "",
                          std::map<std::string, std::string> labels = {}, std::int64_t created_ms = 1'700'000'000'000,
                          CapsuleState state = CapsuleState::running) {
  CapsuleRecord r;
  r.id = new_capsule_id();
  r.state = state;
  CapsuleSpec& s = r.spec;
  s.image = "busybox:local";
  s.template_name = "tpl";
  s.vcpus = 0.5;
  s.memory_mb = 256;
  s.pids_limit = 64;
  s.idle_timeout_s = 120;
  s.on_expire = ExpiryAction::stop;
  s.lifetime_s = 3600;
  s.remove_at_end = true;
  s.env = {{"A", "1"}, {"B", "x y"}};
  s.mounts = {{"/srv/data", "/data", true}};
  s.ports = {{8080, "0.0.0.0", 18080}};
  s.network = "bridge";
  s.labels = std::move(labels);
  s.owner = owner;
  s.session = session;
  s.workspace = true;
  s.auto_resume = false;
  r.backend = "docker";
  r.container_id = "0123456789abcdef";
  r.image_id = "sha256:feed";
  r.exec_mode = "docker-exec";
  r.exec_mode_reason = "no mount allowed";
  r.origin = "bypassed: needs a mount";
  r.reason = "created for a test";
  r.last_logs = {"line one", "line two \xc3\xbc"};
  r.published_ports = {{8080, 18080}, {9090, 19090}};
  r.limits.vcpus = 0.5;
  r.limits.memory_bytes = 256LL << 20;
  r.limits.pids_limit = 64;
  r.limits.no_new_privileges = true;
  r.limits.read_only_rootfs = true;
  r.limits.cap_drop = {"ALL"};
  r.limits.cap_add = {"CHOWN", "SETUID"};
  r.created_ms = created_ms;
  r.updated_ms = created_ms + 5;
  r.last_active_ms = created_ms + 7;
  r.idle_remaining_ms = 4321;
  r.version = 99;  // insert makes it 1
  return r;
}

CapsuleEvent event(std::string from, std::string to, std::string reason = "") {
  CapsuleEvent e;
  e.from = std::move(from);
  e.to = std::move(to);
  e.reason = std::move(reason);
  return e;
}

// The record's JSON (the API's shape): records compare through it.
nlohmann::json js(const CapsuleRecord& r) { return r; }

// One field of each element.
template <class T, class M>
std::vector<M> pluck(const std::vector<T>& xs, M T::*field) {
  std::vector<M> out;
  for (const auto& x : xs) out.push_back(x.*field);
  return out;
}
std::vector<std::string> ids(const std::vector<CapsuleRecord>& rs) { return pluck(rs, &CapsuleRecord::id); }
std::vector<std::string> tos(const std::vector<CapsuleEvent>& es) { return pluck(es, &CapsuleEvent::to); }
std::vector<std::int64_t> seqs(const std::vector<CapsuleEvent>& es) { return pluck(es, &CapsuleEvent::seq); }

// The id a record got, inserted with a first event "starting".
std::string insert(CapsuleRecords& r, const CapsuleRecord& rec) {
  r.insert(rec, event("", "starting", "create"));
  return rec.id;
}

// Moves a stored record to `state` with an event (fresh read, so never stale).
CapsuleRecord move_to(CapsuleRecords& r, const std::string& id, CapsuleState state, const std::string& why = "") {
  CapsuleRecord rec = *r.get(id);
  const std::string from(to_string(rec.state));
  rec.state = state;
  r.update(rec, event(from, std::string(to_string(state)), why));
  return rec;
}

}  // namespace

// ================= behaviour, on all three =================

TEST_CASE_TEMPLATE("capsule records: insert and get keep every field; version 1; the first event", R, ALL_RECORDS) {
  R r;
  CapsuleRecord rec = full_record("alice", "s1", {{"app", "web"}, {"env", "prod"}});
  r->insert(rec, event("", "starting", "create"));

  auto got = r->get(rec.id);
  REQUIRE(got);
  CHECK(got->version == 1);
  CapsuleRecord expected = rec;
  expected.version = 1;
  CHECK(js(*got) == js(expected));  // every field, the spec's too

  CHECK_FALSE(r->get(new_capsule_id()));
  CHECK_FALSE(r->get("not-an-id"));

  auto evs = r->events(rec.id);
  REQUIRE(evs.size() == 1);
  CHECK(evs[0].seq == 1);
  CHECK(evs[0].capsule_id == rec.id);
  CHECK(evs[0].from.empty());
  CHECK(evs[0].to == "starting");
  CHECK(evs[0].reason == "create");
  CHECK(evs[0].at_ms > 1'600'000'000'000);  // filled with now when not given

  // Times not given are filled: created now, updated = created.
  CapsuleRecord bare;
  bare.id = new_capsule_id();
  CapsuleEvent first = event("", "starting");
  first.at_ms = 1234;
  r->insert(bare, first);
  auto b = r->get(bare.id);
  REQUIRE(b);
  CHECK(b->created_ms > 1'600'000'000'000);
  CHECK(b->updated_ms == b->created_ms);
  CHECK(b->state == CapsuleState::starting);
  CHECK(r->events(bare.id).at(0).at_ms == 1234);
}

TEST_CASE_TEMPLATE("capsule records: a bad id is refused, a duplicate id is a conflict; nothing written", R,
                   ALL_RECORDS) {
  R r;
  CapsuleRecord bad = full_record();
  bad.id = "cap-XYZ";
  CHECK_THROWS_AS(r->insert(bad, event("", "starting")), pw::CapsuleValidationError);
  CHECK(r->list({}).empty());

  CapsuleRecord a = full_record();
  insert(*r, a);
  CapsuleRecord again = full_record("bob", "other");
  again.id = a.id;
  again.reason = "second";
  try {
    r->insert(again, event("", "running", "second"));
    FAIL("no conflict");
  } catch (const pw::CapsuleConflictError& e) {
    CHECK(std::string(e.what()) == "capsule " + a.id + " already exists");
  }
  CHECK(r->get(a.id)->reason == "created for a test");
  CHECK(r->get(a.id)->spec.owner.empty());
  CHECK(tos(r->events(a.id)) == std::vector<std::string>{"starting"});
  CHECK(r->list({}).size() == 1);
}

TEST_CASE_TEMPLATE("capsule records: list filters, newest first, limit", R, ALL_RECORDS) {
  R r;
  // created_ms gives the order; two share a time (then the greater id comes first).
  auto a = full_record("alice", "s1", {{"app", "web"}, {"env", "prod"}}, 1000);
  auto b = full_record("alice", "s2", {{"app", "web"}, {"env", "dev"}}, 2000);
  auto c = full_record("bob", "s1", {{"app", "db"}}, 3000);
  auto d = full_record("bob", "", {{"app", "web"}, {"env", "prod"}}, 3000);
  auto e = full_record("", "", {}, 4000);
  auto x = full_record("alice", "s3", {{"app", "web"}, {"env", "prod"}}, 5000);
  for (auto* rec : {&a, &b, &c, &d, &e, &x}) insert(*r, *rec);
  move_to(*r, b.id, CapsuleState::paused);
  move_to(*r, x.id, CapsuleState::destroyed);

  const auto [cd_first, cd_second] = c.id > d.id ? std::pair(c.id, d.id) : std::pair(d.id, c.id);
  using V = std::vector<std::string>;
  CHECK(ids(r->list({})) == V{e.id, cd_first, cd_second, b.id, a.id});  // destroyed left out

  CapsuleFilter f;
  f.include_destroyed = true;
  CHECK(ids(r->list(f)) == V{x.id, e.id, cd_first, cd_second, b.id, a.id});
  f.limit = 2;
  CHECK(ids(r->list(f)) == V{x.id, e.id});

  CapsuleFilter by_state;
  by_state.state = CapsuleState::paused;
  CHECK(ids(r->list(by_state)) == V{b.id});
  by_state.state = CapsuleState::destroyed;  // an explicit state lists destroyed ones
  CHECK(ids(r->list(by_state)) == V{x.id});
  by_state.state = CapsuleState::error;
  CHECK(r->list(by_state).empty());

  CapsuleFilter by_owner;
  by_owner.owner = "alice";
  CHECK(ids(r->list(by_owner)) == V{b.id, a.id});
  by_owner.session = "s1";
  CHECK(ids(r->list(by_owner)) == V{a.id});
  CapsuleFilter by_session;
  by_session.session = "s1";
  CHECK(ids(r->list(by_session)) == V{c.id, a.id});

  // Labels: every given pair must match.
  CapsuleFilter by_labels;
  by_labels.labels = {{"app", "web"}};
  CHECK(ids(r->list(by_labels)) == V{d.id, b.id, a.id});
  by_labels.labels = {{"app", "web"}, {"env", "prod"}};
  CHECK(ids(r->list(by_labels)) == V{d.id, a.id});
  by_labels.include_destroyed = true;
  CHECK(ids(r->list(by_labels)) == V{x.id, d.id, a.id});
  by_labels.limit = 1;
  CHECK(ids(r->list(by_labels)) == V{x.id});
  by_labels.labels = {{"app", "web"}, {"env", "nope"}};
  CHECK(r->list(by_labels).empty());
  by_labels.labels = {{"app", "web"}, {"env", "prod"}};
  by_labels.owner = "bob";
  by_labels.limit = 0;
  CHECK(ids(r->list(by_labels)) == V{d.id});

  // Listed records are whole records.
  CapsuleFilter one;
  one.owner = "alice";
  one.session = "s1";
  auto listed = r->list(one);
  REQUIRE(listed.size() == 1);
  CHECK(js(listed[0]) == js(*r->get(a.id)));
}

TEST_CASE_TEMPLATE("capsule records: a labels filter over many capsules pages to its limit", R, ALL_RECORDS) {
  R r;
  // 600 capsules, every 50th labelled; the newest come first, so the matches are spread
  // over several of the stores' pages.
  std::vector<std::string> labelled;  // newest first
  for (int i = 0; i < 600; ++i) {
    auto rec = full_record("", "",
                           i % 50 == 0 ? std::map<std::string, std::string>{{"pick", "yes"}}
                                       : std::map<std::string, std::string>{{"pick", "no"}},
                           10'000 + i);
    insert(*r, rec);
    if (i % 50 == 0) labelled.insert(labelled.begin(), rec.id);
  }
  CapsuleFilter f;
  f.labels = {{"pick", "yes"}};
  CHECK(ids(r->list(f)) == labelled);
  f.limit = 7;
  CHECK(ids(r->list(f)) == std::vector<std::string>(labelled.begin(), labelled.begin() + 7));
  CapsuleFilter all;
  all.limit = 3;
  CHECK(r->list(all).size() == 3);
  CHECK(r->list({}).size() == 600);
}

TEST_CASE_TEMPLATE("capsule records: update is compare-and-set on the version", R, ALL_RECORDS) {
  R r;
  auto rec = full_record("alice", "s1");
  insert(*r, rec);
  CapsuleRecord cur = *r->get(rec.id);
  const std::int64_t created = cur.created_ms;

  cur.state = CapsuleState::paused;
  cur.reason = "paused by the test";
  cur.idle_remaining_ms = 777;
  cur.spec.labels = {{"k", "v"}};
  cur.created_ms = 1;  // not written: creation time stays
  r->update(cur, event("running", "paused", "the test"));
  CHECK(cur.version == 2);
  CHECK(cur.created_ms == created);
  CHECK(cur.updated_ms >= created);
  auto stored = r->get(rec.id);
  REQUIRE(stored);
  CHECK(js(*stored) == js(cur));
  CHECK(stored->state == CapsuleState::paused);
  CHECK(stored->idle_remaining_ms == 777);
  CHECK(stored->spec.labels == std::map<std::string, std::string>{{"k", "v"}});

  // An update without an event that keeps the state.
  cur.last_active_ms = 424242;
  r->update(cur, std::nullopt);
  CHECK(cur.version == 3);
  CHECK(r->get(rec.id)->last_active_ms == 424242);

  // A stale version: conflict, and nothing written (record and events unchanged).
  CapsuleRecord stale = cur;
  stale.version = 2;
  stale.state = CapsuleState::running;
  stale.reason = "stale write";
  const auto before = js(*r->get(rec.id));
  const auto events_before = r->events(rec.id).size();
  try {
    r->update(stale, event("paused", "running", "stale"));
    FAIL("no conflict");
  } catch (const pw::CapsuleConflictError& e) {
    CHECK(std::string(e.what()) == "capsule " + rec.id + " was changed concurrently");
  }
  CHECK(stale.version == 2);  // the caller's record is left as it was
  CHECK(js(*r->get(rec.id)) == before);
  CHECK(r->events(rec.id).size() == events_before);

  // A state change without an event: refused, nothing written.
  CapsuleRecord silent = cur;
  silent.state = CapsuleState::stopped;
  CHECK_THROWS_AS(r->update(silent, std::nullopt), pw::CapsuleValidationError);
  CHECK(js(*r->get(rec.id)) == before);

  // A missing record.
  CapsuleRecord ghost = full_record();
  ghost.version = 1;
  CHECK_THROWS_AS(r->update(ghost, event("running", "paused")), pw::CapsuleNotFoundError);
  CHECK_FALSE(r->get(ghost.id));

  // An event that is not a state ("ping") with the state unchanged.
  r->update(cur, event("paused", "ping", "kept alive"));
  CHECK(cur.version == 4);
  CHECK(tos(r->events(rec.id)) == std::vector<std::string>{"starting", "paused", "ping"});
}

TEST_CASE_TEMPLATE("capsule records: events in order with increasing seq; a limit gives the newest", R, ALL_RECORDS) {
  R r;
  auto rec = full_record("", "", {}, 1000, CapsuleState::starting);
  insert(*r, rec);
  auto other = full_record("", "", {}, 1000, CapsuleState::starting);
  insert(*r, other);
  const std::vector<CapsuleState> path{CapsuleState::running, CapsuleState::paused,  CapsuleState::running,
                                       CapsuleState::stopped, CapsuleState::running, CapsuleState::destroyed};
  for (auto s : path) move_to(*r, rec.id, s, "to " + std::string(to_string(s)));
  move_to(*r, other.id, CapsuleState::running);

  auto evs = r->events(rec.id);
  CHECK(seqs(evs) == std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7});
  CHECK(tos(evs) ==
        std::vector<std::string>{"starting", "running", "paused", "running", "stopped", "running", "destroyed"});
  for (std::size_t i = 1; i < evs.size(); ++i) {
    CHECK(evs[i].from == evs[i - 1].to);
    CHECK(evs[i].at_ms >= evs[i - 1].at_ms);
    CHECK(evs[i].capsule_id == rec.id);
    CHECK(evs[i].reason == "to " + evs[i].to);
  }
  // The other capsule's events are its own, numbered from 1.
  CHECK(seqs(r->events(other.id)) == std::vector<std::int64_t>{1, 2});

  auto last3 = r->events(rec.id, 3);
  CHECK(seqs(last3) == std::vector<std::int64_t>{5, 6, 7});
  CHECK(seqs(r->events(rec.id, 100)) == seqs(evs));
  CHECK(r->events(new_capsule_id()).empty());
}

TEST_CASE_TEMPLATE("capsule records: one live capsule per owner+session; destroying frees the pair", R, ALL_RECORDS) {
  R r;
  auto first = full_record("alice", "main");
  insert(*r, first);

  auto twin = full_record("alice", "main");
  try {
    insert(*r, twin);
    FAIL("no conflict");
  } catch (const pw::CapsuleConflictError& e) {
    CHECK(std::string(e.what()) == "owner 'alice' already has a capsule for session 'main'");
  }
  CHECK_FALSE(r->get(twin.id));
  CHECK(r->events(twin.id).empty());
  CHECK(r->list({}).size() == 1);

  // Other sessions, other owners, and empty owner or session reserve nothing.
  insert(*r, full_record("alice", "other"));
  insert(*r, full_record("bob", "main"));
  insert(*r, full_record("alice", ""));
  insert(*r, full_record("alice", ""));
  insert(*r, full_record("", "main"));
  insert(*r, full_record("", "main"));
  // A destroyed record inserted as such reserves nothing either.
  insert(*r, full_record("alice", "main", {}, 1, CapsuleState::destroyed));

  // Changing a capsule's owner+session onto a taken pair is a conflict too.
  auto mover = full_record("carol", "x");
  insert(*r, mover);
  CapsuleRecord m = *r->get(mover.id);
  m.spec.owner = "alice";
  m.spec.session = "main";
  CHECK_THROWS_AS(r->update(m, std::nullopt), pw::CapsuleConflictError);
  CHECK(r->get(mover.id)->spec.owner == "carol");

  // Destroyed: the pair is free for a new capsule.
  move_to(*r, first.id, CapsuleState::destroyed, "destroy");
  insert(*r, twin);
  CHECK(r->get(twin.id)->spec.session == "main");
  // … and the destroyed one cannot come back to life while the new one holds it.
  CapsuleRecord back = *r->get(first.id);
  back.state = CapsuleState::running;
  CHECK_THROWS_AS(r->update(back, event("destroyed", "running")), pw::CapsuleConflictError);
  CHECK(r->get(first.id)->state == CapsuleState::destroyed);
  CHECK(r->events(first.id).size() == 2);

  CapsuleFilter live;
  live.owner = "alice";
  live.session = "main";
  CHECK(ids(r->list(live)) == std::vector<std::string>{twin.id});
}

TEST_CASE_TEMPLATE("capsule records: purge removes a destroyed record and its events", R, ALL_RECORDS) {
  R r;
  auto keep = full_record();
  auto gone = full_record();
  insert(*r, keep);
  insert(*r, gone);
  move_to(*r, gone.id, CapsuleState::running);

  CHECK_THROWS_AS(r->purge(gone.id), pw::CapsuleConflictError);  // not destroyed
  CHECK(r->get(gone.id));
  CHECK(r->events(gone.id).size() == 2);

  move_to(*r, gone.id, CapsuleState::destroyed);
  r->purge(gone.id);
  CHECK_FALSE(r->get(gone.id));
  CHECK(r->events(gone.id).empty());
  CapsuleFilter all;
  all.include_destroyed = true;
  CHECK(ids(r->list(all)) == std::vector<std::string>{keep.id});
  CHECK(r->events(keep.id).size() == 1);
  if constexpr (R::database) {
    CHECK(r.query("SELECT count(*) FROM capsule_events WHERE capsule_id = '" + gone.id + "'") == "0");
    CHECK(r.query("SELECT count(*) FROM capsule_events") == "1");
  }
  r->purge(gone.id);  // again: nothing to do
  r->purge(new_capsule_id());
  // The id can be used again, its events numbered from 1.
  insert(*r, gone);
  CHECK(seqs(r->events(gone.id)) == std::vector<std::int64_t>{1});
}

TEST_CASE_TEMPLATE("capsule records: 8 threads updating one record: exactly one wins per version", R, ALL_RECORDS) {
  R r;
  auto rec = full_record();
  insert(*r, rec);
  constexpr int THREADS = 8, ROUNDS = 25;
  // Every round, all threads read the record (one version), wait for each other, then write.
  std::barrier sync(THREADS);
  std::mutex mu;
  std::map<std::int64_t, std::vector<int>> winners;  // version read → threads that wrote it
  std::atomic<int> conflicts{0}, other_errors{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < THREADS; ++t)
    ts.emplace_back([&, t] {
      for (int round = 0; round < ROUNDS; ++round) {
        std::optional<CapsuleRecord> cur;
        try {
          cur = r->get(rec.id);
        } catch (...) {
          ++other_errors;
        }
        sync.arrive_and_wait();  // all have read the same version
        if (!cur) {
          sync.arrive_and_wait();
          continue;
        }
        const std::int64_t read = cur->version;
        const std::string from(to_string(cur->state));
        cur->state = cur->state == CapsuleState::running ? CapsuleState::paused : CapsuleState::running;
        cur->reason = "thread " + std::to_string(t);
        try {
          r->update(*cur, event(from, std::string(to_string(cur->state)), cur->reason));
          std::lock_guard lock(mu);
          winners[read].push_back(t);
        } catch (const pw::CapsuleConflictError&) {
          ++conflicts;
        } catch (...) {
          ++other_errors;
        }
        sync.arrive_and_wait();  // the round is over before anyone reads again
      }
    });
  for (auto& t : ts) t.join();

  CHECK(other_errors == 0);
  CHECK(winners.size() == std::size_t{ROUNDS});
  for (const auto& [version, who] : winners) {
    CAPTURE(version);
    CHECK(who.size() == 1);
  }
  CHECK(conflicts == ROUNDS * (THREADS - 1));
  auto last = r->get(rec.id);
  REQUIRE(last);
  CHECK(last->version == 1 + ROUNDS);
  // One event per winning write, numbered without gaps, each naming its winner.
  auto evs = r->events(rec.id);
  REQUIRE(evs.size() == std::size_t{1 + ROUNDS});
  for (std::size_t i = 0; i < evs.size(); ++i) CHECK(evs[i].seq == static_cast<std::int64_t>(i + 1));
  for (const auto& [version, who] : winners)
    CHECK(evs[static_cast<std::size_t>(version)].reason == "thread " + std::to_string(who.at(0)));
  CHECK(last->reason == evs.back().reason);
}

// Threads that each keep updating until they have written N times: every write lands once.
TEST_CASE_TEMPLATE("capsule records: concurrent writers with retries lose nothing", R, ALL_RECORDS) {
  R r;
  auto rec = full_record();
  insert(*r, rec);
  constexpr int THREADS = 8, WRITES = 10;
  std::atomic<int> errors{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < THREADS; ++t)
    ts.emplace_back([&, t] {
      try {
        for (int n = 0; n < WRITES;) {
          CapsuleRecord cur = *r->get(rec.id);
          try {
            r->update(cur,
                      event(std::string(to_string(cur.state)), "ping", std::to_string(t) + ":" + std::to_string(n)));
            ++n;
          } catch (const pw::CapsuleConflictError&) {
          }
        }
      } catch (...) {
        ++errors;
      }
    });
  for (auto& t : ts) t.join();
  CHECK(errors == 0);
  CHECK(r->get(rec.id)->version == 1 + THREADS * WRITES);
  auto evs = r->events(rec.id);
  REQUIRE(evs.size() == std::size_t{1 + THREADS * WRITES});
  std::set<std::string> reasons;
  for (std::size_t i = 1; i < evs.size(); ++i) reasons.insert(evs[i].reason);
  CHECK(reasons.size() == std::size_t{THREADS * WRITES});
  // Each thread's writes appear in its own order.
  std::map<std::string, int> next;
  for (std::size_t i = 1; i < evs.size(); ++i) {
    const auto colon = evs[i].reason.find(':');
    const std::string who = evs[i].reason.substr(0, colon);
    CHECK(std::stoi(evs[i].reason.substr(colon + 1)) == next[who]++);
  }
}

// ================= the databases =================

TEST_CASE_TEMPLATE("capsule records: a database of the previous schema version is migrated, its pods kept", Db,
                   SqliteDb, PostgresDb) {
  namespace d = pw::server::detail;
  ensure_env();
  Db db;
  // Version 2 exactly as the previous program left it: its migrations, a pod sealed with
  // the key, a finished command.
  db.query(d::MIGRATIONS_TABLE);
  for (const auto& m : d::MIGRATIONS) {
    if (m.version > 2) break;
    db.query(Db::script(m));
    db.query("INSERT INTO schema_migrations (version, applied_at) VALUES (" + std::to_string(m.version) +
             ", '2026-01-01T00:00:00.000Z')");
  }
  const std::string url = "wss://old.example/x?token=old-secret";
  const std::string sealed = pw::server::detail::SecretBox::from_environment().seal(url, "old");
  db.query(
      "INSERT INTO pods (alias, url_redacted, url_secret, provider, labels, created_at, updated_at) VALUES ('old', "
      "'wss://old.example/x?token=***', " +
      Db::blob(sealed) +
      ", 'plaintty', '{\"app\":\"legacy\"}', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')");
  db.query(
      "INSERT INTO commands (alias, command, status, exit_code, output, duration, truncated, pod_label, started_at, "
      "finished_at, server_id) VALUES ('old', 'uptime', 'succeeded', 0, 'up 3 days', 0.5, FALSE, '', "
      "'2026-01-01T00:00:01.000Z', '2026-01-01T00:00:02.000Z', 'h:1:1')");
  CHECK(db.tables().find("capsules") == std::string::npos);

  auto store = open_store(db.url);
  CHECK(db.query("SELECT max(version) FROM schema_migrations") == std::to_string(d::MIGRATIONS.back().version));
  CHECK(d::MIGRATIONS.back().version == 3);
  CHECK(db.tables().find("capsule_events") != std::string::npos);
  auto pod = store->get_pod("old");
  REQUIRE(pod);
  CHECK(pod->url.reveal() == url);
  CHECK(pod->labels == pw::server::Labels{{"app", "legacy"}});
  auto cmds = store->list_commands({});
  REQUIRE(cmds.size() == 1);
  CHECK(cmds[0].output == "up 3 days");

  auto records = store->capsule_records();
  auto rec = full_record("alice", "s1");
  insert(*records, rec);
  CHECK(records->get(rec.id)->spec.owner == "alice");
  // Opening again changes nothing.
  const std::string migrations = db.query("SELECT version, applied_at FROM schema_migrations ORDER BY version");
  records.reset();
  store.reset();
  store = open_store(db.url);
  CHECK(db.query("SELECT version, applied_at FROM schema_migrations ORDER BY version") == migrations);
  CHECK(store->capsule_records()->get(rec.id));
  CHECK(store->list_pods().size() == 1);
}

TEST_CASE_TEMPLATE("capsule records: records and events survive reopening the store", R, DATABASE_RECORDS) {
  R r;
  auto rec = full_record("alice", "s1", {{"app", "web"}});
  insert(*r, rec);
  CapsuleRecord cur = move_to(*r, rec.id, CapsuleState::paused, "idle");
  const auto before = js(cur);
  r.reopen();
  auto got = r->get(rec.id);
  REQUIRE(got);
  CHECK(js(*got) == before);
  CHECK(tos(r->events(rec.id)) == std::vector<std::string>{"starting", "paused"});
  // The compare-and-set and the seq carry on from the stored values.
  CapsuleRecord stale = *got;
  stale.version = 1;
  CHECK_THROWS_AS(r->update(stale, std::nullopt), pw::CapsuleConflictError);
  move_to(*r, rec.id, CapsuleState::running, "resume");
  CHECK(seqs(r->events(rec.id)) == std::vector<std::int64_t>{1, 2, 3});
  // The pair is still reserved after the reopen.
  CHECK_THROWS_AS(insert(*r, full_record("alice", "s1")), pw::CapsuleConflictError);
}

// Two replicas (two stores on one database), 4 threads each, all creating a capsule for the
// same owner+session at once: exactly one is created, the others get a conflict.
TEST_CASE_TEMPLATE("capsule records: two replicas cannot both create a capsule for one owner+session", R,
                   DATABASE_RECORDS) {
  R r;
  auto second = open_store(r.db.url);
  auto other = second->capsule_records();
  constexpr int PER_REPLICA = 4, ROUNDS = 5;
  for (int round = 0; round < ROUNDS; ++round) {
    const std::string session = "race-" + std::to_string(round);
    std::barrier sync(2 * PER_REPLICA);
    std::atomic<int> created{0}, conflicts{0}, errors{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 2 * PER_REPLICA; ++t)
      ts.emplace_back([&, t] {
        CapsuleRecords& replica = t % 2 ? *other : *r;
        auto rec = full_record("alice", session);
        sync.arrive_and_wait();
        try {
          insert(replica, rec);
          ++created;
        } catch (const pw::CapsuleConflictError&) {
          ++conflicts;
        } catch (...) {
          ++errors;
        }
      });
    for (auto& t : ts) t.join();
    CHECK(created == 1);
    CHECK(conflicts == 2 * PER_REPLICA - 1);
    CHECK(errors == 0);
    CapsuleFilter f;
    f.owner = "alice";
    f.session = session;
    CHECK(r->list(f).size() == 1);
    CHECK(other->list(f).size() == 1);
  }
  CHECK(r.query("SELECT count(*) FROM capsule_events") == std::to_string(ROUNDS));  // no orphan events
}

TEST_CASE("capsule records: PostgreSQL restarted under an open store") {
  PostgresRecords r;
  auto rec = full_record("alice", "s1");
  insert(*r, rec);
  // Several pooled connections, all stale after the restart.
  {
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t)
      ts.emplace_back([&] {
        for (int i = 0; i < 10; ++i) CHECK(r->list({}).size() == 1);
      });
    for (auto& t : ts) t.join();
  }
  cluster().restart();
  // A stale pooled connection is replaced without a failed call.
  auto got = r->get(rec.id);
  REQUIRE(got);
  CHECK(got->version == 1);
  std::atomic<int> errors{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      try {
        for (int i = 0; i < 10; ++i) (void)r->list({});
      } catch (...) {
        ++errors;
      }
    });
  for (auto& t : ts) t.join();
  CHECK(errors == 0);
  CapsuleRecord cur = move_to(*r, rec.id, CapsuleState::stopped, "after restart");
  CHECK(cur.version == 2);
  CHECK(tos(r->events(rec.id)) == std::vector<std::string>{"starting", "stopped"});

  // Killed outright and back: calls fail while it is down, then work again.
  cluster().kill_postmaster();
  CHECK_THROWS_AS(r->get(rec.id), pw::server::StoreError);
  cluster().start();
  bool back = pw::testing::wait_until([&] {
    try {
      return r->get(rec.id).has_value();
    } catch (const pw::server::StoreError&) {
      return false;
    }
  });
  CHECK(back);
  CHECK(r->get(rec.id)->state == CapsuleState::stopped);
  insert(*r, full_record("bob", "s1"));
  CHECK(r->list({}).size() == 2);
}

// The list statements, exactly as the stores run them, are answered through an index in
// the newest-first order (no sort of the whole table) for each filter.
TEST_CASE_TEMPLATE("capsule records: the list filters are indexed", Db, SqliteDb, PostgresDb) {
  namespace d = pw::server::detail;
  ensure_env();
  Db db;
  (void)open_store(db.url);
  const bool sqlite = std::is_same_v<Db, SqliteDb>;
  // mask bits: 1 state, 2 owner, 4 session, 8 not destroyed (list_capsules_sql).
  const std::vector<std::pair<unsigned, std::string>> cases{{8, "capsules_created"},
                                                            {1, "capsules_state_created"},
                                                            {2 | 8, "capsules_owner_created"},
                                                            {4 | 8, "capsules_session_created"}};
  for (const auto& [mask, index] : cases) {
    CAPTURE(mask);
    std::string plan;
    if constexpr (sqlite) {
      plan = db.query("EXPLAIN QUERY PLAN " + d::render(d::list_capsules_sql(mask), d::Placeholders::sqlite));
      CHECK(plan.find("TEMP B-TREE") == std::string::npos);
    } else {
      // A generic plan (as prepared statements get), the table too small to matter.
      std::string args;
      for (unsigned bit : {1u, 2u, 4u})
        if (mask & bit) args += "'x', ";
      plan = db.query("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off; PREPARE q AS " +
                      d::list_capsules_sql(mask) + "; EXPLAIN EXECUTE q(" + args + "10)");
      CHECK(plan.find("Sort") == std::string::npos);
    }
    CAPTURE(plan);
    CHECK(plan.find(index) != std::string::npos);
  }
}

// CapsuleManager against a real dockerd (run_capsule_manager_tests.sh starts a private one,
// imports a busybox image from local files, and runs this suite once with the docker-exec
// fallback and once with the agent when pw-agent was built). Records: MemoryCapsuleRecords.
// Every case destroys what it made; the script fails when a capsule container is left.
#include "../../support/fixtures.hpp"
#include "embedded_server/store/store.hpp"

#include <podwrangler/capsules/docker_backend.hpp>
#include <podwrangler/capsules/manager.hpp>
#include <podwrangler/capsules/records.hpp>
#include <podwrangler/errors.hpp>

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace pw;
using namespace pw::capsules;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string env(const char* k) {
  const char* v = std::getenv(k);
  return v ? v : "";
}

bool agent_mode() { return env("PW_CAPSULE_MODE") == "agent"; }

std::string agent_bin() {
#ifdef PW_AGENT_BIN
  return PW_AGENT_BIN;
#else
  return "";
#endif
}

std::string expected_mode() { return agent_mode() ? "agent" : "docker-exec"; }

// The records: MemoryCapsuleRecords, or the server's store on SQLite (PW_CAPSULE_RECORDS=sqlite,
// a fresh database file each), kept alive as long as the records are.
std::shared_ptr<CapsuleRecords> new_records() {
  if (env("PW_CAPSULE_RECORDS") != "sqlite") return make_memory_capsule_records();
  static testing::TempDir xdg;
  ::setenv("XDG_DATA_HOME", xdg.path().c_str(), 1);
  if (env("PODWRANGLER_SECRET_KEY").empty()) ::setenv("PODWRANGLER_SECRET_KEY", "capsule-manager-suite-key", 1);
  struct Keeper {
    testing::TempDir dir;
    std::unique_ptr<server::Store> store;
    std::shared_ptr<CapsuleRecords> records;
  };
  auto k = std::make_shared<Keeper>();
  k->store = server::open_store("sqlite:///" + k->dir.file("capsules.db"));
  k->records = k->store->capsule_records();
  CapsuleRecords* raw = k->records.get();
  return std::shared_ptr<CapsuleRecords>(std::move(k), raw);
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The docker CLI bound to the suite's daemon.
std::string docker_cmd(const std::string& args) {
  return quote(env("PW_DOCKER_CLI").empty() ? "docker" : env("PW_DOCKER_CLI")) + " -H " + quote(env("PW_DOCKER_HOST")) +
         " " + args;
}
int docker(const std::string& args) { return testing::sh(docker_cmd(args) + " >/dev/null 2>&1"); }
std::string docker_out(const std::string& args) {
  std::string out;
  FILE* p = ::popen((docker_cmd(args) + " 2>/dev/null").c_str(), "r");
  if (!p) return out;
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  ::pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}
// Stops or restarts the suite's dockerd in place (dockerd_ctl.sh).
int dockerd_ctl(const std::string& what) {
  return testing::sh("bash " + quote(env("PW_CAPSULE_DOCKERD_CTL")) + " " + what + " >&2");
}

// Capsule containers the engine has (all states).
std::vector<std::string> capsule_containers() {
  std::vector<std::string> ids;
  std::string out = docker_out("ps -aq --no-trunc --filter label=podwrangler.capsule");
  std::size_t i = 0;
  while (i < out.size()) {
    std::size_t j = out.find('\n', i);
    if (j == std::string::npos) j = out.size();
    if (j > i) ids.push_back(out.substr(i, j - i));
    i = j + 1;
  }
  return ids;
}

bool container_exists(const std::string& cid) { return docker("inspect " + quote(cid)) == 0; }

ExecRequest shell(const std::string& script) {
  ExecRequest r;
  r.argv = {"sh", "-c", script};
  return r;
}

struct StringSource : ByteSource {
  std::string data;
  std::size_t pos = 0;
  explicit StringSource(std::string d) : data(std::move(d)) {}
  std::size_t read(char* buf, std::size_t n) override {
    n = std::min(n, data.size() - pos);
    std::copy_n(data.data() + pos, n, buf);
    pos += n;
    return n;
  }
};
struct StringSink : ByteSink {
  std::string data;
  void write(std::string_view b) override { data.append(b); }
};

// One manager on the suite's dockerd, its own data dir, memory records (shared when given).
struct Rig {
  testing::TempDir dir;
  std::shared_ptr<CapsuleRecords> records;
  std::shared_ptr<CapsuleBackend> backend;
  std::unique_ptr<CapsuleManager> m;

  explicit Rig(const std::function<void(ManagerSettings&)>& tweak = {}, std::shared_ptr<CapsuleRecords> shared = {},
               const std::string& data_dir = "") {
    records = shared ? shared : new_records();
    backend = std::shared_ptr<CapsuleBackend>(make_docker_backend(env("PW_DOCKER_HOST")));
    ManagerSettings s;
    s.data_dir = data_dir.empty() ? dir.path().string() : data_dir;
    s.agent_path = agent_mode() ? agent_bin() : "";
    s.monitor_interval = 200ms;
    s.ready_timeout = 20s;
    if (tweak) tweak(s);
    m = std::make_unique<CapsuleManager>(s, backend, records);
  }
  ~Rig() {
    if (!m) return;
    try {
      m->stop_monitor();
      for (const auto& r : records->list(CapsuleFilter{})) m->destroy(r.id);
    } catch (const std::exception& ex) {
      MESSAGE("cleanup: " << ex.what());
    }
  }
  CapsuleSpec spec() const {
    CapsuleSpec s;
    s.image = env("PW_CAPSULE_IMAGE");
    return s;
  }
  ExecResult sh(const std::string& id, const std::string& script) { return m->exec(id, shell(script)).result; }
  std::vector<CapsuleEvent> events(const std::string& id) { return m->events(id); }
  int count_events(const std::string& id, const std::string& to) {
    int n = 0;
    for (const auto& e : m->events(id)) n += e.to == to;
    return n;
  }
  // Runs monitor passes until pred holds.
  bool monitor_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
    return testing::wait_until(
        [&] {
          try {
            m->monitor_once();
          } catch (const EngineUnavailableError&) {
          }
          return pred();
        },
        timeout);
  }
  CapsuleState state(const std::string& id) { return records->get(id)->state; }
};

bool has_transition(const std::vector<CapsuleEvent>& evs, const std::string& from, const std::string& to) {
  return std::any_of(evs.begin(), evs.end(), [&](const CapsuleEvent& e) { return e.from == from && e.to == to; });
}

std::uint32_t mode_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

template <class Err, class F>
std::string expect_throw(F&& f) {
  try {
    f();
  } catch (const Err& e) {
    return e.what();
  }
  FAIL("no exception of the expected kind");
  return "";
}

std::string field_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const CapsuleValidationError& e) {
    return e.field();
  }
  return "(no validation error)";
}

}  // namespace

TEST_SUITE("capsule_manager") {
  TEST_CASE("capsule_manager: the suite's environment") {
    REQUIRE_FALSE(env("PW_DOCKER_HOST").empty());
    REQUIRE_FALSE(env("PW_CAPSULE_IMAGE").empty());
    if (agent_mode()) REQUIRE_FALSE(agent_bin().empty());
    CHECK(capsule_containers().empty());
  }

  TEST_CASE("capsule_manager: a spec is validated whole before anything is made, naming the field") {
    Rig rig([](ManagerSettings& s) {
      CapsuleSpec t;
      t.image = env("PW_CAPSULE_IMAGE");
      s.templates["tiny"] = t;
    });
    auto& m = *rig.m;
    auto bad = [&](auto&& change) {
      CapsuleSpec s = rig.spec();
      change(s);
      return field_of([&] { m.create(s); });
    };
    CHECK(bad([](CapsuleSpec& s) { s.image.clear(); }) == "image");
    CHECK(bad([](CapsuleSpec& s) { s.image = "busy box"; }) == "image");
    CHECK(bad([](CapsuleSpec& s) { s.vcpus = 0; }) == "vcpus");
    CHECK(bad([](CapsuleSpec& s) { s.vcpus = 1e6; }) == "vcpus");
    CHECK(bad([](CapsuleSpec& s) { s.memory_mb = 5; }) == "memory_mb");
    CHECK(bad([](CapsuleSpec& s) { s.pids_limit = 15; }) == "pids_limit");
    CHECK(bad([](CapsuleSpec& s) { s.idle_timeout_s = -1; }) == "timeout");
    CHECK(bad([](CapsuleSpec& s) { s.lifetime_s = -1; }) == "lifetime");
    CHECK(bad([](CapsuleSpec& s) {
            s.network = "bridge";
            s.ports = {PortSpec{0}};
          }) == "ports");
    CHECK(bad([](CapsuleSpec& s) {
            s.network = "bridge";
            s.ports = {PortSpec{70000}};
          }) == "ports");
    CHECK(bad([](CapsuleSpec& s) {
            s.network = "bridge";
            s.ports = {PortSpec{80}, PortSpec{80}};
          }) == "ports");
    CHECK(bad([](CapsuleSpec& s) { s.env["1A"] = "x"; }) == "env");
    CHECK(bad([](CapsuleSpec& s) { s.env["A-B"] = "x"; }) == "env");
    CHECK(bad([](CapsuleSpec& s) { s.mounts = {MountSpec{"relative", "/data"}}; }) == "mounts");
    CHECK(bad([](CapsuleSpec& s) { s.mounts = {MountSpec{"/tmp", "data"}}; }) == "mounts");
    CHECK(bad([](CapsuleSpec& s) { s.mounts = {MountSpec{"/tmp/../etc", "/data"}}; }) == "mounts");
    CHECK(bad([](CapsuleSpec& s) { s.mounts = {MountSpec{"/tmp", "/.podwrangler/x"}}; }) == "mounts");
    CHECK(bad([](CapsuleSpec& s) { s.network = "host"; }) == "network");
    CHECK(bad([](CapsuleSpec& s) { s.network = "container:abc"; }) == "network");
    CHECK(bad([](CapsuleSpec& s) { s.labels["podwrangler.capsule"] = "x"; }) == "labels");
    CHECK(bad([](CapsuleSpec& s) {
            s.workspace = true;
            s.owner = "..";
            s.session = "s";
          }) == "owner");
    CHECK(bad([](CapsuleSpec& s) {
            s.workspace = true;
            s.owner = "alice";
            s.session = "a/b";
          }) == "session");
    CHECK(bad([](CapsuleSpec& s) {
            s.workspace = true;
            s.owner = "alice";
          }) == "session");
    CapsuleSpec unknown;
    unknown.template_name = "no-such-template";
    CHECK(expect_throw<CapsuleNotFoundError>([&] { m.create(unknown); }).find("template") != std::string::npos);
    // Nothing was recorded, nothing reached the engine.
    CapsuleFilter all;
    all.include_destroyed = true;
    CHECK(rig.records->list(all).empty());
    CHECK(capsule_containers().empty());
    // Requests too.
    CHECK(field_of([&] { m.exec("cap-0000000000000000", ExecRequest{}); }) == "argv");
    CHECK_THROWS_AS(m.exec("cap-0000000000000000", shell("true")), CapsuleNotFoundError);
    CHECK_THROWS_AS(m.get("not-an-id"), CapsuleNotFoundError);
    CHECK(field_of([&] { m.set_timeout("cap-0000000000000000", -5); }) == "timeout");
  }

  TEST_CASE("capsule_manager: create, exec, events, directories, destroy (idempotent)") {
    Rig rig;
    auto& m = *rig.m;
    CapsuleSpec s = rig.spec();
    s.env["GREETING"] = "hello";
    s.labels["team"] = "blue";
    const auto t0 = std::chrono::steady_clock::now();
    CapsuleRecord rec = m.create(s);
    MESSAGE("create: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count()
            << " ms (" << rec.exec_mode << ")");
    CHECK(is_capsule_id(rec.id));
    CHECK(rec.state == CapsuleState::running);
    CHECK(rec.exec_mode == expected_mode());
    if (!agent_mode()) CHECK(rec.exec_mode_reason.find("no agent executable") != std::string::npos);
    CHECK(rec.origin == "cold");
    CHECK_FALSE(rec.container_id.empty());
    CHECK(container_exists(rec.container_id));
    CHECK(docker_out("inspect -f '{{index .Config.Labels \"podwrangler.capsule\"}}' " + rec.container_id) == rec.id);

    const std::string run = rig.dir.path().string() + "/capsules/" + rec.id + "/run";
    CHECK(fs::is_directory(run));
    CHECK(mode_of(run) == 0700);
    CHECK(mode_of(rig.dir.path().string() + "/capsules/" + rec.id) == 0700);

    auto r = rig.sh(rec.id, "echo \"$GREETING\"; echo err >&2; exit 3");
    CHECK(r.stdout_data == "hello\n");
    CHECK(r.stderr_data == "err\n");
    CHECK(r.exit_code == 3);

    // The record was written `starting` first, then the channel, then running.
    auto evs = rig.events(rec.id);
    REQUIRE(evs.size() >= 3);
    CHECK(evs[0].from == "");
    CHECK(evs[0].to == "starting");
    CHECK(has_transition(evs, "starting", "connected"));
    CHECK(has_transition(evs, "starting", "running"));
    for (std::size_t i = 1; i < evs.size(); ++i) CHECK(evs[i].seq > evs[i - 1].seq);

    CapsuleFilter f;
    f.labels["team"] = "blue";
    REQUIRE(m.list(f).size() == 1);
    CHECK(m.list(f)[0].id == rec.id);

    CapsuleRecord gone = m.destroy(rec.id);
    CHECK(gone.state == CapsuleState::destroyed);
    CHECK_FALSE(container_exists(rec.container_id));
    CHECK_FALSE(fs::exists(rig.dir.path().string() + "/capsules/" + rec.id));
    CapsuleRecord again = m.destroy(rec.id);  // idempotent
    CHECK(again.state == CapsuleState::destroyed);
    CHECK(again.version == gone.version);
    CHECK(rig.events(rec.id).back().to == "destroyed");
    CHECK(m.list(CapsuleFilter{}).empty());
    CHECK_THROWS_AS(m.exec(rec.id, shell("true")), CapsuleConflictError);
  }

  TEST_CASE("capsule_manager: the record exists before the engine is called; a failed create is `error`") {
    Rig rig;
    CapsuleSpec s = rig.spec();
    s.image = "pw-no-such-image:1";
    CHECK_THROWS_AS(rig.m->create(s), CapsuleNotFoundError);
    CapsuleFilter all;
    all.include_destroyed = true;
    auto rows = rig.records->list(all);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].state == CapsuleState::error);
    CHECK(rows[0].reason.find("pw-no-such-image") != std::string::npos);
    auto evs = rig.events(rows[0].id);
    REQUIRE(evs.size() >= 2);
    CHECK(evs.front().to == "starting");
    CHECK(evs.back().to == "error");
    CHECK(capsule_containers().empty());
  }

  TEST_CASE("capsule_manager: an unreachable engine is EngineUnavailableError") {
    testing::TempDir dir;
    ManagerSettings s;
    s.data_dir = dir.path().string();
    auto records = new_records();
    auto backend = std::shared_ptr<CapsuleBackend>(make_docker_backend("unix://" + dir.path().string() + "/none.sock"));
    CapsuleManager m(s, backend, records);
    CHECK_THROWS_AS(m.reconcile(), EngineUnavailableError);
    CHECK_THROWS_AS(m.monitor_once(), EngineUnavailableError);
    CapsuleSpec spec;
    spec.image = env("PW_CAPSULE_IMAGE");
    CHECK_THROWS_AS(m.create(spec), EngineUnavailableError);
    m.start_monitor();  // does not throw: it keeps trying
    m.stop_monitor();
  }

  TEST_CASE("capsule_manager: templates give the image and defaults; the request's values win") {
    Rig rig([](ManagerSettings& s) {
      CapsuleSpec t;
      t.image = env("PW_CAPSULE_IMAGE");
      t.memory_mb = 96;
      t.env = {{"FROM_TEMPLATE", "t"}, {"BOTH", "template"}};
      s.templates["tiny"] = t;
    });
    CapsuleSpec req;
    req.template_name = "tiny";
    req.env["BOTH"] = "request";
    auto rec = rig.m->create(req);
    CHECK(rec.spec.image == env("PW_CAPSULE_IMAGE"));
    CHECK(rec.spec.memory_mb == 96);
    CHECK(rec.spec.template_name == "tiny");
    CHECK(rig.sh(rec.id, "echo $FROM_TEMPLATE $BOTH").stdout_data == "t request\n");
    CHECK(rec.limits.memory_bytes == 96LL * 1024 * 1024);
  }

  TEST_CASE("capsule_manager: the workspace is made 0700 per owner/session and survives destroy") {
    Rig rig;
    CapsuleSpec s = rig.spec();
    s.workspace = true;
    s.owner = "alice";
    s.session = "s1";
    auto rec = rig.m->create(s);
    CHECK(rig.sh(rec.id, "echo kept > /workspace/out.txt").exit_code == 0);
    const std::string ws = rig.dir.path().string() + "/workspaces/alice/s1";
    CHECK(testing::read_file(ws + "/out.txt") == "kept\n");
    CHECK(mode_of(ws) == 0700);
    CHECK(mode_of(rig.dir.path().string() + "/workspaces/alice") == 0700);
    rig.m->destroy(rec.id);
    CHECK(testing::read_file(ws + "/out.txt") == "kept\n");
    // The next capsule of that owner and session finds it.
    auto next = rig.m->create(s);
    CHECK(next.id != rec.id);
    CHECK(rig.sh(next.id, "cat /workspace/out.txt").stdout_data == "kept\n");
  }

  TEST_CASE("capsule_manager: states, transitions with events, and the calls each state refuses") {
    Rig rig;
    auto& m = *rig.m;
    auto rec = m.create(rig.spec());
    const std::string id = rec.id;
    CHECK(rig.sh(id, "echo 1 > /tmp/f").exit_code == 0);

    CHECK(m.pause(id).state == CapsuleState::paused);
    CHECK(docker_out("inspect -f '{{.State.Paused}}' " + rec.container_id) == "true");
    CHECK(m.pause(id).state == CapsuleState::paused);  // already paused: as it is
    CHECK_THROWS_AS(m.start(id), CapsuleConflictError);
    CHECK(m.resume(id).state == CapsuleState::running);
    CHECK(m.resume(id).state == CapsuleState::running);

    // exec on a paused capsule resumes it (auto_resume)
    m.pause(id);
    auto r = m.exec(id, shell("cat /tmp/f"));
    CHECK(r.resumed);
    CHECK(r.result.stdout_data == "1\n");
    CHECK(rig.state(id) == CapsuleState::running);

    CHECK(m.stop(id).state == CapsuleState::stopped);
    CHECK(m.stop(id).state == CapsuleState::stopped);
    std::string msg = expect_throw<CapsuleConflictError>([&] { m.pause(id); });
    CHECK(msg.find("stopped") != std::string::npos);
    msg = expect_throw<CapsuleConflictError>([&] { m.exec(id, shell("true")); });
    CHECK(msg.find("start it") != std::string::npos);
    CHECK_THROWS_AS(m.resume(id), CapsuleConflictError);
    CHECK(m.start(id).state == CapsuleState::running);
    CHECK(rig.sh(id, "cat /tmp/f").stdout_data == "1\n");  // the filesystem was kept

    auto evs = rig.events(id);
    CHECK(has_transition(evs, "running", "paused"));
    CHECK(has_transition(evs, "paused", "running"));
    CHECK(has_transition(evs, "running", "stopped"));
    CHECK(has_transition(evs, "stopped", "running"));

    // auto_resume off: exec on a paused capsule is refused
    CapsuleSpec s = rig.spec();
    s.auto_resume = false;
    auto strict = m.create(s);
    m.pause(strict.id);
    msg = expect_throw<CapsuleConflictError>([&] { m.exec(strict.id, shell("true")); });
    CHECK(msg.find("paused") != std::string::npos);
    CHECK(rig.state(strict.id) == CapsuleState::paused);

    m.destroy(id);
    CHECK_THROWS_AS(m.pause(id), CapsuleConflictError);
    CHECK_THROWS_AS(m.start(id), CapsuleConflictError);
    CHECK_THROWS_AS(m.ping(id), CapsuleConflictError);
  }

  TEST_CASE("capsule_manager: files and processes through the capsule's channel") {
    Rig rig;
    auto& m = *rig.m;
    auto rec = m.create(rig.spec());
    m.mkdir(rec.id, "/data/sub", true);
    StringSource src("file body\n");
    m.upload(rec.id, "/data/sub/a.txt", src, 0640);
    StringSink sink;
    m.download(rec.id, "/data/sub/a.txt", sink);
    CHECK(sink.data == "file body\n");
    auto st = m.stat(rec.id, "/data/sub/a.txt");
    CHECK(st.type == "file");
    CHECK(st.size == 10);
    CHECK(st.mode == 0640);
    auto ls = m.list_files(rec.id, "/data", 2);
    CHECK(std::any_of(ls.begin(), ls.end(), [](const FileStat& f) { return f.name == "a.txt"; }));
    m.remove(rec.id, "/data", true);
    CHECK_THROWS_AS(m.stat(rec.id, "/data/sub/a.txt"), CapsuleNotFoundError);
    CHECK(rig.state(rec.id) == CapsuleState::running);  // a missing file is not a broken capsule

    ExecRequest bg;
    bg.argv = {"sleep", "300"};
    const int pid = m.start_background(rec.id, bg);
    CHECK(pid > 0);
    auto procs = m.processes(rec.id);
    CHECK(std::any_of(procs.begin(), procs.end(), [&](const ProcessInfo& p) { return p.pid == pid; }));
    m.kill(rec.id, pid, 9);
    CHECK(testing::wait_until([&] {
      auto ps = m.processes(rec.id);
      return std::none_of(ps.begin(), ps.end(), [&](const ProcessInfo& p) { return p.pid == pid; });
    }));
  }

  TEST_CASE("capsule_manager: create without waiting returns `starting`; the first use waits for it") {
    Rig rig;
    auto rec = rig.m->create(rig.spec(), false);
    CHECK(rec.state == CapsuleState::starting);
    auto r = rig.m->exec(rec.id, shell("echo ready"));
    CHECK(r.result.stdout_data == "ready\n");
    CHECK(rig.m->get(rec.id).state == CapsuleState::running);
  }

  TEST_CASE("capsule_manager: get-or-create reuses running, paused, stopped and broken capsules") {
    Rig rig;
    auto& m = *rig.m;
    CapsuleSpec s = rig.spec();
    s.owner = "bob";
    s.session = "123";
    bool created = false;
    auto first = m.get_or_create(s, &created);
    CHECK(created);
    CHECK(rig.sh(first.id, "echo x > /tmp/mark").exit_code == 0);
    auto again = m.get_or_create(s, &created);
    CHECK_FALSE(created);
    CHECK(again.id == first.id);

    m.pause(first.id);
    again = m.get_or_create(s, &created);
    CHECK_FALSE(created);
    CHECK(again.id == first.id);
    CHECK(again.state == CapsuleState::running);

    m.stop(first.id);
    again = m.get_or_create(s, &created);
    CHECK(again.id == first.id);
    CHECK(again.state == CapsuleState::running);
    CHECK(rig.sh(first.id, "cat /tmp/mark").stdout_data == "x\n");

    REQUIRE(docker("kill " + again.container_id) == 0);
    CHECK(rig.monitor_until([&] { return rig.state(first.id) == CapsuleState::error; }, 10s));
    again = m.get_or_create(s, &created);
    CHECK_FALSE(created);
    CHECK(again.id == first.id);
    CHECK(again.state == CapsuleState::running);

    // Another owner, same session name: another capsule.
    CapsuleSpec other = s;
    other.owner = "carol";
    auto theirs = m.get_or_create(other, &created);
    CHECK(created);
    CHECK(theirs.id != first.id);

    m.destroy(first.id);
    auto fresh = m.get_or_create(s, &created);
    CHECK(created);
    CHECK(fresh.id != first.id);
    CHECK_THROWS_AS(m.get_or_create(rig.spec()), CapsuleValidationError);  // no session
  }

  TEST_CASE("capsule_manager: concurrent get-or-create, in one process and across two, makes one capsule") {
    auto shared = new_records();
    Rig a({}, shared);
    Rig b({}, shared, a.dir.path().string());
    CapsuleSpec s = a.spec();
    s.owner = "race";
    s.session = "one";
    std::vector<std::string> ids(6);
    std::atomic<int> made{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < 6; ++i) {
      ts.emplace_back([&, i] {
        bool created = false;
        CapsuleManager& m = i % 2 ? *b.m : *a.m;
        try {
          ids[i] = m.get_or_create(s, &created).id;
        } catch (const std::exception& ex) {
          ids[i] = std::string("error: ") + ex.what();
        }
        if (created) ++made;
      });
    }
    for (auto& t : ts) t.join();
    for (const auto& id : ids) CHECK(id == ids[0]);
    CHECK(made.load() == 1);
    CapsuleFilter all;
    all.include_destroyed = true;
    // A loser's row may exist (destroyed or error) but one capsule runs, with one container.
    int live = 0;
    for (const auto& r : shared->list(all)) live += r.state == CapsuleState::running;
    CHECK(live == 1);
    b.m->stop_monitor();
    b.m.reset();  // a's destructor cleans up the shared records
  }

  TEST_CASE("capsule_manager: idle timeout counts a background process as work, then expires") {
    Rig rig;
    auto& m = *rig.m;
    CapsuleSpec s = rig.spec();
    s.idle_timeout_s = 2;
    s.on_expire = ExpiryAction::stop;
    auto rec = m.create(s);
    ExecRequest bg;
    bg.argv = {"sleep", "5"};
    const auto t0 = std::chrono::steady_clock::now();
    m.start_background(rec.id, bg);
    // Past the timeout while the sleep runs: still running.
    CHECK_FALSE(rig.monitor_until([&] { return rig.state(rec.id) != CapsuleState::running; }, 4000ms));
    // After it ends, the timer runs out.
    CHECK(rig.monitor_until([&] { return rig.state(rec.id) == CapsuleState::stopped; }, 15s));
    const auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(waited >= 5s);
    auto evs = rig.events(rec.id);
    CHECK(evs.back().to == "stopped");
    CHECK(evs.back().reason == "idle timeout");
    MESSAGE("expired " << std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()
                       << " ms after a 5 s background sleep with a 2 s timeout");
  }

  TEST_CASE("capsule_manager: an exec in progress is work; paused time is not consumed") {
    Rig rig;
    auto& m = *rig.m;
    CapsuleSpec s = rig.spec();
    s.idle_timeout_s = 2;
    s.on_expire = ExpiryAction::destroy;
    auto rec = m.create(s);
    // A 3 s exec with a 2 s timeout: the monitor runs meanwhile (started here) and keeps it.
    m.start_monitor();
    CHECK(rig.sh(rec.id, "sleep 3; echo done").stdout_data == "done\n");
    CHECK(rig.state(rec.id) == CapsuleState::running);
    m.stop_monitor();

    // Paused: the clock stops.
    m.ping(rec.id);
    auto paused = m.pause(rec.id);
    CHECK(paused.idle_remaining_ms > 1000);
    CHECK(paused.idle_remaining_ms <= 2000);
    CHECK_FALSE(rig.monitor_until([&] { return rig.state(rec.id) != CapsuleState::paused; }, 3000ms));
    const auto resumed_at = std::chrono::steady_clock::now();
    auto back = m.resume(rec.id);
    CHECK(back.state == CapsuleState::running);
    CHECK(now_ms() - back.last_active_ms <= 2000 - paused.idle_remaining_ms + 500);
    m.monitor_once();
    CHECK(rig.state(rec.id) == CapsuleState::running);  // the paused seconds were not counted
    CHECK(rig.monitor_until([&] { return rig.state(rec.id) == CapsuleState::destroyed; }, 10s));
    const auto ran = std::chrono::steady_clock::now() - resumed_at;
    CHECK(ran >= std::chrono::milliseconds(paused.idle_remaining_ms - 300));
    CHECK(rig.events(rec.id).back().reason == "idle timeout");
  }

  TEST_CASE("capsule_manager: ping resets the timer; set_timeout changes it live") {
    Rig rig;
    auto& m = *rig.m;
    CapsuleSpec s = rig.spec();
    s.idle_timeout_s = 2;
    s.on_expire = ExpiryAction::pause;
    auto rec = m.create(s);
    // Pinged every 0.5 s for 3 s: never idle for 2 s.
    auto last_ping = std::chrono::steady_clock::now();
    CHECK_FALSE(testing::wait_until(
        [&] {
          if (std::chrono::steady_clock::now() - last_ping > 500ms) {
            m.ping(rec.id);
            last_ping = std::chrono::steady_clock::now();
          }
          m.monitor_once();
          return rig.state(rec.id) != CapsuleState::running;
        },
        3000ms));
    CHECK(rig.count_events(rec.id, "ping") >= 4);

    auto changed = m.set_timeout(rec.id, 0);  // never
    CHECK(changed.spec.idle_timeout_s == 0);
    CHECK(rig.count_events(rec.id, "timeout_changed") == 1);
    CHECK_FALSE(rig.monitor_until([&] { return rig.state(rec.id) != CapsuleState::running; }, 2500ms));
    const auto t0 = std::chrono::steady_clock::now();
    m.set_timeout(rec.id, 1);
    CHECK(rig.monitor_until([&] { return rig.state(rec.id) == CapsuleState::paused; }, 5s));
    CHECK(std::chrono::steady_clock::now() - t0 >= 1s);
    auto r = m.get(rec.id);
    CHECK(r.reason == "idle timeout");
    // Expired into pause: an exec resumes it with a whole timeout ahead.
    auto e = m.exec(rec.id, shell("echo back"));
    CHECK(e.resumed);
    CHECK(e.result.stdout_data == "back\n");
    m.monitor_once();
    CHECK(rig.state(rec.id) == CapsuleState::running);
  }

  TEST_CASE("capsule_manager: a fixed lifetime stops the capsule (or removes it with remove_at_end)") {
    Rig rig;
    auto& m = *rig.m;
    CapsuleSpec s = rig.spec();
    s.lifetime_s = 2;
    s.idle_timeout_s = 0;
    auto kept = m.create(s);
    s.remove_at_end = true;
    auto removed = m.create(s);
    CHECK(rig.monitor_until(
        [&] { return rig.state(kept.id) == CapsuleState::stopped && rig.state(removed.id) == CapsuleState::destroyed; },
        15s));
    CHECK(m.get(kept.id).reason == "lifetime reached");
    CHECK(rig.events(removed.id).back().reason == "lifetime reached");
    CHECK_FALSE(container_exists(removed.container_id));
    CHECK(container_exists(kept.container_id));
    // Kept for reuse: it starts again, with its files.
    CHECK(m.start(kept.id).state == CapsuleState::running);
    CHECK(rig.sh(kept.id, "echo alive").stdout_data == "alive\n");
  }

  TEST_CASE("capsule_manager: killed behind our back: error, then the next exec restarts it") {
    Rig rig;
    auto& m = *rig.m;
    auto rec = m.create(rig.spec());
    CHECK(rig.sh(rec.id, "echo k > /tmp/mark").exit_code == 0);
    REQUIRE(docker("kill " + rec.container_id) == 0);
    CHECK(rig.monitor_until([&] { return rig.state(rec.id) == CapsuleState::error; }, 10s));
    auto broken = m.get(rec.id);
    CHECK(broken.reason.find("exited behind our back") != std::string::npos);
    CHECK(broken.reason.find("137") != std::string::npos);
    auto r = m.exec(rec.id, shell("cat /tmp/mark"));
    CHECK(r.recovered == "restarted");
    CHECK(r.result.stdout_data == "k\n");
    auto now = m.get(rec.id);
    CHECK(now.state == CapsuleState::running);
    CHECK(now.container_id == rec.container_id);
    CHECK(now.exec_mode == expected_mode());

    // Without a monitor pass in between: the exec finds out itself.
    REQUIRE(docker("kill " + rec.container_id) == 0);
    REQUIRE(testing::wait_until(
        [&] { return docker_out("inspect -f '{{.State.Running}}' " + rec.container_id) == "false"; }));
    r = m.exec(rec.id, shell("cat /tmp/mark"));
    CHECK(r.recovered == "restarted");
    CHECK(r.result.stdout_data == "k\n");
  }

  TEST_CASE("capsule_manager: removed behind our back: recreated with the same id, spec and workspace") {
    Rig rig;
    auto& m = *rig.m;
    CapsuleSpec s = rig.spec();
    s.workspace = true;
    s.owner = "dave";
    s.session = "w";
    s.env["KEEP"] = "yes";
    auto rec = m.create(s);
    CHECK(rig.sh(rec.id, "echo ws > /workspace/w.txt; echo tmp > /tmp/t").exit_code == 0);
    REQUIRE(docker("rm -f " + rec.container_id) == 0);
    CHECK(rig.monitor_until([&] { return rig.state(rec.id) == CapsuleState::error; }, 10s));
    CHECK(m.get(rec.id).reason == "container missing");
    auto r = m.exec(rec.id, shell("cat /workspace/w.txt; cat /tmp/t 2>/dev/null || echo no-tmp; echo $KEEP"));
    CHECK(r.recovered == "recreated");
    CHECK(r.result.stdout_data == "ws\nno-tmp\nyes\n");
    auto now = m.get(rec.id);
    CHECK(now.id == rec.id);
    CHECK(now.container_id != rec.container_id);
    CHECK(docker_out("inspect -f '{{index .Config.Labels \"podwrangler.capsule\"}}' " + now.container_id) == rec.id);
  }

  TEST_CASE("capsule_manager: reconcile repairs drift both ways and reports it") {
    auto records = new_records();
    Rig rig({}, records);
    auto& m = *rig.m;
    auto missing = m.create(rig.spec());
    auto paused = m.create(rig.spec());
    auto exited = m.create(rig.spec());
    auto orphan = m.create(rig.spec());
    auto dead_row = m.create(rig.spec());

    REQUIRE(docker("rm -f " + missing.container_id) == 0);
    REQUIRE(docker("pause " + paused.container_id) == 0);
    REQUIRE(docker("kill " + exited.container_id) == 0);
    // A row destroyed while its container stayed (a crash between the two).
    auto row = *records->get(dead_row.id);
    CapsuleEvent ev;
    ev.capsule_id = row.id;
    ev.from = "running";
    ev.to = "destroyed";
    ev.reason = "test";
    row.state = CapsuleState::destroyed;
    records->update(row, ev);
    // A container whose row is gone (another store).
    auto orphan_row = *records->get(orphan.id);
    ev.to = "destroyed";
    orphan_row.state = CapsuleState::destroyed;
    records->update(orphan_row, ev);
    records->purge(orphan.id);

    ReconcileReport rep = m.reconcile();
    auto has = [](const std::vector<std::string>& v, const std::string& id) {
      return std::find(v.begin(), v.end(), id) != v.end();
    };
    CHECK(has(rep.marked_missing, missing.id));
    CHECK(has(rep.removed_orphans, orphan.id));
    CHECK(has(rep.removed_orphans, dead_row.id));
    CHECK(has(rep.state_fixed, paused.id));
    CHECK(has(rep.state_fixed, exited.id));
    CHECK(rep.to_json()["marked_missing"].size() == 1);
    CHECK_FALSE(container_exists(orphan.container_id));
    CHECK_FALSE(container_exists(dead_row.container_id));
    CHECK(rig.state(missing.id) == CapsuleState::error);
    CHECK(records->get(missing.id)->reason == "container missing");
    CHECK(rig.state(paused.id) == CapsuleState::paused);
    CHECK(records->get(paused.id)->reason == "paused behind our back");
    CHECK(rig.state(exited.id) == CapsuleState::error);
    CHECK(has_transition(rig.events(paused.id), "running", "paused"));
    CHECK(has_transition(rig.events(missing.id), "running", "error"));

    // Unpaused behind our back: fixed the other way.
    REQUIRE(docker("unpause " + paused.container_id) == 0);
    rep = m.reconcile();
    CHECK(has(rep.state_fixed, paused.id));
    CHECK(rig.state(paused.id) == CapsuleState::running);
    // A second run finds nothing to do.
    rep = m.reconcile();
    CHECK(rep.marked_missing.empty());
    CHECK(rep.removed_orphans.empty());
    CHECK(rep.state_fixed.empty());
    // The broken ones recover on use.
    CHECK(m.exec(missing.id, shell("true")).recovered == "recreated");
    CHECK(m.exec(exited.id, shell("true")).recovered == "restarted");
  }

  TEST_CASE("capsule_manager: a restarted manager reconnects to running capsules") {
    auto records = new_records();
    testing::TempDir data;
    std::string id;
    {
      Rig first({}, records, data.path().string());
      id = first.m->create(first.spec()).id;
      ExecRequest bg;
      bg.argv = {"sleep", "300"};
      first.m->start_background(id, bg);
      first.m.reset();  // our process "restarts": the capsule keeps running
    }
    Rig second({}, records, data.path().string());
    CHECK(second.m->reconcile().state_fixed.empty());
    auto r = second.m->exec(id, shell("echo again"));
    CHECK(r.result.stdout_data == "again\n");
    CHECK(r.recovered.empty());
    auto rec = second.m->get(id);
    CHECK(rec.exec_mode == expected_mode());
    auto evs = second.events(id);
    CHECK(evs.back().to == "connected");
    CHECK(evs.back().reason.find("reconnected") != std::string::npos);
    if (agent_mode()) {
      auto ps = second.m->processes(id);
      CHECK(std::any_of(ps.begin(), ps.end(),
                        [](const ProcessInfo& p) { return !p.argv.empty() && p.argv[0] == "sleep"; }));
    }
  }

  TEST_CASE("capsule_manager: 100 pause/resume cycles keep processes, files and the connection") {
    Rig rig;
    auto& m = *rig.m;
    auto rec = m.create(rig.spec());
    ExecRequest bg;
    bg.argv = {"sleep", "100000"};
    const int pid = m.start_background(rec.id, bg);
    StringSource src("cycle-proof\n");
    m.upload(rec.id, "/tmp/proof.txt", src);
    const int connected = rig.count_events(rec.id, "connected");
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 100; ++i) {
      INFO("cycle " << i);
      REQUIRE(m.pause(rec.id).state == CapsuleState::paused);
      REQUIRE(m.resume(rec.id).state == CapsuleState::running);
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    MESSAGE("100 pause/resume cycles: " << ms.count() << " ms");
    auto ps = m.processes(rec.id);
    CHECK(std::any_of(ps.begin(), ps.end(), [&](const ProcessInfo& p) { return p.pid == pid; }));
    StringSink sink;
    m.download(rec.id, "/tmp/proof.txt", sink);
    CHECK(sink.data == "cycle-proof\n");
    CHECK(rig.sh(rec.id, "echo ok").stdout_data == "ok\n");
    CHECK(rig.count_events(rec.id, "connected") == connected);  // never reconnected
    CHECK(rig.count_events(rec.id, "paused") == 100);
    CHECK(m.get(rec.id).exec_mode == expected_mode());
  }

  TEST_CASE("capsule_manager: the warm pool hands out a ready capsule and is refilled") {
    const std::string image = env("PW_CAPSULE_IMAGE");
    auto records = new_records();
    Rig rig([&](ManagerSettings& s) { s.warm_pool[image] = 2; }, records);
    auto& m = *rig.m;
    CapsuleFilter pool;
    pool.labels["podwrangler.pool"] = image;
    auto pooled = [&] {
      int n = 0;
      for (const auto& r : m.list(pool)) n += r.state == CapsuleState::paused;
      return n;
    };
    m.monitor_once();
    REQUIRE(pooled() == 2);
    CHECK(m.list(CapsuleFilter{}).empty());  // pool capsules are not the user's
    for (const auto& r : m.list(pool)) CHECK(r.exec_mode == expected_mode());
    std::set<std::string> pool_ids;
    for (const auto& r : m.list(pool)) pool_ids.insert(r.id);

    CapsuleSpec s = rig.spec();
    s.owner = "erin";
    s.session = "warm";
    s.env["WARM_VAR"] = "applied";
    s.labels["kind"] = "warm";
    s.idle_timeout_s = 60;
    auto t0 = std::chrono::steady_clock::now();
    auto warm = m.create(s);
    const auto warm_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    CHECK(warm.origin == "warm");
    CHECK(warm.state == CapsuleState::running);
    CHECK(pool_ids.count(warm.id) == 1);
    CHECK(warm.spec.owner == "erin");
    CHECK(warm.spec.labels.at("kind") == "warm");
    CHECK(warm.spec.labels.count("podwrangler.pool") == 0);
    CHECK(warm.spec.idle_timeout_s == 60);
    CHECK(rig.sh(warm.id, "echo $WARM_VAR").stdout_data == "applied\n");
    CHECK(m.list(CapsuleFilter{}).size() == 1);
    CHECK(pooled() == 1);

    // Needs what a pool capsule cannot change: bypassed, and says why.
    CapsuleSpec big = rig.spec();
    big.memory_mb = 128;
    t0 = std::chrono::steady_clock::now();
    auto cold = m.create(big);
    const auto cold_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    CHECK(cold.origin == "bypassed: limits");
    CapsuleSpec ws = rig.spec();
    ws.workspace = true;
    ws.owner = "erin";
    ws.session = "ws";
    CHECK(m.create(ws).origin == "bypassed: workspace");
    MESSAGE("create from the warm pool: " << warm_ms << " ms; cold: " << cold_ms << " ms");

    // The monitor refills it.
    m.monitor_once();
    CHECK(pooled() == 2);
    CHECK(m.create(rig.spec()).origin == "warm");
    CHECK(rig.monitor_until([&] { return pooled() == 2; }, 30s));

    // A manager without the pool setting empties it.
    Rig off({}, records, rig.dir.path().string());
    off.m->monitor_once();
    CHECK(pooled() == 0);
  }

  TEST_CASE("capsule_manager: run_once creates, runs and destroys, even when the exec throws") {
    Rig rig;
    auto r = rig.m->run_once(rig.spec(), shell("echo once"));
    CHECK(r.result.stdout_data == "once\n");
    CapsuleFilter all;
    all.include_destroyed = true;
    auto rows = rig.records->list(all);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].state == CapsuleState::destroyed);

    ExecSink throwing = [](const ExecEvent& ev) {
      if (ev.kind == ExecEvent::Kind::stdout_data) throw std::runtime_error("sink refused");
    };
    CHECK_THROWS_WITH(rig.m->run_once(rig.spec(), shell("echo out"), &throwing), "sink refused");
    rows = rig.records->list(all);
    REQUIRE(rows.size() == 2);
    for (const auto& row : rows) CHECK(row.state == CapsuleState::destroyed);
    CHECK(capsule_containers().empty());
  }

  TEST_CASE("capsule_manager: destroy_all(owner), and destroyed rows are purged after the retention") {
    Rig rig([](ManagerSettings& s) { s.retention = 1ms; });
    auto& m = *rig.m;
    CapsuleSpec s = rig.spec();
    s.owner = "frank";
    auto a = m.create(s);
    auto b = m.create(s);
    s.owner = "gina";
    auto c = m.create(s);
    auto ids = m.destroy_all("frank");
    std::sort(ids.begin(), ids.end());
    std::vector<std::string> want{a.id, b.id};
    std::sort(want.begin(), want.end());
    CHECK(ids == want);
    CHECK(rig.state(c.id) == CapsuleState::running);
    CHECK(m.destroy_all("frank").empty());
    CHECK(testing::wait_until([&] {
      m.monitor_once();
      return !rig.records->get(a.id) && !rig.records->get(b.id);
    }));
    CHECK(rig.records->get(c.id).has_value());
  }

  TEST_CASE("capsule_manager: dockerd stopped and restarted: unavailable while down, recovered after") {
    REQUIRE_FALSE(env("PW_CAPSULE_DOCKERD_CTL").empty());
    Rig rig;
    auto& m = *rig.m;
    auto rec = m.create(rig.spec());
    CHECK(rig.sh(rec.id, "echo d > /tmp/d").exit_code == 0);
    m.start_monitor();
    REQUIRE(dockerd_ctl("stop") == 0);
    CHECK_THROWS_AS(m.exec(rec.id, shell("cat /tmp/d")), EngineUnavailableError);
    CHECK_THROWS_AS(m.create(rig.spec()), EngineUnavailableError);
    CHECK_THROWS_AS(m.reconcile(), EngineUnavailableError);
    REQUIRE(dockerd_ctl("start") == 0);
    // The monitor (still running) finds the capsule's container stopped by the daemon's exit.
    CHECK(testing::wait_until([&] { return rig.state(rec.id) == CapsuleState::error; }, 30s));
    auto r = m.exec(rec.id, shell("cat /tmp/d"));
    CHECK(r.recovered == "restarted");
    CHECK(r.result.stdout_data == "d\n");
    m.stop_monitor();
    // The failed create above left an `error` row (written before the engine was called).
    CapsuleFilter f;
    f.state = CapsuleState::error;
    CHECK(m.list(f).size() == 1);
  }

  TEST_CASE("capsule_manager: an agent that never answers falls back to docker exec; one that dies fails") {
    testing::TempDir bin;
    const std::string mute = bin.file("mute-agent"), dying = bin.file("dying-agent");
    {
      std::ofstream(mute) << "#!/bin/sh\nexec sleep 100000\n";
      std::ofstream(dying) << "#!/bin/sh\necho boom-from-the-agent\nexit 3\n";
    }
    fs::permissions(mute, fs::perms::owner_all);
    fs::permissions(dying, fs::perms::owner_all);
    {
      Rig rig([&](ManagerSettings& s) {
        s.agent_path = mute;
        s.ready_timeout = 1500ms;
      });
      auto rec = rig.m->create(rig.spec());
      CHECK(rec.state == CapsuleState::running);
      CHECK(rec.exec_mode == "docker-exec");
      CHECK(rec.exec_mode_reason.find("did not answer") != std::string::npos);
      CHECK(rig.sh(rec.id, "echo via-exec").stdout_data == "via-exec\n");
    }
    {
      Rig rig([&](ManagerSettings& s) {
        s.agent_path = dying;
        s.ready_timeout = 5s;
      });
      CHECK_THROWS(rig.m->create(rig.spec()));
      CapsuleFilter all;
      all.include_destroyed = true;
      auto rows = rig.records->list(all);
      REQUIRE(rows.size() == 1);
      CHECK(rows[0].state == CapsuleState::error);
      bool logged = false;
      for (const auto& l : rows[0].last_logs) logged |= l.find("boom-from-the-agent") != std::string::npos;
      CHECK(logged);
      CHECK(capsule_containers().empty());  // the container was removed
    }
  }
}

// DockerBackend, EngineClient and DockerExecChannel against a real, private dockerd started
// by run_capsule_docker_tests.sh (busybox image from local files, a user bridge network,
// and the same daemon on a loopback TCP port with TLS client certificates). Without
// PW_DOCKER_HOST these cases are not run: the suite is excluded elsewhere.
#include <doctest/doctest.h>

#include "../../support/fixtures.hpp"

#include <podwrangler/capsules/docker_backend.hpp>
#include <podwrangler/capsules/engine_client.hpp>
#include <podwrangler/errors.hpp>

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace pw;
using namespace pw::capsules;
using Clock = std::chrono::steady_clock;

namespace {

std::string env(const char* k) {
  const char* v = std::getenv(k);
  return v ? v : "";
}

// stdout of a shell command line (the docker CLI bound to the test daemon: `dk`).
std::string sh_out(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  ::pclose(p);
  return out;
}
std::string dk() { return "DOCKER_CONFIG=/nonexistent docker -H '" + env("PW_DOCKER_HOST") + "' "; }

std::unique_ptr<DockerBackend> backend() { return make_docker_backend(env("PW_DOCKER_HOST")); }

CapsuleSpec busybox_spec() {
  CapsuleSpec s;
  s.image = env("PW_DOCKER_IMAGE");
  s.memory_mb = 128;
  s.vcpus = 1;
  s.pids_limit = 256;
  return s;
}

// Creates a capsule container (no agent: the fallback) and destroys it at the end.
struct Capsule {
  explicit Capsule(DockerBackend& b, CapsuleSpec spec = busybox_spec()) : be(b) {
    ctx.capsule_id = new_capsule_id();
    container = be.create(spec, ctx);
  }
  ~Capsule() {
    try {
      be.destroy(container);
    } catch (...) {
    }
  }
  DockerBackend& be;
  CreateContext ctx;
  std::string container;
};

struct StringSource final : ByteSource {
  explicit StringSource(std::string d) : data(std::move(d)) {}
  std::size_t read(char* buf, std::size_t n) override {
    std::size_t k = std::min(n, data.size() - pos);
    std::memcpy(buf, data.data() + pos, k);
    pos += k;
    return k;
  }
  std::string data;
  std::size_t pos = 0;
};
struct StringSink final : ByteSink {
  void write(std::string_view b) override { data.append(b); }
  std::string data;
};

struct Sha256 {
  Sha256() : ctx(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx); }
  void add(const void* p, std::size_t n) { EVP_DigestUpdate(ctx, p, n); }
  std::string hex() {
    unsigned char md[32];
    unsigned len = 0;
    EVP_DigestFinal_ex(ctx, md, &len);
    std::string s;
    char b[3];
    for (unsigned i = 0; i < len; ++i) {
      std::snprintf(b, sizeof b, "%02x", md[i]);
      s += b;
    }
    return s;
  }
  EVP_MD_CTX* ctx;
};

// `size` pseudo-random bytes (xorshift), hashed as they are produced.
struct RandomSource final : ByteSource {
  explicit RandomSource(std::uint64_t n) : left(n) {}
  std::size_t read(char* buf, std::size_t n) override {
    std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, left));
    for (std::size_t i = 0; i < k; ++i) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      buf[i] = static_cast<char>(state & 0xff);
    }
    sha.add(buf, k);
    left -= k;
    return k;
  }
  std::uint64_t left;
  std::uint64_t state = 0x9E3779B97F4A7C15ull;
  Sha256 sha;
};
struct HashSink final : ByteSink {
  void write(std::string_view b) override {
    sha.add(b.data(), b.size());
    bytes += b.size();
  }
  Sha256 sha;
  std::uint64_t bytes = 0;
};

long status_kib(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field, 0) == 0) return std::atol(line.c_str() + std::strlen(field));
  return -1;
}

ExecResult run(ExecChannel& ch, std::vector<std::string> argv, const std::string& stdin_data = "") {
  ExecRequest r;
  r.argv = std::move(argv);
  r.stdin_data = stdin_data;
  return ch.exec(r);
}

double p50(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Sets environment variables for one scope and restores them.
struct ScopedEnv {
  explicit ScopedEnv(std::vector<std::pair<std::string, std::string>> vars) {
    for (auto& [k, v] : vars) {
      const char* old = std::getenv(k.c_str());
      saved.emplace_back(k, old ? std::optional<std::string>(old) : std::nullopt);
      ::setenv(k.c_str(), v.c_str(), 1);
    }
  }
  ~ScopedEnv() {
    for (auto& [k, v] : saved) {
      if (v)
        ::setenv(k.c_str(), v->c_str(), 1);
      else
        ::unsetenv(k.c_str());
    }
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved;
};

}  // namespace

TEST_SUITE("capsule_docker") {
  TEST_CASE("capsule_docker: create applies limits and security; inspect and the kernel report them") {
    REQUIRE_FALSE(env("PW_DOCKER_HOST").empty());
    auto be = backend();
    CHECK(be->ping());
    CHECK(be->describe() == "docker at " + env("PW_DOCKER_HOST"));
    CapsuleSpec spec = busybox_spec();
    spec.vcpus = 0.5;
    spec.memory_mb = 64;
    spec.pids_limit = 100;
    spec.labels = {{"team", "blue"}};
    spec.owner = "alice";
    spec.session = "s1";
    spec.env = {{"GREETING", "hello capsule"}};
    Capsule cap(*be, spec);

    EngineState st = be->inspect(cap.container);
    CHECK(st.exists);
    CHECK(st.running);
    CHECK_FALSE(st.paused);
    CHECK(st.status == "running");
    CHECK(st.pid > 0);
    CHECK(st.limits.vcpus == doctest::Approx(0.5));
    CHECK(st.limits.memory_bytes == 64LL * 1024 * 1024);
    CHECK(st.limits.pids_limit == 100);
    CHECK_FALSE(st.limits.privileged);
    CHECK(st.limits.no_new_privileges);
    CHECK(st.limits.cap_drop == std::vector<std::string>{"ALL"});
    CHECK(st.limits.cap_add == std::vector<std::string>(kCapsuleCapabilities.begin(), kCapsuleCapabilities.end()));

    // The engine's own record: name, swap, init, labels.
    auto j = be->engine().call("GET", "/v1.41/containers/" + cap.container + "/json").json();
    CHECK(j["Name"] == "/pw-" + cap.ctx.capsule_id);
    CHECK(j["HostConfig"]["MemorySwap"] == 64LL * 1024 * 1024);
    CHECK(j["HostConfig"]["NetworkMode"] == "none");
    CHECK(j["HostConfig"]["Init"] == false);
    CHECK(j["Config"]["User"] == "0:0");
    CHECK(j["Config"]["Labels"]["podwrangler.capsule"] == cap.ctx.capsule_id);
    CHECK(j["Config"]["Labels"]["podwrangler.owner"] == "alice");
    CHECK(j["Config"]["Labels"]["podwrangler.session"] == "s1");
    CHECK(j["Config"]["Labels"]["team"] == "blue");

    // What the kernel applies inside: capabilities 0,1,3,4,5,6,7,10 (= 0x4fb), no new
    // privileges, the cgroup limits (v2 or v1 files), the keep-alive shell as PID 1.
    auto ch = be->exec_channel(cap.container);
    CHECK(ch->mode() == "docker-exec");
    ExecResult caps = run(*ch, {"sh", "-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status"});
    CHECK(caps.stdout_data.find("CapEff:\t00000000000004fb") != std::string::npos);
    CHECK(caps.stdout_data.find("CapBnd:\t00000000000004fb") != std::string::npos);
    CHECK(caps.stdout_data.find("NoNewPrivs:\t1") != std::string::npos);
    ExecResult limits = run(*ch, {"sh", "-c",
                                  "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat "
                                  "/sys/fs/cgroup/memory/memory.limit_in_bytes; "
                                  "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max; "
                                  "cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us"});
    CHECK(limits.stdout_data.find("67108864\n100\n") == 0);
    CHECK(limits.stdout_data.find("50000") != std::string::npos);
    CHECK(run(*ch, {"sh", "-c", "id -u; echo \"$GREETING\"; tr '\\0' ' ' < /proc/1/cmdline"}).stdout_data ==
          "0\nhello capsule\n/bin/sh -c trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done ");

    // Listed by label, with its capsule id.
    auto listed = be->list_capsule_containers();
    auto it = std::find_if(listed.begin(), listed.end(),
                           [&](const EngineContainer& c) { return c.container_id == cap.container; });
    REQUIRE(it != listed.end());
    CHECK(it->capsule_id == cap.ctx.capsule_id);
    CHECK(it->status == "running");
  }

  TEST_CASE("capsule_docker: with an agent: mounted read-only, PID 1 with its socket and lifetime arguments") {
    // A stand-in for pw-agent (built elsewhere): a script that records how it was started.
    auto be = backend();
    testing::TempDir dir;
    std::string agent = dir.file("agent"), run_dir = dir.file("run");
    std::ofstream(agent) << "#!/bin/sh\n"
                            "echo \"$0 $*\" > /.podwrangler/run/started.tmp; id -u >> /.podwrangler/run/started.tmp\n"
                            "mv /.podwrangler/run/started.tmp /.podwrangler/run/started\n"
                            "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done\n";
    std::filesystem::permissions(agent, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                                            std::filesystem::perms::group_exec);
    std::filesystem::create_directory(run_dir);
    std::filesystem::permissions(run_dir, std::filesystem::perms::owner_all);
    CapsuleSpec spec = busybox_spec();
    spec.lifetime_s = 600;
    CreateContext ctx{new_capsule_id(), agent, run_dir, ""};
    std::string id = be->create(spec, ctx);
    CHECK(testing::wait_until([&] { return !testing::read_file(run_dir + "/started").empty(); }));
    CHECK(testing::read_file(run_dir + "/started") ==
          "/.podwrangler/agent --socket /.podwrangler/run/agent.sock --lifetime 600\n0\n");
    auto ch = be->exec_channel(id);
    CHECK(run(*ch, {"sh", "-c", "echo x > /.podwrangler/agent"}).exit_code != 0);  // read-only
    CHECK(run(*ch, {"sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline"}).stdout_data.find("/.podwrangler/agent --socket") !=
          std::string::npos);
    auto j = be->engine().call("GET", "/v1.41/containers/" + id + "/json").json();
    CHECK(j["Config"]["Entrypoint"] == nlohmann::json::array({"/.podwrangler/agent"}));
    bool agent_ro = false;
    for (const auto& m : j["Mounts"])
      if (m["Destination"] == "/.podwrangler/agent") agent_ro = m["RW"] == false;
    CHECK(agent_ro);
    auto t0 = Clock::now();
    be->stop(id, 10);
    CHECK(std::chrono::duration<double>(Clock::now() - t0).count() < 5.0);
    be->destroy(id);
  }

  TEST_CASE("capsule_docker: only labelled containers are listed; logs are the container's last lines") {
    auto be = backend();
    std::string plain = sh_out(dk() + "run -d --network none " + env("PW_DOCKER_IMAGE") + " sleep 1000");
    plain.erase(plain.find_last_not_of('\n') + 1);
    REQUIRE(plain.size() == 64);
    Capsule cap(*be);
    for (const auto& c : be->list_capsule_containers()) CHECK(c.container_id != plain);
    auto ch = be->exec_channel(cap.container);
    // PID 1's output is the container's log (written by the engine as it comes).
    // The engine copies stdout and stderr separately, so their relative order in the log is
    // not kept: the stderr line is waited for before the stdout lines are written.
    run(*ch, {"sh", "-c", "echo to-stderr > /proc/1/fd/2"});
    CHECK(testing::wait_until([&] { return be->logs(cap.container, 1) == std::vector<std::string>{"to-stderr"}; }));
    run(*ch, {"sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done > /proc/1/fd/1"});
    CHECK(testing::wait_until([&] {
      return be->logs(cap.container, 2) == std::vector<std::string>{"line 4", "line 5"};
    }));
    auto all = be->logs(cap.container, 100);
    CHECK(all.size() == 6);
    CHECK(std::find(all.begin(), all.end(), "to-stderr") != all.end());
    CHECK(be->logs(cap.container, 0).empty());
    be->destroy(plain);
  }

  TEST_CASE("capsule_docker: ports are published on loopback unless told otherwise") {
    auto be = backend();
    CapsuleSpec spec = busybox_spec();
    spec.network = env("PW_CAPSULE_NETWORK");
    spec.ports = {PortSpec{8080, "127.0.0.1", 0}};
    spec.ports[0].host_ip = "";  // empty: the default, loopback
    Capsule cap(*be, spec);
    EngineState st = be->inspect(cap.container);
    REQUIRE(st.published_ports.count(8080) == 1);
    CHECK(st.published_ports[8080] > 0);
    auto j = be->engine().call("GET", "/v1.41/containers/" + cap.container + "/json").json();
    CHECK(j["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostIp"] == "127.0.0.1");
    CHECK(j["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostIp"] == "127.0.0.1");
    CHECK(j["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"] == std::to_string(st.published_ports[8080]));

    CapsuleSpec none = busybox_spec();
    none.ports = {PortSpec{8080}};
    CHECK_THROWS_WITH_AS(be->create(none, CreateContext{new_capsule_id(), "", "", ""}), doctest::Contains("network"),
                         CapsuleValidationError);
    CapsuleSpec host = busybox_spec();
    host.network = "host";
    CHECK_THROWS_AS(be->create(host, CreateContext{new_capsule_id(), "", "", ""}), CapsuleValidationError);
  }

  TEST_CASE("capsule_docker: pause, resume, stop, start and an idempotent destroy") {
    auto be = backend();
    Capsule cap(*be);
    auto ch = be->exec_channel(cap.container);
    CHECK(run(*ch, {"sh", "-c", "echo kept > /root/state"}).exit_code == 0);

    be->pause(cap.container);
    EngineState st = be->inspect(cap.container);
    CHECK(st.paused);
    CHECK(st.status == "paused");
    CHECK_FALSE(ch->alive());
    CHECK_THROWS_AS(be->pause(cap.container), CapsuleConflictError);
    CHECK_THROWS_AS(run(*ch, {"true"}), CapsuleConflictError);
    be->resume(cap.container);
    CHECK(be->inspect(cap.container).status == "running");
    CHECK(ch->alive());
    CHECK_THROWS_AS(be->resume(cap.container), CapsuleConflictError);

    auto t0 = Clock::now();
    be->stop(cap.container, 10);
    double stop_s = std::chrono::duration<double>(Clock::now() - t0).count();
    CHECK(stop_s < 5.0);  // PID 1 ends on SIGTERM: no wait for the grace period
    MESSAGE("stop of a no-agent capsule: " << stop_s * 1000 << " ms");
    st = be->inspect(cap.container);
    CHECK_FALSE(st.running);
    CHECK(st.status == "exited");
    CHECK(st.exit_code == 0);
    CHECK_THROWS_AS(run(*ch, {"true"}), CapsuleConflictError);
    be->stop(cap.container);  // already stopped: fine

    be->start(cap.container);
    CHECK(be->inspect(cap.container).running);
    CHECK(run(*ch, {"cat", "/root/state"}).stdout_data == "kept\n");  // the filesystem survives

    be->destroy(cap.container);
    CHECK_FALSE(be->inspect(cap.container).exists);
    be->destroy(cap.container);  // again: not an error
    CHECK_THROWS_AS(be->start(cap.container), CapsuleNotFoundError);
    CHECK_THROWS_AS(be->pause(cap.container), CapsuleNotFoundError);
    CHECK_THROWS_AS(run(*ch, {"true"}), CapsuleNotFoundError);
  }

  TEST_CASE("capsule_docker: a missing image, bad mounts and bad values are refused before anything is made") {
    auto be = backend();
    std::size_t before = be->list_capsule_containers().size();
    CapsuleSpec spec = busybox_spec();
    spec.image = "pw-no-such-image:404";
    try {
      be->create(spec, CreateContext{new_capsule_id(), "", "", ""});
      FAIL("created from a missing image");
    } catch (const CapsuleNotFoundError& e) {
      CHECK(e.name() == "pw-no-such-image:404");
      CHECK(std::string(e.what()).find("image") != std::string::npos);
    }
    testing::TempDir dir;
    auto bad_mount = [&](MountSpec m) {
      CapsuleSpec s = busybox_spec();
      s.mounts = {std::move(m)};
      CHECK_THROWS_WITH_AS(be->create(s, CreateContext{new_capsule_id(), "", "", ""}), doctest::Contains("mount"),
                           CapsuleValidationError);
    };
    bad_mount({"relative/dir", "/data", false});
    bad_mount({dir.file("missing"), "/data", false});
    bad_mount({dir.path().string(), "data", false});
    bad_mount({dir.path().string(), "/.podwrangler/run", false});
    CapsuleSpec labels = busybox_spec();
    labels.labels = {{"podwrangler.capsule", "forged"}};
    CHECK_THROWS_AS(be->create(labels, CreateContext{new_capsule_id(), "", "", ""}), CapsuleValidationError);
    CapsuleSpec cpus = busybox_spec();
    cpus.vcpus = 1000;  // more than the machine has: the engine refuses
    CHECK_THROWS_AS(be->create(cpus, CreateContext{new_capsule_id(), "", "", ""}), CapsuleValidationError);
    CHECK(be->list_capsule_containers().size() == before);

    // A good mount, read-only, with the workspace.
    std::ofstream(dir.file("hello.txt")) << "from the host\n";
    testing::TempDir ws;
    CapsuleSpec ok = busybox_spec();
    ok.mounts = {{dir.path().string(), "/data", true}};
    CreateContext ctx{new_capsule_id(), "", "", ws.path().string()};
    std::string id = be->create(ok, ctx);
    auto ch = be->exec_channel(id);
    CHECK(run(*ch, {"cat", "/data/hello.txt"}).stdout_data == "from the host\n");
    CHECK(run(*ch, {"sh", "-c", "echo x > /data/new"}).exit_code != 0);  // read-only
    CHECK(run(*ch, {"sh", "-c", "pwd; echo kept > note"}).stdout_data == "/workspace\n");
    be->destroy(id);
    CHECK(testing::read_file(ws.file("note")) == "kept\n");  // the workspace outlives the capsule
  }

  TEST_CASE("capsule_docker: an engine that cannot be reached is EngineUnavailableError naming it") {
    auto down = make_docker_backend("unix:///tmp/pw-no-such-dir/docker.sock");
    CHECK_FALSE(down->ping());
    CHECK_THROWS_WITH_AS(down->create(busybox_spec(), CreateContext{new_capsule_id(), "", "", ""}),
                         doctest::Contains("unix:///tmp/pw-no-such-dir/docker.sock"), EngineUnavailableError);
    CHECK_THROWS_AS(down->inspect("x"), EngineUnavailableError);
    CHECK_THROWS_AS(down->exec_channel("x")->exec(ExecRequest{{"true"}}), EngineUnavailableError);
    int port = testing::free_port();
    std::string closed = "tcp://127.0.0.1:" + std::to_string(port);
    auto refused = make_docker_backend(closed);
    CHECK_THROWS_WITH_AS(refused->list_capsule_containers(), doctest::Contains(closed.c_str()), EngineUnavailableError);
    CHECK_THROWS_AS(make_docker_backend("ssh://user@host"), CapsuleValidationError);
    CHECK_THROWS_AS(make_docker_backend("/var/run/docker.sock"), CapsuleValidationError);
    // A password in the host never shows.
    try {
      make_docker_backend("tcp://user:hunter2@127.0.0.1:1");
      FAIL("accepted");
    } catch (const CapsuleValidationError& e) {
      CHECK(std::string(e.what()).find("hunter2") == std::string::npos);
    }
  }

  TEST_CASE("capsule_docker: DOCKER_HOST=tcp:// with TLS client certificates, as the docker CLI reads them") {
    REQUIRE_FALSE(env("PW_DOCKER_TLS_HOST").empty());
    std::string host = env("PW_DOCKER_TLS_HOST"), certs = env("PW_DOCKER_CERT_PATH");
    {
      ScopedEnv vars({{"DOCKER_HOST", host}, {"DOCKER_TLS_VERIFY", "1"}, {"DOCKER_CERT_PATH", certs}});
      EngineEndpoint ep = engine_endpoint_from_env();
      CHECK(ep.host == host);
      CHECK(ep.tls);
      CHECK(ep.tls_verify);
      CHECK(ep.ca_file == certs + "/ca.pem");
      CHECK(ep.cert_file == certs + "/cert.pem");
      auto be = make_docker_backend();
      CHECK(be->describe() == "docker at " + host + " (TLS)");
      CHECK(be->ping());
      Capsule cap(*be);
      auto ch = be->exec_channel(cap.container);
      // The hijacked exec over TLS, stdin included.
      ExecResult r = run(*ch, {"sh", "-c", "cat; echo err >&2; exit 4"}, "through TLS\n");
      CHECK(r.stdout_data == "through TLS\n");
      CHECK(r.stderr_data == "err\n");
      CHECK(r.exit_code == 4);
      RandomSource src(3 << 20);
      ch->upload("/tmp/tls.bin", src);
      HashSink sink;
      ch->download("/tmp/tls.bin", sink);
      CHECK(sink.bytes == (3u << 20));
      CHECK(sink.sha.hex() == src.sha.hex());
    }
    // An unrelated CA: the daemon's certificate is not trusted.
    testing::TempDir other;
    testing::TestPki pki = testing::make_test_pki(other);
    EngineEndpoint wrong_ca{host, true, true, pki.other_ca_cert, certs + "/cert.pem", certs + "/key.pem"};
    CHECK_THROWS_WITH_AS(DockerBackend(wrong_ca).list_capsule_containers(), doctest::Contains("certificate"),
                         EngineUnavailableError);
    // No client certificate: the daemon (--tlsverify) refuses.
    EngineEndpoint no_cert{host, true, true, certs + "/ca.pem", "", ""};
    CHECK_THROWS_AS(DockerBackend(no_cert).list_capsule_containers(), EngineUnavailableError);
    // Plain HTTP to the TLS port: a clear failure, not a hang.
    CHECK_THROWS_AS(DockerBackend(EngineEndpoint{host}).list_capsule_containers(), EngineUnavailableError);
  }

  TEST_CASE("capsule_docker: fallback channel: exec with env, cwd, exit code, stderr apart and stdin") {
    auto be = backend();
    Capsule cap(*be);
    auto ch = be->exec_channel(cap.container);
    ExecRequest req;
    req.argv = {"sh", "-c", "echo \"$A-$B\"; pwd; echo to-err >&2; exit 7"};
    req.env = {{"A", "one"}, {"B", "two words"}};
    req.cwd = "/tmp";
    ExecResult r = ch->exec(req);
    CHECK(r.stdout_data == "one-two words\n/tmp\n");
    CHECK(r.stderr_data == "to-err\n");
    CHECK(r.exit_code == 7);
    CHECK_FALSE(r.timed_out);
    CHECK(r.duration_s > 0);
    // argv is never re-parsed by a shell.
    CHECK(run(*ch, {"echo", "$HOME", "a  b", "'q'"}).stdout_data == "$HOME a  b 'q'\n");
    CHECK(run(*ch, {"no-such-command"}).exit_code == 127);
    // stdin: written then closed; a large one does not deadlock against the output.
    CHECK(run(*ch, {"wc", "-c"}, std::string(3 << 20, 'x')).stdout_data.find("3145728") != std::string::npos);
    CHECK(run(*ch, {"cat"}, "line\n").stdout_data == "line\n");
    CHECK(run(*ch, {"cat"}).stdout_data.empty());  // no stdin: /dev/null
    // The output cap.
    ExecRequest big;
    big.argv = {"sh", "-c", "head -c 100000 /dev/zero"};
    big.max_output_bytes = 1000;
    ExecResult capped = ch->exec(big);
    CHECK(capped.stdout_data.size() == 1000);
    CHECK(capped.truncated);
    ExecRequest nocwd;
    nocwd.argv = {"true"};
    nocwd.cwd = "/no/such/dir";
    CHECK(ch->exec(nocwd).exit_code != 0);
    CHECK_THROWS_AS(ch->exec(ExecRequest{}), CapsuleValidationError);
  }

  TEST_CASE("capsule_docker: fallback channel: a timeout kills the process group (137, timed_out)") {
    auto be = backend();
    Capsule cap(*be);
    auto ch = be->exec_channel(cap.container);
    ExecRequest req;
    // A child in the background keeps the output open: the whole group must go.
    req.argv = {"sh", "-c", "sleep 300 & echo started; sleep 301"};
    req.timeout_s = 1.0;
    auto t0 = Clock::now();
    ExecResult r = ch->exec(req);
    double took = std::chrono::duration<double>(Clock::now() - t0).count();
    CHECK(r.timed_out);
    CHECK(r.exit_code == 137);
    CHECK(r.stdout_data == "started\n");
    CHECK(took < 8.0);
    CHECK(testing::wait_until([&] {
      return run(*ch, {"sh", "-c", "ps -o args | grep -c '^sleep 30[01]'"}).stdout_data == "0\n";
    }));
    CHECK(ch->activity().running_processes == 0);
  }

  TEST_CASE("capsule_docker: fallback channel: a streamed exec delivers started, output and exit in order") {
    auto be = backend();
    Capsule cap(*be);
    auto ch = be->exec_channel(cap.container);
    std::vector<ExecEvent> events;
    std::vector<Clock::time_point> when;
    ExecSink sink = [&](const ExecEvent& e) {
      events.push_back(e);
      when.push_back(Clock::now());
    };
    ExecRequest req;
    req.argv = {"sh", "-c", "echo first; sleep 1; echo second >&2; exit 3"};
    ExecResult r = ch->exec(req, &sink);
    REQUIRE(events.size() == 4);
    CHECK(events[0].kind == ExecEvent::Kind::started);
    CHECK(events[0].pid > 1);
    CHECK(events[1].kind == ExecEvent::Kind::stdout_data);
    CHECK(events[1].data == "first\n");
    CHECK(events[2].kind == ExecEvent::Kind::stderr_data);
    CHECK(events[2].data == "second\n");
    CHECK(events[3].kind == ExecEvent::Kind::exit);
    CHECK(events[3].exit_code == 3);
    CHECK(r.exit_code == 3);
    CHECK(r.stdout_data.empty());
    // Live: the first line arrived a second before the second one.
    CHECK(std::chrono::duration<double>(when[2] - when[1]).count() > 0.5);
  }

  TEST_CASE("capsule_docker: fallback channel: 100 MiB up and down, streamed, same SHA-256, bounded memory") {
    auto be = backend();
    CapsuleSpec spec = busybox_spec();
    spec.memory_mb = 512;
    Capsule cap(*be, spec);
    auto ch = be->exec_channel(cap.container);
    constexpr std::uint64_t kSize = 100ull << 20;
    {  // the peak RSS counter starts again here (Linux: clear_refs 5)
      std::ofstream("/proc/self/clear_refs") << "5";
    }
    long rss0 = status_kib("VmRSS:");
    RandomSource src(kSize);
    auto t0 = Clock::now();
    ch->upload("/tmp/deep/er/big.bin", src, 0600);  // missing parents are made
    double up_s = std::chrono::duration<double>(Clock::now() - t0).count();
    HashSink sink;
    t0 = Clock::now();
    ch->download("/tmp/deep/er/big.bin", sink);
    double down_s = std::chrono::duration<double>(Clock::now() - t0).count();
    long peak = status_kib("VmHWM:");
    CHECK(sink.bytes == kSize);
    std::string sha = src.sha.hex();
    CHECK(sink.sha.hex() == sha);
    CHECK(run(*ch, {"sha256sum", "/tmp/deep/er/big.bin"}).stdout_data.substr(0, 64) == sha);
    FileStat st = ch->stat("/tmp/deep/er/big.bin");
    CHECK(st.size == kSize);
    CHECK(st.mode == 0600);
    CHECK(st.type == "file");
    MESSAGE("100 MiB upload " << up_s << " s, download " << down_s << " s; peak RSS growth " << (peak - rss0) / 1024
                              << " MiB");
    if (pw::testing::rss_is_meaningful()) CHECK(peak - rss0 < 32 * 1024);  // KiB: far below the 100 MiB moved
  }

  TEST_CASE("capsule_docker: fallback channel: stat, list, mkdir, remove, download refusals") {
    auto be = backend();
    Capsule cap(*be);
    auto ch = be->exec_channel(cap.container);
    ch->mkdir("/w/a/b");
    CHECK_THROWS_AS(ch->mkdir("/w/a/b", false), CapsuleConflictError);
    ch->mkdir("/w/a/b", true);  // exists: fine with parents
    CHECK_THROWS_AS(ch->mkdir("/w/missing/c", false), CapsuleNotFoundError);
    StringSource hello("hello\n");
    ch->upload("/w/a/hello.txt", hello, 0640);
    StringSource odd("x");
    ch->upload("/w/a/name with\nnewline", odd);
    CHECK(run(*ch, {"ln", "-s", "a/hello.txt", "/w/link"}).exit_code == 0);

    FileStat d = ch->stat("/w/a");
    CHECK(d.type == "dir");
    CHECK(d.name == "a");
    FileStat f = ch->stat("/w/a/hello.txt");
    CHECK(f.type == "file");
    CHECK(f.size == 6);
    CHECK(f.mode == 0640);
    CHECK(f.mtime_s > 1600000000);
    CHECK(std::abs(f.mtime_s - static_cast<std::int64_t>(std::time(nullptr))) < 300);
    FileStat l = ch->stat("/w/link");
    CHECK(l.type == "symlink");
    CHECK(l.link_target == "/w/a/hello.txt");
    CHECK_THROWS_AS(ch->stat("/w/none"), CapsuleNotFoundError);
    CHECK_THROWS_AS(ch->stat("relative"), CapsuleValidationError);

    auto top = ch->list("/w");
    REQUIRE(top.size() == 2);
    CHECK(top[0].path == "/w/a");
    CHECK(top[0].type == "dir");
    CHECK(top[1].path == "/w/link");
    CHECK(top[1].type == "symlink");
    auto deep = ch->list("/w/", 3);
    std::vector<std::string> paths;
    for (const auto& e : deep) paths.push_back(e.path);
    CHECK(paths == std::vector<std::string>{"/w/a", "/w/a/b", "/w/a/hello.txt", "/w/a/name with\nnewline", "/w/link"});
    CHECK(deep[2].size == 6);
    CHECK(deep[2].mode == 0640);
    CHECK(deep[3].name == "name with\nnewline");
    CHECK_THROWS_AS(ch->list("/w/none"), CapsuleNotFoundError);
    CHECK_THROWS_AS(ch->list("/w/a/hello.txt"), CapsuleValidationError);

    StringSink got;
    ch->download("/w/link", got);  // followed
    CHECK(got.data == "hello\n");
    StringSink none;
    CHECK_THROWS_WITH_AS(ch->download("/w/a", none), doctest::Contains("directory"), CapsuleValidationError);
    CHECK(none.data.empty());
    CHECK_THROWS_AS(ch->download("/w/none", none), CapsuleNotFoundError);

    CHECK_THROWS_AS(ch->remove("/w/a"), CapsuleConflictError);  // not empty
    ch->remove("/w/link");
    CHECK(ch->stat("/w/a/hello.txt").size == 6);  // the link went, not its target
    ch->remove("/w/a/b");                         // an empty directory
    ch->remove("/w", true);
    CHECK_THROWS_AS(ch->stat("/w"), CapsuleNotFoundError);
    CHECK_THROWS_AS(ch->remove("/w"), CapsuleNotFoundError);
    CHECK_THROWS_AS(ch->remove("/"), CapsuleValidationError);
  }

  TEST_CASE("capsule_docker: fallback channel: background processes, processes(), kill and activity") {
    auto be = backend();
    Capsule cap(*be);
    auto ch = be->exec_channel(cap.container);
    AgentActivity idle = ch->activity();
    CHECK(idle.running_processes == 0);
    CHECK(idle.open_streams == 0);
    ExecRequest req;
    req.argv = {"sh", "-c", "echo from-bg; sleep 300"};
    int pid = ch->start_background(req);
    CHECK(pid > 1);
    CHECK(testing::wait_until([&] {
      return run(*ch, {"cat", "/tmp/.podwrangler/" + std::to_string(pid) + ".log"}).stdout_data == "from-bg\n";
    }));
    auto procs = ch->processes();
    REQUIRE(procs.size() == 1);
    CHECK(procs[0].pid == pid);
    CHECK(procs[0].background);
    CHECK(procs[0].argv == req.argv);
    AgentActivity busy = ch->activity();
    CHECK(busy.running_processes == 1);
    CHECK(busy.idle_ms == 0);
    ch->kill(pid, 15);
    CHECK(testing::wait_until([&] { return ch->processes().empty(); }));
    CHECK(ch->activity().running_processes == 0);
    CHECK_THROWS_AS(ch->kill(pid, 15), CapsuleNotFoundError);
    CHECK_THROWS_AS(ch->kill(1, 9), CapsuleValidationError);
    // Idle time grows only while nothing runs through the channel.
    CHECK(testing::wait_until([&] { return ch->activity().idle_ms >= 200; }));
    ch->close();
    CHECK_THROWS_AS(run(*ch, {"true"}), AgentError);
    CHECK_FALSE(ch->alive());
  }

  TEST_CASE("capsule_docker: measured: Engine API exec round trip vs docker exec, same run") {
    auto be = backend();
    Capsule cap(*be);
    auto ch = be->exec_channel(cap.container);
    constexpr int kRounds = 25;
    std::vector<double> api, channel, cli, started, ended;
    auto ms_since = [](Clock::time_point t) {
      return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
    };
    for (int i = 0; i < kRounds; ++i) {
      auto t0 = Clock::now();
      EngineExecSpec spec;
      spec.argv = {"true"};
      auto exec = be->engine().exec_start(cap.container, spec);
      started.push_back(ms_since(t0));
      std::string out, err;
      while (exec->next(out, err, Clock::time_point::max()) != EngineExec::Next::end) {
      }
      ended.push_back(ms_since(t0));
      int code = be->engine().exec_inspect(exec->id()).exit_code;
      api.push_back(ms_since(t0));
      CHECK(code == 0);
      t0 = Clock::now();
      CHECK(run(*ch, {"true"}).exit_code == 0);
      channel.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      t0 = Clock::now();
      int rc = testing::sh(dk() + "exec " + cap.container + " true");
      cli.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      CHECK(rc == 0);
    }
    MESSAGE("exec `true`, p50 of " << kRounds << ": Engine API (create+start+inspect) " << p50(api)
                                   << " ms; DockerExecChannel (+ pid wrapper) " << p50(channel)
                                   << " ms; `docker exec CTR true` " << p50(cli) << " ms. Engine API steps (p50, "
                                   << "cumulative): create+start " << p50(started) << " ms, streams closed "
                                   << p50(ended) << " ms");
    CHECK(p50(api) < p50(cli));
  }
}

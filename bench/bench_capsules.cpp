// Capsule benchmarks (issue 13), each figure next to its Docker comparison measured in the
// same run, on a private dockerd (bench/run_capsule_bench.sh starts it and imports a busybox
// image from local files):
//   pw_bench_capsules [--only create,exec,concurrent,memory] [counts…]
// - create: create → first `exec true` result through the library (CapsuleManager, agent),
//   cold and from the warm pool, vs `docker run --rm IMAGE true`;
// - exec: warm `exec true` through the library (manager.exec) and through the REST API
//   (POST /api/v1/capsules/{id}/exec on an in-process server, keep-alive client) vs
//   `docker exec CTR true` on the same container;
// - concurrent: N threads calling manager.create (wait) vs N concurrent
//   `docker run -d IMAGE sleep 1000`;
// - memory: the agent's RSS per idle capsule, and the host memory N idle capsules take
//   (MemAvailable, container cgroups, shims, daemons, this process) vs N plain containers,
//   extrapolated to this machine's memory.
// Settings from the environment the run script exports: PW_DOCKER_HOST, PW_DOCKER_CLI,
// PW_DOCKERD_DIR (CLI config and the daemons' pid files), PW_CAPSULE_IMAGE.
// Results go to stdout as a report and one JSON line per figure (prefix "json: ").
#include "embedded_server/server.hpp"
#include "embedded_server/settings.hpp"
#include "fixtures.hpp"

#include <podwrangler/capsules/docker_backend.hpp>
#include <podwrangler/capsules/manager.hpp>
#include <podwrangler/capsules/records.hpp>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#ifndef PW_AGENT_BIN
#error "PW_AGENT_BIN must name the pw-agent executable"
#endif

namespace {

using Clock = std::chrono::steady_clock;
using pw::capsules::CapsuleManager;
using pw::capsules::CapsuleRecord;
using pw::capsules::CapsuleSpec;
using pw::capsules::CapsuleState;
using pw::capsules::ExecRequest;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

std::string env(const char* k, const std::string& fallback = "") {
  const char* v = std::getenv(k);
  return v && *v ? v : fallback;
}

// ---- statistics and report ---------------------------------------------------------------

struct Stats {
  double p50 = 0, p90 = 0, p99 = 0, mean = 0, min = 0, max = 0;
  std::size_t n = 0;
};

Stats stats(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  const auto at = [&](double q) {
    return v[std::min(v.size() - 1, static_cast<std::size_t>(std::llround(q * static_cast<double>(v.size() - 1))))];
  };
  double sum = 0;
  for (double x : v) sum += x;
  return {at(0.5), at(0.9), at(0.99), sum / static_cast<double>(v.size()), v.front(), v.back(), v.size()};
}

void report(const std::string& name, const Stats& s) {
  std::printf("  %-58s n=%-5zu p50=%9.3f  p90=%9.3f  p99=%9.3f  min=%9.3f  max=%9.3f ms\n", name.c_str(), s.n, s.p50,
              s.p90, s.p99, s.min, s.max);
  std::printf(
      "json: {\"bench\":\"%s\",\"n\":%zu,\"p50_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f,\"mean_ms\":%.4f,"
      "\"min_ms\":%.4f,\"max_ms\":%.4f}\n",
      name.c_str(), s.n, s.p50, s.p90, s.p99, s.mean, s.min, s.max);
  std::fflush(stdout);
}

// The summary: one line per target, printed at the end.
struct Verdict {
  std::string what, figure, comparison, ratio, target;
  bool met = false;
};
std::vector<Verdict> verdicts;

std::string fmt(const char* f, double a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, a);
  return buf;
}

void verdict(const std::string& what, const std::string& figure, const std::string& comparison, double ratio,
             const std::string& ratio_text, const std::string& target, bool met) {
  verdicts.push_back({what, figure, comparison, ratio_text, target, met});
  std::printf("json: {\"verdict\":\"%s\",\"ratio\":%.4f,\"target\":\"%s\",\"met\":%s}\n", what.c_str(), ratio,
              target.c_str(), met ? "true" : "false");
}

// ---- the docker CLI ----------------------------------------------------------------------

// The docker CLI bound to the private daemon, started with a clean environment and only
// fds 0/1/2.
struct DockerCli {
  std::string cli, host, config_dir;

  std::vector<std::string> environment() const {
    std::vector<std::string> e = {"PATH=" + env("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME=" + env("HOME", "/root"),
                                  "DOCKER_CLI_HINTS=false"};
    if (!config_dir.empty()) e.push_back("DOCKER_CONFIG=" + config_dir);
    return e;
  }

  // Starts the CLI with args; stdout to out_fd (or /dev/null), stderr inherited.
  pid_t spawn(const std::vector<std::string>& args, int out_fd = -1) const {
    std::vector<std::string> argv = {cli, "-H", host};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> av;
    for (auto& a : argv) av.push_back(a.data());
    av.push_back(nullptr);
    auto envs = environment();
    std::vector<char*> ev;
    for (auto& e : envs) ev.push_back(e.data());
    ev.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (out_fd >= 0)
      posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    else
      posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, cli.c_str(), &fa, nullptr, av.data(), ev.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("cannot start " + cli + ": " + std::to_string(rc));
    return pid;
  }

  static int wait_exit(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0)
      if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  // Runs and checks the exit code.
  void run(const std::vector<std::string>& args) const {
    const int rc = wait_exit(spawn(args));
    if (rc != 0) throw std::runtime_error("docker " + args.at(0) + " failed with exit code " + std::to_string(rc));
  }

  std::string output(const std::vector<std::string>& args) const {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    pid_t pid = spawn(args, fds[1]);
    ::close(fds[1]);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    if (wait_exit(pid) != 0) throw std::runtime_error("docker " + args.at(0) + " failed");
    return out;
  }

  std::vector<std::string> ids(const std::string& label) const {
    std::vector<std::string> out;
    std::istringstream in(output({"ps", "-aq", "--no-trunc", "--filter", "label=" + label}));
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) out.push_back(line);
    return out;
  }

  void remove_label(const std::string& label) const {
    auto list = ids(label);
    if (list.empty()) return;
    std::vector<std::string> args = {"rm", "-f"};
    args.insert(args.end(), list.begin(), list.end());
    run(args);
  }
};

// ---- /proc and cgroups -------------------------------------------------------------------

// A "Key:   N kB" field of a /proc file, in kB (-1 when missing).
long proc_kb(const std::string& file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
  return -1;
}
long mem_available_kb() { return proc_kb("/proc/meminfo", "MemAvailable"); }
long mem_total_kb() { return proc_kb("/proc/meminfo", "MemTotal"); }
long rss_kb(int pid) { return proc_kb("/proc/" + std::to_string(pid) + "/status", "VmRSS"); }
long pss_kb(int pid) { return proc_kb("/proc/" + std::to_string(pid) + "/smaps_rollup", "Pss"); }

int parent_pid(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = s.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(s.substr(close + 2));
  std::string state;
  int ppid = -1;
  rest >> state >> ppid;
  return ppid;
}

// The memory charged to the cgroup of pid (v2 memory.current, v1 memory.usage_in_bytes), kB.
long cgroup_memory_kb(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    const auto a = line.find(':');
    const auto b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    const std::string path = line.substr(b + 1);
    std::string file;
    if (line.rfind("0::", 0) == 0 && std::ifstream("/sys/fs/cgroup" + path + "/memory.current"))
      file = "/sys/fs/cgroup" + path + "/memory.current";
    else if (controllers == "memory")
      file = "/sys/fs/cgroup/memory" + path + "/memory.usage_in_bytes";
    if (file.empty()) continue;
    std::ifstream f(file);
    long long bytes = -1;
    if (f >> bytes) return static_cast<long>(bytes / 1024);
  }
  return -1;
}

int pid_from_file(const std::string& path) {
  std::ifstream in(path);
  int pid = -1;
  in >> pid;
  return pid;
}

std::string mib(double kb) { return fmt("%.1f MiB", kb / 1024.0); }

// ---- the rig -------------------------------------------------------------------------

struct Options {
  std::set<std::string> only = {"create", "exec", "concurrent", "memory"};
  int create_runs = 20;
  int warm_pool = 2;
  int exec_runs = 2000;
  int docker_exec_runs = 100;
  int concurrency = 20;
  int concurrent_rounds = 3;
  int idle = 100;
  int plain_idle = -1;  // -1: as many as idle; 0: skip the plain-container comparison
  int create_threads = 8;
  std::string image, agent = PW_AGENT_BIN;
};

struct Rig {
  Options opt;
  DockerCli docker;
  std::string docker_host, dockerd_dir;
  pw::testing::TempDir dir;
  std::shared_ptr<pw::capsules::CapsuleRecords> records = pw::capsules::make_memory_capsule_records();
  std::shared_ptr<pw::capsules::CapsuleBackend> backend;

  std::unique_ptr<CapsuleManager> manager(const std::string& name, std::map<std::string, int> pool = {}) {
    pw::capsules::ManagerSettings s;
    s.data_dir = dir.file(name);
    s.agent_path = opt.agent;
    s.ready_timeout = std::chrono::seconds(60);
    s.warm_pool = std::move(pool);
    return std::make_unique<CapsuleManager>(s, backend, records);
  }

  CapsuleSpec spec() const {
    CapsuleSpec s;
    s.image = opt.image;
    s.idle_timeout_s = 0;  // idle capsules stay running for the whole benchmark
    return s;
  }
};

ExecRequest true_req() {
  ExecRequest r;
  r.argv = {"true"};
  return r;
}

void expect_agent(const CapsuleRecord& rec) {
  if (rec.state != CapsuleState::running)
    throw std::runtime_error("capsule " + rec.id + " is " + std::string(to_string(rec.state)) + ": " + rec.reason);
  if (rec.exec_mode != "agent")
    throw std::runtime_error("capsule " + rec.id + " has no agent (" + rec.exec_mode + ": " + rec.exec_mode_reason +
                             ")");
}

void exec_true(CapsuleManager& m, const std::string& id) {
  auto r = m.exec(id, true_req());
  if (r.result.exit_code != 0)
    throw std::runtime_error("exec true in " + id + ": exit " + std::to_string(r.result.exit_code));
}

// Destroys what it holds on scope exit (also on errors).
struct Cleanup {
  CapsuleManager* m;
  std::vector<std::string> ids;
  std::mutex mu;
  explicit Cleanup(CapsuleManager& mgr) : m(&mgr) {}
  void add(const std::string& id) {
    std::lock_guard lk(mu);
    ids.push_back(id);
  }
  // In parallel (threads), then forgets them.
  void destroy_all(int threads = 8) {
    std::vector<std::string> list;
    {
      std::lock_guard lk(mu);
      list.swap(ids);
    }
    std::atomic<std::size_t> next{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&] {
        for (std::size_t i = next.fetch_add(1); i < list.size(); i = next.fetch_add(1)) {
          try {
            m->destroy(list[i]);
          } catch (const std::exception& ex) {
            std::fprintf(stderr, "warning: destroy %s: %s\n", list[i].c_str(), ex.what());
          }
        }
      });
    for (auto& t : ts) t.join();
  }
  ~Cleanup() { destroy_all(); }
  Cleanup(const Cleanup&) = delete;
  Cleanup& operator=(const Cleanup&) = delete;
};

// ---- 1. create → first exec ----------------------------------------------------------

void bench_create(Rig& rig) {
  const auto& o = rig.opt;
  std::printf("\n== 1. create -> first `exec true` result (%d runs each, interleaved)\n", o.create_runs);
  auto cold_m = rig.manager("cold");
  auto warm_m = rig.manager("warm", {{o.image, o.warm_pool}});
  Cleanup cold_c(*cold_m), warm_c(*warm_m);

  // Warm-up of every path (image cache, CLI), not counted.
  {
    auto rec = cold_m->create(rig.spec(), true);
    cold_c.add(rec.id);
    exec_true(*cold_m, rec.id);
    cold_c.destroy_all();
    rig.docker.run({"run", "--rm", "--network", "none", o.image, "true"});
  }

  std::vector<double> cold, cold_destroy, warm, docker_run;
  for (int i = 0; i < o.create_runs; ++i) {
    // The pool is refilled before each warm create (untimed), as the monitor does between requests.
    warm_m->monitor_once();

    auto t0 = Clock::now();
    auto rec = cold_m->create(rig.spec(), true);
    cold_c.add(rec.id);
    exec_true(*cold_m, rec.id);
    cold.push_back(ms_since(t0));
    expect_agent(cold_m->get(rec.id));
    if (rec.origin != "cold") throw std::runtime_error("cold create came from " + rec.origin);
    t0 = Clock::now();
    cold_c.destroy_all(1);
    cold_destroy.push_back(ms_since(t0));

    t0 = Clock::now();
    rig.docker.run({"run", "--rm", "--network", "none", o.image, "true"});
    docker_run.push_back(ms_since(t0));

    t0 = Clock::now();
    auto w = warm_m->create(rig.spec(), true);
    warm_c.add(w.id);
    exec_true(*warm_m, w.id);
    warm.push_back(ms_since(t0));
    if (w.origin != "warm") throw std::runtime_error("warm create came from '" + w.origin + "' (pool empty?)");
    expect_agent(warm_m->get(w.id));
    warm_c.destroy_all();
  }
  // The pool's own capsules go with a manager without the setting (as when the pool is switched off).
  warm_c.destroy_all();
  warm_m.reset();
  rig.manager("warm")->monitor_once();

  const Stats c = stats(cold), w = stats(warm), d = stats(docker_run), cd = stats(cold_destroy);
  report("library: create (cold) -> exec true result", c);
  report("library: create (warm pool) -> exec true result", w);
  report("library: destroy after the cold create (not in the figure)", cd);
  report("docker run --rm --network none IMAGE true", d);
  std::vector<double> cold_total;
  for (std::size_t i = 0; i < cold.size(); ++i) cold_total.push_back(cold[i] + cold_destroy[i]);
  report("library: cold create -> exec -> destroy (all of docker run --rm)", stats(cold_total));
  const double rc = c.p50 / d.p50, rw = w.p50 / d.p50;
  std::printf("  ratio cold / docker run (p50): %.2fx   warm pool / docker run (p50): %.3fx\n", rc, rw);
  verdict("create->first exec, cold", fmt("p50 %.0f ms", c.p50), fmt("docker run --rm p50 %.0f ms", d.p50), rc,
          fmt("%.2fx", rc), "<= 1.2x", rc <= 1.2);
  verdict("create->first exec, warm pool", fmt("p50 %.1f ms", w.p50), fmt("docker run --rm p50 %.0f ms", d.p50), rw,
          fmt("%.3fx", rw), "<= 0.2x", rw <= 0.2);
}

// ---- 2. warm exec ------------------------------------------------------------------------

struct ApiServer {
  pw::testing::TempDir dir;
  std::unique_ptr<pw::server::Server> server;
  int port = 0;
  ApiServer(const Rig& rig) {
    ::setenv("XDG_DATA_HOME", dir.file("data").c_str(), 1);
    pw::server::Settings s;
    s.host = "127.0.0.1";
    s.port = 0;
    s.database_url = "sqlite:///" + dir.file("bench.db");
    s.capsules_enabled = true;
    s.docker_host = rig.docker_host;
    s.agent_path = rig.opt.agent;
    s.shutdown_grace_s = 5;
    server = std::make_unique<pw::server::Server>(s);
    port = server->start_background();
  }
  ~ApiServer() { server->stop(5); }
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;
};

void bench_exec(Rig& rig) {
  const auto& o = rig.opt;
  std::printf(
      "\n== 2. warm `exec true` (%d runs per path, %d docker exec runs per container, interleaved in 4 rounds)\n",
      o.exec_runs, o.docker_exec_runs);
  // The server first: its manager reconciles at start and would remove containers it has no
  // row for (the library's capsule below).
  ApiServer api(rig);
  httplib::Client cli("127.0.0.1", api.port);
  cli.set_keep_alive(true);
  cli.set_tcp_nodelay(true);  // as the CLI's client: headers and body are two writes
  cli.set_read_timeout(120, 0);
  std::string api_id;
  std::string api_container;
  {
    auto r = cli.Post("/api/v1/capsules", R"({"image":")" + o.image + R"(","timeout_sec":0})", "application/json");
    if (!r || r->status != 201)
      throw std::runtime_error("POST /api/v1/capsules: " + (r ? r->body : std::string("no answer")));
    auto j = nlohmann::json::parse(r->body);
    api_id = j.at("id").get<std::string>();
    api_container = j.at("container_id").get<std::string>();
    if (j.value("exec_mode", "") != "agent") throw std::runtime_error("the API's capsule has no agent: " + r->body);
  }
  const std::string exec_path = "/api/v1/capsules/" + api_id + "/exec";
  const std::string exec_body = R"({"argv":["true"]})";
  auto api_exec = [&] {
    auto r = cli.Post(exec_path, exec_body, "application/json");
    if (!r || r->status != 200 || r->body.find("\"exit_code\":0") == std::string::npos)
      throw std::runtime_error("POST " + exec_path + ": " + (r ? r->body : std::string("no answer")));
  };

  auto m = rig.manager("exec");
  Cleanup cleanup(*m);
  auto rec = m->create(rig.spec(), true);
  cleanup.add(rec.id);
  expect_agent(rec);

  const int warmup = std::max(10, o.exec_runs / 20);
  for (int i = 0; i < warmup; ++i) {
    exec_true(*m, rec.id);
    api_exec();
  }
  rig.docker.run({"exec", rec.container_id, "true"});
  rig.docker.run({"exec", api_container, "true"});

  // The floor: what starting `true` costs this machine at all, without capsule or agent.
  const std::string true_path = "/bin/true";
  char* true_argv[] = {const_cast<char*>("true"), nullptr};
  char* no_env[] = {nullptr};
  auto spawn_true = [&] {
    pid_t pid = -1;
    if (::posix_spawn(&pid, true_path.c_str(), nullptr, nullptr, true_argv, no_env) != 0)
      throw std::runtime_error("posix_spawn /bin/true failed");
    DockerCli::wait_exit(pid);
  };

  std::vector<double> lib, rest, dock_lib, dock_api, floor;
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < o.exec_runs / 4; ++i) {
      auto t0 = Clock::now();
      spawn_true();
      floor.push_back(ms_since(t0));
    }
    for (int i = 0; i < o.exec_runs / 4; ++i) {
      auto t0 = Clock::now();
      exec_true(*m, rec.id);
      lib.push_back(ms_since(t0));
    }
    for (int i = 0; i < o.exec_runs / 4; ++i) {
      auto t0 = Clock::now();
      api_exec();
      rest.push_back(ms_since(t0));
    }
    for (int i = 0; i < std::max(1, o.docker_exec_runs / 4); ++i) {
      auto t0 = Clock::now();
      rig.docker.run({"exec", rec.container_id, "true"});
      dock_lib.push_back(ms_since(t0));
      t0 = Clock::now();
      rig.docker.run({"exec", api_container, "true"});
      dock_api.push_back(ms_since(t0));
    }
  }
  const Stats l = stats(lib), r = stats(rest), dl = stats(dock_lib), da = stats(dock_api);
  report("floor: posix_spawn /bin/true + waitpid on the host", stats(floor));
  report("library: manager.exec true (agent, warm)", l);
  report("docker exec CTR true (same container as the library's)", dl);
  report("REST: POST /api/v1/capsules/{id}/exec true (keep-alive)", r);
  report("docker exec CTR true (same container as the REST one)", da);
  const double xl = dl.p50 / l.p50, xr = da.p50 / r.p50;
  std::printf("  docker exec / library (p50): %.0fx   docker exec / REST (p50): %.0fx\n", xl, xr);
  verdict("warm exec true, library", fmt("p50 %.2f ms", l.p50) + fmt(", p99 %.2f ms", l.p99),
          fmt("docker exec p50 %.0f ms", dl.p50), xl, fmt("%.0fx faster", xl), ">= 50x faster", xl >= 50);
  verdict("warm exec true, REST", fmt("p50 %.2f ms", r.p50) + fmt(", p99 %.2f ms", r.p99),
          fmt("docker exec p50 %.0f ms", da.p50), xr, fmt("%.0fx faster", xr), ">= 50x faster", xr >= 50);

  cleanup.destroy_all();
  auto d = cli.Delete(("/api/v1/capsules/" + api_id).c_str());
  if (!d || d->status >= 300) std::fprintf(stderr, "warning: DELETE capsule %s failed\n", api_id.c_str());
}

// ---- 3. concurrent creates ---------------------------------------------------------------

void bench_concurrent(Rig& rig) {
  const auto& o = rig.opt;
  const int n = o.concurrency;
  std::printf("\n== 3. %d concurrent creates (%d rounds, order alternating)\n", n, o.concurrent_rounds);
  auto m = rig.manager("concurrent");
  Cleanup cleanup(*m);
  std::vector<double> ours, theirs, each;
  const std::string label = "pw-bench-concurrent=1";

  auto run_ours = [&] {
    std::vector<std::thread> ts;
    std::vector<std::string> errors(static_cast<std::size_t>(n));
    std::vector<double> lat(static_cast<std::size_t>(n));
    std::atomic<bool> go{false};
    std::atomic<int> ready{0};
    for (int i = 0; i < n; ++i)
      ts.emplace_back([&, i] {
        ready.fetch_add(1);
        while (!go.load()) std::this_thread::yield();
        const auto t0 = Clock::now();
        try {
          auto rec = m->create(rig.spec(), true);
          cleanup.add(rec.id);
          expect_agent(rec);
        } catch (const std::exception& ex) {
          errors[static_cast<std::size_t>(i)] = ex.what();
        }
        lat[static_cast<std::size_t>(i)] = ms_since(t0);
      });
    while (ready.load() < n) std::this_thread::yield();
    const auto t0 = Clock::now();
    go = true;
    for (auto& t : ts) t.join();
    ours.push_back(ms_since(t0));
    each.insert(each.end(), lat.begin(), lat.end());
    for (const auto& e : errors)
      if (!e.empty()) throw std::runtime_error("concurrent create: " + e);
    cleanup.destroy_all();
  };
  auto run_theirs = [&] {
    std::vector<pid_t> pids;
    const auto t0 = Clock::now();
    for (int i = 0; i < n; ++i)
      pids.push_back(rig.docker.spawn({"run", "-d", "--network", "none", "--label", label, o.image, "sleep", "1000"}));
    int failed = 0;
    for (pid_t p : pids) failed += DockerCli::wait_exit(p) != 0;
    theirs.push_back(ms_since(t0));
    rig.docker.remove_label(label);
    if (failed) throw std::runtime_error(std::to_string(failed) + " docker run -d failed");
  };
  for (int round = 0; round < o.concurrent_rounds; ++round) {
    if (round % 2 == 0) {
      run_ours();
      run_theirs();
    } else {
      run_theirs();
      run_ours();
    }
    std::printf("  round %d: library %.0f ms, docker run -d %.0f ms\n", round + 1, ours.back(), theirs.back());
  }
  const Stats so = stats(ours), st = stats(theirs);
  report("library: " + std::to_string(n) + " threads x manager.create(wait), wall", so);
  report("library: one create among them", stats(each));
  report(std::to_string(n) + " concurrent docker run -d IMAGE sleep 1000, wall", st);
  const double r = so.p50 / st.p50;
  std::printf("  ratio library / docker (median wall): %.2fx\n", r);
  verdict(std::to_string(n) + " concurrent creates", fmt("median %.0f ms", so.p50) + " wall",
          fmt("docker run -d median %.0f ms", st.p50), r, fmt("%.2fx", r), "<= 1.2x", r <= 1.2);
}

// ---- 4. memory per idle capsule ----------------------------------------------------------

struct MemSample {
  long avail = 0, kernel = 0, self = 0, dockerd = 0, containerd = 0;
};

long median_of(std::vector<long> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The host's figures are the median of 5 readings 0.4 s apart (other work on the machine
// moves MemAvailable by tens of MiB within seconds); the processes' are read once.
MemSample sample(const Rig& rig) {
  std::vector<long> avail, kernel;
  for (int i = 0; i < 5; ++i) {
    if (i) std::this_thread::sleep_for(std::chrono::milliseconds(400));
    avail.push_back(mem_available_kb());
    kernel.push_back(proc_kb("/proc/meminfo", "SUnreclaim") + proc_kb("/proc/meminfo", "KernelStack") +
                     proc_kb("/proc/meminfo", "PageTables"));
  }
  MemSample s;
  s.avail = median_of(avail);
  s.kernel = median_of(kernel);
  s.self = rss_kb(static_cast<int>(::getpid()));
  s.dockerd = rss_kb(pid_from_file(rig.dockerd_dir + "/dockerd.pid"));
  s.containerd = rss_kb(pid_from_file(rig.dockerd_dir + "/containerd.pid"));
  return s;
}

// Per container: PID 1's RSS/PSS, its cgroup's memory, its shim's RSS/PSS.
struct Footprint {
  std::vector<double> init_rss, init_pss, cgroup, shim_rss, shim_pss;
  void add(int pid) {
    init_rss.push_back(static_cast<double>(rss_kb(pid)));
    init_pss.push_back(static_cast<double>(pss_kb(pid)));
    cgroup.push_back(static_cast<double>(cgroup_memory_kb(pid)));
    const int shim = parent_pid(pid);
    shim_rss.push_back(static_cast<double>(rss_kb(shim)));
    shim_pss.push_back(static_cast<double>(pss_kb(shim)));
  }
  static double sum(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return s;
  }
};

// What n containers cost, per container, from the samples before and after.
struct PerContainer {
  double accounted = 0;  // kB: cgroup + shim PSS + daemons' growth + this process's growth + kernel
  double avail = 0;      // kB: the drop of host MemAvailable
};

PerContainer memory_report(const char* what, int n, const MemSample& a, const MemSample& b, const Footprint& f) {
  const double dn = n;
  const double avail = static_cast<double>(a.avail - b.avail) / dn;
  const double kernel = static_cast<double>(b.kernel - a.kernel) / dn;
  const double self = static_cast<double>(b.self - a.self) / dn;
  const double daemons = static_cast<double>((b.dockerd - a.dockerd) + (b.containerd - a.containerd)) / dn;
  const double cg = Footprint::sum(f.cgroup) / dn, shim = Footprint::sum(f.shim_pss) / dn;
  const double accounted = cg + shim + std::max(0.0, daemons) + std::max(0.0, self) + std::max(0.0, kernel);
  const Stats ir = stats(f.init_rss), ip = stats(f.init_pss);
  std::printf("  %s (%d):\n", what, n);
  std::printf("    PID 1 VmRSS           median %7.0f kB  max %7.0f kB   (PSS median %.0f kB)\n", ir.p50, ir.max,
              ip.p50);
  std::printf("    container cgroup      %7.0f kB each (memory charged to it, incl. page cache)\n", cg);
  std::printf("    containerd shim       %7.0f kB each (PSS; RSS median %.0f kB)\n", shim, stats(f.shim_rss).p50);
  std::printf("    dockerd + containerd  %7.0f kB each (RSS %ld -> %ld kB, %ld -> %ld kB)\n", daemons, a.dockerd,
              b.dockerd, a.containerd, b.containerd);
  std::printf("    this process          %7.0f kB each (RSS %ld -> %ld kB)\n", self, a.self, b.self);
  std::printf("    kernel (SUnreclaim + KernelStack + PageTables) %7.0f kB each (%ld -> %ld kB, whole host)\n", kernel,
              a.kernel, b.kernel);
  std::printf("    accounted sum         %7.0f kB each\n", accounted);
  std::printf("    host MemAvailable     %7.0f kB each (%ld -> %ld kB, whole host: other work moves it)\n", avail,
              a.avail, b.avail);
  std::printf(
      "json: {\"bench\":\"memory %s\",\"n\":%d,\"init_rss_kb_p50\":%.0f,\"init_rss_kb_max\":%.0f,"
      "\"init_pss_kb_p50\":%.0f,\"cgroup_kb\":%.0f,\"shim_pss_kb\":%.0f,\"daemons_kb\":%.0f,\"self_kb\":%.0f,"
      "\"kernel_kb\":%.0f,\"accounted_kb\":%.0f,\"memavailable_kb\":%.0f}\n",
      what, n, ir.p50, ir.max, ip.p50, cg, shim, daemons, self, kernel, accounted, avail);
  std::fflush(stdout);
  return {accounted, avail};
}

void settle() { std::this_thread::sleep_for(std::chrono::seconds(3)); }

void bench_memory(Rig& rig) {
  const auto& o = rig.opt;
  const int n = o.idle;
  const int plain = o.plain_idle < 0 ? n : o.plain_idle;
  std::printf("\n== 4. memory: %d idle capsules vs %d idle plain containers (`docker run -d IMAGE sleep`)\n", n, plain);
  const long total = mem_total_kb();

  PerContainer per_capsule;
  MemSample before_caps;
  long agent_rss_max = 0;
  double agent_rss_p50 = 0;
  {
    auto m = rig.manager("memory");
    Cleanup cleanup(*m);
    // One capsule first, destroyed again: the manager's threads and the image's pages are
    // then in the "before" sample.
    auto first = m->create(rig.spec(), true);
    cleanup.add(first.id);
    exec_true(*m, first.id);
    cleanup.destroy_all();
    settle();
    before_caps = sample(rig);
    std::atomic<int> next{0};
    std::vector<std::string> errors;
    std::mutex err_mu;
    std::vector<std::thread> ts;
    const auto t0 = Clock::now();
    for (int t = 0; t < o.create_threads; ++t)
      ts.emplace_back([&] {
        while (next.fetch_add(1) < n) {
          try {
            auto rec = m->create(rig.spec(), true);
            cleanup.add(rec.id);
            expect_agent(rec);
          } catch (const std::exception& ex) {
            std::lock_guard lk(err_mu);
            errors.emplace_back(ex.what());
          }
        }
      });
    for (auto& t : ts) t.join();
    std::printf("  created %d capsules in %.1f s (%d threads)\n", n, ms_since(t0) / 1000.0, o.create_threads);
    if (!errors.empty()) throw std::runtime_error("memory: create failed: " + errors.front());
    settle();
    const MemSample after = sample(rig);
    Footprint f;
    for (const auto& id : cleanup.ids) {
      auto st = rig.backend->inspect(m->get(id).container_id);
      if (st.pid <= 0) throw std::runtime_error("capsule " + id + " has no running init");
      f.add(st.pid);
    }
    agent_rss_p50 = stats(f.init_rss).p50;
    agent_rss_max = std::lround(stats(f.init_rss).max);
    per_capsule = memory_report("idle capsules (PID 1 = pw-agent)", n, before_caps, after, f);
    cleanup.destroy_all();
    settle();
    const MemSample freed = sample(rig);
    std::printf("    after destroying them: MemAvailable %ld kB (%+ld kB against before)\n", freed.avail,
                freed.avail - before_caps.avail);
  }
  verdict("agent RSS per idle capsule",
          fmt("median %.0f kB", agent_rss_p50) + fmt(", max %.0f kB", static_cast<double>(agent_rss_max)), "-",
          static_cast<double>(agent_rss_max) / 1024.0, fmt("%.2f MiB max", static_cast<double>(agent_rss_max) / 1024.0),
          "<= 2 MiB", agent_rss_max <= 2048);

  PerContainer per_plain;
  if (plain > 0) {
    const std::string label = "pw-bench-idle=1";
    rig.docker.run({"run", "-d", "--network", "none", "--label", label, o.image, "sleep", "1000000"});
    rig.docker.remove_label(label);
    settle();
    const MemSample a = sample(rig);
    try {
      for (int done = 0; done < plain;) {
        std::vector<pid_t> pids;
        for (int k = 0; k < o.create_threads && done < plain; ++k, ++done)
          pids.push_back(
              rig.docker.spawn({"run", "-d", "--network", "none", "--label", label, o.image, "sleep", "1000000"}));
        int failed = 0;
        for (pid_t p : pids) failed += DockerCli::wait_exit(p) != 0;
        if (failed) throw std::runtime_error("docker run -d failed");
      }
      settle();
      const MemSample b = sample(rig);
      Footprint f;
      for (const auto& id : rig.docker.ids(label)) {
        auto st = rig.backend->inspect(id);
        if (st.pid > 0) f.add(st.pid);
      }
      per_plain = memory_report("idle plain containers (PID 1 = busybox sleep)", plain, a, b, f);
    } catch (...) {
      rig.docker.remove_label(label);
      throw;
    }
    rig.docker.remove_label(label);
  }

  // The headline is the conservative one: the larger of the two per-capsule costs.
  const long avail = before_caps.avail;
  const double cost = std::max(per_capsule.accounted, per_capsule.avail);
  const double holds = static_cast<double>(avail) / cost;
  std::printf("  per idle capsule: accounted %s, MemAvailable drop %s", mib(per_capsule.accounted).c_str(),
              mib(per_capsule.avail).c_str());
  if (plain > 0)
    std::printf("; per plain container: accounted %s, MemAvailable drop %s (capsule / plain, accounted: %.2fx)",
                mib(per_plain.accounted).c_str(), mib(per_plain.avail).c_str(),
                per_capsule.accounted / per_plain.accounted);
  std::printf(
      "\n  this machine: MemTotal %s, MemAvailable %s before the capsules -> MemAvailable / %s (the larger cost)"
      " = about %.0f idle capsules (MemTotal / cost: %.0f)\n",
      mib(static_cast<double>(total)).c_str(), mib(static_cast<double>(avail)).c_str(), mib(cost).c_str(), holds,
      static_cast<double>(total) / cost);
  std::printf(
      "json: {\"bench\":\"idle capsules capacity\",\"per_capsule_kb\":%.0f,\"per_capsule_avail_kb\":%.0f,"
      "\"per_plain_kb\":%.0f,\"memavailable_kb\":%ld,\"memtotal_kb\":%ld,\"capsules\":%.0f}\n",
      per_capsule.accounted, per_capsule.avail, per_plain.accounted, avail, total, holds);
  verdicts.push_back({"idle capsules this machine holds", fmt("%.0f", holds) + " (" + mib(cost) + " each)",
                      plain > 0 ? "plain container " + mib(per_plain.accounted) + " each" : "-",
                      plain > 0 ? fmt("%.2fx a plain container", per_capsule.accounted / per_plain.accounted) : "-",
                      "-", true});
}

// Destroys every capsule still recorded (a phase that failed half-way, the warm pool's).
void sweep(Rig& rig) {
  auto m = rig.manager("sweep");
  for (const auto& r : rig.records->list(pw::capsules::CapsuleFilter{})) {
    try {
      m->destroy(r.id);
    } catch (const std::exception& ex) {
      std::fprintf(stderr, "warning: destroy %s: %s\n", r.id.c_str(), ex.what());
    }
  }
}

int to_int(const std::string& s, const char* flag) {
  try {
    return std::stoi(s);
  } catch (const std::exception&) {
    throw std::invalid_argument(std::string(flag) + ": not a number: " + s);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Rig rig;
  auto& o = rig.opt;
  o.image = env("PW_CAPSULE_IMAGE");
  rig.docker_host = env("PW_DOCKER_HOST");
  rig.dockerd_dir = env("PW_DOCKERD_DIR");
  rig.docker.cli = env("PW_DOCKER_CLI", "/usr/bin/docker");
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      const std::string v = argv[++i];
      if (a == "--only") {
        o.only.clear();
        std::istringstream in(v);
        for (std::string w; std::getline(in, w, ',');) o.only.insert(w);
      } else if (a == "--create-runs") {
        o.create_runs = to_int(v, "--create-runs");
      } else if (a == "--warm-pool") {
        o.warm_pool = to_int(v, "--warm-pool");
      } else if (a == "--exec-runs") {
        o.exec_runs = to_int(v, "--exec-runs");
      } else if (a == "--docker-exec-runs") {
        o.docker_exec_runs = to_int(v, "--docker-exec-runs");
      } else if (a == "--concurrency") {
        o.concurrency = to_int(v, "--concurrency");
      } else if (a == "--concurrent-rounds") {
        o.concurrent_rounds = to_int(v, "--concurrent-rounds");
      } else if (a == "--idle") {
        o.idle = to_int(v, "--idle");
      } else if (a == "--plain-idle") {
        o.plain_idle = to_int(v, "--plain-idle");
      } else if (a == "--create-threads") {
        o.create_threads = to_int(v, "--create-threads");
      } else if (a == "--image") {
        o.image = v;
      } else if (a == "--agent") {
        o.agent = v;
      } else {
        throw std::invalid_argument("unknown option " + a);
      }
    }
    if (o.image.empty() || rig.docker_host.empty())
      throw std::invalid_argument("PW_CAPSULE_IMAGE and PW_DOCKER_HOST must be set (bench/run_capsule_bench.sh does)");
    if (o.create_runs < 1 || o.exec_runs < 4 || o.docker_exec_runs < 1 || o.concurrency < 1 ||
        o.concurrent_rounds < 1 || o.idle < 1 || o.create_threads < 1 || o.warm_pool < 1)
      throw std::invalid_argument("counts must be positive (--exec-runs at least 4)");
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "pw_bench_capsules: %s\n", ex.what());
    return 2;
  }
  if (!rig.dockerd_dir.empty()) rig.docker.config_dir = rig.dockerd_dir + "/cli-config";
  rig.docker.host = rig.docker_host;

  try {
    rig.backend = std::shared_ptr<pw::capsules::CapsuleBackend>(pw::capsules::make_docker_backend(rig.docker_host));
    std::printf("capsule benchmarks: image %s, engine %s, agent %s\n", o.image.c_str(), rig.backend->describe().c_str(),
                o.agent.c_str());
    if (o.only.count("create")) bench_create(rig);
    if (o.only.count("exec")) bench_exec(rig);
    if (o.only.count("concurrent")) bench_concurrent(rig);
    if (o.only.count("memory")) bench_memory(rig);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "pw_bench_capsules: %s\n", ex.what());
    try {
      sweep(rig);
    } catch (const std::exception&) {  // the run script removes what is left and fails
    }
    return 1;
  }

  std::printf("\n== summary (each figure against its comparison in this run)\n");
  std::printf("  %-34s | %-32s | %-30s | %-22s | %-14s | %s\n", "what", "figure", "compared with", "ratio", "target",
              "verdict");
  for (const auto& v : verdicts)
    std::printf("  %-34s | %-32s | %-30s | %-22s | %-14s | %s\n", v.what.c_str(), v.figure.c_str(),
                v.comparison.c_str(), v.ratio.c_str(), v.target.c_str(),
                v.target == "-" ? "-"
                : v.met         ? "met"
                                : "NOT met");
  return 0;
}

// Session-layer benchmarks (issue: foundation).
//   pw_bench_session latency [--runs N] [--docker-container ID --docker-host URL]
//       per-command latency of `true` on one persistent session: websocketd+TLS (pipe
//       shell and PTY shell), plain ws, a local PTY; optionally `docker exec CTR true`.
//   pw_bench_session memory [--sessions N] [--tls]
//       client RSS per idle connected session, N sessions open to one local websocketd.
// Results go to stdout as a table and as one JSON line per figure (prefix "json: ").
#include "fixtures.hpp"

#include <podwrangler/podwrangler.hpp>
#include <podwrangler/url.hpp>

#include <utility>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <malloc.h>
#include <nlohmann/json.hpp>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

namespace asio = boost::asio;
using namespace pw;
using namespace pw::testing;
using Clock = std::chrono::steady_clock;

extern char** environ;

namespace {

struct Stats {
  double p50, p90, p99, mean, min, max;
  std::size_t n;
};

Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<std::size_t>(q * (v.size() - 1) + 0.5))]; };
  double sum = 0;
  for (double x : v) sum += x;
  return {at(0.5), at(0.9), at(0.99), sum / v.size(), v.front(), v.back(), v.size()};
}

void report(const std::string& name, const Stats& s) {
  std::printf("%-44s n=%-5zu p50=%8.3f ms  p90=%8.3f ms  p99=%8.3f ms  mean=%8.3f ms  max=%8.3f ms\n", name.c_str(),
              s.n, s.p50, s.p90, s.p99, s.mean, s.max);
  nlohmann::json j{{"bench", name},   {"n", s.n},          {"p50_ms", s.p50}, {"p90_ms", s.p90},
                   {"p99_ms", s.p99}, {"mean_ms", s.mean}, {"max_ms", s.max}};
  std::printf("json: %s\n", j.dump().c_str());
  std::fflush(stdout);
}

std::vector<double> time_session(asio::io_context& io, const PodEndpoint& ep, int runs, int warmup) {
  std::vector<double> ms;
  auto task = [&]() -> Task<void> {
    auto ex = co_await asio::this_coro::executor;
    PodSession s(ex, ep);
    co_await s.connect();
    for (int i = 0; i < warmup; ++i) co_await s.run("true");
    ms.reserve(runs);
    for (int i = 0; i < runs; ++i) {
      auto t0 = Clock::now();
      auto r = co_await s.run("true");
      auto t1 = Clock::now();
      if (r.exit_code != 0) throw std::runtime_error("true failed");
      ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    co_await s.close();
  };
  auto fut = asio::co_spawn(io, task(), asio::use_future);
  io.restart();
  io.run();
  fut.get();
  return ms;
}

int spawn_wait(std::vector<std::string> argv) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  if (posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ) != 0) return -1;
  posix_spawn_file_actions_destroy(&fa);
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string arg_value(int argc, char** argv, const std::string& name, const std::string& def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return argv[i + 1];
  return def;
}
bool has_flag(int argc, char** argv, const std::string& name) {
  for (int i = 1; i < argc; ++i)
    if (argv[i] == name) return true;
  return false;
}

long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

int latency(int argc, char** argv) {
  int runs = std::stoi(arg_value(argc, argv, "--runs", "2000"));
  TempDir dir;
  TestPki pki = make_test_pki(dir);
  TlsOptions tls;
  tls.ca_file = pki.ca_cert;
  auto tty_provider = std::make_shared<PlainTTYProvider>(220, tls);
  asio::io_context io(1);
  double ours_p50 = 0;
  {
    Websocketd w(dir, pipe_shell_program(), &pki);
    auto ep = endpoint_from_url(w.url("/exec/1/?token=bench-token&pod=bench-pod-1"), tty_provider);
    Stats s = stats(time_session(io, ep, runs, 100));
    ours_p50 = s.p50;
    report("session true: websocketd+TLS, pipe sh", s);
  }
  {
    Websocketd w(dir, pty_shell_program(), &pki);
    auto ep = endpoint_from_url(w.url("/exec/1/?token=bench-token&pod=bench-pod-1"), tty_provider);
    report("session true: websocketd+TLS, PTY sh (script)", stats(time_session(io, ep, runs, 100)));
  }
  {
    Websocketd w(dir, pipe_shell_program(), nullptr);
    auto ep = endpoint_from_url(w.url("/exec/1/?token=bench-token&pod=bench-pod-1"));
    report("session true: websocketd plain ws, pipe sh", stats(time_session(io, ep, runs, 100)));
  }
  report("session true: local PTY (forkpty sh)", stats(time_session(io, endpoint_from_url("local://"), runs, 100)));

  std::string k8s_bin = arg_value(argc, argv, "--k8s-fixture", "");
  if (!k8s_bin.empty()) {
    const std::string token = "bench-k8s-token-0123";
    K8sFixture api(dir, pki, token, k8s_bin);
    auto ep = endpoint_from_url("k8s://default/web-1?server=" + percent_encode(api.server()) +
                                "&ca=" + percent_encode(pki.ca_cert) + "&token=" + token);
    Stats ks = stats(time_session(io, ep, runs, 100));
    report("session true: KubernetesProvider persistent sh (fixture, v5)", ks);
    // kubectl exec against the same fixture, with a fresh HOME (discovery cache warm after
    // the first call, as for a user).
    std::string home = dir.file("kubehome");
    std::vector<double> ms;
    int n = std::stoi(arg_value(argc, argv, "--kubectl-runs", "20"));
    for (int i = 0; i < n + 2; ++i) {
      std::vector<std::string> a{"env",
                                 "HOME=" + home,
                                 "kubectl",
                                 "--server=" + api.server(),
                                 "--token=" + token,
                                 "--certificate-authority=" + pki.ca_cert,
                                 "exec",
                                 "web-1",
                                 "--",
                                 "true"};
      auto t0 = Clock::now();
      if (spawn_wait(a) != 0) throw std::runtime_error("kubectl exec failed");
      if (i >= 2) ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    Stats kc = stats(ms);
    report("kubectl exec web-1 -- true (fixture)", kc);
    std::printf("ratio: kubectl exec p50 / KubernetesProvider session p50 = %.0fx\n", kc.p50 / ks.p50);
  }

  std::string ctr = arg_value(argc, argv, "--docker-container", "");
  if (!ctr.empty()) {
    std::string host = arg_value(argc, argv, "--docker-host", "");
    int n = std::stoi(arg_value(argc, argv, "--docker-runs", "100"));
    std::vector<double> ms;
    for (int i = 0; i < n + 5; ++i) {
      std::vector<std::string> a{"docker"};
      if (!host.empty()) {
        a.push_back("-H");
        a.push_back(host);
      }
      a.insert(a.end(), {"exec", ctr, "true"});
      auto t0 = Clock::now();
      if (spawn_wait(a) != 0) throw std::runtime_error("docker exec failed");
      if (i >= 5) ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    Stats d = stats(ms);
    report("docker exec CTR true (CLI, busybox container)", d);
    if (!host.empty()) {
      auto dep = endpoint_from_url("docker://" + ctr + "?host=" + percent_encode(host));
      Stats ds = stats(time_session(io, dep, runs, 100));
      report("session true: DockerProvider persistent sh", ds);
      std::printf("ratio: docker exec p50 / DockerProvider session p50 = %.0fx\n", d.p50 / ds.p50);
    }
    std::printf("ratio: docker exec p50 / websocketd+TLS session p50 = %.0fx\n", d.p50 / ours_p50);
    std::printf("json: %s\n",
                nlohmann::json{{"bench", "ratio docker/ours p50"}, {"ratio", d.p50 / ours_p50}}.dump().c_str());
  }
  return 0;
}

int memory(int argc, char** argv) {
  int n = std::stoi(arg_value(argc, argv, "--sessions", "1000"));
  bool tls_on = has_flag(argc, argv, "--tls");
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  TempDir dir;
  TestPki pki = make_test_pki(dir);
  TlsOptions tls;
  tls.ca_file = pki.ca_cert;
  auto provider = std::make_shared<PlainTTYProvider>(220, tls);
  Websocketd w(dir, pipe_shell_program(), tls_on ? &pki : nullptr);
  auto ep = endpoint_from_url(w.url("/exec/1/?token=bench-token&pod=bench-pod-1"), provider);
  asio::io_context io(1);
  std::vector<std::unique_ptr<PodSession>> sessions;
  // Warm up one session first so that one-time allocations (TLS context, CA store,
  // Asio service objects) are not counted per session.
  auto open = [&](int count) {
    auto task = [&, count]() -> Task<void> {
      auto ex = co_await asio::this_coro::executor;
      std::vector<std::unique_ptr<PodSession>> batch;
      for (int i = 0; i < count; ++i) batch.push_back(std::make_unique<PodSession>(ex, ep));
      co_await for_each_bounded(batch.size(), 32, [&](std::size_t i) -> Task<void> { co_await batch[i]->connect(); });
      for (auto& b : batch) {
        if (!b->connected()) throw std::runtime_error("a session did not connect");
        sessions.push_back(std::move(b));
      }
    };
    auto fut = asio::co_spawn(io, task(), asio::use_future);
    io.restart();
    // Sessions stay open (their readers keep the io_context busy): run until done.
    while (fut.wait_for(std::chrono::seconds(0)) != std::future_status::ready) io.run_one();
    fut.get();
  };
  open(1);
  malloc_trim(0);
  long before = rss_kib();
  auto t0 = Clock::now();
  open(n);
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  malloc_trim(0);
  long after = rss_kib();
  double per = static_cast<double>(after - before) / n;
  std::printf("%d idle sessions (%s) opened in %.2f s: RSS %ld KiB -> %ld KiB, %.1f KiB per session\n", n,
              tls_on ? "wss://, TLS" : "ws://", secs, before, after, per);
  std::printf("json: %s\n", nlohmann::json{{"bench", std::string("idle session RSS ") + (tls_on ? "wss" : "ws")},
                                           {"sessions", n},
                                           {"kib_per_session", per},
                                           {"open_seconds", secs}}
                                .dump()
                                .c_str());
  std::fflush(stdout);
  sessions.clear();
  io.restart();
  io.run_for(std::chrono::seconds(2));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "latency";
  try {
    if (mode == "latency") return latency(argc, argv);
    if (mode == "memory") return memory(argc, argv);
    std::cerr << "usage: pw_bench_session latency|memory [options]\n";
    return 64;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

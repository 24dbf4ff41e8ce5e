// The capsule agent's cost per call, against a local agent (apps/pw-agent) through the
// client (AgentChannel), next to its floor in the same run:
//   pw_bench_agent [--runs N] [--threads T]
// - floor: posix_spawn of `true` + waitpid from this process, no agent, no socket;
// - ping: one round trip on the connection (alive()), no process;
// - exec true: warm, one connection, sequential (what a `capsule exec` costs inside);
// - exec true, T threads on one connection: throughput;
// - the agent's RSS, idle, after the runs.
// Results go to stdout as a table and one JSON line per figure (prefix "json: ").
#include "fixtures.hpp"

#include <podwrangler/capsules/agent_client.hpp>

#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#ifndef PW_AGENT_BIN
#error "PW_AGENT_BIN must name the pw-agent executable"
#endif

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

struct Stats {
  double p50 = 0, p99 = 0, mean = 0, max = 0;
  std::size_t n = 0;
};

Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto at = [&](double q) {
    return v[std::min(v.size() - 1, static_cast<std::size_t>(q * (v.size() - 1) + 0.5))];
  };
  double sum = 0;
  for (double x : v) sum += x;
  return {at(0.5), at(0.99), sum / static_cast<double>(v.size()), v.back(), v.size()};
}

void report(const char* name, const Stats& s) {
  std::printf("%-46s n=%-6zu p50=%8.3f ms  p99=%8.3f ms  mean=%8.3f ms  max=%8.3f ms\n", name, s.n, s.p50, s.p99,
              s.mean, s.max);
  std::printf("json: {\"bench\":\"%s\",\"n\":%zu,\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"mean_ms\":%.4f,\"max_ms\":%.4f}\n",
              name, s.n, s.p50, s.p99, s.mean, s.max);
  std::fflush(stdout);
}

template <class F>
std::vector<double> time_runs(int warmup, int runs, F&& f) {
  std::vector<double> ms;
  ms.reserve(static_cast<std::size_t>(runs));
  for (int i = 0; i < warmup + runs; ++i) {
    const auto t0 = Clock::now();
    f();
    if (i >= warmup) ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return ms;
}

long rss_kb(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 2000;
  int threads = 8;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--runs") runs = std::stoi(argv[i + 1]);
    if (std::string(argv[i]) == "--threads") threads = std::stoi(argv[i + 1]);
  }
  const int warmup = std::max(10, runs / 20);
  pw::testing::TempDir dir;
  const std::string sock = dir.file("agent.sock");
  pw::testing::Process agent({PW_AGENT_BIN, "--socket", sock}, dir.file("agent.log"));
  auto ch = pw::capsules::connect_agent(sock, agent.pid(), std::chrono::seconds(5));

  // Alternate the two so that load from elsewhere hits both alike.
  std::vector<double> floor_ms;
  std::vector<double> exec_ms;
  pw::capsules::ExecRequest req;
  req.argv = {"true"};
  const std::string true_path = "/bin/true";
  char* true_argv[] = {const_cast<char*>("true"), nullptr};
  for (int round = 0; round < 4; ++round) {
    auto f = time_runs(round == 0 ? warmup : 0, runs / 4, [&] {
      pid_t pid = -1;
      if (::posix_spawn(&pid, true_path.c_str(), nullptr, nullptr, true_argv, environ) != 0) std::abort();
      int status = 0;
      ::waitpid(pid, &status, 0);
    });
    floor_ms.insert(floor_ms.end(), f.begin(), f.end());
    auto e = time_runs(round == 0 ? warmup : 0, runs / 4, [&] {
      if (ch->exec(req).exit_code != 0) std::abort();
    });
    exec_ms.insert(exec_ms.end(), e.begin(), e.end());
  }
  auto ping_ms = time_runs(warmup, runs, [&] {
    if (!ch->alive()) std::abort();
  });

  std::printf("== warm `exec true` through the agent vs its floor (same run)\n");
  report("floor: posix_spawn true + waitpid (no agent)", stats(floor_ms));
  report("agent: ping round trip (alive)", stats(ping_ms));
  report("agent: exec true (one connection, warm)", stats(exec_ms));

  // Throughput: T threads sharing the one connection.
  std::atomic<int> left{runs};
  std::vector<std::thread> ts;
  const auto t0 = Clock::now();
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&] {
      while (left.fetch_sub(1) > 0)
        if (ch->exec(req).exit_code != 0) std::abort();
    });
  }
  for (auto& t : ts) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("%-46s %d execs in %.3f s = %.0f execs/s\n", "agent: exec true, 8 threads, one connection", runs, secs,
              runs / secs);
  std::printf("json: {\"bench\":\"agent exec true concurrent\",\"threads\":%d,\"n\":%d,\"execs_per_s\":%.1f}\n",
              threads, runs, runs / secs);
  const long rss = rss_kb(agent.pid());
  std::printf("%-46s %ld kB\n", "agent RSS after the runs (idle)", rss);
  std::printf("json: {\"bench\":\"agent rss idle\",\"kb\":%ld}\n", rss);
  ch->close();
  return 0;
}

#include "embedded_server/replicas.hpp"

#include <podwrangler/errors.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <unistd.h>

namespace pw::server {

namespace {

std::string hostname() {
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  return host;
}

// The boot id's first 8 hex digits and the PID namespace's inode: equal for two processes
// exactly when one can check the other's pid with kill().
std::string machine_id() {
  std::string boot;
  {
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string line;
    if (std::getline(in, line))
      for (char c : line)
        if (std::isxdigit(static_cast<unsigned char>(c)) && boot.size() < 8) boot += c;
  }
  if (boot.empty()) boot = "0";
  std::string ns = "0";
  char buf[128];
  ssize_t n = ::readlink("/proc/self/ns/pid", buf, sizeof buf - 1);  // "pid:[4026531836]"
  if (n > 0) {
    std::string link(buf, static_cast<std::size_t>(n));
    auto lb = link.find('['), rb = link.find(']');
    if (lb != std::string::npos && rb != std::string::npos && rb > lb + 1) ns = link.substr(lb + 1, rb - lb - 1);
  }
  return boot + "." + ns;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (true) {
    auto j = s.find(sep, i);
    out.push_back(s.substr(i, j == std::string::npos ? std::string::npos : j - i));
    if (j == std::string::npos) return out;
    i = j + 1;
  }
}

double env_seconds(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(v, &end);
  if (errno != 0 || end == v || *end != '\0' || !std::isfinite(d) || d <= 0 ||
      std::isspace(static_cast<unsigned char>(v[0])))
    throw PodConfigValidationError(name, "must be a positive number of seconds");
  return d;
}

std::string plural(int n, const char* one, const char* many) { return std::to_string(n) + " " + (n == 1 ? one : many); }

}  // namespace

ReplicaTiming ReplicaTiming::from_env() {
  ReplicaTiming t;
  t.heartbeat_s = env_seconds("PODWRANGLER_REPLICA_HEARTBEAT_S", t.heartbeat_s);
  t.lease_s = env_seconds("PODWRANGLER_REPLICA_LEASE_S", t.lease_s);
  t.validate();
  return t;
}

void ReplicaTiming::validate() const {
  if (!(heartbeat_s >= 0.05 && heartbeat_s <= 3600))
    throw PodConfigValidationError("PODWRANGLER_REPLICA_HEARTBEAT_S", "must be between 0.05 and 3600 seconds");
  if (!(lease_s <= 86400))
    throw PodConfigValidationError("PODWRANGLER_REPLICA_LEASE_S", "must be at most 86400 seconds");
  if (!(lease_s >= 2 * heartbeat_s))
    throw PodConfigValidationError("PODWRANGLER_REPLICA_LEASE_S",
                                   "must be at least twice PODWRANGLER_REPLICA_HEARTBEAT_S");
}

std::string make_server_id() {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  return hostname() + ":" + std::to_string(::getpid()) + ":" + std::to_string(ms) + ":" + machine_id();
}

std::vector<std::string> dead_local_servers(const std::vector<std::string>& ids, const std::string& self) {
  const std::string host = hostname();
  const std::string machine = machine_id();
  std::vector<std::string> dead;
  for (const auto& id : ids) {
    if (id == self) continue;
    const auto f = split(id, ':');
    if ((f.size() != 3 && f.size() != 4) || f[0] != host) continue;
    if (f.size() == 4 && f[3] != machine) continue;  // another machine or PID namespace
    char* end = nullptr;
    const long pid = std::strtol(f[1].c_str(), &end, 10);
    if (f[1].empty() || *end != '\0' || pid <= 0 || pid > 4194304) continue;
    if (pid == ::getpid()) {
      // An earlier process with our pid is certainly gone; an old-form id cannot say it
      // is from this PID namespace, so it is left alone as before.
      if (f.size() == 4) dead.push_back(id);
      continue;
    }
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) dead.push_back(id);
  }
  return dead;
}

ReplicaLease::ReplicaLease(Store& store, std::string server_id, ReplicaTiming timing, Log log)
    : store_(store),
      id_(std::move(server_id)),
      started_at_(now_rfc3339()),
      timing_(timing),
      log_(log ? std::move(log)
               : Log([](const std::string& line) { std::cerr << "podwrangler serve: " << line << std::endl; })) {
  timing_.validate();
  store_.heartbeat(id_, started_at_, timing_.lease_s);  // throws: no lease, no start
  try {
    sweep();
  } catch (const std::exception& e) {
    log_(std::string("could not check for dead replicas: ") + e.what());
    sweep_failing_ = true;
  }
  thread_ = std::thread([this] { run(); });
}

ReplicaLease::~ReplicaLease() { stop(false); }

void ReplicaLease::stop(bool release) {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lk(tick_mu_);
  if (release && !released_) {
    released_ = true;
    try {
      store_.release_lease(id_);
    } catch (const std::exception& e) {
      log_(std::string("could not release the replica lease (it will expire): ") + e.what());
    }
  }
}

void ReplicaLease::run() {
  const auto period = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(timing_.heartbeat_s));
  auto next = std::chrono::steady_clock::now() + period;
  std::unique_lock lk(mu_);
  while (!stopping_) {
    if (cv_.wait_until(lk, next, [this] { return stopping_; })) break;
    lk.unlock();
    tick();
    lk.lock();
    // Fixed rate, but never a burst of catch-up ticks after a stall.
    next = std::max(next + period, std::chrono::steady_clock::now());
  }
}

void ReplicaLease::tick() {
  std::lock_guard lk(tick_mu_);
  if (released_) return;
  try {
    const bool had_lease = store_.heartbeat(id_, started_at_, timing_.lease_s);
    if (renew_failing_) log_("the replica lease is renewed again");
    if (!had_lease)
      log_(
          "the replica lease had expired (database unreachable or this process stalled for more "
          "than " +
          std::to_string(static_cast<int>(timing_.lease_s)) +
          " s): another replica may have marked this server's running commands interrupted");
    renew_failing_ = false;
  } catch (const std::exception& e) {
    if (!renew_failing_) log_(std::string("cannot renew the replica lease: ") + e.what());
    renew_failing_ = true;
    return;  // no sweeping while the database does not answer
  }
  try {
    sweep();
  } catch (const std::exception& e) {
    if (!sweep_failing_) log_(std::string("cannot check for dead replicas: ") + e.what());
    sweep_failing_ = true;
    return;
  }
  sweep_failing_ = false;
}

void ReplicaLease::sweep() {
  for (const auto& r : store_.reap_expired_replicas(id_))
    if (r.commands > 0)
      log_("replica " + r.server_id + " stopped renewing its lease (last seen " + r.last_seen +
           "): " + plural(r.commands, "running command", "running commands") + " marked interrupted");
  auto dead = dead_local_servers(store_.running_server_ids(), id_);
  if (!dead.empty()) {
    const int n = store_.interrupt_orphans(dead);
    if (n > 0)
      log_(plural(n, "running command", "running commands") + " of " +
           plural(static_cast<int>(dead.size()), "ended server process", "ended server processes") +
           " on this host marked interrupted");
  }
}

}  // namespace pw::server

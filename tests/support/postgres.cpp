#include "postgres.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace pw::testing {

namespace {

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

// True while `pid` exists and is not a zombie (a killed postmaster whose parent is gone
// may linger as a zombie when PID 1 does not reap).
bool alive(int pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto rp = stat.rfind(')');
  return !(rp != std::string::npos && rp + 2 < stat.size() && stat[rp + 2] == 'Z');
}

// The processes whose parent is `pid` (the postmaster's backends and helpers).
std::vector<int> children_of(int pid) {
  std::vector<int> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = read_file("/proc/" + name + "/stat");
    auto rp = stat.rfind(')');
    if (rp == std::string::npos) continue;
    std::istringstream rest(stat.substr(rp + 2));
    char state = 0;
    int ppid = 0;
    if (rest >> state >> ppid && ppid == pid) out.push_back(std::stoi(name));
  }
  return out;
}

}  // namespace

PostgresCluster::PostgresCluster() {
  bin_ = "/usr/lib/postgresql/15/bin";
  if (::access((bin_ + "/initdb").c_str(), X_OK) != 0)
    throw std::runtime_error("PostgreSQL 15 is not installed (" + bin_ + "/initdb)");
  root_ = ::geteuid() == 0;
  const std::string dir = dir_.path().string();
  data_ = dir + "/data";
  log_ = dir + "/postgres.log";
  if (root_) {
    // The server runs as `postgres`: give it the directory, and check it can get there.
    if (sh("chown postgres:postgres " + quote(dir)) != 0)
      throw std::runtime_error("cannot chown " + dir + " to postgres");
    if (sh("runuser -u postgres -- test -w " + quote(dir)) != 0)
      throw std::runtime_error("the postgres user cannot reach " + dir +
                               " (a parent directory is not traversable; set TMPDIR)");
  }
  const std::string initdb_log = dir + "/initdb.log";
  int rc = sh(as_owner(bin_ + "/initdb -D " + quote(data_) + " -A trust -U pw -E UTF8 --locale=C.UTF-8 --no-sync") +
              " >" + quote(initdb_log) + " 2>&1");
  if (rc != 0) throw std::runtime_error("initdb failed:\n" + read_file(initdb_log));
  port_ = free_port();
  start();
}

PostgresCluster::~PostgresCluster() {
  if (postmaster_pid() > 0) {
    try {
      stop();
    } catch (...) {
    }
  }
}

std::string PostgresCluster::as_owner(const std::string& command) const {
  return root_ ? "runuser -u postgres -- " + command : command;
}

int PostgresCluster::postmaster_pid() const {
  std::ifstream in(data_ + "/postmaster.pid");
  int pid = -1;
  if (!(in >> pid)) return -1;
  return alive(pid) ? pid : -1;
}

void PostgresCluster::start() {
  const std::string opts = "-p " + std::to_string(port_) + " -k " + data_ +
                           " -c listen_addresses=127.0.0.1 -c fsync=off"
                           " -c max_connections=200";
  const std::string cmd =
      as_owner(bin_ + "/pg_ctl -D " + quote(data_) + " -l " + quote(log_) + " -o " + quote(opts) + " -w -t 30 start") +
      " >/dev/null 2>&1";
  // After kill_postmaster() its children may hold the shared memory a little longer.
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (sh(cmd) == 0 && wait_for_port(port_, std::chrono::seconds(10))) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  throw std::runtime_error("PostgreSQL did not start:\n" + read_file(log_));
}

void PostgresCluster::stop() {
  if (sh(as_owner(bin_ + "/pg_ctl -D " + quote(data_) + " -m fast -w -t 30 stop") + " >/dev/null 2>&1") != 0 &&
      postmaster_pid() > 0)
    throw std::runtime_error("pg_ctl stop failed:\n" + read_file(log_));
}

void PostgresCluster::restart() {
  stop();
  start();
}

void PostgresCluster::kill_postmaster() {
  int pid = postmaster_pid();
  if (pid <= 0) return;
  const std::vector<int> children = children_of(pid);
  ::kill(pid, SIGKILL);
  // Its backends notice the postmaster's death and exit by themselves; wait for them, so
  // that every client connection is really gone when this returns.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto any_alive = [&] {
    if (alive(pid)) return true;
    for (int c : children)
      if (alive(c)) return true;
    return false;
  };
  while (any_alive() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

std::string PostgresCluster::create_database(const std::string& name) {
  std::string db = name.empty() ? "pw_test_" + std::to_string(++next_db_) : name;
  psql("postgres", "CREATE DATABASE \"" + db + "\"");
  return db;
}

std::string PostgresCluster::url(const std::string& db) const {
  return "postgresql://pw@127.0.0.1:" + std::to_string(port_) + "/" + db;
}

std::string PostgresCluster::psql(const std::string& db, const std::string& sql) const {
  // Unique file names: psql() may be called from several threads.
  static std::atomic<int> seq{0};
  const std::string base = dir_.file("psql." + std::to_string(++seq));
  {
    std::ofstream f(base + ".sql", std::ios::binary);
    f << sql;
  }
  int rc = sh(bin_ + "/psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p " + std::to_string(port_) + " -U pw -d " +
              quote(db) + " -f " + quote(base + ".sql") + " >" + quote(base + ".out") + " 2>" + quote(base + ".err"));
  std::string out = read_file(base + ".out");
  std::string err = read_file(base + ".err");
  ::unlink((base + ".sql").c_str());
  ::unlink((base + ".out").c_str());
  ::unlink((base + ".err").c_str());
  if (rc != 0) throw std::runtime_error("psql failed: " + err);
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace pw::testing

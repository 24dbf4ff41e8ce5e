#pragma once
// A throwaway PostgreSQL 15 cluster for tests: initdb into a TempDir (as the `postgres`
// user when we are root: the server refuses to run as root), a postmaster on 127.0.0.1 and
// a free port (trust auth, user `pw`, fsync off), stopped with `pg_ctl -m fast stop` (which
// ends only its own postmaster, found through its PID file).
#include "fixtures.hpp"

#include <string>

namespace pw::testing {

class PostgresCluster {
 public:
  // initdb (~0.7 s) and start; throws std::runtime_error with the log on failure.
  PostgresCluster();
  ~PostgresCluster();
  PostgresCluster(const PostgresCluster&) = delete;
  PostgresCluster& operator=(const PostgresCluster&) = delete;

  int port() const { return port_; }
  // CREATE DATABASE; a fresh unique name when `name` is empty. Returns the name.
  std::string create_database(const std::string& name = "");
  // postgresql://pw@127.0.0.1:PORT/DBNAME
  std::string url(const std::string& db) const;
  // Runs SQL with psql -At (rows one a line, columns separated by '|'); throws on error.
  std::string psql(const std::string& db, const std::string& sql) const;

  void start();    // pg_ctl start on the same port (retries while a killed one winds down)
  void stop();     // pg_ctl -m fast stop
  void restart();  // stop + start
  // SIGKILL to the postmaster (by its PID file), then waits until it is gone.
  void kill_postmaster();
  int postmaster_pid() const;  // -1 when not running

 private:
  std::string as_owner(const std::string& command) const;  // runuser prefix when root
  TempDir dir_;
  std::string bin_, data_, log_;
  int port_ = 0;
  bool root_ = false;
  int next_db_ = 0;
};

}  // namespace pw::testing

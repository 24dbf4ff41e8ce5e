#pragma once
// Replica leases: several `serve` processes (replicas) may share one database. Each keeps a
// lease row in it (`replicas`: server_id, started_at, last_seen, expires_at), renewed every
// heartbeat by a background thread; every live replica, on each heartbeat, closes the
// commands of replicas whose lease expired: their `running` rows become `interrupted` with
// finished_at = the dead replica's last heartbeat (the time of death, not of discovery).
//
// Timing (ReplicaTiming): heartbeat every PODWRANGLER_REPLICA_HEARTBEAT_S seconds (default
// 5), lease PODWRANGLER_REPLICA_LEASE_S seconds (default 20, at least 2 heartbeats). A
// replica that dies (SIGKILL, crash, lost host) has its running rows closed at most
// lease + heartbeat seconds (25 s by default) after its last heartbeat, by any live replica.
// A replica that is alive but cannot reach the database for longer than its lease may find
// its rows closed meanwhile; the results it records later replace those rows, and it warns.
//
// Fast path: a dead server process on this machine and in this PID namespace (kill(pid, 0)
// fails with ESRCH) is closed at once, at the next heartbeat or start.
#include "embedded_server/store/store.hpp"

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace pw::server {

inline constexpr double DEFAULT_REPLICA_HEARTBEAT_S = 5.0;  // PODWRANGLER_REPLICA_HEARTBEAT_S
inline constexpr double DEFAULT_REPLICA_LEASE_S = 20.0;     // PODWRANGLER_REPLICA_LEASE_S

struct ReplicaTiming {
  double heartbeat_s = DEFAULT_REPLICA_HEARTBEAT_S;
  double lease_s = DEFAULT_REPLICA_LEASE_S;

  // Defaults overlaid with PODWRANGLER_REPLICA_HEARTBEAT_S and PODWRANGLER_REPLICA_LEASE_S
  // (decimal seconds), validated; throws PodConfigValidationError naming the variable.
  static ReplicaTiming from_env();
  // heartbeat 0.05–3600 s, lease ≥ 2 heartbeats and ≤ 86400 s; throws
  // PodConfigValidationError naming the variable.
  void validate() const;
  // The longest a dead replica's rows stay `running` after its last heartbeat.
  double max_detection_s() const { return lease_s + heartbeat_s; }
};

// This process's server id: "host:pid:start_ms:machine", where `machine` (the boot id's
// first 8 hex digits and the PID namespace's inode) tells whether a pid can be checked
// with kill() from here: two containers with one hostname do not judge each other's pids.
std::string make_server_id();

// Of `ids`, those of server processes that are gone: same hostname, same boot and PID
// namespace, and kill(pid, 0) fails with ESRCH (ids of the older form host:pid:start are
// judged on the hostname alone, as before). Never `self`.
std::vector<std::string> dead_local_servers(const std::vector<std::string>& ids, const std::string& self);

// This server's lease and the sweeper of dead replicas' rows.
class ReplicaLease {
 public:
  using Log = std::function<void(const std::string&)>;  // one line, no secrets

  // Takes the lease (synchronously: throws StoreError when the database refuses), closes
  // the rows of dead servers (expired leases, dead local processes) once, then renews and
  // sweeps every heartbeat on a background thread. `log` defaults to stderr
  // ("podwrangler serve: …").
  ReplicaLease(Store& store, std::string server_id, ReplicaTiming timing, Log log = {});
  // Stops the thread without deleting the lease (it expires; see stop()).
  ~ReplicaLease();
  ReplicaLease(const ReplicaLease&) = delete;
  ReplicaLease& operator=(const ReplicaLease&) = delete;

  // Stops the thread; with `release`, deletes the lease row. A clean shutdown calls this
  // after Store::interrupt_running(server_id), so that no running row outlives the lease.
  // Idempotent.
  void stop(bool release = true);
  // One heartbeat and sweep now (the thread does this every heartbeat_s).
  void tick();

  const std::string& server_id() const noexcept { return id_; }
  const ReplicaTiming& timing() const noexcept { return timing_; }

 private:
  void sweep();
  void run();

  Store& store_;
  const std::string id_;
  const std::string started_at_;
  const ReplicaTiming timing_;
  Log log_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool released_ = false;
  bool renew_failing_ = false;
  bool sweep_failing_ = false;
  std::mutex tick_mu_;  // tick() from the thread and from callers, one at a time
  std::thread thread_;
};

}  // namespace pw::server

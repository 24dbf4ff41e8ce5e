#pragma once
// CapsuleManager: the capsule API of the library, the REST routes' only entry point.
// Lifecycle with every transition recorded, exec/files through the capsule's channel
// (agent, or the engine's exec as a fallback), the idle timer that counts work and not
// only calls, auto-resume, health monitoring and recovery, reconciliation with the
// engine, and the warm pool.
// Blocking and thread-safe: each call runs on the caller's thread (the server's workers).
#include <podwrangler/capsules/backend.hpp>
#include <podwrangler/capsules/channel.hpp>
#include <podwrangler/capsules/model.hpp>
#include <podwrangler/capsules/records.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pw::capsules {

struct ManagerSettings {
  std::string data_dir;    // {data_dir}/capsules/<id>/run, {data_dir}/workspaces/<owner>/<session>
  std::string agent_path;  // the static agent; "" = find it (PODWRANGLER_AGENT_PATH, next to the program, libexec)
  std::chrono::milliseconds monitor_interval{1000};  // idle timer, health and pool pass
  std::chrono::milliseconds ready_timeout{15000};    // create --wait: until the agent answers
  int log_lines = 50;                                // kept when a capsule fails
  // Destroyed capsules' rows (and their events) are purged by the monitor after this long.
  std::chrono::milliseconds retention{std::chrono::hours(24 * 7)};
  // Warm pool: image → how many ready capsules to keep (empty = off).
  std::map<std::string, int> warm_pool;
  // Templates: name → spec (image and defaults). Settings file or API.
  std::map<std::string, CapsuleSpec> templates;
};

// What reconcile() changed.
struct ReconcileReport {
  std::vector<std::string> marked_missing;   // rows whose container is gone → error/destroyed
  std::vector<std::string> removed_orphans;  // labelled containers without a row → removed
  std::vector<std::string> state_fixed;      // rows whose state differed from the engine's
  nlohmann::json to_json() const;
};

// The result of an exec, with what the manager had to do first.
struct CapsuleExecResult {
  ExecResult result;
  bool resumed = false;   // the capsule was paused and auto-resumed
  std::string recovered;  // "" / "restarted" / "recreated"
};

class CapsuleManager {
 public:
  CapsuleManager(ManagerSettings settings, std::shared_ptr<CapsuleBackend> backend,
                 std::shared_ptr<CapsuleRecords> records);
  ~CapsuleManager();
  CapsuleManager(const CapsuleManager&) = delete;
  CapsuleManager& operator=(const CapsuleManager&) = delete;

  // Starts the monitor thread (idle timer, health, warm pool); reconcile() first.
  void start_monitor();
  void stop_monitor();

  // wait: return only once the agent answers (or the fallback is ready).
  CapsuleRecord create(CapsuleSpec spec, bool wait = true);
  // Reuses the owner+session capsule if it is running, paused or stopped (resuming or
  // starting it); creates one otherwise. created: whether a new one was made.
  CapsuleRecord get_or_create(CapsuleSpec spec, bool* created = nullptr);
  CapsuleRecord get(const std::string& id);  // refreshed from the engine if in doubt
  std::vector<CapsuleRecord> list(const CapsuleFilter& filter);
  std::vector<CapsuleEvent> events(const std::string& id, int limit = 0);
  // Idempotent: destroying a destroyed capsule returns its record.
  CapsuleRecord destroy(const std::string& id);
  std::vector<std::string> destroy_all(const std::string& owner);
  CapsuleRecord pause(const std::string& id);
  CapsuleRecord resume(const std::string& id);
  CapsuleRecord stop(const std::string& id);
  CapsuleRecord start(const std::string& id);
  // Resets the idle timer; set_timeout changes it live (0 = never).
  CapsuleRecord ping(const std::string& id);
  CapsuleRecord set_timeout(const std::string& id, std::int64_t seconds);

  CapsuleExecResult exec(const std::string& id, const ExecRequest& req, const ExecSink* sink = nullptr);
  // create + exec + destroy (capsule run --rm).
  CapsuleExecResult run_once(CapsuleSpec spec, const ExecRequest& req, const ExecSink* sink = nullptr);
  int start_background(const std::string& id, const ExecRequest& req);
  std::vector<ProcessInfo> processes(const std::string& id);
  void kill(const std::string& id, int pid, int signal);

  void upload(const std::string& id, const std::string& path, ByteSource& src, std::uint32_t mode = 0644);
  void download(const std::string& id, const std::string& path, ByteSink& sink);
  FileStat stat(const std::string& id, const std::string& path);
  std::vector<FileStat> list_files(const std::string& id, const std::string& path, int depth = 1);
  void mkdir(const std::string& id, const std::string& path, bool parents = true);
  void remove(const std::string& id, const std::string& path, bool recursive = false);

  ReconcileReport reconcile();
  // One monitor pass now (tests): idle timers, health, lifetime, pool refill.
  void monitor_once();

  const ManagerSettings& settings() const noexcept;
  CapsuleBackend& backend() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The agent executable to inject: PODWRANGLER_AGENT_PATH, else pw-agent next to the running
// program, else ../libexec/podwrangler/pw-agent relative to it. "" when none is found.
std::string find_agent_executable();

}  // namespace pw::capsules

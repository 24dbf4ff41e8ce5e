#pragma once
// CapsuleManager's insides, shared by its source files (private, not installed):
//   manager.cpp    create, get-or-create, the lifecycle calls, exec and files
//   validate.cpp   templates, specs and requests checked whole (CapsuleValidationError)
//   channels.cpp   the agent's channel or the docker-exec fallback, find_agent_executable()
//   idle.cpp       the idle timer that counts work: activity, ping, set_timeout, expiry
//   health.cpp     the engine's view: sync, recovery, reconcile, the monitor and retention
//   pool.cpp       the warm pool: hand-out and refill
//
// Locking: every capsule has an Entry whose `op` mutex serialises the calls that change it
// (create, pause, resume, stop, start, destroy, recovery, expiry). A record is read, changed
// and written (records->update, version-checked) only with `op` held, so this process never
// races itself; a conflict means another replica changed it. Exec and file calls hold `op`
// only while they make sure the capsule is usable; the call itself runs unlocked on the
// capsule's channel (thread-safe), counted in `inflight` so the idle timer sees it.
// The monitor takes `op` with try_lock and skips a capsule that is busy.
#include <podwrangler/capsules/manager.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>

namespace pw::capsules {
namespace mgr {

std::int64_t now_ms();

// Warm-pool capsules are the records with origin "pool" (no engine label: the backend keeps
// the "podwrangler." label prefix to itself). list() shows them only when its filter asks
// for this label, with the pool's key (an image or template name) as the value.
inline constexpr const char* kLabelPool = "podwrangler.pool";
inline constexpr const char* kOriginPool = "pool";
// The start of exec_mode_reason when no agent was injected into the container.
inline constexpr std::string_view kNoAgentReason = "no agent executable";

// validate.cpp
// The spec a request stands for: the template's spec with the request's own values on top
// (a value equal to the documented default counts as not given). CapsuleNotFoundError for
// an unknown template.
CapsuleSpec resolve_template(const CapsuleSpec& requested, const std::map<std::string, CapsuleSpec>& templates);
// Checks a resolved spec whole; throws CapsuleValidationError naming the field.
// reserved_labels: allow the reserved "podwrangler." label prefix (the pool's own capsules).
void validate_spec(const CapsuleSpec& spec, bool reserved_labels = false);
void validate_exec(const ExecRequest& req);
void validate_path(const std::string& path);
// owner and session as directory names: [A-Za-z0-9._@+-], 1-128, not starting with '.'.
bool is_safe_component(std::string_view s) noexcept;
void validate_owner_session(const CapsuleSpec& spec);
int host_cpus() noexcept;

}  // namespace mgr

struct CapsuleManager::Impl {
  struct Entry {
    std::timed_mutex op;  // one change at a time (timed: a hand-out waits briefly for the monitor)
    std::mutex ch_mu;
    std::shared_ptr<ExecChannel> channel;         // under ch_mu
    std::atomic<std::int64_t> last_active_ms{0};  // the newest activity seen by this process
    std::atomic<int> inflight{0};                 // exec/file calls running now
    std::atomic<std::int64_t> synced_ms{0};       // last time sync() asked the engine
    std::mutex bg_mu;
    std::set<int> background_pids;  // started through the fallback (it reports no activity)
  };

  // What prepare() made ready for an exec or file call.
  struct Use {
    std::string id;
    std::shared_ptr<Entry> e;
    std::shared_ptr<ExecChannel> ch;
    CapsuleRecord rec;
    bool resumed = false;
    std::string recovered;
  };

  Impl(ManagerSettings s, std::shared_ptr<CapsuleBackend> b, std::shared_ptr<CapsuleRecords> r);

  ManagerSettings settings;
  std::shared_ptr<CapsuleBackend> backend;
  std::shared_ptr<CapsuleRecords> records;
  std::string agent_path;            // resolved once; "" = no agent (the fallback)
  std::string agent_missing_reason;  // why, when agent_path is ""

  std::mutex entries_mu;
  std::map<std::string, std::shared_ptr<Entry>> entries;
  std::mutex keys_mu;
  std::map<std::string, std::weak_ptr<std::mutex>> session_locks;  // get-or-create, per owner+session

  // monitor
  std::mutex mon_mu;
  std::condition_variable mon_cv;
  std::thread monitor;
  bool mon_stop = false;
  std::atomic<bool> monitor_running{false};
  std::atomic<bool> engine_down{false};
  std::mutex pass_mu;  // one monitor pass at a time
  std::mutex pool_mu;  // hand-outs, one at a time

  // create(wait=false): the rest of the start-up runs on a thread of its own
  std::mutex bg_mu;
  std::list<std::pair<std::thread, std::shared_ptr<std::atomic<bool>>>> bg_threads;
  void spawn(std::function<void()> fn);
  void join_background();

  // ---- records (manager.cpp)
  std::shared_ptr<Entry> entry(const std::string& id);
  void forget(const std::string& id);
  CapsuleRecord load(const std::string& id);  // CapsuleNotFoundError
  // A state change: the record and its event in one update.
  void transition(CapsuleRecord& rec, CapsuleState to, const std::string& reason);
  // An event that is not a state ("ping", "timeout_changed", "connected", …).
  void note(CapsuleRecord& rec, const std::string& what, const std::string& reason);
  void save(CapsuleRecord& rec);  // no event
  void overlay(CapsuleRecord& rec);
  bool is_pool(const CapsuleRecord& rec) const;
  static std::string pool_key_of(const CapsuleRecord& rec);

  // ---- host directories (manager.cpp)
  std::string capsule_dir(const std::string& id) const;
  std::string run_dir(const std::string& id) const;
  std::string workspace_dir(const CapsuleSpec& spec) const;
  CreateContext context(const CapsuleRecord& rec, bool with_agent);  // makes the directories

  // ---- create and lifecycle (manager.cpp; `op` held)
  CapsuleRecord create(CapsuleSpec spec, bool wait, bool* lost_race, bool pool_member = false);
  void start_new(CapsuleRecord& rec, Entry& e, const CreateContext& ctx);  // starting → running, or error + throw
  void set_paused(const std::string& container_id, bool paused);
  void do_pause(CapsuleRecord& rec, Entry& e, const std::string& reason, bool expiry);
  void do_resume(CapsuleRecord& rec, Entry& e, const std::string& reason);
  void do_stop(CapsuleRecord& rec, Entry& e, const std::string& reason);
  void do_destroy(CapsuleRecord& rec, Entry& e, const std::string& reason);
  // Makes a capsule in error (or stopped) run again: "restarted" when its container could be
  // started, "recreated" (same spec, id and workspace) when it could not.
  std::string recover(CapsuleRecord& rec, Entry& e, const std::string& why);
  // Start-up failed: the last log lines kept, the container removed, state error.
  void fail(CapsuleRecord& rec, Entry& e, const std::string& reason) noexcept;
  CapsuleRecord get_or_create(CapsuleSpec spec, bool* created);
  std::optional<CapsuleRecord> reuse(const std::string& id);
  // Waits (unlocked) while the record is `starting`, up to ready_timeout.
  CapsuleRecord await_started(const std::string& id);

  // ---- exec and files (manager.cpp)
  Use prepare(const std::string& id);
  // After a channel call failed: when the capsule's container is not running, brings the
  // record in line, makes it usable again (resume, recovery) and says to retry.
  bool after_failure(Use& u, bool channel_broke, bool may_recover);
  // Runs fn on the capsule's channel. When it fails because the capsule's container is not
  // running, the capsule is made usable again and fn runs once more if retry() still says so
  // (a call that already delivered output is not repeated).
  template <class R>
  R use(const std::string& id, const std::function<R(ExecChannel&, const Use&)>& fn, const std::function<bool()>& retry,
        Use* out = nullptr);
  // The request as the channel gets it: a warm capsule's env merged in (the request wins).
  static ExecRequest effective_request(const CapsuleRecord& rec, const ExecRequest& req);
  template <class F>
  void engine_step(CapsuleRecord& rec, Entry& e, std::string_view verb, F&& f);
  // "capsule X is stopped (reason): start it first" and the like.
  static std::string state_message(const CapsuleRecord& rec, std::string_view verb);

  // ---- channels (channels.cpp)
  void resolve_agent();  // agent_path and agent_missing_reason from the settings
  bool agent_available() const;
  std::unique_ptr<ExecChannel> dial_agent(const std::string& socket, int pid, std::chrono::milliseconds timeout);
  // After the container (re)started: the agent's channel with retries until ready_timeout,
  // else the fallback with its reason. Sets exec_mode, ports and limits on rec (unsaved).
  // Throws when the container is not running.
  void attach(CapsuleRecord& rec, Entry& e, bool agent_injected);
  // The cached channel, or a new one for a capsule that is running (after a restart of
  // this process): the agent when it answers, else the fallback (recorded).
  std::shared_ptr<ExecChannel> channel(CapsuleRecord& rec, Entry& e);
  void drop_channel(Entry& e);
  bool had_agent(const CapsuleRecord& rec) const;

  // ---- idle timer (idle.cpp)
  void touch(Entry& e);                            // memory only
  void touch_saved(CapsuleRecord& rec, Entry& e);  // and the record, at most once a second
  std::int64_t effective_active(const CapsuleRecord& rec, const Entry& e) const;
  std::int64_t remaining_ms(const CapsuleRecord& rec, const Entry& e) const;
  void idle_pass();
  void idle_check(const std::string& id);
  CapsuleRecord ping(const std::string& id);
  CapsuleRecord set_timeout(const std::string& id, std::int64_t seconds);

  // ---- health (health.cpp)
  // Brings rec in line with the engine (`op` held); true when its state changed.
  bool sync(CapsuleRecord& rec, Entry& e);
  ReconcileReport reconcile();
  void monitor_pass();
  void health_pass();
  void purge_pass();
  void start_monitor();
  void stop_monitor();
  std::vector<std::string> logs(const std::string& container_id);

  // ---- warm pool (pool.cpp)
  // Hands out a pool capsule for spec, or says why not in origin ("cold", "bypassed: …").
  std::optional<CapsuleRecord> pool_take(const CapsuleSpec& spec, std::string& origin);
  void pool_refill();
  CapsuleSpec pool_base(const std::string& key) const;
  std::string pool_key_for(const CapsuleSpec& spec) const;
};

}  // namespace pw::capsules

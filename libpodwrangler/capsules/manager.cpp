// CapsuleManager: create and get-or-create, the lifecycle with every transition recorded,
// and exec/files through the capsule's channel with auto-resume and recovery. The idle
// timer, health, reconciliation and the warm pool live in idle.cpp, health.cpp, pool.cpp.
#include "manager_impl.hpp"

#include <podwrangler/errors.hpp>
#include <podwrangler/redact.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace pw::capsules {
namespace {

namespace fs = std::filesystem;

// Longest path under the data dir the capsules use: the agent's unix socket.
constexpr std::size_t kSocketSuffix = sizeof("/capsules/cap-0123456789abcdef/run/agent.sock") - 1;
constexpr std::size_t kMaxUnixPath = 107;

// mkdir 0700 (exactly, whatever the umask); an existing directory is kept as it is.
void private_dir(const fs::path& p) {
  if (::mkdir(p.c_str(), 0700) == 0) {
    ::chmod(p.c_str(), 0700);
    return;
  }
  const int err = errno;
  struct stat st {};
  if (err == EEXIST && ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return;
  throw PodClientError("cannot create the directory " + p.string() + ": " + std::strerror(err));
}

}  // namespace

// ---- construction ------------------------------------------------------------------------

CapsuleManager::Impl::Impl(ManagerSettings s, std::shared_ptr<CapsuleBackend> b, std::shared_ptr<CapsuleRecords> r)
    : settings(std::move(s)), backend(std::move(b)), records(std::move(r)) {
  if (!backend || !records) throw std::invalid_argument("CapsuleManager needs a backend and records");
  if (settings.data_dir.empty()) throw CapsuleValidationError("data_dir", "required");
  std::string dir = fs::absolute(settings.data_dir).lexically_normal().string();
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (dir.size() + kSocketSuffix > kMaxUnixPath)
    throw CapsuleValidationError("data_dir", "too long: the agent's socket path under it would exceed " +
                                                 std::to_string(kMaxUnixPath) + " bytes");
  settings.data_dir = dir;
  if (settings.monitor_interval.count() <= 0) throw CapsuleValidationError("monitor_interval", "must be positive");
  if (settings.ready_timeout.count() <= 0) throw CapsuleValidationError("ready_timeout", "must be positive");
  for (const auto& [key, n] : settings.warm_pool)
    if (n < 0 || n > 1000) throw CapsuleValidationError("warm_pool", key + ": 0-1000 capsules");
  resolve_agent();
}

CapsuleManager::CapsuleManager(ManagerSettings settings, std::shared_ptr<CapsuleBackend> backend,
                               std::shared_ptr<CapsuleRecords> records)
    : impl_(std::make_unique<Impl>(std::move(settings), std::move(backend), std::move(records))) {}

CapsuleManager::~CapsuleManager() {
  impl_->stop_monitor();
  impl_->join_background();
  std::map<std::string, std::shared_ptr<Impl::Entry>> entries;
  {
    std::lock_guard lk(impl_->entries_mu);
    entries.swap(impl_->entries);
  }
  for (auto& [id, e] : entries) impl_->drop_channel(*e);
}

void CapsuleManager::Impl::spawn(std::function<void()> fn) {
  std::lock_guard lk(bg_mu);
  for (auto it = bg_threads.begin(); it != bg_threads.end();) {
    if (it->second->load()) {
      it->first.join();
      it = bg_threads.erase(it);
    } else {
      ++it;
    }
  }
  auto done = std::make_shared<std::atomic<bool>>(false);
  bg_threads.emplace_back(std::thread([fn = std::move(fn), done] {
                            try {
                              fn();
                            } catch (...) {  // recorded in the capsule's row
                            }
                            done->store(true);
                          }),
                          done);
}

void CapsuleManager::Impl::join_background() {
  std::list<std::pair<std::thread, std::shared_ptr<std::atomic<bool>>>> threads;
  {
    std::lock_guard lk(bg_mu);
    threads.swap(bg_threads);
  }
  for (auto& [t, done] : threads)
    if (t.joinable()) t.join();
}

// ---- records -----------------------------------------------------------------------------

std::shared_ptr<CapsuleManager::Impl::Entry> CapsuleManager::Impl::entry(const std::string& id) {
  std::lock_guard lk(entries_mu);
  auto& e = entries[id];
  if (!e) e = std::make_shared<Entry>();
  return e;
}

void CapsuleManager::Impl::forget(const std::string& id) {
  std::lock_guard lk(entries_mu);
  entries.erase(id);
}

CapsuleRecord CapsuleManager::Impl::load(const std::string& id) {
  if (!is_capsule_id(id)) throw CapsuleNotFoundError(id);
  auto rec = records->get(id);
  if (!rec) throw CapsuleNotFoundError(id);
  return std::move(*rec);
}

void CapsuleManager::Impl::transition(CapsuleRecord& rec, CapsuleState to, const std::string& reason) {
  CapsuleEvent ev;
  ev.capsule_id = rec.id;
  ev.at_ms = mgr::now_ms();
  ev.from = std::string(to_string(rec.state));
  ev.to = std::string(to_string(to));
  ev.reason = redact_text(reason);
  CapsuleRecord next = rec;
  next.state = to;
  next.reason = ev.reason;
  next.updated_ms = ev.at_ms;
  records->update(next, ev);
  rec = std::move(next);
}

void CapsuleManager::Impl::note(CapsuleRecord& rec, const std::string& what, const std::string& reason) {
  CapsuleEvent ev;
  ev.capsule_id = rec.id;
  ev.at_ms = mgr::now_ms();
  ev.from = std::string(to_string(rec.state));
  ev.to = what;
  ev.reason = redact_text(reason);
  CapsuleRecord next = rec;
  next.updated_ms = ev.at_ms;
  records->update(next, ev);
  rec = std::move(next);
}

void CapsuleManager::Impl::save(CapsuleRecord& rec) {
  CapsuleRecord next = rec;
  next.updated_ms = mgr::now_ms();
  records->update(next, std::nullopt);
  rec = std::move(next);
}

void CapsuleManager::Impl::overlay(CapsuleRecord& rec) {
  std::shared_ptr<Entry> e;
  {
    std::lock_guard lk(entries_mu);
    auto it = entries.find(rec.id);
    if (it == entries.end()) return;
    e = it->second;
  }
  if (rec.state == CapsuleState::running) rec.last_active_ms = effective_active(rec, *e);
}

bool CapsuleManager::Impl::is_pool(const CapsuleRecord& rec) const { return rec.origin == mgr::kOriginPool; }

std::string CapsuleManager::Impl::pool_key_of(const CapsuleRecord& rec) {
  return rec.spec.template_name.empty() ? rec.spec.image : rec.spec.template_name;
}

std::string CapsuleManager::Impl::state_message(const CapsuleRecord& rec, std::string_view verb) {
  std::string m = "capsule " + rec.id + " is " + std::string(to_string(rec.state));
  if (!rec.reason.empty() && rec.state != CapsuleState::running) m += " (" + rec.reason + ")";
  m += ": cannot " + std::string(verb);
  switch (rec.state) {
    case CapsuleState::stopped: m += "; start it first (podwrangler capsule start " + rec.id + ")"; break;
    case CapsuleState::paused: m += "; resume it first (podwrangler capsule resume " + rec.id + ")"; break;
    case CapsuleState::starting: m += "; it is still starting"; break;
    case CapsuleState::error: m += "; start it to recover it (podwrangler capsule start " + rec.id + ")"; break;
    default: break;
  }
  return m;
}

// ---- host directories --------------------------------------------------------------------

std::string CapsuleManager::Impl::capsule_dir(const std::string& id) const {
  return settings.data_dir + "/capsules/" + id;
}
std::string CapsuleManager::Impl::run_dir(const std::string& id) const { return capsule_dir(id) + "/run"; }
std::string CapsuleManager::Impl::workspace_dir(const CapsuleSpec& spec) const {
  return settings.data_dir + "/workspaces/" + spec.owner + "/" + spec.session;
}

CreateContext CapsuleManager::Impl::context(const CapsuleRecord& rec, bool with_agent) {
  if (!fs::exists(settings.data_dir)) {
    fs::create_directories(settings.data_dir);
    ::chmod(settings.data_dir.c_str(), 0700);
  }
  private_dir(settings.data_dir + "/capsules");
  private_dir(capsule_dir(rec.id));
  private_dir(run_dir(rec.id));
  CreateContext ctx;
  ctx.capsule_id = rec.id;
  ctx.agent_path = with_agent && agent_available() ? agent_path : "";
  ctx.run_dir = run_dir(rec.id);
  if (rec.spec.workspace) {
    if (!mgr::is_safe_component(rec.spec.owner) || !mgr::is_safe_component(rec.spec.session))
      throw CapsuleValidationError("workspace", "needs an owner and a session that are safe directory names");
    private_dir(settings.data_dir + "/workspaces");
    private_dir(settings.data_dir + "/workspaces/" + rec.spec.owner);
    private_dir(workspace_dir(rec.spec));
    ctx.workspace_dir = workspace_dir(rec.spec);
  }
  return ctx;
}

// ---- create ------------------------------------------------------------------------------

CapsuleRecord CapsuleManager::Impl::create(CapsuleSpec spec, bool wait, bool* lost_race, bool pool_member) {
  if (lost_race) *lost_race = false;
  spec = mgr::resolve_template(spec, settings.templates);
  if (spec.network.empty()) spec.network = "none";
  mgr::validate_spec(spec, pool_member);

  std::string origin = "cold";
  if (pool_member) {
    origin = "pool";
  } else if (auto warm = pool_take(spec, origin)) {
    overlay(*warm);
    return *warm;
  }

  CapsuleRecord rec;
  rec.id = new_capsule_id();
  rec.state = CapsuleState::starting;
  rec.spec = spec;
  rec.backend = backend->name();
  rec.origin = origin;
  rec.version = 1;
  const std::int64_t now = mgr::now_ms();
  rec.created_ms = rec.updated_ms = rec.last_active_ms = now;
  CreateContext ctx;
  try {
    ctx = context(rec, true);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(capsule_dir(rec.id), ec);
    throw;
  }

  auto e = entry(rec.id);
  std::unique_lock op(e->op);
  CapsuleEvent first;
  first.capsule_id = rec.id;
  first.at_ms = now;
  first.to = "starting";
  first.reason =
      redact_text("create (" + origin + (spec.template_name.empty() ? "" : ", template " + spec.template_name) + ")");
  rec.reason = first.reason;
  try {
    records->insert(rec, first);
  } catch (const CapsuleConflictError&) {
    op.unlock();
    forget(rec.id);
    std::error_code ec;
    fs::remove_all(capsule_dir(rec.id), ec);
    if (lost_race) *lost_race = true;
    throw;
  } catch (...) {
    op.unlock();
    forget(rec.id);
    std::error_code ec;
    fs::remove_all(capsule_dir(rec.id), ec);
    throw;
  }
  rec = load(rec.id);
  e->last_active_ms.store(now);
  if (!wait) {
    op.unlock();
    spawn([this, id = rec.id, ctx] {
      auto e2 = entry(id);
      std::lock_guard op2(e2->op);
      CapsuleRecord r = load(id);
      if (r.state == CapsuleState::starting) start_new(r, *e2, ctx);
    });
    return rec;
  }
  start_new(rec, *e, ctx);
  overlay(rec);
  return rec;
}

void CapsuleManager::Impl::start_new(CapsuleRecord& rec, Entry& e, const CreateContext& ctx) {
  try {
    rec.container_id = backend->create(rec.spec, ctx);
    save(rec);
    attach(rec, e, !ctx.agent_path.empty());
    rec.last_active_ms = mgr::now_ms();
    e.last_active_ms.store(rec.last_active_ms);
    transition(rec, CapsuleState::running,
               "ready: " + rec.exec_mode + (rec.exec_mode_reason.empty() ? "" : " (" + rec.exec_mode_reason + ")"));
  } catch (const std::exception& ex) {
    fail(rec, e, std::string("could not start: ") + ex.what());
    throw;
  }
}

CapsuleRecord CapsuleManager::Impl::await_started(const std::string& id) {
  auto e = entry(id);
  const auto deadline = std::chrono::steady_clock::now() + settings.ready_timeout + std::chrono::seconds(5);
  for (;;) {
    CapsuleRecord rec;
    {
      std::lock_guard op(e->op);  // held by a create of this process until it is done
      rec = load(id);
    }
    if (rec.state != CapsuleState::starting || std::chrono::steady_clock::now() >= deadline) return rec;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

CapsuleRecord CapsuleManager::Impl::get_or_create(CapsuleSpec spec, bool* created) {
  if (created) *created = false;
  if (spec.session.empty()) throw CapsuleValidationError("session", "get-or-create needs a session (and an owner)");
  mgr::validate_owner_session(spec);
  std::shared_ptr<std::mutex> key_mu;
  {
    std::lock_guard lk(keys_mu);
    if (session_locks.size() > 4096) std::erase_if(session_locks, [](const auto& kv) { return kv.second.expired(); });
    auto& w = session_locks[spec.owner + '\n' + spec.session];
    key_mu = w.lock();
    if (!key_mu) {
      key_mu = std::make_shared<std::mutex>();
      w = key_mu;
    }
  }
  std::lock_guard g(*key_mu);
  for (int attempt = 0; attempt < 5; ++attempt) {
    CapsuleFilter f;
    f.owner = spec.owner;
    f.session = spec.session;
    std::string found;
    for (const auto& r : records->list(f)) {
      if (r.spec.owner == spec.owner && r.spec.session == spec.session && !is_pool(r) &&
          r.state != CapsuleState::destroyed) {
        found = r.id;
        break;
      }
    }
    if (!found.empty()) {
      if (auto r = reuse(found)) return *r;
      continue;  // destroyed meanwhile
    }
    bool lost = false;
    try {
      CapsuleRecord r = create(spec, true, &lost);
      if (created) *created = true;
      return r;
    } catch (const CapsuleConflictError&) {
      if (!lost) throw;  // the store's owner+session uniqueness: another replica won; its capsule is returned
    }
  }
  throw CapsuleConflictError("get-or-create: the capsule of owner '" + spec.owner + "', session '" + spec.session +
                             "' kept changing; try again");
}

std::optional<CapsuleRecord> CapsuleManager::Impl::reuse(const std::string& id) {
  CapsuleRecord rec = await_started(id);
  auto e = entry(id);
  std::lock_guard op(e->op);
  rec = load(id);
  switch (rec.state) {
    case CapsuleState::running: break;
    case CapsuleState::paused: do_resume(rec, *e, "get-or-create"); break;
    case CapsuleState::stopped:
    case CapsuleState::error: recover(rec, *e, "get-or-create"); break;
    case CapsuleState::destroyed: return std::nullopt;
    case CapsuleState::starting: throw CapsuleConflictError(state_message(rec, "reuse it"));
  }
  touch_saved(rec, *e);
  overlay(rec);
  return rec;
}

// ---- lifecycle steps (`op` held) ---------------------------------------------------------

// dockerd applies containerd's paused/resumed events after its API call has answered, so
// right after a quick pause+unpause its Paused flag can be stale for a moment and the next
// call is refused ("already paused", "not paused"; seen in runs of 100 cycles). Such a
// refusal is retried for up to 2 s; when the engine still reports the wanted state then, it
// is taken as done.
void CapsuleManager::Impl::set_paused(const std::string& container_id, bool paused) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (;;) {
    std::exception_ptr err;
    try {
      if (paused) {
        backend->pause(container_id);
      } else {
        backend->resume(container_id);
      }
      return;
    } catch (const CapsuleConflictError&) {
      err = std::current_exception();
    }
    const EngineState st = backend->inspect(container_id);
    if (!st.exists || !st.running) std::rethrow_exception(err);
    const bool late = std::chrono::steady_clock::now() >= deadline;
    if (late) {
      if (st.paused == paused) return;
      std::rethrow_exception(err);
    }
    if (st.paused == paused) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void CapsuleManager::Impl::do_pause(CapsuleRecord& rec, Entry& e, const std::string& reason, bool expiry) {
  // Expired: a whole timeout for when it runs again; otherwise what was left.
  const std::int64_t remaining = expiry ? rec.spec.idle_timeout_s * 1000 : remaining_ms(rec, e);
  set_paused(rec.container_id, true);
  rec.idle_remaining_ms = remaining;
  transition(rec, CapsuleState::paused, reason);
}

void CapsuleManager::Impl::do_resume(CapsuleRecord& rec, Entry& e, const std::string& reason) {
  set_paused(rec.container_id, false);
  const std::int64_t timeout = rec.spec.idle_timeout_s * 1000;
  const std::int64_t now = mgr::now_ms();
  const std::int64_t left = std::clamp<std::int64_t>(rec.idle_remaining_ms, 0, timeout);
  const std::int64_t last = timeout > 0 ? now - (timeout - left) : now;
  rec.last_active_ms = last;
  e.last_active_ms.store(last);
  rec.idle_remaining_ms = 0;
  transition(rec, CapsuleState::running, reason);
}

void CapsuleManager::Impl::do_stop(CapsuleRecord& rec, Entry& e, const std::string& reason) {
  drop_channel(e);
  if (rec.state == CapsuleState::paused) set_paused(rec.container_id, false);  // the engine stops running ones
  backend->stop(rec.container_id, 2);
  rec.idle_remaining_ms = 0;
  transition(rec, CapsuleState::stopped, reason);
}

void CapsuleManager::Impl::do_destroy(CapsuleRecord& rec, Entry& e, const std::string& reason) {
  drop_channel(e);
  if (!rec.container_id.empty()) backend->destroy(rec.container_id);
  std::error_code ec;
  fs::remove_all(capsule_dir(rec.id), ec);  // the run dir; the workspace stays
  rec.idle_remaining_ms = 0;
  transition(rec, CapsuleState::destroyed, reason);
}

// ---- exec and files ----------------------------------------------------------------------

CapsuleManager::Impl::Use CapsuleManager::Impl::prepare(const std::string& id) {
  Use u;
  u.id = id;
  u.e = entry(id);
  const auto deadline = std::chrono::steady_clock::now() + settings.ready_timeout + std::chrono::seconds(5);
  for (;;) {
    std::unique_lock op(u.e->op);
    u.rec = load(id);
    switch (u.rec.state) {
      case CapsuleState::running: break;
      case CapsuleState::paused:
        if (!u.rec.spec.auto_resume)
          throw CapsuleConflictError(state_message(u.rec, "run anything in it") + " (auto-resume is off)");
        try {
          do_resume(u.rec, *u.e, "auto-resume");
          u.resumed = true;
        } catch (const EngineUnavailableError&) {
          throw;
        } catch (const PodClientError&) {
          // Its container died while paused (the engine refused): what state is it in?
          sync(u.rec, *u.e);
          if (u.rec.state == CapsuleState::error) {
            u.recovered = recover(u.rec, *u.e, "recovered on use");
          } else if (u.rec.state != CapsuleState::running) {
            throw CapsuleConflictError(state_message(u.rec, "resume it"));
          }
        }
        break;
      case CapsuleState::stopped: throw CapsuleConflictError(state_message(u.rec, "run anything in it"));
      case CapsuleState::error: u.recovered = recover(u.rec, *u.e, "recovered on use"); break;
      case CapsuleState::destroyed: throw CapsuleConflictError(state_message(u.rec, "run anything in it"));
      case CapsuleState::starting:
        // Created by another replica (ours hold `op` until it is running): wait for it.
        op.unlock();
        if (std::chrono::steady_clock::now() >= deadline)
          throw CapsuleConflictError(state_message(u.rec, "run anything in it yet"));
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
    }
    std::exception_ptr err;
    try {
      u.ch = channel(u.rec, *u.e);
    } catch (const AgentError&) {
      err = std::current_exception();
    }
    if (!err) {
      touch_saved(u.rec, *u.e);
      return u;
    }
    // Its container died since the record was written: find out, recover and go on.
    op.unlock();
    if (!after_failure(u, true, true)) std::rethrow_exception(err);
    return u;
  }
}

bool CapsuleManager::Impl::after_failure(Use& u, bool channel_broke, bool may_recover) {
  std::lock_guard op(u.e->op);
  CapsuleRecord rec = load(u.id);
  if (rec.state == CapsuleState::destroyed) throw CapsuleConflictError(state_message(rec, "finish the call"));
  EngineState st;
  if (!rec.container_id.empty()) {
    try {
      st = backend->inspect(rec.container_id);
    } catch (const CapsuleNotFoundError&) {
      st.exists = false;
    }
  }
  if (st.exists && st.running && !st.paused && rec.state == CapsuleState::running) {
    if (channel_broke) drop_channel(*u.e);
    return false;  // the capsule is fine: the failure stands
  }
  sync(rec, *u.e);
  if (rec.state == CapsuleState::destroyed || rec.state == CapsuleState::stopped)
    throw CapsuleConflictError(state_message(rec, "finish the call"));
  if (!may_recover) return false;
  switch (rec.state) {
    case CapsuleState::paused:
      if (!rec.spec.auto_resume) return false;
      do_resume(rec, *u.e, "auto-resume");
      u.resumed = true;
      break;
    case CapsuleState::error: u.recovered = recover(rec, *u.e, "recovered on use"); break;
    case CapsuleState::running: break;
    default: return false;
  }
  u.ch = channel(rec, *u.e);
  touch(*u.e);
  u.rec = rec;
  return true;
}

template <class R>
R CapsuleManager::Impl::use(const std::string& id, const std::function<R(ExecChannel&, const Use&)>& fn,
                            const std::function<bool()>& retry, Use* out) {
  Use u = prepare(id);
  for (int attempt = 0;; ++attempt) {
    struct InFlight {
      Impl* self;
      Entry* e;
      explicit InFlight(Impl* s, Entry* en) : self(s), e(en) { e->inflight.fetch_add(1); }
      ~InFlight() {
        self->touch(*e);
        e->inflight.fetch_sub(1);
      }
      InFlight(const InFlight&) = delete;
      InFlight& operator=(const InFlight&) = delete;
    };
    bool broke = false;
    std::exception_ptr err;
    try {
      InFlight guard(this, u.e.get());
      R r = fn(*u.ch, u);
      if (out) *out = u;
      return r;
    } catch (const AgentError&) {
      broke = true;
      err = std::current_exception();
    } catch (const CapsuleConflictError&) {
      err = std::current_exception();
    } catch (const CapsuleNotFoundError&) {
      if (u.rec.exec_mode == "agent") throw;  // the agent names files only: nothing wrong with the capsule
      err = std::current_exception();
    }
    const bool again = attempt == 0 && retry();
    if (!after_failure(u, broke, again) || !again) std::rethrow_exception(err);
  }
}

ExecRequest CapsuleManager::Impl::effective_request(const CapsuleRecord& rec, const ExecRequest& req) {
  if (rec.origin != "warm" || rec.spec.env.empty()) return req;
  ExecRequest r = req;
  for (const auto& [k, v] : rec.spec.env) r.env.emplace(k, v);
  return r;
}

// ---- the public API ----------------------------------------------------------------------

void CapsuleManager::start_monitor() { impl_->start_monitor(); }
void CapsuleManager::stop_monitor() { impl_->stop_monitor(); }

CapsuleRecord CapsuleManager::create(CapsuleSpec spec, bool wait) {
  return impl_->create(std::move(spec), wait, nullptr);
}

CapsuleRecord CapsuleManager::get_or_create(CapsuleSpec spec, bool* created) {
  return impl_->get_or_create(std::move(spec), created);
}

CapsuleRecord CapsuleManager::get(const std::string& id) {
  CapsuleRecord rec = impl_->load(id);
  if (rec.state == CapsuleState::running || rec.state == CapsuleState::paused || rec.state == CapsuleState::stopped) {
    auto e = impl_->entry(id);
    const std::int64_t since = mgr::now_ms() - e->synced_ms.load();
    const bool doubt = !impl_->monitor_running.load() || since > 2 * impl_->settings.monitor_interval.count();
    if (doubt) {
      std::unique_lock op(e->op, std::try_to_lock);
      if (op.owns_lock()) {
        try {
          rec = impl_->load(id);
          impl_->sync(rec, *e);
        } catch (const std::exception&) {  // the engine is away: the record as it stands
          rec = impl_->load(id);
        }
      }
    }
  }
  impl_->overlay(rec);
  return rec;
}

std::vector<CapsuleRecord> CapsuleManager::list(const CapsuleFilter& filter) {
  // The pool's own capsules only when asked for (label podwrangler.pool=<key>).
  CapsuleFilter f = filter;
  std::optional<std::string> pool_key;
  if (auto it = f.labels.find(mgr::kLabelPool); it != f.labels.end()) {
    pool_key = it->second;
    f.labels.erase(it);
    f.limit = 0;
  }
  auto rows = impl_->records->list(f);
  std::vector<CapsuleRecord> out;
  out.reserve(rows.size());
  for (auto& r : rows) {
    if (impl_->is_pool(r) != pool_key.has_value()) continue;
    if (pool_key && Impl::pool_key_of(r) != *pool_key) continue;
    if (filter.limit > 0 && static_cast<int>(out.size()) >= filter.limit) break;
    impl_->overlay(r);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<CapsuleEvent> CapsuleManager::events(const std::string& id, int limit) {
  impl_->load(id);
  return impl_->records->events(id, limit);
}

CapsuleRecord CapsuleManager::destroy(const std::string& id) {
  auto e = impl_->entry(id);
  CapsuleRecord rec;
  {
    std::lock_guard op(e->op);
    rec = impl_->load(id);
    if (rec.state != CapsuleState::destroyed) impl_->do_destroy(rec, *e, "destroy");
  }
  impl_->forget(id);
  return rec;
}

std::vector<std::string> CapsuleManager::destroy_all(const std::string& owner) {
  CapsuleFilter f;
  f.owner = owner;
  std::vector<std::string> ids;
  for (const auto& r : impl_->records->list(f)) {
    if ((!owner.empty() && r.spec.owner != owner) || impl_->is_pool(r) || r.state == CapsuleState::destroyed) continue;
    try {
      destroy(r.id);
      ids.push_back(r.id);
    } catch (const CapsuleNotFoundError&) {  // purged meanwhile
    }
  }
  return ids;
}

// A lifecycle call whose engine step failed because the container is not what the record
// says (died, removed): the record is brought in line and the call is refused with the state.
template <class F>
void CapsuleManager::Impl::engine_step(CapsuleRecord& rec, Entry& e, std::string_view verb, F&& f) {
  std::exception_ptr err;
  try {
    f();
    return;
  } catch (const CapsuleConflictError&) {
    err = std::current_exception();
  } catch (const CapsuleNotFoundError&) {
    err = std::current_exception();
  }
  CapsuleRecord cur = load(rec.id);
  sync(cur, e);
  rec = cur;
  if (cur.state == CapsuleState::running || cur.state == CapsuleState::paused) std::rethrow_exception(err);
  throw CapsuleConflictError(state_message(cur, verb));
}

CapsuleRecord CapsuleManager::pause(const std::string& id) {
  auto e = impl_->entry(id);
  std::lock_guard op(e->op);
  CapsuleRecord rec = impl_->load(id);
  if (rec.state == CapsuleState::paused) return rec;
  if (rec.state != CapsuleState::running) throw CapsuleConflictError(Impl::state_message(rec, "pause it"));
  impl_->engine_step(rec, *e, "pause it", [&] { impl_->do_pause(rec, *e, "pause", false); });
  return rec;
}

CapsuleRecord CapsuleManager::resume(const std::string& id) {
  auto e = impl_->entry(id);
  std::lock_guard op(e->op);
  CapsuleRecord rec = impl_->load(id);
  if (rec.state == CapsuleState::running) {
    impl_->overlay(rec);
    return rec;
  }
  if (rec.state != CapsuleState::paused) throw CapsuleConflictError(Impl::state_message(rec, "resume it"));
  impl_->engine_step(rec, *e, "resume it", [&] { impl_->do_resume(rec, *e, "resume"); });
  return rec;
}

CapsuleRecord CapsuleManager::stop(const std::string& id) {
  auto e = impl_->entry(id);
  std::lock_guard op(e->op);
  CapsuleRecord rec = impl_->load(id);
  if (rec.state == CapsuleState::stopped) return rec;
  if (rec.state != CapsuleState::running && rec.state != CapsuleState::paused)
    throw CapsuleConflictError(Impl::state_message(rec, "stop it"));
  impl_->engine_step(rec, *e, "stop it", [&] { impl_->do_stop(rec, *e, "stop"); });
  return rec;
}

CapsuleRecord CapsuleManager::start(const std::string& id) {
  auto e = impl_->entry(id);
  std::lock_guard op(e->op);
  CapsuleRecord rec = impl_->load(id);
  switch (rec.state) {
    case CapsuleState::running: impl_->touch_saved(rec, *e); break;
    case CapsuleState::stopped:
    case CapsuleState::error: impl_->recover(rec, *e, "start"); break;
    default: throw CapsuleConflictError(Impl::state_message(rec, "start it"));
  }
  impl_->overlay(rec);
  return rec;
}

CapsuleRecord CapsuleManager::ping(const std::string& id) { return impl_->ping(id); }

CapsuleRecord CapsuleManager::set_timeout(const std::string& id, std::int64_t seconds) {
  return impl_->set_timeout(id, seconds);
}

CapsuleExecResult CapsuleManager::exec(const std::string& id, const ExecRequest& req, const ExecSink* sink) {
  mgr::validate_exec(req);
  bool delivered = false;
  ExecSink counted;
  const ExecSink* sp = nullptr;
  if (sink) {
    counted = [&](const ExecEvent& ev) {
      delivered = true;
      (*sink)(ev);
    };
    sp = &counted;
  }
  Impl::Use u;
  CapsuleExecResult out;
  out.result = impl_->use<ExecResult>(
      id, [&](ExecChannel& ch, const Impl::Use& cur) { return ch.exec(Impl::effective_request(cur.rec, req), sp); },
      [&] { return !delivered; }, &u);
  out.resumed = u.resumed;
  out.recovered = u.recovered;
  return out;
}

CapsuleExecResult CapsuleManager::run_once(CapsuleSpec spec, const ExecRequest& req, const ExecSink* sink) {
  mgr::validate_exec(req);
  CapsuleRecord rec = create(std::move(spec), true);
  CapsuleExecResult r;
  try {
    r = exec(rec.id, req, sink);
  } catch (...) {
    try {
      destroy(rec.id);
    } catch (const std::exception&) {  // the exec's error is the one to report
    }
    throw;
  }
  destroy(rec.id);
  return r;
}

int CapsuleManager::start_background(const std::string& id, const ExecRequest& req) {
  mgr::validate_exec(req);
  Impl::Use u;
  const int pid = impl_->use<int>(
      id,
      [&](ExecChannel& ch, const Impl::Use& cur) { return ch.start_background(Impl::effective_request(cur.rec, req)); },
      [] { return true; }, &u);
  if (u.rec.exec_mode != "agent") {
    std::lock_guard lk(u.e->bg_mu);
    u.e->background_pids.insert(pid);
  }
  return pid;
}

std::vector<ProcessInfo> CapsuleManager::processes(const std::string& id) {
  return impl_->use<std::vector<ProcessInfo>>(
      id, [](ExecChannel& ch, const Impl::Use&) { return ch.processes(); }, [] { return true; });
}

void CapsuleManager::kill(const std::string& id, int pid, int signal) {
  if (pid <= 0) throw CapsuleValidationError("pid", "a process id inside the capsule");
  if (signal < 1 || signal > 64) throw CapsuleValidationError("signal", "1-64");
  impl_->use<int>(
      id,
      [&](ExecChannel& ch, const Impl::Use&) {
        ch.kill(pid, signal);
        return 0;
      },
      [] { return false; });
}

void CapsuleManager::upload(const std::string& id, const std::string& path, ByteSource& src, std::uint32_t mode) {
  mgr::validate_path(path);
  if (mode > 07777) throw CapsuleValidationError("mode", "permission bits (at most 07777)");
  impl_->use<int>(
      id,
      [&](ExecChannel& ch, const Impl::Use&) {
        ch.upload(path, src, mode);
        return 0;
      },
      [] { return false; });  // the source cannot be read twice
}

void CapsuleManager::download(const std::string& id, const std::string& path, ByteSink& sink) {
  mgr::validate_path(path);
  struct Counting : ByteSink {
    ByteSink& inner;
    bool wrote = false;
    explicit Counting(ByteSink& s) : inner(s) {}
    void write(std::string_view bytes) override {
      wrote = true;
      inner.write(bytes);
    }
  } counting(sink);
  impl_->use<int>(
      id,
      [&](ExecChannel& ch, const Impl::Use&) {
        ch.download(path, counting);
        return 0;
      },
      [&] { return !counting.wrote; });
}

FileStat CapsuleManager::stat(const std::string& id, const std::string& path) {
  mgr::validate_path(path);
  return impl_->use<FileStat>(
      id, [&](ExecChannel& ch, const Impl::Use&) { return ch.stat(path); }, [] { return true; });
}

std::vector<FileStat> CapsuleManager::list_files(const std::string& id, const std::string& path, int depth) {
  mgr::validate_path(path);
  if (depth < 1 || depth > 64) throw CapsuleValidationError("depth", "1-64");
  return impl_->use<std::vector<FileStat>>(
      id, [&](ExecChannel& ch, const Impl::Use&) { return ch.list(path, depth); }, [] { return true; });
}

void CapsuleManager::mkdir(const std::string& id, const std::string& path, bool parents) {
  mgr::validate_path(path);
  impl_->use<int>(
      id,
      [&](ExecChannel& ch, const Impl::Use&) {
        ch.mkdir(path, parents);
        return 0;
      },
      [] { return true; });
}

void CapsuleManager::remove(const std::string& id, const std::string& path, bool recursive) {
  mgr::validate_path(path);
  impl_->use<int>(
      id,
      [&](ExecChannel& ch, const Impl::Use&) {
        ch.remove(path, recursive);
        return 0;
      },
      [] { return true; });
}

ReconcileReport CapsuleManager::reconcile() {
  std::lock_guard pass(impl_->pass_mu);
  return impl_->reconcile();
}

void CapsuleManager::monitor_once() { impl_->monitor_pass(); }

const ManagerSettings& CapsuleManager::settings() const noexcept { return impl_->settings; }
CapsuleBackend& CapsuleManager::backend() noexcept { return *impl_->backend; }

}  // namespace pw::capsules

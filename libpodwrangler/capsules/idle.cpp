// The idle timer that understands work. A capsule is active when an API call touches it
// (exec, files, processes, ping, …), while an exec or file call runs through this process,
// and while the agent reports work inside it: running processes (background ones too), open
// streams, or bytes moved recently. Paused time does not count: pause keeps what was left
// (idle_remaining_ms) and resume gives it back. At expiry, spec.on_expire is applied
// (pause, stop or destroy) with the reason "idle timeout".
//
// last_active_ms lives in memory (per Entry) and is written to the record at most once a
// second per capsule (and at every state change), so an exec costs no extra write.
#include "manager_impl.hpp"

#include <podwrangler/errors.hpp>

#include <algorithm>
#include <set>

namespace pw::capsules {
namespace {

constexpr std::int64_t kSaveEveryMs = 1000;

void raise_to(std::atomic<std::int64_t>& a, std::int64_t v) {
  std::int64_t cur = a.load();
  while (cur < v && !a.compare_exchange_weak(cur, v)) {
  }
}

}  // namespace

void CapsuleManager::Impl::touch(Entry& e) { raise_to(e.last_active_ms, mgr::now_ms()); }

void CapsuleManager::Impl::touch_saved(CapsuleRecord& rec, Entry& e) {
  touch(e);
  const std::int64_t now = e.last_active_ms.load();
  if (rec.state == CapsuleState::paused) {
    // An API call on a paused capsule gives it a whole timeout for when it runs again.
    rec.idle_remaining_ms = rec.spec.idle_timeout_s * 1000;
    rec.last_active_ms = now;
    save(rec);
  } else if (now - rec.last_active_ms >= kSaveEveryMs) {
    rec.last_active_ms = now;
    save(rec);
  }
}

std::int64_t CapsuleManager::Impl::effective_active(const CapsuleRecord& rec, const Entry& e) const {
  return std::max(rec.last_active_ms, e.last_active_ms.load());
}

std::int64_t CapsuleManager::Impl::remaining_ms(const CapsuleRecord& rec, const Entry& e) const {
  const std::int64_t timeout = rec.spec.idle_timeout_s * 1000;
  if (timeout <= 0) return 0;
  if (e.inflight.load() > 0) return timeout;
  const std::int64_t idle = mgr::now_ms() - effective_active(rec, e);
  return std::clamp<std::int64_t>(timeout - idle, 0, timeout);
}

void CapsuleManager::Impl::idle_pass() {
  CapsuleFilter f;
  f.state = CapsuleState::running;
  for (const auto& rec : records->list(f)) {
    if (rec.spec.idle_timeout_s <= 0 || is_pool(rec)) continue;
    try {
      idle_check(rec.id);
    } catch (const EngineUnavailableError&) {
      throw;
    } catch (const std::exception&) {  // one capsule's trouble does not stop the pass
    }
  }
}

void CapsuleManager::Impl::idle_check(const std::string& id) {
  auto e = entry(id);
  std::unique_lock op(e->op, std::try_to_lock);
  if (!op.owns_lock()) return;  // busy: a call on it is running (and counts as activity)
  CapsuleRecord rec = load(id);
  if (rec.state != CapsuleState::running || rec.spec.idle_timeout_s <= 0) return;
  const std::int64_t now = mgr::now_ms();
  std::int64_t last = effective_active(rec, *e);
  if (e->inflight.load() > 0) last = now;
  if (now - last > 0) {
    // Work inside the capsule: ask its channel (the agent knows; the fallback knows only its
    // own execs, so the background processes it started are looked up).
    try {
      auto ch = channel(rec, *e);
      const AgentActivity a = ch->activity();
      if (a.running_processes > 0 || a.open_streams > 0) {
        last = now;
      } else if (a.idle_ms >= 0) {
        last = std::max(last, now - a.idle_ms);
      }
      std::set<int> bg;
      {
        std::lock_guard lk(e->bg_mu);
        bg = e->background_pids;
      }
      if (!bg.empty() && last < now) {
        std::set<int> alive;
        for (const auto& p : ch->processes())
          if (bg.count(p.pid)) alive.insert(p.pid);
        if (!alive.empty()) last = now;
        std::lock_guard lk(e->bg_mu);
        for (int pid : bg)
          if (!alive.count(pid)) e->background_pids.erase(pid);
      }
    } catch (const EngineUnavailableError&) {
      throw;
    } catch (const std::exception&) {
      // The channel broke: the health pass finds out why; no expiry on a guess.
      drop_channel(*e);
      return;
    }
  }
  raise_to(e->last_active_ms, last);
  const std::int64_t timeout = rec.spec.idle_timeout_s * 1000;
  if (now - last >= timeout) {
    rec.last_active_ms = last;
    switch (rec.spec.on_expire) {
      case ExpiryAction::pause: do_pause(rec, *e, "idle timeout", true); break;
      case ExpiryAction::stop: do_stop(rec, *e, "idle timeout"); break;
      case ExpiryAction::destroy: do_destroy(rec, *e, "idle timeout"); break;
    }
    if (rec.state == CapsuleState::destroyed) forget(id);
    return;
  }
  if (last - rec.last_active_ms >= kSaveEveryMs) {
    rec.last_active_ms = last;
    save(rec);
  }
}

CapsuleRecord CapsuleManager::Impl::ping(const std::string& id) {
  auto e = entry(id);
  std::lock_guard op(e->op);
  CapsuleRecord rec = load(id);
  if (rec.state == CapsuleState::destroyed) throw CapsuleConflictError("capsule " + id + " is destroyed");
  const std::int64_t now = mgr::now_ms();
  e->last_active_ms.store(std::max(e->last_active_ms.load(), now));
  rec.last_active_ms = now;
  if (rec.state == CapsuleState::paused) rec.idle_remaining_ms = rec.spec.idle_timeout_s * 1000;
  note(rec, "ping", "idle timer reset");
  overlay(rec);
  return rec;
}

CapsuleRecord CapsuleManager::Impl::set_timeout(const std::string& id, std::int64_t seconds) {
  if (seconds < 0 || seconds > 10LL * 365 * 24 * 3600)
    throw CapsuleValidationError("timeout", "seconds from 0 (never) to ten years");
  auto e = entry(id);
  std::lock_guard op(e->op);
  CapsuleRecord rec = load(id);
  if (rec.state == CapsuleState::destroyed) throw CapsuleConflictError("capsule " + id + " is destroyed");
  const std::int64_t before = rec.spec.idle_timeout_s;
  const std::int64_t now = mgr::now_ms();
  rec.spec.idle_timeout_s = seconds;
  e->last_active_ms.store(std::max(e->last_active_ms.load(), now));
  rec.last_active_ms = now;
  if (rec.state == CapsuleState::paused) rec.idle_remaining_ms = seconds * 1000;
  note(rec, "timeout_changed",
       "idle timeout " + std::to_string(before) + " s -> " + std::to_string(seconds) + " s (0: never)");
  overlay(rec);
  return rec;
}

}  // namespace pw::capsules

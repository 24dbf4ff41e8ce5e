// Health and recovery: the engine's view of each capsule against its record. A container
// that exited or was killed behind our back turns the capsule to `error` (reason and last
// log lines kept), or to `stopped` when its fixed lifetime ended it ("lifetime reached";
// destroyed instead with remove_at_end); the next use restarts it if its container can be
// started and recreates it (same spec, id and workspace) if not. reconcile() repairs drift
// both ways at start-up and after the engine comes back. The monitor thread runs a pass
// every monitor_interval: health, idle timers, retention, warm-pool refill.
#include "manager_impl.hpp"

#include <podwrangler/errors.hpp>
#include <podwrangler/redact.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <optional>
#include <system_error>

namespace pw::capsules {
namespace {

bool same_container(const std::string& a, const std::string& b) {
  if (a.empty() || b.empty()) return false;
  return a.size() <= b.size() ? b.starts_with(a) : a.starts_with(b);
}

bool stopped_status(const std::string& s) { return s == "exited" || s == "created" || s == "dead"; }

// "2024-05-01T12:34:56.123456789Z" (the engine's times, UTC) → unix ms; nullopt otherwise.
std::optional<std::int64_t> parse_time_ms(const std::string& t) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, used = 0;
  if (std::sscanf(t.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6 || y < 1970)
    return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  std::int64_t ms = static_cast<std::int64_t>(::timegm(&tm)) * 1000;
  std::size_t i = static_cast<std::size_t>(used);
  if (i < t.size() && t[i] == '.') {
    int scale = 100;
    for (++i; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i) {
      ms += static_cast<decltype(ms)>(t[i] - '0') * scale;
      scale /= 10;
    }
  }
  return ms;
}

// Whether a container that exited with 0 ran its whole lifetime (the agent exits 0 then,
// but also on SIGTERM: a `docker stop` behind our back is not the lifetime's end).
bool lifetime_ended(const CapsuleSpec& spec, const EngineState& st) {
  if (spec.lifetime_s <= 0 || st.exit_code != 0 || st.oom_killed) return false;
  const auto a = parse_time_ms(st.started_at), b = parse_time_ms(st.finished_at);
  if (!a || !b) return true;  // no times to check: the exit code says it
  return *b - *a >= spec.lifetime_s * 1000 - 1000;
}

}  // namespace

nlohmann::json ReconcileReport::to_json() const {
  return {{"marked_missing", marked_missing}, {"removed_orphans", removed_orphans}, {"state_fixed", state_fixed}};
}

std::vector<std::string> CapsuleManager::Impl::logs(const std::string& container_id) {
  if (container_id.empty() || settings.log_lines <= 0) return {};
  try {
    auto lines = backend->logs(container_id, settings.log_lines);
    for (auto& l : lines) l = redact_text(l);
    return lines;
  } catch (const std::exception&) {
    return {};
  }
}

void CapsuleManager::Impl::fail(CapsuleRecord& rec, Entry& e, const std::string& reason) noexcept {
  // Best effort throughout: the caller rethrows what made it fail.
  try {
    drop_channel(e);
    if (!rec.container_id.empty()) {
      auto lines = logs(rec.container_id);
      if (!lines.empty()) rec.last_logs = std::move(lines);
      try {
        backend->destroy(rec.container_id);
        rec.container_id.clear();
      } catch (const std::exception&) {  // the engine is gone: reconcile removes it later
      }
    }
    try {
      transition(rec, CapsuleState::error, reason);
    } catch (const CapsuleConflictError&) {
      // Another replica changed the row meanwhile: write the failure over its version.
      if (auto cur = records->get(rec.id)) {
        CapsuleRecord again = *cur;
        again.container_id = rec.container_id;
        again.last_logs = rec.last_logs;
        transition(again, CapsuleState::error, reason);
        rec = again;
      }
    }
  } catch (const std::exception&) {  // the store failed too: the row stays as it was
  }
}

std::string CapsuleManager::Impl::recover(CapsuleRecord& rec, Entry& e, const std::string& why) {
  drop_channel(e);
  std::string restart_problem;
  auto fresh_timer = [&] {
    const std::int64_t now = mgr::now_ms();
    rec.last_active_ms = now;
    rec.idle_remaining_ms = 0;
    e.last_active_ms.store(now);
  };
  if (!rec.container_id.empty()) {
    EngineState st;
    try {
      st = backend->inspect(rec.container_id);
    } catch (const CapsuleNotFoundError&) {
      st.exists = false;
    }
    if (st.exists) {
      try {
        if (st.paused) {
          set_paused(rec.container_id, false);
        } else if (!st.running) {
          std::error_code ec;
          std::filesystem::remove(run_dir(rec.id) + "/" + kAgentSocketName, ec);
          backend->start(rec.container_id);
        }
        attach(rec, e, had_agent(rec));
        fresh_timer();
        transition(rec, CapsuleState::running, why + " (restarted)");
        return "restarted";
      } catch (const EngineUnavailableError&) {
        throw;
      } catch (const std::exception& ex) {
        restart_problem = ex.what();
      }
      drop_channel(e);
      backend->destroy(rec.container_id);
    } else {
      restart_problem = "its container is gone";
    }
    rec.container_id.clear();
  }
  try {
    CreateContext ctx = context(rec, true);
    std::error_code ec;
    std::filesystem::remove(ctx.run_dir + "/" + kAgentSocketName, ec);
    rec.container_id = backend->create(rec.spec, ctx);
    save(rec);
    attach(rec, e, !ctx.agent_path.empty());
    fresh_timer();
    transition(rec, CapsuleState::running,
               why + " (recreated" + (restart_problem.empty() ? "" : ": " + restart_problem) + ")");
    return "recreated";
  } catch (const EngineUnavailableError&) {
    throw;
  } catch (const std::exception& ex) {
    fail(rec, e, why + ": recreating it failed: " + ex.what());
    throw;
  }
}

bool CapsuleManager::Impl::sync(CapsuleRecord& rec, Entry& e) {
  e.synced_ms.store(mgr::now_ms());
  if (rec.state == CapsuleState::destroyed) return false;
  const std::int64_t starting_grace = settings.ready_timeout.count() + 60000;
  const bool stale_start = rec.state == CapsuleState::starting && mgr::now_ms() - rec.created_ms > starting_grace;
  if (rec.container_id.empty()) {
    if (stale_start) {
      fail(rec, e, "creation interrupted (the process that created it stopped)");
      return true;
    }
    return false;
  }
  EngineState st;
  try {
    st = backend->inspect(rec.container_id);
  } catch (const CapsuleNotFoundError&) {
    st.exists = false;
  }
  if (!st.exists) {
    if (rec.state == CapsuleState::error || (rec.state == CapsuleState::starting && !stale_start)) return false;
    drop_channel(e);
    transition(rec, CapsuleState::error, "container missing");
    return true;
  }
  if (stale_start) {
    fail(rec, e, "creation interrupted (the process that created it stopped)");
    return true;
  }
  if (st.running && !st.paused) {
    if (rec.state == CapsuleState::paused) {
      const std::int64_t now = mgr::now_ms();
      rec.last_active_ms = now;
      e.last_active_ms.store(now);
      rec.idle_remaining_ms = 0;
      transition(rec, CapsuleState::running, "unpaused behind our back");
      return true;
    }
    if (rec.state == CapsuleState::stopped) {
      drop_channel(e);
      rec.last_active_ms = mgr::now_ms();
      transition(rec, CapsuleState::running, "started behind our back");
      return true;
    }
    return false;
  }
  if (st.paused) {
    if (rec.state == CapsuleState::running) {
      rec.idle_remaining_ms = remaining_ms(rec, e);
      transition(rec, CapsuleState::paused, "paused behind our back");
      return true;
    }
    return false;
  }
  // Not running: exited, created, dead.
  if (rec.state != CapsuleState::running && rec.state != CapsuleState::paused) return false;
  drop_channel(e);
  if (lifetime_ended(rec.spec, st)) {
    if (rec.spec.remove_at_end) {
      do_destroy(rec, e, "lifetime reached");
    } else {
      transition(rec, CapsuleState::stopped, "lifetime reached");
    }
    return true;
  }
  auto lines = logs(rec.container_id);
  if (!lines.empty()) rec.last_logs = std::move(lines);
  std::string why = "exited behind our back (" + (st.status.empty() ? "exited" : st.status) + ", exit code " +
                    std::to_string(st.exit_code) + (st.oom_killed ? ", out of memory" : "") +
                    (st.error.empty() ? "" : ", " + st.error) + ")";
  transition(rec, CapsuleState::error, why);
  return true;
}

ReconcileReport CapsuleManager::Impl::reconcile() {
  ReconcileReport rep;
  const auto containers = backend->list_capsule_containers();
  CapsuleFilter all;
  all.include_destroyed = true;
  std::map<std::string, CapsuleRecord> rows;
  for (auto& r : records->list(all)) rows.emplace(r.id, std::move(r));

  std::map<std::string, std::string> found;  // capsule id → container id
  for (const auto& c : containers) {
    auto it = rows.find(c.capsule_id);
    bool orphan = it == rows.end() || it->second.state == CapsuleState::destroyed;
    if (!orphan && !it->second.container_id.empty() && !same_container(c.container_id, it->second.container_id)) {
      // A second container for one capsule: a recreation cut short is an orphan, one in
      // progress right now is not (the row is rewritten under `op` once it exists).
      auto e = entry(c.capsule_id);
      std::unique_lock op(e->op, std::try_to_lock);
      if (!op.owns_lock()) continue;
      auto cur = records->get(c.capsule_id);
      orphan = !cur || cur->state == CapsuleState::destroyed ||
               (!cur->container_id.empty() && !same_container(c.container_id, cur->container_id));
    }
    if (orphan) {
      backend->destroy(c.container_id);
      rep.removed_orphans.push_back(c.capsule_id.empty() ? c.container_id : c.capsule_id);
      continue;
    }
    found[c.capsule_id] = c.container_id;
  }

  const std::int64_t now = mgr::now_ms();
  const std::int64_t starting_grace = settings.ready_timeout.count() + 60000;
  for (auto& [id, row] : rows) {
    if (row.state == CapsuleState::destroyed) continue;
    if (row.state == CapsuleState::starting && now - row.created_ms <= starting_grace) continue;
    auto e = entry(id);
    std::unique_lock op(e->op, std::try_to_lock);
    if (!op.owns_lock()) continue;  // a call of ours is on it right now
    CapsuleRecord rec;
    try {
      rec = load(id);
    } catch (const CapsuleNotFoundError&) {
      continue;
    }
    if (rec.state == CapsuleState::destroyed) continue;
    auto f = found.find(id);
    if (f == found.end()) {
      if (rec.state == CapsuleState::error) continue;  // known to be broken; the next use recreates it
      drop_channel(*e);
      transition(rec, CapsuleState::error, "container missing");
      rep.marked_missing.push_back(id);
      continue;
    }
    if (rec.container_id.empty()) {  // created while the row was being written: adopt it
      rec.container_id = f->second;
      save(rec);
    }
    if (sync(rec, *e)) rep.state_fixed.push_back(id);
    if (rec.state == CapsuleState::destroyed) forget(id);
  }
  return rep;
}

void CapsuleManager::Impl::health_pass() {
  const auto containers = backend->list_capsule_containers();
  std::map<std::string, EngineContainer> by_id;
  for (const auto& c : containers) by_id[c.capsule_id] = c;
  const std::int64_t now = mgr::now_ms();
  const std::int64_t starting_grace = settings.ready_timeout.count() + 60000;
  for (const auto& snap : records->list(CapsuleFilter{})) {
    if (snap.state == CapsuleState::destroyed) continue;
    if (snap.state == CapsuleState::starting && now - snap.created_ms <= starting_grace) continue;
    if (snap.state == CapsuleState::error && !is_pool(snap)) continue;  // waits for its next use
    auto it = by_id.find(snap.id);
    if (it != by_id.end() && snap.state != CapsuleState::error &&
        (snap.container_id.empty() || same_container(it->second.container_id, snap.container_id))) {
      const std::string& s = it->second.status;
      if ((snap.state == CapsuleState::running && s == "running") ||
          (snap.state == CapsuleState::paused && s == "paused") ||
          (snap.state == CapsuleState::stopped && stopped_status(s)))
        continue;  // the engine agrees
    }
    auto e = entry(snap.id);
    std::unique_lock op(e->op, std::try_to_lock);
    if (!op.owns_lock()) continue;
    try {
      CapsuleRecord rec = load(snap.id);
      if (rec.state == CapsuleState::error && is_pool(rec)) {
        do_destroy(rec, *e, "warm pool capsule failed: " + rec.reason);
      } else {
        sync(rec, *e);
        if (is_pool(rec) && rec.state != CapsuleState::paused && rec.state != CapsuleState::destroyed)
          do_destroy(rec, *e, "warm pool capsule lost: " + rec.reason);
      }
      if (rec.state == CapsuleState::destroyed) forget(rec.id);
    } catch (const EngineUnavailableError&) {
      throw;
    } catch (const std::exception&) {  // the next pass tries again
    }
  }
}

void CapsuleManager::Impl::purge_pass() {
  CapsuleFilter f;
  f.state = CapsuleState::destroyed;
  f.include_destroyed = true;
  const std::int64_t cutoff = mgr::now_ms() - settings.retention.count();
  for (const auto& rec : records->list(f)) {
    if (rec.state != CapsuleState::destroyed || rec.updated_ms > cutoff) continue;
    records->purge(rec.id);
    forget(rec.id);
    std::error_code ec;
    std::filesystem::remove_all(capsule_dir(rec.id), ec);
  }
}

void CapsuleManager::Impl::monitor_pass() {
  std::lock_guard pass(pass_mu);
  bool up = false;
  try {
    up = backend->ping();
  } catch (const std::exception&) {
    up = false;
  }
  if (!up) {
    engine_down = true;
    throw EngineUnavailableError("the container engine does not answer (" + redact_text(backend->describe()) + ")");
  }
  std::exception_ptr first;
  auto step = [&](auto&& fn) {
    try {
      fn();
    } catch (const EngineUnavailableError&) {
      engine_down = true;
      if (!first) first = std::current_exception();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  };
  if (engine_down.load()) {
    // The engine is back (or was never reached): repair what changed meanwhile first.
    step([&] {
      reconcile();
      engine_down = false;
    });
  }
  step([&] { health_pass(); });
  step([&] { idle_pass(); });
  step([&] { purge_pass(); });
  step([&] { pool_refill(); });
  if (first) std::rethrow_exception(first);
}

void CapsuleManager::Impl::start_monitor() {
  std::lock_guard lk(mon_mu);
  if (monitor.joinable()) return;
  try {
    std::lock_guard pass(pass_mu);
    reconcile();
  } catch (const std::exception&) {
    engine_down = true;  // the first pass that reaches the engine reconciles
  }
  mon_stop = false;
  monitor_running = true;
  monitor = std::thread([this] {
    std::unique_lock wait_lk(mon_mu);
    while (!mon_stop) {
      wait_lk.unlock();
      try {
        monitor_pass();
      } catch (const std::exception&) {  // recorded where it matters; the monitor keeps going
      }
      wait_lk.lock();
      mon_cv.wait_for(wait_lk, settings.monitor_interval, [this] { return mon_stop; });
    }
  });
}

void CapsuleManager::Impl::stop_monitor() {
  std::thread t;
  {
    std::lock_guard lk(mon_mu);
    mon_stop = true;
    t = std::move(monitor);
  }
  mon_cv.notify_all();
  if (t.joinable()) t.join();
  monitor_running = false;
}

}  // namespace pw::capsules

// The warm pool: per image (or template) a number of capsules created ahead of demand, kept
// paused with their agent connected, handed out by create and refilled by the monitor.
// A pool capsule is an ordinary record labelled podwrangler.pool=<key>, with no owner and
// no idle timeout. A request gets one only when it needs nothing that is fixed at container
// creation and differs from the pool's (mounts, ports, workspace, network, limits,
// lifetime); what can change later is applied to the record (owner, session, labels,
// timeout, expiry action, auto-resume) or to every exec (env, merged into each request).
// The record's origin says "warm", "bypassed: <why>" or "cold".
#include "manager_impl.hpp"

#include <podwrangler/errors.hpp>

namespace pw::capsules {

std::string CapsuleManager::Impl::pool_key_for(const CapsuleSpec& spec) const {
  if (!spec.template_name.empty() && settings.warm_pool.count(spec.template_name)) return spec.template_name;
  if (spec.template_name.empty() && settings.warm_pool.count(spec.image)) return spec.image;
  return "";
}

CapsuleSpec CapsuleManager::Impl::pool_base(const std::string& key) const {
  CapsuleSpec base;
  if (auto t = settings.templates.find(key); t != settings.templates.end()) {
    CapsuleSpec req;
    req.template_name = key;
    base = mgr::resolve_template(req, settings.templates);
  } else {
    base.image = key;
  }
  base.owner.clear();
  base.session.clear();
  base.workspace = false;
  base.idle_timeout_s = 0;
  base.lifetime_s = 0;
  return base;
}

namespace {

// How long a hand-out waits for a pool capsule that the monitor is busy with.
constexpr int kHandOutWaitMs = 2000;

// What a request needs that a pool capsule cannot give ("" = nothing).
std::string incompatibility(const CapsuleSpec& want, const CapsuleSpec& base) {
  if (want.image != base.image) return "image";
  if (want.workspace) return "workspace";
  if (!want.mounts.empty()) return "mounts";
  if (!want.ports.empty()) return "ports";
  if (want.network != base.network) return "network";
  if (want.vcpus != base.vcpus || want.memory_mb != base.memory_mb || want.pids_limit != base.pids_limit)
    return "limits";
  if (want.lifetime_s != 0) return "lifetime";
  return "";
}

}  // namespace

std::optional<CapsuleRecord> CapsuleManager::Impl::pool_take(const CapsuleSpec& spec, std::string& origin) {
  origin = "cold";
  const std::string key = pool_key_for(spec);
  if (key.empty()) return std::nullopt;
  auto n = settings.warm_pool.find(key);
  if (n == settings.warm_pool.end() || n->second <= 0) return std::nullopt;
  const std::string why = incompatibility(spec, pool_base(key));
  if (!why.empty()) {
    origin = "bypassed: " + why;
    return std::nullopt;
  }
  std::lock_guard pl(pool_mu);
  CapsuleFilter f;
  f.state = CapsuleState::paused;
  std::vector<CapsuleRecord> candidates;
  for (auto& r : records->list(f))
    if (is_pool(r) && pool_key_of(r) == key) candidates.push_back(std::move(r));
  // The oldest first: it has waited longest.
  for (auto it = candidates.rbegin(); it != candidates.rend(); ++it) {
    auto e = entry(it->id);
    // The monitor may be syncing this capsule right now: wait a little for it rather than
    // serve the request cold. Another hand-out that took it is seen below (not paused).
    std::unique_lock op(e->op, std::chrono::milliseconds(kHandOutWaitMs));
    if (!op.owns_lock()) continue;
    CapsuleRecord rec;
    try {
      rec = load(it->id);
    } catch (const CapsuleNotFoundError&) {
      continue;
    }
    if (rec.state != CapsuleState::paused || !is_pool(rec)) continue;
    const std::string container = rec.container_id;
    CapsuleSpec s = spec;
    rec.spec = s;
    rec.origin = "warm";
    rec.idle_remaining_ms = s.idle_timeout_s * 1000;
    try {
      note(rec, "claimed", "handed out from the warm pool (" + key + ")");  // the version check claims it
    } catch (const CapsuleConflictError&) {
      continue;  // another replica took it
    }
    try {
      do_resume(rec, *e, "handed out from the warm pool");
      channel(rec, *e);
      touch(*e);
      mon_cv.notify_all();
      return rec;
    } catch (const EngineUnavailableError&) {
      throw;
    } catch (const std::exception& ex) {
      // A pool capsule that cannot run: gone, and the request is served cold.
      try {
        do_destroy(rec, *e, std::string("warm pool capsule failed at hand-out: ") + ex.what());
      } catch (const std::exception&) {
      }
    }
  }
  return std::nullopt;
}

void CapsuleManager::Impl::pool_refill() {
  std::vector<std::pair<std::string, int>> want(settings.warm_pool.begin(), settings.warm_pool.end());
  CapsuleFilter any;
  for (const auto& rec : records->list(any)) {
    if (!is_pool(rec)) continue;
    // Pools no longer configured are emptied.
    const std::string key = pool_key_of(rec);
    auto n = settings.warm_pool.find(key);
    if (n == settings.warm_pool.end() || n->second <= 0) {
      auto e = entry(rec.id);
      std::unique_lock op(e->op, std::try_to_lock);
      if (!op.owns_lock()) continue;
      CapsuleRecord cur = load(rec.id);
      if (cur.state != CapsuleState::destroyed && is_pool(cur)) do_destroy(cur, *e, "warm pool shrunk");
      forget(rec.id);
    }
  }
  for (const auto& [key, n] : want) {
    if (n <= 0) continue;
    int have = 0;
    for (const auto& rec : records->list(any))
      if (is_pool(rec) && pool_key_of(rec) == key &&
          (rec.state == CapsuleState::paused || rec.state == CapsuleState::starting ||
           rec.state == CapsuleState::running))
        ++have;
    for (; have < n; ++have) {
      CapsuleRecord rec = create(pool_base(key), true, nullptr, true);
      auto e = entry(rec.id);
      std::lock_guard op(e->op);
      rec = load(rec.id);
      if (rec.state == CapsuleState::running && is_pool(rec)) do_pause(rec, *e, "warm pool: ready", false);
    }
  }
}

}  // namespace pw::capsules

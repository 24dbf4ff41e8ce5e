#include "embedded_server/capsule_service.hpp"

#include "embedded_server/routes.hpp"
#include "embedded_server/store/store.hpp"

#include <podwrangler/capsules/backend.hpp>
#include <podwrangler/capsules/docker_backend.hpp>
#include <podwrangler/capsules/manager.hpp>
#include <podwrangler/capsules/records.hpp>
#include <podwrangler/errors.hpp>
#include <podwrangler/redact.hpp>

#include <iostream>

namespace pw::server {

std::shared_ptr<capsules::CapsuleRecords> make_capsule_records(ServerState& ctx) {
  return ctx.store->capsule_records();
}

std::shared_ptr<capsules::CapsuleBackend> make_capsule_backend(const std::string& docker_host) {
  return capsules::make_docker_backend(docker_host);
}

CapsuleService::CapsuleService(ServerState& ctx)
    : ctx_(ctx), templates_(load_capsule_templates(ctx.settings.capsule_templates_file)) {}

CapsuleService::~CapsuleService() { stop(); }

bool CapsuleService::enabled() const noexcept { return ctx_.settings.capsules_enabled; }

void CapsuleService::start() {
  if (!enabled() || ctx_.settings.capsules_lazy) return;
  std::lock_guard lk(mu_);
  try {
    connect_locked();
  } catch (const std::exception& e) {
    std::cerr << "podwrangler serve: capsules: " << redact_text(e.what())
              << " (capsule requests answer 503 until the engine is reachable)\n";
  }
}

void CapsuleService::stop() {
  std::shared_ptr<capsules::CapsuleManager> m;
  {
    std::lock_guard lk(mu_);
    stopped_ = true;
    m = std::move(manager_);
  }
  if (m) {
    try {
      m->stop_monitor();
    } catch (const std::exception& e) {
      std::cerr << "podwrangler serve: capsules: stopping the monitor: " << redact_text(e.what()) << "\n";
    }
  }
}

std::shared_ptr<capsules::CapsuleManager> CapsuleService::shared() {
  if (!enabled()) throw EngineUnavailableError("capsules are disabled on this server (PODWRANGLER_CAPSULES=off)");
  std::lock_guard lk(mu_);
  if (manager_) return manager_;
  return connect_locked();
}

std::shared_ptr<capsules::CapsuleManager> CapsuleService::connect_locked() {
  if (stopped_) throw EngineUnavailableError("the server is stopping");
  auto now = std::chrono::steady_clock::now();
  // One attempt per second at most: a burst of requests while the engine is down costs one
  // connection attempt, not one each.
  if (!last_error_.empty() && now - last_attempt_ < std::chrono::seconds(1)) throw EngineUnavailableError(last_error_);
  last_attempt_ = now;
  try {
    if (!backend_) backend_ = make_capsule_backend(ctx_.settings.docker_host);
    if (!backend_->ping())
      throw EngineUnavailableError("the container engine does not answer (" + backend_->describe() + ")");
    capsules::ManagerSettings ms;
    ms.data_dir = data_dir();
    ms.agent_path = ctx_.settings.agent_path;
    ms.warm_pool = ctx_.settings.warm_pool;
    ms.templates = templates_.specs;
    for (const auto& [name, n] : templates_.warm) ms.warm_pool[name] = n;  // keyed by template
    auto m = std::make_shared<capsules::CapsuleManager>(std::move(ms), backend_, make_capsule_records(ctx_));
    m->start_monitor();
    manager_ = m;
    last_error_.clear();
    return m;
  } catch (const EngineUnavailableError& e) {
    last_error_ = e.what();
    throw;
  } catch (const std::exception& e) {
    last_error_ = std::string("the container engine cannot be used: ") + e.what();
    throw EngineUnavailableError(last_error_);
  }
}

}  // namespace pw::server

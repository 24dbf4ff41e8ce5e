#pragma once
// The capsule manager of one server (libpodwrangler/capsules/manager.hpp): the engine it
// talks to (PODWRANGLER_DOCKER_HOST), the records it keeps (make_capsule_records) and its
// monitor thread. Made at start when capsules are on; while the engine cannot be reached
// the capsule routes answer 503 engine_unavailable and every other route works, and the
// next capsule request after the engine is back (at most one attempt per second) makes it.
#include "embedded_server/capsule_templates.hpp"

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

namespace pw::capsules {
class CapsuleBackend;
class CapsuleManager;
class CapsuleRecords;
}  // namespace pw::capsules

namespace pw::server {

struct ServerState;

class CapsuleService {
 public:
  // Reads the templates file of the settings: a bad one is a PodConfigValidationError here,
  // at start, not a surprise at the first create.
  explicit CapsuleService(ServerState& ctx);
  ~CapsuleService();  // stop()
  CapsuleService(const CapsuleService&) = delete;
  CapsuleService& operator=(const CapsuleService&) = delete;

  // At server start: makes the manager (reconcile, monitor) unless capsules are off or
  // settings.capsules_lazy. Never throws: an unreachable engine is one line on stderr.
  void start();
  // Stops the monitor; later requests get 503.
  void stop();
  bool enabled() const noexcept;

  // The manager. Throws EngineUnavailableError (503) when capsules are off, the server is
  // stopping or the engine cannot be reached.
  capsules::CapsuleManager& manager() { return *shared(); }
  // The same, shared: for work that may outlive its request (a stream whose client left).
  std::shared_ptr<capsules::CapsuleManager> shared();

 private:
  std::shared_ptr<capsules::CapsuleManager> connect_locked();

  ServerState& ctx_;
  CapsuleTemplates templates_;
  std::mutex mu_;
  std::shared_ptr<capsules::CapsuleBackend> backend_;
  std::shared_ptr<capsules::CapsuleManager> manager_;
  std::chrono::steady_clock::time_point last_attempt_{};
  std::string last_error_;
  bool stopped_ = false;
};

// Where this server keeps capsule records and events: the one place to choose. The server's
// Store (SQLite or PostgreSQL), so capsules outlive a server and replicas share them
// (pw::capsules::make_memory_capsule_records() is the choice of library users without one).
std::shared_ptr<capsules::CapsuleRecords> make_capsule_records(ServerState& ctx);

// The engine backend for settings.docker_host.
std::shared_ptr<capsules::CapsuleBackend> make_capsule_backend(const std::string& docker_host);

}  // namespace pw::server

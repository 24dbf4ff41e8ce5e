#pragma once
// The engine side of capsules: containers (or later pods, VMs) with a lifecycle. One
// implementation today, DockerBackend (docker_backend.hpp, the Engine API v1.41).
// Blocking and thread-safe. Errors: EngineUnavailableError (cannot reach the engine),
// CapsuleNotFoundError (no such container/image), CapsuleConflictError (wrong state),
// CapsuleValidationError (the engine refused a setting).
#include <podwrangler/capsules/channel.hpp>
#include <podwrangler/capsules/model.hpp>

#include <memory>
#include <string>
#include <vector>

namespace pw::capsules {

// What the manager prepares on the host for one capsule.
struct CreateContext {
  std::string capsule_id;
  std::string agent_path;     // host path of the static agent executable ("" = no agent: fallback)
  std::string run_dir;        // host directory (0700) mounted at /.podwrangler/run: the agent's socket
  std::string workspace_dir;  // host directory mounted at /workspace ("" = none)
};

// Inside every capsule (documented; the agent and the backend agree on them).
inline constexpr const char* kAgentPathInCapsule = "/.podwrangler/agent";
inline constexpr const char* kRunDirInCapsule = "/.podwrangler/run";
inline constexpr const char* kAgentSocketName = "agent.sock";
inline constexpr const char* kWorkspaceInCapsule = "/workspace";

// Engine labels on every container we create.
inline constexpr const char* kLabelCapsule = "podwrangler.capsule";  // = capsule id
inline constexpr const char* kLabelOwner = "podwrangler.owner";
inline constexpr const char* kLabelSession = "podwrangler.session";

struct EngineState {
  bool exists = false;
  std::string status;  // the engine's word: created, running, paused, restarting, exited, dead
  bool running = false;
  bool paused = false;
  int exit_code = 0;
  bool oom_killed = false;
  int pid = 0;  // host pid of the capsule's init (the agent), 0 when not running
  std::string error;
  std::string started_at, finished_at;
  std::map<int, int> published_ports;
  CapsuleLimits limits;
};

struct EngineContainer {
  std::string capsule_id;  // from the label
  std::string container_id;
  std::string status;
};

class CapsuleBackend {
 public:
  virtual ~CapsuleBackend() = default;
  virtual std::string name() const = 0;      // "docker"
  virtual std::string describe() const = 0;  // "docker at unix:///var/run/docker.sock" (redacted)

  // Creates and starts the container; returns its id. The image must exist locally
  // (no pulls: CapsuleNotFoundError names the image).
  virtual std::string create(const CapsuleSpec& spec, const CreateContext& ctx) = 0;
  virtual void start(const std::string& container_id) = 0;
  virtual void stop(const std::string& container_id, int grace_s = 2) = 0;
  virtual void pause(const std::string& container_id) = 0;
  virtual void resume(const std::string& container_id) = 0;
  // Idempotent: a missing container is not an error.
  virtual void destroy(const std::string& container_id) = 0;
  virtual EngineState inspect(const std::string& container_id) = 0;
  virtual std::vector<EngineContainer> list_capsule_containers() = 0;
  virtual std::vector<std::string> logs(const std::string& container_id, int tail_lines) = 0;
  virtual bool ping() = 0;  // the engine answers

  // The fallback channel (one engine exec per call) for a capsule without an agent.
  virtual std::unique_ptr<ExecChannel> exec_channel(const std::string& container_id) = 0;
};

}  // namespace pw::capsules

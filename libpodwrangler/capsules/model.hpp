#pragma once
// Capsules: isolated sandboxes with a lifecycle, exec, files and (later) terminals and
// snapshots. These are the plain records every part of the capsule layer shares: the
// backend (the engine), the agent channel, the records store and the manager.
// JSON (de)serialisation (nlohmann) for each, the shape of the REST API's bodies.
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pw::capsules {

// starting → running ⇄ paused; running → stopped → running (start); any → destroyed;
// error (with a reason) when the engine lost it or it could not start.
enum class CapsuleState { starting, running, paused, stopped, destroyed, error };
std::string_view to_string(CapsuleState s) noexcept;
std::optional<CapsuleState> parse_state(std::string_view s) noexcept;

// What happens when the idle timeout expires.
enum class ExpiryAction { pause, stop, destroy };
std::string_view to_string(ExpiryAction a) noexcept;
std::optional<ExpiryAction> parse_expiry_action(std::string_view s) noexcept;

struct MountSpec {
  std::string host_path;  // absolute, must exist on the engine's host
  std::string target;     // absolute path inside the capsule
  bool read_only = false;
};

struct PortSpec {
  int container_port = 0;             // 1-65535, tcp
  std::string host_ip = "127.0.0.1";  // published on loopback unless told otherwise
  int host_port = 0;                  // 0: the engine picks a free one
};

// Defaults are the documented ones (README, man page, OpenAPI): change them together.
struct CapsuleSpec {
  std::string image;          // an image reference, or empty when template_name is given
  std::string template_name;  // a template (image + defaults), or empty
  double vcpus = 1.0;         // NanoCpus = vcpus * 1e9
  std::int64_t memory_mb = 512;
  std::int64_t pids_limit = 1024;
  std::int64_t idle_timeout_s = 300;  // seconds of idleness before on_expire; 0: never
  ExpiryAction on_expire = ExpiryAction::pause;
  // Fixed lifetime (podkit): 0 lives until closed; otherwise the capsule's init exits by
  // itself after that many seconds of running time, and the capsule is then stopped (kept
  // for reuse) or, with remove_at_end, destroyed.
  std::int64_t lifetime_s = 0;
  bool remove_at_end = false;
  std::map<std::string, std::string> env;
  std::vector<MountSpec> mounts;
  std::vector<PortSpec> ports;
  std::string network = "none";  // documented default: no network; "bridge", "host" refused, or a named network
  std::map<std::string, std::string> labels;
  std::string owner;        // who the capsule belongs to ("" = anonymous)
  std::string session;      // owner's session name (get-or-create key with owner)
  bool workspace = false;   // mount {data dir}/workspaces/{owner}/{session}/ at /workspace
  bool auto_resume = true;  // exec on a paused capsule resumes it
};

// The limits as the engine reports them (inspect), for `capsule show`.
struct CapsuleLimits {
  double vcpus = 0;
  std::int64_t memory_bytes = 0;
  std::int64_t pids_limit = 0;
  bool privileged = false;
  bool no_new_privileges = false;
  bool read_only_rootfs = false;
  std::vector<std::string> cap_drop;
  std::vector<std::string> cap_add;
};

struct CapsuleEvent {
  std::int64_t seq = 0;  // assigned by the records store, increasing per capsule
  std::string capsule_id;
  std::int64_t at_ms = 0;  // unix epoch milliseconds
  std::string from;        // previous state ("" for the first event)
  std::string to;          // new state, or an event name that is not a state ("ping", "timeout_changed" …)
  std::string reason;      // free text, redacted
};

struct CapsuleRecord {
  std::string id;  // "cap-" + 16 lowercase hex digits
  CapsuleState state = CapsuleState::starting;
  CapsuleSpec spec;
  std::string backend = "docker";
  std::string container_id;  // the engine's id ("" before the engine made it)
  std::string image_id;      // resolved image id, for recreation
  // How exec and files reach the capsule: "agent" (the in-capsule agent) or "docker-exec"
  // (fallback), with the reason of a fallback.
  std::string exec_mode;
  std::string exec_mode_reason;
  // "cold" (created for this request), "warm" (handed out by the warm pool) or
  // "bypassed: <why>" (the pool had one but the request needs what cannot change later).
  std::string origin = "cold";
  std::string reason;                  // why the last transition happened (error reason …)
  std::vector<std::string> last_logs;  // the container's last log lines when it failed
  std::map<int, int> published_ports;  // container port → host port
  CapsuleLimits limits;
  std::int64_t created_ms = 0;
  std::int64_t updated_ms = 0;
  std::int64_t last_active_ms = 0;     // last activity the manager saw (API call or agent activity)
  std::int64_t idle_remaining_ms = 0;  // while paused: what was left of the idle timeout
  std::int64_t version = 0;            // optimistic concurrency: bumped by every update
};

struct CapsuleFilter {
  std::optional<CapsuleState> state;
  std::string owner;                          // "" = any
  std::string session;                        // "" = any
  std::map<std::string, std::string> labels;  // all must match
  bool include_destroyed = false;
  int limit = 0;  // 0 = no limit
};

// ---- exec -------------------------------------------------------------------------------
struct ExecRequest {
  std::vector<std::string> argv;  // argv[0] looked up in PATH; never through a shell unless asked
  std::map<std::string, std::string> env;
  std::string cwd;         // "" = the capsule's working directory
  double timeout_s = 0;    // 0 = none; on expiry SIGKILL to the process group, exit_code 137, timed_out
  std::string stdin_data;  // written then closed; empty = /dev/null
  std::size_t max_output_bytes = 16 * 1024 * 1024;  // per stream; beyond it truncated
};

struct ExecResult {
  std::string stdout_data;
  std::string stderr_data;
  int exit_code = 0;  // 128+N when killed by signal N
  double duration_s = 0;
  bool timed_out = false;
  bool truncated = false;
};

struct ExecEvent {
  enum class Kind { started, stdout_data, stderr_data, exit };
  Kind kind = Kind::started;
  std::string data;   // stdout/stderr bytes
  int pid = 0;        // started
  int exit_code = 0;  // exit
  double duration_s = 0;
  bool timed_out = false;
};
// Called in order, on a thread of the capsule layer; must not block for long.
using ExecSink = std::function<void(const ExecEvent&)>;

// ---- files ------------------------------------------------------------------------------
struct FileStat {
  std::string path;  // absolute, as asked (ls: the entry's full path)
  std::string name;
  std::string type;  // "file", "dir", "symlink", "other"
  std::uint64_t size = 0;
  std::uint32_t mode = 0;  // permission bits (07777)
  std::int64_t mtime_s = 0;
  std::string link_target;
};

// Pull-style byte source (uploads) and push-style sink (downloads): a 1 GiB file never
// sits in memory.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Up to n bytes into buf; 0 at the end.
  virtual std::size_t read(char* buf, std::size_t n) = 0;
};
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual void write(std::string_view bytes) = 0;
};

// A process started in the background (or an exec still running), as the agent lists it.
struct ProcessInfo {
  int pid = 0;
  std::vector<std::string> argv;
  double running_s = 0;
  bool background = false;
};

// What the agent reports about work inside the capsule (the idle timer reads it).
struct AgentActivity {
  int running_processes = 0;  // execs and background processes still running
  int open_streams = 0;       // streams (exec stdin, file transfers) open on any connection
  std::int64_t idle_ms = 0;   // since the last byte any of them produced or consumed
};

// ---- JSON --------------------------------------------------------------------------------
void to_json(nlohmann::json& j, const MountSpec& v);
void from_json(const nlohmann::json& j, MountSpec& v);
void to_json(nlohmann::json& j, const PortSpec& v);
void from_json(const nlohmann::json& j, PortSpec& v);
void to_json(nlohmann::json& j, const CapsuleSpec& v);
void from_json(const nlohmann::json& j, CapsuleSpec& v);
void to_json(nlohmann::json& j, const CapsuleLimits& v);
void from_json(const nlohmann::json& j, CapsuleLimits& v);
void to_json(nlohmann::json& j, const CapsuleEvent& v);
void to_json(nlohmann::json& j, const CapsuleRecord& v);
void from_json(const nlohmann::json& j, CapsuleRecord& v);
void to_json(nlohmann::json& j, const ExecResult& v);
void to_json(nlohmann::json& j, const FileStat& v);
void to_json(nlohmann::json& j, const ProcessInfo& v);

// "cap-" + 16 lowercase hex digits from RAND_bytes.
std::string new_capsule_id();
bool is_capsule_id(std::string_view s) noexcept;

}  // namespace pw::capsules

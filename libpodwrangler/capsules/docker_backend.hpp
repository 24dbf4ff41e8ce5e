#pragma once
// DockerBackend: capsules as Docker containers, through the Engine API v1.41
// (engine_client.hpp: unix socket, DOCKER_HOST, tcp:// with TLS client certificates).
// Images must exist on the engine: nothing is pulled.
//
// Every container made by create():
//   name        pw-<capsule id>; labels podwrangler.capsule/owner/session plus the spec's
//               (a spec label may not use the podwrangler. prefix)
//   init        the agent: Entrypoint [/.podwrangler/agent], Cmd [--socket
//               /.podwrangler/run/agent.sock] (+ --lifetime N), User 0:0, bind-mounted
//               read-only from ctx.agent_path; ctx.run_dir at /.podwrangler/run. The agent is
//               PID 1 (Init false). Without an agent (ctx.agent_path ""): /bin/sh as PID 1 in
//               a keep-alive loop that ends on SIGTERM (with a lifetime: after N seconds, paused
//               time included), and the fallback channel below does the work.
//   mounts      workspace at /workspace (WorkingDir then), the spec's mounts (absolute paths,
//               the host path must exist: else CapsuleValidationError)
//   network     spec.network (default "none"; "host" is refused); ports published on
//               spec host_ip (loopback by default), host port chosen by the engine unless given
//   limits      NanoCpus = vcpus·1e9, Memory = MemorySwap = memory_mb MiB (no swap),
//               PidsLimit, Privileged false, SecurityOpt no-new-privileges, CapDrop ALL and
//               CapAdd kCapsuleCapabilities only, no restart policy.
//
// kCapsuleCapabilities, the documented set: what root in an ordinary container needs to
// install packages and run services (CHOWN, DAC_OVERRIDE, FOWNER, FSETID: owners and
// modes of files; SETUID, SETGID: drop to another user; KILL: signal processes of other
// users; NET_BIND_SERVICE: ports below 1024). Left out of Docker's default set: MKNOD,
// NET_RAW (raw sockets, spoofing), SETPCAP, SETFCAP, SYS_CHROOT, AUDIT_WRITE; never
// anything that reaches the kernel or the host (SYS_ADMIN, NET_ADMIN, SYS_PTRACE …).
//
// Errors: EngineUnavailableError (the engine cannot be reached: the message names it),
// CapsuleNotFoundError (container, or "image" for a missing image), CapsuleConflictError
// (wrong state: pause of a stopped container …), CapsuleValidationError (a bad spec, or
// the engine refused it).
#include <podwrangler/capsules/backend.hpp>
#include <podwrangler/capsules/engine_client.hpp>

#include <array>
#include <memory>
#include <string>

namespace pw::capsules {

inline constexpr std::array<const char*, 8> kCapsuleCapabilities = {
    "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "NET_BIND_SERVICE"};

class DockerBackend final : public CapsuleBackend {
 public:
  explicit DockerBackend(EngineEndpoint endpoint);
  std::string name() const override { return "docker"; }
  std::string describe() const override;

  std::string create(const CapsuleSpec& spec, const CreateContext& ctx) override;
  void start(const std::string& container_id) override;
  void stop(const std::string& container_id, int grace_s = 2) override;
  void pause(const std::string& container_id) override;
  void resume(const std::string& container_id) override;
  void destroy(const std::string& container_id) override;
  EngineState inspect(const std::string& container_id) override;
  std::vector<EngineContainer> list_capsule_containers() override;
  std::vector<std::string> logs(const std::string& container_id, int tail_lines) override;
  bool ping() override;
  std::unique_ptr<ExecChannel> exec_channel(const std::string& container_id) override;

  EngineClient& engine() noexcept { return *engine_; }

 private:
  std::shared_ptr<EngineClient> engine_;
};

// `docker_host` "" reads DOCKER_HOST (and the TLS variables: engine_endpoint_from_env).
std::unique_ptr<DockerBackend> make_docker_backend(std::string docker_host = "");

// The fallback ExecChannel: one Engine API call per operation.
//   exec       one exec (create, start on a hijacked connection, inspect for the exit
//              code), through `/bin/sh -c` that reports the process id first (so the
//              image needs /bin/sh); env and cwd (WorkingDir) per call; stdin written
//              then closed; on timeout the process group is killed with a second exec
//              (`kill -KILL -<pid>`): exit code 137, timed_out.
//   files      upload: a tar built as it is sent (PUT archive into the parent directory,
//              created when missing; the data is first spooled, to memory up to 1 MiB and
//              then to an unlinked 0600 temporary file, because a tar header needs the
//              size); download: GET archive read through libarchive into the sink, a single
//              regular file only (a symbolic link is followed; a directory is refused with
//              CapsuleValidationError); stat: HEAD archive; list: `find | xargs stat`;
//              mkdir, remove: an exec each.
//   background `sh` starts the command with its output in /tmp/.podwrangler/<pid>.log.
//   activity() counts only the calls made through this channel (execs, transfers, the
//   background processes it started and that are still alive).
class DockerExecChannel final : public ExecChannel {
 public:
  DockerExecChannel(std::shared_ptr<EngineClient> engine, std::string container_id);
  ~DockerExecChannel() override;
  std::string mode() const override { return "docker-exec"; }

  ExecResult exec(const ExecRequest& req, const ExecSink* sink = nullptr) override;
  int start_background(const ExecRequest& req) override;
  std::vector<ProcessInfo> processes() override;
  void kill(int pid, int signal) override;

  void upload(const std::string& path, ByteSource& src, std::uint32_t mode = 0644) override;
  void download(const std::string& path, ByteSink& sink) override;
  FileStat stat(const std::string& path) override;
  std::vector<FileStat> list(const std::string& path, int depth = 1) override;
  void mkdir(const std::string& path, bool parents = true) override;
  void remove(const std::string& path, bool recursive = false) override;

  AgentActivity activity() override;
  bool alive() override;
  void close() override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pw::capsules

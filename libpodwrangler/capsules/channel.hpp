#pragma once
// How exec, files and processes reach the inside of one capsule. Two implementations:
// AgentChannel (agent_client.hpp: the in-capsule agent over one multiplexed unix-socket
// connection, the fast path) and DockerExecChannel (docker_backend.hpp: one `docker exec` /
// archive call per operation, the fallback where the agent cannot start).
// Thread-safe: calls from many threads run concurrently (the agent multiplexes them).
// Errors: CapsuleNotFoundError (a path), CapsuleValidationError (a bad path or argument),
// AgentError (the channel broke), EngineUnavailableError (fallback: the engine is gone).
#include <podwrangler/capsules/model.hpp>

#include <memory>
#include <string>
#include <vector>

namespace pw::capsules {

class ExecChannel {
 public:
  virtual ~ExecChannel() = default;
  virtual std::string mode() const = 0;  // "agent" or "docker-exec"

  // Runs argv to completion. With a sink, events are delivered as they happen (and the
  // result still carries the exit code; its stdout/stderr are then empty).
  virtual ExecResult exec(const ExecRequest& req, const ExecSink* sink = nullptr) = 0;
  // Starts argv in the background (its output goes to a log file inside the capsule,
  // /tmp/.podwrangler/<pid>.log) and returns at once with its pid.
  virtual int start_background(const ExecRequest& req) = 0;
  virtual std::vector<ProcessInfo> processes() = 0;
  virtual void kill(int pid, int signal) = 0;

  // Files. Paths are absolute inside the capsule. An upload makes missing parent directories
  // and replaces the file only once all of it has arrived.
  virtual void upload(const std::string& path, ByteSource& src, std::uint32_t mode = 0644) = 0;
  virtual void download(const std::string& path, ByteSink& sink) = 0;
  virtual FileStat stat(const std::string& path) = 0;
  virtual std::vector<FileStat> list(const std::string& path, int depth = 1) = 0;
  virtual void mkdir(const std::string& path, bool parents = true) = 0;
  virtual void remove(const std::string& path, bool recursive = false) = 0;

  // Work in progress inside the capsule (the idle timer's input). The fallback reports
  // only the execs it runs itself.
  virtual AgentActivity activity() = 0;
  // Cheap liveness check (one round trip).
  virtual bool alive() = 0;
  virtual void close() = 0;
};

}  // namespace pw::capsules

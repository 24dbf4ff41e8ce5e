#pragma once
// Docker Engine API v1.41 over a unix socket (Beast HTTP): plain requests, exec with a
// hijacked connection. Internal to the library; used by providers/docker.cpp.
#include <podwrangler/connection.hpp>
#include <podwrangler/providers/docker.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace pw::transport {

struct HttpReply {
  int status = 0;
  std::string body;
};

// One request on a fresh connection to the daemon at `socket_path`. Throws
// PodConnectionError when the daemon cannot be reached (naming the socket).
Task<HttpReply> docker_request(std::string socket_path, std::string method, std::string target, std::string body,
                               std::chrono::milliseconds timeout);

struct DockerExecSpec {
  std::string socket_path;
  std::string host;  // for messages: unix:///var/run/docker.sock
  std::string container;
  std::vector<std::string> argv;
  std::string user;
};

// A Connection onto `argv` running in the container (stdin attached, no TTY); stdout and
// stderr frames are merged into the byte stream.
std::unique_ptr<Connection> make_docker_exec_connection(Executor ex, DockerExecSpec spec);

// Runs argv once; stdout and stderr apart, exit code from exec inspect.
Task<ExecOutput> docker_exec_once(DockerExecSpec spec, double timeout);

}  // namespace pw::transport

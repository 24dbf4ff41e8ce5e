#pragma once
// DockerProvider: a persistent shell in a running container through the Docker Engine
// API (v1.41) over its unix socket.
//   docker://<container>                           DOCKER_HOST or unix:///var/run/docker.sock
//   docker://<container>?host=unix:///path/docker.sock&shell=/bin/sh&user=1000
// run() uses `exec` of a shell without a TTY (stdout/stderr multiplexed frames);
// exec_once() runs one argv with stdout and stderr kept apart and the exit code from
// exec inspect.
#include <podwrangler/provider.hpp>

namespace pw {

struct ExecOutput {
  std::string stdout_text;
  std::string stderr_text;
  int exit_code = -1;
};

class DockerProvider : public ProviderInterface {
 public:
  std::string name() const override { return "docker"; }
  ConnectionSpec build_connection_spec(const PodIdentity& identity, const SecretString& token) const override;
  std::pair<PodIdentity, SecretString> parse_url(std::string_view url) const override;
  Task<void> init_shell(Connection& conn, const ConnectionSpec& schema) const override;
  // Running containers; label_selector "k=v,k2=v2" filters by labels. Each identity's
  // origin is a docker:// URL that registers the container as a pod.
  Task<std::vector<PodIdentity>> list_pods(const SecretString& token, ListPodsOptions options) const override;
  std::unique_ptr<Connection> open(Executor ex, const ConnectionSpec& schema) const override;
  // A timed-out command in the pipe shell: a one-shot exec signals the shell's
  // descendants (interrupt_children_argv), and the shell is kept.
  Task<bool> interrupt(Connection& conn, const PodIdentity& identity, const SecretString& token, long shell_pid,
                       bool tty, bool hard) const override;

  // One-shot exec of argv in the container of `identity`.
  static Task<ExecOutput> exec_once(PodIdentity identity, std::vector<std::string> argv, double timeout);

  // The daemon the provider talks to when a URL names none: $DOCKER_HOST or the default.
  static std::string default_host();
  void set_host(std::string host) { host_ = std::move(host); }  // for list_pods

 private:
  std::string host_;
};

namespace docker {
// Low-level pieces, exposed for tests: the unix socket path of a docker host URL, and
// the demultiplexer of the non-TTY attach stream (8-byte headers: type, 0,0,0, BE length).
std::string socket_path(std::string_view host);  // throws PodConfigValidationError

class Demux {
 public:
  // Appends payloads of complete frames: stdout (type 1) to out, stderr (type 2) to err
  // (or to out when err is null). Returns false on a malformed stream.
  bool feed(std::string_view bytes, std::string& out, std::string* err);
  bool idle() const noexcept { return pending_.empty(); }

 private:
  std::string pending_;
};
}  // namespace docker

}  // namespace pw

#pragma once
// LocalProvider: a real PTY shell on this machine, the embedded default.
//   local://            → /bin/sh, pod name "local"
//   local://<name>      → pod name <name>
//   local://<name>?shell=/bin/bash&cwd=/tmp&cols=120
// The shell starts with fds 0/1/2 only, default signals, and a clean environment:
// HOME, USER, LOGNAME (passwd entry of the effective uid), SHELL (the pod's shell),
// PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin, TERM=dumb,
// LANG=C.UTF-8; nothing of this process's environment (transport/pty_connection.cpp).
// Its terminal is raw (bytes pass unchanged); a timed-out command's foreground job is
// signalled (SIGINT, then SIGKILL) and the shell kept.
#include <podwrangler/provider.hpp>

namespace pw {

class LocalProvider : public ProviderInterface {
 public:
  std::string name() const override { return "local"; }
  ConnectionSpec build_connection_spec(const PodIdentity& identity, const SecretString& token) const override;
  std::pair<PodIdentity, SecretString> parse_url(std::string_view url) const override;
  // The default preamble without stty: the terminal is set up raw when it is made.
  Task<void> init_shell(Connection& conn, const ConnectionSpec& schema) const override;
  Task<std::vector<PodIdentity>> list_pods(const SecretString& token, ListPodsOptions options) const override;
  std::unique_ptr<Connection> open(Executor ex, const ConnectionSpec& schema) const override;
};

// A PTY running `shell` (argv[0]) in `cwd`, set up as above; exposed for custom providers.
std::unique_ptr<Connection> make_pty_connection(Executor ex, std::string shell, std::string cwd, int cols);

}  // namespace pw

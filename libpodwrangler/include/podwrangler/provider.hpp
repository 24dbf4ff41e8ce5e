#pragma once
// ProviderInterface: what a provider implements so that PodSession and PodRegistry work
// with it. A user-written provider derives from it, implements the pure functions and
// plugs in without touching library code.
#include <podwrangler/asio_fwd.hpp>
#include <podwrangler/connection.hpp>
#include <podwrangler/model.hpp>

#include <utility>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pw {

struct ListPodsOptions {
  std::string namespace_;
  std::string label_selector;
  std::string field_selector;
};

class ProviderInterface {
 public:
  virtual ~ProviderInterface() = default;

  virtual std::string name() const = 0;
  virtual ConnectionSpec build_connection_spec(const PodIdentity& identity, const SecretString& token) const = 0;
  // Throws PodURLParseError naming the bad part (never the token).
  virtual std::pair<PodIdentity, SecretString> parse_url(std::string_view url) const = 0;
  // Prepares a freshly opened shell (echo off, empty prompts, dumb terminal).
  virtual Task<void> init_shell(Connection& conn, const ConnectionSpec& schema) const;
  virtual Task<std::string> detect_namespace(Connection& conn, const PodIdentity& identity,
                                             const ConnectionSpec& schema) const;
  virtual Task<std::vector<PodIdentity>> list_pods(const SecretString& token, ListPodsOptions options) const;
  // Opens the transport for a schema; the default is a WebSocket connection.
  virtual std::unique_ptr<Connection> open(Executor ex, const ConnectionSpec& schema) const;
  // Interrupts the command running in a session's shell after a timeout, keeping the
  // shell: hard=false asks (SIGINT), hard=true insists (SIGKILL). `shell_pid` is the
  // shell's $$ as the pod sees it (0 if unknown), `tty` whether the shell runs on a
  // terminal. Returns false when this provider cannot reach the command; the session
  // then replaces the shell and says so (session_reset). The default asks the transport
  // (Connection::interrupt(): a local PTY signals the foreground job), else, on a
  // terminal, writes Ctrl-C (hard: Ctrl-\) to it; a pipe shell cannot be interrupted.
  virtual Task<bool> interrupt(Connection& conn, const PodIdentity& identity, const SecretString& token, long shell_pid,
                               bool tty, bool hard) const;
};

// The shell preamble sent by the default init_shell: no echo, no prompts, no colours, no
// line editing or history (bash), and, with terminal_setup, a terminal that passes bytes
// unchanged (stty: no echo, no output processing, no line editor, no flow control).
std::string default_shell_preamble(bool terminal_setup = true);

// The argv of a one-shot exec, in the shell's pod, that sends SIGINT (hard: SIGKILL) to
// every descendant of `shell_pid` (found through /proc), never to the shell itself. It
// exits 0 when it signalled something and 3 when nothing was running. For providers with
// a side channel (Docker, Kubernetes) to interrupt a pipe shell's command.
std::vector<std::string> interrupt_children_argv(long shell_pid, bool hard);

// Registry of provider factories by name ("plaintty", "local", …) used to turn a
// (provider name, URL) pair into an endpoint. Users may add their own.
class ProviderCatalog {
 public:
  using Factory = std::shared_ptr<ProviderInterface> (*)();
  static ProviderCatalog& instance();
  void add(std::string name, std::shared_ptr<ProviderInterface> provider);
  std::shared_ptr<ProviderInterface> get(std::string_view name) const;  // nullptr if unknown
  std::vector<std::string> names() const;
  // Picks a provider from a URL scheme: local:// → local, ws(s):// → plaintty.
  std::shared_ptr<ProviderInterface> for_url(std::string_view url) const;

 private:
  ProviderCatalog();
  std::map<std::string, std::shared_ptr<ProviderInterface>, std::less<>> providers_;
};

// Builds an endpoint from a URL with the given (or URL-implied) provider.
PodEndpoint endpoint_from_url(std::string_view url, std::shared_ptr<ProviderInterface> provider = {});

}  // namespace pw

#pragma once
// PodSession: one persistent shell on one pod. Commands are serialised per session;
// completion is detected with a per-command random sentinel carrying $? (sentinel.hpp),
// whose nonce the command itself cannot read.
#include <podwrangler/asio_fwd.hpp>
#include <podwrangler/model.hpp>
#include <podwrangler/provider.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pw {

struct SessionOptions {
  bool auto_reconnect = false;
  double connect_timeout = DEFAULT_CONNECT_TIMEOUT;  // seconds
  double command_timeout = DEFAULT_COMMAND_TIMEOUT;  // seconds, default for run()
  int max_reconnect_attempts = MAX_RECONNECT_ATTEMPTS;
  double reconnect_backoff_base = RECONNECT_BACKOFF_BASE;  // seconds: base, 2·base, 4·base …
  std::size_t max_output_bytes = DEFAULT_MAX_OUTPUT_BYTES;
  std::string namespace_;  // overrides detection when set
};

class PodSession {
 public:
  PodSession(Executor ex, PodEndpoint endpoint, SessionOptions options = {});
  static PodSession from_url(Executor ex, std::string_view url, std::shared_ptr<ProviderInterface> provider = {},
                             SessionOptions options = {});
  ~PodSession();  // closes the connection
  PodSession(PodSession&&) noexcept;
  PodSession& operator=(PodSession&&) noexcept;

  // Opens the transport, initialises the shell and syncs with it. Throws
  // PodConnectionError (after the reconnect attempts when auto_reconnect is on).
  Task<void> connect();
  Task<void> close();
  // Ends the transport at once, without waiting for a running command (which then
  // fails with PodConnectionError); the session is closed after. Call it on the
  // session's executor. For shutdowns past their grace.
  void abort() noexcept;
  bool connected() const noexcept;

  // Runs one command. Throws PodCommandTimeoutError (with the partial output) when it
  // does not finish in time: the command is interrupted (SIGINT, then SIGKILL after a
  // short grace; Ctrl-C, then Ctrl-\ on a remote terminal) and the same shell goes on
  // with its working directory and variables; where the provider cannot reach the
  // command, the shell is replaced and the error says so (session_reset()). Also throws
  // PodConnectionError / PodNotConnectedError, and with check=true PodCommandError on a
  // non-zero exit code. CommandResult::output holds exactly the bytes the command wrote.
  Task<CommandResult> run(std::string command, std::optional<double> timeout = {}, bool check = false);
  // Runs commands in order. A failing command (non-zero exit, timeout, connection
  // error) is recorded in its result; with stop_on_error the sequence stops there.
  Task<std::vector<CommandResult>> run_many(std::vector<std::string> commands, std::optional<double> timeout_each = {},
                                            bool stop_on_error = false);
  // Like run() but never throws for pod-side failures: errors land in result.error.
  Task<CommandResult> try_run(std::string command, std::optional<double> timeout = {});

  // Namespace of the pod: options, identity, then the provider's detection.
  Task<std::string> detect_namespace();

  const PodEndpoint& endpoint() const noexcept;
  const SessionOptions& options() const noexcept;
  std::string label() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace pw

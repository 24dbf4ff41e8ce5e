#pragma once
// Blocking facade for callers without an event loop (scripts, CLI helpers, tests).
// A process-wide runtime thread drives the io_context; calls block the caller.
// Calling these from inside the runtime's own thread throws (it would deadlock).
#include <podwrangler/registry.hpp>
#include <podwrangler/session.hpp>

#include <memory>

namespace pw {

class BlockingSession {
 public:
  explicit BlockingSession(PodEndpoint endpoint, SessionOptions options = {});
  static BlockingSession from_url(std::string_view url, std::shared_ptr<ProviderInterface> provider = {},
                                  SessionOptions options = {});
  ~BlockingSession();
  BlockingSession(BlockingSession&&) noexcept;

  void connect();
  void close();
  CommandResult run(const std::string& command, std::optional<double> timeout = {}, bool check = false);
  std::vector<CommandResult> run_many(const std::vector<std::string>& commands, std::optional<double> timeout_each = {},
                                      bool stop_on_error = false);

 private:
  std::unique_ptr<PodSession> session_;
};

std::vector<CommandResult> fan_out_sync(const PodRegistry& registry, const std::vector<std::string>& aliases,
                                        const std::string& command, FanOutOptions options = {});

// The runtime's executor, for mixing blocking and async use.
Executor runtime_executor();

}  // namespace pw

#include <podwrangler/blocking.hpp>
#include <podwrangler/loop_thread.hpp>

namespace pw {

namespace {

// The process-wide loop of the blocking facade, started on first use.
LoopThread& runtime() {
  static LoopThread loop;
  return loop;
}

}  // namespace

Executor runtime_executor() { return runtime().executor(); }

BlockingSession::BlockingSession(PodEndpoint endpoint, SessionOptions options)
    : session_(std::make_unique<PodSession>(runtime_executor(), std::move(endpoint), std::move(options))) {}

BlockingSession BlockingSession::from_url(std::string_view url, std::shared_ptr<ProviderInterface> provider,
                                          SessionOptions options) {
  return BlockingSession(endpoint_from_url(url, std::move(provider)), std::move(options));
}

BlockingSession::~BlockingSession() = default;
BlockingSession::BlockingSession(BlockingSession&&) noexcept = default;

void BlockingSession::connect() { runtime().block_on(session_->connect()); }
void BlockingSession::close() { runtime().block_on(session_->close()); }

CommandResult BlockingSession::run(const std::string& command, std::optional<double> timeout, bool check) {
  return runtime().block_on(session_->run(command, timeout, check));
}

std::vector<CommandResult> BlockingSession::run_many(const std::vector<std::string>& commands,
                                                     std::optional<double> timeout_each, bool stop_on_error) {
  return runtime().block_on(session_->run_many(commands, timeout_each, stop_on_error));
}

std::vector<CommandResult> fan_out_sync(const PodRegistry& registry, const std::vector<std::string>& aliases,
                                        const std::string& command, FanOutOptions options) {
  return runtime().block_on(registry.fan_out(aliases, command, std::move(options)));
}

}  // namespace pw

#include <podwrangler/blocking.hpp>
#include <podwrangler/errors.hpp>

#include <utility>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <thread>

namespace pw {

namespace {

class Runtime {
 public:
  static Runtime& instance() {
    static Runtime rt;
    return rt;
  }
  Executor executor() { return io_.get_executor(); }
  bool in_runtime_thread() const { return std::this_thread::get_id() == thread_.get_id(); }

  template <class T>
  T block_on(Task<T> task) {
    if (in_runtime_thread())
      throw PodClientError("blocking call made from the runtime thread (would deadlock)");
    return asio::co_spawn(io_, std::move(task), asio::use_future).get();
  }

  ~Runtime() {
    guard_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

 private:
  // OpenSSL is initialised before this object is complete, so its atexit cleanup runs
  // after ~Runtime() has joined the thread; the thread frees its OpenSSL state itself.
  Runtime()
      : openssl_ready_(OPENSSL_init_ssl(0, nullptr) == 1),
        guard_(asio::make_work_guard(io_)),
        thread_([this] {
          io_.run();
          OPENSSL_thread_stop();
        }) {}
  bool openssl_ready_;
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
};

}  // namespace

Executor runtime_executor() { return Runtime::instance().executor(); }

BlockingSession::BlockingSession(PodEndpoint endpoint, SessionOptions options)
    : session_(std::make_unique<PodSession>(runtime_executor(), std::move(endpoint), std::move(options))) {}

BlockingSession BlockingSession::from_url(std::string_view url, std::shared_ptr<ProviderInterface> provider,
                                          SessionOptions options) {
  return BlockingSession(endpoint_from_url(url, std::move(provider)), std::move(options));
}

BlockingSession::~BlockingSession() = default;
BlockingSession::BlockingSession(BlockingSession&&) noexcept = default;

void BlockingSession::connect() { Runtime::instance().block_on(session_->connect()); }
void BlockingSession::close() { Runtime::instance().block_on(session_->close()); }

CommandResult BlockingSession::run(const std::string& command, std::optional<double> timeout,
                                   bool check) {
  return Runtime::instance().block_on(session_->run(command, timeout, check));
}

std::vector<CommandResult> BlockingSession::run_many(const std::vector<std::string>& commands,
                                                     std::optional<double> timeout_each,
                                                     bool stop_on_error) {
  return Runtime::instance().block_on(session_->run_many(commands, timeout_each, stop_on_error));
}

std::vector<CommandResult> fan_out_sync(const PodRegistry& registry,
                                        const std::vector<std::string>& aliases,
                                        const std::string& command, FanOutOptions options) {
  return Runtime::instance().block_on(registry.fan_out(aliases, command, std::move(options)));
}

}  // namespace pw

#include "embedded_server/runtime.hpp"

#include <utility>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <iostream>
#include <thread>

namespace pw::server {

struct ServerLoop::Impl {
  Impl() : openssl_ready(OPENSSL_init_ssl(0, nullptr) == 1), guard(asio::make_work_guard(io)) {
    thread = std::thread([this] {
      io.run();
      OPENSSL_thread_stop();
    });
  }
  bool openssl_ready;
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard;
  std::thread thread;
};

ServerLoop::ServerLoop() : impl_(std::make_unique<Impl>()) {}

ServerLoop::~ServerLoop() { stop(); }

void ServerLoop::stop() {
  impl_->guard.reset();
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

Executor ServerLoop::executor() { return impl_->io.get_executor(); }

// The awaitable is made here and handed to co_spawn by value: GCC 12 releases a closure
// passed to co_spawn's function overload twice (seen as a use-after-free under ASan).
void ServerLoop::block_on(std::function<Task<void>()> work) {
  asio::co_spawn(impl_->io, work(), asio::use_future).get();
}

void ServerLoop::spawn(std::function<Task<void>()> work) {
  asio::co_spawn(
      impl_->io, work(),
      [](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          std::cerr << "podwrangler serve: background task failed: " << ex.what() << "\n";
        }
      });
}

bool ServerLoop::wait_idle(std::chrono::steady_clock::time_point deadline) {
  while (in_flight_->load() > 0) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace pw::server

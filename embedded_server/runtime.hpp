#pragma once
// The server's event loop: one io_context thread that drives every PodSession, plus
// the bookkeeping graceful shutdown needs (commands in flight, draining, hard stop).
// httplib worker threads hand coroutines to it and wait (block_on) or stream results.
#include <podwrangler/asio_fwd.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>

namespace pw::server {

class ServerLoop {
 public:
  ServerLoop();
  ~ServerLoop();  // stop(), then frees the loop
  // Stops the loop and joins its thread (sessions may then be destroyed; the loop's
  // objects stay valid until the ServerLoop is destroyed).
  void stop();
  ServerLoop(const ServerLoop&) = delete;
  ServerLoop& operator=(const ServerLoop&) = delete;

  Executor executor();
  // Runs the task `work()` makes on the loop and blocks the calling (non-loop) thread
  // until it is done; rethrows what it threw. `work` stays alive until then, so it may
  // be a coroutine lambda capturing by reference.
  void block_on(std::function<Task<void>()> work);
  // Runs the task `work()` makes on the loop without waiting; what it throws is logged.
  // `work` is gone when this returns: it must return the task of a function whose
  // parameters own what it needs (not a capturing coroutine lambda).
  void spawn(std::function<Task<void>()> work);

  // Commands in flight (counted by the exec routes with InFlight).
  int in_flight() const noexcept { return in_flight_->load(); }
  // No new commands are accepted once draining.
  bool draining() const noexcept { return draining_.load(); }
  void set_draining() noexcept { draining_.store(true); }
  // Past the shutdown grace: commands still running are recorded `interrupted`.
  bool hard_stopped() const noexcept { return hard_stop_.load(); }
  void set_hard_stop() noexcept { hard_stop_.store(true); }
  // Waits until no command is in flight or the deadline passes; true when none is.
  bool wait_idle(std::chrono::steady_clock::time_point deadline);

  // Scope guard counting one command in flight. It shares the counter, so it may
  // outlive the ServerLoop (a stream's state released after the server stopped).
  class InFlight {
   public:
    explicit InFlight(ServerLoop& rt) : count_(rt.in_flight_) { count_->fetch_add(1); }
    ~InFlight() { count_->fetch_sub(1); }
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;

   private:
    std::shared_ptr<std::atomic<int>> count_;
  };

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::shared_ptr<std::atomic<int>> in_flight_ = std::make_shared<std::atomic<int>>(0);
  std::atomic<bool> draining_{false};
  std::atomic<bool> hard_stop_{false};
};

}  // namespace pw::server

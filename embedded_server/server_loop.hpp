#pragma once
// The server's event loop: the LoopThread that drives every PodSession, plus the
// bookkeeping graceful shutdown needs (commands in flight, draining, hard stop).
// HTTP worker threads hand coroutines to it and wait (block_on) or stream results (spawn).
#include <podwrangler/loop_thread.hpp>

#include <atomic>
#include <chrono>
#include <memory>

namespace pw::server {

class ServerLoop : public LoopThread {
 public:
  ServerLoop();  // what a spawned task throws is logged to stderr

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
    explicit InFlight(ServerLoop& loop) : count_(loop.in_flight_) { count_->fetch_add(1); }
    ~InFlight() { count_->fetch_sub(1); }
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;

   private:
    std::shared_ptr<std::atomic<int>> count_;
  };

 private:
  std::shared_ptr<std::atomic<int>> in_flight_ = std::make_shared<std::atomic<int>>(0);
  std::atomic<bool> draining_{false};
  std::atomic<bool> hard_stop_{false};
};

}  // namespace pw::server

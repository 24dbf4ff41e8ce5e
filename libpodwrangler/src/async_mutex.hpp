#pragma once
// A FIFO mutex for coroutines on one (single-threaded or strand) executor.
#include <podwrangler/asio_fwd.hpp>

#include <utility>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <deque>
#include <memory>

namespace pw::detail {

class AsyncMutex {
 public:
  explicit AsyncMutex(Executor ex) : ex_(ex) {}

  class Guard {
   public:
    explicit Guard(AsyncMutex* m) : m_(m) {}
    Guard(Guard&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
    Guard& operator=(Guard&&) = delete;
    ~Guard() {
      if (m_) m_->unlock();
    }

   private:
    AsyncMutex* m_;
  };

  Task<Guard> lock() {
    if (!locked_) {
      locked_ = true;
      co_return Guard(this);
    }
    auto t = std::make_shared<asio::steady_timer>(ex_, asio::steady_timer::time_point::max());
    waiters_.push_back(t);
    boost::system::error_code ec;
    co_await t->async_wait(asio::redirect_error(asio::use_awaitable_t<Executor>{}, ec));
    co_return Guard(this);  // ownership was handed over by unlock()
  }

  void unlock() {
    if (waiters_.empty()) {
      locked_ = false;
      return;
    }
    auto t = waiters_.front();
    waiters_.pop_front();
    t->cancel();
  }

 private:
  Executor ex_;
  bool locked_ = false;
  std::deque<std::shared_ptr<asio::steady_timer>> waiters_;
};

}  // namespace pw::detail

#pragma once
// ConnectionPool<Conn>: the database connections a store shares between worker threads.
// At most `max` exist; idle ones are reused last in, first out; callers wait while all are
// taken. The store decides, through the predicates it passes, which idle connection may be
// reused and which returned one may be kept (both run under the pool's lock).
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

namespace pw::server::detail {

template <class Conn>
class ConnectionPool {
 public:
  explicit ConnectionPool(int max) : max_(max) {}

  // An idle connection that `reusable` accepts (the others are closed), else a new one
  // from `open` while fewer than max exist, else waits. `*reused` tells which.
  template <class Reusable, class Open>
  std::unique_ptr<Conn> acquire(Reusable&& reusable, Open&& open, bool* reused = nullptr) {
    std::unique_lock lk(mu_);
    while (true) {
      while (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        if (!reusable(*c)) {
          --created_;
          continue;  // closed when c goes out of scope
        }
        if (reused) *reused = true;
        return c;
      }
      if (created_ < max_) break;
      cv_.wait(lk);
    }
    ++created_;
    lk.unlock();
    if (reused) *reused = false;
    try {
      return open();
    } catch (...) {
      lk.lock();
      --created_;
      cv_.notify_one();
      throw;
    }
  }

  // Gives a connection back: kept for reuse when `keep(*c)` says so, else closed.
  template <class Keep>
  void release(std::unique_ptr<Conn> c, Keep&& keep) {
    {
      std::lock_guard lk(mu_);
      if (c && keep(*c)) {
        idle_.push_back(std::move(c));
      } else {
        c.reset();
        --created_;
      }
    }
    cv_.notify_one();
  }

 private:
  const int max_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Conn>> idle_;
  int created_ = 0;
};

}  // namespace pw::server::detail

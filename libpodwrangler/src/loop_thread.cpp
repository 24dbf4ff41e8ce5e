#include <podwrangler/errors.hpp>
#include <podwrangler/loop_thread.hpp>

#include <utility>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <condition_variable>
#include <iostream>
#include <mutex>
#include <thread>
#include <unordered_set>

namespace pw {

namespace {

// A caller blocked in block_on. Finished once: by the task's completion, or by stop()
// when the loop ended before the task did.
struct Waiter {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::exception_ptr error;

  void finish(std::exception_ptr e) {
    {
      std::lock_guard lk(mu);
      if (done) return;
      done = true;
      error = std::move(e);
    }
    cv.notify_all();
  }
  // Takes the error out: the Waiter may be destroyed on the loop thread afterwards.
  std::exception_ptr wait() {
    std::unique_lock lk(mu);
    cv.wait(lk, [this] { return done; });
    return std::move(error);
  }
};

}  // namespace

struct LoopThread::Impl {
  explicit Impl(ErrorHandler handler)
      : openssl_ready(OPENSSL_init_ssl(0, nullptr) == 1),
        on_error(handler ? std::move(handler) : log_to_stderr("podwrangler")),
        guard(asio::make_work_guard(io)) {
    thread = std::thread([this] { run(); });
  }

  void run() {
    current = this;
    // A handler that throws leaves run() with the exception; the loop goes on afterwards.
    for (;;) {
      try {
        io.run();
        break;
      } catch (...) {
        report(std::current_exception());
      }
    }
    // The thread frees its own OpenSSL state (the exit-time cleanup does not see it).
    OPENSSL_thread_stop();
  }

  void report(std::exception_ptr e) noexcept {
    try {
      on_error(std::move(e));
    } catch (...) {
    }
  }

  // False once stop() or join() began. A waiter (may be null) is registered in the same
  // step, so stop() either refuses the call or finds the waiter after the join.
  bool admit(const std::shared_ptr<Waiter>& w) {
    std::lock_guard lk(mu);
    if (closed) return false;
    if (w) waiters.insert(w);
    return true;
  }

  // Joins the thread (`join_mu` held), then fails every caller still blocked.
  void finish_thread() {
    if (thread.joinable()) thread.join();
    std::unordered_set<std::shared_ptr<Waiter>> left;
    {
      std::lock_guard lk(mu);
      left.swap(waiters);
    }
    for (auto& w : left) {
      // Made whole before it is handed over: the temporary's message is shared with the
      // copy by libstdc++'s reference count, which TSan does not see.
      std::exception_ptr stopped =
          std::make_exception_ptr(PodClientError("the event loop stopped before the blocking call's task finished"));
      w->finish(std::move(stopped));
    }
  }

  static thread_local const Impl* current;

  bool openssl_ready;
  ErrorHandler on_error;
  asio::io_context io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
  std::mutex mu;
  bool closed = false;
  std::unordered_set<std::shared_ptr<Waiter>> waiters;
  std::mutex join_mu;  // one stop()/join() at a time
  std::thread thread;
};

thread_local const LoopThread::Impl* LoopThread::Impl::current = nullptr;

LoopThread::ErrorHandler LoopThread::log_to_stderr(std::string who) {
  return [who = std::move(who)](std::exception_ptr e) {
    try {
      std::rethrow_exception(std::move(e));
    } catch (const std::exception& ex) {
      std::cerr << who << ": background task failed: " << ex.what() << "\n";
    } catch (...) {
      std::cerr << who << ": background task failed\n";
    }
  };
}

LoopThread::LoopThread(ErrorHandler on_error) : impl_(std::make_unique<Impl>(std::move(on_error))) {}

LoopThread::~LoopThread() { stop(); }

Executor LoopThread::executor() const { return impl_->io.get_executor(); }

bool LoopThread::in_loop_thread() const noexcept { return Impl::current == impl_.get(); }

void LoopThread::run_blocking(Task<void> task) {
  if (in_loop_thread()) throw PodClientError("blocking call made from the event loop's own thread (would deadlock)");
  auto waiter = std::make_shared<Waiter>();
  if (!impl_->admit(waiter)) throw PodClientError("the event loop is stopped");
  auto* io = &impl_->io;
  asio::co_spawn(*io, std::move(task), [waiter, io](std::exception_ptr e) {
    if (!e) return waiter->finish(nullptr);
    // co_spawn still holds copies of `e` until its frame ends, right after this returns.
    // The error is handed over from a later handler, so the caller's copy is the last one
    // and the exception object dies on the caller's thread, not on the loop while the
    // caller may still be reading it (libstdc++'s reference count is not visible to TSan).
    asio::post(*io, [waiter, e = std::move(e)]() mutable { waiter->finish(std::move(e)); });
  });
  std::exception_ptr error = waiter->wait();
  {
    std::lock_guard lk(impl_->mu);
    impl_->waiters.erase(waiter);
  }
  if (error) std::rethrow_exception(error);
}

void LoopThread::spawn(Task<void> task) {
  if (!impl_->admit(nullptr)) throw PodClientError("the event loop is stopped");
  Impl* impl = impl_.get();
  asio::co_spawn(impl->io, std::move(task), [impl](std::exception_ptr e) {
    if (e) impl->report(std::move(e));
  });
}

void LoopThread::stop() {
  {
    std::lock_guard lk(impl_->mu);
    impl_->closed = true;
  }
  impl_->io.stop();
  // The loop's own thread cannot join itself: it returns from run() once this handler
  // ends, and whoever stops or destroys the LoopThread next joins it.
  if (in_loop_thread()) return;
  std::lock_guard lk(impl_->join_mu);
  impl_->guard.reset();
  impl_->finish_thread();
}

void LoopThread::join() {
  if (in_loop_thread()) throw PodClientError("join() called from the event loop's own thread (would deadlock)");
  {
    std::lock_guard lk(impl_->mu);
    impl_->closed = true;
  }
  std::lock_guard lk(impl_->join_mu);
  impl_->guard.reset();
  impl_->finish_thread();
}

}  // namespace pw

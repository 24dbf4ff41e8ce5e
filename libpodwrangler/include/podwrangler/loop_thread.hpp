#pragma once
// LoopThread: one thread running one io_context. The blocking facade, the server's session
// loop and its HTTP front end each own one; nothing else in the project starts a loop.
//
// - executor(): where sessions, sockets and timers bound to this loop live.
// - block_on(task): runs the task on the loop and blocks the calling thread until it ends,
//   returning its value or rethrowing what it threw. Called from the loop's own thread it
//   throws PodClientError instead of deadlocking.
// - spawn(task): starts the task without waiting; what it throws goes to the error handler.
// - stop(): ends the loop at once (queued work is not run) and joins the thread; join():
//   lets the loop run until it has no work left, then joins. Either way a caller still
//   blocked in block_on gets PodClientError, later block_on/spawn calls throw it at once,
//   and objects bound to the executor stay valid until the LoopThread is destroyed.
#include <podwrangler/asio_fwd.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>

namespace pw {

class LoopThread {
 public:
  // Told what a spawned task threw (or a handler run on the loop let escape); runs on the
  // loop thread, which then goes on. Without one: log_to_stderr("podwrangler").
  using ErrorHandler = std::function<void(std::exception_ptr)>;
  // Writes "<who>: background task failed: <what>" to stderr.
  static ErrorHandler log_to_stderr(std::string who);

  // Starts the thread (OpenSSL is initialised first, so a static LoopThread is destroyed
  // before OpenSSL's exit-time cleanup runs).
  explicit LoopThread(ErrorHandler on_error = {});
  ~LoopThread();  // stop(); never on the loop's own thread
  LoopThread(const LoopThread&) = delete;
  LoopThread& operator=(const LoopThread&) = delete;

  Executor executor() const;
  // True on the loop's own thread (inside a task or handler it runs).
  bool in_loop_thread() const noexcept;

  template <class T>
  T block_on(Task<T> task) {
    if constexpr (std::is_void_v<T>) {
      run_blocking(std::move(task));
    } else {
      std::optional<T> out;
      auto stored = store(std::move(task), out);
      run_blocking(std::move(stored));
      return std::move(*out);
    }
  }
  // Runs the task `work()` makes. `work` lives until the task has ended, so it may be a
  // coroutine lambda capturing by reference.
  template <class F>
  requires std::is_invocable_v<F&>
  auto block_on(F&& work) { return block_on(work()); }

  void spawn(Task<void> task);
  // Starts the task `work()` makes. `work` is gone when this returns: it must make the
  // task of a function whose parameters own what it uses (not a capturing coroutine lambda).
  template <class F>
  requires std::is_invocable_r_v<Task<void>, F&> void spawn(F&& work) { spawn(work()); }

  // Both are thread-safe and idempotent. stop() from the loop thread only ends the loop
  // (the thread is joined later); join() from it throws.
  void stop();
  void join();

 private:
  template <class T>
  static Task<void> store(Task<T> task, std::optional<T>& out) {
    T value = co_await std::move(task);
    out.emplace(std::move(value));
  }
  void run_blocking(Task<void> task);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pw

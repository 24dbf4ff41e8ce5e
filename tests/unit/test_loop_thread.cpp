// Unit tests for libpodwrangler/src/loop_thread.cpp: block_on results and exceptions, the
// deadlock check on the loop's own thread, stop() and join() with work still pending,
// spawn and the error handler.
#include <doctest/doctest.h>
#include <podwrangler/errors.hpp>
#include <podwrangler/loop_thread.hpp>

#include <utility>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

using namespace pw;
using namespace std::chrono_literals;

namespace {

constexpr auto use_aw = asio::use_awaitable_t<Executor>{};

Task<void> sleep_for(std::chrono::milliseconds d) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer t(ex, d);
  boost::system::error_code ec;
  co_await t.async_wait(asio::redirect_error(use_aw, ec));
}

Task<int> answer_later(int v) {
  co_await sleep_for(5ms);
  co_return v;
}

Task<void> fail_later(std::string message) {
  co_await sleep_for(5ms);
  throw std::runtime_error(message);
}

// Waits on a timer that never fires; `alive` is released when the frame is destroyed.
Task<void> wait_forever(std::shared_ptr<int> alive, std::promise<void>* started) {
  std::shared_ptr<int> owned = std::move(alive);
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer t(ex, std::chrono::steady_clock::time_point::max());
  started->set_value();
  boost::system::error_code ec;
  co_await t.async_wait(asio::redirect_error(use_aw, ec));
}

Task<void> set_after(std::chrono::milliseconds d, std::atomic<bool>* flag) {
  co_await sleep_for(d);
  flag->store(true);
}

Task<void> tell_thread(const LoopThread* loop, std::promise<bool>* ran) {
  ran->set_value(loop->in_loop_thread());
  co_return;
}

// Collects what the error handler is given.
struct Errors {
  std::mutex mu;
  std::vector<std::string> messages;
  std::promise<void> first;
  bool signalled = false;

  LoopThread::ErrorHandler handler() {
    return [this](std::exception_ptr e) {
      std::lock_guard lk(mu);
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        messages.emplace_back(ex.what());
      }
      if (!signalled) {
        signalled = true;
        first.set_value();
      }
    };
  }
};

}  // namespace

TEST_CASE("block_on returns the task's value, computed on the loop thread") {
  LoopThread loop;
  CHECK_FALSE(loop.in_loop_thread());
  CHECK(loop.block_on(answer_later(42)) == 42);

  bool on_loop = false;
  int got = loop.block_on([&]() -> Task<int> {
    on_loop = loop.in_loop_thread();
    int v = co_await answer_later(7);
    co_return v * 6;
  });
  CHECK(got == 42);
  CHECK(on_loop);

  // Move-only results come back whole.
  auto p =
      loop.block_on([]() -> Task<std::unique_ptr<std::string>> { co_return std::make_unique<std::string>("moved"); });
  REQUIRE(p);
  CHECK(*p == "moved");
}

TEST_CASE("block_on rethrows what the task threw, with its type") {
  LoopThread loop;
  CHECK_THROWS_WITH_AS(loop.block_on(fail_later("boom")), "boom", std::runtime_error);
  CHECK_THROWS_AS(loop.block_on([]() -> Task<int> {
    co_await sleep_for(1ms);
    throw PodNotConnectedError("gone");
  }),
                  PodNotConnectedError);
  // The loop goes on after a failed task.
  CHECK(loop.block_on(answer_later(1)) == 1);
}

TEST_CASE("block_on from the loop's own thread throws instead of deadlocking") {
  LoopThread loop;
  std::string message;
  bool threw = loop.block_on([&]() -> Task<bool> {
    bool caught = false;
    try {
      loop.block_on(answer_later(1));
    } catch (const PodClientError& e) {
      caught = true;
      message = e.what();
    }
    co_return caught;
  });
  CHECK(threw);
  CHECK(message.find("would deadlock") != std::string::npos);

  // join() there would wait for itself: refused the same way.
  bool join_refused = loop.block_on([&]() -> Task<bool> {
    bool caught = false;
    try {
      loop.join();
    } catch (const PodClientError&) {
      caught = true;
    }
    co_return caught;
  });
  CHECK(join_refused);

  // Another loop may be blocked on from inside this one.
  LoopThread other;
  int v = loop.block_on([&]() -> Task<int> { co_return other.block_on(answer_later(5)); });
  CHECK(v == 5);
}

TEST_CASE("stop() with work pending: blocked callers get an error, frames are freed") {
  auto loop = std::make_unique<LoopThread>();
  auto alive = std::make_shared<int>(1);
  std::weak_ptr<int> watch = alive;

  std::promise<void> started;
  auto started_f = started.get_future();
  std::promise<std::string> outcome;
  auto outcome_f = outcome.get_future();
  std::thread caller([&, alive = std::move(alive)]() mutable {
    try {
      loop->block_on(wait_forever(std::move(alive), &started));
      outcome.set_value("returned");
    } catch (const PodClientError& e) {
      outcome.set_value(e.what());
    }
  });
  started_f.wait();
  CHECK(outcome_f.wait_for(50ms) == std::future_status::timeout);
  loop->stop();
  CHECK(outcome_f.get().find("stopped") != std::string::npos);
  caller.join();

  // Stopped: new work is refused at once, stop() again is a no-op.
  CHECK_THROWS_AS(loop->block_on(answer_later(1)), PodClientError);
  CHECK_THROWS_AS(loop->spawn(sleep_for(1ms)), PodClientError);
  loop->stop();
  loop->join();
  // The waiting frame (and what it owns) goes with the loop.
  CHECK_FALSE(watch.expired());
  loop.reset();
  CHECK(watch.expired());
}

TEST_CASE("stop() from two threads at once joins once") {
  LoopThread loop;
  std::atomic<bool> flag{false};
  loop.spawn(set_after(1ms, &flag));
  std::thread a([&] { loop.stop(); });
  std::thread b([&] { loop.stop(); });
  a.join();
  b.join();
  CHECK_THROWS_AS(loop.block_on(answer_later(1)), PodClientError);
}

TEST_CASE("join() lets pending work finish first") {
  LoopThread loop;
  std::atomic<bool> flag{false};
  loop.spawn(set_after(30ms, &flag));
  loop.join();
  CHECK(flag.load());
  CHECK_THROWS_AS(loop.spawn(sleep_for(1ms)), PodClientError);
}

TEST_CASE("spawn runs the task on the loop; what it throws goes to the error handler") {
  Errors errors;
  auto first = errors.first.get_future();
  LoopThread loop(errors.handler());

  std::promise<bool> ran;
  auto ran_f = ran.get_future();
  loop.spawn(tell_thread(&loop, &ran));
  CHECK(ran_f.get());

  loop.spawn([]() { return fail_later("spawned failure"); });
  REQUIRE(first.wait_for(5s) == std::future_status::ready);

  // A plain handler that throws is reported too, and the loop keeps running.
  asio::post(loop.executor(), [] { throw std::runtime_error("handler failure"); });
  CHECK(loop.block_on(answer_later(3)) == 3);
  loop.stop();
  std::lock_guard lk(errors.mu);
  REQUIRE(errors.messages.size() == 2);
  CHECK(errors.messages[0] == "spawned failure");
  CHECK(errors.messages[1] == "handler failure");
}

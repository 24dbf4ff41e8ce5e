// LocalProvider: a real PTY shell on this machine.
#include "session_suite.hpp"

#include <podwrangler/providers/local.hpp>

#include <utility>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>

using namespace pw;

TEST_CASE("local PTY session behaves like every session") {
  testing::common_session_suite([](SessionOptions o) { return BlockingSession::from_url("local://", {}, o); });
}

TEST_CASE("local PTY session caps output") {
  testing::output_cap_suite([](SessionOptions o) { return BlockingSession::from_url("local://", {}, o); });
}

TEST_CASE("local pod options: shell and cwd") {
  auto s = BlockingSession::from_url("local://box?shell=/bin/bash&cwd=/usr");
  s.connect();
  CHECK(s.run("pwd").output == "/usr\n");
  CHECK(s.run("echo $BASH_VERSION | cut -c1").output.size() == 2);
}

TEST_CASE("a missing local shell is a clear connection error") {
  auto s = BlockingSession::from_url("local://x?shell=/nonexistent/sh");
  CHECK_THROWS_WITH_AS(s.connect(), doctest::Contains("/nonexistent/sh"), PodConnectionError);
}

TEST_CASE("running before connect raises PodNotConnectedError") {
  auto s = BlockingSession::from_url("local://");
  CHECK_THROWS_AS(s.run("true"), PodNotConnectedError);
}

TEST_CASE("a command that ends the shell reports its status; the next one gets a new shell") {
  auto s = BlockingSession::from_url("local://");
  s.connect();
  auto r = s.run("echo bye; exit 3");
  CHECK(r.output == "bye\n");
  CHECK(r.exit_code == 3);
  CHECK(s.run("echo back").output == "back\n");
  // exec replaces the shell: no EXIT trap runs, so the status is unknown and the
  // session reports the lost shell instead of inventing one.
  CHECK_THROWS_AS(s.run("exec true"), PodConnectionError);
  CHECK_THROWS_AS(s.run("echo again"), PodNotConnectedError);
  s.connect();
  CHECK(s.run("echo again").output == "again\n");
}

TEST_CASE("Ctrl-C recovery keeps the shell (cwd survives a timeout on a PTY)") {
  auto s = BlockingSession::from_url("local://");
  s.connect();
  s.run("cd /tmp");
  CHECK_THROWS_AS(s.run("sleep 30", 0.3), PodCommandTimeoutError);
  CHECK(s.run("pwd").output == "/tmp\n");
}

TEST_CASE("concurrent runs on one session are serialised, each gets its own output") {
  boost::asio::io_context io(1);
  std::vector<std::string> outs(20);
  auto task = [&]() -> Task<void> {
    auto ex = co_await boost::asio::this_coro::executor;
    PodSession s = PodSession::from_url(ex, "local://");
    co_await s.connect();
    co_await for_each_bounded(outs.size(), outs.size(), [&](std::size_t i) -> Task<void> {
      auto r = co_await s.run("sleep 0.0$((RANDOM % 3)); echo " + std::to_string(i));
      outs[i] = r.output;
    });
    co_await s.close();
  };
  auto fut = boost::asio::co_spawn(io, task(), boost::asio::use_future);
  io.run();
  fut.get();
  for (std::size_t i = 0; i < outs.size(); ++i) CHECK(outs[i] == std::to_string(i) + "\n");
}

namespace {
// A provider whose shell keeps echo on and prints prompts: the session must still
// return clean output (echo is detected at connect and stripped).
class NoisyLocal : public LocalProvider {
 public:
  Task<void> init_shell(Connection& conn, const WssSchema&) const override {
    co_await conn.write("PS1='$ '\n");
  }
};
}  // namespace

TEST_CASE("a terminal that echoes input and prints a prompt still gives clean output") {
  auto s = BlockingSession::from_url("local://noisy", std::make_shared<NoisyLocal>());
  s.connect();
  auto r = s.run("echo hi");
  CHECK(r.output == "hi\n");
  CHECK(r.exit_code == 0);
  auto r2 = s.run("printf 'a\\tb'; exit_code=3; (exit $exit_code)");
  CHECK(r2.output == "a\tb");
  CHECK(r2.exit_code == 3);
}

TEST_CASE("terminal control sequences: titles and cursor moves go, colours stay") {
  auto s = BlockingSession::from_url("local://");
  s.connect();
  CHECK(s.run("printf '\\033]0;a title\\007hello\\033[2K\\n'").output == "hello\n");
  CHECK(s.run("printf '\\033[31mred\\033[0m'").output == "\x1b[31mred\x1b[0m");
}

// LocalProvider: a real PTY shell on this machine.
#include "session_suite.hpp"

#include <podwrangler/providers/local.hpp>

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

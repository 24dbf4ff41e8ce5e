#pragma once
// The behaviour every shell-backed session must show, whatever the transport:
// shared by the websocketd (TLS, PTY and pipe) and the local PTY tests.
#include <doctest/doctest.h>
#include <podwrangler/blocking.hpp>
#include <podwrangler/errors.hpp>

#include <functional>
#include <string>
#include <utility>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

namespace pw::testing {

// Runs one task to completion on a private io_context.
template <class T>
T block(Task<T> t) {
  boost::asio::io_context io(1);
  auto f = boost::asio::co_spawn(io, std::move(t), boost::asio::use_future);
  io.run();
  return f.get();
}

inline void common_session_suite(const std::function<BlockingSession(SessionOptions)>& make) {
  SessionOptions opts;
  opts.command_timeout = 10;
  BlockingSession s = make(opts);
  s.connect();

  SUBCASE("run returns output and exit code") {
    auto r = s.run("echo hello; echo world");
    CHECK(r.output == "hello\nworld\n");
    CHECK(r.exit_code == 0);
    CHECK(r.succeeded());
    CHECK(r.duration > 0);
  }
  SUBCASE("exit codes") {
    CHECK(s.run("false").exit_code == 1);
    CHECK(s.run("sh -c 'exit 3'").exit_code == 3);
    CHECK(s.run("(exit 255)").exit_code == 255);
    CHECK(s.run("true").exit_code == 0);
  }
  SUBCASE("stderr is part of the output") {
    auto r = s.run("echo out; echo err >&2; exit 4");
    CHECK(r.output.find("out\n") != std::string::npos);
    CHECK(r.output.find("err\n") != std::string::npos);
    CHECK(r.exit_code == 4);
  }
  SUBCASE("output without a trailing newline is kept") {
    CHECK(s.run("printf abc").output == "abc");
    CHECK(s.run("printf ''").output == "");
    CHECK(s.run("printf 'a\\n\\n'").output == "a\n\n");
  }
  SUBCASE("quotes, unbalanced quotes and multi-line commands") {
    CHECK(s.run("echo 'it'\"'\"'s'").output == "it's\n");
    auto bad = s.run("echo 'unterminated");
    CHECK(bad.exit_code != 0);
    CHECK(s.run("for i in 1 2 3; do\n echo $i\ndone").output == "1\n2\n3\n");
  }
  SUBCASE("a fake sentinel in the output does not end the command") {
    auto r = s.run("printf '\\036PWdeadbeefdeadbeef:0\\036\\n'; echo after");
    CHECK(r.output.find("after") != std::string::npos);
  }
  SUBCASE("shell state persists between commands") {
    s.run("cd /tmp");
    CHECK(s.run("pwd").output == "/tmp\n");
    s.run("export PW_X=42");
    CHECK(s.run("echo $PW_X").output == "42\n");
  }
  SUBCASE("commands do not read the session's input") {
    auto r = s.run("cat; echo done");
    CHECK(r.output == "done\n");
  }
  SUBCASE("large output") {
    auto r = s.run("head -c 300000 /dev/zero | tr '\\0' a; echo");
    CHECK(r.output.size() == 300001);
    CHECK(!r.truncated);
  }
  SUBCASE("commands longer than a terminal line (4096 bytes)") {
    std::string word(6000, 'x');
    auto r = s.run("echo " + word + " | wc -c");
    CHECK(r.output.find("6001") != std::string::npos);
    CHECK(r.exit_code == 0);
  }
  SUBCASE("check=true raises PodCommandError") {
    try {
      s.run("echo oops; exit 7", std::nullopt, true);
      FAIL("no exception");
    } catch (const PodCommandError& e) {
      CHECK(e.exit_code() == 7);
      CHECK(e.output().find("oops") != std::string::npos);
    }
  }
  SUBCASE("timeout returns partial output and the session stays usable") {
    try {
      s.run("echo partial; sleep 30", 0.5);
      FAIL("no timeout");
    } catch (const PodCommandTimeoutError& e) {
      CHECK(e.timeout() == doctest::Approx(0.5));
      CHECK(e.output().find("partial") != std::string::npos);
    }
    auto r = s.run("echo next");
    CHECK(r.output == "next\n");
    CHECK(r.exit_code == 0);
  }
  SUBCASE("run_many with and without stop_on_error") {
    auto all = s.run_many({"echo a", "false", "echo c"}, 5.0, false);
    REQUIRE(all.size() == 3);
    CHECK(all[0].output == "a\n");
    CHECK(!all[1].succeeded());
    CHECK(all[2].output == "c\n");
    auto stopped = s.run_many({"echo a", "false", "echo c"}, 5.0, true);
    CHECK(stopped.size() == 2);
  }
  SUBCASE("run_many records a timeout and goes on") {
    auto rs = s.run_many({"sleep 30", "echo after"}, 0.5, false);
    REQUIRE(rs.size() == 2);
    CHECK(rs[0].error.has_value());
    CHECK(rs[1].output == "after\n");
  }
  s.close();
}

inline void output_cap_suite(const std::function<BlockingSession(SessionOptions)>& make) {
  SessionOptions opts;
  opts.max_output_bytes = 1000;
  BlockingSession s = make(opts);
  s.connect();
  auto r = s.run("head -c 200000 /dev/zero | tr '\\0' b; echo; exit 5");
  CHECK(r.truncated);
  CHECK(r.output.size() == 1000);
  CHECK(r.exit_code == 5);
  CHECK(s.run("echo small").output == "small\n");
}

}  // namespace pw::testing

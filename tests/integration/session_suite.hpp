#pragma once
// The behaviour every shell-backed session must show, whatever the transport:
// shared by the websocketd (TLS, PTY and pipe) and the local PTY tests.
#include <doctest/doctest.h>
#include <podwrangler/blocking.hpp>
#include <podwrangler/errors.hpp>

#include <fcntl.h>
#include <openssl/evp.h>

#include <utility>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <set>
#include <string>

namespace pw::testing {

// Runs one task to completion on a private io_context.
// SHA-256 of `data`, lower-case hex.
inline std::string sha256_hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REQUIRE(EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) == 1);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 0xF]);
  }
  return out;
}

// The descriptors of this process that a spawned program would inherit (no FD_CLOEXEC).
inline std::set<int> inheritable_fds() {
  std::set<int> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    int fd = std::stoi(e.path().filename().string());
    int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC)) out.insert(fd);
  }
  return out;
}

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

// Runs `command` into a 0.5 s timeout and returns the seconds it cost beyond the timeout.
// `kept`: the command must be interrupted and the same shell go on (no session_reset, and
// the message does not speak of a replaced shell); otherwise the result must say that the
// shell was replaced.
inline double time_out(BlockingSession& s, const std::string& command, bool kept) {
  auto t0 = std::chrono::steady_clock::now();
  try {
    s.run(command, 0.5);
    FAIL("no timeout for: " << command);
  } catch (const PodCommandTimeoutError& e) {
    CAPTURE(command);
    CHECK(e.session_reset() == !kept);
    CHECK((std::string(e.what()).find("shell was replaced") != std::string::npos) == !kept);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() - 0.5;
}

// After a timeout the running command is interrupted (SIGINT, then SIGKILL) and the SAME
// shell is kept: its working directory and variables survive, and the recovery costs
// well under the old 2 s. With builtin_loops, also a loop that runs inside the shell
// itself (only an interactive shell on a terminal can abandon it).
inline void timeout_keeps_shell_suite(const std::function<BlockingSession(SessionOptions)>& make, bool builtin_loops) {
  SessionOptions opts;
  opts.command_timeout = 10;
  BlockingSession s = make(opts);
  // How long past its timeout a command may take to be ended: far below the 30 s these
  // commands would run, with room for a loaded machine (the interrupt, then SIGKILL after
  // a short grace). How fast it is, is measured by bench/, not asserted here.
  constexpr double kPromptly = 5.0;
  s.connect();
  s.run("cd /tmp; X=1");
  auto state = [&] { return s.run("pwd; echo $X").output; };
  CHECK(time_out(s, "sleep 30", true) < kPromptly);
  CHECK(state() == "/tmp\n1\n");
  // A command that ignores SIGINT: SIGKILL after a short grace.
  CHECK(time_out(s, "trap '' INT; sleep 30", true) < kPromptly);
  CHECK(state() == "/tmp\n1\n");
  s.run("trap - INT");
  CHECK(time_out(s, "sh -c 'trap \"\" INT; sleep 30; echo never'", true) < kPromptly);
  CHECK(state() == "/tmp\n1\n");
  if (builtin_loops) {
    CHECK(time_out(s, "while :; do :; done", true) < kPromptly);
    CHECK(state() == "/tmp\n1\n");
    CHECK(time_out(s, "while :; do sleep 1; done", true) < kPromptly);
    CHECK(state() == "/tmp\n1\n");
  }
  s.close();
}

}  // namespace pw::testing

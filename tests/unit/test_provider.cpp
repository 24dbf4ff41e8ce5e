// Unit tests for libpodwrangler/src/provider.cpp: the shell preamble, the default
// interrupt of a timed-out command, and the one-shot script that signals a shell's children.
#include <doctest/doctest.h>
#include <podwrangler/errors.hpp>
#include <podwrangler/provider.hpp>
#include <podwrangler/sentinel.hpp>

#include <utility>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace pw;

extern char** environ;

namespace {

template <class T>
T block(Task<T> t) {
  boost::asio::io_context io(1);
  auto f = boost::asio::co_spawn(io, std::move(t), boost::asio::use_future);
  io.run();
  return f.get();
}

// A connection that records what is written and can or cannot interrupt by itself.
class FakeConnection final : public Connection {
 public:
  explicit FakeConnection(bool can_interrupt) : can_interrupt_(can_interrupt) {}
  Task<void> connect(std::chrono::milliseconds) override { co_return; }
  Task<void> write(std::string_view data) override {
    written.append(data);
    co_return;
  }
  Task<bool> read(std::string&) override { co_return false; }
  Task<bool> interrupt(bool hard) override {
    calls.push_back(hard);
    co_return can_interrupt_;
  }
  void close() noexcept override {}
  bool is_tty() const noexcept override { return true; }
  std::string describe() const override { return "fake"; }

  std::string written;
  std::vector<bool> calls;

 private:
  bool can_interrupt_;
};

class PlainProvider : public ProviderInterface {
 public:
  std::string name() const override { return "plain"; }
  ConnectionSpec build_connection_spec(const PodIdentity&, const SecretString&) const override { return {}; }
  std::pair<PodIdentity, SecretString> parse_url(std::string_view) const override { return {}; }
};

Task<bool> interrupt_with(const ProviderInterface& p, Connection& c, bool tty, bool hard) {
  PodIdentity id;
  SecretString token;
  co_return co_await p.interrupt(c, id, token, 1234, tty, hard);
}

pid_t spawn(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  REQUIRE(::posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), environ) == 0);
  return pid;
}

int wait_exit(pid_t pid) {
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// The direct children of `pid` (the kernel's list).
std::string children_of(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children";
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return {};
  char buf[256] = {};
  std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  return std::string(buf, n);
}

}  // namespace

TEST_SUITE_BEGIN("provider");

TEST_CASE("fidelity: the default preamble switches off the terminal's output processing and line editing") {
  std::string p = default_shell_preamble();
  for (const char* flag : {"-echo", "-opost", "-onlcr", "-ixon", "-icanon"}) {
    CAPTURE(flag);
    CHECK(p.find(flag) != std::string::npos);
  }
  CHECK(p.find("set +o history +o emacs +o vi") != std::string::npos);  // bash: no readline, no history
  CHECK(p.find("HISTFILE") != std::string::npos);
  CHECK(p.back() == '\n');
  std::string local = default_shell_preamble(false);
  CHECK(local.find("stty") == std::string::npos);
  CHECK(local.find("PS1=''") != std::string::npos);
  // It runs in a plain POSIX shell without complaint.
  for (const std::string& pre : {p, local}) {
    std::string cmd = "/bin/sh -c " + shell_quote(pre) + " 2>&1 </dev/null | grep -q . && exit 1 || exit 0";
    CHECK(std::system(cmd.c_str()) == 0);
  }
}

TEST_CASE("security: the default interrupt asks the transport, then a terminal, never a pipe") {
  PlainProvider p;
  FakeConnection able(true);
  CHECK(block(interrupt_with(p, able, true, false)));
  CHECK(able.written.empty());  // the transport did it (a local PTY signals the job)
  FakeConnection tty(false);
  CHECK(block(interrupt_with(p, tty, true, false)));
  CHECK(block(interrupt_with(p, tty, true, true)));
  CHECK(tty.written == "\x03\x1c");  // Ctrl-C, then Ctrl-\ .
  CHECK(tty.calls == std::vector<bool>{false, true});
  FakeConnection pipe(false);
  CHECK_FALSE(block(interrupt_with(p, pipe, false, false)));
  CHECK(pipe.written.empty());  // a byte on a pipe shell would be a command
}

TEST_CASE("security: interrupt_children_argv refuses pid 0 and 1 (never the whole machine)") {
  CHECK_THROWS_AS(interrupt_children_argv(1, false), PodConfigValidationError);
  CHECK_THROWS_AS(interrupt_children_argv(0, true), PodConfigValidationError);
  CHECK_THROWS_AS(interrupt_children_argv(-5, true), PodConfigValidationError);
  // The script refuses too, on its own: checked with its kill replaced by an echo.
  auto argv = interrupt_children_argv(2, false);
  REQUIRE(argv.size() == 6);
  CHECK(argv[0] == "/bin/sh");
  CHECK(argv[4] == "2");
  CHECK(argv[5] == "INT");
  CHECK(interrupt_children_argv(2, true)[5] == "KILL");
  std::string dry = argv[2];
  auto k = dry.find("kill -s");
  REQUIRE(k != std::string::npos);
  dry.replace(k, 7, "echo DRY");
  for (const char* bad : {"1", "0", "", "abc", "-1", "1 2"}) {
    CAPTURE(bad);
    pid_t pid = spawn({"/bin/sh", "-c", dry, "pw-interrupt", bad, "INT"});
    CHECK(wait_exit(pid) == 3);
  }
}

TEST_CASE("security: interrupt_children_argv signals every descendant of the shell, never the shell") {
  // A shell of our own with a child, a grandchild, and a job in the background.
  pid_t shell = spawn({"/bin/sh", "-c", "sleep 30 & sh -c 'sleep 31; true' & wait; exit 7"});
  for (int i = 0; i < 200; ++i) {
    std::string kids = children_of(shell);
    if (std::count(kids.begin(), kids.end(), ' ') >= 2) break;  // "p1 p2 "
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto argv = interrupt_children_argv(shell, true);
  pid_t killer = spawn(argv);
  CHECK(wait_exit(killer) == 0);
  // Its children gone, the shell itself ends normally after its `wait`.
  CHECK(wait_exit(shell) == 7);
  // Nothing left to signal below a shell without children (posix_spawn returns once the
  // shell is exec'd, and its loop never forks).
  pid_t lone = spawn({"/bin/sh", "-c", "while :; do :; done"});  // killed below
  pid_t none = spawn(interrupt_children_argv(lone, true));
  CHECK(wait_exit(none) == 3);
  ::kill(lone, SIGKILL);
  wait_exit(lone);
}

TEST_SUITE_END();

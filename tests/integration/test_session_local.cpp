// LocalProvider: a real PTY shell on this machine.
#include "session_suite.hpp"

#include <podwrangler/providers/local.hpp>

#include "../support/fixtures.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

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

TEST_CASE("a timeout on a PTY keeps the shell (cwd survives)") {
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
  Task<void> init_shell(Connection& conn, const ConnectionSpec&) const override {
    co_await conn.write("stty echo; PS1='$ '\n");
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

TEST_CASE("fidelity: terminal control sequences are output like any other bytes") {
  // They used to be filtered out as "terminal noise"; what a command prints is its output.
  auto s = BlockingSession::from_url("local://");
  s.connect();
  CHECK(s.run("printf '\\033]0;a title\\007hello\\033[2K\\n'").output == "\x1b]0;a title\x07hello\x1b[2K\n");
  CHECK(s.run("printf '\\033[31mred\\033[0m'").output == "\x1b[31mred\x1b[0m");
  CHECK(s.run("printf 'a\\r\\nb\\r\\n'").output == "a\r\nb\r\n");
}

namespace {

std::string random_bytes(std::size_t n) {
  std::string s(n, '\0');
  REQUIRE(RAND_bytes(reinterpret_cast<unsigned char*>(s.data()), static_cast<int>(n)) == 1);
  return s;
}

void write_file(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  REQUIRE(out.good());
}

}  // namespace

TEST_CASE("fidelity: all 256 byte values round-trip through a local session") {
  testing::TempDir dir;
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  write_file(dir.file("all.bin"), all);
  auto s = BlockingSession::from_url("local://");
  s.connect();
  auto r = s.run("cat " + dir.file("all.bin"));
  CHECK(r.output.size() == 256);
  CHECK(r.output == all);
  CHECK(testing::sha256_hex(r.output) == testing::sha256_hex(all));
  CHECK_FALSE(r.truncated);
  // printf of each value, written as octal escapes.
  std::string fmt;
  for (int c = 0; c < 256; ++c) {
    char esc[8];
    std::snprintf(esc, sizeof esc, "\\%03o", c);
    fmt += esc;
  }
  auto p = s.run("printf '" + fmt + "'");
  CHECK(p.output == all);
  // And the command text itself reaches the shell byte for byte (no ^C, ^S, ^Z, ^\ ...).
  std::string controls;
  for (int c = 1; c < 32; ++c)
    if (c != '\n' && c != '\'') controls.push_back(static_cast<char>(c));
  auto q = s.run("printf '%s' '" + controls + "' | od -An -tx1 | tr -d ' \\n'");
  std::string expect;
  for (char c : controls) {
    char h[3];
    std::snprintf(h, sizeof h, "%02x", static_cast<unsigned char>(c));
    expect += h;
  }
  CHECK(q.output == expect);
}

TEST_CASE("fidelity: a 1 MiB random blob round-trips byte for byte (SHA-256)") {
  testing::TempDir dir;
  const std::string blob = random_bytes(1 << 20);
  write_file(dir.file("blob"), blob);
  SessionOptions o;
  o.max_output_bytes = 2u << 20;
  auto s = BlockingSession::from_url("local://", {}, o);
  s.connect();
  auto r = s.run("cat " + dir.file("blob"), 60.0);
  CHECK(r.exit_code == 0);
  CHECK(r.output.size() == blob.size());
  CHECK(testing::sha256_hex(r.output) == testing::sha256_hex(blob));
  CHECK_FALSE(r.truncated);
  // 1,000,000 random bytes from the pod's own generator: nothing lost either.
  auto m = s.run(
      "head -c 1000000 /dev/urandom | tee " + dir.file("u") + "; sha256sum " + dir.file("u") + " >" + dir.file("u.sum"),
      60.0);
  CHECK(m.output.size() == 1000000);
  CHECK_FALSE(m.truncated);
  CHECK(testing::read_file(dir.file("u.sum")).substr(0, 64) == testing::sha256_hex(m.output));
}

TEST_CASE("fidelity: truncated is true exactly when bytes were dropped") {
  testing::TempDir dir;
  const std::string blob = random_bytes(5000);
  write_file(dir.file("blob"), blob);
  SessionOptions o;
  o.max_output_bytes = 1000;
  auto s = BlockingSession::from_url("local://", {}, o);
  s.connect();
  auto under = s.run("head -c 999 " + dir.file("blob"));
  CHECK(under.output == blob.substr(0, 999));
  CHECK_FALSE(under.truncated);
  auto at = s.run("head -c 1000 " + dir.file("blob"));
  CHECK(at.output == blob.substr(0, 1000));
  CHECK_FALSE(at.truncated);
  auto over = s.run("head -c 1001 " + dir.file("blob"));
  CHECK(over.output == blob.substr(0, 1000));
  CHECK(over.truncated);
  auto big = s.run("cat " + dir.file("blob") + "; exit_code=6; (exit $exit_code)");
  CHECK(big.output == blob.substr(0, 1000));
  CHECK(big.truncated);
  CHECK(big.exit_code == 6);
}

TEST_CASE("security: local shell starts with only fds 0/1/2") {
  // This process holds descriptors a careless spawn would pass on: a listening socket,
  // a connected pair, a pipe and a file, all without close-on-exec.
  testing::TempDir dir;
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(listener >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(listener, 4) == 0);
  int pair[2], pipefd[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
  REQUIRE(::pipe(pipefd) == 0);
  int file = ::open(dir.file("secret-file").c_str(), O_CREAT | O_RDWR, 0600);
  REQUIRE(file >= 0);
  for (const char* shell : {"/bin/sh", "/bin/bash"}) {
    CAPTURE(shell);
    auto s = BlockingSession::from_url(std::string("local://fds?shell=") + shell);
    s.connect();
    // A child of the shell: 0, 1, 2 and the directory ls itself reads.
    CHECK(s.run("ls /proc/self/fd | tr '\\n' ' '").output == "0 1 2 3 ");
    // The shell: nothing but its terminal (and what the shell opens itself, all on the tty).
    auto shell_fds = s.run("ls -l /proc/$$/fd").output;
    CHECK(shell_fds.find("socket:") == std::string::npos);
    CHECK(shell_fds.find("pipe:") == std::string::npos);
    CHECK(shell_fds.find("secret-file") == std::string::npos);
    CHECK(shell_fds.find("/dev/pts/") != std::string::npos);
  }
  for (int fd : {listener, pair[0], pair[1], pipefd[0], pipefd[1], file}) ::close(fd);
}

TEST_CASE("security: every descriptor a local session opens is close-on-exec") {
  auto before = testing::inheritable_fds();
  auto s = BlockingSession::from_url("local://");
  s.connect();
  CHECK(s.run("echo up").output == "up\n");
  CHECK(testing::inheritable_fds() == before);
}

TEST_CASE("security: a local shell's environment is clean (no PODWRANGLER_* nor anything else of ours)") {
  ::setenv("PODWRANGLER_API_KEY", "api-key-1f2e3d4c5b6a", 1);
  ::setenv("PODWRANGLER_SECRET_KEY", "secret-key-9a8b7c6d5e4f", 1);
  ::setenv("PODWRANGLER_DATABASE_URL", "postgresql://u:pw-5e6f7a@db/x", 1);
  ::setenv("FOO", "foo-value-0d1c2b3a", 1);
  ::setenv("ENV", "/tmp/should-not-be-sourced", 1);
  ::setenv("BASH_ENV", "/tmp/should-not-be-sourced", 1);
  for (const char* shell : {"/bin/sh", "/bin/bash"}) {
    CAPTURE(shell);
    auto s = BlockingSession::from_url(std::string("local://env?shell=") + shell);
    s.connect();
    std::string env = s.run("env; cat /proc/$$/environ | tr '\\0' '\\n'").output;
    for (const char* leaked : {"PODWRANGLER", "api-key-1f2e3d4c5b6a", "secret-key-9a8b7c6d5e4f", "pw-5e6f7a",
                               "FOO=", "foo-value-0d1c2b3a", "should-not-be-sourced"}) {
      CAPTURE(leaked);
      CHECK(env.find(leaked) == std::string::npos);
    }
    // The documented set.
    struct passwd* pwent = ::getpwuid(::geteuid());
    REQUIRE(pwent != nullptr);
    std::string environ0 = s.run("cat /proc/$$/environ | tr '\\0' '\\n' | sort").output;
    std::string expected = "HOME=" + std::string(pwent->pw_dir) + "\nLANG=C.UTF-8\nLOGNAME=" + pwent->pw_name +
                           "\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nSHELL=" + shell +
                           "\nTERM=dumb\nUSER=" + pwent->pw_name + "\n";
    CHECK(environ0 == expected);
  }
  for (const char* k :
       {"PODWRANGLER_API_KEY", "PODWRANGLER_SECRET_KEY", "PODWRANGLER_DATABASE_URL", "FOO", "ENV", "BASH_ENV"})
    ::unsetenv(k);
}

TEST_CASE("security: signals blocked or ignored in this process do not reach the pod's commands") {
  // The shell is forked by the thread that runs the session: here, this one.
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  REQUIRE(::pthread_sigmask(SIG_BLOCK, &block, &old) == 0);
  auto prev = std::signal(SIGPIPE, SIG_IGN);
  auto task = []() -> Task<std::string> {
    auto ex = co_await boost::asio::this_coro::executor;
    PodSession s = PodSession::from_url(ex, "local://");
    co_await s.connect();
    auto r = co_await s.run("grep -E '^Sig(Blk|Ign):' /proc/self/status");
    // SIGPIPE still ends a writer whose reader went away.
    auto y = co_await s.run("yes | head -1");
    co_await s.close();
    co_return r.output + y.output;
  };
  std::string out = testing::block(task());
  std::signal(SIGPIPE, prev);
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  CHECK(out == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\ny\n");
}

TEST_CASE("security: a timeout keeps the same local shell (cwd and variables survive)") {
  testing::timeout_keeps_shell_suite([](SessionOptions o) { return BlockingSession::from_url("local://", {}, o); },
                                     true);
  testing::timeout_keeps_shell_suite(
      [](SessionOptions o) { return BlockingSession::from_url("local://b?shell=/bin/bash", {}, o); }, true);
}

TEST_CASE("security: where the local shell cannot be kept, the timeout says so (session_reset)") {
  auto s = BlockingSession::from_url("local://");
  s.connect();
  s.run("cd /tmp; X=1");
  // The shell itself ignores SIGINT and is busy: only killing it would stop the loop.
  double extra = testing::time_out(s, "trap '' INT; while :; do :; done", false);
  CHECK(extra < 3.0);
  CHECK(s.run("echo \"[$X]\"").output == "[]\n");  // a fresh shell
  auto r = s.run_many({"trap '' INT; while :; do :; done"}, 0.5).at(0);
  CHECK(r.error.has_value());
  CHECK(r.session_reset);
  auto ok = s.run_many({"echo fine"}).at(0);
  CHECK(ok.output == "fine\n");
  CHECK_FALSE(ok.session_reset);
}

TEST_CASE("security: a command cannot read or forge the sentinel (local PTY)") {
  for (const char* shell : {"/bin/sh", "/bin/bash"}) {
    CAPTURE(shell);
    auto s = BlockingSession::from_url(std::string("local://forge?shell=") + shell);
    s.connect();
    const std::regex nonce_re("PW([0-9a-f]{32})");
    // Nothing the command can look at holds a nonce.
    std::string looked =
        s.run(
             "echo \"n=$__pw_n\"; set; env; trap; export -p; cat /proc/$$/environ /proc/$$/cmdline | tr '\\0' '\\n'; "
             "history 2>/dev/null; fc -l 2>/dev/null; echo \"$BASH_COMMAND\"")
            .output;
    CHECK(looked.find("n=\n") != std::string::npos);
    CHECK_FALSE(std::regex_search(looked, nonce_re));
    // Earlier nonces, as `set -x` shows them once used.
    s.run("set -x");
    std::string traced = s.run("echo two").output;
    s.run("set +x");
    std::smatch m;
    REQUIRE(std::regex_search(traced, m, nonce_re));
    const std::string old_nonce = m[1];
    const std::string forge =
        "printf '\\036PW%s:0\\036\\n' \"$__pw_n\"; "
        "printf '\\036PW" +
        old_nonce +
        ":0\\036\\n'; "
        "for n in $(set; trap; history 2>/dev/null); do case $n in *PW*) printf \"\\036$n:0\\036\\n\";; esac; done; "
        "printf '\\036PWX:0\\036\\n'; "
        "sleep 0.3; echo late; exit_code=7; (exit $exit_code)";
    auto r = s.run(forge);
    CHECK(r.exit_code == 7);
    CHECK(r.output.find("late\n") != std::string::npos);
    CHECK(r.output.rfind("late\n") == r.output.size() - 5);
    CHECK_FALSE(r.session_reset);
    auto next = s.run("echo next");
    CHECK(next.output == "next\n");
    CHECK(next.output.find("late") == std::string::npos);
  }
}

TEST_CASE("a command that ends the shell while its job holds the terminal still reports its status") {
  auto s = BlockingSession::from_url("local://");
  s.connect();
  auto t0 = std::chrono::steady_clock::now();
  auto r = s.run("sleep 1 & echo bye; exit 4", 10.0);
  CHECK(r.exit_code == 4);
  CHECK(r.output == "bye\n");
  CHECK(r.session_reset);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(900));
  CHECK(s.run("echo back").output == "back\n");
}

// The shell's last output is read before its end is reported, however far the reader lags:
// our copy of the terminal stays open until the shell has gone and the terminal is quiet,
// so the kernel never reports the end (EIO) with output still buffered. The loop makes the
// output outrun the reader each time (more than the terminal's buffers hold).
TEST_CASE("a shell that ends right after a large output loses none of it (status and tail kept)") {
  SessionOptions opts;
  opts.max_output_bytes = 4096;
  auto s = BlockingSession::from_url("local://", {}, opts);
  for (int i = 0; i < 20; ++i) {
    CAPTURE(i);
    s.connect();
    auto r = s.run("head -c 300000 /dev/zero | tr '\\0' b; echo; exit 7");
    CHECK(r.exit_code == 7);
    CHECK(r.truncated);
    CHECK(r.session_reset);
  }
}

TEST_CASE("a local shell killed while idle is reported as lost, and connect gives a new one") {
  auto s = BlockingSession::from_url("local://");
  s.connect();
  std::string pid = s.run("echo $$").output;
  REQUIRE(!pid.empty());
  pid.pop_back();
  REQUIRE(::kill(std::stoi(pid), SIGKILL) == 0);
  // Not connected (the reader saw the end first) or lost while sending: either way the
  // cause is named, and no output of a dead shell is taken for the command's.
  CHECK_THROWS_WITH_AS(s.run("echo hi"), doctest::Contains("killed by signal 9"), PodClientError);
  s.connect();
  CHECK(s.run("echo hi").output == "hi\n");
}

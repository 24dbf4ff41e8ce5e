#pragma once
// Test fixtures that start real components (websocketd, openssl) on loopback and end
// them by PID. Shared by the integration tests and the benchmark programs.
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace pw::testing {

// A fresh directory under $TMPDIR, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// False in an AddressSanitizer build: ASan keeps freed blocks in a quarantine (256 MiB by
// default) and maps shadow memory, so a process's RSS there says nothing about what the code
// holds. Memory bounds are asserted in the release build and only reported under ASan.
constexpr bool rss_is_meaningful() {
#if defined(__SANITIZE_ADDRESS__)
  return false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return false;
#else
  return true;
#endif
#else
  return true;
#endif
}

// A free TCP port on 127.0.0.1 (bound then released).
int free_port();
// Waits until something accepts TCP connections on 127.0.0.1:port.
bool wait_for_port(int port, std::chrono::milliseconds timeout);
// Polls `done` every 10 ms until it returns true or `timeout` passes; returns its last
// answer. Tests wait on the condition they need with it, never for a fixed time.
template <class Pred>
bool wait_until(Pred done, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= end) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}
// Reads a whole file ("" if missing).
std::string read_file(const std::string& path);
// Runs a shell command line, returns its exit status; output goes to `log` if given.
int sh(const std::string& command_line);

// A child process started with posix_spawn, stdout+stderr appended to `log_path`.
// stop() sends SIGTERM, then SIGKILL after a grace period, to that PID only.
class Process {
 public:
  Process() = default;
  Process(std::vector<std::string> argv, const std::string& log_path);
  ~Process();
  Process(Process&& o) noexcept;
  Process& operator=(Process&& o) noexcept;
  int pid() const { return pid_; }
  bool running() const;
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));
  void kill_now();  // SIGKILL

 private:
  int pid_ = -1;
};

// A CA and a server certificate for 127.0.0.1/localhost, made with the openssl CLI.
struct TestPki {
  std::string ca_cert, server_cert, server_key;
  std::string other_ca_cert;  // an unrelated CA: verification against it must fail
};
TestPki make_test_pki(const TempDir& dir);

// websocketd in front of a program, on 127.0.0.1:port, optionally with TLS.
class Websocketd {
 public:
  Websocketd(const TempDir& dir, std::vector<std::string> program, const TestPki* tls, int port = 0, int max_forks = 0);
  int port() const { return port_; }
  std::string url(const std::string& path) const;  // ws[s]://127.0.0.1:port + path
  void stop() { proc_.stop(); }
  void kill_now() { proc_.kill_now(); }
  void restart();
  int pid() const { return proc_.pid(); }

 private:
  void start();
  std::string log_;
  std::vector<std::string> argv_;
  int port_;
  bool tls_;
  Process proc_;
};

// The Kubernetes API test server (tests/fixtures/k8s_fixture) on 127.0.0.1, TLS with the
// given PKI, bearer `token`; default pods web-1, web-2 (app=web), done (Succeeded), debug.
class K8sFixture {
 public:
  K8sFixture(const TempDir& dir, const TestPki& pki, std::string token, const std::string& binary);
  int port() const { return port_; }
  std::string server() const { return "https://127.0.0.1:" + std::to_string(port_); }
  void kill_now() { proc_.kill_now(); }

 private:
  std::string log_;
  Process proc_;
  int port_ = 0;
};

// The PTY shell the PlainTTY tests use: a real terminal via script(1).
std::vector<std::string> pty_shell_program();
// A plain pipe shell (no terminal).
std::vector<std::string> pipe_shell_program();

}  // namespace pw::testing

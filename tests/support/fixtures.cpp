#include "fixtures.hpp"

#include <utility>
#include <arpa/inet.h>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <netinet/in.h>
#include <spawn.h>
#include <sstream>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace pw::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/pwtest.XXXXXX";
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    throw std::runtime_error("bind failed");
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

bool wait_for_port(int port, std::chrono::milliseconds timeout) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::close(fd);
    if (rc == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int sh(const std::string& command_line) {
  int rc = std::system(command_line.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

Process::Process(std::vector<std::string> argv, const std::string& log_path) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0]);
  pid_ = pid;
}

Process::~Process() { stop(std::chrono::milliseconds(500)); }

Process::Process(Process&& o) noexcept : pid_(std::exchange(o.pid_, -1)) {}
Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    stop();
    pid_ = std::exchange(o.pid_, -1);
  }
  return *this;
}

bool Process::running() const {
  if (pid_ <= 0) return false;
  int status = 0;
  return ::waitpid(pid_, &status, WNOHANG) == 0;
}

void Process::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  auto end = std::chrono::steady_clock::now() + grace;
  int status = 0;
  while (std::chrono::steady_clock::now() < end) {
    if (::waitpid(pid_, &status, WNOHANG) != 0) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill_now();
}

void Process::kill_now() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

TestPki make_test_pki(const TempDir& dir) {
  TestPki p;
  p.ca_cert = dir.file("ca.crt");
  p.server_cert = dir.file("server.crt");
  p.server_key = dir.file("server.key");
  p.other_ca_cert = dir.file("other-ca.crt");
  std::string d = dir.path().string();
  std::string cmd = "set -e; cd '" + d +
                    "'; "
                    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
                    "  -subj '/CN=podwrangler test CA' -keyout ca.key -out ca.crt 2>/dev/null; "
                    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
                    "  -subj '/CN=unrelated CA' -keyout other-ca.key -out other-ca.crt 2>/dev/null; "
                    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                    "  -subj '/CN=localhost' -keyout server.key -out server.csr 2>/dev/null; "
                    "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > ext.cnf; "
                    "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
                    "  -extfile ext.cnf -out server.crt 2>/dev/null";
  if (sh(cmd) != 0) throw std::runtime_error("openssl failed to make the test PKI");
  return p;
}

Websocketd::Websocketd(const TempDir& dir, std::vector<std::string> program, const TestPki* tls, int port,
                       int max_forks)
    : log_(dir.file("websocketd-" + std::to_string(free_port()) + ".log")),
      port_(port ? port : free_port()),
      tls_(tls != nullptr) {
  argv_ = {"websocketd", "--port=" + std::to_string(port_), "--address=127.0.0.1", "--loglevel=error"};
  if (max_forks > 0) argv_.push_back("--maxforks=" + std::to_string(max_forks));
  if (tls) {
    argv_.push_back("--ssl");
    argv_.push_back("--sslcert=" + tls->server_cert);
    argv_.push_back("--sslkey=" + tls->server_key);
  }
  for (auto& p : program) argv_.push_back(p);
  start();
}

void Websocketd::start() {
  proc_ = Process(argv_, log_);
  if (!wait_for_port(port_, std::chrono::seconds(10)))
    throw std::runtime_error("websocketd did not start: " + read_file(log_));
}

void Websocketd::restart() {
  proc_.stop();
  start();
}

std::string Websocketd::url(const std::string& path) const {
  return std::string(tls_ ? "wss" : "ws") + "://127.0.0.1:" + std::to_string(port_) + path;
}

K8sFixture::K8sFixture(const TempDir& dir, const TestPki& pki, std::string token, const std::string& binary)
    : log_(dir.file("k8s-fixture-" + std::to_string(free_port()) + ".log")) {
  proc_ = Process(
      {binary, "--port", "0", "--cert", pki.server_cert, "--key", pki.server_key, "--token", std::move(token)}, log_);
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < end) {
    std::string log = read_file(log_);
    auto p = log.find("listening 127.0.0.1:");
    if (p != std::string::npos && log.find('\n', p) != std::string::npos) {
      port_ = std::stoi(log.substr(p + 20));
      return;
    }
    if (!proc_.running()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw std::runtime_error("k8s fixture did not start: " + read_file(log_));
}

std::vector<std::string> pty_shell_program() { return {"script", "-qfc", "/bin/sh", "/dev/null"}; }
std::vector<std::string> pipe_shell_program() { return {"/bin/sh"}; }

}  // namespace pw::testing

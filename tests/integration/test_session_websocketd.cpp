// PlainTTY sessions against a real websocketd (TLS with a CA made here, and plain ws),
// in front of a real PTY shell (script -qfc /bin/sh) and of a plain pipe shell.
#include "../support/fixtures.hpp"
#include "session_suite.hpp"

#include <podwrangler/providers/plaintty.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

using namespace pw;
using namespace pw::testing;

namespace {
constexpr const char* kToken = "s3cr3t-token-value-9f8e7d";

struct Env {
  TempDir dir;
  TestPki pki = make_test_pki(dir);
};
Env& env() {
  static Env e;
  return e;
}

std::string plaintty_url(const Websocketd& w) {
  return w.url(std::string("/exec/45582/?token=") + kToken + "&cols=220&pod=my-app-deploy-abc12-xyz99");
}

// Whether this process still has a TCP connection to 127.0.0.1:port that it has not closed
// (established, or closed only by the peer).
bool connected_to(int port) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string slot, local, remote, state;
    f >> slot >> local >> remote >> state;
    auto colon = remote.find(':');
    if (colon == std::string::npos) continue;
    if (std::stoi(remote.substr(colon + 1), nullptr, 16) != port) continue;
    if (state == "01" || state == "08") return true;  // ESTABLISHED, CLOSE_WAIT
  }
  return false;
}

std::shared_ptr<PlainTTYProvider> provider_with_ca(const std::string& ca) {
  TlsOptions tls;
  tls.ca_file = ca;
  return std::make_shared<PlainTTYProvider>(220, tls);
}
}  // namespace

TEST_CASE("websocketd+TLS, PTY shell: the common session suite") {
  Websocketd w(env().dir, pty_shell_program(), &env().pki);
  auto p = provider_with_ca(env().pki.ca_cert);
  common_session_suite([&](SessionOptions o) { return BlockingSession::from_url(plaintty_url(w), p, o); });
  output_cap_suite([&](SessionOptions o) { return BlockingSession::from_url(plaintty_url(w), p, o); });
}

TEST_CASE("websocketd+TLS, pipe shell: the common session suite") {
  Websocketd w(env().dir, pipe_shell_program(), &env().pki);
  auto p = provider_with_ca(env().pki.ca_cert);
  common_session_suite([&](SessionOptions o) { return BlockingSession::from_url(plaintty_url(w), p, o); });
}

TEST_CASE("websocketd without TLS (ws://)") {
  Websocketd w(env().dir, pty_shell_program(), nullptr);
  auto s = BlockingSession::from_url(plaintty_url(w));
  s.connect();
  CHECK(s.run("echo plain").output == "plain\n");
}

TEST_CASE("TLS verification: wrong CA, system store, explicit insecure mode") {
  Websocketd w(env().dir, pty_shell_program(), &env().pki);
  SUBCASE("an unrelated CA is refused with a clear error") {
    auto s = BlockingSession::from_url(plaintty_url(w), provider_with_ca(env().pki.other_ca_cert));
    try {
      s.connect();
      FAIL("connected with the wrong CA");
    } catch (const PodConnectionError& e) {
      std::string msg = e.what();
      CHECK(msg.find("certificate verification failed") != std::string::npos);
      CHECK(msg.find(kToken) == std::string::npos);
    }
  }
  SUBCASE("the system store does not trust a private CA") {
    auto s = BlockingSession::from_url(plaintty_url(w));
    CHECK_THROWS_AS(s.connect(), PodConnectionError);
  }
  SUBCASE("insecure_skip_verify is explicit and works") {
    TlsOptions tls;
    tls.insecure_skip_verify = true;
    auto s = BlockingSession::from_url(plaintty_url(w), std::make_shared<PlainTTYProvider>(220, tls));
    s.connect();
    CHECK(s.run("echo insecure").output == "insecure\n");
  }
}

namespace {
// A loopback TCP listener that answers the first connection its own way, on a thread.
class OneShotPeer {
 public:
  enum class Mode { read_then_close, reset };
  explicit OneShotPeer(Mode mode) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 4) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, mode] {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      if (mode == Mode::read_then_close) {
        char buf[4096];
        (void)::recv(c, buf, sizeof buf, 0);  // the ClientHello: a clean FIN, no RST
      } else {
        linger l{1, 0};
        ::setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      }
      ::close(c);
    });
  }
  ~OneShotPeer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

std::string connect_error(const std::string& url, const std::string& ca) {
  SessionOptions o;
  o.connect_timeout = 5;
  auto s = BlockingSession::from_url(url, provider_with_ca(ca), o);
  try {
    s.connect();
  } catch (const PodConnectionError& e) {
    std::string m = e.what();
    CHECK(m.find("Unknown error") == std::string::npos);
    CHECK(m.find('\n') == std::string::npos);  // one line
    CHECK(m.find(kToken) == std::string::npos);
    return m;
  }
  FAIL("connected to " << url);
  return {};
}
}  // namespace

TEST_CASE("fidelity: TLS against a plain ws:// port names the wrong protocol, in one line") {
  Websocketd plain(env().dir, pty_shell_program(), nullptr);
  std::string url = "wss://127.0.0.1:" + std::to_string(plain.port()) + "/exec/1/?token=" + kToken + "&pod=p";
  std::string m = connect_error(url, env().pki.ca_cert);
  CHECK(m.find("TLS handshake with 127.0.0.1:" + std::to_string(plain.port()) + " failed: wrong protocol") !=
        std::string::npos);
}

TEST_CASE("fidelity: a peer that closes or resets the connection during the TLS handshake is named") {
  {
    OneShotPeer peer(OneShotPeer::Mode::read_then_close);
    std::string m = connect_error(
        "wss://127.0.0.1:" + std::to_string(peer.port()) + "/exec/1/?token=" + kToken + "&pod=p", env().pki.ca_cert);
    CHECK(m.find("closed the connection") != std::string::npos);
  }
  {
    OneShotPeer peer(OneShotPeer::Mode::reset);
    std::string m = connect_error(
        "wss://127.0.0.1:" + std::to_string(peer.port()) + "/exec/1/?token=" + kToken + "&pod=p", env().pki.ca_cert);
    // The reset may arrive before the client has seen its connect complete ("cannot connect
    // to …: Connection reset by peer") or during the handshake ("connection reset by the server").
    bool named = m.find("connection reset") != std::string::npos || m.find("Connection reset") != std::string::npos ||
                 m.find("closed the connection") != std::string::npos;
    CHECK_MESSAGE(named, m);
  }
}

TEST_CASE("fidelity: an untrusted certificate and a wrong host name are named with the verify reason") {
  Websocketd w(env().dir, pty_shell_program(), &env().pki);
  std::string m = connect_error(plaintty_url(w), env().pki.other_ca_cert);
  CHECK(m.find("certificate verification failed: certificate not trusted (unable to get local issuer certificate)") !=
        std::string::npos);
  // A TLS server on 127.0.0.2, an address its certificate does not carry.
  int port = free_port();
  Process server({"openssl", "s_server", "-quiet", "-accept", "127.0.0.2:" + std::to_string(port), "-cert",
                  env().pki.server_cert, "-key", env().pki.server_key},
                 env().dir.file("s_server.log"));
  bool up = false;
  for (int i = 0; i < 200 && !up; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, "127.0.0.2", &a.sin_addr);
    a.sin_port = htons(static_cast<uint16_t>(port));
    up = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  REQUIRE(up);
  std::string h = connect_error("wss://127.0.0.2:" + std::to_string(port) + "/exec/1/?token=" + kToken + "&pod=p",
                                env().pki.ca_cert);
  CHECK(h.find("certificate verification failed: host name mismatch (the certificate is not valid for 127.0.0.2)") !=
        std::string::npos);
  server.stop();
}

TEST_CASE("fidelity: connection refused is named") {
  int port = free_port();
  std::string m = connect_error("wss://127.0.0.1:" + std::to_string(port) + "/exec/1/?token=" + kToken + "&pod=p",
                                env().pki.ca_cert);
  CHECK(m.find("cannot connect to 127.0.0.1:" + std::to_string(port) + ": Connection refused") != std::string::npos);
}

TEST_CASE("security: a timeout keeps the same remote terminal shell (Ctrl-C, then Ctrl-\\)") {
  Websocketd w(env().dir, pty_shell_program(), &env().pki);
  auto p = provider_with_ca(env().pki.ca_cert);
  timeout_keeps_shell_suite([&](SessionOptions o) { return BlockingSession::from_url(plaintty_url(w), p, o); }, true);
}

TEST_CASE("security: a pipe shell that cannot be interrupted is replaced after a timeout, and says so") {
  Websocketd w(env().dir, pipe_shell_program(), &env().pki);
  auto p = provider_with_ca(env().pki.ca_cert);
  auto s = BlockingSession::from_url(plaintty_url(w), p);
  s.connect();
  s.run("X=1");
  CHECK(time_out(s, "sleep 30", false) < 3.0);
  CHECK(s.run("echo \"[$X]\"").output == "[]\n");
  auto r = s.run_many({"sleep 30"}, 0.5).at(0);
  CHECK(r.session_reset);
  CHECK(r.error->find("shell was replaced") != std::string::npos);
}

TEST_CASE("security: every descriptor a WebSocket session opens is close-on-exec") {
  Websocketd w(env().dir, pty_shell_program(), &env().pki);
  auto before = inheritable_fds();
  auto s = BlockingSession::from_url(plaintty_url(w), provider_with_ca(env().pki.ca_cert));
  s.connect();
  CHECK(s.run("echo up").output == "up\n");
  CHECK(inheritable_fds() == before);
}

TEST_CASE("connection refused: clear error without the token") {
  int port = free_port();
  std::string url = "wss://127.0.0.1:" + std::to_string(port) + "/exec/1/?token=" + kToken + "&pod=p";
  SessionOptions o;
  o.connect_timeout = 2;
  auto s = BlockingSession::from_url(url, provider_with_ca(env().pki.ca_cert), o);
  try {
    s.connect();
    FAIL("connected to a closed port");
  } catch (const PodConnectionError& e) {
    std::string msg = e.what();
    CHECK(msg.find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
    CHECK(msg.find(kToken) == std::string::npos);
  }
}

TEST_CASE("websocketd killed mid-command: error, then auto_reconnect after restart") {
  Websocketd w(env().dir, pty_shell_program(), &env().pki);
  SessionOptions o;
  o.auto_reconnect = true;
  o.reconnect_backoff_base = 0.1;
  auto s = BlockingSession::from_url(plaintty_url(w), provider_with_ca(env().pki.ca_cert), o);
  s.connect();
  CHECK(s.run("echo before").output == "before\n");
  // The shell marks the command's start; websocketd is killed once it runs.
  const std::string started = env().dir.file("killed-mid-command.started");
  std::filesystem::remove(started);
  std::thread killer([&] {
    CHECK(wait_until([&] { return std::filesystem::exists(started); }));
    w.kill_now();
  });
  CHECK_THROWS_AS(s.run("touch '" + started + "'; sleep 3", 10.0), PodConnectionError);
  killer.join();
  w.restart();
  auto r = s.run("echo after");
  CHECK(r.output == "after\n");
}

TEST_CASE("without auto_reconnect a lost connection is reported, not hidden") {
  Websocketd w(env().dir, pty_shell_program(), &env().pki);
  auto s = BlockingSession::from_url(plaintty_url(w), provider_with_ca(env().pki.ca_cert));
  s.connect();
  REQUIRE(connected_to(w.port()));
  w.kill_now();
  // The session sees the end of the connection and closes its side.
  CHECK(wait_until([&] { return !connected_to(w.port()); }));
  CHECK_THROWS_AS(s.run("echo x"), PodClientError);
  w.restart();
  CHECK_THROWS_AS(s.run("echo x"), PodNotConnectedError);
  s.connect();
  CHECK(s.run("echo x").output == "x\n");
}

TEST_CASE("connect timeout: a peer that accepts TCP but never speaks TLS") {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd, 16) == 0);  // the kernel completes handshakes; nobody answers
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::string url = "wss://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/exec/1/?token=abcdef&pod=p";
  SessionOptions o;
  o.connect_timeout = 0.5;
  auto s = BlockingSession::from_url(url, provider_with_ca(env().pki.ca_cert), o);
  auto t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH_AS(s.connect(), doctest::Contains("timed out"), PodConnectionError);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(secs < 3.0);
  ::close(fd);
}

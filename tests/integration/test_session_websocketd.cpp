// PlainTTY sessions against a real websocketd (TLS with a CA made here, and plain ws),
// in front of a real PTY shell (script -qfc /bin/sh) and of a plain pipe shell.
#include "../support/fixtures.hpp"
#include "session_suite.hpp"

#include <podwrangler/providers/plaintty.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

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
  SUBCASE("a host name that the certificate does not carry is refused") {
    std::string url = "wss://127.0.0.2:" + std::to_string(w.port()) +
                      "/exec/1/?token=abcdef&pod=p";  // 127.0.0.2 is not in the SAN
    auto s = BlockingSession::from_url(url, provider_with_ca(env().pki.ca_cert));
    CHECK_THROWS_AS(s.connect(), PodConnectionError);
  }
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
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    w.kill_now();
  });
  CHECK_THROWS_AS(s.run("sleep 3", 10.0), PodConnectionError);
  killer.join();
  w.restart();
  auto r = s.run("echo after");
  CHECK(r.output == "after\n");
}

TEST_CASE("without auto_reconnect a lost connection is reported, not hidden") {
  Websocketd w(env().dir, pty_shell_program(), &env().pki);
  auto s = BlockingSession::from_url(plaintty_url(w), provider_with_ca(env().pki.ca_cert));
  s.connect();
  w.kill_now();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
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

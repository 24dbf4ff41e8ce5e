// The HTTP front end (embedded_server/http_server.cpp) driven over real sockets: limits
// enforced while reading, connection starvation, method semantics, descriptor hygiene.
#include "embedded_server/http_server.hpp"

#include "fixtures.hpp"

#include <doctest/doctest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
using pw::server::HttpHooks;
using pw::server::HttpLimits;
using pw::server::HttpServer;
using pw::server::Router;

namespace {

using Clock = std::chrono::steady_clock;

// A raw TCP client, optionally from another loopback source address (127.0.0.N), so
// tests can play several clients.
class Raw {
 public:
  explicit Raw(int port, const char* from = nullptr) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    if (from) {
      sockaddr_in src{};
      src.sin_family = AF_INET;
      ::inet_pton(AF_INET, from, &src.sin_addr);
      REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&src), sizeof src) == 0);
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~Raw() {
    if (fd_ >= 0) ::close(fd_);
  }
  Raw(const Raw&) = delete;
  Raw& operator=(const Raw&) = delete;
  Raw(Raw&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}

  // false once the peer closed or reset.
  bool send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  // Reads until the peer closes, `until` appears, or the timeout passes.
  std::string recv(std::chrono::milliseconds timeout, std::string_view until = {}) {
    std::string out;
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (::poll(&p, 1, static_cast<int>(std::max<long long>(left, 1))) <= 0) continue;
      char buf[65536];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      out.append(buf, static_cast<std::size_t>(n));
      if (!until.empty() && out.find(until) != std::string::npos) break;
    }
    return out;
  }
  bool closed() const { return closed_; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  bool closed_ = false;
};

// An HttpServer with a few routes on 127.0.0.1, served on a background thread.
struct TestServer {
  explicit TestServer(HttpLimits limits = {}, HttpHooks hooks = {}) {
    Router r;
    r.Get("/health/?", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("{\"status\":\"ok\"}", "application/json");
    });
    r.Get("/api/v1/pods/?",
          [](const httplib::Request&, httplib::Response& res) { res.set_content("[]", "application/json"); });
    r.Post("/api/v1/pods/?", [](const httplib::Request& req, httplib::Response& res) {
      res.status = 201;
      res.set_content(std::to_string(req.body.size()), "text/plain");
    });
    r.Get("/api/v1/pods/([^/]+)/?", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content("pod " + req.matches[1].str(), "text/plain");
    });
    r.Delete("/api/v1/pods/([^/]+)/?", [](const httplib::Request&, httplib::Response& res) { res.status = 204; });
    r.Get("/boom", [](const httplib::Request&, httplib::Response&) { throw std::runtime_error("boom"); });
    r.Get("/stream", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("application/x-ndjson", [](size_t, httplib::DataSink& sink) {
        for (int i = 0; i < 3; ++i) {
          std::string line = "{\"n\":" + std::to_string(i) + "}\n";
          sink.write(line.data(), line.size());
        }
        sink.done();
        return true;
      });
    });
    if (!hooks.on_error)
      hooks.on_error = [](httplib::Response& res, pw::ErrorKind kind, const std::string& msg) {
        const std::string code(pw::error_info(kind).code);
        res.set_content("{\"code\":\"" + code + "\",\"message\":\"" + msg + "\"}", "application/json");
      };
    if (!hooks.on_exception)
      hooks.on_exception = [](httplib::Response& res) {
        res.status = 500;
        res.set_content("{\"code\":\"internal_error\",\"message\":\"internal server error\"}", "application/json");
      };
    http = std::make_unique<HttpServer>(limits, std::move(r), std::move(hooks));
    port = http->bind("127.0.0.1", 0);
    thread = std::thread([this] { http->run(); });
  }
  ~TestServer() {
    http->stop();
    thread.join();
  }
  std::unique_ptr<HttpServer> http;
  int port = 0;
  std::thread thread;
};

int status_of(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0 || response.size() < 12) return -1;
  return std::stoi(response.substr(9, 3));
}

std::string header_of(const std::string& response, const std::string& name) {
  std::istringstream in(response.substr(0, response.find("\r\n\r\n")));
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string k = line.substr(0, colon);
    if (strcasecmp(k.c_str(), name.c_str()) != 0) continue;
    std::string v = line.substr(colon + 1);
    while (!v.empty() && (v.front() == ' ')) v.erase(0, 1);
    while (!v.empty() && (v.back() == '\r' || v.back() == ' ')) v.pop_back();
    return v;
  }
  return "";
}

std::string body_of(const std::string& response) {
  auto p = response.find("\r\n\r\n");
  return p == std::string::npos ? "" : response.substr(p + 4);
}

// One GET over a fresh connection; the time it took.
std::pair<int, double> timed_get(int port, const std::string& path, const char* from = nullptr) {
  auto t0 = Clock::now();
  Raw c(port, from);
  c.send("GET " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  std::string r = c.recv(10s);
  return {status_of(r), std::chrono::duration<double>(Clock::now() - t0).count()};
}

long rss_kib() {
  std::string s = pw::testing::read_file("/proc/self/status");
  auto p = s.find("VmRSS:");
  return p == std::string::npos ? 0 : std::stol(s.substr(p + 6));
}

}  // namespace

TEST_CASE("security: a chunked body over the limit is refused while it is read (413 JSON, connection closed)") {
  HttpLimits limits;
  limits.max_body_bytes = 64 * 1024;
  TestServer s(limits);
  Raw c(s.port);
  long before = rss_kib();
  REQUIRE(
      c.send("POST /api/v1/pods/ HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
             "Transfer-Encoding: chunked\r\n\r\n"));
  // Keep sending 64 KiB chunks: the server must answer and close long before 300 MB.
  std::string chunk(65536, 'a');
  std::string framed = "10000\r\n" + chunk + "\r\n";
  std::size_t sent = 0;
  while (sent < (300u << 20)) {
    if (!c.send(framed)) break;
    sent += chunk.size();
    pollfd p{c.fd(), POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) break;  // the answer arrived
  }
  std::string r = c.recv(5s);
  CHECK(status_of(r) == 413);
  CHECK(body_of(r).find("\"code\":\"payload_too_large\"") != std::string::npos);
  CHECK(header_of(r, "Connection") == "close");
  CHECK(sent < (16u << 20));
  CHECK(rss_kib() - before < 64 * 1024);
  // Nothing more is read from that connection: it is closed.
  c.send(framed);
  c.recv(2s);
  CHECK(c.closed());
}

TEST_CASE("security: a Content-Length over the limit is refused before the body is read") {
  HttpLimits limits;
  limits.max_body_bytes = 4096;
  TestServer s(limits);
  Raw c(s.port);
  c.send("POST /api/v1/pods/ HTTP/1.1\r\nHost: t\r\nContent-Length: 300000000\r\n\r\n");
  std::string r = c.recv(5s, "}");
  CHECK(status_of(r) == 413);
  CHECK(body_of(r).find("payload_too_large") != std::string::npos);
  // A body within the limit, with Expect: 100-continue, is taken.
  Raw d(s.port);
  d.send("POST /api/v1/pods/ HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  std::string cont = d.recv(2s, "\r\n\r\n");
  CHECK(cont.rfind("HTTP/1.1 100 Continue", 0) == 0);
  d.send("hello");
  std::string r2 = d.recv(2s, "\r\n\r\n5");
  CHECK(r2.find("HTTP/1.1 201") != std::string::npos);
}

TEST_CASE("security: slowloris — 1,000 half-open and idle connections do not starve other clients") {
  HttpLimits limits;
  limits.request_timeout_s = 30;
  limits.keep_alive_timeout_s = 30;
  limits.workers = 4;
  TestServer s(limits);
  std::vector<Raw> held;
  held.reserve(1000);
  const char* sources[] = {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"};
  for (int i = 0; i < 1000; ++i) {
    Raw c(s.port, sources[i % 4]);
    if (i % 2 == 0) {
      // Half-open: a request line and one header, never finished.
      c.send("GET /health HTTP/1.1\r\nHost: t\r\n");
    } else {
      // Idle keep-alive: one whole request answered, then nothing.
      c.send("GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
      REQUIRE(status_of(c.recv(5s, "}")) == 200);
    }
    held.push_back(std::move(c));
  }
  for (int i = 0; i < 100 && s.http->connections() < 1000; ++i) std::this_thread::sleep_for(10ms);
  CHECK(s.http->connections() >= 1000);
  double worst = 0;
  for (int i = 0; i < 20; ++i) {
    auto [status, secs] = timed_get(s.port, "/health");
    CHECK(status == 200);
    worst = std::max(worst, secs);
  }
  MESSAGE("slowest /health with 1,000 connections held: " << worst * 1000 << " ms");
  CHECK(worst < 0.5);
}

TEST_CASE("security: the request deadline covers the whole request, not each read") {
  HttpLimits limits;
  limits.request_timeout_s = 0.6;
  TestServer s(limits);
  Raw c(s.port);
  auto t0 = Clock::now();
  std::string header = "GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: ";
  c.send(header);
  // One byte every 100 ms would never trip a per-read timeout.
  bool alive = true;
  while (alive && Clock::now() - t0 < 5s) {
    std::this_thread::sleep_for(100ms);
    alive = c.send("a");
    pollfd p{c.fd(), POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) break;
  }
  c.recv(2s);
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  // Closed at the deadline (like nginx's client_header_timeout: no answer is owed to a
  // client that did not finish its request in time).
  CHECK(c.closed());
  CHECK(secs < 2.0);
}

TEST_CASE("security: connections over the per-client cap are answered 503 at once, others still served") {
  HttpLimits limits;
  limits.max_connections_per_client = 3;
  limits.max_connections = 6;
  TestServer s(limits);
  std::vector<Raw> held;
  for (int i = 0; i < 3; ++i) held.emplace_back(s.port, "127.0.0.2");
  for (int i = 0; i < 100 && s.http->connections() < 3; ++i) std::this_thread::sleep_for(10ms);
  auto t0 = Clock::now();
  Raw over(s.port, "127.0.0.2");
  std::string r = over.recv(2s);
  CHECK(status_of(r) == 503);
  CHECK(body_of(r).find("too_many_connections") != std::string::npos);
  CHECK(header_of(r, "Retry-After") == "1");
  CHECK(std::chrono::duration<double>(Clock::now() - t0).count() < 1.0);
  // Another address is still served…
  CHECK(timed_get(s.port, "/health", "127.0.0.3").first == 200);
  // …until the total cap is reached.
  for (int i = 0; i < 3; ++i) held.emplace_back(s.port, "127.0.0.4");
  for (int i = 0; i < 100 && s.http->connections() < 6; ++i) std::this_thread::sleep_for(10ms);
  CHECK(timed_get(s.port, "/health", "127.0.0.5").first == 503);
  held.clear();
  for (int i = 0; i < 200 && s.http->connections() > 0; ++i) std::this_thread::sleep_for(10ms);
  CHECK(timed_get(s.port, "/health", "127.0.0.2").first == 200);
}

TEST_CASE("security: a known path with another method is 405 with Allow; unknown paths 404; OPTIONS 204") {
  TestServer s;
  auto ask = [&](const std::string& method, const std::string& path) {
    Raw c(s.port);
    c.send(method + " " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    return c.recv(5s);
  };
  std::string put = ask("PUT", "/api/v1/pods/");
  CHECK(status_of(put) == 405);
  CHECK(header_of(put, "Allow") == "GET, POST, HEAD, OPTIONS");
  CHECK(body_of(put).find("\"code\":\"method_not_allowed\"") != std::string::npos);
  std::string trace = ask("TRACE", "/api/v1/pods/web-1");
  CHECK(status_of(trace) == 405);
  CHECK(header_of(trace, "Allow") == "GET, DELETE, HEAD, OPTIONS");
  std::string options = ask("OPTIONS", "/api/v1/pods/");
  CHECK(status_of(options) == 204);
  CHECK(header_of(options, "Allow") == "GET, POST, HEAD, OPTIONS");
  std::string missing = ask("GET", "/nope");
  CHECK(status_of(missing) == 404);
  CHECK(body_of(missing).find("\"code\":\"not_found\"") != std::string::npos);
  std::string head = ask("HEAD", "/api/v1/pods/web-1");
  CHECK(status_of(head) == 200);
  CHECK(header_of(head, "Content-Length") == "9");
  CHECK(body_of(head).empty());
  std::string boom = ask("GET", "/boom");
  CHECK(status_of(boom) == 500);
  CHECK(boom.find("boom\"") == std::string::npos);
}

TEST_CASE("HTTP: keep-alive, pipelining, HTTP/1.0, chunked streaming, a long target and big headers") {
  TestServer s;
  {
    Raw c(s.port);
    c.send("GET /health HTTP/1.1\r\nHost: t\r\n\r\nGET /api/v1/pods/a%20b HTTP/1.1\r\nHost: t\r\n\r\n");
    std::string r = c.recv(5s, "pod a b");
    CHECK(r.find("{\"status\":\"ok\"}") != std::string::npos);
    CHECK(r.find("pod a b") != std::string::npos);
    CHECK(!c.closed());
  }
  {
    Raw c(s.port);
    c.send("GET /health HTTP/1.0\r\n\r\n");
    std::string r = c.recv(5s);
    CHECK(status_of(r) == 200);
    CHECK(header_of(r, "Connection") == "close");
    CHECK(c.closed());
  }
  {
    Raw c(s.port);
    c.send("GET /stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    std::string r = c.recv(5s);
    CHECK(header_of(r, "Transfer-Encoding") == "chunked");
    CHECK(body_of(r) == "8\r\n{\"n\":0}\n\r\n8\r\n{\"n\":1}\n\r\n8\r\n{\"n\":2}\n\r\n0\r\n\r\n");
  }
  {
    Raw c(s.port);
    c.send("GET /api/v1/pods/" + std::string(9000, 'x') + " HTTP/1.1\r\nHost: t\r\n\r\n");
    std::string r = c.recv(5s);
    CHECK(status_of(r) == 414);
    CHECK(body_of(r).find("\"code\":\"uri_too_long\"") != std::string::npos);
  }
  {
    Raw c(s.port);
    c.send("GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(40000, 'x') + "\r\n\r\n");
    std::string r = c.recv(5s);
    CHECK(status_of(r) == 431);
    CHECK(body_of(r).find("\"code\":\"headers_too_large\"") != std::string::npos);
  }
  {
    Raw c(s.port);
    c.send("GARBAGE\r\n\r\n");
    std::string r = c.recv(5s);
    CHECK(status_of(r) == 400);
    CHECK(body_of(r).find("\"code\":\"bad_request\"") != std::string::npos);
  }
}

TEST_CASE("security: the access log writes one escaped line per request (%0a cannot forge a line)") {
  CHECK(pw::server::escape_log_field("/api/v1/pods/x\nGET /admin 200") == "/api/v1/pods/x%0AGET%20/admin%20200");
  CHECK(pw::server::escape_log_field("a\"b\\c%d\x01\xff") == "a%22b%5Cc%25d%01%FF");
  CHECK(pw::server::escape_log_field(std::string(600, 'a'), 512).size() == 515);
  std::mutex m;
  std::vector<std::string> lines;
  HttpHooks hooks;
  hooks.logger = [&](const httplib::Request& req, const httplib::Response& res, double) {
    std::lock_guard<std::mutex> g(m);
    lines.push_back(pw::server::escape_log_field(req.method) + " " + pw::server::escape_log_field(req.target) + " " +
                    std::to_string(res.status));
  };
  {
    TestServer s(HttpLimits{}, std::move(hooks));
    Raw c(s.port);
    c.send("GET /api/v1/pods/x%0aFORGED%20200 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    CHECK(status_of(c.recv(5s)) == 200);
  }
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find('\n') == std::string::npos);
  CHECK(lines[0] == "GET /api/v1/pods/x%250aFORGED%2520200 200");
}

TEST_CASE("security: every descriptor the server opens is close-on-exec") {
  // The clients outlive the server: its loop then closes the accepted sockets because
  // stop() said so, after the fstat() calls below, not because a client hung up (an
  // ordering only the kernel sees, which TSan reports as a race on the descriptor).
  std::vector<Raw> clients;
  TestServer s;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back(s.port);
    clients.back().send("GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(status_of(clients.back().recv(5s, "}")) == 200);
  }
  // Every socket of this process, the server's accepted ones and its listener included.
  int sockets = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    int fd = std::stoi(e.path().filename().string());
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    ++sockets;
    CAPTURE(fd);
    CHECK((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
  }
  CHECK(sockets >= 9);  // 4 clients, 4 accepted, 1 listener
}

TEST_CASE("HTTP: stop() closes idle connections and lets a request in progress finish") {
  auto s = std::make_unique<TestServer>();
  Raw idle(s->port);
  idle.send("GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(status_of(idle.recv(5s, "}")) == 200);
  auto t0 = Clock::now();
  s.reset();  // stop + join
  CHECK(std::chrono::duration<double>(Clock::now() - t0).count() < 2.0);
  idle.recv(1s);
  CHECK(idle.closed());
}

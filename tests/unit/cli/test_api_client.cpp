// Unit tests for cli/api_client.cpp against a throwaway in-process cpp-httplib server:
// Bearer auth, error bodies → exit codes, connection refused, NDJSON streaming, base URLs.
#include <doctest/doctest.h>

#include "cli/api_client.hpp"
#include "cli/cli_error.hpp"
#include "cli/exit_codes.hpp"

#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

using namespace pw::cli;

namespace {

struct TinyServer {
  httplib::Server srv;
  std::thread thread;
  int port = 0;
  std::atomic<int> connections{0};
  TinyServer() {
    srv.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"status":"ok","version":"0.1.0"})", "application/json");
    });
    srv.Get("/api/v1/pods/", [](const httplib::Request& req, httplib::Response& res) {
      if (req.get_header_value("Authorization") != "Bearer sekrit-key-0123456789") {
        res.status = 401;
        res.set_content(R"({"code":"unauthorized","message":"missing or wrong API key"})", "application/json");
        return;
      }
      res.set_content(R"([{"alias":"a"}])", "application/json");
    });
    srv.Get("/prefix/api/v1/pods/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"([])", "application/json");
    });
    srv.Post("/api/v1/pods/", [](const httplib::Request& req, httplib::Response& res) {
      auto body = nlohmann::json::parse(req.body);
      if (body.value("alias", "") == "dup") {
        res.status = 409;
        res.set_content(R"({"code":"conflict","message":"pod 'dup' already exists"})", "application/json");
      } else {
        res.status = 422;
        res.set_content(R"({"code":"validation_error","message":"must match [A-Za-z0-9]...","field":"alias"})",
                        "application/json");
      }
    });
    srv.Get("/text", [](const httplib::Request&, httplib::Response& res) {
      res.status = 502;
      res.set_content("<html>bad gateway</html>", "text/html");
    });
    srv.Get("/slow", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      res.set_content("{}", "application/json");
    });
    srv.Post("/api/v1/exec/stream", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("application/x-ndjson", [](size_t, httplib::DataSink& sink) {
        std::string lines[] = {R"({"event":"start","total":3,"aliases":["a","b","c"]})" "\n",
                               R"({"event":"result","index":1,"alias":"b","status":"succeeded"})" "\n",
                               R"({"event":"result","index":0,)", R"("alias":"a","status":"failed"})" "\n",
                               R"({"event":"result","index":2,"alias":"c","status":"succeeded"})" "\n"
                               R"({"event":"summary","total":3})" "\n"};
        for (auto& l : lines) {
          sink.write(l.data(), l.size());
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        sink.done();
        return true;
      });
    });
    srv.set_socket_options([this](int) { ++connections; });
    port = srv.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { srv.listen_after_bind(); });
    while (!srv.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~TinyServer() {
    srv.stop();
    thread.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

int free_port() {  // bound, then closed: nothing listens there
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace

TEST_CASE("api client: base URLs") {
  CHECK(split_base_url("http://127.0.0.1:8000").origin == "http://127.0.0.1:8000");
  CHECK(split_base_url("http://127.0.0.1:8000/").prefix.empty());
  auto b = split_base_url("https://h.example/pw/");
  CHECK(b.origin == "https://h.example");
  CHECK(b.prefix == "/pw");
  for (const char* bad : {"127.0.0.1:8000", "ftp://x", "http://", "http://a b"}) {
    CAPTURE(bad);
    try {
      split_base_url(bad);
      FAIL("accepted");
    } catch (const CliError& e) {
      CHECK(e.exit_code() == exit_code::config);
      CHECK(std::string(e.what()).find("invalid API URL") == 0);
    }
  }
  CHECK(url_encode("a b/c=d") == "a%20b%2Fc%3Dd");
}

TEST_CASE("api client: requests, Bearer auth and error mapping; one keep-alive connection") {
  TinyServer s;
  ApiClient ok(s.url(), "sekrit-key-0123456789");
  CHECK(ok.get("/health")["status"] == "ok");
  CHECK(ok.get("/api/v1/pods/")[0]["alias"] == "a");
  CHECK(ok.get("/api/v1/pods/")[0]["alias"] == "a");
  CHECK(s.connections == 1);

  ApiClient anon(s.url(), "");
  try {
    anon.get("/api/v1/pods/");
    FAIL("no error");
  } catch (const CliError& e) {
    CHECK(e.exit_code() == exit_code::auth);
    CHECK(std::string(e.what()) == "missing or wrong API key");
    CHECK(e.hint().find("PODWRANGLER_API_KEY") != std::string::npos);
  }
  try {
    anon.send("POST", "/api/v1/pods/", {{"alias", "dup"}});
    FAIL("no error");
  } catch (const CliError& e) {
    CHECK(e.exit_code() == exit_code::conflict);
  }
  try {
    anon.send("POST", "/api/v1/pods/", {{"alias", "-x"}});
    FAIL("no error");
  } catch (const CliError& e) {
    CHECK(e.exit_code() == exit_code::data);
    CHECK(std::string(e.what()) == "alias: must match [A-Za-z0-9]...");
  }
  auto r = anon.call("GET", "/text");
  CHECK(r.status == 502);
  CHECK(r.body["raw"] == "<html>bad gateway</html>");
  CHECK(api_error_message(r) == "unexpected answer from the API (HTTP 502)");
  CHECK(ApiClient(s.url() + "/prefix", "").get("/api/v1/pods/").is_array());
}

TEST_CASE("api client: connection refused names the URL, the reason and the hint") {
  std::string url = "http://127.0.0.1:" + std::to_string(free_port());
  ApiClient c(url, "");
  try {
    c.get("/health");
    FAIL("no error");
  } catch (const CliError& e) {
    CHECK(e.exit_code() == exit_code::unavailable);
    CHECK(std::string(e.what()) == "cannot reach the API at " + url + ": connection refused");
    CHECK(e.hint() == "is the server running? try --local");
  }
}

TEST_CASE("api client: a read timeout is exit 75") {
  TinyServer s;
  ApiClient c(s.url(), "", {1.0, 0.5});
  try {
    c.get("/slow");
    FAIL("no error");
  } catch (const CliError& e) {
    CHECK(e.exit_code() == exit_code::timeout);
    CHECK(std::string(e.what()).find("did not answer within") != std::string::npos);
  }
}

TEST_CASE("api client: NDJSON stream, lines split across chunks, early stop") {
  TinyServer s;
  ApiClient c(s.url(), "");
  std::vector<nlohmann::json> events;
  bool complete = c.post_stream("/api/v1/exec/stream", {{"command", "x"}}, [&](const nlohmann::json& e) {
    events.push_back(e);
    return true;
  });
  CHECK(complete);
  REQUIRE(events.size() == 5);
  CHECK(events[2]["alias"] == "a");
  CHECK(events[4]["event"] == "summary");

  ApiClient c2(s.url(), "");
  events.clear();
  complete = c2.post_stream("/api/v1/exec/stream", {{"command", "x"}}, [&](const nlohmann::json& e) {
    events.push_back(e);
    return e.value("status", "") != "failed";
  });
  CHECK_FALSE(complete);
  CHECK(events.size() == 3);
}

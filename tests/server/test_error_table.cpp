// The one error table (podwrangler/error_table.hpp) end to end: every row is walked once.
// For each error kind the error is raised where it really arises (the library's exception
// classes, the server's routes and its HTTP front end), the answer is read over real HTTP
// from the embedded server (status and "code" as the row says), and that answer is handed
// to the CLI's ApiClient, whose exit code must be the row's api_exit_code.
//
// Rows the production server cannot answer with are still walked:
//  - pod_client_error, pod_not_connected, namespace_detection_failed and internal_error
//    have no request that makes the real server raise them (the pool turns a session that
//    is not connected into pod_connection_error; the server never asks the Kubernetes
//    provider to insist on a namespace; internal_error is a bug). The library's exception
//    (or a std::exception) is thrown from a route of an HttpServer wired with the
//    production error path (send_current_exception, send_error), and read over HTTP.
//  - listen_failed is raised by a real Server that cannot bind; it is never an answer, so
//    its exit code is checked on the exception (what `podwrangler serve` exits with).
#include "api_fixture.hpp"

#include "cli/api_client.hpp"
#include "cli/cli_error.hpp"
#include "embedded_server/http_server.hpp"
#include "embedded_server/http_util.hpp"
#include "embedded_server/store/store.hpp"

#include <podwrangler/errors.hpp>

#include <doctest/doctest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>

using namespace pw::testing;
using nlohmann::json;
using pw::ErrorInfo;
using pw::ErrorKind;

namespace {

constexpr const char* kKey = "k-error-table-0123456789";

// An answer as it came over HTTP.
struct Answer {
  int status = 0;
  std::string content_type;  // media type, without parameters
  json body;                 // null when not JSON
};

Answer answer_of(const httplib::Result& r) {
  Answer a;
  if (!r) return a;
  a.status = r->status;
  std::string ct = r->get_header_value("Content-Type");
  a.content_type = ct.substr(0, ct.find(';'));
  a.body = json::parse(r->body, nullptr, false);
  if (a.body.is_discarded()) a.body = nullptr;
  return a;
}

Answer answer_of(const Reply& r) {
  Answer a;
  a.status = r.status;
  a.content_type = r.content_type.substr(0, r.content_type.find(';'));
  a.body = r.body;
  return a;
}

// The exit code the CLI gives for `a`: the CLI's own check of an error body, then its
// ApiClient::raise (what every command does with an error answer).
int cli_exit_for(const std::string& base_url, const Answer& a) {
  CHECK(pw::cli::contract::error_body(a.body) == "");
  pw::cli::ApiClient cli(base_url, kKey);
  pw::cli::ApiReply reply;
  reply.status = a.status;
  reply.content_type = a.content_type;
  reply.body = a.body;
  try {
    cli.raise(reply);
  } catch (const pw::cli::CliError& e) {
    return e.exit_code();
  }
  return -1;
}

// The exit code of a whole CLI request (ApiClient::send / get) that ends in an error.
int cli_exit_of(const std::function<void()>& request) {
  try {
    request();
  } catch (const pw::cli::CliError& e) {
    return e.exit_code();
  }
  return -1;
}

std::string base_url(int port) { return "http://127.0.0.1:" + std::to_string(port); }

// One walked row: the answer from the server, and (when the CLI can make the same request)
// the exit code of the CLI's own request.
struct Walked {
  Answer answer;
  std::optional<int> cli_request_exit;
};

void check_row(const ErrorInfo& row, const std::string& url, const Walked& w) {
  INFO("row: " << row.code);
  CHECK(row.answered);
  CHECK(w.answer.status == row.http_status);
  CHECK(w.answer.content_type == "application/json");
  REQUIRE(w.answer.body.is_object());
  CHECK(w.answer.body.value("code", "") == row.code);
  CHECK_FALSE(w.answer.body.value("message", "").empty());
  CHECK(cli_exit_for(url, w.answer) == row.api_exit_code);
  if (w.cli_request_exit) CHECK(*w.cli_request_exit == row.api_exit_code);
}

// A pod row written straight to the database, past the API's validation: what a database
// shared with another version, or edited by hand, may hold.
void store_pod(const std::string& db_url, const std::string& alias, const std::string& url,
               const std::string& provider) {
  auto store = pw::server::open_store(db_url);
  pw::server::PodRecord p;
  p.alias = alias;
  p.url = pw::SecretString(url);
  p.provider = provider;
  store->create_pod(p);
}

// An HttpServer wired like the production one (errors through send_current_exception and
// send_error), with routes that throw what the production routes never throw.
class RaisingServer {
 public:
  RaisingServer() {
    pw::server::Router r;
    r.Get("/raise/client", [](const httplib::Request&, httplib::Response&) {
      throw pw::PodClientError("the provider cannot list pods");
    });
    r.Get("/raise/not_connected",
          [](const httplib::Request&, httplib::Response&) { throw pw::PodNotConnectedError(); });
    r.Get("/raise/namespace_detection", [](const httplib::Request&, httplib::Response&) {
      throw pw::NamespaceDetectionError("no namespace in the pod identity");
    });
    r.Get("/raise/internal", [](const httplib::Request&, httplib::Response&) { throw std::runtime_error("a bug"); });
    // The capsule kinds, as the capsule layer raises them.
    r.Get("/raise/capsule_not_found",
          [](const httplib::Request&, httplib::Response&) { throw pw::CapsuleNotFoundError("cap-000000000000"); });
    r.Get("/raise/capsule_conflict", [](const httplib::Request&, httplib::Response&) {
      throw pw::CapsuleConflictError("capsule cap-000000000000 is stopped");
    });
    r.Get("/raise/capsule_invalid", [](const httplib::Request&, httplib::Response&) {
      throw pw::CapsuleValidationError("memory_mb", "must be at least 6");
    });
    r.Get("/raise/engine_unavailable", [](const httplib::Request&, httplib::Response&) {
      throw pw::EngineUnavailableError("cannot reach the Docker engine at unix:///nonexistent.sock");
    });
    r.Get("/raise/agent_error",
          [](const httplib::Request&, httplib::Response&) { throw pw::AgentError("the agent closed the connection"); });
    pw::server::HttpHooks hooks;
    hooks.on_exception = [](httplib::Response& res) { pw::server::send_current_exception(res); };
    hooks.on_error = [](httplib::Response& res, ErrorKind kind, const std::string& message) {
      pw::server::send_error(res, kind, message);
    };
    http_ = std::make_unique<pw::server::HttpServer>(pw::server::HttpLimits{}, std::move(r), std::move(hooks));
    port_ = http_->bind("127.0.0.1", 0);
    thread_ = std::thread([this] { http_->run(); });
  }
  ~RaisingServer() {
    http_->stop();
    thread_.join();
  }
  int port() const { return port_; }

 private:
  std::unique_ptr<pw::server::HttpServer> http_;
  int port_ = 0;
  std::thread thread_;
};

// A TCP connection held open (no request sent).
class HeldConnection {
 public:
  explicit HeldConnection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~HeldConnection() { ::close(fd_); }
  bool connected() const { return connected_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

}  // namespace

TEST_CASE("error table end to end: every row, raised, answered over HTTP, mapped to the CLI's exit code") {
  std::map<ErrorKind, Walked> walked;
  std::set<ErrorKind> not_answered;

  // ---- the production server: one SQLite database, an API key, a small body limit ----
  {
    const std::string db = fresh_database_url(Backend::sqlite);
    TestServer srv(db, [](pw::server::Settings& s) {
      s.api_key = pw::SecretString(kKey);
      s.max_body_bytes = 4096;
    });
    const std::string url = base_url(srv.port());
    auto api = srv.client(kKey);
    pw::cli::ApiClient cli(url, kKey);
    auto cli_send = [&](const std::string& method, const std::string& path, const json& body) {
      return cli_exit_of([&] { cli.send(method, path, body); });
    };
    auto cli_get = [&](const std::string& path) { return cli_exit_of([&] { cli.get(path); }); };

    REQUIRE(api.post("/api/v1/pods/", {{"alias", "sh"}, {"url", "local://sh"}, {"provider", "local"}}).status == 201);
    // Connection refused: nothing listens on port 1.
    REQUIRE(api.post("/api/v1/pods/", {{"alias", "dead"}, {"url", "wss://127.0.0.1:1/exec/1/?token=t&pod=p"}}).status ==
            201);
    store_pod(db, "bad-provider", "local://x", "nosuch");
    store_pod(db, "bad-url", "wss://", "plaintty");

    auto exec = [&](const std::string& alias, const json& body) {
      const std::string path = "/api/v1/pods/" + alias + "/exec";
      return Walked{answer_of(api.post(path, body)), cli_send("POST", path, body)};
    };
    // The library raises these while the server runs the command.
    walked[ErrorKind::not_found] = exec("nosuch", {{"command", "true"}});
    walked[ErrorKind::connection] = exec("dead", {{"command", "true"}, {"timeout", 5}});
    walked[ErrorKind::command] = exec("sh", {{"command", "exit 3"}, {"check", true}});
    walked[ErrorKind::command_timeout] = exec("sh", {{"command", "sleep 5"}, {"timeout", 0.3}});
    walked[ErrorKind::config_validation] = exec("bad-provider", {{"command", "true"}});
    walked[ErrorKind::url_parse] = exec("bad-url", {{"command", "true"}});
    // The routes and the front end answer these themselves.
    walked[ErrorKind::bad_request] = {answer_of(api.send("POST", "/api/v1/pods/", "{")), std::nullopt};
    walked[ErrorKind::unauthorized] = {answer_of(srv.client().get("/api/v1/pods/")),
                                       cli_exit_of([&] { pw::cli::ApiClient(url, "").get("/api/v1/pods/"); })};
    walked[ErrorKind::route_not_found] = {answer_of(api.get("/api/v1/nope")), cli_get("/api/v1/nope")};
    walked[ErrorKind::command_not_found] = {answer_of(api.get("/api/v1/commands/999999")),
                                            cli_get("/api/v1/commands/999999")};
    const json pod = {{"alias", "sh"}, {"url", "local://sh"}};
    walked[ErrorKind::method_not_allowed] = {answer_of(api.send("PUT", "/api/v1/pods/", pod.dump())),
                                             cli_send("PUT", "/api/v1/pods/", pod)};
    walked[ErrorKind::conflict] = {answer_of(api.post("/api/v1/pods/", pod)), cli_send("POST", "/api/v1/pods/", pod)};
    const json big = {{"alias", "big"}, {"url", "local://big"}, {"labels", {{"x", std::string(6000, 'a')}}}};
    walked[ErrorKind::payload_too_large] = {answer_of(api.post("/api/v1/pods/", big)), std::nullopt};
    const std::string long_target = "/api/v1/pods/?selector=" + std::string(9000, 'a');
    walked[ErrorKind::uri_too_long] = {answer_of(srv.client(kKey).get(long_target)), cli_get(long_target)};
    walked[ErrorKind::unsupported_media_type] = {answer_of(api.send("POST", "/api/v1/pods/", pod.dump(), "text/plain")),
                                                 std::nullopt};
    const json invalid = {{"alias", 5}, {"url", "local://x"}};
    walked[ErrorKind::validation] = {answer_of(api.post("/api/v1/pods/", invalid)),
                                     cli_send("POST", "/api/v1/pods/", invalid)};
    {
      httplib::Client raw("127.0.0.1", srv.port());
      httplib::Headers big_headers = {{"Authorization", std::string("Bearer ") + kKey},
                                      {"X-Padding", std::string(40 * 1024, 'h')}};
      walked[ErrorKind::headers_too_large] = {answer_of(raw.Get("/api/v1/pods/", big_headers)), std::nullopt};
    }

    // A server that cannot listen: its port is taken by the one above.
    pw::server::Settings taken = srv.server().settings();
    taken.port = srv.port();
    taken.database_url = fresh_database_url(Backend::sqlite);
    try {
      pw::server::Server second(taken);
      second.bind();
      FAIL("bound a port that is taken");
    } catch (const pw::ListenError& e) {
      CHECK(e.kind() == ErrorKind::listen);
      CHECK(e.port() == srv.port());
      CHECK(std::string(e.what()).find("cannot listen on 127.0.0.1:" + std::to_string(srv.port())) == 0);
      // What `podwrangler serve` (cli/run.cpp) exits with for it.
      CHECK(e.info().exit_code == pw::exit_code::config);
      CHECK(e.info().exit_code == pw::error_info(ErrorKind::listen).exit_code);
      not_answered.insert(ErrorKind::listen);
    }

    for (auto& [kind, w] : walked) check_row(pw::error_info(kind), url, w);
  }

  // ---- the server stopping while a command runs: the command's answer ----
  {
    TestServer srv(fresh_database_url(Backend::sqlite), [](pw::server::Settings& s) { s.shutdown_grace_s = 0.3; });
    auto api = srv.client();
    REQUIRE(api.post("/api/v1/pods/", {{"alias", "sh"}, {"url", "local://sh"}}).status == 201);
    Reply slow;
    std::thread t([&] {
      slow = srv.client().post("/api/v1/pods/sh/exec", {{"command", "sleep 30"}, {"timeout", 60}});
    });
    CHECK(wait_until([&] { return !api.get("/api/v1/commands?status=running").body["items"].empty(); }));
    srv.server().stop(0.3);
    t.join();
    walked[ErrorKind::shutting_down] = {answer_of(slow), std::nullopt};
    check_row(pw::error_info(ErrorKind::shutting_down), base_url(srv.port()), walked[ErrorKind::shutting_down]);
    CHECK(slow.body["result"]["status"] == "interrupted");
  }

  // ---- over the per-client connection cap ----
  {
    TestServer srv(fresh_database_url(Backend::sqlite),
                   [](pw::server::Settings& s) { s.max_connections_per_client = 1; });
    const std::string url = base_url(srv.port());
    HeldConnection held(srv.port());
    REQUIRE(held.connected());
    Answer over;
    // The held connection counts once the server has accepted it.
    CHECK(wait_until([&] {
      over = answer_of(httplib::Client("127.0.0.1", srv.port()).Get("/health"));
      return over.status == 503;
    }));
    walked[ErrorKind::too_many_connections] = {over, cli_exit_of([&] { pw::cli::ApiClient(url, "").get("/health"); })};
    check_row(pw::error_info(ErrorKind::too_many_connections), url, walked[ErrorKind::too_many_connections]);
  }

  // ---- the database goes away (PostgreSQL refuses every connection to it) ----
  {
    auto& pg = server_env().postgres();
    const std::string name = pg.create_database();
    TestServer srv(pg.url(name));
    const std::string url = base_url(srv.port());
    auto api = srv.client();
    REQUIRE(api.get("/api/v1/pods/").status == 200);
    pg.psql("postgres", "ALTER DATABASE \"" + name + "\" ALLOW_CONNECTIONS false");
    pg.psql("postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + name + "'");
    walked[ErrorKind::database_unavailable] = {answer_of(api.get("/api/v1/pods/")),
                                               cli_exit_of([&] { pw::cli::ApiClient(url, "").get("/api/v1/pods/"); })};
    check_row(pw::error_info(ErrorKind::database_unavailable), url, walked[ErrorKind::database_unavailable]);
    pg.psql("postgres", "ALTER DATABASE \"" + name + "\" ALLOW_CONNECTIONS true");
  }

  // ---- what only a bug or another caller of the library raises (see the top of the file) ----
  {
    RaisingServer rs;
    const std::string url = base_url(rs.port());
    pw::cli::ApiClient cli(url, "");
    for (auto [kind, path] :
         {std::pair{ErrorKind::client, "/raise/client"}, std::pair{ErrorKind::not_connected, "/raise/not_connected"},
          std::pair{ErrorKind::namespace_detection, "/raise/namespace_detection"},
          std::pair{ErrorKind::internal, "/raise/internal"},
          std::pair{ErrorKind::capsule_not_found, "/raise/capsule_not_found"},
          std::pair{ErrorKind::capsule_conflict, "/raise/capsule_conflict"},
          std::pair{ErrorKind::capsule_invalid, "/raise/capsule_invalid"},
          std::pair{ErrorKind::engine_unavailable, "/raise/engine_unavailable"},
          std::pair{ErrorKind::agent_error, "/raise/agent_error"}}) {
      httplib::Client raw("127.0.0.1", rs.port());
      walked[kind] = {answer_of(raw.Get(path)), cli_exit_of([&] { cli.get(path); })};
      check_row(pw::error_info(kind), url, walked[kind]);
    }
    // Raised in the process instead, they exit with the library's own code.
    CHECK(pw::PodNotConnectedError().info().exit_code == pw::exit_code::not_connected);
    CHECK(pw::NamespaceDetectionError("x").info().exit_code == pw::exit_code::protocol);
  }

  // Every row of the table was walked, once.
  for (const auto& row : pw::kErrors) {
    INFO("row: " << row.code);
    CHECK(walked.count(row.kind) + not_answered.count(row.kind) == 1);
  }
}

// Unit tests for cli/api_client.cpp against a throwaway in-process cpp-httplib server:
// Bearer auth, error bodies → exit codes, connection refused, NDJSON streaming, base URLs.
#include <doctest/doctest.h>

#include "cli/api_client.hpp"
#include "cli/cli_error.hpp"
#include "cli/exec.hpp"
#include "cli/exit_codes.hpp"
#include "cli/run.hpp"

#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

using namespace pw::cli;

namespace {

// Starts `srv` on a loopback ephemeral port, served by `thread`; returns the port.
int serve_in_thread(httplib::Server& srv, std::thread& thread) {
  int port = srv.bind_to_any_port("127.0.0.1");
  thread = std::thread([&srv] { srv.listen_after_bind(); });
  while (!srv.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return port;
}

void stop_serving(httplib::Server& srv, std::thread& thread) {
  srv.stop();
  thread.join();
}

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
    srv.Get("/prefix/api/v1/pods/",
            [](const httplib::Request&, httplib::Response& res) { res.set_content(R"([])", "application/json"); });
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
        std::string lines[] = {R"({"event":"start","total":3,"aliases":["a","b","c"]})"
                               "\n",
                               R"({"event":"result","index":1,"alias":"b","status":"succeeded","output":""})"
                               "\n",
                               R"({"event":"result","index":0,)",
                               R"("alias":"a","status":"failed","output":"x"})"
                               "\n",
                               R"({"event":"result","index":2,"alias":"c","status":"succeeded","output":""})"
                               "\n"
                               R"({"event":"summary","total":3})"
                               "\n"};
        for (auto& l : lines) {
          sink.write(l.data(), l.size());
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        sink.done();
        return true;
      });
    });
    srv.set_socket_options([this](int) { ++connections; });
    port = serve_in_thread(srv, thread);
  }
  ~TinyServer() { stop_serving(srv, thread); }
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

// A server that is not podwrangler (or a broken one): each "METHOD /path" answers a canned
// status, content type and body; anything else gets an HTML 404 page.
struct ForeignServer {
  struct Canned {
    int status;
    std::string type, body;
  };
  httplib::Server srv;
  std::thread thread;
  int port = 0;
  std::mutex mu;
  std::map<std::string, Canned> answers;
  ForeignServer() {
    auto any = [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu);
      auto it = answers.find(req.method + " " + req.path);
      if (it == answers.end()) {
        res.status = 404;
        res.set_content("<html><body><h1>404 Not Found</h1></body></html>", "text/html");
        return;
      }
      res.status = it->second.status;
      if (!it->second.type.empty() || !it->second.body.empty())
        res.set_content(it->second.body, it->second.type.c_str());
    };
    srv.Get(".*", any);
    srv.Post(".*", any);
    srv.Patch(".*", any);
    srv.Delete(".*", any);
    port = serve_in_thread(srv, thread);
  }
  ~ForeignServer() { stop_serving(srv, thread); }
  void answer(const std::string& key, int status, const std::string& type, const std::string& body) {
    std::lock_guard<std::mutex> lock(mu);
    answers[key] = {status, type, body};
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

// Runs the CLI in this process as `podwrangler ARGS…`, with no config file and no
// PODWRANGLER_* settings, and captures what it writes.
struct CliRun {
  int rc = -1;
  std::string out, err;
};
std::string slurp(FILE* f) {
  std::string s;
  std::rewind(f);
  char buf[65536];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  return s;
}
CliRun run_cli(std::vector<std::string> args) {
  ::setenv("PODWRANGLER_CONFIG", "/nonexistent/podwrangler.toml", 1);
  for (const char* v : {"PODWRANGLER_API_URL", "PODWRANGLER_API_KEY", "PODWRANGLER_OUTPUT", "PODWRANGLER_PROFILE"})
    ::unsetenv(v);
  args.insert(args.begin(), "podwrangler");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  FILE* out = std::tmpfile();
  FILE* err = std::tmpfile();
  int saved_out = ::dup(1), saved_err = ::dup(2);
  ::dup2(::fileno(out), 1);
  ::dup2(::fileno(err), 2);
  CliRun r;
  r.rc = pw::cli::run(static_cast<int>(args.size()), argv.data());
  std::fflush(stdout);
  std::fflush(stderr);
  ::dup2(saved_out, 1);
  ::dup2(saved_err, 2);
  ::close(saved_out);
  ::close(saved_err);
  r.out = slurp(out);
  r.err = slurp(err);
  std::fclose(out);
  std::fclose(err);
  return r;
}

bool has(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }
std::size_t lines(const std::string& s) { return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n')); }

std::string b64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// A self-signed certificate for 127.0.0.1 (trusted by nobody), as PEM files in `dir`.
void write_self_signed(const std::string& cert_path, const std::string& key_path) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  REQUIRE(key != nullptr);
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  REQUIRE(X509_sign(x, key, EVP_sha256()) > 0);
  FILE* c = std::fopen(cert_path.c_str(), "w");
  FILE* k = std::fopen(key_path.c_str(), "w");
  REQUIRE((c && k));
  PEM_write_X509(c, x);
  PEM_write_PrivateKey(k, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(c);
  std::fclose(k);
  X509_free(x);
  EVP_PKEY_free(key);
}

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
}

TEST_CASE("api client: ApiReply::is asks for the API code of an error answer, not its status") {
  ApiReply r;
  r.status = 404;
  r.body = {{"code", "pod_not_found"}, {"message", "pod 'web-1' is not registered"}};
  CHECK(r.code() == "pod_not_found");
  CHECK(r.is(pw::ErrorKind::not_found));
  CHECK_FALSE(r.is(pw::ErrorKind::route_not_found));
  r.body["code"] = "not_found";  // no such route: a wrong server or version
  CHECK(r.is(pw::ErrorKind::route_not_found));
  CHECK_FALSE(r.is(pw::ErrorKind::not_found));
  r.body["code"] = "command_failed";  // the older spelling of pod_command_failed
  CHECK(r.is(pw::ErrorKind::command));
  r.body["code"] = "some_proxy_error";
  CHECK_FALSE(r.is(pw::ErrorKind::not_found));
  r.status = 200;  // a success is never an error code
  r.body = {{"code", "pod_not_found"}};
  CHECK_FALSE(r.is(pw::ErrorKind::not_found));
  r.status = 204;
  r.body = nullptr;
  CHECK(r.code().empty());
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
  // A proxy's HTML 502 is a gateway failure (69), named as such (was: read as an API answer).
  try {
    anon.call("GET", "/text");
    FAIL("no error");
  } catch (const CliError& e) {
    CHECK(e.exit_code() == exit_code::unavailable);
    CHECK(std::string(e.what()).find("HTTP 502, text/html") != std::string::npos);
  }
  ApiReply bare;
  bare.status = 500;
  CHECK(api_error_message(bare) == "unexpected answer from the API (HTTP 500)");
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

// ---- Issue 11 item 6: the CLI never shows the API URL's credentials ---------------------------

TEST_CASE("security: an invalid API URL is not echoed with its password") {
  for (const char* bad :
       {"http://user:Sup3rPw@host:8000", "http://Sup3rPw@host", "ftp://u:Sup3rPw@h", "http://h:8000/x?token=Sup3rPw"}) {
    CAPTURE(bad);
    try {
      split_base_url(bad);
      FAIL("accepted");
    } catch (const CliError& e) {
      CHECK(e.exit_code() == exit_code::config);
      CHECK_FALSE(has(e.what(), "Sup3rPw"));
      CHECK(has(e.what(), "invalid API URL"));
    }
  }
  auto r = run_cli({"-u", "http://user:Sup3rPw@127.0.0.1:1", "pod", "list"});
  CHECK(r.rc == exit_code::config);
  CHECK_FALSE(has(r.err, "Sup3rPw"));
  CHECK(has(r.err, "http://***@127.0.0.1:1"));
  CHECK(lines(r.err) == 1);
}

TEST_CASE("security: API answers are shown redacted (error messages, pod URLs)") {
  ForeignServer s;
  s.answer(
      "POST /api/v1/pods/", 422, "application/json",
      R"({"code":"validation_error","message":"bad url wss://TOKbare42@h/exec/1/?token=Tok42&pod=p&server=https://u:Leak3dPw@x","field":"url"})");
  auto r = run_cli({"-u", s.url(), "pod", "add", "--alias", "a", "--url", "wss://h/"});
  CHECK(r.rc == exit_code::data);
  for (const char* secret : {"TOKbare42", "Tok42", "Leak3dPw"}) CHECK_FALSE(has(r.err, secret));
  // A server that does not redact (an old or hostile one): the CLI still does.
  s.answer("GET /api/v1/pods/", 200, "application/json",
           R"([{"alias":"a","url":"wss://TOKbare42@h/exec/1/?token=Tok42&pod=p","provider":"plaintty","labels":{}}])");
  for (const char* fmt : {"table", "plain", "json", "ndjson"}) {
    CAPTURE(fmt);
    r = run_cli({"-u", s.url(), "-o", fmt, "pod", "list"});
    CHECK(r.rc == 0);
    CHECK(has(r.out, "a"));
    CHECK_FALSE(has(r.out, "TOKbare42"));
    CHECK_FALSE(has(r.out, "Tok42"));
  }
}

// ---- Issue 11 item 10: a server that is not podwrangler is a protocol error (70) -------------

TEST_CASE("protocol: exec history against a server that is not podwrangler exits 70, not 'No commands'") {
  ForeignServer s;
  // python3 -m http.server answers a directory listing or an HTML 404; others answer JSON
  // of another shape.
  s.answer("GET /api/v1/commands", 200, "text/html", "<html><body>Directory listing</body></html>");
  auto r = run_cli({"-u", s.url(), "exec", "history"});
  CHECK(r.rc == exit_code::software);
  CHECK(has(r.err, "not a podwrangler API at " + s.url() + " (HTTP 200, text/html"));
  CHECK_FALSE(has(r.err, "No commands"));
  CHECK(lines(r.err) == 1);
  CHECK(r.out.empty());
  s.answer("GET /api/v1/commands", 200, "application/json", "{}");
  r = run_cli({"-u", s.url(), "exec", "history"});
  CHECK(r.rc == exit_code::software);
  CHECK(has(r.err, "\"items\" is missing"));
  s.answer("GET /api/v1/commands", 200, "application/json", R"({"items":[{"id":1}],"next_before":null})");
  r = run_cli({"-u", s.url(), "-o", "json", "exec", "history"});
  CHECK(r.rc == exit_code::software);
  CHECK(has(r.err, "result: \"alias\" is missing"));
  CHECK(r.out.empty());
  s.answer("GET /api/v1/commands", 200, "application/json", R"({"items":[],"next_before":null})");
  r = run_cli({"-u", s.url(), "exec", "history"});
  CHECK(r.rc == 0);  // the same answer from a real API: an empty history
  s.answer("GET /api/v1/commands", 200, "application/json", "not json at all");
  r = run_cli({"-u", s.url(), "exec", "history"});
  CHECK(r.rc == exit_code::software);
  CHECK(has(r.err, "application/json that is not JSON"));
}

TEST_CASE("protocol: an HTML 404 is 'not a podwrangler API' (70), not 'pod not found' (68)") {
  ForeignServer s;  // every path: HTML 404
  for (std::vector<std::string> cmd : {std::vector<std::string>{"pod", "show", "web-1"},
                                       {"pod", "remove", "web-1"},
                                       {"pod", "update", "web-1", "--label", "a=b"},
                                       {"exec", "run", "web-1", "true"},
                                       {"exec", "show", "42"},
                                       {"exec", "run-many", "true", "--all"},
                                       {"pod", "list"},
                                       {"health"}}) {
    cmd.insert(cmd.begin(), {"-u", s.url()});
    CAPTURE(cmd[2] + " " + cmd[3]);
    auto r = run_cli(cmd);
    CHECK(r.rc == exit_code::software);
    CHECK(has(r.err, "not a podwrangler API at " + s.url() + " (HTTP 404, text/html"));
    CHECK_FALSE(has(r.err, "not found"));
    CHECK(lines(r.err) == 1);
  }
  // A JSON 404 without our {"code","message"} is not ours either.
  s.answer("GET /api/v1/pods/web-1", 404, "application/json", R"({"error":"Not Found"})");
  auto r = run_cli({"-u", s.url(), "pod", "show", "web-1"});
  CHECK(r.rc == exit_code::software);
  CHECK(has(r.err, "(HTTP 404, JSON without \"code\" and \"message\""));
  // Ours: a pod that does not exist is still 68.
  s.answer("GET /api/v1/pods/web-1", 404, "application/json",
           R"({"code":"pod_not_found","message":"pod 'web-1' is not registered"})");
  r = run_cli({"-u", s.url(), "pod", "show", "web-1"});
  CHECK(r.rc == exit_code::not_found);
}

TEST_CASE("protocol: a 404 'not_found' (no such route) is unavailable (69), never 'pod not found' (68)") {
  ForeignServer s;
  // What a podwrangler server answers for a route it does not have (a wrong --api-url
  // prefix or another version), and what it answers for an alias it does not know.
  auto answer_all = [&](const std::string& code, const std::string& message) {
    std::string body = nlohmann::json{{"code", code}, {"message", message}}.dump();
    for (const char* key : {"GET /api/v1/pods/web-1", "PATCH /api/v1/pods/web-1", "DELETE /api/v1/pods/web-1",
                            "POST /api/v1/pods/web-1/exec", "GET /api/v1/commands/42"})
      s.answer(key, 404, "application/json", body);
  };
  const std::vector<std::vector<std::string>> commands = {{"pod", "show", "web-1"},
                                                          {"pod", "update", "web-1", "--label", "a=b"},
                                                          {"pod", "update", "web-1", "--clear-labels"},
                                                          {"pod", "remove", "web-1"},
                                                          {"exec", "run", "web-1", "true"},
                                                          {"exec", "show", "42"}};
  answer_all("not_found", "no such endpoint");
  for (auto cmd : commands) {
    cmd.insert(cmd.begin(), {"-u", s.url()});
    CAPTURE(cmd[2] + " " + cmd[3] + " " + cmd.back());
    auto r = run_cli(cmd);
    CHECK(r.rc == exit_code::unavailable);
    CHECK(has(r.err, "error: no such endpoint"));
    CHECK(has(r.err, "is " + s.url() + " a podwrangler API of this version?"));
    CHECK_FALSE(has(r.err, "not found"));
    CHECK_FALSE(has(r.err, "no command with id"));
    CHECK(lines(r.err) == 1);
  }
  answer_all("pod_not_found", "pod 'web-1' is not registered");
  for (auto cmd : commands) {
    if (cmd[0] == "exec" && cmd[1] == "show") continue;
    cmd.insert(cmd.begin(), {"-u", s.url()});
    CAPTURE(cmd[2] + " " + cmd[3] + " " + cmd.back());
    auto r = run_cli(cmd);
    CHECK(r.rc == exit_code::not_found);
    CHECK(has(r.err, "error: pod 'web-1' not found"));
  }
  s.answer("GET /api/v1/commands/42", 404, "application/json",
           R"({"code":"command_not_found","message":"no command 42"})");
  auto r = run_cli({"-u", s.url(), "exec", "show", "42"});
  CHECK(r.rc == exit_code::not_found);
  CHECK(has(r.err, "error: no command with id 42 in the history"));
}

TEST_CASE("protocol: JSON of the wrong shape is exit 70 for every command") {
  ForeignServer s;
  struct Case {
    std::string key;
    std::string body;
    std::vector<std::string> cmd;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"GET /api/v1/pods/", R"({"pods":[]})", {"pod", "list"}, "the pod list is not a JSON array"},
      {"GET /api/v1/pods/", R"([{"alias":"a"}])", {"pod", "list"}, "pod: \"url\" is missing"},
      {"GET /api/v1/pods/web-1", R"({"alias":1})", {"pod", "show", "web-1"}, "pod: \"alias\" is not a string"},
      {"POST /api/v1/pods/web-1/exec",
       R"({"ok":true})",
       {"exec", "run", "web-1", "true"},
       "result: \"alias\" is missing"},
      {"POST /api/v1/pods/web-1/exec",
       R"({"alias":"web-1","status":"great","output":""})",
       {"exec", "run", "web-1", "true"},
       "unknown status"},
      {"GET /api/v1/commands/42", R"([])", {"exec", "show", "42"}, "not a JSON object"},
      {"GET /health", R"([])", {"health"}, "the health answer is not a JSON object"},
      {"POST /api/v1/exec/stream",
       R"({"results":[]})",
       {"exec", "run-many", "true", "--all"},
       "expected an application/x-ndjson event stream"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.key);
    CAPTURE(c.body);
    s.answer(c.key, 200, "application/json", c.body);
    std::vector<std::string> cmd = c.cmd;
    cmd.insert(cmd.begin(), {"-u", s.url()});
    auto r = run_cli(cmd);
    CHECK(r.rc == exit_code::software);
    CHECK(has(r.err, c.says));
    CHECK(lines(r.err) == 1);
  }
  // An event stream that is not ours.
  s.answer("POST /api/v1/exec/stream", 200, "application/x-ndjson", "{\"event\":\"summary\",\"total\":0}\n");
  auto r = run_cli({"-u", s.url(), "exec", "run-many", "true", "--all"});
  CHECK(r.rc == exit_code::software);
  CHECK(has(r.err, "no start event"));
  s.answer("POST /api/v1/exec/stream", 200, "application/x-ndjson", "<html>\n");
  r = run_cli({"-u", s.url(), "exec", "run-many", "true", "--all"});
  CHECK(r.rc == exit_code::software);
  CHECK(has(r.err, "not JSON"));
}

// ---- Fidelity: --output raw writes the exact bytes ------------------------------------------

TEST_CASE("fidelity: exec run --output raw writes all 256 byte values unchanged") {
  ForeignServer s;
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  nlohmann::json result = {{"id", 1},
                           {"alias", "web-1"},
                           {"command", "cat blob"},
                           {"status", "succeeded"},
                           {"exit_code", 0},
                           {"output", "lossy \xEF\xBF\xBD rendition"},
                           {"output_b64", b64(bytes)},
                           {"error", nullptr},
                           {"duration", 0.1},
                           {"truncated", false}};
  s.answer("POST /api/v1/pods/web-1/exec", 200, "application/json", result.dump());
  s.answer("GET /api/v1/commands/1", 200, "application/json", result.dump());
  auto r = run_cli({"-u", s.url(), "-o", "raw", "exec", "run", "web-1", "cat", "blob"});
  CHECK(r.rc == 0);
  CHECK(r.out == bytes);
  r = run_cli({"-u", s.url(), "exec", "run", "--output", "raw", "web-1", "cat", "blob"});
  CHECK(r.out == bytes);
  r = run_cli({"-u", s.url(), "-o", "raw", "exec", "show", "1"});
  CHECK(r.rc == 0);
  CHECK(r.out == bytes);
  // Default output: the text rendition, as before.
  r = run_cli({"-u", s.url(), "exec", "run", "web-1", "cat", "blob"});
  CHECK(r.out == "lossy \xEF\xBF\xBD rendition");
  // Valid UTF-8 (no output_b64): raw writes `output` with nothing added (no newline).
  result.erase("output_b64");
  result["output"] = std::string("h\xC3\xA9llo\0x", 8);
  s.answer("POST /api/v1/pods/web-1/exec", 200, "application/json", result.dump());
  r = run_cli({"-u", s.url(), "-o", "raw", "exec", "run", "web-1", "x"});
  CHECK(r.out == std::string("h\xC3\xA9llo\0x", 8));
  // Broken base64 is the protocol error, not garbage on stdout.
  result["output_b64"] = "not base64!";
  s.answer("POST /api/v1/pods/web-1/exec", 200, "application/json", result.dump());
  r = run_cli({"-u", s.url(), "-o", "raw", "exec", "run", "web-1", "x"});
  CHECK(r.rc == exit_code::software);
  CHECK(r.out.empty());
  CHECK(has(r.err, "output_b64"));
}

// ---- Fidelity: TLS failures are named ----------------------------------------------------------

TEST_CASE("fidelity: https:// against a plain-HTTP port says the server does not speak TLS") {
  TinyServer s;
  std::string url = "https://127.0.0.1:" + std::to_string(s.port);
  ApiClient c(url, "");
  try {
    c.get("/health");
    FAIL("no error");
  } catch (const CliError& e) {
    CHECK(e.exit_code() == exit_code::unavailable);
    std::string w = e.what();
    CHECK(w == "TLS handshake with the API at " + url + " failed: the server does not speak TLS (a plain-HTTP port?)");
    CHECK_FALSE(has(w, "Unknown error"));
    CHECK_FALSE(has(w, "SSLConnection"));
  }
  auto r = run_cli({"-u", url, "health"});
  CHECK(r.rc == exit_code::unavailable);
  CHECK(has(r.err, "does not speak TLS"));
  CHECK(lines(r.err) == 1);
}

TEST_CASE("fidelity: an untrusted certificate is named, and a closed port is 'connection refused'") {
  char tmpl[] = "/tmp/pw-cli-tls-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  std::string dir = tmpl;
  write_self_signed(dir + "/cert.pem", dir + "/key.pem");
  {
    httplib::SSLServer srv((dir + "/cert.pem").c_str(), (dir + "/key.pem").c_str());
    REQUIRE(srv.is_valid());
    srv.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"status":"ok"})", "application/json");
    });
    std::thread t;
    int port = serve_in_thread(srv, t);
    std::string url = "https://127.0.0.1:" + std::to_string(port);
    ApiClient c(url, "");
    try {
      c.get("/health");
      FAIL("no error");
    } catch (const CliError& e) {
      CHECK(e.exit_code() == exit_code::unavailable);
      std::string w = e.what();
      CAPTURE(w);
      CHECK(has(w, "certificate of the API at " + url + " is not trusted: self"));
      CHECK(has(e.hint(), "SSL_CERT_FILE"));
    }
    stop_serving(srv, t);
  }
  std::filesystem::remove_all(dir);
  std::string closed = "https://127.0.0.1:" + std::to_string(free_port());
  auto r = run_cli({"-u", closed, "health"});
  CHECK(r.rc == exit_code::unavailable);
  CHECK(has(r.err, "cannot reach the API at " + closed + ": connection refused"));
}

// The REST API end to end: a real Server on loopback, a real SQLite file or PostgreSQL 15
// database, pods that are local PTY shells and websocketd+TLS shells.
#include "api_fixture.hpp"

#include <podwrangler/errors.hpp>

#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

using namespace pw::testing;
using nlohmann::json;

namespace {

constexpr const char* kToken = "tok-9f8e7d6c5b4a-secret";

json local_pod(const std::string& alias, json labels = json::object()) {
  return {{"alias", alias}, {"url", "local://" + alias}, {"provider", "local"}, {"labels", labels}};
}

// Everything observable about the pods table.
json all_pods(ApiClient& api) { return api.get("/api/v1/pods/").body; }

std::string wss_url(const Websocketd& w, const std::string& pod) {
  return w.url("/exec/45582/?token=" + std::string(kToken) + "&pod=" + pod);
}

}  // namespace

TEST_CASE("health reports version, database kind and reachability, and needs no key") {
  for_each_backend([](Backend b, const std::string& db) {
    TestServer srv(db, [](pw::server::Settings& s) { s.api_key = pw::SecretString("k-0123456789abcdef"); });
    auto api = srv.client();
    auto r = api.get("/health");
    REQUIRE(r.status == 200);
    CHECK(r.body["status"] == "ok");
    CHECK(r.body["version"] == "0.1.0");
    CHECK(r.body["database"]["kind"] == backend_name(b));
    CHECK(r.body["database"]["reachable"] == true);
    CHECK(r.body["uptime"].get<double>() >= 0);
    CHECK(api.get("/health/").status == 200);
  });
}

TEST_CASE("auth: every endpoint but /health needs the bearer key") {
  TestServer srv(fresh_database_url(Backend::sqlite),
                 [](pw::server::Settings& s) { s.api_key = pw::SecretString("k-0123456789abcdef"); });
  auto anon = srv.client();
  auto wrong = srv.client("k-0123456789abcdeX");
  auto good = srv.client("k-0123456789abcdef");
  for (const char* path : {"/api/v1/pods/", "/api/v1/commands", "/openapi.json", "/docs"}) {
    CAPTURE(path);
    auto r = anon.get(path);
    CHECK(r.status == 401);
    CHECK(r.body["code"] == "unauthorized");
    CHECK(wrong.get(path).status == 401);
  }
  CHECK(anon.post("/api/v1/pods/", local_pod("a")).status == 401);
  CHECK(good.get("/api/v1/pods/").status == 200);
  CHECK(good.post("/api/v1/pods/", local_pod("a")).status == 201);
  CHECK(good.get("/api/v1/pods/").body.size() == 1);
  // The key never comes back in any body.
  CHECK(anon.get("/api/v1/pods/").raw.find("0123456789abcdef") == std::string::npos);
}

TEST_CASE("settings: no key on a non-loopback address is refused") {
  pw::server::Settings s;
  s.host = "0.0.0.0";
  CHECK_THROWS_AS(s.validate(), pw::PodConfigValidationError);
  s.insecure_no_auth = true;
  CHECK_NOTHROW(s.validate());
  s.insecure_no_auth = false;
  s.api_key = pw::SecretString("k-0123456789abcdef");
  CHECK_NOTHROW(s.validate());
  s.tls_cert = "x.pem";
  CHECK_THROWS_AS(s.validate(), pw::PodConfigValidationError);
  CHECK(pw::server::is_loopback_host("127.0.0.1"));
  CHECK(pw::server::is_loopback_host("127.1.2.3"));
  CHECK(pw::server::is_loopback_host("::1"));
  CHECK(pw::server::is_loopback_host("localhost"));
  CHECK_FALSE(pw::server::is_loopback_host("10.0.0.1"));
  CHECK_FALSE(pw::server::is_loopback_host("::"));
}

TEST_CASE("pods: register, list, show, update, remove") {
  for_each_backend([](Backend, const std::string& db) {
    TestServer srv(db);
    auto api = srv.client();
    CHECK(api.get("/api/v1/pods/").body == json::array());
    CHECK(api.get("/api/v1/pods").body == json::array());  // without the trailing slash

    std::string url = "wss://k8s.example.com/exec/45582/?token=" + std::string(kToken) + "&pod=my-app-abc";
    auto r = api.post("/api/v1/pods/", {{"alias", "prod-web"}, {"url", url}, {"labels", {{"env", "prod"}}}});
    REQUIRE(r.status == 201);
    CHECK(r.body["alias"] == "prod-web");
    CHECK(r.body["provider"] == "plaintty");  // from the URL scheme
    CHECK(r.body["url"].get<std::string>().find(kToken) == std::string::npos);
    CHECK(r.body["url"].get<std::string>().find("token=***") != std::string::npos);
    CHECK(r.body["labels"] == json{{"env", "prod"}});
    CHECK(r.body["created_at"].get<std::string>().size() == 24);
    CHECK(r.raw.find(kToken) == std::string::npos);

    CHECK(api.post("/api/v1/pods", local_pod("web-2", {{"env", "staging"}})).status == 201);
    auto list = api.get("/api/v1/pods/");
    REQUIRE(list.body.size() == 2);
    CHECK(list.body[0]["alias"] == "prod-web");
    CHECK(list.body[1]["alias"] == "web-2");
    CHECK(list.raw.find(kToken) == std::string::npos);
    auto sel = api.get("/api/v1/pods/?selector=env%3Dstaging");
    REQUIRE(sel.body.size() == 1);
    CHECK(sel.body[0]["alias"] == "web-2");
    CHECK(api.get("/api/v1/pods/?selector=env=nope").body == json::array());
    CHECK(api.get("/api/v1/pods/?selector=bad%20key=x").status == 422);

    auto one = api.get("/api/v1/pods/prod-web");
    CHECK(one.status == 200);
    CHECK(one.body == r.body);
    CHECK(api.get("/api/v1/pods/prod-web/").status == 200);

    // Duplicate alias → 409, nothing changed.
    auto before = all_pods(api);
    auto dup = api.post("/api/v1/pods/", local_pod("web-2"));
    CHECK(dup.status == 409);
    CHECK(dup.body["code"] == "conflict");
    CHECK(all_pods(api) == before);

    auto p = api.patch("/api/v1/pods/web-2", {{"labels", {{"env", "prod"}, {"tier", "web"}}}});
    REQUIRE(p.status == 200);
    CHECK(p.body["labels"] == json{{"env", "prod"}, {"tier", "web"}});
    CHECK(p.body["created_at"] == before[1]["created_at"]);
    CHECK(api.get("/api/v1/pods/?selector=env=prod").body.size() == 2);
    auto pu = api.patch("/api/v1/pods/web-2/", {{"url", "local://renamed"}});
    REQUIRE(pu.status == 200);
    CHECK(pu.body["url"] == "local://renamed");
    CHECK(pu.body["provider"] == "local");
    CHECK(api.patch("/api/v1/pods/nope", {{"labels", json::object()}}).status == 404);

    CHECK(api.del("/api/v1/pods/web-2").status == 204);
    CHECK(api.get("/api/v1/pods/web-2").status == 404);
    auto gone = api.del("/api/v1/pods/web-2");
    CHECK(gone.status == 404);
    CHECK(gone.body["code"] == "pod_not_found");
    CHECK(all_pods(api).size() == 1);
  });
}

TEST_CASE("pods: invalid input is a 4xx naming the problem, and the database is unchanged") {
  for_each_backend([](Backend, const std::string& db) {
    TestServer srv(db, [](pw::server::Settings& s) { s.max_body_bytes = 64 * 1024; });
    auto api = srv.client();
    REQUIRE(api.post("/api/v1/pods/", local_pod("keep")).status == 201);
    auto before = all_pods(api);

    auto expect = [&](const Reply& r, int status, const std::string& code, const std::string& field = "") {
      CAPTURE(r.raw);
      CHECK(r.status == status);
      CHECK(r.body["code"] == code);
      CHECK(r.body["message"].is_string());
      if (!field.empty()) CHECK(r.body["field"] == field);
      CHECK(r.raw.find("SELECT") == std::string::npos);
      CHECK(r.raw.find("sqlite") == std::string::npos);
      CHECK(all_pods(api) == before);
    };
    expect(api.send("POST", "/api/v1/pods/", "{\"alias\": \"x\", "), 400, "bad_request");
    expect(api.send("POST", "/api/v1/pods/", "[1,2]"), 400, "bad_request");
    expect(api.send("POST", "/api/v1/pods/", "alias=x", "application/x-www-form-urlencoded"), 415,
           "unsupported_media_type");
    expect(api.send("POST", "/api/v1/pods/", std::string(200 * 1024, ' ')), 413, "payload_too_large");
    std::string deep(5000, '[');
    expect(api.send("POST", "/api/v1/pods/", "{\"labels\":" + deep + std::string(5000, ']') + "}"), 422,
           "validation_error");
    expect(api.post("/api/v1/pods/", {{"url", "local://a"}}), 422, "validation_error", "alias");
    expect(api.post("/api/v1/pods/", {{"alias", "a"}}), 422, "validation_error", "url");
    expect(api.post("/api/v1/pods/", {{"alias", 5}, {"url", "local://a"}}), 422, "validation_error", "alias");
    expect(api.post("/api/v1/pods/", {{"alias", "a"}, {"url", "local://a"}, {"extra", 1}}), 422, "validation_error",
           "extra");
    for (std::string bad : std::vector<std::string>{"../../etc/passwd", "a/b", "pod\x01", "x'; DROP TABLE pods;--",
                                                    "ünïcödé", "-leading", "", std::string(64, 'a'), "a b", "a\nb"}) {
      CAPTURE(bad);
      expect(api.post("/api/v1/pods/", {{"alias", bad}, {"url", "local://a"}}), 422, "validation_error", "alias");
    }
    expect(api.post("/api/v1/pods/", {{"alias", "a"}, {"url", "ftp://x/y"}}), 422, "validation_error", "url");
    expect(api.post("/api/v1/pods/", {{"alias", "a"}, {"url", "wss://h/exec/1/?pod=x"}}), 422, "validation_error",
           "url");  // no token
    expect(api.post("/api/v1/pods/", {{"alias", "a"}, {"url", "local://a"}, {"provider", "nope"}}), 422,
           "validation_error", "provider");
    expect(api.post("/api/v1/pods/", {{"alias", "a"}, {"url", "local://a"}, {"labels", {{"k", 1}}}}), 422,
           "validation_error");
    expect(api.post("/api/v1/pods/", {{"alias", "a"}, {"url", "local://a"}, {"labels", {{"bad key", "v"}}}}), 422,
           "validation_error");
    // A token in a rejected URL is not echoed back.
    auto r = api.post("/api/v1/pods/", {{"alias", "a"}, {"url", std::string("wss://h/x?token=") + kToken}});
    CHECK(r.status == 422);
    CHECK(r.raw.find(kToken) == std::string::npos);
    expect(api.patch("/api/v1/pods/keep", {{"url", "nope://x"}}), 422, "validation_error", "url");
    expect(api.patch("/api/v1/pods/keep", {{"alias", "renamed"}}), 422, "validation_error", "alias");
    // Path traversal and odd aliases in paths are simply unknown pods.
    CHECK(api.get("/api/v1/pods/..%2F..%2Fetc").status == 404);
    CHECK(api.get("/api/v1/pods/%27%20OR%201%3D1--").status == 404);
    CHECK(api.del("/api/v1/pods/%00").status == 404);
    CHECK(api.get("/api/v1/nothing-here").body["code"] == "not_found");
    CHECK(all_pods(api) == before);
  });
}

TEST_CASE("exec on one pod: warm session, exit codes, check, timeout, history") {
  for_each_backend([](Backend, const std::string& db) {
    TestServer srv(db);
    auto api = srv.client();
    REQUIRE(api.post("/api/v1/pods/", local_pod("l1")).status == 201);

    auto r = api.post("/api/v1/pods/l1/exec", {{"command", "echo hello; echo $$ > /dev/null"}});
    REQUIRE(r.status == 200);
    CHECK(r.body["output"] == "hello\n");
    CHECK(r.body["exit_code"] == 0);
    CHECK(r.body["status"] == "succeeded");
    CHECK(r.body["id"].get<long>() > 0);

    // The same shell serves the next request (warm pool): its PID and state persist.
    auto pid1 = api.post("/api/v1/pods/l1/exec", {{"command", "echo $$; export KEEP=1"}}).body["output"];
    auto pid2 = api.post("/api/v1/pods/l1/exec/", {{"command", "echo $$ $KEEP"}}).body["output"];
    CHECK(pid2.get<std::string>() == pid1.get<std::string>().substr(0, pid1.get<std::string>().size() - 1) + " 1\n");

    auto f = api.post("/api/v1/pods/l1/exec", {{"command", "echo oops >&2; exit 3"}});
    CHECK(f.status == 200);
    CHECK(f.body["status"] == "failed");
    CHECK(f.body["exit_code"] == 3);
    CHECK(f.body["output"] == "oops\n");
    auto c = api.post("/api/v1/pods/l1/exec", {{"command", "false"}, {"check", true}});
    CHECK(c.status == 422);
    CHECK(c.body["code"] == "pod_command_failed");
    CHECK(c.body["result"]["exit_code"] == 1);

    auto t = api.post("/api/v1/pods/l1/exec", {{"command", "echo partial; sleep 5"}, {"timeout", 0.5}});
    CHECK(t.status == 504);
    CHECK(t.body["code"] == "pod_command_timeout");
    CHECK(t.body["result"]["status"] == "timeout");
    CHECK(t.body["result"]["output"] == "partial\n");
    // The session is usable right after a timeout.
    CHECK(api.post("/api/v1/pods/l1/exec", {{"command", "echo after"}}).body["output"] == "after\n");

    CHECK(api.post("/api/v1/pods/nope/exec", {{"command", "true"}}).status == 404);
    CHECK(api.post("/api/v1/pods/l1/exec", {{"command", ""}}).status == 422);
    CHECK(api.post("/api/v1/pods/l1/exec", {{"command", "true"}, {"timeout", -1}}).status == 422);
    CHECK(api.post("/api/v1/pods/l1/exec", {{"command", "true"}, {"timeout", "5"}}).status == 422);
    CHECK(api.post("/api/v1/pods/l1/exec", {{"command", "true"}, {"bogus", 1}}).status == 422);

    // History: newest first, filters, cursor pagination, single rows.
    auto h = api.get("/api/v1/commands?alias=l1");
    REQUIRE(h.status == 200);
    auto items = h.body["items"];
    REQUIRE(items.size() == 7);
    CHECK(items[0]["command"] == "echo after");
    CHECK(items[1]["status"] == "timeout");
    CHECK(items[1]["output"] == "partial\n");
    CHECK(items.back()["output"] == "hello\n");
    CHECK(api.get("/api/v1/commands?status=failed").body["items"].size() == 2);
    CHECK(api.get("/api/v1/commands?status=timeout").body["items"].size() == 1);
    CHECK(api.get("/api/v1/commands?status=bogus").status == 422);
    CHECK(api.get("/api/v1/commands?limit=0").status == 422);
    CHECK(api.get("/api/v1/commands?since=yesterday").status == 422);
    CHECK(api.get("/api/v1/commands?since=2000-01-01T00:00:00Z").body["items"].size() == 7);
    CHECK(api.get("/api/v1/commands?since=4000000000").body["items"].empty());
    std::vector<long> seen;
    std::string path = "/api/v1/commands?limit=3";
    for (int page = 0; page < 5; ++page) {
      auto pg = api.get(path);
      for (auto& it : pg.body["items"]) seen.push_back(it["id"].get<long>());
      if (pg.body["next_before"].is_null()) break;
      path = "/api/v1/commands?limit=3&before=" + std::to_string(pg.body["next_before"].get<long>());
    }
    REQUIRE(seen.size() == 7);
    CHECK(std::is_sorted(seen.rbegin(), seen.rend()));
    auto one = api.get("/api/v1/commands/" + std::to_string(seen.back()));
    CHECK(one.status == 200);
    CHECK(one.body["command"] == "echo hello; echo $$ > /dev/null");
    CHECK(api.get("/api/v1/commands/999999").status == 404);
    CHECK(api.get("/api/v1/commands/abc").body["code"] == "command_not_found");
  });
}

TEST_CASE("exec over websocketd+TLS: the token stays out of results, history and errors") {
  auto& env = server_env();
  Websocketd w(env.dir, pty_shell_program(), &env.pki);
  TestServer srv(fresh_database_url(Backend::sqlite));
  auto api = srv.client();
  REQUIRE(api.post("/api/v1/pods/", {{"alias", "tls-1"}, {"url", wss_url(w, "tls-pod")}}).status == 201);
  auto r = api.post("/api/v1/pods/tls-1/exec", {{"command", "echo over-tls"}});
  REQUIRE(r.status == 200);
  CHECK(r.body["output"] == "over-tls\n");
  // Pod gone: 502 with a clear message, no token.
  w.kill_now();
  auto dead = api.post("/api/v1/pods/tls-1/exec", {{"command", "echo again"}, {"timeout", 3}});
  CHECK(dead.status == 502);
  CHECK(dead.body["code"] == "pod_connection_error");
  CHECK(dead.body["result"]["status"] == "error");
  for (const auto& raw : {r.raw, dead.raw, api.get("/api/v1/commands").raw, api.get("/api/v1/pods/").raw})
    CHECK(raw.find(kToken) == std::string::npos);
  // The pod comes back: a fresh session is made transparently.
  w.restart();
  auto back = api.post("/api/v1/pods/tls-1/exec", {{"command", "echo back"}});
  CHECK(back.status == 200);
  CHECK(back.body["output"] == "back\n");
}

TEST_CASE("a PATCHed URL gets a new session") {
  TestServer srv(fresh_database_url(Backend::sqlite));
  auto api = srv.client();
  REQUIRE(api.post("/api/v1/pods/", local_pod("p")).status == 201);
  auto a = api.post("/api/v1/pods/p/exec", {{"command", "echo $$"}}).body["output"];
  REQUIRE(api.patch("/api/v1/pods/p", {{"url", "local://p?cwd=/tmp"}}).status == 200);
  auto b = api.post("/api/v1/pods/p/exec", {{"command", "echo $$; pwd"}}).body["output"].get<std::string>();
  CHECK(b.find(a.get<std::string>()) == std::string::npos);
  CHECK(b.find("/tmp\n") != std::string::npos);
}

TEST_CASE("fan-out over 50 pods with one dead and one timing out") {
  for_each_backend([](Backend, const std::string& db) {
    auto& env = server_env();
    Websocketd w(env.dir, pipe_shell_program(), &env.pki);
    TempDir slow;
    std::ofstream(slow.file("slow")) << "x";
    TestServer srv(db);
    auto api = srv.client();
    std::vector<std::string> aliases;
    for (int i = 0; i < 50; ++i) {
      std::string a = "pod-" + std::to_string(100 + i);
      json pod;
      if (i == 7)
        pod = {{"alias", a}, {"url", "wss://127.0.0.1:1/exec/1/?token=t&pod=dead"}};  // nothing listens
      else if (i == 13)
        pod = {{"alias", a}, {"url", "local://" + a + "?cwd=" + slow.path().string()}};
      else if (i % 2 == 0)
        pod = {{"alias", a}, {"url", wss_url(w, a)}};
      else
        pod = local_pod(a);
      pod["labels"] = {{"fleet", "f1"}, {"half", i < 25 ? "a" : "b"}};
      REQUIRE(api.post("/api/v1/pods/", pod).status == 201);
      aliases.push_back(a);
    }
    std::reverse(aliases.begin(), aliases.end());  // request order, not alias order
    aliases.insert(aliases.begin() + 3, "no-such-pod");
    json req = {
        {"command", "test -e slow && sleep 10; echo ok"}, {"aliases", aliases}, {"parallel", 16}, {"timeout", 2}};
    auto r = api.post("/api/v1/exec", req);
    REQUIRE(r.status == 200);
    auto results = r.body["results"];
    REQUIRE(results.size() == aliases.size());
    for (std::size_t i = 0; i < aliases.size(); ++i) {
      CAPTURE(aliases[i]);
      CHECK(results[i]["alias"] == aliases[i]);
      if (aliases[i] == "pod-107") {
        CHECK(results[i]["status"] == "error");
      } else if (aliases[i] == "pod-113") {
        CHECK(results[i]["status"] == "timeout");
      } else if (aliases[i] == "no-such-pod") {
        CHECK(results[i]["status"] == "error");
        CHECK(results[i]["id"].is_null());
      } else {
        CHECK(results[i]["status"] == "succeeded");
        CHECK(results[i]["output"] == "ok\n");
      }
    }
    CHECK(r.body["summary"] ==
          json{{"total", 51}, {"succeeded", 48}, {"failed", 0}, {"timeout", 1}, {"error", 2}, {"interrupted", 0}});
    // Every pod's command is in the history (the unknown alias is not).
    auto h = api.get("/api/v1/commands?limit=1000");
    CHECK(h.body["items"].size() == 50);

    // By selector, and streamed as NDJSON.
    auto sel = api.post("/api/v1/exec", {{"command", "echo sel"}, {"selector", "half=a"}});
    REQUIRE(sel.status == 200);
    CHECK(sel.body["summary"]["total"] == 25);
    CHECK(sel.body["results"][0]["alias"] == "pod-100");  // alias order
    auto st =
        api.send("POST", "/api/v1/exec/stream", json{{"command", "echo s"}, {"all", true}, {"timeout", 2}}.dump());
    REQUIRE(st.status == 200);
    CHECK(st.content_type.find("application/x-ndjson") == 0);
    std::vector<json> events;
    std::size_t pos = 0;
    while (pos < st.raw.size()) {
      auto nl = st.raw.find('\n', pos);
      REQUIRE(nl != std::string::npos);
      events.push_back(json::parse(st.raw.substr(pos, nl - pos)));
      pos = nl + 1;
    }
    REQUIRE(events.size() == 52);
    CHECK(events.front()["event"] == "start");
    CHECK(events.front()["total"] == 50);
    CHECK(events.back()["event"] == "summary");
    CHECK(events.back()["succeeded"] == 49);
    std::set<long> indexes;
    for (std::size_t i = 1; i < 51; ++i) {
      CHECK(events[i]["event"] == "result");
      indexes.insert(events[i]["index"].get<long>());
    }
    CHECK(indexes.size() == 50);

    // Bad requests.
    CHECK(api.post("/api/v1/exec", {{"command", "x"}}).status == 422);
    CHECK(api.post("/api/v1/exec", {{"command", "x"}, {"all", true}, {"selector", "a=b"}}).status == 422);
    CHECK(api.post("/api/v1/exec", {{"command", "x"}, {"aliases", {"a", "a"}}}).status == 422);
    CHECK(api.post("/api/v1/exec", {{"command", "x"}, {"aliases", {"../x"}}}).status == 422);
    CHECK(api.post("/api/v1/exec", {{"command", "x"}, {"all", true}, {"parallel", 0}}).status == 422);
    CHECK(api.post("/api/v1/exec", {{"command", "x"}, {"selector", "nomatch=1"}}).body["summary"]["total"] == 0);
  });
}

TEST_CASE("graceful shutdown: commands finish within the grace, the rest are recorded interrupted") {
  auto db = fresh_database_url(Backend::sqlite);
  {
    TestServer srv(db);
    auto api = srv.client();
    REQUIRE(api.post("/api/v1/pods/", local_pod("g1")).status == 201);
    REQUIRE(api.post("/api/v1/pods/", local_pod("g2")).status == 201);
    // Each command first leaves a mark, so the stop comes once both are running.
    TempDir marks;
    auto marked = [&](const std::string& alias) { return "touch '" + marks.file(alias) + "'; "; };
    const std::string quick_command = marked("g1") + "sleep 0.5; echo done";
    const std::string slow_command = marked("g2") + "sleep 30";
    Reply quick, slow;
    std::thread t1([&] { quick = srv.client().post("/api/v1/pods/g1/exec", {{"command", quick_command}}); });
    std::thread t2([&] {
      json body = {{"command", slow_command}, {"timeout", 60}};
      slow = srv.client().post("/api/v1/pods/g2/exec", body);
    });
    CHECK(wait_until(
        [&] { return std::filesystem::exists(marks.file("g1")) && std::filesystem::exists(marks.file("g2")); }));
    auto t0 = std::chrono::steady_clock::now();
    srv.server().stop(1.5);
    auto took = std::chrono::steady_clock::now() - t0;
    t1.join();
    t2.join();
    CHECK(took < std::chrono::seconds(10));
    CHECK(quick.status == 200);
    CHECK(quick.body["output"] == "done\n");
    CHECK(slow.status == 503);
    CHECK(slow.body["result"]["status"] == "interrupted");
  }
  TestServer again(db);
  auto api = again.client();
  CHECK(api.get("/api/v1/commands?status=interrupted").body["items"].size() == 1);
  CHECK(api.get("/api/v1/commands?status=succeeded").body["items"].size() == 1);
  CHECK(api.get("/api/v1/commands?status=running").body["items"].empty());
}

TEST_CASE("two servers on one PostgreSQL database work together") {
  auto db = fresh_database_url(Backend::postgresql);
  TestServer a(db), b(db);
  auto ca = a.client(), cb = b.client();
  REQUIRE(ca.post("/api/v1/pods/", local_pod("shared")).status == 201);
  CHECK(cb.get("/api/v1/pods/shared").status == 200);
  CHECK(cb.post("/api/v1/pods/", local_pod("shared")).status == 409);
  CHECK(cb.post("/api/v1/pods/shared/exec", {{"command", "echo from-b"}}).body["output"] == "from-b\n");
  CHECK(ca.post("/api/v1/pods/shared/exec", {{"command", "echo from-a"}}).body["output"] == "from-a\n");
  // B sees A's history and vice versa; a URL changed through B is used by A.
  CHECK(cb.get("/api/v1/commands").body["items"].size() == 2);
  REQUIRE(cb.patch("/api/v1/pods/shared", {{"url", "local://shared?cwd=/tmp"}}).status == 200);
  CHECK(ca.post("/api/v1/pods/shared/exec", {{"command", "pwd"}}).body["output"] == "/tmp\n");
  REQUIRE(cb.del("/api/v1/pods/shared").status == 204);
  CHECK(ca.post("/api/v1/pods/shared/exec", {{"command", "pwd"}}).status == 404);
  // Concurrent registrations through both: each alias exactly once.
  std::vector<std::thread> ts;
  std::atomic<int> created{0}, conflicts{0};
  for (int i = 0; i < 8; ++i)
    ts.emplace_back([&, i] {
      auto c = (i % 2 ? a : b).client();
      for (int k = 0; k < 10; ++k) {
        int s = c.post("/api/v1/pods/", local_pod("c-" + std::to_string(k))).status;
        (s == 201 ? created : conflicts)++;
      }
    });
  for (auto& t : ts) t.join();
  CHECK(created == 10);
  CHECK(conflicts == 70);
}

TEST_CASE("warm pool: bounded (least recently used goes) and idle sessions closed after the TTL") {
  TestServer srv(fresh_database_url(Backend::sqlite), [](pw::server::Settings& s) {
    s.pool_max_sessions = 2;
    s.pool_idle_ttl_s = 2.0;
  });
  auto api = srv.client();
  for (const char* a : {"a", "b", "c"}) REQUIRE(api.post("/api/v1/pods/", local_pod(a)).status == 201);
  auto pid = [&](const std::string& a) {
    auto r = api.post("/api/v1/pods/" + a + "/exec", {{"command", "echo $$"}});
    REQUIRE(r.status == 200);
    return r.body["output"].get<std::string>();
  };
  std::string a1 = pid("a"), b1 = pid("b");
  CHECK(pid("a") == a1);      // warm
  std::string c1 = pid("c");  // pool full: b (least recently used) goes
  const auto before_last_use = std::chrono::steady_clock::now();
  CHECK(pid("a") == a1);
  CHECK(pid("b") != b1);
  CHECK(c1 != a1);
  // The reaper ends a's shell once it has been idle past the TTL, and not before.
  const pid_t a_shell = std::stoi(a1);
  CHECK(wait_until([&] { return ::kill(a_shell, 0) != 0; }));
  CHECK(std::chrono::steady_clock::now() - before_last_use >= std::chrono::seconds(2));
  CHECK(pid("a") != a1);  // a new shell
}

TEST_CASE("a stream whose client goes away still records every result") {
  TestServer srv(fresh_database_url(Backend::sqlite));
  auto api = srv.client();
  for (int i = 0; i < 4; ++i) REQUIRE(api.post("/api/v1/pods/", local_pod("s" + std::to_string(i))).status == 201);
  {
    httplib::Client c("127.0.0.1", srv.port());
    c.set_read_timeout(0, 200000);  // gives up long before the pods finish
    auto r = c.Post("/api/v1/exec/stream", json{{"command", "sleep 1; echo late"}, {"all", true}}.dump(),
                    "application/json");
    (void)r;
  }
  Reply h;
  CHECK(wait_until([&] {
    h = api.get("/api/v1/commands?status=succeeded");
    return h.body["items"].size() == 4;
  }));
  REQUIRE(h.body["items"].size() == 4);
  for (auto& it : h.body["items"]) CHECK(it["output"] == "late\n");
  CHECK(api.get("/api/v1/commands?status=running").body["items"].empty());
}

TEST_CASE("shutdown past the grace during a fan-out: queued pods are not started, every row is interrupted") {
  auto db = fresh_database_url(Backend::sqlite);
  {
    TestServer srv(db);
    // Clients without keep-alive: an idle keep-alive connection holds its httplib worker
    // (and so the end of stop()) for up to the keep-alive timeout.
    httplib::Client api("127.0.0.1", srv.port());
    for (const char* a : {"q1", "q2", "q3"})
      REQUIRE(api.Post("/api/v1/pods/", local_pod(a).dump(), "application/json")->status == 201);
    // The first pod leaves a mark when its command runs; the stop comes after it.
    TempDir marks;
    const std::string started = marks.file("started");
    Reply r;
    std::thread t([&] {
      httplib::Client c("127.0.0.1", srv.port());
      c.set_read_timeout(60, 0);
      json body = {{"command", "touch '" + started + "'; sleep 20"}, {"all", true}, {"parallel", 1}, {"timeout", 60}};
      auto res = c.Post("/api/v1/exec", body.dump(), "application/json");
      if (res) {
        r.status = res->status;
        r.body = json::parse(res->body, nullptr, false);
      }
    });
    CHECK(wait_until([&] { return std::filesystem::exists(started); }));
    auto t0 = std::chrono::steady_clock::now();
    srv.server().stop(0.3);
    auto took = std::chrono::steady_clock::now() - t0;
    t.join();
    CHECK(took < std::chrono::seconds(3));  // not 20 s of q2 and q3 after the abort
    REQUIRE(r.status == 200);
    CHECK(r.body["summary"]["interrupted"] == 3);
  }
  TestServer again(db);
  auto api = again.client();
  CHECK(api.get("/api/v1/commands?status=interrupted").body["items"].size() == 3);
  CHECK(api.get("/api/v1/commands?status=running").body["items"].empty());
}

// ---- input validated whole (issue 11, item 12) ------------------------------------------

namespace {

void expect_422(const Reply& r, const std::string& field) {
  CAPTURE(r.raw);
  CHECK(r.status == 422);
  CHECK(r.body["code"] == "validation_error");
  CHECK(r.body["field"] == field);
}

}  // namespace

TEST_CASE("security: query values are validated whole (limit=5%00abc and limit=%205 were taken as 5)") {
  TestServer srv(fresh_database_url(Backend::sqlite));
  auto api = srv.client();
  REQUIRE(api.post("/api/v1/pods/", local_pod("q1")).status == 201);
  for (int i = 0; i < 6; ++i) REQUIRE(api.post("/api/v1/pods/q1/exec", {{"command", "true"}}).status == 200);
  CHECK(api.get("/api/v1/commands?limit=5").body["items"].size() == 5);
  for (const char* bad : {"5%00abc", "%205", "5%20", "+5", "5abc", "0x5", "5.0", "1e1", "", "%2B5", "5%0a"}) {
    CAPTURE(bad);
    expect_422(api.get(std::string("/api/v1/commands?limit=") + bad), "limit");
    expect_422(api.get(std::string("/api/v1/commands?before=") + bad), "before");
  }
  expect_422(api.get("/api/v1/commands?since=2026-01-01%00junk"), "since");
  expect_422(api.get("/api/v1/commands?since=%202026-01-01"), "since");
  expect_422(api.get("/api/v1/commands?status=failed%00"), "status");
  expect_422(api.get("/api/v1/commands?alias=q1%00"), "alias");
  expect_422(api.get("/api/v1/pods/?selector=app%3Dweb%00"), "selector");
  expect_422(api.get("/api/v1/pods/?selector=app%3Dweb,"), "selector");  // an empty item
  expect_422(api.get("/api/v1/pods/?selector=app%3Dweb,,a%3Db"), "selector");
  expect_422(api.get("/api/v1/pods/?selector=app%3Dweb,app%3Ddb"), "selector");  // a key twice
  expect_422(api.post("/api/v1/exec", {{"command", "true"}, {"selector", "app=web,"}}), "selector");
  // Malformed escapes were a 500 (an uncaught exception), repeats silently took the first.
  expect_422(api.get("/api/v1/commands?limit=%zz"), "limit");
  expect_422(api.get("/api/v1/commands?limit=5&limit=500"), "limit");
  expect_422(api.get("/api/v1/commands?limt=5"), "limt");
  expect_422(api.get("/api/v1/pods/?selectr=a%3Db"), "selectr");
  // A command id is the whole path segment: these were command 1.
  for (const char* id : {"1%00abc", "1abc", "%201", "+1"}) {
    CAPTURE(id);
    auto r = api.get(std::string("/api/v1/commands/") + id);
    CHECK(r.status == 404);
    CHECK(r.body["code"] == "command_not_found");
  }
  CHECK(api.get("/api/v1/commands/1").status == 200);
}

TEST_CASE("security: a NUL byte no longer cuts an error message short") {
  TestServer srv(fresh_database_url(Backend::sqlite));
  auto api = srv.client();
  // An unknown field "bad\0key": the message was "bad" (what() ends at the NUL).
  auto r = api.send("POST", "/api/v1/pods/", R"({"alias":"a","url":"local://a","bad\u0000key":1})");
  CHECK(r.status == 422);
  CHECK(r.body["message"] == "bad\\x00key: unknown field");
  CHECK(r.body["field"] == "bad\\x00key");
  // A path alias with a NUL: the message was "pod 'a".
  r = api.get("/api/v1/pods/a%00b");
  CHECK(r.status == 404);
  CHECK(r.body["message"].get<std::string>().find("a\\x00b") != std::string::npos);
  r = api.post("/api/v1/pods/a%00b/exec", {{"command", "true"}});
  CHECK(r.status == 404);
  CHECK(r.body["message"].get<std::string>().find("a\\x00b") != std::string::npos);
  // Label keys and values with control bytes are shown escaped, whole.
  r = api.post("/api/v1/pods/", {{"alias", "a"}, {"url", "local://a"}, {"labels", {{"k", std::string("v\0x", 3)}}}});
  CHECK(r.status == 422);
  CHECK(r.body["field"] == "labels.k");
  CHECK(r.body["message"].get<std::string>().find("v\\x00x") != std::string::npos);
}

TEST_CASE("security: body values are validated whole: NUL in commands, junk in URLs, repeated keys, null, all=false") {
  TestServer srv(fresh_database_url(Backend::sqlite));
  auto api = srv.client();
  REQUIRE(api.post("/api/v1/pods/", local_pod("b1")).status == 201);
  // A shell cannot receive a NUL byte: refused rather than cut (or passed) silently.
  std::string nul_cmd("echo a\0b", 8);
  expect_422(api.post("/api/v1/pods/b1/exec", {{"command", nul_cmd}}), "command");
  expect_422(api.post("/api/v1/exec", {{"command", nul_cmd}, {"all", true}}), "command");
  expect_422(api.send("POST", "/api/v1/exec/stream", json{{"command", nul_cmd}, {"all", true}}.dump()), "command");
  CHECK(api.get("/api/v1/commands").body["items"].empty());  // nothing ran, nothing recorded
  // Other control bytes are shell text: a tab and a newline are fine.
  auto ok = api.post("/api/v1/pods/b1/exec", {{"command", "printf 'a\\tb\\n'\necho c"}});
  CHECK(ok.status == 200);
  CHECK(ok.body["output"] == "a\tb\nc\n");
  // URLs and provider names are single tokens.
  for (std::string bad : {std::string("local://x\0y", 11), std::string(" local://x"), std::string("local://x "),
                          std::string("local://x y"), std::string("local://x\ny"), std::string("local://x\x7f")}) {
    CAPTURE(bad);
    expect_422(api.post("/api/v1/pods/", {{"alias", "u1"}, {"url", bad}}), "url");
    expect_422(api.patch("/api/v1/pods/b1", {{"url", bad}}), "url");
  }
  expect_422(
      api.post("/api/v1/pods/", {{"alias", "u1"}, {"url", "local://u1"}, {"provider", std::string("local\0", 6)}}),
      "provider");
  // {"command":"rm …","command":"ls"} is ambiguous: refused, not "the last one wins".
  expect_422(api.send("POST", "/api/v1/pods/b1/exec", R"({"command":"echo one","command":"echo two"})"), "command");
  expect_422(api.send("POST", "/api/v1/pods/", R"({"alias":"d1","url":"local://d1","labels":{"a":"1","a":"2"}})"),
             "labels.a");
  // null is no field's value; all=false is not a target.
  expect_422(api.post("/api/v1/pods/b1/exec", {{"command", "true"}, {"timeout", nullptr}}), "timeout");
  expect_422(api.post("/api/v1/pods/", {{"alias", "n1"}, {"url", "local://n1"}, {"labels", nullptr}}), "labels");
  expect_422(api.post("/api/v1/exec", {{"command", "true"}, {"aliases", {"b1"}}, {"all", false}}), "all");
  // A content type that only starts like JSON is not JSON.
  CHECK(api.send("POST", "/api/v1/pods/", "{}", "application/jsonx").status == 415);
  CHECK(api.send("POST", "/api/v1/pods/", local_pod("ct1").dump(), "application/json; charset=utf-8").status == 201);
  CHECK(api.get("/api/v1/pods/").body.size() == 2);
}

// ---- byte-faithful results (issue 11, fidelity) ---------------------------------------------

namespace {

std::string sha256_hex(const std::string& bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &n, EVP_sha256(), nullptr);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

std::string b64decode(const std::string& in) {
  REQUIRE(in.size() % 4 == 0);
  std::string out(in.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  REQUIRE(n >= 0);
  std::size_t pad = (!in.empty() && in.back() == '=') + (in.size() > 1 && in[in.size() - 2] == '=');
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

// The exact bytes of a result: output_b64 when present, else output (valid UTF-8).
std::string result_bytes(const json& r) {
  if (r.contains("output_b64")) return b64decode(r["output_b64"].get<std::string>());
  return r["output"].get<std::string>();
}

}  // namespace

TEST_CASE("fidelity: all 256 byte values and a 1 MiB random blob come back exact (exec, fan-out, stream, history)") {
  TestServer srv(fresh_database_url(Backend::sqlite));
  auto api = srv.client();
  REQUIRE(api.post("/api/v1/pods/", local_pod("f1")).status == 201);

  std::string all;
  std::string printf_arg;
  for (int i = 0; i < 256; ++i) {
    all += static_cast<char>(i);
    char esc[8];
    std::snprintf(esc, sizeof esc, "\\%03o", i);
    printf_arg += esc;
  }
  TempDir tmp;
  std::string blob(1 << 20, '\0');
  REQUIRE(RAND_bytes(reinterpret_cast<unsigned char*>(blob.data()), static_cast<int>(blob.size())) == 1);
  { std::ofstream(tmp.file("blob"), std::ios::binary).write(blob.data(), static_cast<std::streamsize>(blob.size())); }
  struct Case {
    std::string name, command, bytes;
  };
  for (const Case& c : {Case{"256 byte values", "printf '" + printf_arg + "'", all},
                        Case{"1 MiB random", "cat '" + tmp.file("blob") + "'", blob}}) {
    CAPTURE(c.name);
    const std::string want = sha256_hex(c.bytes);
    auto r = api.post("/api/v1/pods/f1/exec", {{"command", c.command}, {"timeout", 60}});
    REQUIRE(r.status == 200);
    CHECK(r.body["truncated"] == false);
    CHECK(r.body.contains("output_b64"));
    CHECK(result_bytes(r.body).size() == c.bytes.size());
    CHECK(sha256_hex(result_bytes(r.body)) == want);
    // The history row is the same bytes.
    auto h = api.get("/api/v1/commands/" + std::to_string(r.body["id"].get<long>()));
    REQUIRE(h.status == 200);
    CHECK(sha256_hex(result_bytes(h.body)) == want);
    // Fan-out and the NDJSON stream.
    auto f = api.post("/api/v1/exec", {{"command", c.command}, {"aliases", {"f1"}}, {"timeout", 60}});
    REQUIRE(f.status == 200);
    CHECK(sha256_hex(result_bytes(f.body["results"][0])) == want);
    auto st = api.send("POST", "/api/v1/exec/stream",
                       json{{"command", c.command}, {"aliases", {"f1"}}, {"timeout", 60}}.dump());
    REQUIRE(st.status == 200);
    auto first_nl = st.raw.find('\n');
    auto second_nl = st.raw.find('\n', first_nl + 1);
    REQUIRE(second_nl != std::string::npos);
    auto ev = json::parse(st.raw.substr(first_nl + 1, second_nl - first_nl - 1));
    CHECK(ev["event"] == "result");
    CHECK(sha256_hex(result_bytes(ev)) == want);
  }
}

TEST_CASE("fidelity: a timeout's partial output keeps its bytes (output_b64 in the 504 result)") {
  TestServer srv(fresh_database_url(Backend::sqlite));
  auto api = srv.client();
  REQUIRE(api.post("/api/v1/pods/", local_pod("t1")).status == 201);
  auto r = api.post("/api/v1/pods/t1/exec", {{"command", "printf 'x\\377y'; sleep 5"}, {"timeout", 0.5}});
  REQUIRE(r.status == 504);
  REQUIRE(r.body["result"].contains("output_b64"));
  CHECK(result_bytes(r.body["result"]).find("x\xFFy") != std::string::npos);
  CHECK(r.body["result"]["output"].get<std::string>().find("x\xEF\xBF\xBDy") != std::string::npos);
}

// /api/v1/capsules over HTTP against a server whose capsules run on a real, private dockerd
// (tests/server/run_capsule_api_tests.sh starts it, imports a busybox image from local files
// and sets PW_DOCKER_HOST and PW_CAPSULE_IMAGE). Every route's success and error answers:
// 422 naming the field, 404, 409, 413, and 503 when the engine cannot be reached.
#include "api_fixture.hpp"

#include "embedded_server/settings.hpp"

#include <podwrangler/base64.hpp>
#include <podwrangler/errors.hpp>

#include <archive.h>
#include <archive_entry.h>
#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>

namespace pw::testing {
namespace {

using nlohmann::json;

std::string env_or_fail(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) FAIL(name << " is not set: run tests/server/run_capsule_api_tests.sh BUILD_DIR");
  return v;
}

std::string docker_host() { return env_or_fail("PW_DOCKER_HOST"); }
std::string image() { return env_or_fail("PW_CAPSULE_IMAGE"); }

// A server with capsules on the private engine (SQLite database).
std::unique_ptr<TestServer> capsule_server(const std::function<void(server::Settings&)>& more = {}) {
  auto host = docker_host();
  return std::make_unique<TestServer>(fresh_database_url(Backend::sqlite), [&](server::Settings& s) {
    s.capsules_enabled = true;
    s.docker_host = host;
    if (const char* agent = std::getenv("PODWRANGLER_AGENT_PATH")) s.agent_path = agent;
    if (more) more(s);
  });
}

std::string sha256_hex(const std::string& bytes) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), d);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : d) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

// Peak resident memory of this process (the server runs in it), in bytes; reset_peak() starts
// a new measurement (Linux: writing 5 to clear_refs resets VmHWM).
long long peak_rss() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return -1;
}
void reset_peak() { std::ofstream("/proc/self/clear_refs") << "5"; }

// A tar archive in memory: {name, contents} files (a name ending in '/' is a directory).
std::string make_tar(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out(1 << 20, '\0');
  size_t used = 0;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  REQUIRE(archive_write_open_memory(a, out.data(), out.size(), &used) == ARCHIVE_OK);
  for (const auto& [name, data] : entries) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_perm(e, 0640);
    archive_entry_set_filetype(e, name.back() == '/' ? AE_IFDIR : AE_IFREG);
    if (name.back() != '/') archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    archive_write_header(a, e);
    if (!data.empty()) archive_write_data(a, data.data(), data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  out.resize(used);
  return out;
}

// The names and contents of a tar archive.
std::map<std::string, std::string> read_tar(const std::string& bytes) {
  std::map<std::string, std::string> out;
  archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  REQUIRE(archive_read_open_memory(a, bytes.data(), bytes.size()) == ARCHIVE_OK);
  archive_entry* e = nullptr;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    std::string data;
    char buf[65536];
    la_ssize_t n;
    while ((n = archive_read_data(a, buf, sizeof buf)) > 0) data.append(buf, static_cast<std::size_t>(n));
    out[archive_entry_pathname(e)] = data;
  }
  archive_read_free(a);
  return out;
}

struct Capsule {
  std::string id;
  json body;
};

Capsule create(ApiClient& api, json spec = json::object()) {
  if (!spec.contains("image") && !spec.contains("template")) spec["image"] = image();
  auto r = api.post("/api/v1/capsules", spec);
  REQUIRE_MESSAGE(r.status == 201, r.raw);
  REQUIRE(r.body.is_object());
  return Capsule{r.body["id"].get<std::string>(), r.body};
}

void expect_error(const Reply& r, int status, const std::string& code, const std::string& field = "") {
  CHECK_MESSAGE(r.status == status, r.raw);
  REQUIRE(r.body.is_object());
  CHECK(r.body["code"] == code);
  CHECK(r.body["message"].is_string());
  if (!field.empty()) CHECK_MESSAGE(r.body.value("field", "") == field, r.raw);
}

json exec(ApiClient& api, const std::string& id, const json& body) {
  auto r = api.post("/api/v1/capsules/" + id + "/exec", body);
  REQUIRE_MESSAGE(r.status == 200, r.raw);
  return r.body;
}

// Every capsule a test made is destroyed, whatever the test's outcome.
struct Cleanup {
  ApiClient& api;
  std::vector<std::string> ids;
  ~Cleanup() {
    for (const auto& id : ids) api.del("/api/v1/capsules/" + id);
  }
};

}  // namespace

TEST_SUITE("capsule_api") {
  TEST_CASE("create, show, list, events, lifecycle, destroy") {
    auto srv = capsule_server();
    auto api = srv->client();
    Cleanup cleanup{api, {}};
    auto c = create(api, {{"memory_mb", 128},
                          {"timeout_sec", 600},
                          {"env", {{"SECRET_TOKEN", "hunter2"}}},
                          {"labels", {{"team", "ml"}}},
                          {"owner", "alice"},
                          {"session", "s1"}});
    cleanup.ids.push_back(c.id);
    CHECK(c.id.rfind("cap-", 0) == 0);
    CHECK(c.id.size() == 20);
    CHECK(c.body["state"] == "running");
    CHECK(c.body["spec"]["env"]["SECRET_TOKEN"] == "***");  // never returned
    CHECK(c.body.dump().find("hunter2") == std::string::npos);
    CHECK(c.body["spec"]["memory_mb"] == 128);
    CHECK(c.body["limits"]["memory_bytes"] == 128LL * 1024 * 1024);  // as the engine reports it
    CHECK(c.body["limits"]["privileged"] == false);

    auto r = api.get("/api/v1/capsules/" + c.id);
    REQUIRE(r.status == 200);
    CHECK(r.body["id"] == c.id);
    r = api.get("/api/v1/capsules/" + c.id + "/");  // trailing slash
    CHECK(r.status == 200);

    // The env really reached the capsule.
    auto x = exec(api, c.id, {{"cmd", "printf %s \"$SECRET_TOKEN\""}});
    CHECK(x["stdout"] == "hunter2");

    // Filters.
    auto other = create(api, {{"owner", "bob"}, {"labels", {{"team", "web"}}}});
    cleanup.ids.push_back(other.id);
    auto ids_of = [](const Reply& rep) {
      std::set<std::string> ids;
      for (const auto& it : rep.body) ids.insert(it["id"].get<std::string>());
      return ids;
    };
    r = api.get("/api/v1/capsules?owner=alice");
    REQUIRE(r.status == 200);
    CHECK(ids_of(r) == std::set<std::string>{c.id});
    r = api.get("/api/v1/capsules?label=team=web");
    CHECK(ids_of(r) == std::set<std::string>{other.id});
    r = api.get("/api/v1/capsules?label=team=ml&label=nope=x");
    CHECK(r.status == 200);
    CHECK(r.body.empty());
    r = api.get("/api/v1/capsules?state=running&session=s1");
    CHECK(ids_of(r) == std::set<std::string>{c.id});
    r = api.get("/api/v1/capsules?limit=1");
    CHECK(r.body.size() == 1);

    // pause → exec auto-resumes; resume of a running capsule is a conflict.
    r = api.post("/api/v1/capsules/" + c.id + "/pause", json::object());
    REQUIRE_MESSAGE(r.status == 200, r.raw);
    CHECK(r.body["state"] == "paused");
    x = exec(api, c.id, {{"argv", {"echo", "back"}}});
    CHECK(x["stdout"] == "back\n");
    CHECK(x["resumed"] == true);
    // Asking for the state a capsule is in is answered with it (idempotent), …
    r = api.post("/api/v1/capsules/" + c.id + "/resume", json::object());
    CHECK(r.status == 200);
    CHECK(r.body["state"] == "running");
    r = api.send("POST", "/api/v1/capsules/" + c.id + "/pause", "");  // no body at all
    CHECK(r.status == 200);
    r = api.post("/api/v1/capsules/" + c.id + "/resume", json::object());
    CHECK(r.status == 200);
    CHECK(r.body["state"] == "running");
    r = api.post("/api/v1/capsules/" + c.id + "/pause", {{"x", 1}});
    expect_error(r, 422, "validation_error", "x");

    // stop: exec is a conflict; start brings it back with its files.
    exec(api, c.id, {{"cmd", "echo kept > /tmp/kept"}});
    r = api.post("/api/v1/capsules/" + c.id + "/stop", json::object());
    REQUIRE_MESSAGE(r.status == 200, r.raw);
    CHECK(r.body["state"] == "stopped");
    r = api.post("/api/v1/capsules/" + c.id + "/exec", {{"argv", {"true"}}});
    expect_error(r, 409, "capsule_conflict");
    // … a transition the state cannot make is a conflict.
    expect_error(api.post("/api/v1/capsules/" + c.id + "/pause", json::object()), 409, "capsule_conflict");
    expect_error(api.post("/api/v1/capsules/" + c.id + "/resume", json::object()), 409, "capsule_conflict");
    r = api.post("/api/v1/capsules/" + c.id + "/start", json::object());
    REQUIRE_MESSAGE(r.status == 200, r.raw);
    CHECK(r.body["state"] == "running");
    CHECK(exec(api, c.id, {{"argv", {"cat", "/tmp/kept"}}})["stdout"] == "kept\n");

    // ping and the idle timeout, live.
    r = api.post("/api/v1/capsules/" + c.id + "/ping", json::object());
    CHECK(r.status == 200);
    r = api.send("PUT", "/api/v1/capsules/" + c.id + "/timeout", R"({"timeout_sec": 1200})");
    REQUIRE_MESSAGE(r.status == 200, r.raw);
    CHECK(r.body["spec"]["timeout_sec"] == 1200);
    r = api.post("/api/v1/capsules/" + c.id + "/timeout", {{"timeout_sec", 0}});
    CHECK(r.status == 200);
    CHECK(r.body["spec"]["timeout_sec"] == 0);
    expect_error(api.post("/api/v1/capsules/" + c.id + "/timeout", json::object()), 422, "validation_error",
                 "timeout_sec");
    expect_error(api.post("/api/v1/capsules/" + c.id + "/timeout", {{"timeout_sec", -1}}), 422, "validation_error",
                 "timeout_sec");

    // Events: every transition, oldest first.
    r = api.get("/api/v1/capsules/" + c.id + "/events");
    REQUIRE(r.status == 200);
    std::vector<std::string> to;
    for (const auto& e : r.body) to.push_back(e["to"].get<std::string>());
    REQUIRE(!to.empty());
    CHECK(std::find(to.begin(), to.end(), "paused") != to.end());
    CHECK(std::find(to.begin(), to.end(), "stopped") != to.end());
    CHECK(r.body[0]["from"] == "");
    r = api.get("/api/v1/capsules/" + c.id + "/events?limit=2");
    CHECK(r.body.size() == 2);

    // Destroy, idempotent.
    r = api.del("/api/v1/capsules/" + c.id);
    REQUIRE_MESSAGE(r.status == 200, r.raw);
    CHECK(r.body["state"] == "destroyed");
    r = api.del("/api/v1/capsules/" + c.id);
    CHECK(r.status == 200);
    CHECK(r.body["state"] == "destroyed");
    r = api.get("/api/v1/capsules?owner=alice");
    CHECK(r.body.empty());
    r = api.get("/api/v1/capsules?owner=alice&state=destroyed");
    CHECK(ids_of(r) == std::set<std::string>{c.id});
  }

  TEST_CASE("templates from the server's templates file: defaults, the request's values win, a warm pool") {
    TempDir dir;
    const std::string file = dir.file("templates.toml");
    std::ofstream(file) << "[templates.small]\nimage = \"" << image() << "\"\nmemory_mb = 96\ntimeout_sec = 1234\n"
                        << "env = { FROM_TEMPLATE = \"yes\" }\nlabels = { kind = \"small\" }\nwarm = 1\n";
    const std::string pool = "/api/v1/capsules?label=podwrangler.pool=small";
    {
      auto srv = capsule_server([&](server::Settings& s) { s.capsule_templates_file = file; });
      auto api = srv->client();
      Cleanup cleanup{api, {}};
      // `warm = 1`: the server keeps one ready capsule of the template (not among the user's).
      CHECK(wait_until(
          [&] {
            auto b = api.get(pool).body;
            return b.size() == 1 && b[0]["state"] == "paused";  // ready: paused with its agent up
          },
          std::chrono::seconds(60)));
      CHECK(api.get("/api/v1/capsules").body.empty());
      auto r = api.post("/api/v1/capsules", {{"template", "small"}, {"owner", "tess"}});
      REQUIRE_MESSAGE(r.status == 201, r.raw);
      cleanup.ids.push_back(r.body["id"].get<std::string>());
      CHECK(r.body["origin"] == "warm");
      CHECK(r.body["spec"]["template"] == "small");
      CHECK(r.body["spec"]["image"] == image());
      CHECK(r.body["spec"]["owner"] == "tess");
      CHECK(r.body["spec"]["timeout_sec"] == 1234);  // the template's
      CHECK(r.body["spec"]["labels"]["kind"] == "small");
      CHECK(r.body["limits"]["memory_bytes"] == 96LL << 20);
      CHECK(exec(api, r.body["id"].get<std::string>(), {{"cmd", "echo $FROM_TEMPLATE"}})["stdout"] == "yes\n");
      // A value of the request wins; one fixed at creation bypasses the pool and says so.
      r = api.post("/api/v1/capsules", {{"template", "small"}, {"memory_mb", 160}});
      REQUIRE_MESSAGE(r.status == 201, r.raw);
      cleanup.ids.push_back(r.body["id"].get<std::string>());
      CHECK(r.body["origin"] == "bypassed: limits");
      CHECK(r.body["spec"]["memory_mb"] == 160);
      CHECK(r.body["limits"]["memory_bytes"] == 160LL << 20);
      CHECK(r.body["spec"]["timeout_sec"] == 1234);
      expect_error(api.post("/api/v1/capsules", {{"template", "large"}}), 404, "capsule_not_found");
    }
    // A server without the template empties its pool.
    {
      auto srv = capsule_server();
      auto api = srv->client();
      CHECK(wait_until([&] { return api.get(pool).body.empty(); }, std::chrono::seconds(60)));
    }
    // A server with a bad templates file does not start; the error names the setting.
    std::ofstream(file) << "[templates.bad]\nimage = \"x\"\nmemory_mb = 1\n";
    CHECK_THROWS_WITH_AS(capsule_server([&](server::Settings& s) { s.capsule_templates_file = file; }),
                         doctest::Contains("PODWRANGLER_CAPSULE_TEMPLATES"), PodConfigValidationError);
  }

  TEST_CASE("get-or-create and destroy all of an owner") {
    auto srv = capsule_server();
    auto api = srv->client();
    Cleanup cleanup{api, {}};
    json spec = {{"image", image()}, {"owner", "carol"}, {"session", "s9"}};
    auto r = api.post("/api/v1/capsules/get-or-create", spec);
    REQUIRE_MESSAGE(r.status == 201, r.raw);
    std::string id = r.body["id"];
    cleanup.ids.push_back(id);
    r = api.post("/api/v1/capsules/get-or-create", spec);
    CHECK(r.status == 200);
    CHECK(r.body["id"] == id);
    // A stopped capsule is started again, not replaced.
    REQUIRE(api.post("/api/v1/capsules/" + id + "/stop", json::object()).status == 200);
    r = api.post("/api/v1/capsules/get-or-create", spec);
    CHECK(r.status == 200);
    CHECK(r.body["id"] == id);
    CHECK(r.body["state"] == "running");
    expect_error(api.post("/api/v1/capsules/get-or-create", {{"image", image()}, {"owner", "carol"}}), 422,
                 "validation_error", "session");

    auto second = create(api, {{"owner", "carol"}});
    cleanup.ids.push_back(second.id);
    expect_error(api.del("/api/v1/capsules"), 422, "validation_error", "owner");
    expect_error(api.del("/api/v1/capsules?owner=bad%20name"), 422, "validation_error", "owner");
    r = api.del("/api/v1/capsules?owner=carol");
    REQUIRE_MESSAGE(r.status == 200, r.raw);
    std::set<std::string> gone;
    for (const auto& g : r.body["destroyed"]) gone.insert(g.get<std::string>());
    CHECK(gone == std::set<std::string>{id, second.id});
    CHECK(api.get("/api/v1/capsules?owner=carol").body.empty());
  }

  TEST_CASE("exec: argv, cmd, env, cwd, stdin, exit codes, timeout, bytes") {
    auto srv = capsule_server();
    auto api = srv->client();
    Cleanup cleanup{api, {}};
    auto c = create(api);
    cleanup.ids.push_back(c.id);
    auto x = exec(api, c.id, {{"argv", {"sh", "-c", "echo out; echo err >&2; exit 3"}}});
    CHECK(x["stdout"] == "out\n");
    CHECK(x["stderr"] == "err\n");
    CHECK(x["exit_code"] == 3);
    CHECK(x["timed_out"] == false);
    CHECK(x["duration_ms"].is_number_integer());
    x = exec(api, c.id, {{"cmd", "echo \"$A-$B\"; pwd"}, {"env", {{"A", "1"}, {"B", "two"}}}, {"cwd", "/tmp"}});
    CHECK(x["stdout"] == "1-two\n/tmp\n");
    x = exec(api, c.id, {{"argv", {"cat"}}, {"stdin", std::string("in\0put", 6)}});
    CHECK(x["stdout"] == std::string("in\0put", 6));
    x = exec(api, c.id, {{"cmd", "printf 'a\\377b'"}});
    CHECK(x["stdout_b64"] == "Yf9i");  // the exact bytes
    CHECK(x["stdout"] ==
          "a\xEF\xBF\xBD"
          "b");
    x = exec(api, c.id, {{"cmd", "echo started; sleep 30"}, {"timeout_sec", 0.5}});
    CHECK(x["timed_out"] == true);
    CHECK(x["exit_code"] == 137);
    CHECK(x["duration_ms"].get<long long>() < 10000);
    auto r = api.post("/api/v1/capsules/" + c.id + "/exec", {{"argv", {"/no/such/program"}}});
    CHECK(r.status == 200);  // a program that cannot start is a result (127), not an API error
    CHECK(r.body["exit_code"] == 127);

    // Bad requests: 422 naming the field.
    std::string path = "/api/v1/capsules/" + c.id + "/exec";
    expect_error(api.post(path, json::object()), 422, "validation_error", "argv");
    expect_error(api.post(path, {{"argv", {"a"}}, {"cmd", "b"}}), 422, "validation_error", "argv");
    expect_error(api.post(path, {{"argv", json::array()}}), 422, "validation_error", "argv");
    expect_error(api.post(path, {{"argv", {1}}}), 422, "validation_error", "argv");
    expect_error(api.post(path, {{"cmd", ""}}), 422, "validation_error", "cmd");
    expect_error(api.post(path, {{"cmd", "true"}, {"cwd", "tmp"}}), 422, "validation_error", "cwd");
    expect_error(api.post(path, {{"cmd", "true"}, {"timeout_sec", 0}}), 422, "validation_error", "timeout_sec");
    expect_error(api.post(path, {{"cmd", "true"}, {"env", {{"1BAD", "x"}}}}), 422, "validation_error", "env");
    expect_error(api.post(path, {{"cmd", "true"}, {"shell", true}}), 422, "validation_error", "shell");
    expect_error(api.send("POST", path, "{\"cmd\": \"a\", \"cmd\": \"b\"}"), 422, "validation_error", "cmd");
    expect_error(api.send("POST", path, "cmd=true", "text/plain"), 415, "unsupported_media_type");
    expect_error(api.send("POST", path, "{\"cmd\": "), 400, "bad_request");
  }

  TEST_CASE("exec stream: events as they happen") {
    auto srv = capsule_server();
    auto api = srv->client();
    Cleanup cleanup{api, {}};
    auto c = create(api);
    cleanup.ids.push_back(c.id);
    auto r = api.post("/api/v1/capsules/" + c.id + "/exec/stream",
                      {{"cmd", "echo one; echo two >&2; printf '\\377'; exit 4"}});
    REQUIRE_MESSAGE(r.status == 200, r.raw);
    CHECK(r.content_type.rfind("application/x-ndjson", 0) == 0);
    std::istringstream lines(r.raw);
    std::string line, out, err;
    std::vector<std::string> kinds;
    json exit_ev;
    while (std::getline(lines, line)) {
      auto ev = json::parse(line);
      kinds.push_back(ev["event"]);
      // Events carry what the command wrote in pieces of any size; a piece that is not UTF-8
      // comes with its exact bytes in data_b64.
      if (ev["event"] == "stdout")
        out += ev.contains("data_b64") ? pw::base64_decode(ev["data_b64"].get<std::string>()).value()
                                       : ev["data"].get<std::string>();
      if (ev["event"] == "stderr") err += ev["data"].get<std::string>();
      if (ev["event"] == "exit") exit_ev = ev;
    }
    REQUIRE(!kinds.empty());
    CHECK(kinds.back() == "exit");
    CHECK(out == "one\n\xff");
    CHECK(err == "two\n");
    CHECK(exit_ev["exit_code"] == 4);
    CHECK(exit_ev["timed_out"] == false);
    // An unknown capsule is a 404 answer, not a stream.
    expect_error(api.post("/api/v1/capsules/cap-0000000000000000/exec/stream", {{"cmd", "true"}}), 404,
                 "capsule_not_found");
    expect_error(api.post("/api/v1/capsules/" + c.id + "/exec/stream", {{"cmd", 5}}), 422, "validation_error", "cmd");
  }

  TEST_CASE("run: create, exec, destroy in one call") {
    auto srv = capsule_server();
    auto api = srv->client();
    auto r = api.post("/api/v1/capsules/run",
                      {{"image", image()}, {"owner", "once"}, {"argv", {"sh", "-c", "echo hi; exit 2"}}});
    REQUIRE_MESSAGE(r.status == 200, r.raw);
    CHECK(r.body["stdout"] == "hi\n");
    CHECK(r.body["exit_code"] == 2);
    CHECK(api.get("/api/v1/capsules?owner=once").body.empty());  // destroyed
    r = api.post("/api/v1/capsules/run",
                 {{"image", image()}, {"owner", "once"}, {"cmd", "sleep 5"}, {"timeout_sec", 0.5}});
    REQUIRE(r.status == 200);
    CHECK(r.body["timed_out"] == true);
    CHECK(api.get("/api/v1/capsules?owner=once").body.empty());
    expect_error(api.post("/api/v1/capsules/run", {{"image", image()}}), 422, "validation_error", "argv");
    expect_error(api.post("/api/v1/capsules/run", {{"argv", {"true"}}}), 422, "validation_error", "image");
    expect_error(api.post("/api/v1/capsules/run", {{"image", "pw-no-such-image:9"}, {"argv", {"true"}}}), 404,
                 "capsule_not_found");
  }

  TEST_CASE("background processes: start, list, kill") {
    auto srv = capsule_server();
    auto api = srv->client();
    Cleanup cleanup{api, {}};
    auto c = create(api);
    cleanup.ids.push_back(c.id);
    std::string base = "/api/v1/capsules/" + c.id + "/processes";
    auto r = api.post(base, {{"argv", {"sleep", "300"}}});
    REQUIRE_MESSAGE(r.status == 201, r.raw);
    int pid = r.body["pid"];
    CHECK(pid > 0);
    auto listed = [&] {
      auto l = api.get(base);
      for (const auto& p : l.body)
        if (p["pid"] == pid) return true;
      return false;
    };
    CHECK(listed());
    r = api.del(base + "/" + std::to_string(pid));
    CHECK_MESSAGE(r.status == 204, r.raw);
    CHECK(wait_until([&] { return !listed(); }));
    expect_error(api.del(base + "/abc"), 404, "capsule_not_found");
    expect_error(api.del(base + "/1?signal=99"), 422, "validation_error", "signal");
    expect_error(api.post(base, {{"argv", {"sleep", "1"}}, {"timeout_sec", 5}}), 422, "validation_error",
                 "timeout_sec");
  }

  TEST_CASE("files: streamed upload and download, stat, list, mkdir, rm") {
    auto srv = capsule_server();
    auto api = srv->client();
    Cleanup cleanup{api, {}};
    auto c = create(api);
    cleanup.ids.push_back(c.id);
    const std::string files = "/api/v1/capsules/" + c.id + "/files";

    // 8 MiB of random bytes, with Content-Length, then chunked.
    std::string data(8 << 20, '\0');
    std::mt19937_64 rng(42);
    for (auto& ch : data) ch = static_cast<char>(rng());
    auto upload = [&](const std::string& path, bool chunked) {
      std::size_t off = 0;
      auto chunked_provider = [&](size_t, httplib::DataSink& sink) {
        if (off == data.size()) {
          sink.done();
          return true;
        }
        std::size_t n = std::min<std::size_t>(100000, data.size() - off);
        sink.write(data.data() + off, n);
        off += n;
        return true;
      };
      auto sized_provider = [&](size_t offset, size_t length, httplib::DataSink& sink) {
        sink.write(data.data() + offset, std::min<std::size_t>(length, 65536));
        return true;
      };
      auto res = chunked
                     ? api.raw().Put((files + "?path=" + path).c_str(), chunked_provider, "application/octet-stream")
                     : api.raw().Put((files + "?path=" + path + "&mode=755").c_str(), data.size(), sized_provider,
                                     "application/octet-stream");
      REQUIRE(res);
      return res->status;
    };
    CHECK(upload("/data/deep/a.bin", false) == 201);
    CHECK(upload("/data/b.bin", true) == 201);
    auto r = api.get(files + "/stat?path=/data/deep/a.bin");
    REQUIRE_MESSAGE(r.status == 200, r.raw);
    CHECK(r.body["size"] == data.size());
    CHECK(r.body["type"] == "file");
    CHECK(r.body["mode"] == 0755);
    auto x = exec(api, c.id, {{"cmd", "sha256sum /data/deep/a.bin /data/b.bin | cut -d' ' -f1"}});
    CHECK(x["stdout"] == sha256_hex(data) + "\n" + sha256_hex(data) + "\n");

    // Download, streamed back.
    std::string got;
    std::string ctype;
    auto res = api.raw().Get((files + "?path=/data/b.bin").c_str(),
                             [&](const httplib::Response& resp) {
                               ctype = resp.get_header_value("Content-Type");
                               return resp.status == 200;
                             },
                             [&](const char* d, size_t n) {
                               got.append(d, n);
                               return true;
                             });
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(ctype == "application/octet-stream");
    CHECK(got.size() == data.size());
    CHECK(sha256_hex(got) == sha256_hex(data));

    // mkdir, list, rm.
    r = api.post(files + "/mkdir", {{"path", "/data/new/dir"}});
    REQUIRE_MESSAGE(r.status == 201, r.raw);
    CHECK(r.body["type"] == "dir");
    r = api.get(files + "/list?path=/data");
    REQUIRE(r.status == 200);
    std::set<std::string> names;
    for (const auto& f : r.body) names.insert(f["name"].get<std::string>());
    CHECK(names == std::set<std::string>{"deep", "b.bin", "new"});
    r = api.get(files + "/list?path=/data&depth=3");
    CHECK(r.body.size() == 5);  // deep, deep/a.bin, b.bin, new, new/dir
    CHECK(api.del(files + "?path=/data/b.bin").status == 204);
    expect_error(api.get(files + "/stat?path=/data/b.bin"), 404, "capsule_not_found");
    CHECK(api.del(files + "?path=/data/new&recursive=true").status == 204);
    expect_error(api.get(files + "/stat?path=/data/new"), 404, "capsule_not_found");

    // Directories as tar archives, both ways.
    r = api.send("PUT", files + "?path=/tree", make_tar({{"d/", ""}, {"d/x.txt", "ex"}, {"top.txt", "top"}}),
                 "application/x-tar");
    REQUIRE_MESSAGE(r.status == 201, r.raw);
    CHECK(r.body["type"] == "dir");
    CHECK(exec(api, c.id, {{"cmd", "cat /tree/d/x.txt /tree/top.txt; stat -c %a /tree/top.txt"}})["stdout"] ==
          "extop640\n");
    r = api.get(files + "?path=/tree");
    REQUIRE(r.status == 200);
    CHECK(r.content_type == "application/x-tar");
    auto tree = read_tar(r.raw);
    CHECK(tree.size() == 3);
    CHECK(tree["d/x.txt"] == "ex");
    CHECK(tree["top.txt"] == "top");
    CHECK(tree.count("d/") + tree.count("d") == 1);
    for (const char* evil : {"../escape.txt", "/abs.txt", "a/../../escape.txt"}) {
      CAPTURE(evil);
      r = api.send("PUT", files + "?path=/tree", make_tar({{evil, "x"}}), "application/x-tar");
      expect_error(r, 422, "validation_error", "body");
    }
    CHECK(exec(api, c.id, {{"cmd", "ls /escape.txt /abs.txt /tree/abs.txt 2>/dev/null | wc -l"}})["stdout"] == "0\n");
    expect_error(api.send("PUT", files + "?path=/tree2", "not a tar", "application/x-tar"), 422, "validation_error",
                 "body");

    // Errors.
    expect_error(api.get(files + "?path=/nope"), 404, "capsule_not_found");
    expect_error(api.get(files + "/stat?path=relative"), 422, "validation_error", "path");
    expect_error(api.get(files + "/stat"), 422, "validation_error", "path");
    expect_error(api.get(files + "/stat?path=/a%00b"), 422, "validation_error", "path");
    expect_error(api.get(files + "/list?path=/data&depth=0"), 422, "validation_error", "depth");
    expect_error(api.del(files + "?path=/data&recursive=yes"), 422, "validation_error", "recursive");
    expect_error(api.send("PUT", files + "?path=/x&mode=999", "x", "application/octet-stream"), 422, "validation_error",
                 "mode");
    expect_error(
        api.send("PUT", "/api/v1/capsules/cap-0000000000000000/files?path=/x", "x", "application/octet-stream"), 404,
        "capsule_not_found");
    expect_error(api.post(files + "/mkdir", {{"path", "/w"}, {"mode", 1}}), 422, "validation_error", "mode");
  }

  TEST_CASE("files: a large upload is streamed, never held whole") {
    auto srv = capsule_server();
    auto api = srv->client();
    Cleanup cleanup{api, {}};
    auto c = create(api);
    cleanup.ids.push_back(c.id);
    constexpr std::size_t kSize = 256u << 20;
    std::string chunk(1 << 20, 'z');
    reset_peak();
    long long before = peak_rss();
    std::size_t sent = 0;
    auto res = api.raw().Put(("/api/v1/capsules/" + c.id + "/files?path=/tmp/big.bin").c_str(), kSize,
                             [&](size_t offset, size_t, httplib::DataSink& sink) {
                               std::size_t n = std::min(chunk.size(), kSize - offset);
                               sent += n;
                               return sink.write(chunk.data(), n);
                             },
                             "application/octet-stream");
    REQUIRE(res);
    CHECK_MESSAGE(res->status == 201, res->body);
    long long grew = peak_rss() - before;
    MESSAGE("256 MiB upload: peak RSS of the test process (client and server) grew by " << grew / 1024 << " KiB");
    if (pw::testing::rss_is_meaningful()) CHECK(grew < (64LL << 20));
    auto st = api.get("/api/v1/capsules/" + c.id + "/files/stat?path=/tmp/big.bin");
    CHECK(st.body["size"] == kSize);
  }

  TEST_CASE("files: the upload limit is enforced while reading") {
    auto srv = capsule_server([](server::Settings& s) { s.max_upload_bytes = 64 * 1024; });
    auto api = srv->client();
    Cleanup cleanup{api, {}};
    auto c = create(api);
    cleanup.ids.push_back(c.id);
    const std::string target = "/api/v1/capsules/" + c.id + "/files?path=/tmp/too-big";
    std::string body(200 * 1024, 'x');
    // With Content-Length: refused before a byte is read.
    auto r = api.send("PUT", target, body, "application/octet-stream");
    expect_error(r, 413, "payload_too_large");
    CHECK(r.body["message"].get<std::string>().find("PODWRANGLER_MAX_UPLOAD_BYTES") != std::string::npos);
    // Chunked: refused once the limit is crossed.
    auto client = srv->client();
    std::size_t off = 0;
    auto res = client.raw().Put(
        target.c_str(),
        [&](size_t, httplib::DataSink& sink) {
          if (off >= body.size()) {
            sink.done();
            return true;
          }
          std::size_t n = std::min<std::size_t>(16384, body.size() - off);
          off += n;
          return sink.write(body.data() + off - n, n);
        },
        "application/octet-stream");
    if (res) {
      CHECK(res->status == 413);
    } else {
      MESSAGE("the server closed the connection before the client read its 413");
    }
    // Below the limit: accepted on the same server.
    r = srv->client().send("PUT", target, std::string(1000, 'y'), "application/octet-stream");
    CHECK_MESSAGE(r.status == 201, r.raw);
  }

  TEST_CASE("validation: 422 naming the field, 404 for ids") {
    auto srv = capsule_server();
    auto api = srv->client();
    auto bad = [&](json body, const std::string& field) {
      if (!body.contains("image") && !body.contains("template")) body["image"] = image();
      auto r = api.post("/api/v1/capsules", body);
      CAPTURE(body.dump());
      expect_error(r, 422, "validation_error", field);
    };
    expect_error(api.post("/api/v1/capsules", json::object()), 422, "validation_error", "image");
    bad({{"template", "t"}, {"image", image()}}, "template");  // image and template: one of them
    // A template that does not exist is not found, like an id that does not.
    expect_error(api.post("/api/v1/capsules", {{"template", "no-such-template"}}), 404, "capsule_not_found");
    bad({{"image", ""}}, "image");
    bad({{"image", "a b"}}, "image");
    bad({{"memory_mb", 1}}, "memory_mb");
    bad({{"memory_mb", "512"}}, "memory_mb");
    bad({{"vcpus", 0}}, "vcpus");
    bad({{"timeout_sec", -5}}, "timeout_sec");
    bad({{"on_expire", "explode"}}, "on_expire");
    bad({{"env", {{"A-B", "x"}}}}, "env");
    bad({{"env", {{"A", 1}}}}, "env.A");
    bad({{"mounts", {{{"host_path", "rel"}, {"target", "/x"}}}}}, "mounts");
    bad({{"mounts", {{{"host_path", "/a/../b"}, {"target", "/x"}}}}}, "mounts");
    bad({{"ports", {70000}}}, "ports");
    bad({{"network", "host"}}, "network");
    bad({{"labels", {{"podwrangler.capsule", "x"}}}}, "labels");
    bad({{"labels", {{"app", "not valid!"}}}}, "labels.app");
    bad({{"owner", "no spaces"}}, "owner");
    bad({{"owner", ""}}, "owner");
    bad({{"workspace", true}}, "workspace");  // needs owner and session
    bad({{"wait", "yes"}}, "wait");
    bad({{"nope", 1}}, "nope");
    bad({{"owner", nullptr}}, "owner");
    auto r = api.send("POST", "/api/v1/capsules", "{\"image\": \"a\", \"image\": \"b\"}");
    expect_error(r, 422, "validation_error", "image");
    expect_error(api.post("/api/v1/capsules", {{"image", "pw-no-such-image:9"}}), 404, "capsule_not_found");

    // Query parameters.
    expect_error(api.get("/api/v1/capsules?state=sleeping"), 422, "validation_error", "state");
    expect_error(api.get("/api/v1/capsules?limit=5abc"), 422, "validation_error", "limit");
    expect_error(api.get("/api/v1/capsules?label=a=b,"), 422, "validation_error", "label");
    expect_error(api.get("/api/v1/capsules?label=a%00b=c"), 422, "validation_error", "label");
    expect_error(api.get("/api/v1/capsules?owner=a&owner=b"), 422, "validation_error", "owner");
    expect_error(api.get("/api/v1/capsules?zz=1"), 422, "validation_error", "zz");

    // Ids: well-formed but unknown, and malformed, are both simply not found.
    for (const char* id : {"cap-0000000000000000", "cap-XYZ", "nope", "cap-0000000000000000%00"}) {
      CAPTURE(id);
      expect_error(api.get(std::string("/api/v1/capsules/") + id), 404, "capsule_not_found");
      expect_error(api.del(std::string("/api/v1/capsules/") + id), 404, "capsule_not_found");
      expect_error(api.post(std::string("/api/v1/capsules/") + id + "/pause", json::object()), 404,
                   "capsule_not_found");
      expect_error(api.post(std::string("/api/v1/capsules/") + id + "/exec", {{"cmd", "true"}}), 404,
                   "capsule_not_found");
    }
    // The collection's own words are not ids: POST is their only method.
    r = api.get("/api/v1/capsules/run");
    CHECK(r.status == 405);
    CHECK(api.raw().Get("/api/v1/capsules/get-or-create")->get_header_value("Allow") == "POST, OPTIONS");
  }

  TEST_CASE("engine unreachable or capsules off: 503, and the rest of the server works") {
    for (bool off : {false, true}) {
      CAPTURE(off);
      TestServer srv(fresh_database_url(Backend::sqlite), [&](server::Settings& s) {
        s.capsules_enabled = !off;
        s.docker_host = "unix:///nonexistent/pw-docker.sock";
      });
      auto api = srv.client();
      auto r = api.post("/api/v1/capsules", {{"image", "busybox"}});
      expect_error(r, 503, "engine_unavailable");
      if (off) CHECK(r.body["message"].get<std::string>().find("PODWRANGLER_CAPSULES=off") != std::string::npos);
      expect_error(api.get("/api/v1/capsules"), 503, "engine_unavailable");
      expect_error(api.get("/api/v1/capsules/cap-0000000000000000"), 503, "engine_unavailable");
      expect_error(api.post("/api/v1/capsules/cap-0000000000000000/exec", {{"cmd", "true"}}), 503,
                   "engine_unavailable");
      // Validation still comes first.
      expect_error(api.post("/api/v1/capsules", {{"memory_mb", 1}, {"image", "x"}}), 422, "validation_error",
                   "memory_mb");
      // Everything else works.
      CHECK(api.get("/health").status == 200);
      CHECK(api.post("/api/v1/pods/", {{"alias", "p1"}, {"url", "local://p1"}}).status == 201);
      CHECK(api.get("/api/v1/pods/").status == 200);
    }
  }

  TEST_CASE("the engine comes back: 503, then capsules work") {
    // A server pointed at a socket path that appears later (a symlink to the real one).
    TempDir dir;
    std::string real = docker_host();
    REQUIRE(real.rfind("unix://", 0) == 0);
    std::string link = dir.file("docker.sock");
    TestServer srv(fresh_database_url(Backend::sqlite), [&](server::Settings& s) {
      s.docker_host = "unix://" + link;
      if (const char* agent = std::getenv("PODWRANGLER_AGENT_PATH")) s.agent_path = agent;
    });
    auto api = srv.client();
    expect_error(api.get("/api/v1/capsules"), 503, "engine_unavailable");
    std::filesystem::create_symlink(real.substr(7), link);
    CHECK(wait_until([&] { return api.get("/api/v1/capsules").status == 200; }, std::chrono::seconds(15)));
  }
}

// ---- the engine under capsules: a musl image, a large file both ways, dockerd restarted -------

namespace {

std::string musl_image() { return env_or_fail("PW_CAPSULE_MUSL_IMAGE"); }

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

// Stops or starts the run script's private dockerd in place (dockerd_ctl.sh: same data root,
// containerd kept, running containers stopped by the daemon as it exits).
int dockerd_ctl(const std::string& what) {
  return sh("bash " + shell_quote(env_or_fail("PW_CAPSULE_DOCKERD_CTL")) + " " + what + " >&2");
}

// Brings a stopped dockerd back whatever the test's outcome, so the next tests and the run
// script's checks have their engine.
struct DockerdBack {
  bool down = false;
  ~DockerdBack() {
    if (down) dockerd_ctl("start");
  }
};

// An incremental SHA-256 (OpenSSL EVP), hex.
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void add(const char* data, std::size_t n) { EVP_DigestUpdate(ctx_, data, n); }
  std::string hex() {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, d, &len);
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
      out += digits[d[i] >> 4];
      out += digits[d[i] & 15];
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

}  // namespace

TEST_SUITE("capsule_api_engine") {
  TEST_CASE("a musl image without glibc: the agent runs there, a musl program runs, files both ways") {
    REQUIRE_MESSAGE(std::getenv("PODWRANGLER_AGENT_PATH") != nullptr,
                    "no pw-agent in the build tree: build the pw-agent target");
    auto srv = capsule_server();
    auto api = srv->client();
    Cleanup cleanup{api, {}};
    auto c = create(api, {{"image", musl_image()}});
    cleanup.ids.push_back(c.id);
    CHECK(c.body["state"] == "running");
    // The static agent was injected and answers: no fallback to docker exec.
    CHECK_MESSAGE(c.body["exec_mode"] == "agent", c.body.dump());

    // The image has musl's loader and no glibc anywhere.
    auto x = exec(api, c.id,
                  {{"cmd", "ls /lib; find / -xdev \\( -name 'libc.so*' -o -name 'ld-linux*' \\) -print | wc -l"}});
    CHECK(x["exit_code"] == 0);
    CHECK(x["stdout"] == "ld-musl-x86_64.so.1\n0\n");

    // The program linked against musl runs, its C library being musl's loader.
    x = exec(api, c.id, {{"argv", {"musl_hello", "from", "the API"}}});
    CHECK_MESSAGE(x["exit_code"] == 0, x.dump());
    const std::string out = x["stdout"];
    CHECK(out.rfind("hello from musl: from the API\n", 0) == 0);
    CHECK_MESSAGE(out.find("mapped: /lib/ld-musl-x86_64.so.1\n") != std::string::npos, out);
    CHECK(out.find("libc.so.6") == std::string::npos);
    // … also through the image's shell (busybox), with the capsule's environment.
    x = exec(api, c.id, {{"cmd", "musl_hello \"$GREETING\" | head -1"}, {"env", {{"GREETING", "hi"}}}});
    CHECK(x["stdout"] == "hello from musl: hi\n");

    // Files: an upload, seen inside, downloaded back unchanged.
    const std::string files = "/api/v1/capsules/" + c.id + "/files";
    std::string data(300 * 1024, '\0');
    std::mt19937_64 rng(7);
    for (auto& ch : data) ch = static_cast<char>(rng());
    auto r = api.send("PUT", files + "?path=/data/blob.bin&mode=600", data, "application/octet-stream");
    REQUIRE_MESSAGE(r.status == 201, r.raw);
    CHECK(r.body["size"] == data.size());
    CHECK(r.body["mode"] == 0600);
    x = exec(api, c.id, {{"cmd", "sha256sum /data/blob.bin | cut -d' ' -f1"}});
    CHECK(x["stdout"] == sha256_hex(data) + "\n");
    exec(api, c.id, {{"cmd", "musl_hello made > /data/made.txt"}});
    r = api.get(files + "?path=/data/blob.bin");
    REQUIRE(r.status == 200);
    CHECK(r.raw.size() == data.size());
    CHECK(r.raw == data);
    r = api.get(files + "?path=/data/made.txt");
    REQUIRE(r.status == 200);
    CHECK(r.raw.rfind("hello from musl: made\n", 0) == 0);

    // Destroyed: the capsule is gone from the engine (the run script checks no container is
    // left) and shows as destroyed.
    r = api.del("/api/v1/capsules/" + c.id);
    REQUIRE_MESSAGE(r.status == 200, r.raw);
    CHECK(r.body["state"] == "destroyed");
    r = api.get("/api/v1/capsules/" + c.id);
    CHECK(r.status == 200);
    CHECK(r.body["state"] == "destroyed");
    expect_error(api.post("/api/v1/capsules/" + c.id + "/exec", {{"cmd", "true"}}), 409, "capsule_conflict");
  }

  TEST_CASE("files: 100 MiB streamed up and down, the same bytes, memory bounded") {
    auto srv = capsule_server();
    auto api = srv->client();
    Cleanup cleanup{api, {}};
    auto c = create(api);
    cleanup.ids.push_back(c.id);
    const std::string target = "/api/v1/capsules/" + c.id + "/files?path=/tmp/big.bin";
    constexpr std::size_t kSize = 100u << 20;
    constexpr std::size_t kChunk = 256u << 10;
    // Pseudo-random bytes made as they are sent (the client never holds the file either).
    std::mt19937_64 rng(2024);
    std::vector<std::uint64_t> words(kChunk / 8);
    Sha256 sent_hash;
    std::size_t sent = 0;
    bool in_order = true;
    reset_peak();
    const long long before = peak_rss();
    auto res = api.raw().Put(
        target.c_str(), kSize,
        [&](size_t offset, size_t, httplib::DataSink& sink) {
          if (offset != sent) in_order = false;
          for (auto& w : words) w = rng();
          const std::size_t n = std::min(kChunk, kSize - offset);
          const auto* bytes = reinterpret_cast<const char*>(words.data());
          sent_hash.add(bytes, n);
          sent += n;
          return sink.write(bytes, n);
        },
        "application/octet-stream");
    REQUIRE_MESSAGE(res, "PUT failed: " << httplib::to_string(res.error()) << " after " << sent << " bytes");
    REQUIRE_MESSAGE(res->status == 201, res->body);
    REQUIRE(in_order);
    REQUIRE(sent == kSize);
    const std::string up = sent_hash.hex();
    auto st = api.get("/api/v1/capsules/" + c.id + "/files/stat?path=/tmp/big.bin");
    CHECK(st.body["size"] == kSize);
    // The capsule holds exactly those bytes.
    auto x = exec(api, c.id, {{"cmd", "sha256sum /tmp/big.bin | cut -d' ' -f1"}, {"timeout_sec", 120}});
    CHECK(x["stdout"] == up + "\n");

    // Downloaded back, hashed as it arrives.
    Sha256 got_hash;
    std::size_t got = 0;
    std::string ctype;
    auto dl = api.raw().Get(
        target.c_str(),
        [&](const httplib::Response& resp) {
          ctype = resp.get_header_value("Content-Type");
          return resp.status == 200;
        },
        [&](const char* d, size_t n) {
          got_hash.add(d, n);
          got += n;
          return true;
        });
    REQUIRE_MESSAGE(dl, "GET failed: " << httplib::to_string(dl.error()) << " after " << got << " bytes");
    CHECK(dl->status == 200);
    CHECK(ctype == "application/octet-stream");
    CHECK(got == kSize);
    CHECK(got_hash.hex() == up);

    const long long grew = peak_rss() - before;
    MESSAGE("100 MiB upload and download: peak RSS of the test process (client and server) grew by " << grew / 1024
                                                                                                     << " KiB");
    // Holding the file once, on either side, would be 100 MiB.
    if (pw::testing::rss_is_meaningful()) CHECK(grew < (48LL << 20));
  }

  TEST_CASE("dockerd stopped and restarted: 503 while down, the rest works, capsules usable after") {
    auto srv = capsule_server();
    auto api = srv->client();
    Cleanup cleanup{api, {}};
    auto c = create(api);
    cleanup.ids.push_back(c.id);
    CHECK(exec(api, c.id, {{"cmd", "echo kept > /tmp/kept"}})["exit_code"] == 0);
    const std::string base = "/api/v1/capsules/" + c.id;

    DockerdBack back;
    REQUIRE(dockerd_ctl("stop") == 0);
    back.down = true;

    // Every call that needs the engine: 503 engine_unavailable, saying so.
    auto unavailable = [&](const Reply& r) {
      CAPTURE(r.raw);
      expect_error(r, 503, "engine_unavailable");
      const std::string msg = r.body.value("message", "");
      // It names the engine it cannot reach.
      CHECK(msg.find(docker_host()) != std::string::npos);
    };
    unavailable(api.post(base + "/exec", {{"cmd", "cat /tmp/kept"}}));
    unavailable(api.post("/api/v1/capsules", {{"image", image()}}));
    unavailable(api.send("PUT", base + "/files?path=/tmp/new.txt", "new", "application/octet-stream"));
    unavailable(api.get(base + "/files?path=/tmp/kept"));
    unavailable(api.get(base + "/files/stat?path=/tmp/kept"));
    unavailable(api.post("/api/v1/capsules/run", {{"image", image()}, {"argv", {"true"}}}));
    // The server's other routes are not affected.
    CHECK(api.get("/health").status == 200);
    CHECK(api.post("/api/v1/pods/", {{"alias", "p1"}, {"url", "local://p1"}}).status == 201);
    auto pods = api.get("/api/v1/pods/");
    CHECK(pods.status == 200);
    CHECK(pods.body.size() == 1);

    REQUIRE(dockerd_ctl("start") == 0);
    back.down = false;

    // The capsule's container was stopped with the daemon: the first exec that reaches the
    // engine starts it again and says so; its files are kept.
    Reply r;
    CHECK(wait_until(
        [&] {
          r = api.post(base + "/exec", {{"cmd", "cat /tmp/kept"}});
          return r.status != 503;
        },
        std::chrono::seconds(30)));
    REQUIRE_MESSAGE(r.status == 200, r.raw);
    CHECK(r.body["stdout"] == "kept\n");
    CHECK(r.body["recovered"] == "restarted");
    auto again = exec(api, c.id, {{"argv", {"echo", "again"}}});
    CHECK(again["stdout"] == "again\n");
    CHECK(again["recovered"] == "");
    auto shown = api.get(base);
    REQUIRE(shown.status == 200);
    CHECK(shown.body["state"] == "running");

    // New capsules can be made again.
    auto fresh = create(api);
    cleanup.ids.push_back(fresh.id);
    CHECK(fresh.body["state"] == "running");
    CHECK(exec(api, fresh.id, {{"argv", {"echo", "new"}}})["stdout"] == "new\n");
  }
}

}  // namespace pw::testing

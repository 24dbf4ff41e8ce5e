// Unit tests for libpodwrangler/src/providers/local.cpp.
#include <doctest/doctest.h>
#include <podwrangler/errors.hpp>
#include <podwrangler/provider.hpp>
#include <podwrangler/providers/local.hpp>
#include <podwrangler/url.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <string>

using namespace pw;
using namespace std::string_literals;

namespace {

std::string expect_error(const LocalProvider& p, const std::string& url, const std::string& part) {
  try {
    (void)p.parse_url(url);
  } catch (const PodURLParseError& e) {
    CHECK(e.part() == part);
    CHECK(e.kind() == ErrorKind::url_parse);
    return e.what();
  } catch (const std::exception& e) {
    FAIL("unexpected exception: " << e.what());
    return {};
  }
  FAIL("no exception for " << url);
  return {};
}

// Opens the connection LocalProvider::open() makes for `url`, runs `script` in it and
// returns everything the PTY printed until the shell exits (or 10 s pass).
std::string run_in_local_pty(const std::string& url, const std::string& script) {
  LocalProvider p;
  auto [id, tok] = p.parse_url(url);
  ConnectionSpec schema = p.build_connection_spec(id, tok);
  boost::asio::io_context io;
  std::unique_ptr<Connection> conn = p.open(io.get_executor(), schema);
  std::string out;
  bool finished = false;
  std::string error;
  boost::asio::co_spawn(
      io,
      [&]() -> Task<void> {
        try {
          co_await conn->connect(std::chrono::seconds(5));
          co_await conn->write(script);
          while (co_await conn->read(out)) {
          }
        } catch (const std::exception& e) {
          error = e.what();
        }
        finished = true;
      },
      boost::asio::detached);
  io.run_for(std::chrono::seconds(10));
  conn->close();
  CHECK(finished);
  CHECK(error.empty());
  return out;
}

}  // namespace

TEST_SUITE_BEGIN("providers/local");

TEST_CASE("name") { CHECK(LocalProvider{}.name() == "local"); }

TEST_CASE("parse_url: local://") {
  LocalProvider p;
  auto [id, tok] = p.parse_url("local://");
  CHECK(id.pod_name == "local");
  CHECK(id.service == "local");
  CHECK(id.cluster == "local");
  CHECK(id.cols == DEFAULT_TERMINAL_COLS);
  CHECK(id.namespace_.empty());
  CHECK(tok.empty());
  CHECK(id.label() == "local");
  auto [id2, tok2] = p.parse_url("local:///");
  CHECK(id2.pod_name == "local");
  auto [id3, tok3] = p.parse_url("LOCAL://");
  CHECK(id3.pod_name == "local");
}

TEST_CASE("parse_url: local://name") {
  LocalProvider p;
  auto [id, tok] = p.parse_url("local://box-1");
  CHECK(id.pod_name == "box-1");
  CHECK(id.service == "local");
  CHECK(id.label() == "local/box-1");
  CHECK(id.origin == "local://box-1");
  CHECK(tok.empty());
  CHECK(p.parse_url("local://box-1/").first.pod_name == "box-1");
}

TEST_CASE("parse_url: local://name?shell=/bin/bash&cwd=/tmp") {
  LocalProvider p;
  auto [id, tok] = p.parse_url("local://name?shell=/bin/bash&cwd=/tmp");
  CHECK(id.pod_name == "name");
  Url origin = parse_url_strict(id.origin);
  CHECK(origin.scheme == "local");
  CHECK(origin.host == "name");
  CHECK(origin.param("shell") == "/bin/bash");
  CHECK(origin.param("cwd") == "/tmp");
  // Escaped values are decoded, then re-encoded into the origin.
  auto [id2, tok2] = p.parse_url("local://n?cwd=%2Ftmp%2Fa%20b");
  CHECK(parse_url_strict(id2.origin).param("cwd") == "/tmp/a b");
  // Without a name.
  auto [id3, tok3] = p.parse_url("local://?shell=/bin/sh");
  CHECK(id3.pod_name == "local");
  CHECK(parse_url_strict(id3.origin).param("shell") == "/bin/sh");
}

TEST_CASE("parse_url: cols") {
  LocalProvider p;
  CHECK(p.parse_url("local://x?cols=80").first.cols == 80);
  CHECK(p.parse_url("local://x?cols=1").first.cols == 1);
  for (const char* c : {"0", "abc", "", "-3", "99999", "8%200"}) {
    INFO(std::string(c));
    expect_error(p, "local://x?cols="s + c, "cols");
  }
}

TEST_CASE("parse_url: errors") {
  LocalProvider p;
  expect_error(p, "wss://h/exec/1/?token=abcdefgh&pod=p", "scheme");
  expect_error(p, "locl://x", "scheme");
  expect_error(p, "local:x", "scheme");
  expect_error(p, "local//x", "scheme");
  expect_error(p, "local://x:22", "host");
  expect_error(p, "local://user@x", "host");
  expect_error(p, "local://x/some/path", "path");
  expect_error(p, "local://x/a", "path");
  expect_error(p, "local://x?shell=bin/bash", "shell");
  expect_error(p, "local://x?shell=", "shell");
  expect_error(p, "local://x?cwd=tmp", "cwd");
  expect_error(p, "local://x?cwd", "cwd");
  expect_error(p, "local://x?user=root", "query");
  expect_error(p, "local://x?shell=/bin/sh&bogus=1", "query");
  expect_error(p, "local://x?cwd=%zz", "query");
  expect_error(p, "local://b\xC3\xB6x", "host");
  expect_error(p, "local://b%6Fx", "host");
  expect_error(p, "local://x?cwd=/tmp\0/evil"s, "url");
  expect_error(p, "local://" + std::string(9000, 'a'), "url");
  // The password of a (rejected) userinfo is not shown.
  std::string w = expect_error(p, "local://u:hunter2hunter2@x", "host");
  CHECK(w.find("hunter2hunter2") == std::string::npos);
}

TEST_CASE("build_connection_spec: a binary, unframed TTY stream at the origin") {
  LocalProvider p;
  auto [id, tok] = p.parse_url("local://name?shell=/bin/bash&cwd=/tmp");
  ConnectionSpec s = p.build_connection_spec(id, tok);
  CHECK(s.url == id.origin);
  CHECK(s.is_binary_framed);
  CHECK_FALSE(s.line_framed);
  CHECK(s.tty);
  // The schema URL parses back to the same identity.
  auto [id2, tok2] = p.parse_url(s.url);
  CHECK(id2 == id);

  PodIdentity bare;
  bare.pod_name = "p1";
  CHECK(p.build_connection_spec(bare, SecretString{}).url == "local://p1");
}

TEST_CASE("build_connection_spec keeps the column count for the PTY") {
  LocalProvider p;
  auto [id, tok] = p.parse_url("local://box?cols=132&shell=/bin/sh");
  CHECK(id.cols == 132);
  ConnectionSpec s = p.build_connection_spec(id, tok);
  auto [id2, tok2] = p.parse_url(s.url);
  CHECK(id2.cols == 132);
  CHECK(id2 == id);
  // Also for an identity built by hand.
  PodIdentity hand;
  hand.pod_name = "h";
  hand.cols = 99;
  CHECK(p.parse_url(p.build_connection_spec(hand, SecretString{}).url).first.cols == 99);
}

TEST_CASE("open() uses the schema's shell") {
  LocalProvider p;
  boost::asio::io_context io;
  auto [id, tok] = p.parse_url("local://x?shell=/bin/bash");
  auto conn = p.open(io.get_executor(), p.build_connection_spec(id, tok));
  REQUIRE(conn != nullptr);
  CHECK(conn->is_tty());
  CHECK(conn->describe() == "local shell /bin/bash");
  auto conn2 = p.open(io.get_executor(), p.build_connection_spec(p.parse_url("local://").first, {}));
  CHECK(conn2->describe() == "local shell /bin/sh");
}

TEST_CASE("open() gives the PTY the identity's columns and cwd") {
  std::string out = run_in_local_pty("local://x?cols=132&cwd=/usr&shell=/bin/sh", "stty -echo; stty size; pwd; exit\n");
  CAPTURE(out);
  CHECK(out.find(" 132") != std::string::npos);
  CHECK(out.find("/usr") != std::string::npos);
  std::string def = run_in_local_pty("local://", "stty -echo; stty size; exit\n");
  CAPTURE(def);
  CHECK(def.find(" " + std::to_string(DEFAULT_TERMINAL_COLS)) != std::string::npos);
}

TEST_CASE("list_pods returns the default local pod") {
  LocalProvider p;
  boost::asio::io_context io;
  std::vector<PodIdentity> pods;
  boost::asio::co_spawn(
      io,
      [&]() -> Task<void> {
        SecretString none;
        ListPodsOptions opts;
        pods = co_await p.list_pods(none, opts);
      },
      boost::asio::detached);
  io.run_for(std::chrono::seconds(5));
  REQUIRE(pods.size() == 1);
  CHECK(pods[0].pod_name == "local");
}

TEST_CASE("the catalog routes local:// to the local provider") {
  auto& cat = ProviderCatalog::instance();
  REQUIRE(cat.get("local") != nullptr);
  CHECK(cat.for_url("local://")->name() == "local");
  CHECK(cat.for_url("Local://x")->name() == "local");
  PodEndpoint ep = endpoint_from_url("local://dev?cwd=/tmp");
  CHECK(ep.provider->name() == "local");
  CHECK(ep.identity.pod_name == "dev");
  CHECK(ep.token.empty());
}

TEST_SUITE_END();

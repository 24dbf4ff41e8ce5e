// Unit tests for libpodwrangler/src/errors.cpp: the error hierarchy and the single
// error kind → exit code / HTTP status table.
#include <doctest/doctest.h>
#include <podwrangler/errors.hpp>

#include <cstring>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

using namespace pw;
using namespace std::string_literals;

namespace {

const std::vector<ErrorKind> kAllKinds = {
    ErrorKind::client,
    ErrorKind::not_found,
    ErrorKind::connection,
    ErrorKind::not_connected,
    ErrorKind::command,
    ErrorKind::command_timeout,
    ErrorKind::config_validation,
    ErrorKind::url_parse,
    ErrorKind::namespace_detection,
};

constexpr const char* kToken = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.S1gN4tUr3xYz";
const std::string kUrl = std::string("wss://k8s.provider.com/exec/45582/?token=") + kToken +
                         "&cols=220&pod=my-app-deploy-abc12-xyz99";

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

}  // namespace

TEST_SUITE_BEGIN("errors");

TEST_CASE("error_info: one row per kind, with its own kind, names and codes") {
  std::set<std::string> type_names, codes;
  for (ErrorKind k : kAllKinds) {
    const ErrorInfo& info = error_info(k);
    INFO(std::string(info.type_name));
    CHECK(info.kind == k);
    REQUIRE(info.type_name != nullptr);
    REQUIRE(info.code != nullptr);
    CHECK(std::strlen(info.type_name) > 0);
    CHECK(std::strlen(info.code) > 0);
    type_names.insert(info.type_name);
    codes.insert(info.code);
  }
  CHECK(type_names.size() == kAllKinds.size());
  CHECK(codes.size() == kAllKinds.size());
}

TEST_CASE("error_info: type names match the exception classes") {
  CHECK(std::string(error_info(ErrorKind::client).type_name) == "PodClientError");
  CHECK(std::string(error_info(ErrorKind::not_found).type_name) == "PodNotFoundError");
  CHECK(std::string(error_info(ErrorKind::connection).type_name) == "PodConnectionError");
  CHECK(std::string(error_info(ErrorKind::not_connected).type_name) == "PodNotConnectedError");
  CHECK(std::string(error_info(ErrorKind::command).type_name) == "PodCommandError");
  CHECK(std::string(error_info(ErrorKind::command_timeout).type_name) == "PodCommandTimeoutError");
  CHECK(std::string(error_info(ErrorKind::config_validation).type_name) ==
        "PodConfigValidationError");
  CHECK(std::string(error_info(ErrorKind::url_parse).type_name) == "PodURLParseError");
  CHECK(std::string(error_info(ErrorKind::namespace_detection).type_name) ==
        "NamespaceDetectionError");
}

TEST_CASE("error_info: exit codes are distinct, non-zero and clear of reserved ranges") {
  std::set<int> exits;
  for (ErrorKind k : kAllKinds) {
    const ErrorInfo& info = error_info(k);
    INFO(std::string(info.type_name));
    CAPTURE(info.exit_code);
    CHECK(info.exit_code > 0);
    CHECK(info.exit_code < 126);  // 126/127: not executable / not found; >128: signals
    // CLI11 uses 100-127 for its own parse errors.
    CHECK_FALSE((info.exit_code >= 100 && info.exit_code <= 127));
    // 2 is the conventional "usage error" of shells and getopt tools.
    CHECK(info.exit_code != 2);
    exits.insert(info.exit_code);
  }
  CHECK(exits.size() == kAllKinds.size());
}

TEST_CASE("error_info: HTTP statuses are sensible") {
  for (ErrorKind k : kAllKinds) {
    const ErrorInfo& info = error_info(k);
    INFO(std::string(info.type_name));
    CHECK(info.http_status >= 400);
    CHECK(info.http_status <= 599);
  }
  CHECK(error_info(ErrorKind::not_found).http_status == 404);
  CHECK(error_info(ErrorKind::command_timeout).http_status == 504);
  CHECK(error_info(ErrorKind::client).http_status == 500);
  // Bad input from the caller is a 4xx ...
  CHECK(error_info(ErrorKind::url_parse).http_status / 100 == 4);
  CHECK(error_info(ErrorKind::config_validation).http_status / 100 == 4);
  // ... failures of the remote side are 5xx.
  CHECK(error_info(ErrorKind::connection).http_status / 100 == 5);
  CHECK(error_info(ErrorKind::not_connected).http_status / 100 == 5);
  CHECK(error_info(ErrorKind::connection).http_status != error_info(ErrorKind::client).http_status);
}

TEST_CASE("error_info: an out-of-range kind falls back to the base row") {
  const ErrorInfo& info = error_info(static_cast<ErrorKind>(999));
  CHECK(info.kind == ErrorKind::client);
}

TEST_CASE("every error class derives from PodClientError and std::runtime_error") {
  static_assert(std::is_base_of_v<std::runtime_error, PodClientError>);
  static_assert(std::is_base_of_v<PodClientError, PodNotFoundError>);
  static_assert(std::is_base_of_v<PodClientError, PodConnectionError>);
  static_assert(std::is_base_of_v<PodClientError, PodNotConnectedError>);
  static_assert(std::is_base_of_v<PodClientError, PodCommandError>);
  static_assert(std::is_base_of_v<PodClientError, PodCommandTimeoutError>);
  static_assert(std::is_base_of_v<PodClientError, PodConfigValidationError>);
  static_assert(std::is_base_of_v<PodClientError, PodURLParseError>);
  static_assert(std::is_base_of_v<PodClientError, NamespaceDetectionError>);

  // And they are caught as PodClientError at run time, keeping their kind.
  auto kind_of = [](auto&& thrower) {
    try {
      thrower();
    } catch (const PodClientError& e) {
      return e.kind();
    }
    return static_cast<ErrorKind>(-1);
  };
  CHECK(kind_of([] { throw PodNotFoundError("a"); }) == ErrorKind::not_found);
  CHECK(kind_of([] { throw PodConnectionError("r"); }) == ErrorKind::connection);
  CHECK(kind_of([] { throw PodNotConnectedError(); }) == ErrorKind::not_connected);
  CHECK(kind_of([] { throw PodCommandError("c", 3, "o"); }) == ErrorKind::command);
  CHECK(kind_of([] { throw PodCommandTimeoutError("c", 1.0, "o"); }) == ErrorKind::command_timeout);
  CHECK(kind_of([] { throw PodConfigValidationError("f", "p"); }) == ErrorKind::config_validation);
  CHECK(kind_of([] { throw PodURLParseError("host", "p", "wss://x"); }) == ErrorKind::url_parse);
  CHECK(kind_of([] { throw NamespaceDetectionError("r"); }) == ErrorKind::namespace_detection);
  CHECK(kind_of([] { throw PodClientError("m"); }) == ErrorKind::client);
}

TEST_CASE("PodClientError: message, default and explicit kind, info()") {
  PodClientError e("something broke");
  CHECK(std::string(e.what()) == "something broke");
  CHECK(e.kind() == ErrorKind::client);
  CHECK(&e.info() == &error_info(ErrorKind::client));
  PodClientError e2("x", ErrorKind::connection);
  CHECK(e2.kind() == ErrorKind::connection);
  CHECK(e2.info().exit_code == error_info(ErrorKind::connection).exit_code);
}

TEST_CASE("PodNotFoundError: alias()") {
  PodNotFoundError e("web-1");
  CHECK(e.kind() == ErrorKind::not_found);
  CHECK(e.alias() == "web-1");
  CHECK(contains(e.what(), "web-1"));
  CHECK(std::string(e.info().type_name) == "PodNotFoundError");
}

TEST_CASE("PodConnectionError: reason()") {
  PodConnectionError e("connection refused");
  CHECK(e.kind() == ErrorKind::connection);
  CHECK(e.reason() == "connection refused");
  CHECK(contains(e.what(), "connection refused"));
}

TEST_CASE("PodNotConnectedError: default and custom message") {
  PodNotConnectedError e;
  CHECK(e.kind() == ErrorKind::not_connected);
  CHECK(contains(e.what(), "not connected"));
  PodNotConnectedError e2("lost it");
  CHECK(e2.kind() == ErrorKind::not_connected);
  CHECK(std::string(e2.what()) == "lost it");
}

TEST_CASE("PodCommandError: command(), exit_code(), output()") {
  PodCommandError e("make test", 2, "FAILED: 3 tests\n");
  CHECK(e.kind() == ErrorKind::command);
  CHECK(e.command() == "make test");
  CHECK(e.exit_code() == 2);
  CHECK(e.output() == "FAILED: 3 tests\n");
  CHECK(contains(e.what(), "make test"));
  CHECK(contains(e.what(), "2"));
  // Arbitrary bytes survive untouched in output().
  std::string bin = "\x00\xff\xfe\n"s;
  PodCommandError e3("cat blob", 255, bin);
  CHECK(e3.output() == bin);
  CHECK(e3.exit_code() == 255);
}

TEST_CASE("PodCommandTimeoutError: command(), timeout(), output()") {
  PodCommandTimeoutError e("sleep 100", 2.5, "partial out");
  CHECK(e.kind() == ErrorKind::command_timeout);
  CHECK(e.command() == "sleep 100");
  CHECK(e.timeout() == doctest::Approx(2.5));
  CHECK(e.output() == "partial out");
  CHECK(contains(e.what(), "2.5"));
  CHECK(contains(e.what(), "sleep 100"));
  PodCommandTimeoutError e2("x", 120.0, "");
  CHECK(contains(e2.what(), "120"));
  CHECK(e2.output().empty());
}

TEST_CASE("PodConfigValidationError: field()") {
  PodConfigValidationError e("cols", "must be between 1 and 4096");
  CHECK(e.kind() == ErrorKind::config_validation);
  CHECK(e.field() == "cols");
  CHECK(contains(e.what(), "cols"));
  CHECK(contains(e.what(), "must be between 1 and 4096"));
}

TEST_CASE("PodURLParseError: part() and a short printable message") {
  PodURLParseError e("port", "not a port number", "wss://host:abc/");
  CHECK(e.kind() == ErrorKind::url_parse);
  CHECK(e.part() == "port");
  CHECK(contains(e.what(), "port"));
  CHECK(contains(e.what(), "wss://host:abc/"));

  std::string huge = "wss://h/" + std::string(100000, 'a');
  PodURLParseError big("url", "too long", huge);
  CHECK(std::string(big.what()).size() < 2000);

  std::string ctl = "wss://h/\x01\x1b[31m\n\0x"s;
  PodURLParseError c("url", "control", ctl);
  for (char ch : std::string(c.what())) {
    CHECK_FALSE((static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f));
  }
}

TEST_CASE("NamespaceDetectionError: reason()") {
  NamespaceDetectionError e("no serviceaccount namespace file");
  CHECK(e.kind() == ErrorKind::namespace_detection);
  CHECK(e.reason() == "no serviceaccount namespace file");
  CHECK(contains(e.what(), "no serviceaccount namespace file"));
}

TEST_CASE("no error message contains a token taken from a URL") {
  const std::string msg = "cannot reach " + kUrl + " (refused)";
  std::vector<std::string> whats = {
      PodClientError(msg).what(),
      PodNotFoundError(kUrl).what(),
      PodConnectionError(msg).what(),
      PodNotConnectedError("session is not connected (connection lost: " + msg + ")").what(),
      PodCommandError("curl '" + kUrl + "'", 7, "out").what(),
      PodCommandTimeoutError("curl " + kUrl, 3.0, "").what(),
      PodConfigValidationError("url", "bad value " + kUrl).what(),
      PodURLParseError("pod", "missing", kUrl).what(),
      NamespaceDetectionError("GET " + kUrl + " failed").what(),
  };
  for (const auto& w : whats) {
    CAPTURE(w);
    CHECK_FALSE(contains(w, kToken));
    CHECK_FALSE(contains(w, "S1gN4tUr3xYz"));
    CHECK(contains(w, "k8s.provider.com"));  // the rest of the URL stays readable
  }
  // Reasons exposed as fields (they end up in JSON bodies) are redacted too.
  CHECK_FALSE(contains(PodConnectionError(msg).reason(), kToken));
  CHECK_FALSE(contains(NamespaceDetectionError(msg).reason(), kToken));
}

TEST_CASE("messages redact userinfo passwords, URL-less key=value secrets and bearer tokens") {
  PodConnectionError e1("cannot connect to postgresql://pw:hunter2secret@db.local/pods");
  CHECK_FALSE(contains(e1.what(), "hunter2secret"));
  CHECK(contains(e1.what(), "db.local"));
  PodConnectionError e2("server rejected 'Authorization: Bearer abcdef0123456789'");
  CHECK_FALSE(contains(e2.what(), "abcdef0123456789"));
  PodConnectionError e3("bad request token=abcdef0123456789 sent");
  CHECK_FALSE(contains(e3.what(), "abcdef0123456789"));
  CHECK(contains(e3.what(), "sent"));
  // Ordinary text is left alone.
  PodConnectionError e4("connect to 10.0.0.1:443 timed out after 15s (attempt 2 of 3)");
  CHECK(std::string(e4.what()) ==
        "connection failed: connect to 10.0.0.1:443 timed out after 15s (attempt 2 of 3)");
}

// Issue 11 items 4-6: one redactor for every message; ordinary words are not mangled.
TEST_CASE("security: messages hide bare userinfo and nested passwords, and keep ordinary words") {
  PodURLParseError e1("pod", "missing pod query parameter", "wss://TOKENbare1234@host/exec/1/?token=abc");
  CHECK_FALSE(contains(e1.what(), "TOKENbare1234"));
  CHECK(contains(e1.what(), "wss://***@host/exec/1/?token=***"));
  PodURLParseError e2("scheme", "expected ws:// or wss://", "https://TOKENbare5678@host");
  CHECK_FALSE(contains(e2.what(), "TOKENbare5678"));
  PodConnectionError e3("GET wss://h/exec/1/?token=t&pod=p&server=https://u:NESTEDpw9@x failed");
  CHECK_FALSE(contains(e3.what(), "NESTEDpw9"));
  CHECK_FALSE(contains(e3.reason(), "NESTEDpw9"));
  PodConfigValidationError e4("token", "only bearer tokens are supported");
  CHECK(std::string(e4.what()) == "invalid token: only bearer tokens are supported");
  PodClientError e5("Basic authentication is required for user alice@example.com");
  CHECK(std::string(e5.what()) == "Basic authentication is required for user alice@example.com");
}

TEST_CASE("security: a command cut for a message is redacted before it is cut") {
  // Cut first, "curl https://u:PASSWORD…" would lose the '@' that marks the password.
  std::string cmd = "curl https://user:" + std::string(300, 'P') + "@h/x";
  PodCommandError c(cmd, 7, "");
  CHECK_FALSE(contains(c.what(), "PPPP"));
  CHECK(c.command() == cmd);  // the field keeps the command
  CHECK(shown_command("curl https://u:pw1234@h/") == "curl https://***@h/");
}

TEST_SUITE_END();

TEST_CASE("errors: long commands are cut in messages but kept whole in the fields") {
  std::string cmd(10000, 'y');
  pw::PodCommandTimeoutError t(cmd, 1.0, "");
  CHECK(std::string(t.what()).size() < 400);
  CHECK(std::string(t.what()).find("(10000 bytes)") != std::string::npos);
  CHECK(t.command() == cmd);
  pw::PodCommandError c(cmd, 2, "");
  CHECK(std::string(c.what()).size() < 400);
  CHECK(c.command() == cmd);
}

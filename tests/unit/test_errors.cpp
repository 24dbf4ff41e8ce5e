// Unit tests for libpodwrangler/src/errors.cpp and error_table.hpp: the error hierarchy
// and the one table of error kinds (code, HTTP status, exit codes).
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

// The kinds the library raises: those with an exception class.
std::vector<ErrorKind> library_kinds() {
  std::vector<ErrorKind> out;
  for (const auto& e : kErrors)
    if (!e.type_name.empty()) out.push_back(e.kind);
  return out;
}

constexpr const char* kToken = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.S1gN4tUr3xYz";
const std::string kUrl =
    std::string("wss://k8s.provider.com/exec/45582/?token=") + kToken + "&cols=220&pod=my-app-deploy-abc12-xyz99";

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

}  // namespace

TEST_SUITE_BEGIN("errors");

TEST_CASE("error table: exactly one row per kind, with its own kind, code and meaning") {
  REQUIRE(kErrors.size() == kErrorKindCount);
  std::set<std::string_view> codes, type_names;
  for (std::size_t i = 0; i < kErrorKindCount; ++i) {
    const auto k = static_cast<ErrorKind>(i);
    const ErrorInfo& info = error_info(k);
    INFO(std::string(info.code));
    CHECK(info.kind == k);
    CHECK(&info == &kErrors[i]);
    CHECK_FALSE(info.code.empty());
    CHECK_FALSE(info.meaning.empty());
    CHECK(codes.insert(info.code).second);
    if (!info.legacy_code.empty()) CHECK(codes.insert(info.legacy_code).second);
    if (!info.type_name.empty()) CHECK(type_names.insert(info.type_name).second);
    // A code names its row back.
    REQUIRE(error_info_for_code(info.code) == &info);
    if (!info.legacy_code.empty()) CHECK(error_info_for_code(info.legacy_code) == &info);
  }
  CHECK(type_names.size() == library_kinds().size());
  CHECK(error_info_for_code("") == nullptr);
  CHECK(error_info_for_code("no_such_code") == nullptr);
  // Only the start-up error is never an answer of the API.
  for (const auto& e : kErrors) CHECK(e.answered == (e.kind != ErrorKind::listen));
}

TEST_CASE("error_info: type names match the exception classes") {
  CHECK(error_info(ErrorKind::client).type_name == "PodClientError");
  CHECK(error_info(ErrorKind::not_found).type_name == "PodNotFoundError");
  CHECK(error_info(ErrorKind::connection).type_name == "PodConnectionError");
  CHECK(error_info(ErrorKind::not_connected).type_name == "PodNotConnectedError");
  CHECK(error_info(ErrorKind::command).type_name == "PodCommandError");
  CHECK(error_info(ErrorKind::command_timeout).type_name == "PodCommandTimeoutError");
  CHECK(error_info(ErrorKind::config_validation).type_name == "PodConfigValidationError");
  CHECK(error_info(ErrorKind::url_parse).type_name == "PodURLParseError");
  CHECK(error_info(ErrorKind::namespace_detection).type_name == "NamespaceDetectionError");
  CHECK(error_info(ErrorKind::listen).type_name == "ListenError");
  CHECK(error_info(ErrorKind::capsule_not_found).type_name == "CapsuleNotFoundError");
  CHECK(error_info(ErrorKind::capsule_conflict).type_name == "CapsuleConflictError");
  CHECK(error_info(ErrorKind::capsule_invalid).type_name == "CapsuleValidationError");
  CHECK(error_info(ErrorKind::engine_unavailable).type_name == "EngineUnavailableError");
  CHECK(error_info(ErrorKind::agent_error).type_name == "AgentError");
  CHECK(library_kinds().size() == 15);
  // Each class reports its own kind.
  CHECK(CapsuleNotFoundError("cap-1").kind() == ErrorKind::capsule_not_found);
  CHECK(CapsuleConflictError("x").kind() == ErrorKind::capsule_conflict);
  CHECK(CapsuleValidationError("memory_mb", "x").kind() == ErrorKind::capsule_invalid);
  CHECK(EngineUnavailableError("x").kind() == ErrorKind::engine_unavailable);
  CHECK(AgentError("x").kind() == ErrorKind::agent_error);
}

TEST_CASE("error_info: the library's exit codes are distinct, non-zero and clear of reserved ranges") {
  std::set<int> exits;
  for (ErrorKind k : library_kinds()) {
    const ErrorInfo& info = error_info(k);
    INFO(std::string(info.type_name));
    CAPTURE(info.exit_code);
    CHECK(info.exit_code > 0);
    CHECK(info.exit_code < 126);  // 126/127: not executable / not found; >128: signals
    // CLI11 uses 100-127 for its own parse errors.
    CHECK_FALSE((info.exit_code >= 100 && info.exit_code <= 127));
    // 2 is the conventional "usage error" of shells and getopt tools.
    CHECK(info.exit_code != 2);
    // A server that cannot listen is told to change its settings, as for any bad setting.
    // The capsule kinds share the CLI's documented meanings (not found, conflict, invalid
    // input, unavailable) with the pod kinds instead of adding numbers.
    bool capsule = info.type_name.find("Capsule") != std::string_view::npos || k == ErrorKind::engine_unavailable ||
                   k == ErrorKind::agent_error;
    if (k != ErrorKind::listen && !capsule) CHECK(exits.insert(info.exit_code).second);
  }
  CHECK(error_info(ErrorKind::capsule_not_found).exit_code == exit_code::not_found);
  CHECK(error_info(ErrorKind::capsule_conflict).exit_code == exit_code::conflict);
  CHECK(error_info(ErrorKind::capsule_invalid).exit_code == exit_code::data);
  CHECK(error_info(ErrorKind::engine_unavailable).exit_code == exit_code::unavailable);
  CHECK(error_info(ErrorKind::agent_error).exit_code == exit_code::unavailable);
  CHECK(error_info(ErrorKind::listen).exit_code == error_info(ErrorKind::config_validation).exit_code);
}

TEST_CASE("error_info: the numbers clients and scripts rely on") {
  struct Row {
    ErrorKind kind;
    const char* code;
    int http, exit, api_exit;
  };
  // As documented in embedded_server/README.md and the man page's EXIT STATUS.
  const Row rows[] = {
      {ErrorKind::client, "pod_client_error", 500, 70, 70},
      {ErrorKind::not_found, "pod_not_found", 404, 68, 68},
      {ErrorKind::connection, "pod_connection_error", 502, 69, 69},
      {ErrorKind::not_connected, "pod_not_connected", 503, 74, 69},
      {ErrorKind::command, "pod_command_failed", 422, 1, 1},
      {ErrorKind::command_timeout, "pod_command_timeout", 504, 75, 75},
      {ErrorKind::config_validation, "invalid_config", 422, 78, 78},
      {ErrorKind::url_parse, "invalid_url", 422, 65, 65},
      {ErrorKind::namespace_detection, "namespace_detection_failed", 422, 76, 65},
      {ErrorKind::listen, "listen_failed", 500, 78, 78},
      {ErrorKind::capsule_not_found, "capsule_not_found", 404, 68, 68},
      {ErrorKind::capsule_conflict, "capsule_conflict", 409, 73, 73},
      {ErrorKind::capsule_invalid, "capsule_invalid", 422, 65, 65},
      {ErrorKind::engine_unavailable, "engine_unavailable", 503, 69, 69},
      {ErrorKind::agent_error, "agent_error", 502, 69, 69},
      {ErrorKind::bad_request, "bad_request", 400, 65, 65},
      {ErrorKind::unauthorized, "unauthorized", 401, 77, 77},
      {ErrorKind::route_not_found, "not_found", 404, 69, 69},
      {ErrorKind::command_not_found, "command_not_found", 404, 68, 68},
      {ErrorKind::method_not_allowed, "method_not_allowed", 405, 69, 69},
      {ErrorKind::conflict, "conflict", 409, 73, 73},
      {ErrorKind::payload_too_large, "payload_too_large", 413, 65, 65},
      {ErrorKind::uri_too_long, "uri_too_long", 414, 70, 70},
      {ErrorKind::unsupported_media_type, "unsupported_media_type", 415, 65, 65},
      {ErrorKind::validation, "validation_error", 422, 65, 65},
      {ErrorKind::headers_too_large, "headers_too_large", 431, 70, 70},
      {ErrorKind::internal, "internal_error", 500, 70, 70},
      {ErrorKind::database_unavailable, "database_unavailable", 503, 69, 69},
      {ErrorKind::shutting_down, "server_shutting_down", 503, 69, 69},
      {ErrorKind::too_many_connections, "too_many_connections", 503, 69, 69},
  };
  CHECK(std::size(rows) == kErrorKindCount);
  for (const auto& r : rows) {
    const ErrorInfo& info = error_info(r.kind);
    CAPTURE(r.code);
    CHECK(info.code == r.code);
    CHECK(info.http_status == r.http);
    CHECK(info.exit_code == r.exit);
    CHECK(info.api_exit_code == r.api_exit);
  }
  CHECK(error_info(ErrorKind::command).legacy_code == "command_failed");
  CHECK(error_info(ErrorKind::command_timeout).legacy_code == "command_timeout");
}

TEST_CASE("error_info: HTTP statuses are sensible") {
  for (const auto& info : kErrors) {
    INFO(std::string(info.code));
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
  static_assert(std::is_base_of_v<PodClientError, ListenError>);

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
  CHECK(kind_of([] { throw ListenError("127.0.0.1", 80, "denied"); }) == ErrorKind::listen);
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
  CHECK(e.info().type_name == "PodNotFoundError");
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

TEST_CASE("ListenError: host, port and an address as it is written") {
  ListenError e("127.0.0.1", 8000, "Address already in use");
  CHECK(e.kind() == ErrorKind::listen);
  CHECK(e.host() == "127.0.0.1");
  CHECK(e.port() == 8000);
  CHECK(std::string(e.what()) == "cannot listen on 127.0.0.1:8000: Address already in use");
  CHECK(std::string(ListenError("::1", 80, "Permission denied").what()) ==
        "cannot listen on [::1]:80: Permission denied");
  CHECK(e.info().exit_code == 78);
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
  CHECK(std::string(e4.what()) == "connection failed: connect to 10.0.0.1:443 timed out after 15s (attempt 2 of 3)");
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

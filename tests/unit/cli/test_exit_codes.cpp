// Unit tests for cli/exit_codes.hpp (the exit table of error_table.hpp): one table, clear of
// CLI11's range, consistent with the error table, and the API error → exit code mapping
// (cli/api_client.cpp).
#include <doctest/doctest.h>

#include "cli/api_client.hpp"
#include "cli/exit_codes.hpp"

#include <podwrangler/errors.hpp>

#include <set>
#include <string>

using namespace pw::cli;

TEST_CASE("exit codes: distinct, named, clear of CLI11's 100-127") {
  std::set<int> codes;
  std::set<std::string_view> names;
  for (const auto& e : kExitCodes) {
    CHECK(codes.insert(e.code).second);
    CHECK(names.insert(e.name).second);
    CHECK_FALSE(e.meaning.empty());
    CHECK((e.code < 100 || e.code > 127));
    CHECK(e.code < 126);  // shells reserve 126+ (not executable, not found, signals)
  }
  CHECK(codes.count(0));
  CHECK(codes.count(64));
}

TEST_CASE("exit codes: every row of the error table maps to a code of the exit table") {
  using pw::ErrorKind;
  std::set<int> codes;
  for (const auto& e : kExitCodes) codes.insert(e.code);
  for (const auto& e : pw::kErrors) {
    INFO(std::string(e.code));
    CHECK(codes.count(e.exit_code) == 1);
    CHECK(codes.count(e.api_exit_code) == 1);
    CHECK(e.exit_code != exit_code::ok);
    CHECK(e.exit_code != exit_code::usage);  // the option parser's, never an error of a run
  }
  CHECK(pw::error_info(ErrorKind::not_found).exit_code == exit_code::not_found);
  CHECK(pw::error_info(ErrorKind::connection).exit_code == exit_code::unavailable);
  CHECK(pw::error_info(ErrorKind::command_timeout).exit_code == exit_code::timeout);
  CHECK(pw::error_info(ErrorKind::config_validation).exit_code == exit_code::config);
  CHECK(pw::error_info(ErrorKind::command).exit_code == exit_code::command_failed);
  CHECK(pw::error_info(ErrorKind::url_parse).exit_code == exit_code::data);
  CHECK(pw::error_info(ErrorKind::client).exit_code == exit_code::software);
  CHECK(pw::error_info(ErrorKind::listen).exit_code == exit_code::config);
}

TEST_CASE("exit codes: an API answer with a code of the table exits with the row's api_exit_code") {
  for (const auto& e : pw::kErrors) {
    INFO(std::string(e.code));
    CHECK(exit_code_for_api_error(e.http_status, std::string(e.code)) == e.api_exit_code);
    if (!e.legacy_code.empty())
      CHECK(exit_code_for_api_error(e.http_status, std::string(e.legacy_code)) == e.api_exit_code);
    // The code decides, whatever the status (a proxy may change it).
    CHECK(exit_code_for_api_error(200, std::string(e.code)) == e.api_exit_code);
  }
}

TEST_CASE("exit codes: API errors (README codes and statuses)") {
  CHECK(exit_code_for_api_error(401, "unauthorized") == exit_code::auth);
  CHECK(exit_code_for_api_error(403, "") == exit_code::auth);
  CHECK(exit_code_for_api_error(404, "pod_not_found") == exit_code::not_found);
  CHECK(exit_code_for_api_error(404, "command_not_found") == exit_code::not_found);
  CHECK(exit_code_for_api_error(404, "not_found") == exit_code::unavailable);  // no such route
  CHECK(exit_code_for_api_error(405, "method_not_allowed") == exit_code::unavailable);
  CHECK(exit_code_for_api_error(409, "conflict") == exit_code::conflict);
  CHECK(exit_code_for_api_error(400, "bad_request") == exit_code::data);
  CHECK(exit_code_for_api_error(413, "payload_too_large") == exit_code::data);
  CHECK(exit_code_for_api_error(415, "unsupported_media_type") == exit_code::data);
  CHECK(exit_code_for_api_error(422, "validation_error") == exit_code::data);
  CHECK(exit_code_for_api_error(422, "command_failed") == exit_code::command_failed);
  CHECK(exit_code_for_api_error(502, "pod_connection_error") == exit_code::unavailable);
  CHECK(exit_code_for_api_error(503, "database_unavailable") == exit_code::unavailable);
  CHECK(exit_code_for_api_error(504, "command_timeout") == exit_code::timeout);
  CHECK(exit_code_for_api_error(500, "internal_error") == exit_code::software);
  CHECK(exit_code_for_api_error(502, "") == exit_code::unavailable);
  CHECK(exit_code_for_api_error(418, "") == exit_code::software);
  // the library's codes (errors.cpp) mean the same
  CHECK(exit_code_for_api_error(504, "pod_command_timeout") == exit_code::timeout);
  CHECK(exit_code_for_api_error(422, "pod_command_failed") == exit_code::command_failed);
  CHECK(exit_code_for_api_error(422, "invalid_url") == exit_code::data);
}

TEST_CASE("exit codes: an answer without a code of ours goes by its HTTP status") {
  for (const char* code : {"", "some_proxy_error"}) {
    CAPTURE(code);
    CHECK(exit_code_for_api_error(400, code) == exit_code::data);
    CHECK(exit_code_for_api_error(401, code) == exit_code::auth);
    CHECK(exit_code_for_api_error(403, code) == exit_code::auth);
    CHECK(exit_code_for_api_error(404, code) == exit_code::not_found);
    CHECK(exit_code_for_api_error(408, code) == exit_code::timeout);
    CHECK(exit_code_for_api_error(409, code) == exit_code::conflict);
    CHECK(exit_code_for_api_error(413, code) == exit_code::data);
    CHECK(exit_code_for_api_error(415, code) == exit_code::data);
    CHECK(exit_code_for_api_error(422, code) == exit_code::data);
    CHECK(exit_code_for_api_error(500, code) == exit_code::software);
    CHECK(exit_code_for_api_error(502, code) == exit_code::unavailable);
    CHECK(exit_code_for_api_error(503, code) == exit_code::unavailable);
    CHECK(exit_code_for_api_error(504, code) == exit_code::timeout);
    CHECK(exit_code_for_api_error(418, code) == exit_code::software);
  }
}

// Unit tests for cli/exit_codes.hpp: one table, clear of CLI11's range, consistent with the
// library's error table, and the API error → exit code mapping (cli/api_client.cpp).
#include <doctest/doctest.h>

#include "cli/api_client.hpp"
#include "cli/exit_codes.hpp"

#include <podwrangler/errors.hpp>

#include <set>

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

TEST_CASE("exit codes: every library error kind maps to a code of the CLI table") {
  using pw::ErrorKind;
  std::set<int> codes;
  for (const auto& e : kExitCodes) codes.insert(e.code);
  for (auto k : {ErrorKind::client, ErrorKind::not_found, ErrorKind::connection, ErrorKind::not_connected,
                 ErrorKind::command, ErrorKind::command_timeout, ErrorKind::config_validation,
                 ErrorKind::url_parse, ErrorKind::namespace_detection}) {
    INFO(pw::error_info(k).type_name);
    CHECK(codes.count(pw::error_info(k).exit_code) == 1);
  }
  CHECK(pw::error_info(ErrorKind::not_found).exit_code == exit_code::not_found);
  CHECK(pw::error_info(ErrorKind::connection).exit_code == exit_code::unavailable);
  CHECK(pw::error_info(ErrorKind::command_timeout).exit_code == exit_code::timeout);
  CHECK(pw::error_info(ErrorKind::config_validation).exit_code == exit_code::config);
  CHECK(pw::error_info(ErrorKind::command).exit_code == exit_code::command_failed);
  CHECK(pw::error_info(ErrorKind::url_parse).exit_code == exit_code::data);
  CHECK(pw::error_info(ErrorKind::client).exit_code == exit_code::software);
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

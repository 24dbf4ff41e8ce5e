#pragma once
// The one table of errors. Every kind of error podwrangler reports has one row here: the
// API `code` it is answered with, its HTTP status, the exit status a program gives for it
// and one line saying what it means. The library's exception classes (errors.hpp), the
// server's error bodies, the CLI's exit codes and its man page all read their numbers and
// names from this file; nothing else spells them.
//
// Header-only and constexpr: every layer can use it (the store's PostgreSQL module too,
// which links none of the library's code), and the static_asserts below hold the table
// together at compile time.
#include <array>
#include <cstddef>
#include <string_view>

namespace pw {

// ---- exit statuses ---------------------------------------------------------------------
// sysexits(3)-style, clear of CLI11's own 100-127 (every parse error becomes `usage`) and
// of the shells' 126 and up.
namespace exit_code {
inline constexpr int ok = 0;
inline constexpr int command_failed = 1;  // remote command exited non-zero (run-many: some did)
inline constexpr int usage = 64;          // EX_USAGE: bad flag, argument or combination
inline constexpr int data = 65;           // EX_DATAERR: the API rejected a value (422, bad URL)
inline constexpr int not_found = 68;      // EX_NOHOST: no such pod alias / history id
inline constexpr int unavailable = 69;    // EX_UNAVAILABLE: API or pod unreachable, API degraded
inline constexpr int software = 70;       // EX_SOFTWARE: internal error; an answer that is not the API's
inline constexpr int conflict = 73;       // EX_CANTCREAT: the pod alias already exists
inline constexpr int not_connected = 74;  // EX_IOERR: session not connected (library)
inline constexpr int timeout = 75;        // EX_TEMPFAIL: command or API call timed out
inline constexpr int protocol = 76;       // EX_PROTOCOL: namespace detection failed (library)
inline constexpr int auth = 77;           // EX_NOPERM: the API refused the API key
inline constexpr int config = 78;         // EX_CONFIG: bad config file, env var or setting
}  // namespace exit_code

struct ExitCodeInfo {
  int code;
  std::string_view name;     // stable name (JSON, docs)
  std::string_view meaning;  // one line for the man page
};

// Every exit status, in numeric order (the man page's EXIT STATUS table).
inline constexpr std::array<ExitCodeInfo, 13> kExitCodes{{
    {exit_code::ok, "ok", "success (run-many: every pod succeeded)"},
    {exit_code::command_failed, "command_failed",
     "run-many: at least one remote command exited non-zero (exec run returns the remote "
     "command's own exit status instead)"},
    {exit_code::usage, "usage", "usage error: unknown flag, missing or conflicting arguments"},
    {exit_code::data, "invalid_input",
     "the API rejected a value (invalid alias, URL, label, provider; malformed request)"},
    {exit_code::not_found, "not_found", "no such pod alias or history id"},
    {exit_code::unavailable, "unavailable",
     "cannot reach the API or the pod, the API is degraded (database down); run-many: some "
     "pods could not be reached and none failed or timed out"},
    {exit_code::software, "internal_error",
     "internal error, or a protocol error: the server's answer is not the podwrangler API's (not "
     "JSON, an HTML page, JSON of the wrong shape or without a required field)"},
    {exit_code::conflict, "conflict", "pod add: the alias already exists"},
    {exit_code::not_connected, "not_connected", "session not connected (library error)"},
    {exit_code::timeout, "timeout",
     "the command or the API call timed out; run-many: some pods timed out and none failed"},
    {exit_code::protocol, "namespace_detection", "namespace detection failed (library error)"},
    {exit_code::auth, "unauthorized", "the API refused the API key (HTTP 401/403)"},
    {exit_code::config, "config",
     "invalid configuration: malformed ~/.podwrangler.toml, unknown profile, bad API URL or "
     "PODWRANGLER_* value, server settings"},
}};

// The row of an exit status; nullptr for a number that is not one of ours.
constexpr bool is_exit_code(int code) noexcept {
  for (const auto& e : kExitCodes)
    if (e.code == code) return true;
  return false;
}

constexpr const ExitCodeInfo* exit_code_info(int code) noexcept {
  for (const auto& e : kExitCodes)
    if (e.code == code) return &e;
  return nullptr;
}

// ---- error kinds -----------------------------------------------------------------------

enum class ErrorKind {
  // Raised by the library: each exception class of errors.hpp carries one. The server
  // answers with these too when a library error ends a request.
  client,               // PodClientError (base)
  not_found,            // PodNotFoundError
  connection,           // PodConnectionError
  not_connected,        // PodNotConnectedError
  command,              // PodCommandError
  command_timeout,      // PodCommandTimeoutError
  config_validation,    // PodConfigValidationError
  url_parse,            // PodURLParseError
  namespace_detection,  // NamespaceDetectionError
  listen,               // ListenError: the server cannot listen (start-up only, never answered)
  // Capsules (libpodwrangler/capsules): Wrenn's kinds.
  capsule_not_found,   // CapsuleNotFoundError
  capsule_conflict,    // CapsuleConflictError: the capsule is in the wrong state for the call
  capsule_invalid,     // CapsuleValidationError: a create/exec/file request the engine cannot honour
  engine_unavailable,  // EngineUnavailableError: the container engine cannot be reached
  agent_error,         // AgentError: the in-capsule agent failed or broke the protocol
  // Answered by the REST server only (no exception class of the library).
  bad_request,
  unauthorized,
  route_not_found,
  command_not_found,
  method_not_allowed,
  conflict,
  payload_too_large,
  uri_too_long,
  unsupported_media_type,
  validation,
  headers_too_large,
  internal,
  database_unavailable,
  shutting_down,
  too_many_connections,  // keep last: kErrorKindCount counts up to it
};
inline constexpr std::size_t kErrorKindCount = static_cast<std::size_t>(ErrorKind::too_many_connections) + 1;

struct ErrorInfo {
  ErrorKind kind;
  std::string_view code;         // the API's "code" ("pod_not_found"): stable, documented
  std::string_view legacy_code;  // an older spelling the client still reads, or ""
  std::string_view type_name;    // the library's exception class, "" for server-only kinds
  int http_status;               // the status of the API's answer
  bool answered;                 // the API can answer with it (false: start-up only)
  // Exit status of a program that meets the error itself (the library's callers, the CLI
  // starting its --local server or `serve`).
  int exit_code;
  // Exit status of the CLI when the API answers with this code. Differs from exit_code
  // where the API's side of it is another failure: a session of the server that is not
  // connected is a pod the API cannot reach (69), a namespace the server cannot find is a
  // pod URL it rejects (65).
  int api_exit_code;
  std::string_view meaning;  // one line for the man page
};

// One row per kind, in the enum's order (error_info() indexes it).
inline constexpr std::array<ErrorInfo, kErrorKindCount> kErrors{{
    // kind, code, legacy code, class, HTTP, answered, exit, API exit, meaning
    {ErrorKind::client, "pod_client_error", "", "PodClientError", 500, true, exit_code::software, exit_code::software,
     "a library error of no more specific kind"},
    {ErrorKind::not_found, "pod_not_found", "", "PodNotFoundError", 404, true, exit_code::not_found,
     exit_code::not_found, "no pod is registered under the alias"},
    {ErrorKind::connection, "pod_connection_error", "", "PodConnectionError", 502, true, exit_code::unavailable,
     exit_code::unavailable, "the pod cannot be reached, or its connection broke"},
    {ErrorKind::not_connected, "pod_not_connected", "", "PodNotConnectedError", 503, true, exit_code::not_connected,
     exit_code::unavailable, "the pod's session is not connected"},
    {ErrorKind::command, "pod_command_failed", "command_failed", "PodCommandError", 422, true,
     exit_code::command_failed, exit_code::command_failed,
     "the command exited non-zero and the request asked to check it"},
    {ErrorKind::command_timeout, "pod_command_timeout", "command_timeout", "PodCommandTimeoutError", 504, true,
     exit_code::timeout, exit_code::timeout,
     "the command did not finish within its timeout (the result holds its partial output)"},
    {ErrorKind::config_validation, "invalid_config", "", "PodConfigValidationError", 422, true, exit_code::config,
     exit_code::config, "a setting or a pod's configuration is invalid"},
    {ErrorKind::url_parse, "invalid_url", "", "PodURLParseError", 422, true, exit_code::data, exit_code::data,
     "a pod URL is malformed"},
    {ErrorKind::namespace_detection, "namespace_detection_failed", "", "NamespaceDetectionError", 422, true,
     exit_code::protocol, exit_code::data, "the Kubernetes namespace of a pod could not be determined"},
    {ErrorKind::listen, "listen_failed", "", "ListenError", 500, false, exit_code::config, exit_code::config,
     "the server cannot listen on its host and port"},
    {ErrorKind::capsule_not_found, "capsule_not_found", "", "CapsuleNotFoundError", 404, true, exit_code::not_found,
     exit_code::not_found, "no such capsule (or template, or file inside a capsule)"},
    {ErrorKind::capsule_conflict, "capsule_conflict", "", "CapsuleConflictError", 409, true, exit_code::conflict,
     exit_code::conflict, "the capsule is in the wrong state for the call (e.g. exec on a stopped capsule)"},
    {ErrorKind::capsule_invalid, "capsule_invalid", "", "CapsuleValidationError", 422, true, exit_code::data,
     exit_code::data, "a capsule request with an invalid value (image, limit, path, mount …)"},
    {ErrorKind::engine_unavailable, "engine_unavailable", "", "EngineUnavailableError", 503, true,
     exit_code::unavailable, exit_code::unavailable, "the container engine (dockerd) cannot be reached"},
    {ErrorKind::agent_error, "agent_error", "", "AgentError", 502, true, exit_code::unavailable, exit_code::unavailable,
     "the agent inside the capsule failed or broke the protocol"},
    {ErrorKind::bad_request, "bad_request", "", "", 400, true, exit_code::data, exit_code::data,
     "the request is not valid HTTP, or its body is not a JSON object"},
    {ErrorKind::unauthorized, "unauthorized", "", "", 401, true, exit_code::auth, exit_code::auth,
     "the Authorization: Bearer key is missing or wrong"},
    {ErrorKind::route_not_found, "not_found", "", "", 404, true, exit_code::unavailable, exit_code::unavailable,
     "no such endpoint (not a podwrangler API of this version)"},
    {ErrorKind::command_not_found, "command_not_found", "", "", 404, true, exit_code::not_found, exit_code::not_found,
     "no command with this history id"},
    {ErrorKind::method_not_allowed, "method_not_allowed", "", "", 405, true, exit_code::unavailable,
     exit_code::unavailable, "the endpoint does not take this method (Allow lists those it takes)"},
    {ErrorKind::conflict, "conflict", "", "", 409, true, exit_code::conflict, exit_code::conflict,
     "a pod with this alias already exists"},
    {ErrorKind::payload_too_large, "payload_too_large", "", "", 413, true, exit_code::data, exit_code::data,
     "the request body is over PODWRANGLER_MAX_BODY_BYTES"},
    {ErrorKind::uri_too_long, "uri_too_long", "", "", 414, true, exit_code::software, exit_code::software,
     "the request target is over 8 KiB"},
    {ErrorKind::unsupported_media_type, "unsupported_media_type", "", "", 415, true, exit_code::data, exit_code::data,
     "the request body is not application/json"},
    {ErrorKind::validation, "validation_error", "", "", 422, true, exit_code::data, exit_code::data,
     "a request value is invalid (\"field\" names it)"},
    {ErrorKind::headers_too_large, "headers_too_large", "", "", 431, true, exit_code::software, exit_code::software,
     "the request line and headers are over 32 KiB"},
    {ErrorKind::internal, "internal_error", "", "", 500, true, exit_code::software, exit_code::software,
     "an internal error of the server (logged, never described)"},
    {ErrorKind::database_unavailable, "database_unavailable", "", "", 503, true, exit_code::unavailable,
     exit_code::unavailable, "the database is not reachable"},
    {ErrorKind::shutting_down, "server_shutting_down", "", "", 503, true, exit_code::unavailable,
     exit_code::unavailable, "the server is stopping and takes no new commands"},
    {ErrorKind::too_many_connections, "too_many_connections", "", "", 503, true, exit_code::unavailable,
     exit_code::unavailable, "over PODWRANGLER_MAX_CONNECTIONS (or per client) open connections"},
}};

// The row of `kind`; the base row (client) for a value outside the enum.
constexpr const ErrorInfo& error_info(ErrorKind kind) noexcept {
  const auto i = static_cast<std::size_t>(kind);
  return i < kErrors.size() ? kErrors[i] : kErrors[0];
}

// The row whose code (or legacy code) is `code`; nullptr for a code that is not ours.
constexpr const ErrorInfo* error_info_for_code(std::string_view code) noexcept {
  if (code.empty()) return nullptr;
  for (const auto& e : kErrors)
    if (e.code == code || e.legacy_code == code) return &e;
  return nullptr;
}

// ---- the table holds together ----------------------------------------------------------
namespace error_table_check {
constexpr bool rows_in_enum_order() {
  for (std::size_t i = 0; i < kErrors.size(); ++i)
    if (static_cast<std::size_t>(kErrors[i].kind) != i) return false;
  return true;
}
constexpr bool codes_unique() {
  for (std::size_t i = 0; i < kErrors.size(); ++i)
    for (std::size_t j = 0; j < kErrors.size(); ++j) {
      const auto& a = kErrors[i];
      const auto& b = kErrors[j];
      if (i != j && (a.code == b.code || (!b.legacy_code.empty() && a.code == b.legacy_code))) return false;
    }
  return true;
}
constexpr bool rows_complete() {
  for (const auto& e : kErrors) {
    if (e.code.empty() || e.meaning.empty()) return false;
    if (e.http_status < 400 || e.http_status > 599) return false;
    // is_exit_code, not exit_code_info: GCC 12 cannot constant-evaluate the comparison of an
    // element's address with null under -fsanitize=undefined (the asan preset).
    if (!is_exit_code(e.exit_code) || !is_exit_code(e.api_exit_code)) return false;
    if (e.exit_code == exit_code::ok || e.api_exit_code == exit_code::ok) return false;
  }
  return true;
}
constexpr bool exit_codes_ordered_and_unique() {
  for (std::size_t i = 1; i < kExitCodes.size(); ++i)
    if (kExitCodes[i - 1].code >= kExitCodes[i].code) return false;
  return true;
}
}  // namespace error_table_check

static_assert(error_table_check::rows_in_enum_order(), "kErrors: one row per ErrorKind, in the enum's order");
static_assert(error_table_check::codes_unique(), "kErrors: every API code names one kind");
static_assert(error_table_check::rows_complete(),
              "kErrors: every row has a code, a meaning, an error status and exit codes of kExitCodes");
static_assert(error_table_check::exit_codes_ordered_and_unique(), "kExitCodes: distinct, in numeric order");

}  // namespace pw

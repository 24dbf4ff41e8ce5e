#include <podwrangler/errors.hpp>
#include <podwrangler/redact.hpp>
#include <podwrangler/secret.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <string_view>

namespace pw {

namespace {
// The single table: error kind → type name, JSON code, CLI exit code, HTTP status.
// Exit codes follow sysexits(3), are distinct per kind and stay clear of CLI11's 100-127:
//   1 command failed (check=true)      65 EX_DATAERR   bad URL
//   68 EX_NOHOST  pod not registered   69 EX_UNAVAILABLE connection failed
//   70 EX_SOFTWARE other client error  74 EX_IOERR     session not connected
//   75 EX_TEMPFAIL command timed out   76 EX_PROTOCOL  namespace detection failed
//   78 EX_CONFIG  invalid configuration
constexpr std::array<ErrorInfo, 9> kTable{{
    {ErrorKind::client, "PodClientError", "pod_client_error", 70, 500},
    {ErrorKind::not_found, "PodNotFoundError", "pod_not_found", 68, 404},
    {ErrorKind::connection, "PodConnectionError", "pod_connection_error", 69, 502},
    {ErrorKind::not_connected, "PodNotConnectedError", "pod_not_connected", 74, 503},
    {ErrorKind::command, "PodCommandError", "pod_command_failed", 1, 422},
    {ErrorKind::command_timeout, "PodCommandTimeoutError", "pod_command_timeout", 75, 504},
    {ErrorKind::config_validation, "PodConfigValidationError", "invalid_config", 78, 422},
    {ErrorKind::url_parse, "PodURLParseError", "invalid_url", 65, 422},
    {ErrorKind::namespace_detection, "NamespaceDetectionError", "namespace_detection_failed", 76,
     422},
}};

std::string fmt_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}
}  // namespace

std::string shown_command(std::string_view command) {
  // Redacted before it is cut: a cut in the middle of "https://u:pw@h" would hide the '@'
  // that marks the password.
  constexpr std::size_t kMax = 200;
  std::string shown = redact_text(command);
  if (command.size() <= kMax && shown.size() <= kMax) return shown;
  std::string out(shown.substr(0, std::min(kMax, shown.size())));
  out += "... (";
  out += std::to_string(command.size());
  out += " bytes)";
  return out;
}

const ErrorInfo& error_info(ErrorKind kind) noexcept {
  for (const auto& e : kTable)
    if (e.kind == kind) return e;
  return kTable[0];
}

PodClientError::PodClientError(const std::string& message, ErrorKind kind)
    : std::runtime_error(redact_text(message)), kind_(kind) {}

PodNotFoundError::PodNotFoundError(std::string alias)
    : PodClientError("pod '" + alias + "' is not registered", ErrorKind::not_found),
      alias_(std::move(alias)) {}

PodConnectionError::PodConnectionError(std::string reason)
    : PodClientError("connection failed: " + reason, ErrorKind::connection),
      reason_(redact_text(reason)) {}

PodNotConnectedError::PodNotConnectedError()
    : PodClientError("session is not connected (call connect() first)",
                     ErrorKind::not_connected) {}
PodNotConnectedError::PodNotConnectedError(const std::string& message)
    : PodClientError(message, ErrorKind::not_connected) {}

PodCommandError::PodCommandError(std::string command, int exit_code, std::string output)
    : PodClientError("command exited with code " + std::to_string(exit_code) + ": " + shown_command(command),
                     ErrorKind::command),
      command_(std::move(command)),
      exit_code_(exit_code),
      output_(std::move(output)) {}

PodCommandTimeoutError::PodCommandTimeoutError(std::string command, double timeout,
                                               std::string partial_output)
    : PodClientError("command timed out after " + fmt_seconds(timeout) + "s: " + shown_command(command),
                     ErrorKind::command_timeout),
      command_(std::move(command)),
      timeout_(timeout),
      output_(std::move(partial_output)) {}

PodConfigValidationError::PodConfigValidationError(std::string field, const std::string& problem)
    : PodClientError("invalid " + field + ": " + problem, ErrorKind::config_validation),
      field_(std::move(field)) {}

namespace {
std::string shown_url(std::string_view url) {
  // Hostile input may be huge or hold control bytes: show a short, printable, redacted form.
  // Control bytes become '?' before redaction, so "pod=x\0token=…" is seen as two items.
  // Redacted whole, then cut: cut first, "https://TOKEN…@host" would lose the '@' that
  // marks TOKEN as userinfo.
  std::string r(url);
  for (char& c : r)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  r = redact_url(r);
  if (r.size() > 512) {
    r.resize(512);
    r += "...";
  }
  return r;
}
}  // namespace

PodURLParseError::PodURLParseError(std::string part, const std::string& problem,
                                   std::string_view url)
    : PodClientError("invalid URL (" + part + "): " + problem + " in '" + shown_url(url) + "'",
                     ErrorKind::url_parse),
      part_(std::move(part)) {}

NamespaceDetectionError::NamespaceDetectionError(std::string reason)
    : PodClientError("namespace detection failed: " + reason, ErrorKind::namespace_detection),
      reason_(redact_text(reason)) {}

}  // namespace pw

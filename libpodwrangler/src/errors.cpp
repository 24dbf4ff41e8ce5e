#include <podwrangler/errors.hpp>
#include <podwrangler/redact.hpp>

#include <array>
#include <cstdio>

namespace pw {

namespace {
// The single table: error kind → type name, JSON code, CLI exit code, HTTP status.
// Exit codes follow sysexits(3) and stay clear of CLI11's 100-127.
constexpr std::array<ErrorInfo, 9> kTable{{
    {ErrorKind::client, "PodClientError", "pod_client_error", 70, 500},
    {ErrorKind::not_found, "PodNotFoundError", "pod_not_found", 68, 404},
    {ErrorKind::connection, "PodConnectionError", "pod_connection_error", 69, 502},
    {ErrorKind::not_connected, "PodNotConnectedError", "pod_not_connected", 69, 503},
    {ErrorKind::command, "PodCommandError", "pod_command_failed", 1, 422},
    {ErrorKind::command_timeout, "PodCommandTimeoutError", "pod_command_timeout", 124, 504},
    {ErrorKind::config_validation, "PodConfigValidationError", "invalid_config", 65, 422},
    {ErrorKind::url_parse, "PodURLParseError", "invalid_url", 65, 422},
    {ErrorKind::namespace_detection, "NamespaceDetectionError", "namespace_detection_failed", 78,
     422},
}};

std::string fmt_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}
}  // namespace

const ErrorInfo& error_info(ErrorKind kind) noexcept {
  for (const auto& e : kTable)
    if (e.kind == kind) return e;
  return kTable[0];
}

PodClientError::PodClientError(const std::string& message, ErrorKind kind)
    : std::runtime_error(message), kind_(kind) {}

PodNotFoundError::PodNotFoundError(std::string alias)
    : PodClientError("pod '" + alias + "' is not registered", ErrorKind::not_found),
      alias_(std::move(alias)) {}

PodConnectionError::PodConnectionError(std::string reason)
    : PodClientError("connection failed: " + reason, ErrorKind::connection),
      reason_(std::move(reason)) {}

PodNotConnectedError::PodNotConnectedError()
    : PodClientError("session is not connected (call connect() first)",
                     ErrorKind::not_connected) {}
PodNotConnectedError::PodNotConnectedError(const std::string& message)
    : PodClientError(message, ErrorKind::not_connected) {}

PodCommandError::PodCommandError(std::string command, int exit_code, std::string output)
    : PodClientError("command exited with code " + std::to_string(exit_code) + ": " + command,
                     ErrorKind::command),
      command_(std::move(command)),
      exit_code_(exit_code),
      output_(std::move(output)) {}

PodCommandTimeoutError::PodCommandTimeoutError(std::string command, double timeout,
                                               std::string partial_output)
    : PodClientError("command timed out after " + fmt_seconds(timeout) + "s: " + command,
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
  std::string r = redact_url(url.substr(0, 512));
  for (char& c : r)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  if (url.size() > 512) r += "...";
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
      reason_(std::move(reason)) {}

}  // namespace pw

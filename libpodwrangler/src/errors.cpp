#include <podwrangler/errors.hpp>
#include <podwrangler/redact.hpp>

#include <cstdio>
#include <string_view>

namespace pw {

namespace {
std::string fmt_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}
}  // namespace

PodClientError::PodClientError(const std::string& message, ErrorKind kind)
    : std::runtime_error(redact_text(message)), kind_(kind) {}

PodNotFoundError::PodNotFoundError(std::string alias)
    : PodClientError("pod '" + alias + "' is not registered", ErrorKind::not_found), alias_(std::move(alias)) {}

PodConnectionError::PodConnectionError(std::string reason)
    : PodClientError("connection failed: " + reason, ErrorKind::connection), reason_(redact_text(reason)) {}

PodNotConnectedError::PodNotConnectedError()
    : PodClientError("session is not connected (call connect() first)", ErrorKind::not_connected) {}
PodNotConnectedError::PodNotConnectedError(const std::string& message)
    : PodClientError(message, ErrorKind::not_connected) {}

PodCommandError::PodCommandError(std::string command, int exit_code, std::string output)
    : PodClientError("command exited with code " + std::to_string(exit_code) + ": " + shown_command(command),
                     ErrorKind::command),
      command_(std::move(command)),
      exit_code_(exit_code),
      output_(std::move(output)) {}

PodCommandTimeoutError::PodCommandTimeoutError(std::string command, double timeout, std::string partial_output)
    : PodClientError("command timed out after " + fmt_seconds(timeout) + "s: " + shown_command(command),
                     ErrorKind::command_timeout),
      command_(std::move(command)),
      timeout_(timeout),
      output_(std::move(partial_output)) {}

PodConfigValidationError::PodConfigValidationError(std::string field, const std::string& problem)
    : PodClientError("invalid " + field + ": " + problem, ErrorKind::config_validation), field_(std::move(field)) {}

PodURLParseError::PodURLParseError(std::string part, const std::string& problem, std::string_view url)
    : PodClientError("invalid URL (" + part + "): " + problem + " in '" + shown_url(url) + "'", ErrorKind::url_parse),
      part_(std::move(part)) {}

NamespaceDetectionError::NamespaceDetectionError(std::string reason)
    : PodClientError("namespace detection failed: " + reason, ErrorKind::namespace_detection),
      reason_(redact_text(reason)) {}

ListenError::ListenError(std::string host, int port, const std::string& reason)
    : PodClientError("cannot listen on " + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
                         std::to_string(port) + ": " + reason,
                     ErrorKind::listen),
      host_(std::move(host)),
      port_(port) {}

CapsuleNotFoundError::CapsuleNotFoundError(std::string name, std::string_view what)
    : PodClientError(std::string(what) + " not found: " + redact_text(name), ErrorKind::capsule_not_found),
      name_(redact_text(name)) {}

CapsuleConflictError::CapsuleConflictError(const std::string& message)
    : PodClientError(message, ErrorKind::capsule_conflict) {}

CapsuleValidationError::CapsuleValidationError(std::string field, const std::string& problem)
    : PodClientError("invalid " + field + ": " + redact_text(problem), ErrorKind::capsule_invalid),
      field_(std::move(field)) {}

EngineUnavailableError::EngineUnavailableError(const std::string& message)
    : PodClientError(message, ErrorKind::engine_unavailable) {}

AgentError::AgentError(const std::string& message) : PodClientError(message, ErrorKind::agent_error) {}

}  // namespace pw

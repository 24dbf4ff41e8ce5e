#pragma once
// The library's exception classes. Each carries an ErrorKind, and through it its row of
// the one error table (error_table.hpp): API code, HTTP status, exit code. Messages never
// contain secrets: constructors redact URLs and callers pass redacted text.
#include <podwrangler/error_table.hpp>

#include <utility>
#include <stdexcept>
#include <string>
#include <string_view>

namespace pw {

class PodClientError : public std::runtime_error {
 public:
  explicit PodClientError(const std::string& message, ErrorKind kind = ErrorKind::client);
  ErrorKind kind() const noexcept { return kind_; }
  // The kind's row of the error table.
  const ErrorInfo& info() const noexcept { return error_info(kind_); }

 private:
  ErrorKind kind_;
};

class PodNotFoundError : public PodClientError {
 public:
  explicit PodNotFoundError(std::string alias);
  const std::string& alias() const noexcept { return alias_; }

 private:
  std::string alias_;
};

class PodConnectionError : public PodClientError {
 public:
  explicit PodConnectionError(std::string reason);
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string reason_;
};

class PodNotConnectedError : public PodClientError {
 public:
  PodNotConnectedError();
  explicit PodNotConnectedError(const std::string& message);
};

class PodCommandError : public PodClientError {
 public:
  PodCommandError(std::string command, int exit_code, std::string output);
  const std::string& command() const noexcept { return command_; }
  int exit_code() const noexcept { return exit_code_; }
  const std::string& output() const noexcept { return output_; }

 private:
  std::string command_;
  int exit_code_;
  std::string output_;
};

class PodCommandTimeoutError : public PodClientError {
 public:
  PodCommandTimeoutError(std::string command, double timeout, std::string partial_output);
  // session_reset: the command could not be interrupted, so the session's shell was
  // replaced; the message says so (working directory, variables and jobs are lost).
  PodCommandTimeoutError(std::string command, double timeout, std::string partial_output, bool session_reset)
      : PodCommandTimeoutError(std::move(command), timeout, std::move(partial_output)) {
    if (session_reset) {
      session_reset_ = true;
      reset_message_ = std::string(PodClientError::what()) + kSessionResetNote;
    }
  }
  const char* what() const noexcept override {
    return session_reset_ ? reset_message_.c_str() : PodClientError::what();
  }
  const std::string& command() const noexcept { return command_; }
  double timeout() const noexcept { return timeout_; }
  // Output received before the deadline.
  const std::string& output() const noexcept { return output_; }
  // The shell was replaced after the timeout (false: the command was interrupted and
  // the same shell, with its state, goes on).
  bool session_reset() const noexcept { return session_reset_; }

  static constexpr const char* kSessionResetNote =
      " (the command could not be interrupted: the session's shell was replaced, its working "
      "directory, variables and jobs are lost)";

 private:
  std::string command_;
  double timeout_;
  std::string output_;
  bool session_reset_ = false;
  std::string reset_message_;
};

class PodConfigValidationError : public PodClientError {
 public:
  PodConfigValidationError(std::string field, const std::string& problem);
  const std::string& field() const noexcept { return field_; }

 private:
  std::string field_;
};

class PodURLParseError : public PodClientError {
 public:
  // `part` names what is wrong ("scheme", "host", "token", "cols", …); `url` is
  // redacted before it goes into the message.
  PodURLParseError(std::string part, const std::string& problem, std::string_view url);
  const std::string& part() const noexcept { return part_; }

 private:
  std::string part_;
};

class NamespaceDetectionError : public PodClientError {
 public:
  explicit NamespaceDetectionError(std::string reason);
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string reason_;
};

// The server cannot listen on its address: the port is taken, the host is not an address
// of this machine, or binding is not permitted. Exit 78 (EX_CONFIG): the --host/--port
// settings (or PODWRANGLER_HOST/PORT) are what has to change.
class ListenError : public PodClientError {
 public:
  ListenError(std::string host, int port, const std::string& reason);
  const std::string& host() const noexcept { return host_; }
  int port() const noexcept { return port_; }

 private:
  std::string host_;
  int port_;
};

// ---- capsules --------------------------------------------------------------------------
// Messages are redacted at construction, like every library error.

class CapsuleNotFoundError : public PodClientError {
 public:
  // what: "capsule", "template", "file" …; name: the id or path that was not found.
  explicit CapsuleNotFoundError(std::string name, std::string_view what = "capsule");
  const std::string& name() const noexcept { return name_; }

 private:
  std::string name_;
};

class CapsuleConflictError : public PodClientError {
 public:
  explicit CapsuleConflictError(const std::string& message);
};

class CapsuleValidationError : public PodClientError {
 public:
  CapsuleValidationError(std::string field, const std::string& problem);
  const std::string& field() const noexcept { return field_; }

 private:
  std::string field_;
};

class EngineUnavailableError : public PodClientError {
 public:
  explicit EngineUnavailableError(const std::string& message);
};

class AgentError : public PodClientError {
 public:
  explicit AgentError(const std::string& message);
};

}  // namespace pw

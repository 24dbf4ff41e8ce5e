#pragma once
// The one exception type of the CLI layer: a one-line message, an exit code from
// exit_codes.hpp and an optional hint. Caught once, in run(), and printed as
// `error: <message> (<hint>)`.
#include <stdexcept>
#include <string>

namespace pw::cli {

class CliError : public std::runtime_error {
 public:
  CliError(int exit_code, const std::string& message, std::string hint = {})
      : std::runtime_error(message), exit_code_(exit_code), hint_(std::move(hint)) {}
  int exit_code() const noexcept { return exit_code_; }
  const std::string& hint() const noexcept { return hint_; }

 private:
  int exit_code_;
  std::string hint_;
};

}  // namespace pw::cli

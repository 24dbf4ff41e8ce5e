#include <podwrangler/errors.hpp>
#include <podwrangler/redact.hpp>
#include <podwrangler/secret.hpp>

#include <array>
#include <cctype>
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

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

// Messages are free text built by callers from URLs, commands and server answers:
// hide what carries credentials, word by word. URLs (query tokens, userinfo
// passwords), bare "token=…" pairs and the word after "Bearer"/"Basic"/"Authorization:".
std::string redact_text(std::string_view text) {
  static constexpr std::string_view kOpen = "'\"<([{`";
  static constexpr std::string_view kClose = "'\">)]}`,;:.";
  std::string out;
  out.reserve(text.size());
  bool hide_next = false;
  std::size_t i = 0;
  while (i < text.size()) {
    if (is_space(text[i])) {
      out.push_back(text[i++]);
      continue;
    }
    std::size_t j = i;
    while (j < text.size() && !is_space(text[j])) ++j;
    std::string_view word = text.substr(i, j - i);
    i = j;
    std::size_t a = 0, b = word.size();
    while (a < b && kOpen.find(word[a]) != std::string_view::npos) ++a;
    while (b > a && kClose.find(word[b - 1]) != std::string_view::npos) --b;
    std::string_view core = word.substr(a, b - a);
    out.append(word.substr(0, a));
    bool scheme_word = iequals(core, "bearer") || iequals(core, "basic") || iequals(core, "token");
    if (core.empty()) {
      // punctuation only
    } else if (hide_next && !scheme_word) {
      out.append(REDACTED);
      hide_next = false;
    } else if (core.find("://") != std::string_view::npos ||
               core.find('?') != std::string_view::npos) {
      out.append(redact_url(core));
    } else if (std::size_t eq = core.find('=');
               eq != std::string_view::npos && eq > 0 && is_sensitive_key(core.substr(0, eq))) {
      out.append(core.substr(0, eq + 1));
      out.append(REDACTED);
    } else {
      out.append(core);
    }
    if (!core.empty() && !hide_next) {
      bool header =
          iequals(core, "authorization") && word.substr(b).find(':') != std::string_view::npos;
      hide_next = header || iequals(core, "bearer") || iequals(core, "basic");
    }
    out.append(word.substr(b));
  }
  return out;
}

std::string fmt_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}
}  // namespace

std::string shown_command(std::string_view command) {
  constexpr std::size_t kMax = 200;
  if (command.size() <= kMax) return std::string(command);
  std::string out(command.substr(0, kMax));
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
  std::string r(url.substr(0, 512));
  for (char& c : r)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  r = redact_url(r);
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
      reason_(redact_text(reason)) {}

}  // namespace pw

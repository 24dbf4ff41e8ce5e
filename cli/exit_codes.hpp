#pragma once
// The CLI's exit codes: ONE table, used by every command, the man page (`podwrangler __man`)
// and the tests. sysexits(3)-style and clear of CLI11's own 100-127 range (every parse error
// becomes `usage`). Codes that also exist in the library's error table (errors.hpp) have the
// same number there (a unit test checks it).
#include <array>
#include <string_view>

namespace pw::cli {

namespace exit_code {
inline constexpr int ok = 0;
inline constexpr int command_failed = 1;  // remote command exited non-zero (run-many: some did)
inline constexpr int usage = 64;          // EX_USAGE: bad flag, argument or combination
inline constexpr int data = 65;           // EX_DATAERR: the API rejected a value (422, bad URL)
inline constexpr int not_found = 68;      // EX_NOHOST: no such pod alias / history id
inline constexpr int unavailable = 69;    // EX_UNAVAILABLE: API or pod unreachable, API degraded
inline constexpr int software = 70;       // EX_SOFTWARE: internal error; an answer that is not the API's (protocol error)
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
     "internal error, or a protocol error: the server's answer is not the podwrangler API's (not JSON, an "
     "HTML page, JSON of the wrong shape or without a required field)"},
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

}  // namespace pw::cli

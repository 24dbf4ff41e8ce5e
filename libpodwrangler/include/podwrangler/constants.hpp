#pragma once
// The library's defaults: terminal width, timeouts, reconnect policy.
#include <chrono>
#include <cstddef>

namespace pw {

inline constexpr int DEFAULT_TERMINAL_COLS = 220;
inline constexpr double DEFAULT_CONNECT_TIMEOUT = 15.0;  // seconds
inline constexpr double DEFAULT_COMMAND_TIMEOUT = 30.0;  // seconds
inline constexpr int MAX_RECONNECT_ATTEMPTS = 3;
inline constexpr double RECONNECT_BACKOFF_BASE = 2.0;  // seconds
// Output kept per command; the rest is dropped and CommandResult::truncated set.
inline constexpr std::size_t DEFAULT_MAX_OUTPUT_BYTES = 16u * 1024u * 1024u;

}  // namespace pw

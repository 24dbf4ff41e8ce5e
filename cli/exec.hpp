#pragma once
// `exec`: run, history and show (exec.cpp), run-many (run_many.cpp). What both files use to
// read and show a command result, and the pure pieces kept apart for unit tests.
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pw::cli {

// Standard base64 with padding (RFC 4648 section 4) → bytes; nullopt unless `b64` is exactly
// that (no whitespace, no URL alphabet). OpenSSL's EVP_DecodeBlock does the decoding.
std::optional<std::string> base64_decode(std::string_view b64);

// A result's exact output bytes: `output_b64` decoded when present (the API sends it when
// the bytes are not valid UTF-8; `output` is then a lossy rendition), else `output`.
// nullopt when output_b64 is not valid base64.
std::optional<std::string> result_bytes(const nlohmann::json& result);

// The COMMAND words as one shell command (joined by spaces; a leading "--" is dropped).
std::string join_command(const std::vector<std::string>& words);

// A result's error text as shown (the server redacts it; the CLI does not rely on that).
std::string error_text(const nlohmann::json& result);

// A result's exit code as shown: the number, or "-" when it has none.
std::string exit_text(const nlohmann::json& result);

}  // namespace pw::cli

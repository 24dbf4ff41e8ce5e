#pragma once
// Pieces of `exec` kept apart for unit tests: a result's exact output bytes (--output raw),
// grouping identical outputs (--gather, as `clush -b` does), the summary and the exit code.
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

struct GatherGroup {
  std::vector<std::string> aliases;  // in request order
  std::string status;                // succeeded, failed, timeout, error, …
  int exit_code = 0;
  std::string output;  // the output, or the error text for an error without output
};

// Groups results (request order) with the same status, exit code and output; groups are
// ordered by their first member.
std::vector<GatherGroup> gather_results(const std::vector<nlohmann::json>& results);

// Folds aliases clush-style: web-1,web-2,web-3,db → "web-[1-3],db".
std::string fold_aliases(const std::vector<std::string>& aliases);

struct RunManySummary {
  int total = 0, succeeded = 0, failed = 0, timeout = 0, error = 0, skipped = 0;
  nlohmann::json to_json() const;
};
// total: pods the server announced; results received (unreceived ones count as skipped).
RunManySummary summarize(const std::vector<nlohmann::json>& received, int total);

// 0 when every pod succeeded; else 1 if a command failed, else 75 if one timed out, else
// 69 (a pod was unreachable or unknown).
int run_many_exit_code(const RunManySummary& s);

}  // namespace pw::cli

#pragma once
// `exec run-many` (run_many.cpp): the subcommand, and its pure pieces kept apart for unit
// tests: grouping identical outputs (--gather, as `clush -b` does), the summary and the
// exit code.
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace pw::cli {

class CommandContext;

struct RunManyOptions {
  std::vector<std::string> command, aliases, labels;
  bool all = false, gather = false, fail_fast = false;
  int parallel = 0;
  double timeout = 0;
};

// Runs the command on the pods (one of --aliases, --label, --all) through the API's event
// stream, printing results as they arrive; returns or throws the exit status
// (run_many_exit_code).
int exec_run_many(CommandContext& ctx, const RunManyOptions& o);

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

#pragma once
// The subcommand groups and what they share (commands.cpp).
//
// One file per group: pod.cpp, exec.cpp (with run_many.cpp), health.cpp, serve.cpp,
// completion.cpp. In each, one function per subcommand does its work
// (`int pod_show(CommandContext&, const ShowOptions&)`: returns the exit code or throws
// CliError), and the group's set_<group>_command() only declares the subcommands, their
// options and help with CLI11 and wires each to its function with set_action().
#include <utility>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace pw::cli {

class CliError;
class CommandContext;

void set_health_command(CLI::App& app, CommandContext& ctx);      // health.cpp
void set_pod_command(CLI::App& app, CommandContext& ctx);         // pod.cpp
void set_exec_command(CLI::App& app, CommandContext& ctx);        // exec.cpp, run_many.cpp
void set_capsule_command(CLI::App& app, CommandContext& ctx);     // capsule.cpp, capsule_exec.cpp, capsule_files.cpp
void set_serve_command(CLI::App& app, CommandContext& ctx);       // serve.cpp
void set_completion_command(CLI::App& app, CommandContext& ctx);  // completion.cpp

// The whole tree: global options and every group (app.cpp). Used by run(), the hidden
// completer and the man page generator, so they cannot drift apart.
void build_app(CLI::App& app, CommandContext& ctx);

// Type names that mark what an argument holds, for the completer and the man page.
inline constexpr const char* kAliasType = "ALIAS";
inline constexpr const char* kAliasListType = "ALIAS,…";

// --- wiring ------------------------------------------------------------------------------

// A group of subcommands ("pod", "exec"): exactly one of them must be given.
CLI::App* add_group(CLI::App& app, const std::string& name, const std::string& description, const std::string& footer);

// Makes `action` what run() calls after parsing when `cmd` is the subcommand given.
void set_action(CLI::App* cmd, CommandContext& ctx, std::function<int()> action);

// The usual form: the action is `run(ctx, *options)`. CLI11 writes the parsed values into
// `*options`, which the action keeps alive after build_app() returns.
template <class Options>
void set_action(CLI::App* cmd, CommandContext& ctx, std::shared_ptr<Options> options,
                int (*run)(CommandContext&, const Options&)) {
  set_action(cmd, ctx, [&ctx, options = std::move(options), run] { return run(ctx, *options); });
}

// --- helpers of more than one group --------------------------------------------------------

// "/api/v1/pods/<alias>", the alias percent-encoded.
std::string pod_path(const std::string& alias);

// The error for an alias the API does not know (exit 68), for an answer that ApiReply::is()
// says is "pod_not_found".
CliError pod_not_found(const std::string& alias);

// --label KEY=VALUE options: as a map (pod add/update), or as the API's selector
// "k1=v1,k2=v2" in the order given (pod list, exec run-many). An item that is not
// KEY=VALUE is a usage error.
std::map<std::string, std::string> parse_labels(const std::vector<std::string>& items);
std::string label_selector(const std::vector<std::string>& items);

}  // namespace pw::cli

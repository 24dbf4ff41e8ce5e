#pragma once
// One file per subcommand group; each adds its subcommands to the top-level app.
namespace CLI {
class App;
}

namespace pw::cli {

class CommandContext;

void set_health_command(CLI::App& app, CommandContext& ctx);      // health.cpp
void set_pod_command(CLI::App& app, CommandContext& ctx);         // pod.cpp
void set_exec_command(CLI::App& app, CommandContext& ctx);        // exec.cpp
void set_serve_command(CLI::App& app, CommandContext& ctx);       // serve.cpp
void set_completion_command(CLI::App& app, CommandContext& ctx);  // completion.cpp

// The whole tree: global options and every group (app.cpp). Used by run(), the hidden
// completer and the man page generator, so they cannot drift apart.
void build_app(CLI::App& app, CommandContext& ctx);

// Type names that mark what an argument holds, for the completer and the man page.
inline constexpr const char* kAliasType = "ALIAS";
inline constexpr const char* kAliasListType = "ALIAS,…";

}  // namespace pw::cli

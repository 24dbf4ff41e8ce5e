// The top-level app: global options and every subcommand group.
#include "cli/commands.hpp"
#include "cli/context.hpp"

#include <podwrangler/version.hpp>

#include <CLI/CLI.hpp>

namespace pw::cli {

void build_app(CLI::App& app, CommandContext& ctx) {
  app.name("podwrangler");
  app.set_version_flag("--version", std::string("podwrangler ") + pw::version(), "Print the version and exit");
  app.fallthrough();  // global options are accepted after the subcommand too (inherited)
  auto* url = app.add_option("--api-url,-u", ctx.opts.api_url,
                             "API base URL (default: PODWRANGLER_API_URL, ~/.podwrangler.toml, http://127.0.0.1:8000)")
                  ->type_name("URL");
  app.add_flag("--local,-L", ctx.opts.local,
               "Start the API inside this process (state in $XDG_DATA_HOME/podwrangler) and use it")
      ->excludes(url);
  app.add_option("--profile", ctx.opts.profile, "Profile of ~/.podwrangler.toml (default: PODWRANGLER_PROFILE)")
      ->type_name("NAME");
  auto* out = app.add_option("--output,-o", ctx.opts.output,
                             "Output format: table (default), plain, json, ndjson, raw (exec run/show: the exact "
                             "output bytes)")
                  ->check(CLI::IsMember({"json", "ndjson", "table", "plain", "raw"}))
                  ->type_name("FORMAT");
  app.add_flag("--json", ctx.opts.json, "Same as --output json")->excludes(out);
  app.add_flag("--no-color", ctx.opts.no_color, "No colours (also NO_COLOR=1)");
  app.add_flag("--quiet,-q", ctx.opts.quiet, "No spinner, hints or notes on stderr (errors still)");

  set_health_command(app, ctx);
  set_pod_command(app, ctx);
  set_exec_command(app, ctx);
  set_capsule_command(app, ctx);
  set_serve_command(app, ctx);
  set_completion_command(app, ctx);

  app.footer(
      "Run `podwrangler COMMAND --help` for the options and examples of each command;\n"
      "`man podwrangler` for configuration, environment and exit codes.\n\n"
      "Examples:\n"
      "  podwrangler --local health\n"
      "  podwrangler --local pod add --alias web-1 --url local://web-1\n"
      "  podwrangler --local exec run web-1 uptime\n"
      "  podwrangler -u http://10.0.0.5:8000 exec run-many 'df -h' --all --gather");
}

}  // namespace pw::cli

// podwrangler health
#include "cli/cli_error.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/exit_codes.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>

namespace pw::cli {

void set_health_command(CLI::App& app, CommandContext& ctx) {
  auto* cmd = app.add_subcommand("health", "Check that the API answers and its database is reachable");
  cmd->footer(
      "Exit status 0 when the API answers \"ok\", 69 when it is degraded (database down) or "
      "unreachable.\n\n"
      "Examples:\n"
      "  podwrangler --local health\n"
      "  podwrangler -u http://10.0.0.5:8000 health --json | jq -r .status");
  cmd->callback([&ctx] {
    ctx.action = [&ctx]() -> int {
      auto& api = ctx.api({5.0, 10.0});
      ApiReply r;
      {
        Spinner spin("checking " + api.url() + " …", ctx.spinner_enabled(), ctx.term().color_err);
        r = api.call("GET", "/health");
      }
      if (r.status != 200 && r.status != 503) api.raise(r);
      api.expect("GET /health", contract::health(r.body));
      const auto& b = r.body;
      std::string status = b.value("status", std::string("unknown"));
      switch (ctx.format()) {
        case Format::json: ctx.out(to_json_text(b)); break;
        case Format::ndjson: ctx.out(to_ndjson_line(b)); break;
        case Format::plain:
        case Format::table: {
          bool color = ctx.term().color_out;
          std::string db = "unknown";
          if (b.contains("database") && b["database"].is_object()) {
            const auto& d = b["database"];
            db = d.value("kind", std::string("?")) +
                 (d.value("reachable", false) ? " (reachable)" : " (unreachable)");
          }
          double uptime = b.contains("uptime") && b["uptime"].is_number() ? b["uptime"].get<double>() : 0.0;
          if (ctx.format() == Format::plain) {
            ctx.out(render_plain({{status, b.value("version", std::string("?")), db, api.url()}}));
          } else {
            ctx.out(render_kv({{"api", api.url()},
                               {"status", paint_status(status, color)},
                               {"version", b.value("version", std::string("?"))},
                               {"database", db},
                               {"uptime", format_duration(uptime)}},
                              color));
          }
        }
      }
      if (status != "ok")
        throw CliError(exit_code::unavailable, "the API at " + api.url() + " is " + status +
                                                   " (its database does not answer)");
      return exit_code::ok;
    };
  });
}

}  // namespace pw::cli

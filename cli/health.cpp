// podwrangler health
#include "cli/cli_error.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/exit_codes.hpp"
#include "cli/json_access.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>

namespace pw::cli {

namespace {

// "sqlite (reachable)", "postgresql (unreachable)"; "unknown" when the answer has no
// database object.
std::string database_text(const nlohmann::json& health) {
  const nlohmann::json* db = field::find(health, "database");
  if (!db || !db->is_object()) return "unknown";
  return field::text(*db, "kind", "?") +
         (field::boolean(*db, "reachable").value_or(false) ? " (reachable)" : " (unreachable)");
}

int health(CommandContext& ctx) {
  auto& api = ctx.api({5.0, 10.0});
  ApiReply r;
  {
    auto spin = ctx.spinner("checking " + api.url() + " …");
    r = api.call("GET", "/health");
  }
  if (r.status != 200 && r.status != 503) api.raise(r);
  api.expect("GET /health", contract::health(r.body));
  const auto& b = r.body;
  std::string status = field::text(b, "status", "unknown");
  switch (ctx.format()) {
    case Format::json: ctx.out(to_json_text(b)); break;
    case Format::ndjson: ctx.out(to_ndjson_line(b)); break;
    case Format::plain:
      ctx.out(render_plain({{status, field::text(b, "version", "?"), database_text(b), api.url()}}));
      break;
    case Format::table: {
      bool color = ctx.term().color_out;
      ctx.out(render_kv({{"api", api.url()},
                         {"status", paint_status(status, color)},
                         {"version", field::text(b, "version", "?")},
                         {"database", database_text(b)},
                         {"uptime", format_duration(field::number(b, "uptime").value_or(0.0))}},
                        color));
    }
  }
  if (status != "ok")
    throw CliError(exit_code::unavailable,
                   "the API at " + api.url() + " is " + status + " (its database does not answer)");
  return exit_code::ok;
}

}  // namespace

void set_health_command(CLI::App& app, CommandContext& ctx) {
  auto* c = app.add_subcommand("health", "Check that the API answers and its database is reachable");
  c->footer(
      "Exit status 0 when the API answers \"ok\", 69 when it is degraded (database down) or "
      "unreachable.\n\n"
      "Examples:\n"
      "  podwrangler --local health\n"
      "  podwrangler -u http://10.0.0.5:8000 health --json | jq -r .status");
  set_action(c, ctx, [&ctx] { return health(ctx); });
}

}  // namespace pw::cli

#include "cli/commands.hpp"

#include "cli/cli_error.hpp"
#include "cli/context.hpp"
#include "cli/exit_codes.hpp"

#include <podwrangler/url.hpp>

#include <CLI/CLI.hpp>

#include <utility>

namespace pw::cli {

namespace {

// The position of the '=' in "KEY=VALUE"; a usage error when there is no key.
std::size_t label_equals(const std::string& item) {
  auto eq = item.find('=');
  if (eq == std::string::npos || eq == 0)
    throw CliError(exit_code::usage, "--label wants KEY=VALUE (got '" + item + "')");
  return eq;
}

}  // namespace

CLI::App* add_group(CLI::App& app, const std::string& name, const std::string& description, const std::string& footer) {
  auto* group = app.add_subcommand(name, description);
  group->require_subcommand(1);
  group->footer(footer);
  return group;
}

void set_action(CLI::App* cmd, CommandContext& ctx, std::function<int()> action) {
  cmd->callback([&ctx, action = std::move(action)] { ctx.action = action; });
}

std::string pod_path(const std::string& alias) { return "/api/v1/pods/" + pw::percent_encode(alias); }

CliError pod_not_found(const std::string& alias) {
  return CliError(exit_code::not_found, "pod '" + alias + "' not found", "see: podwrangler pod list");
}

std::map<std::string, std::string> parse_labels(const std::vector<std::string>& items) {
  std::map<std::string, std::string> out;
  for (const auto& item : items) {
    auto eq = label_equals(item);
    out[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return out;
}

std::string label_selector(const std::vector<std::string>& items) {
  std::string selector;
  for (const auto& item : items) {
    label_equals(item);
    selector += (selector.empty() ? "" : ",") + item;
  }
  return selector;
}

}  // namespace pw::cli

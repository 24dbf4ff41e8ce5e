#include "cli/run.hpp"

#include "cli/cli_error.hpp"
#include "cli/commands.hpp"
#include "cli/completion.hpp"
#include "cli/context.hpp"
#include "cli/exit_codes.hpp"
#include "cli/man.hpp"

#include <podwrangler/errors.hpp>
#include <podwrangler/redact.hpp>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>
#include <vector>

namespace pw::cli {

namespace {

constexpr const char* kDescription = "podwrangler: run shell commands inside remote pods, containers and sandboxes";

std::string one_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  std::string out;
  for (char c : s) {
    if (c == '\n')
      out += "; ";
    else if (c != '\r')
      out.push_back(c);
  }
  return out;
}

// The one place errors are printed: one line, redacted (URLs quoted from the command line,
// the config or the API's answers never show their passwords or tokens).
void print_error(bool color, const std::string& message, const std::string& hint) {
  std::fflush(stdout);
  std::string line = (color ? "\033[1;31merror:\033[0m " : "error: ") + pw::redact_text(one_line(message));
  if (!hint.empty()) line += " (" + pw::redact_text(one_line(hint)) + ")";
  line += "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

// "podwrangler pod add": the deepest subcommand the parser reached.
std::string command_path(CLI::App& app) {
  std::string path = app.get_name();
  CLI::App* cur = &app;
  for (;;) {
    auto subs = cur->get_subcommands();
    if (subs.empty()) break;
    cur = subs.front();
    path += " " + cur->get_name();
  }
  return path;
}

}  // namespace

int run(int argc, char** argv) {
  CommandContext ctx;
  CLI::App app{kDescription, "podwrangler"};
  build_app(app, ctx);

  std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
  if (!args.empty() && args[0] == "__complete") {
    args.erase(args.begin());
    return complete_main(app, ctx, args);
  }
  if (!args.empty() && args[0] == "__man") {
    std::string man = render_man(app);
    std::fwrite(man.data(), 1, man.size(), stdout);
    return exit_code::ok;
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::string path = command_path(app);
    print_error(ctx.term().color_err, e.what(), "see: " + path + " --help");
    return exit_code::usage;
  }
  if (!ctx.action) {
    std::string help = app.help();
    std::fwrite(help.data(), 1, help.size(), stdout);
    return exit_code::ok;
  }
  int rc = exit_code::software;
  try {
    rc = ctx.action();
  } catch (const CliError& e) {
    print_error(ctx.term().color_err, e.what(), e.hint());
    rc = e.exit_code();
  } catch (const pw::PodConfigValidationError& e) {
    print_error(ctx.term().color_err, e.what(), "");
    rc = exit_code::config;
  } catch (const pw::PodClientError& e) {
    print_error(ctx.term().color_err, e.what(), "");
    rc = e.info().exit_code;
  } catch (const std::exception& e) {
    print_error(ctx.term().color_err, std::string("internal error: ") + e.what(), "");
    rc = exit_code::software;
  }
  std::fflush(stdout);
  try {
    ctx.shutdown();
  } catch (const std::exception& e) {
    print_error(ctx.term().color_err, std::string("stopping the local server: ") + e.what(), "");
  }
  return rc;
}

}  // namespace pw::cli

// Unit tests for cli/man.cpp: every subcommand and option of the CLI appears in the page.
#include <doctest/doctest.h>

#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/exit_codes.hpp"
#include "cli/man.hpp"

#include <CLI/CLI.hpp>

using namespace pw::cli;

namespace {
void check_tree(CLI::App* app, const std::string& path, const std::string& man, int& seen) {
  for (CLI::App* s : app->get_subcommands([](CLI::App* x) { return !x->get_group().empty(); })) {
    std::string p = path + " " + s->get_name();
    CAPTURE(p);
    CHECK(man.find(".SS \"" + man_escape(p) + "\"") != std::string::npos);
    ++seen;
    for (CLI::Option* o : s->get_options()) {
      for (const auto& l : o->get_lnames()) CHECK(man.find(man_escape("--" + l)) != std::string::npos);
      for (const auto& n : o->get_snames()) CHECK(man.find(man_escape("-" + n)) != std::string::npos);
      if (o->get_positional())
        CHECK(man.find("\\fI" + man_escape(o->get_type_name().substr(0, o->get_type_name().find(':'))) + "\\fR") !=
              std::string::npos);
    }
    check_tree(s, p, man, seen);
  }
}
}  // namespace

TEST_CASE("man: every command, option and exit code is in the page") {
  CommandContext ctx;
  CLI::App app{"test", "podwrangler"};
  build_app(app, ctx);
  std::string man = render_man(app);
  CHECK(man.rfind(".\\\"", 0) == 0);
  CHECK(man.find(".TH PODWRANGLER 1") != std::string::npos);
  int seen = 0;
  check_tree(&app, "podwrangler", man, seen);
  CHECK(seen >= 14);  // health, pod (5), exec (4), serve, completion
  for (CLI::Option* o : app.get_options())
    for (const auto& l : o->get_lnames()) CHECK(man.find(man_escape("--" + l)) != std::string::npos);
  for (const auto& e : kExitCodes) CHECK(man.find("\n" + std::to_string(e.code) + "\t") != std::string::npos);
  // every code the API answers with, with its status and exit status
  for (const auto& e : pw::kErrors) {
    std::string row = std::to_string(e.http_status) + "\t" + man_escape(std::string(e.code)) + "\t" +
                      std::to_string(e.api_exit_code) + "\t";
    CAPTURE(row);
    CHECK((man.find("\n" + row) != std::string::npos) == e.answered);
  }
  for (const char* env : {"PODWRANGLER_API_URL", "PODWRANGLER_API_KEY", "PODWRANGLER_PROFILE", "NO_COLOR"})
    CHECK(man.find(env) != std::string::npos);
  // examples from the commands' help are there too
  CHECK(man.find(man_escape("podwrangler exec run-many 'df -h /' --aliases web-1,web-2")) != std::string::npos);
}

TEST_CASE("man: escaping") {
  CHECK(man_escape("--a\\b") == "\\-\\-a\\eb");
  CHECK(man_escape(".x") == "\\&.x");
  CHECK(man_escape("'q") == "\\&'q");
}

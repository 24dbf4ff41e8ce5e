#include "cli/run.hpp"

#include <podwrangler/errors.hpp>
#include <podwrangler/version.hpp>

#include <CLI/CLI.hpp>

#include <iostream>

namespace pw::cli {

int run(int argc, char** argv) {
  CLI::App app{"podwrangler: run shell commands inside remote pods, containers and sandboxes"};
  app.set_version_flag("--version", std::string("podwrangler ") + pw::version());
  app.require_subcommand(0);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "error: " << e.what() << "\n";
    return 64;  // EX_USAGE
  }
  std::cout << app.help();
  return 0;
}

}  // namespace pw::cli

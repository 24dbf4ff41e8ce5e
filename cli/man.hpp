#pragma once
// The man page, generated from the CLI11 tree (commands, options, descriptions, examples)
// plus static sections (POD URLS, CONFIGURATION, EXIT STATUS from exit_codes.hpp,
// ENVIRONMENT, FILES), so it cannot drift from the program. `podwrangler __man` prints it;
// the build writes it to <build>/man/podwrangler.1 and installs that.
#include <string>

namespace CLI {
class App;
}

namespace pw::cli {

std::string render_man(CLI::App& app);
// roff escaping of text: "-" → "\-", "\" → "\e", leading "." / "'" guarded.
std::string man_escape(const std::string& text);

}  // namespace pw::cli

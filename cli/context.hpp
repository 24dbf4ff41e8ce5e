#pragma once
// What every command shares: the global options, the resolved configuration, the output
// format and terminal, and (created on first use) the API client and the --local server.
#include "cli/api_client.hpp"
#include "cli/config.hpp"
#include "cli/render.hpp"

#include <utility>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace pw::cli {

class LocalServer;

struct GlobalOptions {
  std::string api_url;
  bool local = false;
  std::string profile;
  std::string output;
  bool json = false;
  bool no_color = false;
  bool quiet = false;
};

class CommandContext {
 public:
  CommandContext();
  ~CommandContext();  // stops the --local server
  CommandContext(const CommandContext&) = delete;
  CommandContext& operator=(const CommandContext&) = delete;

  GlobalOptions opts;
  // Set by the callback of the selected (leaf) subcommand; run() calls it after parsing.
  std::function<int()> action;

  // Loads ~/.podwrangler.toml once and applies the precedence (prints warnings once).
  const ResolvedConfig& config();
  Format format();  // "raw" is shown as plain, except where raw_output() is asked
  // --output raw: exec run / exec show write a result's exact bytes.
  bool raw_output() { return config().output == "raw"; }
  const Terminal& term();
  // The API client: starts the --local server first when asked to.
  ApiClient& api(ApiTimeouts timeouts = {});

  bool human() {
    auto f = format();
    return f == Format::table || f == Format::plain;
  }
  bool spinner_enabled() { return term().stderr_tty && !opts.quiet; }
  // A spinner showing `label` while a request runs (drawn only when spinner_enabled()).
  Spinner spinner(std::string label) { return Spinner(std::move(label), spinner_enabled(), term().color_err); }

  void out(const std::string& text);  // stdout
  // Both redacted (pw::redact_text), like every error line.
  void info(const std::string& text);  // stderr unless --quiet (a trailing newline is added)
  void warn(const std::string& text);  // "warning: …" on stderr

  // Stops the --local server (before exit; also done by the destructor).
  void shutdown();

 private:
  std::optional<ResolvedConfig> config_;
  std::optional<Terminal> term_;
  std::unique_ptr<LocalServer> local_;
  std::unique_ptr<ApiClient> api_;
};

}  // namespace pw::cli

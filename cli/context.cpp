#include "cli/context.hpp"

#include "cli/local.hpp"

#include <podwrangler/redact.hpp>

#include <cstdio>
#include <cstdlib>

namespace pw::cli {

CommandContext::CommandContext() = default;

CommandContext::~CommandContext() { shutdown(); }

void CommandContext::shutdown() {
  api_.reset();
  if (local_) local_->stop();
  local_.reset();
}

const ResolvedConfig& CommandContext::config() {
  if (!config_) {
    EnvLookup env = [](const char* name) -> const char* { return std::getenv(name); };
    ConfigFile file = load_config_file(config_path(env));
    Overrides o;
    o.api_url = opts.api_url;
    o.output = opts.json ? "json" : opts.output;
    o.profile = opts.profile;
    config_ = resolve_config(o, env, file);
    for (const auto& w : config_->warnings) warn(w);
  }
  return *config_;
}

Format CommandContext::format() { return parse_format(config().output); }

const Terminal& CommandContext::term() {
  if (!term_) term_ = detect_terminal(opts.no_color);
  return *term_;
}

ApiClient& CommandContext::api(ApiTimeouts timeouts) {
  if (!api_) {
    const auto& cfg = config();
    std::string url = cfg.api_url;
    if (opts.local) {
      local_ = std::make_unique<LocalServer>();
      url = local_->url();
    }
    api_ = std::make_unique<ApiClient>(url, cfg.api_key, timeouts);
  } else {
    api_->set_read_timeout(timeouts.read_s);
  }
  return *api_;
}

void CommandContext::out(const std::string& text) { std::fwrite(text.data(), 1, text.size(), stdout); }

void CommandContext::info(const std::string& text) {
  if (opts.quiet) return;
  std::fflush(stdout);
  std::string line = pw::redact_text(text) + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

void CommandContext::warn(const std::string& text) {
  std::fflush(stdout);
  std::string line = paint("warning:", Style::yellow, term().color_err) + " " + pw::redact_text(text) + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace pw::cli

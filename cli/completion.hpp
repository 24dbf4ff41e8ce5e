#pragma once
// Shell completion: `podwrangler completion bash|zsh|fish` prints a small script that calls
// the hidden `podwrangler __complete WORD…` (the words after the program name, the last one
// being completed). The completer walks the CLI11 tree, so scripts cannot drift from the
// CLI, and asks the API for aliases (quick timeout, silent on failure).
#include <functional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace pw::cli {

class CommandContext;

// The script for "bash", "zsh" or "fish" ("" for another name).
std::string completion_script(const std::string& shell);

// Candidates for the last word of `words`; `aliases` is asked only when an alias can come
// next (it may throw: the completer stays silent).
std::vector<std::string> complete_words(CLI::App& app, const std::vector<std::string>& words,
                                        const std::function<std::vector<std::string>()>& aliases);

// `podwrangler __complete …`: prints one candidate per line; always exits 0.
int complete_main(CLI::App& app, CommandContext& ctx, const std::vector<std::string>& words);

}  // namespace pw::cli

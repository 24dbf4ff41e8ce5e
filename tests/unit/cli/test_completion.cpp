// Unit tests for cli/completion.cpp: the completer walks the real CLI tree.
#include <doctest/doctest.h>

#include "cli/commands.hpp"
#include "cli/completion.hpp"
#include "cli/context.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>

using namespace pw::cli;
using V = std::vector<std::string>;

namespace {
struct Tree {
  CommandContext ctx;
  CLI::App app{"test", "podwrangler"};
  int alias_calls = 0;
  Tree() { build_app(app, ctx); }
  V complete(const V& words) {
    return complete_words(app, words, [this] {
      ++alias_calls;
      return V{"web-1", "web-2", "db"};
    });
  }
};
bool has(const V& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }
}  // namespace

TEST_CASE("completion: commands by prefix") {
  Tree t;
  CHECK(t.complete({"po"}) == V{"pod"});
  auto top = t.complete({""});
  for (const char* c : {"health", "pod", "exec", "serve", "completion"}) CHECK(has(top, c));
  CHECK_FALSE(has(top, "__complete"));
  CHECK(t.complete({"pod", ""}) == V{"list", "show", "add", "update", "remove"});
  CHECK(t.complete({"exec", "run-"}) == V{"run-many"});
  CHECK(t.complete({"-L", "ex"}) == V{"exec"});
  CHECK(t.complete({"-u", "http://x", "he"}) == V{"health"});
  CHECK(t.alias_calls == 0);
}

TEST_CASE("completion: options of the command and the global ones") {
  Tree t;
  auto o = t.complete({"pod", "add", "--"});
  for (const char* x : {"--alias", "--url", "--provider", "--label", "--help", "--api-url", "--output", "--local"})
    CHECK(has(o, x));
  CHECK(t.complete({"--out"}) == V{"--output"});
  CHECK(t.complete({"exec", "run-many", "x", "--fa"}) == V{"--fail-fast"});
}

TEST_CASE("completion: option values and positionals") {
  Tree t;
  CHECK(t.complete({"-o", ""}) == V{"json", "ndjson", "table", "plain", "raw"});
  CHECK(t.complete({"pod", "list", "--output", "nd"}) == V{"ndjson"});
  CHECK(t.complete({"completion", "b"}) == V{"bash"});
  CHECK(t.complete({"exec", "history", "--status", "t"}) == V{"timeout"});
  CHECK(t.complete({"pod", "add", "--provider", "l"}) == V{"local"});
  CHECK(t.complete({"pod", "add", "--url", ""}).empty());  // files/URLs: the shell's default
}

TEST_CASE("completion: aliases from the API where an alias goes") {
  Tree t;
  CHECK(t.complete({"pod", "show", "w"}) == V{"web-1", "web-2"});
  CHECK(t.complete({"pod", "remove", "--force", "d"}) == V{"db"});
  CHECK(t.complete({"exec", "run", "--timeout", "5", ""}) == V{"web-1", "web-2", "db"});
  CHECK(t.complete({"exec", "run", "web-1", ""}).empty());   // the command: the shell's default
  CHECK(t.complete({"exec", "run", "web-1", "-"}).empty());  // command words, not options
  CHECK(t.complete({"exec", "run-many", "uptime", "--aliases", "web-1,d"}) == V{"web-1,db"});
  CHECK(t.complete({"exec", "history", "--alias", "web-2"}) == V{"web-2"});
  CHECK(t.alias_calls == 5);
}

TEST_CASE("completion: a failing alias lookup completes nothing") {
  Tree t;
  auto v = complete_words(t.app, {"pod", "show", ""}, []() -> V { throw std::runtime_error("down"); });
  CHECK(v.empty());
}

TEST_CASE("completion: scripts call the hidden completer") {
  for (const char* sh : {"bash", "zsh", "fish"}) {
    CAPTURE(sh);
    auto s = completion_script(sh);
    CHECK(s.find("__complete") != std::string::npos);
    CHECK(s.find("podwrangler") != std::string::npos);
  }
  CHECK(completion_script("tcsh").empty());
}

// Unit tests for cli/commands.cpp: what the subcommand groups share.
#include <doctest/doctest.h>

#include "cli/cli_error.hpp"
#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"

#include <string>

using namespace pw::cli;

TEST_CASE("commands: pod paths percent-encode the alias") {
  CHECK(pod_path("web-1") == "/api/v1/pods/web-1");
  CHECK(pod_path("a.b_c~d") == "/api/v1/pods/a.b_c~d");
  CHECK(pod_path("a b/c?d=e&f") == "/api/v1/pods/a%20b%2Fc%3Fd%3De%26f");
  CHECK(pod_path("x+y") == "/api/v1/pods/x%2By");
}

TEST_CASE("commands: pod not found is exit 68 with the hint") {
  CliError e = pod_not_found("web-1");
  CHECK(e.exit_code() == exit_code::not_found);
  CHECK(std::string(e.what()) == "pod 'web-1' not found");
  CHECK(e.hint() == "see: podwrangler pod list");
}

TEST_CASE("commands: --label KEY=VALUE as a map and as a selector in the order given") {
  auto m = parse_labels({"env=prod", "app=web", "empty=", "eq=a=b"});
  CHECK(m.size() == 4);
  CHECK(m["env"] == "prod");
  CHECK(m["empty"].empty());
  CHECK(m["eq"] == "a=b");
  CHECK(label_selector({"env=prod", "app=web"}) == "env=prod,app=web");
  CHECK(label_selector({}).empty());
  for (const char* bad : {"app", "=web", ""}) {
    CAPTURE(bad);
    for (int as_selector = 0; as_selector < 2; ++as_selector) {
      try {
        if (as_selector)
          label_selector({"ok=1", bad});
        else
          parse_labels({"ok=1", bad});
        FAIL("accepted");
      } catch (const CliError& e) {
        CHECK(e.exit_code() == exit_code::usage);
        CHECK(std::string(e.what()) == "--label wants KEY=VALUE (got '" + std::string(bad) + "')");
      }
    }
  }
}

// Unit tests for cli/run_many.cpp: --gather grouping, alias folding, summary and exit code.
#include <doctest/doctest.h>

#include "cli/exit_codes.hpp"
#include "cli/run_many.hpp"

using namespace pw::cli;
using nlohmann::json;

namespace {
json result(const std::string& alias, const std::string& status, int code, const std::string& output,
            const std::string& error = "") {
  return {{"alias", alias}, {"status", status}, {"exit_code", code}, {"output", output}, {"error", error}};
}
}  // namespace

TEST_CASE("gather: identical outputs and statuses form one group, first-seen order") {
  std::vector<json> rs{result("web-1", "succeeded", 0, "a\n"), result("web-2", "succeeded", 0, "b\n"),
                       result("web-3", "succeeded", 0, "a\n"), result("web-4", "failed", 1, "a\n"),
                       result("web-5", "failed", 1, "a\n"),    result("db", "succeeded", 0, "b\n")};
  auto g = gather_results(rs);
  REQUIRE(g.size() == 3);
  CHECK(g[0].aliases == std::vector<std::string>{"web-1", "web-3"});
  CHECK(g[0].output == "a\n");
  CHECK(g[1].aliases == std::vector<std::string>{"web-2", "db"});
  CHECK(g[2].aliases == std::vector<std::string>{"web-4", "web-5"});
  CHECK(g[2].status == "failed");
  CHECK(g[2].exit_code == 1);
}

TEST_CASE("gather: errors group by their message; null exit codes") {
  json e1{{"alias", "x"}, {"status", "error"}, {"exit_code", nullptr}, {"output", ""}, {"error", "pod not found"}};
  json e2 = e1;
  e2["alias"] = "y";
  json e3 = e1;
  e3["alias"] = "z";
  e3["error"] = "connection refused";
  auto g = gather_results({e1, e2, e3});
  REQUIRE(g.size() == 2);
  CHECK(g[0].output == "pod not found");
  CHECK(g[0].exit_code == -1);
  CHECK(g[0].aliases.size() == 2);
  CHECK(gather_results({}).empty());
}

TEST_CASE("fold_aliases: clush-style ranges") {
  CHECK(fold_aliases({"web-1", "web-2", "web-3"}) == "web-[1-3]");
  CHECK(fold_aliases({"web-3", "web-1", "web-2", "web-7", "db"}) == "web-[1-3,7],db");
  CHECK(fold_aliases({"web-1"}) == "web-1");
  CHECK(fold_aliases({"a", "b"}) == "a,b");
  CHECK(fold_aliases({"n01", "n02"}) == "n01,n02");  // zero-padded: kept literal
  CHECK(fold_aliases({}).empty());
}

TEST_CASE("run-many: summary counts and skipped pods") {
  std::vector<json> rs{result("a", "succeeded", 0, ""), result("b", "failed", 2, ""), result("c", "timeout", 0, ""),
                       result("d", "error", 0, ""), result("e", "interrupted", 0, "")};
  auto s = summarize(rs, 7);
  CHECK(s.total == 7);
  CHECK(s.succeeded == 1);
  CHECK(s.failed == 1);
  CHECK(s.timeout == 1);
  CHECK(s.error == 2);
  CHECK(s.skipped == 2);
  auto j = s.to_json();
  CHECK(j["skipped"] == 2);
  CHECK(j["total"] == 7);
}

TEST_CASE("run-many: exit code precedence failed > timeout > unreachable") {
  RunManySummary s;
  s.total = 3;
  s.succeeded = 3;
  CHECK(run_many_exit_code(s) == exit_code::ok);
  s.succeeded = 2;
  s.error = 1;
  CHECK(run_many_exit_code(s) == exit_code::unavailable);
  s.timeout = 1;
  CHECK(run_many_exit_code(s) == exit_code::timeout);
  s.failed = 1;
  CHECK(run_many_exit_code(s) == exit_code::command_failed);
}

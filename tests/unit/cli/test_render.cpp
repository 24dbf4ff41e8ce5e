// Unit tests for cli/render.cpp: tables fitted to a width, widths of UTF-8 and colours.
#include <doctest/doctest.h>

#include "cli/render.hpp"

#include <nlohmann/json.hpp>

#include <sstream>

using namespace pw::cli;

namespace {
std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}
}  // namespace

TEST_CASE("render: display width counts code points and skips colours") {
  CHECK(display_width("abc") == 3);
  CHECK(display_width("…") == 1);
  CHECK(display_width("⠋ x") == 3);
  CHECK(display_width(paint("ok", Style::green, true)) == 2);
  CHECK(paint("ok", Style::green, false) == "ok");
  CHECK(paint("ok", Style::green, true) == "\033[32mok\033[0m");
}

TEST_CASE("render: truncate with an ellipsis") {
  CHECK(truncate_display("abcdef", 10) == "abcdef");
  CHECK(truncate_display("abcdef", 6) == "abcdef");
  CHECK(truncate_display("abcdef", 4) == "abc…");
  CHECK(display_width(truncate_display("äöüäöü", 4)) == 4);
  CHECK(truncate_display("abc", 0).empty());
}

TEST_CASE("render: an aligned table without width limit") {
  auto t = render_table({{"ALIAS"}, {"N", false, true}, {"URL", true}},
                        {{"web-1", "5", "local://web-1"}, {"db", "12", "wss://x/exec/1/?token=***"}}, 0, false);
  CHECK(t ==
        "ALIAS   N  URL\n"
        "web-1   5  local://web-1\n"
        "db     12  wss://x/exec/1/?token=***\n");
}

TEST_CASE("render: a table fits the width by cutting shrinkable columns, widest first") {
  std::vector<std::vector<std::string>> rows{
      {"web-1", "app=web,env=prod,tier=frontend", std::string(60, 'u')},
      {"db", "app=db", "local://db"}};
  std::vector<Column> cols{{"ALIAS"}, {"LABELS", true}, {"URL", true}};
  for (int width : {100, 80, 60, 40, 30}) {
    CAPTURE(width);
    auto t = render_table(cols, rows, width, false);
    for (const auto& l : lines(t)) CHECK(display_width(l) <= static_cast<std::size_t>(width));
    CHECK(lines(t).size() == 3);
    CHECK(lines(t)[1].rfind("web-1", 0) == 0);  // never cut: not shrinkable
  }
  auto t = render_table(cols, rows, 80, false);
  CHECK(t.find("…") != std::string::npos);
  CHECK(t.find("app=web,env=prod,tier=frontend") != std::string::npos);  // URL was cut first
  // too narrow for the floors: lines may wrap but cells keep at least 8 columns
  t = render_table(cols, rows, 10, false);
  CHECK(lines(t)[0].find("LABELS") != std::string::npos);
}

TEST_CASE("render: newlines in cells do not break rows; header colours") {
  auto t = render_table({{"CMD", true}}, {{"echo a\necho b"}}, 0, false);
  CHECK(lines(t).size() == 2);
  CHECK(lines(t)[1] == "echo a⏎echo b");
  auto c = render_table({{"A"}}, {{"x"}}, 0, true);
  CHECK(c.find("\033[1mA\033[0m") != std::string::npos);
  CHECK(c.find("\033[", c.find('\n')) == std::string::npos);  // rows uncoloured
}

TEST_CASE("render: key/value, plain and JSON") {
  CHECK(render_kv({{"a", "1"}, {"long", "2"}}, false) == "a     1\nlong  2\n");
  CHECK(render_plain({{"a", "b c", "x\ty"}, {"d"}}) == "a\tb c\tx y\nd\n");
  nlohmann::json j{{"k", "v"}};
  CHECK(to_ndjson_line(j) == "{\"k\":\"v\"}\n");
  CHECK(to_json_text(j) == "{\n  \"k\": \"v\"\n}\n");
  CHECK(to_ndjson_line(nlohmann::json("\xff")) == "\"\xEF\xBF\xBD\"\n");  // invalid UTF-8 never throws
}

TEST_CASE("render: durations and status colours") {
  CHECK(format_duration(0.0123) == "12 ms");
  CHECK(format_duration(1.5) == "1.50 s");
  CHECK(format_duration(123) == "2m03s");
  CHECK(paint_status("succeeded", true).find("32m") != std::string::npos);
  CHECK(paint_status("failed", true).find("31m") != std::string::npos);
  CHECK(paint_status("failed", false) == "failed");
}

TEST_CASE("render: a disabled spinner draws nothing and stops at once") {
  Spinner s("x", false);
  s.set_label("y");
  int called = 0;
  s.above([&] { ++called; });
  s.stop();
  s.stop();
  CHECK(called == 1);
}

TEST_CASE("render: format names") {
  CHECK(parse_format("json") == Format::json);
  CHECK(parse_format("ndjson") == Format::ndjson);
  CHECK(parse_format("plain") == Format::plain);
  CHECK(parse_format("table") == Format::table);
}

// Unit tests for cli/render.cpp: tables fitted to a width, widths of UTF-8 and colours.
#include <doctest/doctest.h>

#include "cli/render.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

using namespace pw::cli;

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
  CHECK(truncate_display("äöüäöü", 4) == "äöü…");
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
  std::vector<std::vector<std::string>> rows{{"web-1", "app=web,env=prod,tier=frontend", std::string(60, 'u')},
                                             {"db", "app=db", "local://db"}};
  std::vector<Column> cols{{"ALIAS"}, {"LABELS", true}, {"URL", true}};
  auto u = [](int n) { return std::string(n, 'u'); };
  // 99 columns uncut. The widest shrinkable column is cut first, down towards the next
  // widest (the URL to the labels' 30); at a tie the leftmost is cut, down to its floor of
  // 8 columns when that is needed. ALIAS is never cut.
  struct Case {
    int width;
    std::string expected;
  };
  const Case cases[] = {
      {100,
       "ALIAS  LABELS                          URL\n"
       "web-1  app=web,env=prod,tier=frontend  " +
           u(60) +
           "\n"
           "db     app=db                          local://db\n"},
      {80,
       "ALIAS  LABELS                          URL\n"
       "web-1  app=web,env=prod,tier=frontend  " +
           u(40) +
           "…\n"
           "db     app=db                          local://db\n"},
      {60,
       "ALIAS  LABELS                 URL\n"
       "web-1  app=web,env=prod,tie…  " +
           u(29) +
           "…\n"
           "db     app=db                 local://db\n"},
      {40,
       "ALIAS  LABELS    URL\n"
       "web-1  app=web…  " +
           u(22) +
           "…\n"
           "db     app=db    local://db\n"},
      {30,
       "ALIAS  LABELS    URL\n"
       "web-1  app=web…  " +
           u(12) +
           "…\n"
           "db     app=db    local://db\n"},
      // too narrow for the floors: the lines are longer (the terminal wraps them) and the
      // shrinkable cells keep 8 columns
      {10,
       "ALIAS  LABELS    URL\n"
       "web-1  app=web…  " +
           u(7) +
           "…\n"
           "db     app=db    local:/…\n"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.width);
    CHECK(render_table(cols, rows, c.width, false) == c.expected);
  }
}

TEST_CASE("render: newlines in cells do not break rows; header colours") {
  CHECK(render_table({{"CMD", true}}, {{"echo a\necho b"}}, 0, false) == "CMD\necho a⏎echo b\n");
  CHECK(render_table({{"CMD"}}, {{"a\r\nb\tc"}}, 0, false) == "CMD\na⏎b c\n");
  // the header in bold, the rows uncoloured
  CHECK(render_table({{"A"}, {"B"}}, {{"x", "y"}}, 0, true) == "\033[1mA\033[0m  \033[1mB\033[0m\nx  y\n");
}

TEST_CASE("render: key/value, plain and JSON") {
  CHECK(render_kv({{"a", "1"}, {"long", "2"}}, false) == "a     1\nlong  2\n");
  CHECK(render_kv({{"a", "1"}}, true) == "\033[1ma\033[0m  1\n");
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
  CHECK(format_duration(0) == "0 ms");
  CHECK(format_duration(-1) == "0 ms");
  CHECK(format_duration(59.994) == "59.99 s");
  CHECK(format_duration(3600) == "60m00s");
  CHECK(paint_status("succeeded", true) == "\033[32msucceeded\033[0m");
  CHECK(paint_status("ok", true) == "\033[32mok\033[0m");
  CHECK(paint_status("failed", true) == "\033[31mfailed\033[0m");
  CHECK(paint_status("timeout", true) == "\033[33mtimeout\033[0m");
  CHECK(paint_status("running", true) == "\033[33mrunning\033[0m");
  CHECK(paint_status("degraded", true) == "\033[33mdegraded\033[0m");
  CHECK(paint_status("interrupted", true) == "\033[35minterrupted\033[0m");
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

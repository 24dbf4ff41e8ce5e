// Unit tests for cli/json_access.cpp: reading fields of API answers never throws.
#include <doctest/doctest.h>

#include "cli/json_access.hpp"

using namespace pw::cli;
using nlohmann::json;

TEST_CASE("field::text: strings as they are, other values as JSON text, fallback when absent or null") {
  json j{{"s", "web-1"}, {"n", 42}, {"d", 1.5}, {"b", true}, {"o", {{"a", 1}}}, {"z", nullptr}};
  CHECK(field::text(j, "s") == "web-1");
  CHECK(field::text(j, "n") == "42");
  CHECK(field::text(j, "d") == "1.5");
  CHECK(field::text(j, "b") == "true");
  CHECK(field::text(j, "o") == R"({"a":1})");
  CHECK(field::text(j, "z").empty());
  CHECK(field::text(j, "z", "?") == "?");
  CHECK(field::text(j, "missing", "unknown") == "unknown");
  // An answer that is not an object has no fields.
  for (const json& other : {json(nullptr), json::array({1, 2}), json("text"), json(7)}) {
    CAPTURE(other.dump());
    CHECK(field::text(other, "s", "-") == "-");
    CHECK_FALSE(field::find(other, "s"));
    CHECK_FALSE(field::integer(other, "s").has_value());
    CHECK(field::object(other, "s").empty());
  }
}

TEST_CASE("field: typed reads give nullopt for another type, never a conversion") {
  json j{{"s", "7"}, {"i", 7}, {"d", 2.5}, {"b", false}, {"z", nullptr}};
  CHECK(field::string(j, "s") == "7");
  CHECK_FALSE(field::string(j, "i").has_value());
  CHECK(field::integer(j, "i") == 7);
  CHECK_FALSE(field::integer(j, "s").has_value());
  CHECK_FALSE(field::integer(j, "d").has_value());
  CHECK_FALSE(field::integer(j, "z").has_value());
  CHECK(field::number(j, "i") == 7.0);
  CHECK(field::number(j, "d") == 2.5);
  CHECK_FALSE(field::number(j, "b").has_value());
  CHECK(field::boolean(j, "b") == false);
  CHECK_FALSE(field::boolean(j, "i").has_value());
  CHECK_FALSE(field::boolean(j, "missing").has_value());
  REQUIRE(field::find(j, "z"));
  CHECK(field::find(j, "z")->is_null());
}

TEST_CASE("field::object and field::array: the value, or an empty one") {
  json j{{"labels", {{"app", "web"}}}, {"items", {1, 2}}, {"bad", "x"}};
  CHECK(field::object(j, "labels")["app"] == "web");
  CHECK(field::object(j, "items").is_object());
  CHECK(field::object(j, "items").empty());
  CHECK(field::array(j, "items").size() == 2);
  CHECK(field::array(j, "bad").is_array());
  CHECK(field::array(j, "missing").empty());
}

#include <doctest/doctest.h>
#include <podwrangler/sentinel.hpp>
TEST_CASE("placeholder") { CHECK(pw::shell_quote("a") == "'a'"); }

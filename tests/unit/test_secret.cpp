// Unit tests for podwrangler/secret.hpp (Secret<T>) and its JSON form (model.cpp).
#include <doctest/doctest.h>
#include <podwrangler/model.hpp>
#include <podwrangler/secret.hpp>

#include <nlohmann/json.hpp>

#include <sstream>
#include <string>
#include <type_traits>

using namespace pw;

namespace {
constexpr const char* kTok = "eyJhbGciOiJIUzI1NiJ9.payload.sig-TOPSECRET";
}

TEST_SUITE_BEGIN("secret");

TEST_CASE("REDACTED is three asterisks") { CHECK(std::string(REDACTED) == "***"); }

TEST_CASE("reveal() returns the value; empty() reflects it") {
  SecretString s{kTok};
  CHECK(s.reveal() == kTok);
  CHECK_FALSE(s.empty());
  SecretString e;
  CHECK(e.empty());
  CHECK(e.reveal().empty());
  SecretString e2{std::string{}};
  CHECK(e2.empty());
}

TEST_CASE("operator<< prints *** and never the value") {
  SecretString s{kTok};
  std::ostringstream os;
  os << "token=" << s << ";";
  CHECK(os.str() == "token=***;");
  std::ostringstream os2;
  os2 << SecretString{};
  CHECK(os2.str() == "***");
}

TEST_CASE("str() is *** for a value and empty for no value") {
  CHECK(SecretString{kTok}.str() == "***");
  CHECK(SecretString{"x"}.str() == "***");
  CHECK(SecretString{}.str().empty());
}

TEST_CASE("JSON serialisation never reveals") {
  nlohmann::json j = SecretString{kTok};
  CHECK(j.is_string());
  CHECK(j.get<std::string>() == "***");
  CHECK(j.dump().find("TOPSECRET") == std::string::npos);

  nlohmann::json e = SecretString{};
  CHECK(e.get<std::string>().empty());

  nlohmann::json obj{{"token", SecretString{kTok}}, {"other", 1}};
  CHECK(obj.dump() == R"({"other":1,"token":"***"})");
  CHECK(dump_json(obj).find("TOPSECRET") == std::string::npos);
}

TEST_CASE("equality compares the hidden values") {
  CHECK(SecretString{"abcd"} == SecretString{"abcd"});
  CHECK_FALSE(SecretString{"abcd"} == SecretString{"abce"});
  CHECK(SecretString{} == SecretString{""});
}

TEST_CASE("copy and move keep the value") {
  SecretString a{kTok};
  SecretString b = a;
  CHECK(b.reveal() == kTok);
  SecretString c = std::move(b);
  CHECK(c.reveal() == kTok);
  CHECK(a == c);
}

TEST_CASE("Secret<T> is not implicitly constructible from its value") {
  // Keeps a token from silently becoming a Secret (or vice versa) in an API call.
  static_assert(!std::is_convertible_v<std::string, SecretString>);
  static_assert(!std::is_convertible_v<SecretString, std::string>);
  static_assert(std::is_constructible_v<SecretString, std::string>);
}

TEST_SUITE_END();

// libpodwrangler/src/base64.cpp: RFC 4648 vectors, every byte value, whitespace, bad input.
#include <podwrangler/base64.hpp>

#include <doctest/doctest.h>

#include <string>

TEST_CASE("base64: the RFC 4648 test vectors both ways") {
  const std::pair<std::string, std::string> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, coded] : vectors) {
    CAPTURE(plain);
    CHECK(pw::base64_encode(plain) == coded);
    CHECK(pw::base64_decode(coded) == plain);
  }
}

TEST_CASE("base64: every byte value and a payload larger than one encoder chunk come back") {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  CHECK(pw::base64_decode(pw::base64_encode(all)) == all);
  std::string big(1'000'003, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7919 % 251);
  const std::string coded = pw::base64_encode(big);
  CHECK(coded.size() == 4 * ((big.size() + 2) / 3));
  CHECK(pw::base64_decode(coded) == big);
}

TEST_CASE("base64: line breaks and spaces are skipped; anything else that is not base64 is refused") {
  CHECK(pw::base64_decode("Zm9v\nYmFy\r\n") == "foobar");
  CHECK(pw::base64_decode(" Zm9v YmE= ") == "fooba");
  CHECK_FALSE(pw::base64_decode("Zm9").has_value());       // not a whole group
  CHECK_FALSE(pw::base64_decode("Zm9v!mFy").has_value());  // a byte outside the alphabet
}

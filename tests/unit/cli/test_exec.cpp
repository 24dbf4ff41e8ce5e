// Unit tests for cli/exec.cpp: exact output bytes (--output raw) and how a result is shown.
#include <doctest/doctest.h>

#include "cli/exec.hpp"
#include "cli/exit_codes.hpp"

#include <openssl/evp.h>

using namespace pw::cli;
using nlohmann::json;

TEST_CASE("fidelity: base64_decode gives back all 256 byte values, any length, and refuses junk") {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (std::size_t len : {0u, 1u, 2u, 3u, 4u, 255u, 256u}) {
    std::string bytes = all.substr(0, len);
    std::string enc(4 * ((len + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(enc.data()),
                            reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(len));
    enc.resize(static_cast<std::size_t>(n));
    CAPTURE(enc);
    auto dec = base64_decode(enc);
    REQUIRE(dec.has_value());
    CHECK(*dec == bytes);
  }
  CHECK(base64_decode("AAEC/w==") == std::string("\x00\x01\x02\xff", 4));
  for (const char* junk : {"A", "AB", "ABC", "AB=C", "A===", "AAAA=", "AA AA", "AA-_", "AA\nA", "=AAA", "AA=A"}) {
    CAPTURE(std::string(junk));
    CHECK_FALSE(base64_decode(junk).has_value());
  }
}

TEST_CASE("fidelity: result_bytes prefers output_b64 (the exact bytes) over the lossy output") {
  CHECK(result_bytes(json{{"output", "text"}}) == std::string("text"));
  CHECK(result_bytes(json{{"output", "\xEF\xBF\xBD"}, {"output_b64", "/w=="}}) == std::string("\xff"));
  CHECK_FALSE(result_bytes(json{{"output", "x"}, {"output_b64", "%%%"}}).has_value());
  CHECK(result_bytes(json{{"status", "error"}}) == std::string());
}

TEST_CASE("exec: the command words, a result's exit code and error text as shown") {
  CHECK(join_command({"ls", "-la", "/app"}) == "ls -la /app");
  CHECK(join_command({"--", "echo", "--x"}) == "echo --x");
  CHECK(join_command({"--"}).empty());
  CHECK(exit_text(json{{"exit_code", 3}}) == "3");
  CHECK(exit_text(json{{"exit_code", nullptr}}) == "-");
  CHECK(exit_text(json{{"status", "error"}}) == "-");
  CHECK(error_text(json{{"error", "refused by wss://h/x?token=Sekr1t"}}).find("Sekr1t") == std::string::npos);
  CHECK(error_text(json{{"error", nullptr}}).empty());
}

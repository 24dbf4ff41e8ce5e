// The API's encoding helpers as units: command_json's byte-faithful output, the strict
// integer parser, the message-safe rendering of client text, UTF-8 validation and base64.
#include "embedded_server/http_util.hpp"
#include "embedded_server/routes.hpp"

#include <podwrangler/base64.hpp>
#include <podwrangler/model.hpp>

#include <doctest/doctest.h>
#include <openssl/rand.h>

#include <cstdint>
#include <functional>
#include <string>

using nlohmann::json;
using namespace pw::server;

namespace {

std::string all_bytes() {
  std::string s;
  for (int i = 0; i < 256; ++i) s += static_cast<char>(i);
  return s;
}

std::string b64decode(const std::string& in) { return pw::base64_decode(in).value(); }

int status_of(const std::function<void()>& f, std::string* field = nullptr) {
  try {
    f();
  } catch (const HttpError& e) {
    if (field) *field = e.extra().value("field", "");
    return e.status();
  }
  return 0;
}

}  // namespace

TEST_CASE("fidelity: command_json keeps all 256 byte values (output_b64) and the JSON stays valid") {
  CommandRecord rec;
  rec.id = 7;
  rec.alias = "p";
  rec.command = "printf ...";
  rec.status = CommandStatus::succeeded;
  rec.exit_code = 0;
  rec.output = all_bytes();
  rec.started_at = "2026-11-25T16:00:00.123Z";
  json j = command_json(rec);
  REQUIRE(j.contains("output_b64"));
  CHECK(b64decode(j["output_b64"].get<std::string>()) == all_bytes());
  CHECK(j["truncated"] == false);  // nothing was dropped
  // `output` is the readable rendition: 0x00-0x7F as they are, each of 0x80-0xFF → U+FFFD.
  std::string lossy = all_bytes().substr(0, 128);
  for (int i = 128; i < 256; ++i) lossy += "\xEF\xBF\xBD";
  CHECK(j["output"].get<std::string>() == lossy);
  CHECK(is_valid_utf8(j["output"].get<std::string>()));
  // What goes on the wire parses back to the same thing (no replacement by the dumper).
  json back = json::parse(pw::dump_json(j));
  CHECK(back["output"] == lossy);
  CHECK(b64decode(back["output_b64"].get<std::string>()) == all_bytes());
}

TEST_CASE("fidelity: command_json passes valid UTF-8 (NUL included) as it is, without output_b64") {
  CommandRecord rec;
  static constexpr char kText[] = "a\0b caf\xC3\xA9 \xF0\x9F\x98\x80\n";
  rec.output = std::string(kText, sizeof kText - 1);
  json j = command_json(rec);
  CHECK_FALSE(j.contains("output_b64"));
  CHECK(j["output"].get<std::string>() == rec.output);
  CHECK(json::parse(pw::dump_json(j))["output"].get<std::string>() == rec.output);
}

TEST_CASE("fidelity: a 1 MiB random blob survives command_json") {
  std::string blob(1 << 20, '\0');
  REQUIRE(RAND_bytes(reinterpret_cast<unsigned char*>(blob.data()), static_cast<int>(blob.size())) == 1);
  CommandRecord rec;
  rec.output = blob;
  json back = json::parse(pw::dump_json(command_json(rec)));
  REQUIRE(back.contains("output_b64"));
  CHECK(b64decode(back["output_b64"].get<std::string>()) == blob);
}

TEST_CASE("fidelity: base64 is standard with padding (RFC 4648 vectors) across chunk boundaries") {
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_encode("foob") == "Zm9vYg==");
  CHECK(base64_encode("fooba") == "Zm9vYmE=");
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
  CHECK(base64_encode("\xFB\xFF") == "+/8=");
  for (std::size_t n : {786431u, 786432u, 786433u, 3u * 786432u + 2u}) {
    CAPTURE(n);
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131) ^ (i >> 7));
    std::string enc = base64_encode(s);
    CHECK(enc.size() == 4 * ((n + 2) / 3));
    CHECK(b64decode(enc) == s);
  }
}

TEST_CASE("fidelity: UTF-8 validation follows Unicode table 3-7") {
  CHECK(is_valid_utf8(""));
  CHECK(is_valid_utf8(std::string("\0", 1)));
  CHECK(is_valid_utf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF"));
  CHECK_FALSE(is_valid_utf8("\xC0\x80"));          // overlong NUL
  CHECK_FALSE(is_valid_utf8("\xE0\x80\xAF"));      // overlong '/'
  CHECK_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate
  CHECK_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  CHECK_FALSE(is_valid_utf8("\xE2\x82"));          // cut short
  CHECK_FALSE(is_valid_utf8("\xFF"));
  CHECK(utf8_lossy("a\xE2\x82"
                   "b\xFF") ==
        "a\xEF\xBF\xBD\xEF\xBF\xBD"
        "b\xEF\xBF\xBD");
}

TEST_CASE("security: integers are parsed whole (no strtol prefixes: '5\\0abc', ' 5', '5abc', '+5')") {
  CHECK(parse_integer("5", "limit", 1, 1000) == 5);
  CHECK(parse_integer("1000", "limit", 1, 1000) == 1000);
  CHECK(parse_integer("-3", "n", -5, 5) == -3);
  CHECK(parse_integer("9223372036854775807", "before", 1, INT64_MAX) == INT64_MAX);
  for (std::string bad : {std::string("5\0abc", 5), std::string(" 5"), std::string("5 "), std::string("+5"),
                          std::string("5abc"), std::string(""), std::string("0x10"), std::string("1e3"),
                          std::string("5.0"), std::string("-5"), std::string("0"), std::string("1001"),
                          std::string("99999999999999999999"), std::string("\t5"), std::string("-")}) {
    CAPTURE(bad);
    std::string field;
    CHECK(status_of([&] { parse_integer(bad, "limit", 1, 1000); }, &field) == 422);
    CHECK(field == "limit");
  }
}

TEST_CASE("security: client text in messages is escaped, never cut at a NUL, cut on a UTF-8 boundary") {
  CHECK(shown(std::string("a\0b\n\x7f", 5)) == "a\\x00b\\x0a\\x7f");
  std::string s(63, 'x');
  s += "\xC3\xA9tail";  // é straddles byte 64
  CHECK(shown(s) == std::string(63, 'x') + "…");
  std::string msg;
  try {
    throw validation_error(shown(std::string("bad\0key", 7)), "unknown field");
  } catch (const HttpError& e) {
    msg = e.message();
  }
  CHECK(msg == "bad\\x00key: unknown field");
}

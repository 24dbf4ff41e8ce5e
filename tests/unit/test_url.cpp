// Unit tests for libpodwrangler/src/url.cpp: parse_url_strict, percent coding, Url.
#include <doctest/doctest.h>
#include <podwrangler/errors.hpp>
#include <podwrangler/url.hpp>

#include <stdexcept>
#include <string>

using namespace pw;
using namespace std::string_literals;

namespace {

constexpr const char* kTok = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwb2QifQ.SECRET-SIG-42";

// Parses `url`, expects a PodURLParseError, checks the part and that the message holds
// no token; returns the message.
std::string expect_parse_error(const std::string& url, const std::string& part) {
  try {
    (void)parse_url_strict(url);
  } catch (const PodURLParseError& e) {
    std::string what = e.what();
    CHECK(e.part() == part);
    CHECK(e.kind() == ErrorKind::url_parse);
    CHECK(what.find(kTok) == std::string::npos);
    CHECK(what.find("SECRET-SIG-42") == std::string::npos);
    return what;
  } catch (const std::exception& e) {
    FAIL("unexpected exception type: " << e.what());
    return {};
  }
  FAIL("no exception for " << url);
  return {};
}

}  // namespace

TEST_SUITE_BEGIN("url");

TEST_CASE("parse_url_strict: the PlainTTY form") {
  std::string u = "wss://k8s.provider.com/exec/45582/?token="s + kTok + "&cols=220&pod=my-app-deploy-abc12-xyz99";
  Url p = parse_url_strict(u);
  CHECK(p.scheme == "wss");
  CHECK(p.userinfo.empty());
  CHECK(p.host == "k8s.provider.com");
  CHECK(p.port.empty());
  CHECK(p.path == "/exec/45582/");
  REQUIRE(p.query.size() == 3);
  CHECK(p.query[0].first == "token");
  CHECK(p.query[0].second == kTok);
  CHECK(p.param("token") == kTok);
  CHECK(p.param("cols") == "220");
  CHECK(p.param("pod") == "my-app-deploy-abc12-xyz99");
  CHECK_FALSE(p.param("missing").has_value());
  CHECK(p.authority() == "k8s.provider.com");
}

TEST_CASE("parse_url_strict: scheme is lower-cased, port, userinfo, fragment") {
  Url p = parse_url_strict("WSS://user:pw@Host.Example:8443/a/b?x=1#frag?y=2");
  CHECK(p.scheme == "wss");
  CHECK(p.userinfo == "user:pw");
  CHECK(p.host == "Host.Example");
  CHECK(p.port == "8443");
  CHECK(p.path == "/a/b");
  REQUIRE(p.query.size() == 1);
  CHECK(p.param("x") == "1");
  CHECK_FALSE(p.param("y").has_value());
  CHECK(p.authority() == "Host.Example:8443");
}

TEST_CASE("parse_url_strict: fragment before any query means no query") {
  Url p = parse_url_strict("ws://h/p#f?token=x");
  CHECK(p.path == "/p");
  CHECK(p.query.empty());
}

TEST_CASE("parse_url_strict: IPv6 literals") {
  Url p = parse_url_strict("ws://[::1]:8080/exec/1/");
  CHECK(p.host == "::1");
  CHECK(p.port == "8080");
  CHECK(p.authority() == "[::1]:8080");
  Url q = parse_url_strict("wss://[fe80::1:2]/");
  CHECK(q.host == "fe80::1:2");
  CHECK(q.authority() == "[fe80::1:2]");
  expect_parse_error("ws://[::1/", "host");
  expect_parse_error("ws://[::g]/", "host");
  expect_parse_error("ws://[::1]x/", "host");
  expect_parse_error("ws://[::1]:/", "port");
  expect_parse_error("ws://[::1]:99999/", "port");
}

TEST_CASE("parse_url_strict: forms with little in them") {
  Url a = parse_url_strict("local://");
  CHECK(a.scheme == "local");
  CHECK(a.host.empty());
  CHECK(a.path.empty());
  CHECK(a.query.empty());
  Url b = parse_url_strict("local://name?shell=/bin/bash&cwd=/tmp");
  CHECK(b.host == "name");
  CHECK(b.path.empty());
  CHECK(b.param("shell") == "/bin/bash");
  CHECK(b.param("cwd") == "/tmp");
  Url c = parse_url_strict("ws://h?flag&empty=&=v");
  REQUIRE(c.query.size() == 3);
  CHECK(c.param("flag") == "");
  CHECK(c.param("empty") == "");
  CHECK(c.param("") == "v");
  Url d = parse_url_strict("ws://h/?&&a=1&&");
  REQUIRE(d.query.size() == 1);
  CHECK(d.param("a") == "1");
}

TEST_CASE("parse_url_strict: query values are percent-decoded, '+' is kept") {
  Url p = parse_url_strict("ws://h/?a=%2Fbin%2Fbash&b=x+y&c=%41%62&d=a%3Db%26c");
  CHECK(p.param("a") == "/bin/bash");
  CHECK(p.param("b") == "x+y");
  CHECK(p.param("c") == "Ab");
  CHECK(p.param("d") == "a=b&c");
  Url k = parse_url_strict("ws://h/?%74oken=v");
  CHECK(k.param("token") == "v");
  // The first of repeated keys wins.
  Url r = parse_url_strict("ws://h/?a=1&a=2");
  CHECK(r.param("a") == "1");
  CHECK(r.query.size() == 2);
}

TEST_CASE("parse_url_strict: valid ports") {
  CHECK(parse_url_strict("ws://h:1/").port == "1");
  CHECK(parse_url_strict("ws://h:65535/").port == "65535");
  CHECK(parse_url_strict("ws://h:080/").port == "080");
}

TEST_CASE("parse_url_strict: malformed scheme") {
  expect_parse_error("k8s.provider.com/exec/45582/?token="s + kTok + "&pod=p", "scheme");
  expect_parse_error("://h/", "scheme");
  expect_parse_error("1ws://h/", "scheme");
  expect_parse_error("w_s://h/", "scheme");
  expect_parse_error("ws:/h/", "scheme");
  expect_parse_error("ws:h", "scheme");
  CHECK(parse_url_strict("svn+ssh://h/").scheme == "svn+ssh");
}

TEST_CASE("parse_url_strict: malformed port") {
  for (const char* u : {"ws://h:/", "ws://h:abc/", "ws://h:0/", "ws://h:65536/", "ws://h:123456/", "ws://h:-1/",
                        "ws://h:+80/", "ws://h:8 0/x"}) {
    INFO(std::string(u));
    std::string part = std::string(u).find(' ') != std::string::npos ? "url" : "port";
    expect_parse_error(u, part);
  }
  std::string w = expect_parse_error("wss://h:99999/exec/1/?token="s + kTok + "&pod=p", "port");
  CHECK(w.find("token=***") != std::string::npos);
}

TEST_CASE("parse_url_strict: malformed host") {
  expect_parse_error("ws://h@st:80:90/", "host");
  expect_parse_error("ws://a b/", "url");
  expect_parse_error("ws://h!x/", "host");
  expect_parse_error("ws://h\"x/", "host");
  expect_parse_error("ws://h{x}/", "host");
  expect_parse_error("ws://h\\x/", "host");
}

TEST_CASE("parse_url_strict: hostile input") {
  SUBCASE("empty") { expect_parse_error("", "url"); }
  SUBCASE("longer than 8192 bytes") {
    std::string u = "wss://h/exec/1/?token="s + kTok + "&pod=p&pad=" + std::string(9000, 'a');
    std::string w = expect_parse_error(u, "url");
    CHECK(w.size() < 1024);
  }
  SUBCASE("exactly 8192 bytes is accepted") {
    std::string base = "wss://h/exec/1/?pad=";
    std::string u = base + std::string(8192 - base.size(), 'a');
    REQUIRE(u.size() == 8192);
    CHECK_NOTHROW((void)parse_url_strict(u));
    expect_parse_error(u + "a", "url");
  }
  SUBCASE("NUL byte inside the string") {
    std::string u = "wss://h/exec/1/?token="s + kTok + "&pod=p\0x"s;
    REQUIRE(u.find('\0') != std::string::npos);
    std::string w = expect_parse_error(u, "url");
    CHECK(w.find('\0') == std::string::npos);
    expect_parse_error("wss://h\0.evil.com/exec/1/"s, "url");
  }
  SUBCASE("control characters and whitespace") {
    for (std::string c : {"\x01"s, "\t"s, "\n"s, "\r"s, "\x1b"s, "\x7f"s, " "s}) {
      CAPTURE(c);
      std::string u = "wss://h/exec/1/?token="s + kTok + c + "&pod=p";
      std::string w = expect_parse_error(u, "url");
      for (char ch : w) CHECK_FALSE((static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f));
      // The control byte (or space) separates the token from another item.
      expect_parse_error("wss://h/exec/1/?pod=p"s + c + "token=" + kTok, "url");
      expect_parse_error("wss://h/exec/1/?pod=p"s + c + "&token=" + kTok, "url");
    }
  }
  SUBCASE("unicode in the host") {
    expect_parse_error(
        "wss://k\xC3\xBC"
        "bernetes.example/exec/1/?token="s +
            kTok + "&pod=p",
        "host");
    expect_parse_error("wss://\xE2\x80\x8Bhost/exec/1/", "host");  // zero-width space
    expect_parse_error("wss://host\xFF/", "host");                 // invalid UTF-8
  }
  SUBCASE("percent-escape garbage in the query") {
    for (const char* q : {"?a=%", "?a=%4", "?a=%zz", "?a=%%41", "?%g0=1", "?a=%4G"}) {
      INFO(std::string(q));
      expect_parse_error("wss://h/exec/1/"s + q + "&token=" + kTok, "query");
    }
    std::string w = expect_parse_error("wss://h/exec/1/?token="s + kTok + "%zz&pod=p", "query");
    CHECK(w.find("token=***") != std::string::npos);
  }
  SUBCASE("percent-escape garbage in the host") {
    expect_parse_error("wss://ho%zzst/exec/1/", "host");
    expect_parse_error("wss://h%00st/exec/1/", "host");
    expect_parse_error("wss://%/exec/1/", "host");
  }
}

TEST_CASE("parse_url_strict: error messages name the problem and show a redacted URL") {
  std::string w = expect_parse_error("wss://user:"s + kTok + "@h:bad/", "port");
  CHECK(w.find("port") != std::string::npos);
  CHECK(w.find("'wss://***@h:bad/'") != std::string::npos);  // the whole userinfo is hidden
}

// Issue 11 item 5: a refused URL was echoed whole, bare userinfo and nested passwords included.
TEST_CASE("security: a refused URL is quoted redacted (bare userinfo, nested URLs, cut URLs)") {
  std::string w = expect_parse_error("https://"s + kTok + "@ho$t/", "host");
  CHECK(w.find("https://***@ho$t/") != std::string::npos);
  w = expect_parse_error("wss://h:99999/exec/1/?token=t&pod=p&server=https://u:"s + kTok + "@x", "port");
  CHECK(w.find("server=https://***@x") != std::string::npos);
  w = expect_parse_error("wss://h:1/?next=https%3A%2F%2Fu%3A"s + "SECRET-SIG-42" + "%40x&a=%zz", "query");
  CHECK(w.find("next=https%3A%2F%2F***%40x") != std::string::npos);
  // A long token in the userinfo: redacted before the message cuts the URL to 512 bytes.
  std::string long_tok(600, 'Z');
  w = expect_parse_error("https://" + long_tok + "@h:bad/", "port");
  CHECK(w.find("ZZZZ") == std::string::npos);
  std::string long_pw = "u:" + std::string(600, 'Q');
  w = expect_parse_error("wss://h:1/?pod=p&server=https://" + long_pw + "@x&a=%zz", "query");
  CHECK(w.find("QQQQ") == std::string::npos);
}

TEST_CASE("percent_decode") {
  CHECK(percent_decode("abc", false) == "abc");
  CHECK(percent_decode("a%20b", false) == "a b");
  CHECK(percent_decode("a+b", false) == "a+b");
  CHECK(percent_decode("a+b", true) == "a b");
  CHECK(percent_decode("%2f%2F", false) == "//");
  CHECK(percent_decode("%00", false) == "\0"s);
  CHECK(percent_decode("%ff", false) == "\xff"s);
  CHECK(percent_decode("", false) == "");
  CHECK_THROWS_AS(percent_decode("%", false), std::invalid_argument);
  CHECK_THROWS_AS(percent_decode("%4", false), std::invalid_argument);
  CHECK_THROWS_AS(percent_decode("abc%", false), std::invalid_argument);
  CHECK_THROWS_AS(percent_decode("%zz", false), std::invalid_argument);
  CHECK_THROWS_AS(percent_decode("%4g", false), std::invalid_argument);
}

TEST_CASE("percent_encode and round trip") {
  CHECK(percent_encode("abcXYZ019-_.~") == "abcXYZ019-_.~");
  CHECK(percent_encode("a b/c?d=e&f") == "a%20b%2Fc%3Fd%3De%26f");
  CHECK(percent_encode("+") == "%2B");
  CHECK(percent_encode("\xff\x00"s) == "%FF%00");
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  CHECK(percent_decode(percent_encode(all), false) == all);
  CHECK(percent_decode(percent_encode(all), true) == all);
}

TEST_CASE("Url::authority") {
  Url u;
  u.host = "h";
  CHECK(u.authority() == "h");
  u.port = "81";
  CHECK(u.authority() == "h:81");
  u.host = "::1";
  CHECK(u.authority() == "[::1]:81");
}

TEST_SUITE_END();

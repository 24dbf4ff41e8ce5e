// Unit tests for libpodwrangler/src/redact.cpp.
#include <doctest/doctest.h>
#include <podwrangler/redact.hpp>

#include <string>

using namespace pw;
using namespace std::string_literals;

namespace {
bool has(const std::string& s, const std::string& needle) {
  return s.find(needle) != std::string::npos;
}
}  // namespace

TEST_SUITE_BEGIN("redact");

TEST_CASE("redact_url: token query parameter") {
  CHECK(redact_url("wss://k8s.provider.com/exec/45582/?token=eyJ.abc.def&cols=220&pod=p") ==
        "wss://k8s.provider.com/exec/45582/?token=***&cols=220&pod=p");
  CHECK(redact_url("wss://h/exec/1/?cols=220&pod=p&token=eyJ.abc.def") ==
        "wss://h/exec/1/?cols=220&pod=p&token=***");
  CHECK(redact_url("ws://h/?token=") == "ws://h/?token=***");
}

TEST_CASE("redact_url: access_token, password, api_key and other sensitive names") {
  CHECK(redact_url("https://h/cb?access_token=SECRET1&x=1") == "https://h/cb?access_token=***&x=1");
  CHECK(redact_url("https://h/?password=SECRET2") == "https://h/?password=***");
  CHECK(redact_url("https://h/?api_key=SECRET3&apikey=SECRET4") ==
        "https://h/?api_key=***&apikey=***");
  CHECK(redact_url("https://h/?client_secret=S5&passwd=S6&jwt=S7&auth=S8") ==
        "https://h/?client_secret=***&passwd=***&jwt=***&auth=***");
  // Case does not matter.
  CHECK(redact_url("https://h/?TOKEN=SECRET9&Password=SECRET10") ==
        "https://h/?TOKEN=***&Password=***");
}

TEST_CASE("redact_url: every occurrence, and repeated keys") {
  CHECK(redact_url("wss://h/?token=A1234&token=B5678") == "wss://h/?token=***&token=***");
}

TEST_CASE("redact_url: userinfo password") {
  CHECK(redact_url("postgresql://user:hunter2@db.example/pods") ==
        "postgresql://user:***@db.example/pods");
  CHECK(redact_url("postgresql+asyncpg://user:p%40ss@db:5432/pods?sslmode=require") ==
        "postgresql+asyncpg://user:***@db:5432/pods?sslmode=require");
  CHECK(redact_url("wss://user:pass@host/exec/1/?token=t0k3n&pod=p") ==
        "wss://user:***@host/exec/1/?token=***&pod=p");
  // A password holding '@' is cut at the last '@' of the authority.
  CHECK(redact_url("https://u:a@b@host/x") == "https://u:***@host/x");
  // No password: the user name is shown.
  CHECK(redact_url("ssh://git@host/repo") == "ssh://git@host/repo");
}

TEST_CASE("redact_url: leaves URLs without secrets unchanged") {
  for (const char* u :
       {"wss://h/exec/1/?cols=220&pod=p", "local://", "local://name?shell=/bin/bash&cwd=/tmp",
        "https://example.com", "https://example.com/a/b#frag", "", "not a url",
        "wss://[::1]:8443/exec/1/", "http://h/?a&b=&=c&&"}) {
    INFO(std::string(u));
    CHECK(redact_url(u) == u);
  }
}

TEST_CASE("redact_url: fragment is preserved, and parameters in it are redacted") {
  CHECK(redact_url("https://h/?token=abcd#section") == "https://h/?token=***#section");
  // OAuth implicit flow puts the access token in the fragment.
  std::string r = redact_url("https://app/cb#access_token=SECRETVALUE&state=xyz");
  CHECK_FALSE(has(r, "SECRETVALUE"));
  CHECK(has(r, "state=xyz"));
  std::string r2 = redact_url("wss://h/exec/1/?pod=p#&token=SECRETVALUE");
  CHECK_FALSE(has(r2, "SECRETVALUE"));
}

TEST_CASE("redact_url: percent-encoded parameter names are recognised") {
  std::string r = redact_url("wss://h/exec/1/?%74oken=SECRETVALUE&pod=p");
  CHECK_FALSE(has(r, "SECRETVALUE"));
  CHECK(has(r, "pod=p"));
  std::string r2 = redact_url("wss://h/exec/1/?tok%65n=SECRETVALUE");
  CHECK_FALSE(has(r2, "SECRETVALUE"));
  // Broken escapes in a name do not stop redaction of the others.
  std::string r3 = redact_url("wss://h/?%zz=1&token=SECRETVALUE");
  CHECK_FALSE(has(r3, "SECRETVALUE"));
}

TEST_CASE("redact_url: a ';'-separated secret inside another parameter is redacted") {
  std::string r = redact_url("wss://h/exec/1/?pod=x;token=SECRETVALUE&cols=1");
  CHECK_FALSE(has(r, "SECRETVALUE"));
  CHECK(has(r, "cols=1"));
}

TEST_CASE("redact_url: URL without scheme still has its query redacted") {
  CHECK(redact_url("k8s.provider.com/exec/45582/?token=SECRET&pod=p") ==
        "k8s.provider.com/exec/45582/?token=***&pod=p");
}

TEST_CASE("redact_url: is idempotent") {
  std::string u = "wss://a:b@h/?token=SECRET&pod=p#access_token=X";
  CHECK(redact_url(redact_url(u)) == redact_url(u));
}

TEST_CASE("redact_url: hostile inputs do not crash and do not leak") {
  std::string nul = "wss://h/?token=SEC\0RETVALUE&pod=p"s;
  std::string r = redact_url(nul);
  CHECK_FALSE(has(r, "RETVALUE"));
  std::string longu = "wss://h/?pod=p&token=" + std::string(100000, 'Z');
  CHECK(redact_url(longu) == "wss://h/?pod=p&token=***");
  CHECK(redact_url("://") == "://");
  CHECK(redact_url("?") == "?");
  CHECK(redact_url("?token") == "?token");
  CHECK(redact_url("?token=") == "?token=***");
  CHECK(redact_url("wss://@") == "wss://@");
  CHECK(redact_url("wss://:@h") == "wss://:***@h");
}

TEST_CASE("redact_value") {
  CHECK(redact_value("the token is abcd1234 ok", "abcd1234") == "the token is *** ok");
  CHECK(redact_value("abcd1234abcd1234", "abcd1234") == "******");
  CHECK(redact_value("a abcd1234 b abcd1234 c", "abcd1234") == "a *** b *** c");
  CHECK(redact_value("nothing here", "abcd1234") == "nothing here");
  CHECK(redact_value("", "abcd1234") == "");
  // Short secrets would mangle text: left alone.
  CHECK(redact_value("abc abc", "abc") == "abc abc");
  CHECK(redact_value("text", "") == "text");
  // Exactly 4 bytes is redacted.
  CHECK(redact_value("xx abcd yy", "abcd") == "xx *** yy");
  // Binary safe.
  std::string bin = "\x00\x01SECRET\x00"s;
  CHECK(redact_value(bin, "SECRET") == "\x00\x01***\x00"s);
}

TEST_CASE("is_sensitive_key") {
  for (const char* k : {"token", "TOKEN", "access_token", "refresh_token", "password", "passwd",
                        "secret", "client_secret", "api_key", "apikey", "X-API-KEY",
                        "Authorization", "X-Auth-Token", "auth", "jwt", "Cookie", "Set-Cookie"}) {
    INFO(std::string(k));
    CHECK(is_sensitive_key(k));
  }
  for (const char* k : {"pod", "cols", "shell", "cwd", "namespace", "User-Agent", "Host", "",
                        "container", "sslmode"}) {
    INFO(std::string(k));
    CHECK_FALSE(is_sensitive_key(k));
  }
}

TEST_SUITE_END();

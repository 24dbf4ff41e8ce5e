// Unit tests for libpodwrangler/src/providers/plaintty.cpp.
#include <doctest/doctest.h>
#include <podwrangler/errors.hpp>
#include <podwrangler/provider.hpp>
#include <podwrangler/providers/plaintty.hpp>
#include <podwrangler/redact.hpp>
#include <podwrangler/url.hpp>

#include <string>

using namespace pw;
using namespace std::string_literals;

namespace {

const std::string kTok =
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTEyMyIsImV4cCI6OTk5OTk5OTk5OX0."
    "QmFzZTY0VXJsU2lnbmF0dXJlLVNFQ1JFVA";
const std::string kSig = "QmFzZTY0VXJsU2lnbmF0dXJlLVNFQ1JFVA";
const std::string kGood =
    "wss://k8s.provider.com/exec/45582/?token=" + kTok + "&cols=220&pod=my-app-deploy-abc12-xyz99";

bool has(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

// Expects parse_url to throw PodURLParseError for `part`; checks the message never
// holds the token. Returns what().
std::string expect_error(const PlainTTYProvider& p, const std::string& url, const std::string& part,
                         const std::string& token = kTok) {
  try {
    (void)p.parse_url(url);
  } catch (const PodURLParseError& e) {
    std::string what = e.what();
    CAPTURE(what);
    CHECK(e.part() == part);
    if (token.size() >= 4) CHECK_FALSE(has(what, token));
    CHECK_FALSE(has(what, kSig));
    return what;
  } catch (const std::exception& e) {
    FAIL("unexpected exception: " << e.what());
    return {};
  }
  FAIL("no exception for " << url);
  return {};
}

}  // namespace

TEST_SUITE_BEGIN("providers/plaintty");

TEST_CASE("name and defaults") {
  PlainTTYProvider p;
  CHECK(p.name() == "plaintty");
  CHECK(p.cols() == DEFAULT_TERMINAL_COLS);
  CHECK_FALSE(p.tls().insecure_skip_verify);
  PlainTTYProvider q(80, TlsOptions{"/ca.pem", false});
  CHECK(q.cols() == 80);
  CHECK(q.tls().ca_file == "/ca.pem");
}

TEST_CASE("constructor rejects out-of-range cols") {
  CHECK_THROWS_AS(PlainTTYProvider(0), PodConfigValidationError);
  CHECK_THROWS_AS(PlainTTYProvider(-5), PodConfigValidationError);
  CHECK_THROWS_AS(PlainTTYProvider(4097), PodConfigValidationError);
  CHECK_NOTHROW(PlainTTYProvider(1));
  CHECK_NOTHROW(PlainTTYProvider(4096));
  try {
    PlainTTYProvider bad(0);
  } catch (const PodConfigValidationError& e) {
    CHECK(e.field() == "cols");
  }
}

TEST_CASE("parse_url: the documented example URL") {
  PlainTTYProvider p;
  auto [id, tok] = p.parse_url(kGood);
  CHECK(id.pod_name == "my-app-deploy-abc12-xyz99");
  CHECK(id.service == "my-app-deploy");
  CHECK(id.deployment == "abc12");
  CHECK(id.cluster == "45582");
  CHECK(id.cols == 220);
  CHECK(id.origin == "wss://k8s.provider.com");
  CHECK(id.namespace_.empty());
  CHECK(id.container.empty());
  CHECK(tok.reveal() == kTok);
  CHECK(id.label() == "my-app-deploy/my-app-deploy-abc12-xyz99");
}

TEST_CASE("parse_url: valid variants") {
  PlainTTYProvider p(100);
  SUBCASE("ws:// without trailing slash, param order, default cols from the provider") {
    auto [id, tok] = p.parse_url("ws://127.0.0.1:8080/exec/svc_1.a-b?pod=web-7f9-x1&token=t0k3n");
    CHECK(id.origin == "ws://127.0.0.1:8080");
    CHECK(id.cluster == "svc_1.a-b");
    CHECK(id.cols == 100);
    CHECK(id.pod_name == "web-7f9-x1");
    CHECK(id.service == "web");
    CHECK(id.deployment == "7f9");
    CHECK(tok.reveal() == "t0k3n");
  }
  SUBCASE("upper-case scheme, port and IPv6") {
    auto [id, tok] = p.parse_url("WSS://[::1]:8443/exec/7/?token=abc&pod=p&cols=4096");
    CHECK(id.origin == "wss://[::1]:8443");
    CHECK(id.cols == 4096);
    CHECK(id.cluster == "7");
  }
  SUBCASE("a pod name without dashes is its own service") {
    auto [id, tok] = p.parse_url("wss://h/exec/1/?token=abc&pod=standalone");
    CHECK(id.service == "standalone");
    CHECK(id.deployment.empty());
    CHECK(id.label() == "standalone");
  }
  SUBCASE("a pod name with one dash is its own service") {
    auto [id, tok] = p.parse_url("wss://h/exec/1/?token=abc&pod=web-1");
    CHECK(id.service == "web-1");
    CHECK(id.deployment.empty());
  }
  SUBCASE("optional namespace") {
    auto [id, tok] = p.parse_url("wss://h/exec/1/?token=abc&pod=p&namespace=prod");
    CHECK(id.namespace_ == "prod");
  }
  SUBCASE("percent-encoded token") {
    auto [id, tok] = p.parse_url("wss://h/exec/1/?token=a%2Bb%2Fc%3D%3D&pod=p");
    CHECK(tok.reveal() == "a+b/c==");
  }
  SUBCASE("cols 1") { CHECK(p.parse_url("wss://h/exec/1/?token=abc&pod=p&cols=1").first.cols == 1); }
}

TEST_CASE("parse_url: malformed URLs name the bad part and never show the token") {
  PlainTTYProvider p;
  SUBCASE("no scheme") { expect_error(p, "k8s.provider.com/exec/45582/?token=" + kTok + "&pod=p", "scheme"); }
  SUBCASE("bad scheme") {
    expect_error(p, "https://k8s.provider.com/exec/45582/?token=" + kTok + "&pod=p", "scheme");
    expect_error(p, "local://x?token=" + kTok, "scheme");
    expect_error(p, "ftp://h/exec/1/?token=" + kTok + "&pod=p", "scheme");
  }
  SUBCASE("missing host") {
    expect_error(p, "wss:///exec/1/?token=" + kTok + "&pod=p", "host");
    expect_error(p, "wss://:443/exec/1/?token=" + kTok + "&pod=p", "host");
  }
  SUBCASE("bad port") {
    for (const char* port : {"abc", "0", "65536", "", "99999999"}) {
      INFO(std::string(port));
      expect_error(p, "wss://h:"s + port + "/exec/1/?token=" + kTok + "&pod=p", "port");
    }
  }
  SUBCASE("missing token") {
    expect_error(p, "wss://h/exec/1/?cols=220&pod=p", "token");
    expect_error(p, "wss://h/exec/1/?token=&pod=p", "token");
    expect_error(p, "wss://h/exec/1/?token&pod=p", "token");
    expect_error(p, "wss://h/exec/1/", "token");
    expect_error(p, "wss://h/exec/1/?TOKEN=" + kTok + "&pod=p", "token");
    expect_error(p, "wss://h/exec/1/?pod=p#token=" + kTok, "token");
  }
  SUBCASE("missing pod") {
    expect_error(p, "wss://h/exec/1/?token=" + kTok, "pod");
    expect_error(p, "wss://h/exec/1/?token=" + kTok + "&pod=", "pod");
    expect_error(p, "wss://h/exec/1/?token=" + kTok + "&cols=80", "pod");
  }
  SUBCASE("bad pod") {
    expect_error(p, "wss://h/exec/1/?token=" + kTok + "&pod=a%2Fb", "pod");
    expect_error(p, "wss://h/exec/1/?token=" + kTok + "&pod=a%20b", "pod");
    expect_error(p, "wss://h/exec/1/?token=" + kTok + "&pod=%C3%A9t%C3%A9", "pod");
    expect_error(p, "wss://h/exec/1/?token=" + kTok + "&pod=" + std::string(254, 'a'), "pod");
    CHECK_NOTHROW(p.parse_url("wss://h/exec/1/?token=x&pod=" + std::string(253, 'a')));
  }
  SUBCASE("bad cols") {
    for (const char* c : {"abc", "0", "-1", "4097", "99999", "", "1e3", "%2032", "220.5", "0x10"}) {
      INFO(std::string(c));
      expect_error(p, "wss://h/exec/1/?token=" + kTok + "&cols=" + c + "&pod=p", "cols");
    }
  }
  SUBCASE("bad path") {
    expect_error(p, "wss://h/?token=" + kTok + "&pod=p", "path");
    expect_error(p, "wss://h?token=" + kTok + "&pod=p", "path");
    expect_error(p, "wss://h/exe/1/?token=" + kTok + "&pod=p", "path");
    expect_error(p, "wss://h/api/exec/1/?token=" + kTok + "&pod=p", "path");
    expect_error(p, "wss://h/EXEC/1/?token=" + kTok + "&pod=p", "path");
  }
  SUBCASE("bad service id") {
    expect_error(p, "wss://h/exec//?token=" + kTok + "&pod=p", "service_id");
    expect_error(p, "wss://h/exec/?token=" + kTok + "&pod=p", "service_id");
    expect_error(p, "wss://h/exec/1/extra/?token=" + kTok + "&pod=p", "service_id");
    expect_error(p, "wss://h/exec/a%20b/?token=" + kTok + "&pod=p", "service_id");
    expect_error(p, "wss://h/exec/" + std::string(129, '1') + "/?token=" + kTok + "&pod=p", "service_id");
  }
}

TEST_CASE("parse_url: hostile URLs") {
  PlainTTYProvider p;
  SUBCASE("very long URL") {
    std::string u = kGood + "&pad=" + std::string(8200, 'x');
    std::string w = expect_error(p, u, "url");
    CHECK(w.size() < 1024);
  }
  SUBCASE("very long token in a URL under the limit") {
    std::string tok(8000, 'T');
    auto [id, t] = p.parse_url("wss://h/exec/1/?token=" + tok + "&pod=p");
    CHECK(t.reveal() == tok);
    std::string w = expect_error(p, "wss://h/exec/1/?token=" + tok + "&cols=x&pod=p", "cols", tok);
    CHECK_FALSE(has(w, "TT"));
  }
  SUBCASE("NUL byte inside the token") {
    std::string u = "wss://h/exec/1/?token=" + kTok.substr(0, 10) + "\0"s + kTok.substr(10) + "&pod=p";
    std::string w = expect_error(p, u, "url", kTok.substr(10));
    CHECK(w.find('\0') == std::string::npos);
  }
  SUBCASE("NUL byte in the host") { expect_error(p, "wss://h\0evil/exec/1/?token="s + kTok + "&pod=p", "url"); }
  SUBCASE("control characters") {
    for (std::string c : {"\r\n"s, "\x1b[2J"s, "\x07"s, "\x7f"s, "\t"s}) {
      CAPTURE(c);
      std::string w = expect_error(p, "wss://h/exec/1/?token=" + kTok + "&pod=p" + c, "url");
      for (char ch : w) CHECK_FALSE((static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f));
    }
  }
  SUBCASE("unicode in host") {
    expect_error(p, "wss://k8s.pr\xC3\xB6vider.com/exec/1/?token="s + kTok + "&pod=p", "host");
    expect_error(p, "wss://\xD0\xBA\xD0\xBE\xD0\xBC/exec/1/?token="s + kTok + "&pod=p", "host");
  }
  SUBCASE("percent-escape garbage") {
    expect_error(p, "wss://h/exec/1/?token=" + kTok + "&pod=p%zz", "query");
    expect_error(p, "wss://h/exec/1/?token=" + kTok + "%G1&pod=p", "query");
    expect_error(p, "wss://h/exec/1/?token=" + kTok + "&pod=p&%", "query");
    expect_error(p, "wss://h%41/exec/1/?token=" + kTok + "&pod=p", "host");
    expect_error(p, "wss://h/exec/%zz/?token=" + kTok + "&pod=p", "service_id");
  }
  SUBCASE("token smuggled past the redactor") {
    // Percent-encoded key, key inside a ';' list, key in the fragment: the parser
    // fails on another part and the message must still hide the value.
    expect_error(p, "wss://h/exec/1/?%74oken=" + kTok, "pod");
    expect_error(p, "wss://h/exec/1/?token=x&pod=a;token=" + kTok, "pod");
    expect_error(p, "wss://h/exec/1/?pod=p#access_token=" + kTok, "token");
    expect_error(p, "wss://u:" + kTok + "@h/exec/1/?pod=p", "token");
  }
}

TEST_CASE("build_connection_spec produces the PlainTTY URL and round-trips through parse_url") {
  PlainTTYProvider p(220, TlsOptions{"/etc/ca.pem", false});
  auto [id, tok] = p.parse_url(kGood);
  ConnectionSpec s = p.build_connection_spec(id, tok);
  CHECK(s.url == kGood);
  CHECK_FALSE(s.is_binary_framed);
  CHECK(s.line_framed);
  CHECK(s.tty);
  CHECK(s.tls.ca_file == "/etc/ca.pem");
  auto [id2, tok2] = p.parse_url(s.url);
  CHECK(id2 == id);
  CHECK(tok2 == tok);

  SUBCASE("tokens needing escapes, ports, other cols") {
    for (std::string t : {"a+b/c=="s, "with space"s, "x&pod=evil"s, "%41"s, "\xC3\xA9t\xC3\xA9"s}) {
      CAPTURE(t);
      PodIdentity i;
      i.pod_name = "api-5d8-q2";
      i.cluster = "svc.9";
      i.cols = 132;
      i.origin = "ws://10.1.2.3:9000";
      ConnectionSpec w = p.build_connection_spec(i, SecretString{t});
      CHECK_FALSE(has(redact_url(w.url), t));
      auto [i2, t2] = p.parse_url(w.url);
      CHECK(t2.reveal() == t);
      CHECK(i2.pod_name == i.pod_name);
      CHECK(i2.cluster == i.cluster);
      CHECK(i2.cols == 132);
      CHECK(i2.origin == i.origin);
      CHECK(i2.service == "api");
      CHECK(i2.deployment == "5d8");
    }
  }
}

TEST_CASE("build_connection_spec needs an origin") {
  PlainTTYProvider p;
  PodIdentity id;
  id.pod_name = "p";
  id.cluster = "1";
  CHECK_THROWS_AS(p.build_connection_spec(id, SecretString{"tok"}), PodConfigValidationError);
}

TEST_CASE("the catalog routes ws/wss URLs to plaintty") {
  auto& cat = ProviderCatalog::instance();
  REQUIRE(cat.get("plaintty") != nullptr);
  CHECK(cat.for_url(kGood)->name() == "plaintty");
  CHECK(cat.for_url("WS://h/exec/1/?token=a&pod=b")->name() == "plaintty");
  PodEndpoint ep = endpoint_from_url(kGood);
  CHECK(ep.provider->name() == "plaintty");
  CHECK(ep.identity.pod_name == "my-app-deploy-abc12-xyz99");
  CHECK(ep.token.reveal() == kTok);
  try {
    (void)cat.for_url("gopher://h/?token=" + kTok);
    FAIL("no exception");
  } catch (const PodURLParseError& e) {
    CHECK(e.part() == "scheme");
    CHECK_FALSE(has(e.what(), kTok));
  }
}

TEST_SUITE_END();

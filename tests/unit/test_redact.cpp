// Unit tests for libpodwrangler/src/redact.cpp.
#include <doctest/doctest.h>
#include <podwrangler/redact.hpp>

#include <cstdio>
#include <string>
#include <vector>

using namespace pw;
using namespace std::string_literals;

namespace {
bool has(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }
}  // namespace

TEST_SUITE_BEGIN("redact");

TEST_CASE("redact_url: token query parameter") {
  CHECK(redact_url("wss://k8s.provider.com/exec/45582/?token=eyJ.abc.def&cols=220&pod=p") ==
        "wss://k8s.provider.com/exec/45582/?token=***&cols=220&pod=p");
  CHECK(redact_url("wss://h/exec/1/?cols=220&pod=p&token=eyJ.abc.def") == "wss://h/exec/1/?cols=220&pod=p&token=***");
  CHECK(redact_url("ws://h/?token=") == "ws://h/?token=");  // empty: nothing to hide
}

TEST_CASE("redact_url: access_token, password, api_key and other sensitive names") {
  CHECK(redact_url("https://h/cb?access_token=SECRET1&x=1") == "https://h/cb?access_token=***&x=1");
  CHECK(redact_url("https://h/?password=SECRET2") == "https://h/?password=***");
  CHECK(redact_url("https://h/?api_key=SECRET3&apikey=SECRET4") == "https://h/?api_key=***&apikey=***");
  CHECK(redact_url("https://h/?client_secret=S5&passwd=S6&jwt=S7&auth=S8") ==
        "https://h/?client_secret=***&passwd=***&jwt=***&auth=***");
  // Case does not matter.
  CHECK(redact_url("https://h/?TOKEN=SECRET9&Password=SECRET10") == "https://h/?TOKEN=***&Password=***");
}

TEST_CASE("redact_url: every occurrence, and repeated keys") {
  CHECK(redact_url("wss://h/?token=A1234&token=B5678") == "wss://h/?token=***&token=***");
}

TEST_CASE("redact_url: userinfo is hidden whole (user:password and bare tokens)") {
  CHECK(redact_url("postgresql://user:hunter2@db.example/pods") == "postgresql://***@db.example/pods");
  CHECK(redact_url("postgresql+asyncpg://user:p%40ss@db:5432/pods?sslmode=require") ==
        "postgresql+asyncpg://***@db:5432/pods?sslmode=require");
  CHECK(redact_url("wss://user:pass@host/exec/1/?token=t0k3n&pod=p") == "wss://***@host/exec/1/?token=***&pod=p");
  // A password holding '@' is cut at the last '@' of the authority.
  CHECK(redact_url("https://u:a@b@host/x") == "https://***@host/x");
  // A bare user part may be a token (https://TOKEN@host, https://TOKEN:x-oauth-basic@host).
  CHECK(redact_url("ssh://git@host/repo") == "ssh://***@host/repo");
  CHECK(redact_url("https://ghp_T0KEN:x-oauth-basic@github.com/o/r") == "https://***@github.com/o/r");
  // k8s://CONTEXT@ns/pod: a kubeconfig context name, not a credential.
  CHECK(redact_url("k8s://prod@shop/web-1") == "k8s://prod@shop/web-1");
  CHECK(redact_url("k8s://prod:pw@shop/web-1") == "k8s://***@shop/web-1");
}

TEST_CASE("redact_url: leaves URLs without secrets unchanged") {
  for (const char* u :
       {"wss://h/exec/1/?cols=220&pod=p", "local://", "local://name?shell=/bin/bash&cwd=/tmp", "https://example.com",
        "https://example.com/a/b#frag", "", "not a url", "wss://[::1]:8443/exec/1/", "http://h/?a&b=&=c&&"}) {
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
  CHECK(redact_url("?token=") == "?token=");  // nothing to hide
  CHECK(redact_url("wss://@") == "wss://@");
  CHECK(redact_url("wss://:@h") == "wss://***@h");
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
  for (const char* k :
       {"token", "TOKEN", "access_token", "refresh_token", "password", "passwd", "secret", "client_secret", "api_key",
        "apikey", "X-API-KEY", "Authorization", "X-Auth-Token", "auth", "jwt", "Cookie", "Set-Cookie"}) {
    INFO(std::string(k));
    CHECK(is_sensitive_key(k));
  }
  for (const char* k : {"pod", "cols", "shell", "cwd", "namespace", "User-Agent", "Host", "", "container", "sslmode"}) {
    INFO(std::string(k));
    CHECK_FALSE(is_sensitive_key(k));
  }
}

namespace {
struct Leak {
  std::string input;
  std::vector<std::string> secrets;  // none of these may survive
  std::string kept;                  // this must survive (the URL stays readable)
};
}  // namespace

// Issue 11 items 4 and 5: nested URLs, bare userinfo, encodings, and the other shapes a
// secret takes inside a URL or a message.
TEST_CASE("security: no secret survives redaction, whatever shape the URL has") {
  const std::vector<Leak> table = {
      // 4: a password inside a URL nested in a query string
      {"wss://h/exec/1/?token=Tq1x&pod=p&server=https://u:PWnest1@x", {"Tq1x", "PWnest1"}, "server=https://***@x"},
      {"https://a/?u=https://b/?v=https://c:PWdeep2@d", {"PWdeep2"}, "v=https://***@d"},
      {"https://web.archive.org/web/2020/https://u:PWpath3@x/", {"PWpath3"}, "/web/2020/https://***@x/"},
      // 5: bare userinfo
      {"wss://TOKENbare4@host/exec/1/?token=Tq2x&pod=p", {"TOKENbare4", "Tq2x"}, "wss://***@host/exec/1/"},
      {"https://TOKENbare5@host", {"TOKENbare5"}, "https://***@host"},
      {"HTTPS://u:PWcase6@H/", {"PWcase6"}, "HTTPS://***@H/"},
      {"https://:PWempty7@h/", {"PWempty7"}, "https://***@h/"},
      {"https://user:@h/", {}, "https://***@h/"},
      // percent-encoded nested URLs, single, double and lowercase escapes
      {"wss://h/?pod=p&next=https%3A%2F%2Fu%3APWenc8%40x", {"PWenc8"}, "next=https%3A%2F%2F***%40x"},
      {"wss://h/?next=https%253A%252F%252Fu%253APWdbl9%2540x", {"PWdbl9"}, "next=https%253A%252F%252F***%2540x"},
      {"wss://h/?next=https%3a%2f%2fu%3aPWlow10%40x", {"PWlow10"}, "wss://h/?next="},
      {"wss://h/?next=%2Fcb%3Fa%3D1%26access_token%3DATenc11", {"ATenc11"}, "%2Fcb%3Fa%3D1%26access_token%3D***"},
      {"wss://h/?%74oken=ENCkey12&pod=p", {"ENCkey12"}, "pod=p"},
      {"https://u:p%40ss%3AENCpw13@h/", {"ENCpw13"}, "https://***@h/"},
      // IPv6 hosts and ports
      {"wss://u:PWv6a14@[::1]:8443/exec/1/?pod=p", {"PWv6a14"}, "wss://***@[::1]:8443/exec/1/?pod=p"},
      {"https://[fe80::1]:8443/?access_token=ATv6b15", {"ATv6b15"}, "https://[fe80::1]:8443/?access_token=***"},
      {"https://u:PWport16@h:8443/x", {"PWport16"}, "https://***@h:8443/x"},
      // fragments
      {"https://app/cb#access_token=ATfrag17&state=xyz", {"ATfrag17"}, "state=xyz"},
      {"wss://h/exec/1/?token=T&pod=p#&token=FRAGtok18", {"FRAGtok18"}, "pod=p#&token=***"},
      // repeated parameters, uppercase and vendor keys
      {"wss://h/?token=RPa19&token=RPb20", {"RPa19", "RPb20"}, "token=***&token=***"},
      {"https://h/?API_KEY=UPk21&X-Amz-Signature=AMZs22&X-Amz-Credential=AKIAcred23%2F2024&X-Amz-Security-Token=AMZt24",
       {"UPk21", "AMZs22", "AKIAcred23", "AMZt24"},
       "X-Amz-Signature=***"},
      {"https://acct.blob.core.windows.net/c/b?sv=2020&sig=SASsig25%3D&se=2030",
       {"SASsig25"},
       "sv=2020&sig=***&se=2030"},
      {"https://h/?apiKey=CAMEL26&accessToken=CAMEL27&Key-Pair-Id=KPI28&Signature=CF29",
       {"CAMEL26", "CAMEL27", "KPI28", "CF29"},
       "apiKey=***"},
      {"https://h/?client_secret=CS30&passwd=PD31&jwt=JW32&auth=AU33&sessionid=SE34&pass=PS35",
       {"CS30", "PD31", "JW32", "AU33", "SE34", "PS35"},
       "client_secret=***"},
      // separators inside a value, matrix parameters
      {"wss://h/?pod=x;token=SEMI36&cols=1", {"SEMI36"}, "cols=1"},
      {"wss://h/?token=SEMIa37;SEMIb38&cols=1", {"SEMIa37", "SEMIb38"}, "cols=1"},
      {"https://h/app;jsessionid=JSESS39?x=1", {"JSESS39"}, "https://h/app;jsessionid=***"},
      // '@' in paths; passwords holding a delimiter
      {"https://h/@scope/pkg?token=PATHtok40", {"PATHtok40"}, "https://h/@scope/pkg?token=***"},
      {"https://user:pa/SLsec41@host/x", {"SLsec41"}, "@host/x"},
      {"https://user:pa#HSsec42@host/x", {"HSsec42"}, "@host/x"},
      {"https://user:pa?QMsec43@host/x", {"QMsec43"}, "@host/x"},
      {"wss://h/?pod=p&server=https://u:pa&AMPsec44@x/", {"AMPsec44"}, "@x/"},
      {"https://u:a@AT45@host/x", {"AT45"}, "https://***@host/x"},
      // control bytes and non-ASCII
      {"wss://h/?pod=p\x01token=CTRL46", {"CTRL46"}, "pod=p"},
      {"https://user:PWunic\xC3\xA9"
       "47@h/",
       {"PWunic"},
       "https://***@h/"},
  };
  for (const auto& t : table) {
    CAPTURE(t.input);
    std::string url = redact_url(t.input);
    std::string text = redact_text("refused '" + t.input + "': bad URL");
    CAPTURE(url);
    CAPTURE(text);
    for (const auto& secret : t.secrets) {
      CHECK_FALSE(has(url, secret));
      CHECK_FALSE(has(text, secret));
    }
    CHECK(has(url, t.kept));
    CHECK(has(text, t.kept));
    CHECK(redact_url(url) == url);  // idempotent
    CHECK(redact_text(text) == text);
  }
}

TEST_CASE("security: redact_text hides secrets in messages, JSON, headers and key=value pairs") {
  const std::vector<Leak> table = {
      {"cannot connect to postgresql://pw:hunter2secret@db.local/pods", {"hunter2secret"}, "db.local"},
      {"ssh alice:PWnoscheme1@db:5432 failed", {"PWnoscheme1"}, "***@db:5432 failed"},
      {"server rejected 'Authorization: Bearer abcdef0123456789'", {"abcdef0123456789"}, "Authorization: Bearer ***'"},
      {"Authorization: Basic dXNlcjpQV2hkcjI3", {"dXNlcjpQV2hkcjI3"}, "Authorization: Basic ***"},
      {"got Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig123 from the client", {"eyJhbGciOiJIUzI1NiJ9"}, "from the client"},
      {"X-Api-Key: KEYhdr2 was refused", {"KEYhdr2"}, "was refused"},
      {"bad request token=abcdef0123456789 sent", {"abcdef0123456789"}, "token=*** sent"},
      {"run with --api-key=CLIflag3 --verbose", {"CLIflag3"}, "--verbose"},
      {"password='two WORDS4 here' next", {"WORDS4"}, "' next"},
      {R"(body {"url":"wss://h/?token=JSONtok5&pod=p","password":"JSONpw6","alias":"a"})",
       {"JSONtok5", "JSONpw6"},
       R"("alias":"a")"},
      {R"({"password": "spaced JSONpw7 value", "alias": "a"})", {"JSONpw7"}, R"("alias": "a")"},
      {R"({"api_key": 12345678, "alias": "a"})", {"12345678"}, R"("alias": "a")"},
      {"cookie set: sessionid=SESS8; Path=/", {"SESS8"}, "Path=/"},
  };
  for (const auto& t : table) {
    CAPTURE(t.input);
    std::string text = redact_text(t.input);
    CAPTURE(text);
    for (const auto& secret : t.secrets) CHECK_FALSE(has(text, secret));
    CHECK(has(text, t.kept));
    CHECK(redact_text(text) == text);
  }
}

TEST_CASE("security: redact_text leaves ordinary text alone") {
  for (const char* t : {
           "only bearer tokens are supported",
           "Basic authentication is required; bearer or basic",
           "scheme must be Bearer",
           "connect to 10.0.0.1:443 timed out after 15s (attempt 2 of 3)",
           "--label wants KEY=VALUE (got 'x')",
           "missing token query parameter",
           "no bearer token for the API server (URL token=, options or kubeconfig)",
           "set api_key=${API_KEY} or token=<jwt> or PASSWORD=PASSWORD or token=... or KEY=VALUE",
           "mail alice@example.com or bob@example.org; mailto:carol@example.com",
           "git@github.com:org/repo.git",
           "invalid URL (port): not a port number in 'wss://h:99999/'",
           "wss://[::1]:8443/exec/1/?cols=220&pod=p#top",
           "https://h/@scope/pkg and https://h/a/b#frag",
           "limit=5%00abc and limit=%205 and 100% done, 50%off",
           "use http://HOST:PORT or https://HOST:PORT",
           "2026-11-25T16:00:00.123Z exit_code=1 status=failed duration=0.5",
           "password authentication failed for user \"alice\"",
           "token: must not be empty; the session key is rotated",
           "k8s://prod@shop/web-1?server=https://10.1.2.3:6443",
           R"({"code":"not_found","message":"no such route"})",
           "not a podwrangler API at http://127.0.0.1:8000 (HTTP 404, text/html)",
           "local://name?shell=/bin/bash&cwd=/tmp",
           "",
           "   ",
       }) {
    CAPTURE(std::string(t));
    CHECK(redact_text(t) == t);
  }
}

TEST_CASE("security: redaction is bounded on hostile input") {
  // Deep encodings are hidden whole past the depth limit; long inputs stay linear.
  std::string deep = "u:PWdeep@x";
  for (int i = 0; i < 8; ++i) {
    std::string enc;
    for (char c : deep) {
      if (c == ':' || c == '@' || c == '%') {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%%%02X", static_cast<unsigned char>(c));
        enc += buf;
      } else {
        enc += c;
      }
    }
    deep = enc;
  }
  CHECK_FALSE(has(redact_url("https://h/?next=" + deep), "PWdeep"));
  std::string many;
  for (int i = 0; i < 20000; ++i) many += "x://ab:cd@";
  CHECK(redact_text(many).size() < many.size());
  std::string ats(200000, '@');
  CHECK(redact_text(ats) == ats);
  std::string colons;
  for (int i = 0; i < 20000; ++i) colons += "x://h:p/";
  CHECK(redact_text(colons) == colons);
}

TEST_CASE("security: a secret in any URL shape, nested in any context, never survives") {
  const std::string S = "QZSECRETQZ";
  auto enc = [](const std::string& v) {
    static const char* hex = "0123456789ABCDEF";
    std::string o;
    for (unsigned char c : v) {
      bool keep = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-' || c == '.' ||
                  c == '_' || c == '~';
      if (keep) {
        o += static_cast<char>(c);
      } else {
        o += '%';
        o += hex[c >> 4];
        o += hex[c & 15];
      }
    }
    return o;
  };
  const std::vector<std::string> inner = {
      "https://u:" + S + "@x/",           "https://" + S + "@x",
      "wss://h/?token=" + S + "&pod=p",   "u:" + S + "@db:5432",
      "https://h/?X-Amz-Signature=" + S,  "https://h/cb#access_token=" + S,
      "https://[::1]:8443/?api_key=" + S, "https://u:" + S + "@[::1]:1/",
      "k8s://ctx:" + S + "@ns/pod",       "https://h/a;jsessionid=" + S,
      "https://user:pa/" + S + "@host/x", "postgresql://pw:" + S + "@db/pods?sslmode=require"};
  const std::vector<std::string> outer = {"%s",
                                          "wss://h/exec/1/?pod=p&server=%s",
                                          "https://a/?next=%e",
                                          "https://a/?next=%E",
                                          "error: cannot reach '%s' (refused)",
                                          "{\"url\":\"%s\",\"a\":1}",
                                          "https://web.archive.org/web/1/%s",
                                          "GET %s HTTP/1.1",
                                          "see <%s>.",
                                          "(%s)"};
  for (const auto& in : inner) {
    for (const auto& out : outer) {
      std::string x = out;
      std::size_t p;
      if ((p = x.find("%E")) != std::string::npos)
        x.replace(p, 2, enc(enc(in)));
      else if ((p = x.find("%e")) != std::string::npos)
        x.replace(p, 2, enc(in));
      else
        x.replace(x.find("%s"), 2, in);
      CAPTURE(x);
      CHECK_FALSE(has(redact_text(x), "SECRET"));
      CHECK_FALSE(has(redact_url(x), "SECRET"));
    }
  }
}

TEST_CASE("shown_command: redacted, then cut to 200 bytes with the length noted") {
  CHECK(shown_command("curl https://u:pw1234@h/") == "curl https://***@h/");
  CHECK(shown_command("ls -la") == "ls -la");
  // Cut first, "curl https://u:PASSWORD…" would lose the '@' that marks the password.
  std::string cmd = "curl https://user:" + std::string(300, 'P') + "@h/x";
  std::string shown = shown_command(cmd);
  CHECK_FALSE(has(shown, "PPPP"));
  CHECK(shown == "curl https://***@h/x... (322 bytes)");  // the length is the command's
  std::string long_cmd(1000, 'y');
  CHECK(shown_command(long_cmd) == std::string(200, 'y') + "... (1000 bytes)");
}

TEST_CASE("shown_url: printable, redacted, then cut to 512 bytes") {
  CHECK(shown_url("wss://h/exec/1/?token=abc&pod=p") == "wss://h/exec/1/?token=***&pod=p");
  // A control byte cannot hide the next item from the redactor, nor reach a terminal.
  CHECK(shown_url("wss://h/?pod=x\0token=abc"s) == "wss://h/?pod=x?token=***");
  CHECK(shown_url("wss://h/\x1b[31m\n") == "wss://h/?[31m?");
  std::string huge = "wss://TOKEN" + std::string(600, 'a') + "@h/";
  std::string shown = shown_url(huge);
  CHECK_FALSE(has(shown, "TOKEN"));  // redacted whole before the cut
  CHECK(shown.size() <= 512 + 3);
  CHECK(shown_url("wss://h/" + std::string(1000, 'a')) == "wss://h/" + std::string(504, 'a') + "...");
}

TEST_SUITE_END();

// Unit tests for libpodwrangler/src/model.cpp: value types, JSON form, printing, and
// that nothing prints a token.
#include <doctest/doctest.h>
#include <podwrangler/model.hpp>
#include <podwrangler/providers/local.hpp>
#include <podwrangler/providers/plaintty.hpp>

#include <nlohmann/json.hpp>

#include <sstream>
#include <string>

using namespace pw;
using namespace std::string_literals;

namespace {

constexpr const char* kTok = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.SIGNATURE-xyz-987";

template <class T>
std::string printed(const T& v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

PodIdentity sample_identity() {
  PodIdentity id;
  id.pod_name = "my-app-deploy-abc12-xyz99";
  id.service = "my-app-deploy";
  id.deployment = "abc12";
  id.cluster = "45582";
  id.namespace_ = "prod";
  id.cols = 180;
  id.origin = "wss://k8s.provider.com";
  id.container = "app";
  return id;
}

bool has(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

}  // namespace

TEST_SUITE_BEGIN("model");

TEST_CASE("PodIdentity defaults") {
  PodIdentity id;
  CHECK(id.cols == DEFAULT_TERMINAL_COLS);
  CHECK(id.cols == 220);
  CHECK(id.pod_name.empty());
  CHECK(id.namespace_.empty());
}

TEST_CASE("PodIdentity::label()") {
  PodIdentity id;
  id.pod_name = "web-1";
  CHECK(id.label() == "web-1");
  id.service = "web-1";
  CHECK(id.label() == "web-1");
  id.service = "web";
  CHECK(id.label() == "web/web-1");
  CHECK(sample_identity().label() == "my-app-deploy/my-app-deploy-abc12-xyz99");
}

TEST_CASE("PodIdentity JSON has the documented keys") {
  nlohmann::json j = sample_identity();
  CHECK(j.at("pod_name") == "my-app-deploy-abc12-xyz99");
  CHECK(j.at("service") == "my-app-deploy");
  CHECK(j.at("deployment") == "abc12");
  CHECK(j.at("cluster") == "45582");
  CHECK(j.at("namespace") == "prod");
  CHECK_FALSE(j.contains("namespace_"));
  CHECK(j.at("cols") == 180);
  CHECK(j.at("origin") == "wss://k8s.provider.com");
  CHECK(j.at("container") == "app");

  PodIdentity no_ns;
  no_ns.pod_name = "p";
  nlohmann::json j2 = no_ns;
  CHECK(j2.at("namespace").is_null());
}

TEST_CASE("PodIdentity JSON round trip") {
  PodIdentity a = sample_identity();
  CHECK(nlohmann::json(a).get<PodIdentity>() == a);

  PodIdentity b;
  b.pod_name = "only-a-name";
  CHECK(nlohmann::json(b).get<PodIdentity>() == b);

  // Through text as well.
  auto text = nlohmann::json(a).dump();
  CHECK(nlohmann::json::parse(text).get<PodIdentity>() == a);

  // Odd bytes in fields survive a round trip through the json object.
  PodIdentity c = a;
  c.container = "ctr \"quoted\" \\ / \t";
  CHECK(nlohmann::json(c).get<PodIdentity>() == c);
}

TEST_CASE("PodIdentity from_json: defaults for missing keys, pod_name required") {
  auto id = nlohmann::json{{"pod_name", "x"}}.get<PodIdentity>();
  CHECK(id.pod_name == "x");
  CHECK(id.service.empty());
  CHECK(id.cols == DEFAULT_TERMINAL_COLS);
  CHECK(id.namespace_.empty());
  auto id2 = nlohmann::json{{"pod_name", "x"}, {"namespace", nullptr}}.get<PodIdentity>();
  CHECK(id2.namespace_.empty());
  CHECK_THROWS_AS(nlohmann::json::object().get<PodIdentity>(), nlohmann::json::exception);
  CHECK_THROWS_AS((nlohmann::json{{"pod_name", 5}}.get<PodIdentity>()), nlohmann::json::exception);
}

TEST_CASE("PodIdentity equality looks at every field") {
  PodIdentity a = sample_identity();
  PodIdentity b = a;
  CHECK(a == b);
  b.container = "other";
  CHECK_FALSE(a == b);
  b = a;
  b.cols = 80;
  CHECK_FALSE(a == b);
  b = a;
  b.namespace_ = "";
  CHECK_FALSE(a == b);
}

TEST_CASE("PodIdentity operator<< prints its JSON") {
  std::string s = printed(sample_identity());
  CHECK(nlohmann::json::parse(s) == nlohmann::json(sample_identity()));
}

TEST_CASE("TlsOptions JSON round trip and defaults") {
  TlsOptions t;
  CHECK_FALSE(t.insecure_skip_verify);
  CHECK(t.ca_file.empty());
  t.ca_file = "/etc/ssl/ca.pem";
  t.insecure_skip_verify = true;
  nlohmann::json j = t;
  CHECK(j.at("ca_file") == "/etc/ssl/ca.pem");
  CHECK(j.at("insecure_skip_verify") == true);
  CHECK(j.get<TlsOptions>() == t);
  CHECK(nlohmann::json::object().get<TlsOptions>() == TlsOptions{});
}

TEST_CASE("CommandResult::succeeded()") {
  CommandResult r;
  CHECK(r.exit_code == -1);
  CHECK_FALSE(r.succeeded());
  r.exit_code = 0;
  CHECK(r.succeeded());
  r.error = "connection lost";
  CHECK_FALSE(r.succeeded());
  r.error.reset();
  for (int code : {1, 2, 127, 255}) {
    r.exit_code = code;
    CHECK_FALSE(r.succeeded());
  }
}

TEST_CASE("CommandResult JSON form and round trip") {
  CommandResult r;
  r.command = "echo 'hi'";
  r.output = "hi\n";
  r.exit_code = 0;
  r.duration = 0.125;
  r.pod_label = "web/web-1";
  r.truncated = true;
  nlohmann::json j = r;
  CHECK(j.at("command") == "echo 'hi'");
  CHECK(j.at("output") == "hi\n");
  CHECK(j.at("exit_code") == 0);
  CHECK(j.at("error").is_null());
  CHECK(j.at("duration").get<double>() == doctest::Approx(0.125));
  CHECK(j.at("pod_label") == "web/web-1");
  CHECK(j.at("truncated") == true);
  CHECK(j.at("session_reset") == false);
  CHECK(j.at("succeeded") == true);

  auto back = j.get<CommandResult>();
  CHECK(back.command == r.command);
  CHECK(back.output == r.output);
  CHECK(back.exit_code == r.exit_code);
  CHECK_FALSE(back.error.has_value());
  CHECK(back.duration == doctest::Approx(r.duration));
  CHECK(back.pod_label == r.pod_label);
  CHECK(back.truncated == r.truncated);
  CHECK_FALSE(back.session_reset);
  CHECK(back.succeeded());
  CommandResult reset = r;
  reset.session_reset = true;
  CHECK(nlohmann::json(reset).get<CommandResult>().session_reset);

  CommandResult f;
  f.command = "false";
  f.exit_code = -1;
  f.error = "timed out";
  nlohmann::json jf = f;
  CHECK(jf.at("error") == "timed out");
  CHECK(jf.at("succeeded") == false);
  auto fb = nlohmann::json::parse(jf.dump()).get<CommandResult>();
  REQUIRE(fb.error.has_value());
  CHECK(*fb.error == "timed out");
  CHECK(fb.exit_code == -1);
  CHECK_FALSE(fb.succeeded());

  // from_json into an object that had an error clears it when the JSON has none.
  CommandResult reused = f;
  from_json(j, reused);
  CHECK_FALSE(reused.error.has_value());
  CHECK(reused.succeeded());
}

TEST_CASE("CommandResult from_json defaults and required command") {
  auto r = nlohmann::json{{"command", "ls"}}.get<CommandResult>();
  CHECK(r.command == "ls");
  CHECK(r.output.empty());
  CHECK(r.exit_code == -1);
  CHECK_FALSE(r.error.has_value());
  CHECK_FALSE(r.truncated);
  CHECK_THROWS_AS(nlohmann::json::object().get<CommandResult>(), nlohmann::json::exception);
}

TEST_CASE("dump_json and operator<< survive invalid UTF-8 in output") {
  CommandResult r;
  r.command = "cat /bin/true";
  r.output = "ok \xff\xfe\x80 end\x00!"s;
  r.exit_code = 0;
  std::string s;
  CHECK_NOTHROW(s = printed(r));
  CHECK(has(s, "ok "));
  CHECK(has(s, " end"));
  // Valid JSON comes out, with the bad bytes replaced by U+FFFD.
  nlohmann::json parsed;
  CHECK_NOTHROW(parsed = nlohmann::json::parse(s));
  CHECK(has(parsed.at("output").get<std::string>(), "\xEF\xBF\xBD"));
  CHECK(has(parsed.at("output").get<std::string>(), "end\0!"s));
  CHECK(dump_json(nlohmann::json(r), 2).find('\n') != std::string::npos);
  // Valid UTF-8 is kept as is.
  r.output = "h\xC3\xA9llo \xE2\x9C\x93";
  CHECK(nlohmann::json::parse(dump_json(nlohmann::json(r))).at("output") == r.output);
}

TEST_CASE("ConnectionSpec defaults") {
  ConnectionSpec s;
  CHECK(s.line_framed);
  CHECK(s.tty);
  CHECK_FALSE(s.is_binary_framed);
  CHECK(s.headers.empty());
}

TEST_CASE("ConnectionSpec JSON and operator<< hide the token in the URL and credential headers") {
  ConnectionSpec s;
  s.url = std::string("wss://k8s.provider.com/exec/45582/?token=") + kTok + "&cols=220&pod=my-app-deploy-abc12-xyz99";
  s.headers = {{"Authorization", std::string("Bearer ") + kTok},
               {"X-Auth-Token", kTok},
               {"Cookie", std::string("session=") + kTok},
               {"User-Agent", "podwrangler"}};
  s.subprotocols = {"tty"};
  s.tls.ca_file = "/ca.pem";
  nlohmann::json j = s;
  std::string dumped = j.dump();
  std::string out = printed(s);
  for (const std::string& text : {dumped, out}) {
    CAPTURE(text);
    CHECK_FALSE(has(text, kTok));
    CHECK_FALSE(has(text, "SIGNATURE-xyz-987"));
  }
  CHECK(j.at("url") == "wss://k8s.provider.com/exec/45582/?token=***&cols=220&pod=my-app-deploy-abc12-xyz99");
  CHECK(j.at("headers").at("Authorization") == "***");
  CHECK(j.at("headers").at("X-Auth-Token") == "***");
  CHECK(j.at("headers").at("Cookie") == "***");
  CHECK(j.at("headers").at("User-Agent") == "podwrangler");
  CHECK(j.at("subprotocols") == nlohmann::json::array({"tty"}));
  CHECK(j.at("tls").at("ca_file") == "/ca.pem");
  CHECK(j.at("line_framed") == true);
  CHECK(j.at("tty") == true);
  CHECK(j.at("is_binary_framed") == false);
  // The schema itself keeps the real URL for the transport.
  CHECK(has(s.url, kTok));
}

TEST_CASE("PodEndpoint JSON and operator<< print *** for the token") {
  PodEndpoint ep;
  ep.identity = sample_identity();
  ep.provider = std::make_shared<PlainTTYProvider>();
  ep.token = SecretString{kTok};
  nlohmann::json j = ep;
  CHECK(j.at("token") == "***");
  CHECK(j.at("provider") == "plaintty");
  CHECK(j.at("identity") == nlohmann::json(sample_identity()));
  CHECK_FALSE(has(j.dump(), kTok));
  std::string out = printed(ep);
  CHECK_FALSE(has(out, kTok));
  CHECK(has(out, "***"));
  CHECK(has(out, "my-app-deploy-abc12-xyz99"));

  PodEndpoint bare;
  bare.identity.pod_name = "x";
  nlohmann::json jb = bare;
  CHECK(jb.at("provider") == "");
  CHECK(jb.at("token") == "");

  PodEndpoint local;
  local.provider = std::make_shared<LocalProvider>();
  CHECK(nlohmann::json(local).at("provider") == "local");
}

TEST_CASE("endpoints parsed from a URL never print the token") {
  std::string url =
      std::string("wss://k8s.provider.com:8443/exec/45582/?token=") + kTok + "&cols=100&pod=my-app-deploy-abc12-xyz99";
  auto provider = std::make_shared<PlainTTYProvider>();
  auto [id, tok] = provider->parse_url(url);
  PodEndpoint ep{id, provider, tok};
  CHECK_FALSE(has(printed(ep), kTok));
  CHECK_FALSE(has(printed(ep.identity), kTok));
  ConnectionSpec schema = provider->build_connection_spec(id, tok);
  CHECK(has(schema.url, kTok));             // the transport needs it ...
  CHECK_FALSE(has(printed(schema), kTok));  // ... but it never prints
}

TEST_SUITE_END();

// A user-written provider plugs in without touching library code.
#include "../support/fixtures.hpp"

#include <doctest/doctest.h>
#include <podwrangler/blocking.hpp>
#include <podwrangler/errors.hpp>
#include <podwrangler/url.hpp>

#include <atomic>

using namespace pw;
using namespace pw::testing;

namespace {
// "myprov://127.0.0.1:PORT/<pod>?key=<token>" → wss://127.0.0.1:PORT/custom/<pod>?key=<token>
class MyProvider : public ProviderInterface {
 public:
  explicit MyProvider(std::string ca) : ca_(std::move(ca)) {}
  std::string name() const override { return "myprovider"; }
  std::pair<PodIdentity, SecretString> parse_url(std::string_view url) const override {
    Url u = parse_url_strict(url);
    if (u.scheme != "myprov") throw PodURLParseError("scheme", "expected myprov://", url);
    PodIdentity id;
    id.pod_name = u.path.substr(1);
    id.origin = "wss://" + u.authority();
    return {id, SecretString(u.param("key").value_or(""))};
  }
  ConnectionSpec build_connection_spec(const PodIdentity& id, const SecretString& token) const override {
    ConnectionSpec s;
    s.url = id.origin + "/custom/" + id.pod_name + "?key=" + token.reveal();
    s.tls.ca_file = ca_;
    return s;
  }
  Task<void> init_shell(Connection& conn, const ConnectionSpec&) const override {
    ++init_calls;
    co_await conn.write("stty -echo 2>/dev/null; PS1=''; export MY_PROVIDER=yes\n");
  }
  mutable std::atomic<int> init_calls{0};

 private:
  std::string ca_;
};
}  // namespace

TEST_CASE("a custom ProviderInterface runs commands through the same session API") {
  TempDir dir;
  TestPki pki = make_test_pki(dir);
  Websocketd w(dir, pty_shell_program(), &pki);
  auto p = std::make_shared<MyProvider>(pki.ca_cert);
  std::string url = "myprov://127.0.0.1:" + std::to_string(w.port()) + "/pod-a?key=k3y-abcdef";
  auto s = BlockingSession::from_url(url, p);
  s.connect();
  CHECK(p->init_calls == 1);
  auto r = s.run("echo $MY_PROVIDER");
  CHECK(r.output == "yes\n");
  CHECK(r.pod_label == "pod-a");

  ProviderCatalog::instance().add("myprov", p);  // for_url() maps a scheme to the provider of that name
  CHECK(ProviderCatalog::instance().for_url(url) == p);
  PodRegistry reg;
  reg.register_from_url("mine", url);
  auto rs = fan_out_sync(reg, {"mine"}, "echo via-registry");
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].output == "via-registry\n");
}

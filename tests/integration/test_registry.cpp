// PodRegistry: catalogue behaviour and a fan-out with dead, slow and unknown pods.
#include "../support/fixtures.hpp"

#include <doctest/doctest.h>
#include <podwrangler/blocking.hpp>
#include <podwrangler/errors.hpp>
#include <podwrangler/providers/plaintty.hpp>

#include <fstream>
#include <sys/stat.h>

using namespace pw;
using namespace pw::testing;

TEST_CASE("registry: register, duplicates, lookup, order, unregister") {
  PodRegistry reg;
  reg.register_from_url("web-2", "local://b");
  reg.register_from_url("web-1", "local://a");
  CHECK(reg.aliases() == std::vector<std::string>{"web-2", "web-1"});
  CHECK_THROWS_AS(reg.register_from_url("web-1", "local://c"), PodConfigValidationError);
  CHECK_THROWS_AS(reg.register_from_url("", "local://c"), PodConfigValidationError);
  CHECK_THROWS_AS(reg.register_from_url("bad", "ftp://x"), PodURLParseError);
  CHECK(reg.get("web-1").identity.pod_name == "a");
  CHECK_THROWS_AS(reg.get("nope"), PodNotFoundError);
  CHECK(reg.unregister("web-2"));
  CHECK_FALSE(reg.unregister("web-2"));
  CHECK(reg.aliases() == std::vector<std::string>{"web-1"});
}

TEST_CASE("fan-out: results in alias order; dead, slow and unknown pods fail alone") {
  TempDir dir;
  TestPki pki = make_test_pki(dir);
  Websocketd w(dir, pty_shell_program(), &pki);
  std::string slow_sh = dir.file("slowsh");
  {
    std::ofstream f(slow_sh);
    f << "#!/bin/sh\nexport PW_SLOW=1\nexec /bin/sh \"$@\"\n";
  }
  ::chmod(slow_sh.c_str(), 0755);
  TlsOptions tls;
  tls.ca_file = pki.ca_cert;
  auto p = std::make_shared<PlainTTYProvider>(220, tls);

  PodRegistry reg;
  std::vector<std::string> order;
  for (int i = 0; i < 6; ++i) {
    std::string alias = "ws-" + std::to_string(i);
    reg.register_from_url(alias, w.url("/exec/1/?token=t0k3n-xyz&pod=pod-" + std::to_string(i)), p);
    order.push_back(alias);
  }
  reg.register_from_url("dead", "wss://127.0.0.1:" + std::to_string(free_port()) + "/exec/1/?token=t0k3n-xyz&pod=d", p);
  reg.register_from_url("slow", "local://slow?shell=" + slow_sh);
  reg.register_from_url("local", "local://");
  order.insert(order.begin() + 2, "dead");
  order.insert(order.begin() + 4, "unknown-alias");
  order.push_back("slow");
  order.push_back("local");

  FanOutOptions fo;
  fo.width = 4;
  fo.timeout = 1.0;
  fo.session.connect_timeout = 3;
  auto rs = fan_out_sync(reg, order, "if [ \"$PW_SLOW\" = 1 ]; then sleep 10; fi; echo ok", fo);
  REQUIRE(rs.size() == order.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    const auto& a = order[i];
    CAPTURE(a);
    CAPTURE(rs[i]);
    if (a == "dead" || a == "unknown-alias" || a == "slow") {
      CHECK_FALSE(rs[i].succeeded());
      CHECK(rs[i].error.has_value());
    } else {
      CHECK(rs[i].succeeded());
      CHECK(rs[i].output == "ok\n");
    }
  }
  CHECK(rs[4].error->find("not registered") != std::string::npos);
  CHECK(rs[order.size() - 2].error->find("timed out") != std::string::npos);
  for (const auto& r : rs)
    if (r.error) CHECK(r.error->find("t0k3n-xyz") == std::string::npos);
}

// KubernetesProvider against the Kubernetes API test fixture (the same server the real
// kubectl and python3-kubernetes are checked against in tests/fixtures/k8s_fixture).
#include "../support/fixtures.hpp"
#include "session_suite.hpp"

#include <podwrangler/providers/kubernetes.hpp>
#include <podwrangler/url.hpp>

#include <utility>
#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <filesystem>
#include <thread>

using namespace pw;
using namespace pw::testing;

namespace {
constexpr const char* kToken = "k8s-fixture-token-5f4e3d";

struct Env {
  TempDir dir;
  TestPki pki = make_test_pki(dir);
  K8sFixture api{dir, pki, kToken, PW_K8S_FIXTURE_BIN};
};
Env& env() {
  static Env e;
  return e;
}
std::string pod_url(const std::string& pod, const std::string& token = kToken, const std::string& ca = "") {
  return "k8s://default/" + pod + "?server=" + percent_encode(env().api.server()) +
         "&ca=" + percent_encode(ca.empty() ? env().pki.ca_cert : ca) + "&token=" + token;
}
}  // namespace

TEST_CASE("kubernetes: the common session suite on a persistent shell (v5 exec)") {
  common_session_suite([](SessionOptions o) { return BlockingSession::from_url(pod_url("web-1"), {}, o); });
  output_cap_suite([](SessionOptions o) { return BlockingSession::from_url(pod_url("web-1"), {}, o); });
}

TEST_CASE("security: kubernetes: a timeout keeps the same shell (its children are signalled through an exec)") {
  timeout_keeps_shell_suite([](SessionOptions o) { return BlockingSession::from_url(pod_url("web-1"), {}, o); }, false);
}

TEST_CASE("security: kubernetes: a loop inside the shell cannot be interrupted: the shell is replaced, and says so") {
  auto s = BlockingSession::from_url(pod_url("web-1"));
  s.connect();
  s.run("X=1");
  CHECK(time_out(s, "while :; do :; done", false) < 5.0);
  CHECK(s.run("echo \"[$X]\"").output == "[]\n");
}

TEST_CASE("fidelity: kubernetes: all 256 byte values and 1 MiB of random bytes round-trip") {
  SessionOptions o;
  o.max_output_bytes = 2u << 20;
  auto s = BlockingSession::from_url(pod_url("web-1"), {}, o);
  s.connect();
  std::string fmt, all;
  for (int c = 0; c < 256; ++c) {
    char esc[8];
    std::snprintf(esc, sizeof esc, "\\%03o", c);
    fmt += esc;
    all.push_back(static_cast<char>(c));
  }
  CHECK(s.run("printf '" + fmt + "'").output == all);
  TempDir dir;
  s.run("head -c 1048576 /dev/urandom > " + dir.file("blob"));
  auto blob = s.run("cat " + dir.file("blob"), 60.0);
  CHECK(blob.output.size() == 1048576);
  CHECK_FALSE(blob.truncated);
  CHECK(blob.output == read_file(dir.file("blob")));
  CHECK(sha256_hex(blob.output) == sha256_hex(read_file(dir.file("blob"))));
}

TEST_CASE("security: kubernetes: every descriptor a session opens is close-on-exec") {
  auto before = inheritable_fds();
  auto s = BlockingSession::from_url(pod_url("web-1"));
  s.connect();
  CHECK(s.run("echo up").output == "up\n");
  CHECK(inheritable_fds() == before);
}

TEST_CASE("kubernetes: one-shot exec keeps stdout, stderr and the exit code apart") {
  KubernetesProvider p;
  auto [id, tok] = p.parse_url(pod_url("web-1"));
  std::vector<std::string> argv{"sh", "-c", "echo out; echo err >&2; exit 3"};
  ExecOutput o = block(p.exec_once(id, tok, argv, 10.0));
  CHECK(o.stdout_text == "out\n");
  CHECK(o.stderr_text == "err\n");
  CHECK(o.exit_code == 3);
  std::vector<std::string> t{"true"};
  CHECK(block(p.exec_once(id, tok, t, 10.0)).exit_code == 0);
  SUBCASE("stdin is sent and closed (v5 CLOSE)") {
    std::vector<std::string> cat{"cat"};
    ExecOutput c = block(p.exec_once(id, tok, cat, 10.0, std::string("hello\nworld")));
    CHECK(c.stdout_text == "hello\nworld");
    CHECK(c.exit_code == 0);
  }
  SUBCASE("10 MiB of output arrives complete") {
    std::vector<std::string> big{"sh", "-c", "head -c 10485760 /dev/zero | tr '\\0' a"};
    ExecOutput b = block(p.exec_once(id, tok, big, 60.0));
    CHECK(b.stdout_text.size() == 10485760);
    CHECK(b.exit_code == 0);
  }
  SUBCASE("tty: a terminal sized by the resize message (channel 4)") {
    std::vector<std::string> sz{"sh", "-c", "sleep 0.3; stty size; test -t 1"};
    ExecOutput term = block(p.exec_once(id, tok, sz, 10.0, std::nullopt, true));
    CHECK(term.stdout_text.find("50 220") != std::string::npos);
    CHECK(term.exit_code == 0);
  }
  SUBCASE("many small frames") {
    std::vector<std::string> many{"sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo $i; i=$((i+1)); done"};
    ExecOutput m = block(p.exec_once(id, tok, many, 30.0));
    CHECK(std::count(m.stdout_text.begin(), m.stdout_text.end(), '\n') == 3000);
  }
}

TEST_CASE("kubernetes: list_pods returns running pods filtered by label") {
  KubernetesOptions o;
  o.host = env().api.server();
  o.token = SecretString(kToken);
  o.tls.ca_file = env().pki.ca_cert;
  KubernetesProvider p(o);
  ListPodsOptions lo;
  lo.namespace_ = "default";
  lo.label_selector = "app=web";
  auto pods = block(p.list_pods(SecretString{}, lo));
  std::vector<std::string> names;
  for (const auto& id : pods) names.push_back(id.pod_name);
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"web-1", "web-2"});
  ListPodsOptions all;
  all.namespace_ = "default";
  for (const auto& id : block(p.list_pods(SecretString{}, all))) CHECK(id.pod_name != "done");  // Succeeded
}

TEST_CASE("kubernetes: wrong token, wrong CA, unknown pod are clear errors without secrets") {
  SUBCASE("wrong token → 401") {
    auto s = BlockingSession::from_url(pod_url("web-1", "wrong-token-123456"));
    try {
      s.connect();
      FAIL("connected");
    } catch (const PodConnectionError& e) {
      std::string m = e.what();
      CHECK(m.find("401") != std::string::npos);
      CHECK(m.find("wrong-token-123456") == std::string::npos);
    }
  }
  SUBCASE("wrong CA") {
    auto s = BlockingSession::from_url(pod_url("web-1", kToken, env().pki.other_ca_cert));
    CHECK_THROWS_WITH_AS(s.connect(), doctest::Contains("certificate verification failed"), PodConnectionError);
  }
  SUBCASE("unknown pod → 404") {
    auto s = BlockingSession::from_url(pod_url("nope"));
    CHECK_THROWS_WITH_AS(s.connect(), doctest::Contains("404"), PodConnectionError);
  }
}

TEST_CASE("kubernetes: the API server going away mid-command is an error, not a hang") {
  TempDir dir;
  K8sFixture api(dir, env().pki, kToken, PW_K8S_FIXTURE_BIN);
  std::string url = "k8s://default/web-1?server=" + percent_encode(api.server()) +
                    "&ca=" + percent_encode(env().pki.ca_cert) + "&token=" + kToken;
  auto s = BlockingSession::from_url(url);
  s.connect();
  CHECK(s.run("echo up").output == "up\n");
  // The fixture's pods are local processes: the command marks its start in our directory,
  // and the API server is killed once it runs.
  const std::string started = dir.file("started");
  std::thread killer([&] {
    CHECK(wait_until([&] { return std::filesystem::exists(started); }));
    api.kill_now();
  });
  auto t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(s.run("touch '" + started + "'; sleep 20", 30.0), PodConnectionError);
  killer.join();
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
}

TEST_CASE("kubernetes: v4 when the client offers only v4 (exit codes still from channel 3)") {
  KubernetesOptions o;
  o.subprotocols = {"v4.channel.k8s.io"};
  auto p = std::make_shared<KubernetesProvider>(o);
  auto [id, tok] = p->parse_url(pod_url("web-2"));
  std::vector<std::string> argv{"sh", "-c", "echo v4; exit 5"};
  ExecOutput out = block(p->exec_once(id, tok, argv, 10.0));
  CHECK(out.stdout_text == "v4\n");
  CHECK(out.exit_code == 5);
  auto s = BlockingSession::from_url(pod_url("web-2"), p);
  s.connect();
  auto r = s.run("echo $PW_FIXTURE_POD; exit_code=9; (exit $exit_code)");
  CHECK(r.output == "default/web-2\n");  // the fixture sets PW_FIXTURE_POD=<ns>/<pod>
  CHECK(r.exit_code == 9);
  KubernetesOptions bad;
  bad.subprotocols = {"channel.k8s.io"};
  CHECK_THROWS_AS(KubernetesProvider{bad}, PodConfigValidationError);
}

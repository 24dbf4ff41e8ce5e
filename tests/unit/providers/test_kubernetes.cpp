// KubernetesProvider: URL form, access resolution (kubeconfig, in-cluster), exec target,
// channel-3 status decoding, namespace detection.
#include <doctest/doctest.h>
#include <podwrangler/errors.hpp>
#include <podwrangler/providers/kubernetes.hpp>

#include <utility>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace pw;

namespace {
struct TmpDir {
  std::filesystem::path p;
  TmpDir() {
    std::string t = "/tmp/pwk8s.XXXXXX";
    p = ::mkdtemp(t.data());
  }
  ~TmpDir() { std::filesystem::remove_all(p); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(p / name) << text;
    return (p / name).string();
  }
};

const char* kKubeconfig = R"(apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: c-dev
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority: ca.crt
- name: c-prod
  cluster:
    server: https://prod.example.com
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
contexts:
- name: dev
  context: {cluster: c-dev, user: u-dev, namespace: team-a}
- name: prod
  context: {cluster: c-prod, user: u-prod}
users:
- name: u-dev
  user: {token: dev-token-123456}
- name: u-prod
  user: {token: prod-token-abcdef}
)";

std::string ns_of(const KubernetesProvider& p, const PodIdentity& id) {
  boost::asio::io_context io;
  struct Dummy : Connection {
    Task<void> connect(std::chrono::milliseconds) override { co_return; }
    Task<void> write(std::string_view) override { co_return; }
    Task<bool> read(std::string&) override { co_return false; }
    void close() noexcept override {}
    bool is_tty() const noexcept override { return false; }
    std::string describe() const override { return "dummy"; }
  } conn;
  ConnectionSpec schema;
  auto f = boost::asio::co_spawn(io, p.detect_namespace(conn, id, schema), boost::asio::use_future);
  io.run();
  return f.get();
}
}  // namespace

TEST_CASE("k8s URL: context, namespace, pod, container; token stays secret") {
  KubernetesProvider p;
  auto [id, tok] = p.parse_url("k8s://prod@shop/web-7d9f-abc/nginx?token=t0k3n-secret&server=https://10.1.2.3:6443");
  CHECK(id.cluster == "prod");
  CHECK(id.namespace_ == "shop");
  CHECK(id.pod_name == "web-7d9f-abc");
  CHECK(id.container == "nginx");
  CHECK(tok.reveal() == "t0k3n-secret");
  CHECK(id.origin.find("t0k3n-secret") == std::string::npos);
  auto [id2, tok2] = p.parse_url("k8s://default/web-1");
  CHECK(id2.container.empty());
  CHECK(tok2.empty());
  for (const char* bad : {"k8s://", "k8s://Default/web", "k8s://ns", "k8s://ns/", "k8s://ns/Web_1",
                          "k8s://ns/web?color=red", "http://ns/web"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(p.parse_url(bad), PodURLParseError);
  }
  try {
    p.parse_url("k8s://ns/BAD?token=t0k3n-secret");
    FAIL("parsed");
  } catch (const PodURLParseError& e) {
    CHECK(e.part() == "pod");
    CHECK(std::string(e.what()).find("t0k3n-secret") == std::string::npos);
  }
}

TEST_CASE("k8s exec target: one command= per argv element, container, stdin, no stderr with tty") {
  std::vector<std::string> argv{"sh", "-c", "echo a b&c"};
  std::string t = k8s::exec_path("ns", "pod", "c1", argv, true, false);
  CHECK(t ==
        "/api/v1/namespaces/ns/pods/pod/exec?command=sh&command=-c&command=echo%20a%20b%26c&container=c1"
        "&stdin=true&stdout=true&stderr=true");
  CHECK(k8s::exec_path("ns", "pod", "", {"true"}, false, true) ==
        "/api/v1/namespaces/ns/pods/pod/exec?command=true&stdout=true&tty=true");
}

TEST_CASE("k8s resize message") {
  CHECK(k8s::resize_message(120, 40) == std::string("\x04") + R"({"Width":120,"Height":40})");
}

TEST_CASE("k8s channel-3 status") {
  CHECK(k8s::exit_code_from_status(R"({"metadata":{},"status":"Success"})") == 0);
  CHECK(
      k8s::exit_code_from_status(
          R"({"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}})") ==
      3);
  CHECK_THROWS_WITH_AS(k8s::exit_code_from_status(R"({"status":"Failure","reason":"InternalError","message":"boom"})"),
                       doctest::Contains("boom"), PodConnectionError);
  CHECK_THROWS_AS(k8s::exit_code_from_status("not json"), PodConnectionError);
  CHECK_THROWS_AS(k8s::exit_code_from_status(R"({"status":"Failure","reason":"NonZeroExitCode"})"), PodConnectionError);
}

TEST_CASE("kubeconfig: current context, named context, relative CA, CA data, token") {
  TmpDir d;
  std::string path = d.write("config", kKubeconfig);
  KubeAccess dev = KubernetesProvider::load_kubeconfig(path, "");
  CHECK(dev.context == "dev");
  CHECK(dev.server == "https://127.0.0.1:6443");
  CHECK(dev.tls.ca_file == (d.p / "ca.crt").string());
  CHECK(dev.token.reveal() == "dev-token-123456");
  CHECK(dev.namespace_ == "team-a");
  KubeAccess prod = KubernetesProvider::load_kubeconfig(path, "prod");
  CHECK(prod.server == "https://prod.example.com");
  CHECK(prod.tls.ca_pem == "-----BEGIN CERTIFICATE-----\n");
  CHECK(prod.token.reveal() == "prod-token-abcdef");
  CHECK_THROWS_WITH_AS(KubernetesProvider::load_kubeconfig(path, "nope"), doctest::Contains("nope"),
                       PodConfigValidationError);
  CHECK_THROWS_AS(KubernetesProvider::load_kubeconfig(d.write("bad", "clusters: [\n  - {"), ""),
                  PodConfigValidationError);
  CHECK_THROWS_AS(KubernetesProvider::load_kubeconfig((d.p / "missing").string(), ""), PodConfigValidationError);

  // A pod URL naming the kubeconfig and a context resolves through it.
  KubernetesProvider p;
  auto [id, tok] = p.parse_url("k8s://prod@shop/web-1?kubeconfig=" + path);
  KubeAccess a = p.access_for(id, tok);
  CHECK(a.server == "https://prod.example.com");
  ConnectionSpec s = p.build_connection_spec(id, tok);
  CHECK(s.url.starts_with("wss://prod.example.com/api/v1/namespaces/shop/pods/web-1/exec?command=%2Fbin%2Fsh"));
  CHECK(s.subprotocols == std::vector<std::string>{"v5.channel.k8s.io", "v4.channel.k8s.io"});
  CHECK(s.is_binary_framed);
  REQUIRE(s.headers.size() == 1);
  CHECK(s.headers[0].second == "Bearer prod-token-abcdef");
  CHECK(dump_json(s).find("prod-token-abcdef") == std::string::npos);
}

TEST_CASE("explicit server: the (host, use_tls, shell) constructor and TLS verification on by default") {
  KubernetesOptions o;
  o.host = "k8s.example.com:6443";
  o.token = SecretString("opt-token-000000");
  KubernetesProvider p(o);
  auto [id, tok] = p.parse_url("k8s://default/web-1");
  KubeAccess a = p.access_for(id, tok);
  CHECK(a.server == "https://k8s.example.com:6443");
  CHECK_FALSE(a.tls.insecure_skip_verify);
  CHECK(a.token.reveal() == "opt-token-000000");
  KubernetesProvider by_host("k8s.example.com:6443", true, {"/bin/sh"});
  auto [id2, tok2] = by_host.parse_url("k8s://default/web-1?token=url-token-1111");
  CHECK(by_host.access_for(id2, tok2).token.reveal() == "url-token-1111");
  auto [id3, tok3] = by_host.parse_url("k8s://default/web-1");
  CHECK_THROWS_WITH_AS(by_host.access_for(id3, tok3), doctest::Contains("token"), PodConfigValidationError);
}

TEST_CASE("in-cluster config and namespace detection") {
  TmpDir d;
  d.write("token", "sa-token-xyz987\n");
  d.write("ca.crt", "PEM");
  d.write("namespace", "kube-team\n");
  ::setenv("PODWRANGLER_SERVICEACCOUNT_DIR", d.p.c_str(), 1);
  ::setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  ::unsetenv("POD_NAMESPACE");
  KubeAccess a = KubernetesProvider::in_cluster_config();
  CHECK(a.server == "https://10.96.0.1:443");
  CHECK(a.token.reveal() == "sa-token-xyz987");
  CHECK(a.tls.ca_file == (d.p / "ca.crt").string());
  CHECK(a.namespace_ == "kube-team");

  KubernetesProvider p;
  PodIdentity id;
  id.pod_name = "x";
  CHECK(ns_of(p, id) == "kube-team");  // the service-account file
  ::setenv("POD_NAMESPACE", "from-env", 1);
  CHECK(ns_of(p, id) == "from-env");  // POD_NAMESPACE wins over the file
  id.namespace_ = "explicit";
  CHECK(ns_of(p, id) == "explicit");  // the identity wins over both
  ::unsetenv("POD_NAMESPACE");
  ::setenv("PODWRANGLER_SERVICEACCOUNT_DIR", "/nonexistent", 1);
  id.namespace_.clear();
  CHECK(ns_of(p, id) == "default");
  KubernetesOptions strict;
  strict.require_namespace_detection = true;
  CHECK_THROWS_AS(ns_of(KubernetesProvider(strict), id), NamespaceDetectionError);
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  CHECK_THROWS_AS(KubernetesProvider::in_cluster_config(), PodConfigValidationError);
  ::unsetenv("PODWRANGLER_SERVICEACCOUNT_DIR");
  ::unsetenv("KUBERNETES_SERVICE_PORT");
}

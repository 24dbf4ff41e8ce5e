// KubernetesProvider::list_pods: the REST side (cpp-httplib, in its own translation unit).
#include <podwrangler/errors.hpp>
#include <podwrangler/providers/kubernetes.hpp>
#include <podwrangler/sigpipe.hpp>
#include <podwrangler/url.hpp>

#include <utility>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <csignal>
#include <fcntl.h>
#include <pthread.h>

namespace pw {

namespace {

X509_STORE* store_from_pem(const std::string& pem) {
  X509_STORE* store = X509_STORE_new();
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(store, cert);
    X509_free(cert);
  }
  BIO_free(bio);
  return store;
}

bool running(const nlohmann::json& pod) {
  if (!pod.contains("status") || pod["status"].value("phase", "") != "Running") return false;
  if (pod.contains("metadata") && pod["metadata"].contains("deletionTimestamp") &&
      !pod["metadata"]["deletionTimestamp"].is_null())
    return false;
  const auto& st = pod["status"];
  if (!st.contains("containerStatuses")) return true;  // servers that do not report them
  for (const auto& cs : st["containerStatuses"])
    if (cs.contains("state") && cs["state"].contains("running")) return true;
  return false;
}

// cpp-httplib blocks: its calls run here, never on the caller's io_context thread.
// OpenSSL is initialised first so that its atexit cleanup runs after the pool has joined.
// cpp-httplib writes with send() without MSG_NOSIGNAL, and through OpenSSL's socket BIO: a
// write to an API server that has reset the connection would raise SIGPIPE and kill a host
// that does not ignore it. These threads are the library's own, so they are started with
// SIGPIPE blocked (a thread inherits its creator's mask): such a write fails with EPIPE,
// and the host's signal dispositions stay as they are.
boost::asio::thread_pool& blocking_pool() {
  static bool ssl_ready = OPENSSL_init_ssl(0, nullptr) == 1;
  static boost::asio::thread_pool pool = [] {
    ScopedSigpipeBlock blocked;
    return boost::asio::thread_pool(2);
  }();
  (void)ssl_ready;
  return pool;
}

// cpp-httplib 0.11 opens its sockets without SOCK_CLOEXEC; this hook runs right after
// socket() (a narrow window, where the library's own sockets have none: cloexec.hpp).
void close_on_exec(socket_t sock) { ::fcntl(sock, F_SETFD, FD_CLOEXEC); }

}  // namespace

Task<std::vector<PodIdentity>> KubernetesProvider::list_pods(const SecretString& token, ListPodsOptions options) const {
  auto blocking = [this, &token, &options]() -> Task<std::vector<PodIdentity>> {
    co_return list_pods_blocking(token, options);
  };
  co_return co_await boost::asio::co_spawn(blocking_pool().get_executor(), blocking(),
                                           boost::asio::use_awaitable_t<Executor>{});
}

std::vector<PodIdentity> KubernetesProvider::list_pods_blocking(const SecretString& token,
                                                                const ListPodsOptions& options) const {
  // Which API server: a throwaway identity resolves access like a pod URL would.
  PodIdentity probe;
  probe.pod_name = "list";
  probe.namespace_ = options.namespace_.empty() ? "default" : options.namespace_;
  KubeAccess a = access_for(probe, token);
  std::string ns = options.namespace_.empty() ? (a.namespace_.empty() ? "default" : a.namespace_) : options.namespace_;
  Url su = parse_url_strict(a.server);
  int port = su.port.empty() ? (su.scheme == "https" ? 443 : 80) : std::stoi(su.port);
  std::string path = ns == "*" ? "/api/v1/pods" : "/api/v1/namespaces/" + percent_encode(ns) + "/pods";
  std::string q;
  if (!options.label_selector.empty()) q += "labelSelector=" + percent_encode(options.label_selector);
  if (!options.field_selector.empty())
    q += std::string(q.empty() ? "" : "&") + "fieldSelector=" + percent_encode(options.field_selector);
  if (!q.empty()) path += "?" + q;

  auto check = [&](httplib::Result res) -> std::string {
    if (!res) throw PodConnectionError("cannot list pods at " + a.server + ": " + httplib::to_string(res.error()));
    if (res->status == 401 || res->status == 403)
      throw PodConnectionError("API server at " + a.server + " refused the token (HTTP " + std::to_string(res->status) +
                               ")");
    if (res->status != 200)
      throw PodConnectionError("listing pods at " + a.server + " failed: HTTP " + std::to_string(res->status));
    return std::move(res->body);
  };
  std::string body;
  if (su.scheme == "https") {
    httplib::SSLClient cli(su.host, port);
    cli.set_socket_options(close_on_exec);
    cli.set_connection_timeout(15);
    cli.set_read_timeout(30);
    cli.set_bearer_token_auth(a.token.reveal());
    if (a.tls.insecure_skip_verify) {
      cli.enable_server_certificate_verification(false);
    } else {
      cli.enable_server_certificate_verification(true);
      if (!a.tls.ca_file.empty())
        cli.set_ca_cert_path(a.tls.ca_file);
      else if (!a.tls.ca_pem.empty())
        cli.set_ca_cert_store(store_from_pem(a.tls.ca_pem));
    }
    body = check(cli.Get(path));
  } else {
    httplib::Client cli(su.host, port);
    cli.set_socket_options(close_on_exec);
    cli.set_connection_timeout(15);
    cli.set_bearer_token_auth(a.token.reveal());
    body = check(cli.Get(path));
  }
  auto j = nlohmann::json::parse(body, nullptr, false);
  std::vector<PodIdentity> out;
  if (!j.is_object() || !j.contains("items")) return out;
  for (const auto& pod : j["items"]) {
    if (!running(pod)) continue;
    const auto& md = pod["metadata"];
    std::string name = md.value("name", "");
    std::string pns = md.value("namespace", ns);
    std::string container;
    if (pod.contains("spec") && pod["spec"].contains("containers") && !pod["spec"]["containers"].empty())
      container = pod["spec"]["containers"][0].value("name", "");
    std::string url = "k8s://" + pns + "/" + name + (container.empty() ? "" : "/" + container);
    if (!a.context.empty()) url = "k8s://" + percent_encode(a.context) + "@" + url.substr(6);
    try {
      auto [id, tok] = parse_url(url);
      out.push_back(std::move(id));
    } catch (const PodURLParseError&) {
      // a name our URL form cannot carry: skip it rather than fail the listing
    }
  }
  return out;
}

}  // namespace pw

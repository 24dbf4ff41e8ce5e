#include <podwrangler/base64.hpp>
#include <podwrangler/errors.hpp>
#include <podwrangler/providers/kubernetes.hpp>
#include <podwrangler/redact.hpp>
#include <podwrangler/url.hpp>

#include <utility>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <unistd.h>

namespace pw {

namespace {

constexpr const char* kV5 = "v5.channel.k8s.io";
constexpr const char* kV4 = "v4.channel.k8s.io";

// Reads a whole file through a close-on-exec descriptor (an ifstream's is not: it would
// leak into a process another thread forks meanwhile). False if it cannot be read.
bool read_whole_file(const std::string& path, std::string& out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  char buf[16384];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return true;
}

std::string read_text(const std::string& path) {
  std::string s;
  if (!read_whole_file(path, s)) return {};
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string base64_field(const std::string& in, const char* field) {
  auto bytes = pw::base64_decode(in);
  if (!bytes) throw PodConfigValidationError(field, "not valid base64");
  return std::move(*bytes);
}

bool dns_label(std::string_view s, std::size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s)
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-' ||
          c == '.'))
      return false;
  return true;
}

std::string to_ws_url(std::string server) {
  if (server.starts_with("https://")) return "wss://" + server.substr(8);
  if (server.starts_with("http://")) return "ws://" + server.substr(7);
  return server;
}

std::string normalize_server(std::string host, bool use_tls) {
  while (!host.empty() && host.back() == '/') host.pop_back();
  if (host.find("://") == std::string::npos) host = (use_tls ? "https://" : "http://") + host;
  return host;
}

// Wraps a WebSocket connection speaking the channel protocol: stdin frames get the 0x00
// prefix; stdout (1) and stderr (2) payloads are merged into the byte stream; channel 3
// (status) is collected.
class K8sExecConnection final : public Connection {
 public:
  explicit K8sExecConnection(std::unique_ptr<Connection> inner) : inner_(std::move(inner)) {}

  Task<void> connect(std::chrono::milliseconds timeout) override {
    co_await inner_->connect(timeout);
    proto_ = inner_->subprotocol();
    if (proto_ != kV5 && proto_ != kV4)
      throw PodConnectionError("API server at " + inner_->describe() + " chose no channel protocol (v5/v4)");
  }
  Task<void> write(std::string_view data) override {
    std::string frame;
    frame.reserve(data.size() + 1);
    frame.push_back('\0');
    frame.append(data);
    co_await inner_->write(frame);
  }
  Task<bool> read(std::string& out) override {
    std::string msg;
    while (true) {
      msg.clear();
      if (!co_await inner_->read(msg)) co_return false;
      if (msg.empty()) continue;
      auto ch = static_cast<unsigned char>(msg[0]);
      if (ch == 1 || ch == 2) {
        if (msg.size() > 1) {
          out.append(msg, 1);
          co_return true;
        }
      } else if (ch == 3) {
        status_.append(msg, 1);
      }
    }
  }
  void close() noexcept override { inner_->close(); }
  std::optional<int> exit_status() override {
    if (status_.empty()) return std::nullopt;
    try {
      return k8s::exit_code_from_status(status_);
    } catch (const PodClientError&) {
      return std::nullopt;
    }
  }
  bool is_tty() const noexcept override { return false; }
  std::string describe() const override { return inner_->describe(); }
  std::string subprotocol() const override { return proto_; }

 private:
  std::unique_ptr<Connection> inner_;
  std::string proto_;
  std::string status_;
};

struct UrlParts {
  std::string context, ns, pod, container;
  std::vector<std::pair<std::string, std::string>> query;  // without token
  std::string token;
};

UrlParts split_k8s_url(std::string_view url) {
  Url u = parse_url_strict(url);
  if (u.scheme != "k8s" && u.scheme != "kubernetes")
    throw PodURLParseError("scheme", "expected k8s://[context@]namespace/pod[/container]", url);
  UrlParts p;
  p.context = percent_decode(u.userinfo, false);
  p.ns = u.host;
  if (!dns_label(p.ns, 63)) throw PodURLParseError("namespace", "expected a DNS label ([a-z0-9-])", url);
  if (!u.port.empty()) throw PodURLParseError("namespace", "k8s:// takes no port", url);
  std::string_view path = u.path;
  if (path.empty() || path == "/") throw PodURLParseError("pod", "missing /<pod>", url);
  path.remove_prefix(1);
  std::size_t slash = path.find('/');
  p.pod = std::string(path.substr(0, slash));
  if (slash != std::string_view::npos) p.container = std::string(path.substr(slash + 1));
  if (!dns_label(p.pod, 253)) throw PodURLParseError("pod", "expected a pod name ([a-z0-9.-])", url);
  if (!p.container.empty() && !dns_label(p.container, 63))
    throw PodURLParseError("container", "expected a container name ([a-z0-9-])", url);
  for (auto& [k, v] : u.query) {
    if (k == "token") {
      p.token = v;
      continue;
    }
    if (k != "kubeconfig" && k != "server" && k != "ca" && k != "insecure" && k != "incluster")
      throw PodURLParseError("query",
                             "unknown parameter '" + k + "' (kubeconfig, server, token, ca, insecure, incluster)", url);
    p.query.emplace_back(k, v);
  }
  return p;
}

std::string param(const UrlParts& p, const std::string& k) {
  for (const auto& [key, v] : p.query)
    if (key == k) return v;
  return {};
}

}  // namespace

namespace k8s {

std::string exec_path(const std::string& ns, const std::string& pod, const std::string& container,
                      const std::vector<std::string>& argv, bool stdin_on, bool tty) {
  std::string t = "/api/v1/namespaces/" + percent_encode(ns) + "/pods/" + percent_encode(pod) + "/exec?";
  for (const auto& a : argv) t += "command=" + percent_encode(a) + "&";
  if (!container.empty()) t += "container=" + percent_encode(container) + "&";
  if (stdin_on) t += "stdin=true&";
  t += "stdout=true";
  if (tty)
    t += "&tty=true";
  else
    t += "&stderr=true";
  return t;
}

std::string resize_message(int cols, int rows) {
  return std::string(1, '\x04') + R"({"Width":)" + std::to_string(cols) + R"(,"Height":)" + std::to_string(rows) + "}";
}

int exit_code_from_status(const std::string& status_json) {
  auto j = nlohmann::json::parse(status_json, nullptr, false);
  if (!j.is_object()) throw PodConnectionError("exec ended without a readable status");
  std::string status = j.value("status", "");
  if (status == "Success") return 0;
  std::string reason = j.value("reason", "");
  if (reason == "NonZeroExitCode" && j.contains("details") && j["details"].contains("causes")) {
    for (const auto& c : j["details"]["causes"]) {
      if (c.value("reason", "") == "ExitCode") {
        std::string m = c.value("message", "");
        if (!m.empty() && m.size() < 4 && m.find_first_not_of("0123456789") == std::string::npos) return std::stoi(m);
      }
    }
  }
  throw PodConnectionError("exec failed: " +
                           j.value("message", status.empty() ? std::string("unknown status") : status));
}

}  // namespace k8s

KubernetesProvider::KubernetesProvider(KubernetesOptions options) : opts_(std::move(options)) {
  if (opts_.shell_cmd.empty()) throw PodConfigValidationError("shell_cmd", "must not be empty");
  if (opts_.subprotocols.empty()) throw PodConfigValidationError("subprotocols", "must not be empty");
  for (const auto& sp : opts_.subprotocols)
    if (sp != kV5 && sp != kV4)
      throw PodConfigValidationError("subprotocols",
                                     "'" + sp + "' is not supported (v5.channel.k8s.io, v4.channel.k8s.io)");
}

KubernetesProvider::KubernetesProvider(std::string host, bool use_tls, std::vector<std::string> shell_cmd)
    : KubernetesProvider([&] {
        KubernetesOptions o;
        o.host = std::move(host);
        o.use_tls = use_tls;
        o.shell_cmd = std::move(shell_cmd);
        return o;
      }()) {}

std::pair<PodIdentity, SecretString> KubernetesProvider::parse_url(std::string_view url) const {
  UrlParts p = split_k8s_url(url);
  PodIdentity id;
  id.pod_name = p.pod;
  id.namespace_ = p.ns;
  id.container = p.container;
  id.cluster = p.context;
  id.service = p.ns;
  std::string origin = "k8s://" + (p.context.empty() ? "" : percent_encode(p.context) + "@") + p.ns + "/" + p.pod +
                       (p.container.empty() ? "" : "/" + p.container);
  char sep = '?';
  for (const auto& [k, v] : p.query) {
    origin += sep + k + "=" + percent_encode(v);
    sep = '&';
  }
  id.origin = origin;
  return {std::move(id), SecretString(p.token)};
}

std::string KubernetesProvider::namespace_from_environment() {
  if (const char* ns = std::getenv("POD_NAMESPACE"); ns && *ns) return ns;
  const char* dir = std::getenv("PODWRANGLER_SERVICEACCOUNT_DIR");
  std::string base = dir && *dir ? dir : "/var/run/secrets/kubernetes.io/serviceaccount";
  return read_text(base + "/namespace");
}

KubeAccess KubernetesProvider::in_cluster_config() {
  const char* dir = std::getenv("PODWRANGLER_SERVICEACCOUNT_DIR");
  std::string base = dir && *dir ? dir : "/var/run/secrets/kubernetes.io/serviceaccount";
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !*host)
    throw PodConfigValidationError("incluster", "KUBERNETES_SERVICE_HOST is not set (not running in a pod?)");
  KubeAccess a;
  std::string h = host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";
  a.server = "https://" + h + ":" + (port && *port ? port : "443");
  std::string token = read_text(base + "/token");
  if (token.empty()) throw PodConfigValidationError("incluster", "no service-account token in " + base);
  a.token = SecretString(token);
  a.tls.ca_file = base + "/ca.crt";
  a.namespace_ = read_text(base + "/namespace");
  return a;
}

KubeAccess KubernetesProvider::load_kubeconfig(const std::string& path, const std::string& context) {
  YAML::Node root;
  std::string text;
  if (!read_whole_file(path, text)) throw PodConfigValidationError("kubeconfig", "cannot read '" + path + "'");
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw PodConfigValidationError("kubeconfig",
                                   "'" + path + "' line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  // (A default YAML::Node is a defined null node, hence std::optional for "not found".)
  auto find_named = [&](const char* list, const std::string& name, const char* inner) -> std::optional<YAML::Node> {
    YAML::Node items = root[list];
    if (items && items.IsSequence())
      for (const auto& it : items)
        if (it["name"] && it["name"].as<std::string>() == name && it[inner] && it[inner].IsMap()) return it[inner];
    return std::nullopt;
  };
  try {
    std::string ctx = context.empty() && root["current-context"] ? root["current-context"].as<std::string>() : context;
    if (ctx.empty()) throw PodConfigValidationError("kubeconfig", "'" + path + "' has no current-context");
    auto cn = find_named("contexts", ctx, "context");
    if (!cn) throw PodConfigValidationError("kubeconfig", "context '" + ctx + "' not found in '" + path + "'");
    const YAML::Node& c = *cn;
    KubeAccess a;
    a.context = ctx;
    if (c["namespace"]) a.namespace_ = c["namespace"].as<std::string>();
    std::string cluster_name = c["cluster"] ? c["cluster"].as<std::string>() : "";
    std::string user_name = c["user"] ? c["user"].as<std::string>() : "";
    auto cln = find_named("clusters", cluster_name, "cluster");
    if (!cln || !(*cln)["server"])
      throw PodConfigValidationError("kubeconfig", "cluster '" + cluster_name + "' has no server");
    const YAML::Node& cl = *cln;
    a.server = cl["server"].as<std::string>();
    std::filesystem::path dir = std::filesystem::path(path).parent_path();
    if (cl["certificate-authority-data"])
      a.tls.ca_pem = base64_field(cl["certificate-authority-data"].as<std::string>(), "certificate-authority-data");
    else if (cl["certificate-authority"]) {
      std::filesystem::path ca = cl["certificate-authority"].as<std::string>();
      a.tls.ca_file = (ca.is_relative() ? dir / ca : ca).string();
    }
    if (cl["insecure-skip-tls-verify"] && cl["insecure-skip-tls-verify"].as<bool>()) a.tls.insecure_skip_verify = true;
    auto un = find_named("users", user_name, "user");
    YAML::Node u = un ? *un : YAML::Node(YAML::NodeType::Map);
    if (u["token"]) {
      a.token = SecretString(u["token"].as<std::string>());
    } else if (u["tokenFile"]) {
      a.token = SecretString(read_text(u["tokenFile"].as<std::string>()));
    } else if ((u["client-certificate"] || u["client-certificate-data"] || u["exec"] || u["auth-provider"])) {
      throw PodConfigValidationError("kubeconfig", "user '" + user_name +
                                                       "' authenticates with client certificates or a plugin; "
                                                       "only bearer tokens are supported");
    }
    return a;
  } catch (const YAML::Exception& e) {
    throw PodConfigValidationError("kubeconfig", "'" + path + "': " + e.msg);
  }
}

KubeAccess KubernetesProvider::access_for(const PodIdentity& identity, const SecretString& token) const {
  UrlParts p = identity.origin.empty()
                   ? UrlParts{identity.cluster, identity.namespace_, identity.pod_name, identity.container, {}, {}}
                   : split_k8s_url(identity.origin);
  KubeAccess a;
  std::string server = param(p, "server");
  if (param(p, "incluster") == "1" || param(p, "incluster") == "true") {
    a = in_cluster_config();
  } else if (!server.empty() || !opts_.host.empty()) {
    a.server = normalize_server(server.empty() ? opts_.host : server, opts_.use_tls);
    a.tls = opts_.tls;
    a.token = opts_.token;
  } else {
    std::string path = param(p, "kubeconfig");
    if (path.empty()) path = opts_.kubeconfig;
    if (path.empty()) {
      const char* kc = std::getenv("KUBECONFIG");
      if (kc && *kc) path = std::string(kc).substr(0, std::string(kc).find(':'));
    }
    if (path.empty()) {
      const char* home = std::getenv("HOME");
      path = std::string(home ? home : "") + "/.kube/config";
    }
    a = load_kubeconfig(path, p.context);
    if (!opts_.tls.ca_file.empty() || !opts_.tls.ca_pem.empty()) a.tls = opts_.tls;
    if (opts_.tls.insecure_skip_verify) a.tls.insecure_skip_verify = true;
  }
  if (std::string ca = param(p, "ca"); !ca.empty()) a.tls.ca_file = ca;
  if (std::string ins = param(p, "insecure"); ins == "1" || ins == "true") a.tls.insecure_skip_verify = true;
  if (!token.empty()) a.token = token;
  if (a.token.empty())
    throw PodConfigValidationError("token", "no bearer token for the API server (URL token=, options or kubeconfig)");
  return a;
}

namespace {
// The exec WebSocket for argv in the identity's pod, reached through `a`.
ConnectionSpec exec_schema(const KubeAccess& a, const PodIdentity& identity, const std::vector<std::string>& argv,
                           bool stdin_on, const std::vector<std::string>& subprotocols, bool tty = false) {
  ConnectionSpec s;
  s.url = to_ws_url(a.server) + k8s::exec_path(identity.namespace_.empty() ? "default" : identity.namespace_,
                                               identity.pod_name, identity.container, argv, stdin_on, tty);
  s.headers.emplace_back("Authorization", "Bearer " + a.token.reveal());
  s.subprotocols = subprotocols;
  s.is_binary_framed = true;
  s.line_framed = false;
  s.tty = false;
  s.tls = a.tls;
  return s;
}
}  // namespace

ConnectionSpec KubernetesProvider::build_connection_spec(const PodIdentity& identity, const SecretString& token) const {
  return exec_schema(access_for(identity, token), identity, opts_.shell_cmd, true, opts_.subprotocols);
}

std::unique_ptr<Connection> KubernetesProvider::open(Executor ex, const ConnectionSpec& schema) const {
  return std::make_unique<K8sExecConnection>(make_websocket_connection(ex, schema));
}

Task<bool> KubernetesProvider::interrupt(Connection&, const PodIdentity& identity, const SecretString& token,
                                         long shell_pid, bool, bool hard) const {
  if (shell_pid <= 1) co_return false;
  std::vector<std::string> argv = interrupt_children_argv(shell_pid, hard);
  try {
    ExecOutput out = co_await exec_once(identity, token, std::move(argv), 5.0);
    // 3: nothing runs below the shell (see DockerProvider::interrupt).
    co_return out.exit_code == 0 || (!hard && out.exit_code == 3);
  } catch (const PodClientError&) {
    co_return false;
  }
}

Task<std::string> KubernetesProvider::detect_namespace(Connection&, const PodIdentity& identity,
                                                       const ConnectionSpec&) const {
  if (!identity.namespace_.empty()) co_return identity.namespace_;
  std::string ns = namespace_from_environment();
  if (!ns.empty()) co_return ns;
  if (opts_.require_namespace_detection)
    throw NamespaceDetectionError("no namespace in the pod identity, POD_NAMESPACE or the service-account file");
  co_return std::string("default");
}

Task<ExecOutput> KubernetesProvider::exec_once(const PodIdentity& identity, const SecretString& token,
                                               std::vector<std::string> argv, double timeout,
                                               std::optional<std::string> stdin_data, bool tty) const {
  auto ex = co_await asio::this_coro::executor;
  ConnectionSpec s =
      exec_schema(access_for(identity, token), identity, argv, stdin_data.has_value(), opts_.subprotocols, tty);
  std::shared_ptr<Connection> conn = make_websocket_connection(ex, s);
  auto ms = std::chrono::milliseconds(static_cast<long long>(timeout * 1000));
  co_await conn->connect(ms);
  std::string proto = conn->subprotocol();
  asio::steady_timer watchdog(ex, ms);
  bool timed_out = false;
  std::weak_ptr<Connection> weak = conn;
  watchdog.async_wait([weak, &timed_out](boost::system::error_code ec) {
    if (ec) return;
    timed_out = true;
    if (auto c = weak.lock()) c->close();
  });
  if (tty) co_await conn->write(k8s::resize_message(identity.cols, 50));
  if (stdin_data) {
    std::string frame = std::string(1, '\0') + *stdin_data;
    co_await conn->write(frame);
    if (proto == kV5) co_await conn->write(std::string("\xff\x00", 2));
  }
  ExecOutput out;
  std::string status;
  std::string msg;
  while (true) {
    msg.clear();
    bool more = false;
    try {
      more = co_await conn->read(msg);
    } catch (const PodConnectionError&) {
      if (!timed_out) {
        watchdog.cancel();
        throw;
      }
    }
    if (timed_out) {
      watchdog.cancel();
      throw PodCommandTimeoutError(argv.empty() ? std::string() : argv.back(), timeout, out.stdout_text);
    }
    if (!more) break;
    if (msg.empty()) continue;
    auto ch = static_cast<unsigned char>(msg[0]);
    if (ch == 1)
      out.stdout_text.append(msg, 1);
    else if (ch == 2)
      out.stderr_text.append(msg, 1);
    else if (ch == 3)
      status.append(msg, 1);
  }
  watchdog.cancel();
  if (status.empty()) throw PodConnectionError("exec in pod '" + identity.pod_name + "' ended without a status");
  out.exit_code = k8s::exit_code_from_status(status);
  co_return out;
}

}  // namespace pw

#pragma once
// KubernetesProvider: exec in pods through the API server's WebSocket exec endpoint
// (subprotocols v5.channel.k8s.io / v4.channel.k8s.io, channel-framed binary messages).
//
// Pod URLs (register a pod as an alias):
//   k8s://[context@]namespace/pod[/container][?kubeconfig=PATH]
//       server, CA and token from the kubeconfig ($KUBECONFIG, ~/.kube/config), context
//       "" = current-context
//   k8s://namespace/pod[/container]?server=https://HOST:6443&token=T&ca=PATH[&insecure=1]
//       explicit server; token may instead come from the provider's options
//   k8s://namespace/pod?incluster=1
//       the service account of the pod we run in
// TLS is verified unless insecure=1 (or options.tls.insecure_skip_verify), loudly.
#include <podwrangler/provider.hpp>
#include <podwrangler/providers/docker.hpp>  // ExecOutput

#include <optional>

namespace pw {

struct KubeAccess {
  std::string server;  // https://host:port
  SecretString token;
  TlsOptions tls;
  std::string namespace_;  // the context's namespace, "" if none
  std::string context;
};

struct KubernetesOptions {
  std::string host;  // "k8s.example.com:6443" or a full URL
  bool use_tls = true;
  std::vector<std::string> shell_cmd{"/bin/sh"};
  SecretString token;                        // used when the URL carries none
  std::string kubeconfig;                    // path; "" → $KUBECONFIG or ~/.kube/config
  TlsOptions tls;                            // CA file/PEM, insecure (explicit)
  bool require_namespace_detection = false;  // detect_namespace() throws instead of "default"
  // Offered in this order; the server picks one and the session branches on it.
  std::vector<std::string> subprotocols{"v5.channel.k8s.io", "v4.channel.k8s.io"};
};

class KubernetesProvider : public ProviderInterface {
 public:
  explicit KubernetesProvider(KubernetesOptions options = {});
  // An explicit API server ("k8s.example.com:6443"), TLS on or off, and the shell to start.
  KubernetesProvider(std::string host, bool use_tls, std::vector<std::string> shell_cmd = {"/bin/sh"});

  std::string name() const override { return "kubernetes"; }
  ConnectionSpec build_connection_spec(const PodIdentity& identity, const SecretString& token) const override;
  std::pair<PodIdentity, SecretString> parse_url(std::string_view url) const override;
  Task<std::string> detect_namespace(Connection& conn, const PodIdentity& identity,
                                     const ConnectionSpec& schema) const override;
  // Running pods (phase Running, not being deleted, a running container). The REST call
  // runs on a small internal thread pool, so the caller's event loop is never blocked.
  Task<std::vector<PodIdentity>> list_pods(const SecretString& token, ListPodsOptions options) const override;
  std::unique_ptr<Connection> open(Executor ex, const ConnectionSpec& schema) const override;
  // A timed-out command in the pipe shell: a one-shot exec in the same container signals
  // the shell's descendants (interrupt_children_argv), and the shell is kept.
  Task<bool> interrupt(Connection& conn, const PodIdentity& identity, const SecretString& token, long shell_pid,
                       bool tty, bool hard) const override;

  // One-shot exec of argv (no shell): stdout and stderr apart, exit code from channel 3.
  // `stdin_data`, when given, is sent and then closed (v5 CLOSE; under v4 it is sent and
  // the exit status still arrives because the socket stays open).
  // With tty=true the command gets a terminal of identity.cols × 50 (a resize message on
  // channel 4), and its output arrives as one stream on stdout (Kubernetes sends no stderr).
  Task<ExecOutput> exec_once(const PodIdentity& identity, const SecretString& token, std::vector<std::string> argv,
                             double timeout, std::optional<std::string> stdin_data = std::nullopt,
                             bool tty = false) const;

  // Where to reach the API server for `identity` (URL parameters, options, kubeconfig,
  // in-cluster config, in that order). Throws PodConfigValidationError with the reason.
  KubeAccess access_for(const PodIdentity& identity, const SecretString& token) const;

  static KubeAccess load_kubeconfig(const std::string& path, const std::string& context);
  static KubeAccess in_cluster_config();
  // POD_NAMESPACE, then the service-account namespace file, else "".
  static std::string namespace_from_environment();

  const KubernetesOptions& options() const noexcept { return opts_; }

 private:
  std::vector<PodIdentity> list_pods_blocking(const SecretString& token, const ListPodsOptions& options) const;
  KubernetesOptions opts_;
};

namespace k8s {
// The exec target of the API server for argv (one command= per element).
std::string exec_path(const std::string& ns, const std::string& pod, const std::string& container,
                      const std::vector<std::string>& argv, bool stdin_on, bool tty);
// Decodes a channel-3 status: 0 for Success, N for NonZeroExitCode; throws
// PodConnectionError with the server's message for any other failure.
int exit_code_from_status(const std::string& status_json);
// A terminal resize message: channel 4, {"Width":cols,"Height":rows}.
std::string resize_message(int cols, int rows);
}  // namespace k8s

}  // namespace pw

#pragma once
// Immutable value types of the core library and their JSON form.
#include <podwrangler/constants.hpp>
#include <podwrangler/secret.hpp>

#include <utility>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace pw {

class ProviderInterface;

struct PodIdentity {
  std::string pod_name;
  std::string service;
  std::string deployment;
  std::string cluster;     // PlainTTY: service id; Kubernetes: context/cluster name
  std::string namespace_;  // "" when unknown (JSON key "namespace")
  int cols = DEFAULT_TERMINAL_COLS;
  std::string origin;     // scheme://host[:port] the pod is reached through ("" for local)
  std::string container;  // Kubernetes/Docker container, "" for the default

  // "service/pod_name" style label used in results and logs.
  std::string label() const;
  friend bool operator==(const PodIdentity&, const PodIdentity&) = default;
};

// Credential-free description of how to open the byte stream to a pod.
struct TlsOptions {
  std::string ca_file;                // empty: the system CA store
  bool insecure_skip_verify = false;  // explicit and loud (warns on every connect)
  std::string ca_pem;                 // CA certificates in memory (kubeconfig *-data)
  friend bool operator==(const TlsOptions&, const TlsOptions&) = default;
};

struct ConnectionSpec {
  std::string url;  // may carry a token: shown only through redact_url()
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::string> subprotocols;
  bool is_binary_framed = false;
  // Text frames are whole lines without their line ending (websocketd style): a frame
  // is received as "<frame>\n" and a payload is sent as one frame without its final '\n'.
  bool line_framed = true;
  bool tty = true;  // the peer is a terminal: echo, CRLF, Ctrl-C interrupts
  TlsOptions tls;
};

struct PodEndpoint {
  PodIdentity identity;
  std::shared_ptr<ProviderInterface> provider;
  SecretString token;
};

struct CommandResult {
  std::string command;
  std::string output;                // exactly the bytes the command wrote (stdout and stderr merged)
  int exit_code = -1;                // -1 when unknown (error before completion)
  std::optional<std::string> error;  // set when the command did not complete
  double duration = 0.0;             // seconds
  std::string pod_label;
  bool truncated = false;  // true exactly when output bytes were dropped (max_output_bytes)
  // The shell this command ran in is gone: the command ended it (exit), or it timed out
  // and could not be interrupted. The next command starts in a fresh shell, without
  // this one's working directory, variables or jobs.
  bool session_reset = false;

  bool succeeded() const noexcept { return exit_code == 0 && !error; }
};

void to_json(nlohmann::json& j, const PodIdentity& v);
void from_json(const nlohmann::json& j, PodIdentity& v);
void to_json(nlohmann::json& j, const TlsOptions& v);
void from_json(const nlohmann::json& j, TlsOptions& v);
void to_json(nlohmann::json& j, const ConnectionSpec& v);  // url and credential headers redacted
void to_json(nlohmann::json& j, const PodEndpoint& v);     // token as "***"
void to_json(nlohmann::json& j, const CommandResult& v);
void from_json(const nlohmann::json& j, CommandResult& v);

std::ostream& operator<<(std::ostream& os, const PodIdentity& v);
std::ostream& operator<<(std::ostream& os, const ConnectionSpec& v);
std::ostream& operator<<(std::ostream& os, const PodEndpoint& v);
std::ostream& operator<<(std::ostream& os, const CommandResult& v);

// Dumps JSON with invalid UTF-8 replaced (command output is arbitrary bytes).
std::string dump_json(const nlohmann::json& j, int indent = -1);

}  // namespace pw

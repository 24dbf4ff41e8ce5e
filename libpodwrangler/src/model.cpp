#include <podwrangler/model.hpp>
#include <podwrangler/provider.hpp>
#include <podwrangler/redact.hpp>
#include <podwrangler/version.hpp>

#include <ostream>

namespace pw {

const char* version() noexcept { return PW_VERSION_STRING; }

void to_json(nlohmann::json& j, const SecretString& s) { j = s.str(); }

std::string PodIdentity::label() const {
  if (!service.empty() && service != pod_name) return service + "/" + pod_name;
  return pod_name;
}

void to_json(nlohmann::json& j, const PodIdentity& v) {
  j = nlohmann::json{{"pod_name", v.pod_name},
                     {"service", v.service},
                     {"deployment", v.deployment},
                     {"cluster", v.cluster},
                     {"namespace", v.namespace_.empty() ? nlohmann::json(nullptr) : nlohmann::json(v.namespace_)},
                     {"cols", v.cols},
                     {"origin", v.origin},
                     {"container", v.container}};
}

void from_json(const nlohmann::json& j, PodIdentity& v) {
  v.pod_name = j.at("pod_name").get<std::string>();
  v.service = j.value("service", "");
  v.deployment = j.value("deployment", "");
  v.cluster = j.value("cluster", "");
  v.namespace_ = j.contains("namespace") && j["namespace"].is_string() ? j["namespace"].get<std::string>() : "";
  v.cols = j.value("cols", DEFAULT_TERMINAL_COLS);
  v.origin = j.value("origin", "");
  v.container = j.value("container", "");
}

void to_json(nlohmann::json& j, const TlsOptions& v) {
  j = nlohmann::json{
      {"ca_file", v.ca_file}, {"ca_pem", !v.ca_pem.empty()}, {"insecure_skip_verify", v.insecure_skip_verify}};
}
void from_json(const nlohmann::json& j, TlsOptions& v) {
  v.ca_file = j.value("ca_file", "");
  v.insecure_skip_verify = j.value("insecure_skip_verify", false);
}

void to_json(nlohmann::json& j, const ConnectionSpec& v) {
  nlohmann::json headers = nlohmann::json::object();
  for (const auto& [k, val] : v.headers) headers[k] = is_sensitive_key(k) ? std::string(REDACTED) : val;
  j = nlohmann::json{{"url", redact_url(v.url)},
                     {"headers", headers},
                     {"subprotocols", v.subprotocols},
                     {"is_binary_framed", v.is_binary_framed},
                     {"line_framed", v.line_framed},
                     {"tty", v.tty},
                     {"tls", v.tls}};
}

void to_json(nlohmann::json& j, const PodEndpoint& v) {
  j = nlohmann::json{
      {"identity", v.identity}, {"provider", v.provider ? v.provider->name() : std::string{}}, {"token", v.token}};
}

void to_json(nlohmann::json& j, const CommandResult& v) {
  j = nlohmann::json{
      {"command", v.command},      {"output", v.output},
      {"exit_code", v.exit_code},  {"error", v.error ? nlohmann::json(*v.error) : nlohmann::json(nullptr)},
      {"duration", v.duration},    {"pod_label", v.pod_label},
      {"truncated", v.truncated},  {"session_reset", v.session_reset},
      {"succeeded", v.succeeded()}};
}

void from_json(const nlohmann::json& j, CommandResult& v) {
  v.command = j.at("command").get<std::string>();
  v.output = j.value("output", "");
  v.exit_code = j.value("exit_code", -1);
  if (j.contains("error") && j["error"].is_string())
    v.error = j["error"].get<std::string>();
  else
    v.error.reset();
  v.duration = j.value("duration", 0.0);
  v.pod_label = j.value("pod_label", "");
  v.truncated = j.value("truncated", false);
  v.session_reset = j.value("session_reset", false);
}

std::string dump_json(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::ostream& operator<<(std::ostream& os, const PodIdentity& v) { return os << dump_json(v); }
std::ostream& operator<<(std::ostream& os, const ConnectionSpec& v) { return os << dump_json(v); }
std::ostream& operator<<(std::ostream& os, const PodEndpoint& v) { return os << dump_json(v); }
std::ostream& operator<<(std::ostream& os, const CommandResult& v) { return os << dump_json(v); }

}  // namespace pw

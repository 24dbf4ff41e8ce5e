#include <podwrangler/errors.hpp>
#include <podwrangler/providers/plaintty.hpp>
#include <podwrangler/url.hpp>

#include <cctype>

namespace pw {

namespace {
bool id_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'; }
bool valid_name(std::string_view s, std::size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s)
    if (!id_char(c)) return false;
  return true;
}
}  // namespace

PlainTTYProvider::PlainTTYProvider(int cols, TlsOptions tls) : cols_(cols), tls_(std::move(tls)) {
  if (cols < 1 || cols > 4096) throw PodConfigValidationError("cols", "must be between 1 and 4096");
}

std::pair<PodIdentity, SecretString> PlainTTYProvider::parse_url(std::string_view url) const {
  Url u = parse_url_strict(url);
  if (u.scheme != "ws" && u.scheme != "wss") throw PodURLParseError("scheme", "expected ws:// or wss://", url);
  if (u.host.empty()) throw PodURLParseError("host", "missing host", url);
  std::string_view path = u.path;
  constexpr std::string_view prefix = "/exec/";
  if (!path.starts_with(prefix)) throw PodURLParseError("path", "expected /exec/<service_id>/", url);
  std::string_view service_id = path.substr(prefix.size());
  if (!service_id.empty() && service_id.back() == '/') service_id.remove_suffix(1);
  if (!valid_name(service_id, 128))
    throw PodURLParseError("service_id", "expected 1-128 characters of [A-Za-z0-9._-]", url);
  auto token = u.param("token");
  if (!token || token->empty()) throw PodURLParseError("token", "missing token query parameter", url);
  auto pod = u.param("pod");
  if (!pod || pod->empty()) throw PodURLParseError("pod", "missing pod query parameter", url);
  if (!valid_name(*pod, 253)) throw PodURLParseError("pod", "expected a pod name of [A-Za-z0-9._-]", url);
  int cols = cols_;
  if (auto c = u.param("cols")) {
    if (c->empty() || c->size() > 4 || c->find_first_not_of("0123456789") != std::string::npos)
      throw PodURLParseError("cols", "not a number", url);
    cols = std::stoi(*c);
    if (cols < 1 || cols > 4096) throw PodURLParseError("cols", "must be between 1 and 4096", url);
  }
  PodIdentity id;
  id.pod_name = *pod;
  id.cluster = std::string(service_id);
  id.cols = cols;
  id.origin = u.scheme + "://" + u.authority();
  // my-app-deploy-abc12-xyz99 → service my-app-deploy, deployment abc12
  std::size_t last = id.pod_name.rfind('-');
  std::size_t prev = last == std::string::npos || last == 0 ? std::string::npos : id.pod_name.rfind('-', last - 1);
  if (prev != std::string::npos && prev > 0) {
    id.service = id.pod_name.substr(0, prev);
    id.deployment = id.pod_name.substr(prev + 1, last - prev - 1);
  } else {
    id.service = id.pod_name;
  }
  if (auto ns = u.param("namespace")) id.namespace_ = *ns;
  return {std::move(id), SecretString(*token)};
}

ConnectionSpec PlainTTYProvider::build_connection_spec(const PodIdentity& identity, const SecretString& token) const {
  if (identity.origin.empty()) throw PodConfigValidationError("origin", "PlainTTY identity has no origin (wss://host)");
  ConnectionSpec s;
  s.url = identity.origin + "/exec/" + identity.cluster + "/?token=" + percent_encode(token.reveal()) +
          "&cols=" + std::to_string(identity.cols) + "&pod=" + percent_encode(identity.pod_name);
  s.is_binary_framed = false;
  s.line_framed = true;
  s.tty = true;
  s.tls = tls_;
  return s;
}

}  // namespace pw

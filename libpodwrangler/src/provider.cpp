#include <podwrangler/errors.hpp>
#include <podwrangler/provider.hpp>
#include <podwrangler/providers/docker.hpp>
#include <podwrangler/providers/kubernetes.hpp>
#include <podwrangler/providers/local.hpp>
#include <podwrangler/providers/plaintty.hpp>

#include <algorithm>
#include <mutex>

namespace pw {

std::string default_shell_preamble() {
  // -icanon (with min 1 time 0): no 4096-byte line limit of the terminal's line
  // editor, so long commands arrive whole; Ctrl-C still interrupts (ISIG stays on).
  return "stty -echo -onlcr -icanon min 1 time 0 2>/dev/null; PS1=''; PS2=''; PS4=''; "
         "export TERM=dumb NO_COLOR=1 PAGER=cat GIT_PAGER=cat; "
         "unset PROMPT_COMMAND 2>/dev/null\n";
}

Task<void> ProviderSpec::init_shell(Connection& conn, const WssSchema&) const {
  co_await conn.write(default_shell_preamble());
}

Task<std::string> ProviderSpec::detect_namespace(Connection&, const PodIdentity& identity,
                                                 const WssSchema&) const {
  co_return identity.namespace_.empty() ? std::string("default") : identity.namespace_;
}

Task<std::vector<PodIdentity>> ProviderSpec::list_pods(const SecretString&, ListPodsOptions) const {
  throw PodClientError("provider '" + name() + "' cannot list pods");
  co_return std::vector<PodIdentity>{};
}

std::unique_ptr<Connection> ProviderSpec::open(Executor ex, const WssSchema& schema) const {
  return make_websocket_connection(ex, schema);
}

namespace {
std::mutex g_catalog_mu;
}

ProviderCatalog::ProviderCatalog() {
  providers_["plaintty"] = std::make_shared<PlainTTYProvider>();
  providers_["local"] = std::make_shared<LocalProvider>();
  providers_["docker"] = std::make_shared<DockerProvider>();
  auto k8s = std::make_shared<KubernetesProvider>();
  providers_["kubernetes"] = k8s;
  providers_["k8s"] = k8s;
}

ProviderCatalog& ProviderCatalog::instance() {
  static ProviderCatalog catalog;
  return catalog;
}

void ProviderCatalog::add(std::string name, std::shared_ptr<ProviderSpec> provider) {
  std::lock_guard lock(g_catalog_mu);
  providers_[std::move(name)] = std::move(provider);
}

std::shared_ptr<ProviderSpec> ProviderCatalog::get(std::string_view name) const {
  std::lock_guard lock(g_catalog_mu);
  auto it = providers_.find(name);
  return it == providers_.end() ? nullptr : it->second;
}

std::vector<std::string> ProviderCatalog::names() const {
  std::lock_guard lock(g_catalog_mu);
  std::vector<std::string> out;
  for (const auto& [k, v] : providers_) out.push_back(k);
  return out;
}

std::shared_ptr<ProviderSpec> ProviderCatalog::for_url(std::string_view url) const {
  std::size_t se = url.find("://");
  std::string scheme(url.substr(0, se == std::string_view::npos ? 0 : se));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) { return std::tolower(c); });
  if (scheme == "local") return get("local");
  if (scheme == "ws" || scheme == "wss") return get("plaintty");
  if (auto p = get(scheme)) return p;
  throw PodURLParseError("scheme", "no provider handles this scheme", url);
}

PodEndpoint endpoint_from_url(std::string_view url, std::shared_ptr<ProviderSpec> provider) {
  if (!provider) provider = ProviderCatalog::instance().for_url(url);
  auto [identity, token] = provider->parse_url(url);
  return PodEndpoint{std::move(identity), std::move(provider), std::move(token)};
}

}  // namespace pw

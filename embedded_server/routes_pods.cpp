// /api/v1/pods/: register, list, show, update and remove pods.
#include "embedded_server/http_server.hpp"
#include "embedded_server/http_util.hpp"
#include "embedded_server/routes.hpp"

#include <podwrangler/errors.hpp>
#include <podwrangler/provider.hpp>
#include <podwrangler/redact.hpp>

#include <httplib.h>

#include <map>
#include <memory>
#include <mutex>

namespace pw::server {
namespace {

constexpr std::size_t kMaxUrl = 8192;

nlohmann::json pod_json(const PodRecord& p) {
  return {{"alias", p.alias},   {"url", p.url_redacted},      {"provider", p.provider},
          {"labels", p.labels}, {"created_at", p.created_at}, {"updated_at", p.updated_at}};
}

std::shared_ptr<ProviderInterface> provider_named(const std::string& name) {
  auto p = ProviderCatalog::instance().get(name);
  if (!p) {
    std::string known;
    for (const auto& n : ProviderCatalog::instance().names()) known += (known.empty() ? "" : ", ") + n;
    throw validation_error("provider", "unknown provider (known: " + known + ")");
  }
  return p;
}

// A URL is one token: no control bytes (NUL included) and no spaces anywhere (a space in a
// path or query is written %20).
void check_url_text(const std::string& url) {
  check_token_text(url, "url");
  if (url.find(' ') != std::string::npos) throw validation_error("url", "must not contain spaces (write %20)");
}

// Checks that `provider` understands `url`; returns the provider's canonical name.
std::string check_url(const std::string& url, const std::optional<std::string>& provider_name) {
  check_url_text(url);
  if (provider_name) check_token_text(*provider_name, "provider");
  std::shared_ptr<ProviderInterface> provider;
  if (provider_name) {
    provider = provider_named(*provider_name);
  } else {
    try {
      provider = ProviderCatalog::instance().for_url(url);
    } catch (const PodURLParseError& e) {
      throw validation_error("url", e.what());
    }
  }
  try {
    (void)endpoint_from_url(url, provider);
  } catch (const PodURLParseError& e) {
    throw validation_error("url", e.what());
  } catch (const PodConfigValidationError& e) {
    throw validation_error("url", e.what());
  }
  return provider->name();
}

std::string path_alias(const httplib::Request& req) {
  std::string alias = req.matches[1];
  // An alias that cannot exist is simply not found (no hint about its shape needed); the
  // message shows it escaped (a NUL would end the library's C-string message).
  if (!is_valid_alias(alias)) throw PodNotFoundError(shown(alias));
  return alias;
}

}  // namespace

// Listing bodies by selector, reused while the database's pods_version is unchanged
// (one one-row read instead of building and serialising every pod again). The version
// lives in the database, so replicas never serve each other's stale listings; the
// version is read before the rows, so a body is never older than its version.
class ListingCache {
 public:
  std::shared_ptr<const std::string> find(const std::string& version, const std::string& selector) {
    std::lock_guard lk(mu_);
    auto it = bodies_.find(selector);
    if (it == bodies_.end() || version.empty() || it->second.first != version) return nullptr;
    return it->second.second;
  }
  void put(const std::string& version, const std::string& selector, std::shared_ptr<const std::string> body) {
    if (version.empty()) return;
    std::lock_guard lk(mu_);
    if (bodies_.size() >= 64 && !bodies_.contains(selector)) bodies_.clear();
    bodies_[selector] = {version, std::move(body)};
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::pair<std::string, std::shared_ptr<const std::string>>> bodies_;
};

void add_pod_routes(Router& http, ServerState& ctx) {
  auto cache = std::make_shared<ListingCache>();
  http.Get("/api/v1/pods/?", [&ctx, cache](const httplib::Request& req, httplib::Response& res) {
    reject_unknown_params(req, {"selector"});
    Labels selector;
    if (auto sel = query_param(req, "selector")) selector = parse_selector(*sel);
    std::string key;
    for (const auto& [k, v] : selector) key += k + '=' + v + ',';
    std::string version = ctx.store->pods_version();
    auto body = cache->find(version, key);
    if (!body) {
      auto pods = ctx.store->list_pods(selector);
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& p : pods) arr.push_back(pod_json(p));
      body = std::make_shared<const std::string>(dump_json(arr));
      cache->put(version, key, body);
    }
    res.status = 200;
    res.set_content(*body, "application/json");
  });

  http.Post("/api/v1/pods/?", [&ctx](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_object_body(req);
    reject_unknown_fields(body, {"alias", "url", "provider", "labels"});
    PodRecord rec;
    rec.alias = required_string(body, "alias", 256);
    check_alias(rec.alias);
    std::string url = required_string(body, "url", kMaxUrl);
    rec.provider = check_url(url, optional_string(body, "provider", 64));
    if (auto it = body.find("labels"); it != body.end()) rec.labels = parse_labels(*it);
    rec.url_redacted = redact_url(url);
    rec.url = SecretString(std::move(url));
    auto created = ctx.store->create_pod(rec);
    res.set_header("Location", "/api/v1/pods/" + created.alias);
    send_json(res, 201, pod_json(created));
  });

  http.Get("/api/v1/pods/([^/]+)/?", [&ctx](const httplib::Request& req, httplib::Response& res) {
    auto alias = path_alias(req);
    auto pod = ctx.store->get_pod(alias);
    if (!pod) throw PodNotFoundError(alias);
    send_json(res, 200, pod_json(*pod));
  });

  http.Patch("/api/v1/pods/([^/]+)/?", [&ctx](const httplib::Request& req, httplib::Response& res) {
    auto alias = path_alias(req);
    auto body = parse_object_body(req);
    reject_unknown_fields(body, {"url", "provider", "labels"});
    auto url = optional_string(body, "url", kMaxUrl);
    auto provider = optional_string(body, "provider", 64);
    PodPatch patch;
    if (auto it = body.find("labels"); it != body.end()) patch.labels = parse_labels(*it);
    if (url || provider) {
      if (url && url->empty()) throw validation_error("url", "must not be empty");
      auto cur = ctx.store->get_pod(alias);
      if (!cur) throw PodNotFoundError(alias);
      std::string new_url = url ? *url : cur->url.reveal();
      std::string name = check_url(new_url, provider ? provider : std::optional<std::string>(cur->provider));
      patch.provider = name;
      patch.url_redacted = redact_url(new_url);
      patch.url = SecretString(std::move(new_url));
    }
    auto updated = ctx.store->update_pod(alias, patch);
    if (!updated) throw PodNotFoundError(alias);
    send_json(res, 200, pod_json(*updated));
  });

  http.Delete("/api/v1/pods/([^/]+)/?", [&ctx](const httplib::Request& req, httplib::Response& res) {
    auto alias = path_alias(req);
    if (!ctx.store->delete_pod(alias)) throw PodNotFoundError(alias);
    res.status = 204;
  });
}

}  // namespace pw::server

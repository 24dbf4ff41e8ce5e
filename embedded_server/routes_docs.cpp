// GET /openapi.json, GET /docs and the Swagger UI assets under /docs/, all served from the
// bytes embedded at build time (openapi/assets.cmake): the page works offline.
#include "embedded_server/http_server.hpp"
#include "embedded_server/http_util.hpp"
#include "embedded_server/openapi/assets.hpp"
#include "embedded_server/routes.hpp"

#include <httplib.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <unordered_map>

#ifndef PW_VERSION_STRING
#define PW_VERSION_STRING "0.0.0"
#endif

namespace pw::server {
namespace {

// 64-bit FNV-1a: a cheap content fingerprint for the ETag.
std::uint64_t fnv1a(std::string_view bytes) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string make_etag(std::string_view body) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a(body)));
  return std::string("\"pw-") + PW_VERSION_STRING + "-" + hex + "\"";
}

// True when an If-None-Match header names `etag` (or is "*").
bool matches_etag(const std::string& if_none_match, const std::string& etag) {
  if (if_none_match.empty()) return false;
  if (if_none_match == "*") return true;
  std::string_view rest = if_none_match;
  while (!rest.empty()) {
    auto comma = rest.find(',');
    std::string_view tag = rest.substr(0, comma);
    while (!tag.empty() && (tag.front() == ' ' || tag.front() == '\t')) tag.remove_prefix(1);
    while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t')) tag.remove_suffix(1);
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    if (tag == etag) return true;
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return false;
}

struct Served {
  const DocsAsset* asset;
  std::string etag;
  const char* cache_control;
};

}  // namespace

void add_docs_routes(Router& http, ServerState& /*ctx*/) {
  // Fingerprints are computed once; the table lives as long as the handlers (the server).
  auto served = std::make_shared<std::unordered_map<std::string_view, Served>>();
  for (const DocsAsset& asset : docs_assets()) {
    // The document and the page are revalidated on every load (cheap: 304 on a matching
    // ETag). Swagger UI's files only change with the binary (the ETag carries its version
    // and their hash): a day without asking, then revalidation.
    const bool revalidate = asset.path == "/openapi.json" || asset.path == "/docs";
    served->emplace(asset.path,
                    Served{&asset, make_etag(asset.body), revalidate ? "no-cache" : "public, max-age=86400"});
  }

  auto serve = [served](const httplib::Request& req, httplib::Response& res, std::string_view path) {
    auto it = served->find(path);
    if (it == served->end()) {
      send_error(res, ErrorKind::route_not_found, "no such docs asset: " + std::string(path));
      return;
    }
    const Served& s = it->second;
    res.set_header("Cache-Control", s.cache_control);
    res.set_header("ETag", s.etag);
    res.set_header("X-Content-Type-Options", "nosniff");
    if (matches_etag(req.get_header_value("If-None-Match"), s.etag)) {
      res.status = 304;
      return;
    }
    res.status = 200;
    res.set_content(s.asset->body.data(), s.asset->body.size(), s.asset->content_type);
  };

  http.Get("/openapi.json/?",
           [serve](const httplib::Request& req, httplib::Response& res) { serve(req, res, "/openapi.json"); });
  http.Get("/docs/?", [serve](const httplib::Request& req, httplib::Response& res) { serve(req, res, "/docs"); });
  http.Get("/docs/(.+)", [serve](const httplib::Request& req, httplib::Response& res) {
    std::string path = "/docs/" + req.matches[1].str();
    const DocsAsset* asset = find_docs_asset(path);  // also maps /docs/index.html
    serve(req, res, asset ? asset->path : std::string_view(path));
  });
}

}  // namespace pw::server

#include "embedded_server/openapi/assets.hpp"

namespace pw::server {

const DocsAsset* find_docs_asset(std::string_view path) {
  if (path == "/docs/" || path == "/docs/index.html") path = "/docs";
  for (const DocsAsset& asset : docs_assets()) {
    if (asset.path == path) return &asset;
  }
  return nullptr;
}

}  // namespace pw::server

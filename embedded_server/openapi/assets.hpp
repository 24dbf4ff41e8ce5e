#pragma once
// Swagger UI and openapi.json, embedded into the binary at build time (assets.cmake).
#include <span>
#include <string_view>

namespace pw::server {

struct DocsAsset {
  std::string_view path;  // "/openapi.json", "/docs", "/docs/swagger-ui.css", …
  std::string_view body;  // the file's bytes, alive for the whole program
  const char* content_type;
};

// Every embedded asset, in a fixed order (defined in the generated docs_assets_data.cpp).
std::span<const DocsAsset> docs_assets();
// The asset served at `path`; "/docs/" and "/docs/index.html" are the page itself.
// nullptr when there is none.
const DocsAsset* find_docs_asset(std::string_view path);

}  // namespace pw::server

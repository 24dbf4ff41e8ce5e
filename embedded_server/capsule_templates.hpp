#pragma once
// Capsule templates of a server: PODWRANGLER_CAPSULE_TEMPLATES names a TOML file, read once
// at start, with one table per template:
//
//   [templates.python]
//   image = "python:3.12-slim"   # required
//   memory_mb = 1024             # any spec field of POST /api/v1/capsules, checked the same way
//   env = { PYTHONUNBUFFERED = "1" }
//   warm = 2                     # ready capsules of this template kept in the warm pool
//
// `create {"template":"python"}` (CLI `--template python`) starts from these values; the
// request's own values win.
#include <podwrangler/capsules/model.hpp>

#include <map>
#include <string>

namespace pw::server {

struct CapsuleTemplates {
  std::map<std::string, capsules::CapsuleSpec> specs;  // name → spec (image and defaults)
  std::map<std::string, int> warm;                     // template name → ready capsules to keep
};

// The templates of `toml_text`; `source` names it in errors. Throws PodConfigValidationError
// (PODWRANGLER_CAPSULE_TEMPLATES) naming the template and the field.
CapsuleTemplates parse_capsule_templates(const std::string& toml_text, const std::string& source);
// The same for a file ("" = none).
CapsuleTemplates load_capsule_templates(const std::string& path);

}  // namespace pw::server

#include "embedded_server/capsule_templates.hpp"

#include "embedded_server/http_util.hpp"
#include "embedded_server/routes_capsules_common.hpp"

#include <podwrangler/errors.hpp>

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include <fstream>
#include <sstream>

namespace pw::server {
namespace {

constexpr const char* kSetting = "PODWRANGLER_CAPSULE_TEMPLATES";

[[noreturn]] void bad(const std::string& source, const std::string& problem) {
  throw PodConfigValidationError(kSetting, source + ": " + problem);
}

// A TOML value as JSON: what parse_capsule_spec reads (dates and times are refused).
nlohmann::json to_json(const toml::node& n, const std::string& source, const std::string& where) {
  if (const auto* t = n.as_table()) {
    nlohmann::json o = nlohmann::json::object();
    for (const auto& [k, v] : *t) o[std::string(k.str())] = to_json(v, source, where + "." + std::string(k.str()));
    return o;
  }
  if (const auto* a = n.as_array()) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& v : *a) arr.push_back(to_json(v, source, where));
    return arr;
  }
  if (const auto* s = n.as_string()) return s->get();
  if (const auto* i = n.as_integer()) return i->get();
  if (const auto* f = n.as_floating_point()) return f->get();
  if (const auto* b = n.as_boolean()) return b->get();
  bad(source, where + ": dates and times are not capsule settings");
}

}  // namespace

CapsuleTemplates parse_capsule_templates(const std::string& toml_text, const std::string& source) {
  toml::table doc;
  try {
    doc = toml::parse(toml_text, source);
  } catch (const toml::parse_error& e) {
    std::ostringstream at;
    at << "line " << e.source().begin.line << ": " << e.description();
    bad(source, at.str());
  }
  CapsuleTemplates out;
  for (const auto& [key, node] : doc) {
    if (key.str() != "templates")
      bad(source, "unknown section [" + std::string(key.str()) + "] (only [templates.NAME])");
    const auto* all = node.as_table();
    if (!all) bad(source, "templates must be tables: [templates.NAME]");
    for (const auto& [name_key, tnode] : *all) {
      const std::string name(name_key.str());
      if (!is_valid_alias(name)) bad(source, "'" + name.substr(0, 64) + "' is not a valid template name");
      if (!tnode.as_table()) bad(source, "template '" + name + "' must be a table");
      nlohmann::json body = to_json(tnode, source, name);
      int warm = 0;
      if (body.contains("warm")) {
        const auto& w = body["warm"];
        if (!w.is_number_integer() || w.get<long long>() < 0 || w.get<long long>() > 100)
          bad(source, "template '" + name + "': warm must be a whole number from 0 to 100");
        warm = w.get<int>();
        body.erase("warm");
      }
      capsules::CapsuleSpec spec;
      try {
        if (body.contains("template")) throw validation_error("template", "a template cannot name another one");
        reject_unknown_keys(body, kSpecFields);
        spec = parse_capsule_spec(body);
      } catch (const HttpError& e) {
        bad(source, "template '" + name + "': " + e.what());
      }
      if (spec.image.empty()) bad(source, "template '" + name + "': image is required");
      if (warm > 0) out.warm[name] = warm;
      out.specs.emplace(name, std::move(spec));
    }
  }
  return out;
}

CapsuleTemplates load_capsule_templates(const std::string& path) {
  if (path.empty()) return {};
  std::ifstream f(path, std::ios::binary);
  if (!f) bad(path, "cannot be read");
  std::ostringstream text;
  text << f.rdbuf();
  return parse_capsule_templates(text.str(), path);
}

}  // namespace pw::server

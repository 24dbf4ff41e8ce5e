#include "cli/json_access.hpp"

namespace pw::cli::field {

const nlohmann::json* find(const nlohmann::json& j, std::string_view key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

std::string text(const nlohmann::json& j, std::string_view key, std::string_view fallback) {
  const nlohmann::json* v = find(j, key);
  if (!v || v->is_null()) return std::string(fallback);
  if (v->is_string()) return v->get<std::string>();
  return v->dump();
}

std::optional<std::string_view> string(const nlohmann::json& j, std::string_view key) {
  const nlohmann::json* v = find(j, key);
  if (!v || !v->is_string()) return std::nullopt;
  return std::string_view(v->get_ref<const std::string&>());
}

std::optional<long long> integer(const nlohmann::json& j, std::string_view key) {
  const nlohmann::json* v = find(j, key);
  if (!v || !v->is_number_integer()) return std::nullopt;
  return v->get<long long>();
}

std::optional<double> number(const nlohmann::json& j, std::string_view key) {
  const nlohmann::json* v = find(j, key);
  if (!v || !v->is_number()) return std::nullopt;
  return v->get<double>();
}

std::optional<bool> boolean(const nlohmann::json& j, std::string_view key) {
  const nlohmann::json* v = find(j, key);
  if (!v || !v->is_boolean()) return std::nullopt;
  return v->get<bool>();
}

const nlohmann::json& object(const nlohmann::json& j, std::string_view key) {
  static const nlohmann::json kEmpty = nlohmann::json::object();
  const nlohmann::json* v = find(j, key);
  return v && v->is_object() ? *v : kEmpty;
}

const nlohmann::json& array(const nlohmann::json& j, std::string_view key) {
  static const nlohmann::json kEmpty = nlohmann::json::array();
  const nlohmann::json* v = find(j, key);
  return v && v->is_array() ? *v : kEmpty;
}

}  // namespace pw::cli::field

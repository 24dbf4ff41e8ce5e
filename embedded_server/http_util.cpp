#include "embedded_server/http_util.hpp"

#include "embedded_server/store/store.hpp"

#include <podwrangler/errors.hpp>
#include <podwrangler/model.hpp>
#include <podwrangler/url.hpp>

#include <httplib.h>

#include <iostream>

namespace pw::server {

HttpError validation_error(const std::string& field, const std::string& problem) {
  return HttpError(422, "validation_error", field + ": " + problem, {{"field", field}});
}

namespace {

// Depth of nesting, stopping early once past `limit` (no recursion on hostile input).
bool nesting_exceeds(const std::string& body, int limit) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') {
      if (++depth > limit) return true;
    } else if (c == '}' || c == ']') --depth;
  }
  return false;
}

}  // namespace

nlohmann::json parse_object_body(const httplib::Request& req, int max_depth) {
  if (req.has_header("Content-Type")) {
    std::string ct = req.get_header_value("Content-Type");
    if (ct.rfind("application/json", 0) != 0 && ct.find("+json") == std::string::npos)
      throw HttpError(415, "unsupported_media_type", "request bodies must be application/json");
  }
  // Checked before parsing: nlohmann's parser recurses, a deeply nested body must not
  // reach it.
  if (nesting_exceeds(req.body, max_depth))
    throw HttpError(422, "validation_error",
                    "JSON nested deeper than " + std::to_string(max_depth) + " levels");
  nlohmann::json j = nlohmann::json::parse(req.body, nullptr, false);
  if (j.is_discarded()) throw HttpError(400, "bad_request", "request body is not valid JSON");
  if (!j.is_object()) throw HttpError(400, "bad_request", "request body must be a JSON object");
  return j;
}

void reject_unknown_fields(const nlohmann::json& body, std::initializer_list<const char*> allowed) {
  for (const auto& [key, value] : body.items()) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || key == a;
    if (!ok) {
      std::string shown = key.size() > 64 ? key.substr(0, 64) + "…" : key;
      throw validation_error(shown, "unknown field");
    }
  }
}

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(dump_json(body), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& code,
                const std::string& message, const nlohmann::json& extra) {
  nlohmann::json body = extra.is_object() ? extra : nlohmann::json::object();
  body["code"] = code;
  body["message"] = message;
  send_json(res, status, body);
}

void send_current_exception(httplib::Response& res) {
  try {
    throw;
  } catch (const HttpError& e) {
    send_error(res, e.status(), e.code(), e.what(), e.extra());
  } catch (const PodClientError& e) {
    // Library messages are redacted at construction.
    nlohmann::json extra = nlohmann::json::object();
    if (auto* v = dynamic_cast<const PodConfigValidationError*>(&e)) extra["field"] = v->field();
    if (dynamic_cast<const PodURLParseError*>(&e)) extra["field"] = "url";
    send_error(res, e.info().http_status, e.info().code, e.what(), extra);
  } catch (const StoreConflictError& e) {
    send_error(res, 409, "conflict", e.what());
  } catch (const StoreError& e) {
    std::cerr << "podwrangler serve: database error: " << e.what() << "\n";
    send_error(res, 503, "database_unavailable", "the database is not available");
  } catch (const std::bad_alloc&) {
    send_error(res, 500, "internal_error", "out of memory");
  } catch (const std::exception& e) {
    std::cerr << "podwrangler serve: internal error: " << e.what() << "\n";
    send_error(res, 500, "internal_error", "internal server error");
  } catch (...) {
    send_error(res, 500, "internal_error", "internal server error");
  }
}

}  // namespace pw::server

namespace pw::server {
namespace {

bool alnum(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool valid_label_key(std::string_view k) noexcept {
  if (k.empty() || k.size() > 63 || !alnum(k[0])) return false;
  for (char c : k)
    if (!alnum(c) && c != '.' && c != '_' && c != '-' && c != '/') return false;
  return true;
}

bool valid_label_value(std::string_view v) noexcept {
  if (v.size() > 63) return false;
  for (char c : v)
    if (!alnum(c) && c != '.' && c != '_' && c != '-') return false;
  return true;
}

std::string shown(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return s.size() > 64 ? out + "…" : out;
}

}  // namespace

bool is_valid_alias(std::string_view a) noexcept {
  if (a.empty() || a.size() > 63 || !alnum(a[0])) return false;
  for (char c : a)
    if (!alnum(c) && c != '.' && c != '_' && c != '-') return false;
  return true;
}

void check_alias(const std::string& alias, const std::string& field) {
  if (!is_valid_alias(alias))
    throw validation_error(field, "'" + shown(alias) +
                                      "' is not a valid alias (1-63 of A-Z a-z 0-9 . _ -, "
                                      "starting with a letter or digit)");
}

Labels parse_labels(const nlohmann::json& j, const std::string& field) {
  if (!j.is_object()) throw validation_error(field, "must be an object of string values");
  if (j.size() > 64) throw validation_error(field, "at most 64 labels");
  Labels out;
  for (const auto& [k, v] : j.items()) {
    if (!valid_label_key(k))
      throw validation_error(field, "'" + shown(k) + "' is not a valid label key");
    if (!v.is_string()) throw validation_error(field + "." + shown(k), "must be a string");
    const auto& s = v.get_ref<const std::string&>();
    if (!valid_label_value(s))
      throw validation_error(field + "." + shown(k), "'" + shown(s) + "' is not a valid label value");
    out.emplace(k, s);
  }
  return out;
}

Labels parse_selector(const std::string& text, const std::string& field) {
  Labels out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t comma = text.find(',', pos);
    std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? text.size() : comma + 1;
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string::npos)
      throw validation_error(field, "'" + shown(item) + "' is not key=value");
    std::string k = item.substr(0, eq), v = item.substr(eq + 1);
    if (!v.empty() && v[0] == '=') v.erase(0, 1);  // k==v
    if (!valid_label_key(k)) throw validation_error(field, "'" + shown(k) + "' is not a valid label key");
    if (!valid_label_value(v)) throw validation_error(field, "'" + shown(v) + "' is not a valid label value");
    out[k] = v;
  }
  return out;
}

std::optional<std::string> query_param(const httplib::Request& req, std::string_view name) {
  auto q = req.target.find('?');
  if (q == std::string::npos) return std::nullopt;
  std::string_view query(req.target);
  query.remove_prefix(q + 1);
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    auto eq = item.find('=');
    if (pw::percent_decode(item.substr(0, eq), true) != name) continue;
    return eq == std::string_view::npos ? std::string{} : pw::percent_decode(item.substr(eq + 1), true);
  }
  return std::nullopt;
}

std::optional<std::string> optional_string(const nlohmann::json& body, const char* field,
                                           std::size_t max_len) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) throw validation_error(field, "must be a string");
  const auto& s = it->get_ref<const std::string&>();
  if (s.size() > max_len)
    throw validation_error(field, "longer than " + std::to_string(max_len) + " bytes");
  return s;
}

std::string required_string(const nlohmann::json& body, const char* field, std::size_t max_len) {
  auto s = optional_string(body, field, max_len);
  if (!s) throw validation_error(field, "is required");
  if (s->empty()) throw validation_error(field, "must not be empty");
  return *s;
}

std::optional<double> optional_seconds(const nlohmann::json& body, const char* field, double max) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) throw validation_error(field, "must be a number of seconds");
  double v = it->get<double>();
  if (!(v > 0) || v > max)
    throw validation_error(field, "must be greater than 0 and at most " + std::to_string(static_cast<long>(max)));
  return v;
}

std::optional<bool> optional_bool(const nlohmann::json& body, const char* field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) throw validation_error(field, "must be true or false");
  return it->get<bool>();
}

std::optional<long> optional_int(const nlohmann::json& body, const char* field, long min, long max) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer()) throw validation_error(field, "must be an integer");
  long v = it->get<long>();
  if (v < min || v > max)
    throw validation_error(field, "must be " + std::to_string(min) + "-" + std::to_string(max));
  return v;
}

}  // namespace pw::server

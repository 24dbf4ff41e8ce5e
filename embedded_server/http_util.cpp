#include "embedded_server/http_util.hpp"

#include "embedded_server/store/store.hpp"
#include "embedded_server/store/utf8.hpp"

#include <podwrangler/errors.hpp>
#include <podwrangler/model.hpp>
#include <podwrangler/redact.hpp>
#include <podwrangler/url.hpp>

#include <httplib.h>

#include <algorithm>
#include <charconv>
#include <iostream>
#include <set>
#include <vector>

namespace pw::server {

HttpError validation_error(const std::string& field, const std::string& problem) {
  return HttpError(ErrorKind::validation, field + ": " + problem, {{"field", field}});
}

namespace {

// Depth of nesting, stopping early once past `limit` (no recursion on hostile input).
bool nesting_exceeds(const std::string& body, int limit) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '{' || c == '[') {
      if (++depth > limit) return true;
    } else if (c == '}' || c == ']')
      --depth;
  }
  return false;
}

}  // namespace

namespace {

// The media type of a Content-Type value: lower-cased, parameters and spaces dropped.
std::string media_type(std::string_view ct) {
  ct = ct.substr(0, ct.find(';'));
  while (!ct.empty() && (ct.front() == ' ' || ct.front() == '\t')) ct.remove_prefix(1);
  while (!ct.empty() && (ct.back() == ' ' || ct.back() == '\t')) ct.remove_suffix(1);
  std::string out(ct);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Tracks the keys of every open object while nlohmann parses, to find a repeated one.
struct DuplicateKeys {
  struct Frame {
    bool object = false;
    std::set<std::string> keys;
    std::string last;
  };
  std::vector<Frame> stack;
  std::optional<std::string> found;  // dotted path of the first repeated key

  bool operator()(int, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    switch (ev) {
      case E::object_start: stack.push_back(Frame{true, {}, {}}); break;
      case E::array_start: stack.push_back(Frame{false, {}, {}}); break;
      case E::object_end:
      case E::array_end:
        if (!stack.empty()) stack.pop_back();
        break;
      case E::key:
        if (!stack.empty() && parsed.is_string()) {
          auto& f = stack.back();
          f.last = parsed.get<std::string>();
          if (!found && !f.keys.insert(f.last).second) {
            std::string path;
            for (const auto& fr : stack) {
              if (!fr.object) continue;
              if (!path.empty()) path += '.';
              path += fr.last;
            }
            found = path;
          }
        }
        break;
      default: break;
    }
    return true;
  }
};

}  // namespace

nlohmann::json parse_object_body(const httplib::Request& req, int max_depth) {
  if (req.has_header("Content-Type")) {
    std::string mt = media_type(req.get_header_value("Content-Type"));
    bool json =
        mt == "application/json" || (mt.rfind("application/", 0) == 0 && mt.size() > 5 && mt.ends_with("+json"));
    if (!json) throw HttpError(ErrorKind::unsupported_media_type, "request bodies must be application/json");
  }
  // Checked before parsing: nlohmann's parser recurses, a deeply nested body must not
  // reach it.
  if (nesting_exceeds(req.body, max_depth))
    throw HttpError(ErrorKind::validation, "JSON nested deeper than " + std::to_string(max_depth) + " levels");
  DuplicateKeys dup;
  nlohmann::json j = nlohmann::json::parse(
      req.body, [&dup](int d, nlohmann::json::parse_event_t ev, nlohmann::json& p) { return dup(d, ev, p); }, false);
  if (j.is_discarded()) throw HttpError(ErrorKind::bad_request, "request body is not valid JSON");
  if (!j.is_object()) throw HttpError(ErrorKind::bad_request, "request body must be a JSON object");
  if (dup.found) throw validation_error(shown(*dup.found), "given more than once");
  return j;
}

void reject_unknown_fields(const nlohmann::json& body, std::initializer_list<const char*> allowed) {
  for (const auto& [key, value] : body.items()) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || key == a;
    if (!ok) throw validation_error(shown(key), "unknown field");
  }
}

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(dump_json(body), "application/json");
}

void send_error(httplib::Response& res, ErrorKind kind, const std::string& message, const nlohmann::json& extra) {
  const ErrorInfo& info = error_info(kind);
  nlohmann::json body = extra.is_object() ? extra : nlohmann::json::object();
  body["code"] = info.code;
  // The one sink of every error body: whatever a message quotes leaves redacted.
  body["message"] = redact_text(message);
  send_json(res, info.http_status, body);
}

void send_current_exception(httplib::Response& res) {
  try {
    throw;
  } catch (const HttpError& e) {
    send_error(res, e.kind(), e.message(), e.extra());
  } catch (const PodClientError& e) {
    // Library messages are redacted at construction.
    nlohmann::json extra = nlohmann::json::object();
    if (auto* v = dynamic_cast<const PodConfigValidationError*>(&e)) extra["field"] = v->field();
    if (dynamic_cast<const PodURLParseError*>(&e)) extra["field"] = "url";
    if (auto* v = dynamic_cast<const CapsuleValidationError*>(&e)) extra["field"] = v->field();
    send_error(res, e.kind(), e.what(), extra);
  } catch (const StoreConflictError& e) {
    send_error(res, ErrorKind::conflict, e.what());
  } catch (const StoreError& e) {
    std::cerr << "podwrangler serve: database error: " << e.what() << "\n";
    send_error(res, ErrorKind::database_unavailable, "the database is not available");
  } catch (const std::bad_alloc&) {
    send_error(res, ErrorKind::internal, "out of memory");
  } catch (const std::exception& e) {
    std::cerr << "podwrangler serve: internal error: " << e.what() << "\n";
    send_error(res, ErrorKind::internal, "internal server error");
  } catch (...) {
    send_error(res, ErrorKind::internal, "internal server error");
  }
}

}  // namespace pw::server

namespace pw::server {
namespace {

bool alnum(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

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
    if (!valid_label_key(k)) throw validation_error(field, "'" + shown(k) + "' is not a valid label key");
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
  if (text.empty()) return out;
  // Every comma separates two items: "a=b," and "a=b,,c=d" hold an empty one.
  for (std::size_t pos = 0; pos != std::string::npos;) {
    std::size_t comma = text.find(',', pos);
    std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? std::string::npos : comma + 1;
    if (item.empty()) throw validation_error(field, "empty item in '" + shown(text) + "' (k=v,k2=v2)");
    auto eq = item.find('=');
    if (eq == std::string::npos) throw validation_error(field, "'" + shown(item) + "' is not key=value");
    std::string k = item.substr(0, eq), v = item.substr(eq + 1);
    if (!v.empty() && v[0] == '=') v.erase(0, 1);  // k==v
    if (!valid_label_key(k)) throw validation_error(field, "'" + shown(k) + "' is not a valid label key");
    if (!valid_label_value(v)) throw validation_error(field, "'" + shown(v) + "' is not a valid label value");
    if (!out.emplace(k, v).second) throw validation_error(field, "label key '" + shown(k) + "' given twice");
  }
  return out;
}

std::string shown(std::string_view s, std::size_t max) {
  bool cut = s.size() > max;
  if (cut) {
    std::size_t n = max;
    // Back off to the start of a UTF-8 sequence (a continuation byte has 0b10 as its top bits).
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    s = s.substr(0, n);
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 4);
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  return cut ? out + "…" : out;
}

std::int64_t parse_integer(std::string_view text, const std::string& field, std::int64_t min, std::int64_t max) {
  auto fail = [&]() -> HttpError {
    return validation_error(field, "must be an integer " + std::to_string(min) + "-" + std::to_string(max) + " (got '" +
                                       shown(text, 32) + "')");
  };
  std::string_view digits = text;
  if (min < 0 && !digits.empty() && digits.front() == '-') digits.remove_prefix(1);
  if (digits.empty()) throw fail();
  for (char c : digits)
    if (c < '0' || c > '9') throw fail();
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, 10);
  if (ec != std::errc() || end != text.data() + text.size() || v < min || v > max) throw fail();
  return v;
}

void check_token_text(std::string_view value, const std::string& field) {
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f)
      throw validation_error(field, "must not contain control characters (got '" + shown(value) + "')");
  }
  if (!value.empty() && (value.front() == ' ' || value.back() == ' '))
    throw validation_error(field, "must not start or end with a space (got '" + shown(value) + "')");
}

std::vector<std::string> query_params(const httplib::Request& req, std::string_view name) {
  std::vector<std::string> out;
  auto q = req.target.find('?');
  if (q == std::string::npos) return out;
  std::string_view query(req.target);
  query.remove_prefix(q + 1);
  const std::string field(name);
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    auto eq = item.find('=');
    std::string key;
    try {
      key = pw::percent_decode(item.substr(0, eq), true);
    } catch (const std::invalid_argument&) {
      continue;  // some other parameter's malformed name: not ours
    }
    if (key != name) continue;
    try {
      out.push_back(eq == std::string_view::npos ? std::string{} : pw::percent_decode(item.substr(eq + 1), true));
    } catch (const std::invalid_argument&) {
      throw validation_error(field, "malformed percent escape");
    }
    check_token_text(out.back(), field);
  }
  return out;
}

std::optional<std::string> query_param(const httplib::Request& req, std::string_view name) {
  std::vector<std::string> all = query_params(req, name);
  if (all.empty()) return std::nullopt;
  if (all.size() > 1) throw validation_error(std::string(name), "given more than once");
  return std::move(all.front());
}

void reject_unknown_params(const httplib::Request& req, std::initializer_list<const char*> allowed) {
  auto q = req.target.find('?');
  if (q == std::string::npos) return;
  std::string_view query(req.target);
  query.remove_prefix(q + 1);
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (item.empty()) continue;  // "a=1&&b=2", a trailing '&'
    std::string key;
    try {
      key = pw::percent_decode(item.substr(0, item.find('=')), true);
    } catch (const std::invalid_argument&) {
      throw validation_error(shown(item.substr(0, item.find('='))), "malformed percent escape");
    }
    bool ok = false;
    for (const char* a : allowed) ok = ok || key == a;
    if (!ok) throw validation_error(shown(key), "unknown query parameter");
  }
}

std::optional<std::string> optional_string(const nlohmann::json& body, const char* field, std::size_t max_len) {
  auto it = body.find(field);
  if (it == body.end()) return std::nullopt;  // null is not a value of any field
  if (!it->is_string()) throw validation_error(field, "must be a string");
  const auto& s = it->get_ref<const std::string&>();
  if (s.size() > max_len) throw validation_error(field, "longer than " + std::to_string(max_len) + " bytes");
  if (s.find('\0') != std::string::npos) throw validation_error(field, "must not contain a NUL byte (\\u0000)");
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
  if (it == body.end()) return std::nullopt;  // null is not a value of any field
  if (!it->is_number()) throw validation_error(field, "must be a number of seconds");
  double v = it->get<double>();
  if (!(v > 0) || v > max)
    throw validation_error(field, "must be greater than 0 and at most " + std::to_string(static_cast<long>(max)));
  return v;
}

std::optional<bool> optional_bool(const nlohmann::json& body, const char* field) {
  auto it = body.find(field);
  if (it == body.end()) return std::nullopt;  // null is not a value of any field
  if (!it->is_boolean()) throw validation_error(field, "must be true or false");
  return it->get<bool>();
}

std::optional<long> optional_int(const nlohmann::json& body, const char* field, long min, long max) {
  auto it = body.find(field);
  if (it == body.end()) return std::nullopt;  // null is not a value of any field
  if (!it->is_number_integer()) throw validation_error(field, "must be an integer");
  long v = it->get<long>();
  if (v < min || v > max) throw validation_error(field, "must be " + std::to_string(min) + "-" + std::to_string(max));
  return v;
}

// ---- byte-faithful output ------------------------------------------------------------

bool is_valid_utf8(std::string_view s) noexcept { return utf8::is_well_formed(s, utf8::Nul::allowed); }

std::string utf8_lossy(std::string_view s) { return utf8::replace_invalid(s, utf8::Nul::allowed); }

}  // namespace pw::server

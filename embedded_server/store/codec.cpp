#include "embedded_server/store/codec.hpp"

#include <cstdint>

namespace pw::server::detail {

namespace {

// Length of the well-formed UTF-8 sequence at s[i] (Unicode table 3-7), 0 if none.
// NUL counts as not well-formed here.
std::size_t utf8_seq(std::string_view s, std::size_t i) noexcept {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  const std::size_t left = s.size() - i;
  if (c < 0x80) return c == 0 ? 0 : 1;
  const auto cont = [&](std::size_t k, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return k < left && b(k) >= lo && b(k) <= hi;
  };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (c == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

constexpr std::string_view REPLACEMENT = "\xEF\xBF\xBD";

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

struct JsonReader {
  std::string_view s;
  std::size_t i = 0;

  [[noreturn]] static void fail() { throw StoreError("corrupt labels JSON in the database"); }
  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  }
  void expect(char c) {
    ws();
    if (i >= s.size() || s[i] != c) fail();
    ++i;
  }
  bool peek(char c) {
    ws();
    return i < s.size() && s[i] == c;
  }
  unsigned hex4() {
    if (i + 4 > s.size()) fail();
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s[i++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
      else fail();
    }
    return v;
  }
  std::string str() {
    expect('"');
    std::string out;
    while (true) {
      if (i >= s.size()) fail();
      std::size_t start = i;
      while (i < s.size() && s[i] != '"' && s[i] != '\\') ++i;
      out.append(s.substr(start, i - start));
      if (i >= s.size()) fail();
      if (s[i] == '"') {
        ++i;
        return out;
      }
      ++i;  // backslash
      if (i >= s.size()) fail();
      char e = s[i++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          std::uint32_t cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 <= s.size() && s[i] == '\\' && s[i + 1] == 'u') {
            std::size_t save = i;
            i += 2;
            std::uint32_t lo = hex4();
            if (lo >= 0xDC00 && lo <= 0xDFFF) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            else i = save;
          }
          if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0) out.append(REPLACEMENT);
          else append_utf8(out, cp);
          break;
        }
        default: fail();
      }
    }
  }
};

}  // namespace

bool is_clean_text(std::string_view s) noexcept {
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c != 0 && c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = utf8_seq(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string sanitize_text(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t len = utf8_seq(s, i);
    if (len == 0) {
      out.append(REPLACEMENT);
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char HEX[] = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\u00";
          out += HEX[c >> 4];
          out += HEX[c & 0xF];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

std::string labels_to_json(const Labels& labels) {
  std::string out = "{";
  bool first = true;
  std::string kb, vb;
  // Sanitising can map two distinct keys to one; the later (in key order) wins, as in a map.
  Labels clean_labels;
  for (const auto& [k, v] : labels) clean_labels[clean(k, kb)] = clean(v, vb);
  for (const auto& [k, v] : clean_labels) {
    if (!first) out += ',';
    first = false;
    append_json_string(out, k);
    out += ':';
    append_json_string(out, v);
  }
  out += '}';
  return out;
}

Labels labels_from_json(std::string_view json) {
  Labels labels;
  JsonReader r{json};
  r.expect('{');
  if (r.peek('}')) {
    ++r.i;
  } else {
    while (true) {
      std::string k = r.str();
      r.expect(':');
      std::string v = r.str();
      labels.insert_or_assign(std::move(k), std::move(v));
      if (r.peek(',')) {
        ++r.i;
        continue;
      }
      r.expect('}');
      break;
    }
  }
  r.ws();
  if (r.i != json.size()) JsonReader::fail();
  return labels;
}

const Labels& clean(const Labels& selector, Labels& buf) {
  bool all_clean = true;
  for (const auto& [k, v] : selector) all_clean = all_clean && is_clean_text(k) && is_clean_text(v);
  if (all_clean) return selector;
  buf.clear();
  for (const auto& [k, v] : selector) buf[sanitize_text(k)] = sanitize_text(v);
  return buf;
}

bool labels_match(const Labels& labels, const Labels& selector) noexcept {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

std::string hex_decode(std::string_view hex) {
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2) throw StoreError("corrupt hex value in the database");
  std::string out(hex.size() / 2, '\0');
  for (std::size_t k = 0; k < out.size(); ++k) {
    int hi = val(hex[2 * k]), lo = val(hex[2 * k + 1]);
    if (hi < 0 || lo < 0) throw StoreError("corrupt hex value in the database");
    out[k] = static_cast<char>(hi << 4 | lo);
  }
  return out;
}

std::vector<PodRecord> select_pods(const std::vector<PodRecord>& pods, const Labels& selector) {
  if (selector.empty()) return pods;
  std::vector<PodRecord> out;
  for (const auto& p : pods)
    if (labels_match(p.labels, selector)) out.push_back(p);
  return out;
}

}  // namespace pw::server::detail

#include "embedded_server/store/codec.hpp"

#include "embedded_server/store/utf8.hpp"

#include <utility>
#include <array>
#include <cstdint>
#include <optional>

namespace pw::server::detail {

namespace {

// JSON's two-character escapes: the letter after the backslash and the byte it stands for.
constexpr std::array<std::pair<char, char>, 8> JSON_ESCAPES{{
    {'"', '"'},
    {'\\', '\\'},
    {'/', '/'},
    {'b', '\b'},
    {'f', '\f'},
    {'n', '\n'},
    {'r', '\r'},
    {'t', '\t'},
}};

// The byte the escape "\<letter>" stands for; nullopt when JSON has no such escape.
std::optional<char> unescape(char letter) {
  for (const auto& [l, byte] : JSON_ESCAPES)
    if (l == letter) return byte;
  return std::nullopt;
}

// The letter append_json_string writes after a backslash for `byte`, 0 for none: the short
// forms of '"', '\\', '\n', '\r' and '\t' ('/' stays as it is, \b and \f become \u00XX
// like the other control bytes, as labels have always been stored).
char escape_letter(char byte) {
  if (byte == '/' || byte == '\b' || byte == '\f') return 0;
  for (const auto& [letter, b] : JSON_ESCAPES)
    if (b == byte) return letter;
  return 0;
}

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
      if (c >= '0' && c <= '9')
        v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= static_cast<unsigned>(c - 'A' + 10);
      else
        fail();
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
      const char e = s[i++];
      if (e == 'u') {
        std::uint32_t cp = hex4();
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 <= s.size() && s[i] == '\\' && s[i + 1] == 'u') {
          std::size_t save = i;
          i += 2;
          std::uint32_t lo = hex4();
          if (lo >= 0xDC00 && lo <= 0xDFFF)
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          else
            i = save;
        }
        if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0)
          out.append(utf8::REPLACEMENT);
        else
          append_utf8(out, cp);
        continue;
      }
      const std::optional<char> byte = unescape(e);
      if (!byte) fail();
      out += *byte;
    }
  }
};

}  // namespace

bool is_clean_text(std::string_view s) noexcept { return utf8::is_well_formed(s, utf8::Nul::refused); }

std::string sanitize_text(std::string_view s) { return utf8::replace_invalid(s, utf8::Nul::refused); }

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char HEX[] = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (const char letter = escape_letter(ch)) {
      out += '\\';
      out += letter;
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\u00";
      out += HEX[c >> 4];
      out += HEX[c & 0xF];
    } else {
      out += ch;
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

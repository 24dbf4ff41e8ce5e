#include <podwrangler/errors.hpp>
#include <podwrangler/url.hpp>

#include <cctype>

namespace pw {

namespace {
constexpr std::size_t kMaxUrl = 8192;

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent escapes are not accepted in host names: no resolver decodes them, and a
// decoded "%00" or "%2F" would change what the name means.
bool host_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' || c == '~';
}
}  // namespace

std::string percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) throw std::invalid_argument("escape");
      int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
      if (hi < 0 || lo < 0) throw std::invalid_argument("escape");
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string percent_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0xF]);
    }
  }
  return out;
}

std::optional<std::string> Url::param(std::string_view key) const {
  for (const auto& [k, v] : query)
    if (k == key) return v;
  return std::nullopt;
}

std::string Url::authority() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return port.empty() ? h : h + ":" + port;
}

Url parse_url_strict(std::string_view url) {
  if (url.empty()) throw PodURLParseError("url", "empty URL", url);
  if (url.size() > kMaxUrl) throw PodURLParseError("url", "longer than " + std::to_string(kMaxUrl) + " bytes", url);
  for (char c : url) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) throw PodURLParseError("url", "contains a space or control character", url);
  }
  Url out;
  std::size_t se = url.find("://");
  if (se == std::string_view::npos || se == 0) throw PodURLParseError("scheme", "missing '<scheme>://'", url);
  for (std::size_t i = 0; i < se; ++i) {
    char c = url[i];
    bool ok = std::isalpha(static_cast<unsigned char>(c)) ||
              (i > 0 && (std::isdigit(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.'));
    if (!ok) throw PodURLParseError("scheme", "invalid scheme", url);
    out.scheme.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  std::size_t as = se + 3;
  std::size_t ae = url.find_first_of("/?#", as);
  if (ae == std::string_view::npos) ae = url.size();
  std::string_view authority = url.substr(as, ae - as);
  std::size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    out.userinfo = std::string(authority.substr(0, at));
    authority = authority.substr(at + 1);
  }
  std::string_view hostport = authority;
  if (!hostport.empty() && hostport.front() == '[') {
    std::size_t rb = hostport.find(']');
    if (rb == std::string_view::npos) throw PodURLParseError("host", "unterminated IPv6 literal", url);
    out.host = std::string(hostport.substr(1, rb - 1));
    for (char c : out.host)
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.')
        throw PodURLParseError("host", "invalid IPv6 literal", url);
    hostport = hostport.substr(rb + 1);
    if (!hostport.empty()) {
      if (hostport.front() != ':') throw PodURLParseError("host", "junk after IPv6 literal", url);
      out.port = std::string(hostport.substr(1));
    }
  } else {
    std::size_t colon = hostport.rfind(':');
    if (colon != std::string_view::npos) {
      out.port = std::string(hostport.substr(colon + 1));
      hostport = hostport.substr(0, colon);
    }
    for (char c : hostport)
      if (!host_char(c)) throw PodURLParseError("host", "invalid character in host name", url);
    out.host = std::string(hostport);
  }
  if (!authority.empty() && authority.back() == ':') throw PodURLParseError("port", "empty port", url);
  if (!out.port.empty()) {
    if (out.port.size() > 5) throw PodURLParseError("port", "not a port number", url);
    for (char c : out.port)
      if (!std::isdigit(static_cast<unsigned char>(c))) throw PodURLParseError("port", "not a port number", url);
    int p = std::stoi(out.port);
    if (p < 1 || p > 65535) throw PodURLParseError("port", "out of range 1-65535", url);
  }
  std::size_t qs = url.find('?', ae);
  std::size_t fs = url.find('#', ae);
  std::size_t path_end = std::min(qs, fs);
  if (path_end == std::string_view::npos) path_end = url.size();
  out.path = std::string(url.substr(ae, path_end - ae));
  if (qs != std::string_view::npos && (fs == std::string_view::npos || qs < fs)) {
    std::size_t qe = fs == std::string_view::npos ? url.size() : fs;
    std::string_view q = url.substr(qs + 1, qe - qs - 1);
    std::size_t i = 0;
    while (i < q.size()) {
      std::size_t amp = q.find('&', i);
      if (amp == std::string_view::npos) amp = q.size();
      std::string_view pair = q.substr(i, amp - i);
      if (!pair.empty()) {
        std::size_t eq = pair.find('=');
        std::string_view k = pair.substr(0, eq);
        std::string_view v = eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
        try {
          out.query.emplace_back(percent_decode(k, false), percent_decode(v, false));
        } catch (const std::invalid_argument&) {
          throw PodURLParseError("query", "invalid percent escape", url);
        }
      }
      i = amp + 1;
    }
  }
  return out;
}

}  // namespace pw

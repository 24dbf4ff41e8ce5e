#include <podwrangler/redact.hpp>
#include <podwrangler/secret.hpp>

#include <algorithm>
#include <array>
#include <cctype>

namespace pw {

bool is_sensitive_key(std::string_view key) noexcept {
  std::string k;
  k.reserve(key.size());
  for (char c : key) k.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  static constexpr std::array<std::string_view, 9> needles{
      "token", "password", "passwd", "secret", "api_key", "apikey", "authorization", "auth", "jwt"};
  return std::any_of(needles.begin(), needles.end(),
                     [&](std::string_view n) { return k.find(n) != std::string::npos; });
}

std::string redact_url(std::string_view url) {
  std::string out;
  out.reserve(url.size());
  // userinfo password: scheme://user:pass@host
  std::size_t scheme_end = url.find("://");
  std::size_t pos = 0;
  if (scheme_end != std::string_view::npos) {
    std::size_t auth_start = scheme_end + 3;
    std::size_t auth_end = url.find_first_of("/?#", auth_start);
    if (auth_end == std::string_view::npos) auth_end = url.size();
    std::string_view authority = url.substr(auth_start, auth_end - auth_start);
    std::size_t at = authority.rfind('@');
    out.append(url.substr(0, auth_start));
    if (at != std::string_view::npos) {
      std::string_view userinfo = authority.substr(0, at);
      std::size_t colon = userinfo.find(':');
      if (colon != std::string_view::npos) {
        out.append(userinfo.substr(0, colon + 1));
        out.append(REDACTED);
      } else {
        out.append(userinfo);
      }
      out.append(authority.substr(at));
    } else {
      out.append(authority);
    }
    pos = auth_end;
  }
  // query parameters
  std::size_t q = url.find('?', pos);
  if (q == std::string_view::npos) {
    out.append(url.substr(pos));
    return out;
  }
  out.append(url.substr(pos, q + 1 - pos));
  std::size_t frag = url.find('#', q);
  std::string_view query = url.substr(q + 1, (frag == std::string_view::npos ? url.size() : frag) - q - 1);
  std::size_t i = 0;
  bool first = true;
  while (i <= query.size()) {
    std::size_t amp = query.find('&', i);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view pair = query.substr(i, amp - i);
    if (!first) out.push_back('&');
    first = false;
    std::size_t eq = pair.find('=');
    if (eq != std::string_view::npos && is_sensitive_key(pair.substr(0, eq))) {
      out.append(pair.substr(0, eq + 1));
      out.append(REDACTED);
    } else {
      out.append(pair);
    }
    i = amp + 1;
    if (amp == query.size()) break;
  }
  if (frag != std::string_view::npos) out.append(url.substr(frag));
  return out;
}

std::string redact_value(std::string_view text, std::string_view secret) {
  if (secret.size() < 4) return std::string(text);
  std::string out;
  std::size_t i = 0;
  while (true) {
    std::size_t p = text.find(secret, i);
    if (p == std::string_view::npos) break;
    out.append(text.substr(i, p - i));
    out.append(REDACTED);
    i = p + secret.size();
  }
  out.append(text.substr(i));
  return out;
}

}  // namespace pw

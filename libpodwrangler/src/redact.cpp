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
  static constexpr std::array<std::string_view, 13> needles{
      "token", "password", "passwd", "secret",     "api_key",   "api-key", "apikey",
      "authorization", "auth", "jwt", "cookie", "credential", "signature"};
  return std::any_of(needles.begin(), needles.end(),
                     [&](std::string_view n) { return k.find(n) != std::string::npos; });
}

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Lenient percent-decoding, only to recognise parameter names: "%74oken" is "token".
// Broken escapes are kept as they are.
std::string decode_name(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i] == '+' ? ' ' : s[i]);
  }
  return out;
}

bool sensitive_name(std::string_view raw) {
  return is_sensitive_key(raw) || (raw.find('%') != std::string_view::npos &&
                                   is_sensitive_key(decode_name(raw)));
}

// One '&'-separated item. It may hold further "k=v" items after ';' or '?' (servers
// that split on ';', a nested URL): the first one with a sensitive name hides the rest
// of the item, so a value is never cut short by a separator inside it.
void append_item(std::string& out, std::string_view item) {
  std::size_t start = 0;
  while (true) {
    std::size_t sep = item.find_first_of(";?", start);
    std::string_view seg = item.substr(start, sep == std::string_view::npos ? std::string_view::npos
                                                                           : sep - start);
    std::size_t eq = seg.find('=');
    if (eq != std::string_view::npos && sensitive_name(seg.substr(0, eq))) {
      out.append(item.substr(0, start + eq + 1));
      out.append(REDACTED);
      return;
    }
    if (sep == std::string_view::npos) break;
    start = sep + 1;
  }
  out.append(item);
}

// A query string or fragment of '&'-separated items.
void append_params(std::string& out, std::string_view params) {
  std::size_t i = 0;
  while (true) {
    std::size_t amp = params.find('&', i);
    if (amp == std::string_view::npos) amp = params.size();
    append_item(out, params.substr(i, amp - i));
    if (amp == params.size()) break;
    out.push_back('&');
    i = amp + 1;
  }
}

}  // namespace

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
  // Query parameters, then the fragment (OAuth's implicit flow puts access_token there).
  std::size_t frag = url.find('#', pos);
  std::string_view before =
      url.substr(pos, frag == std::string_view::npos ? std::string_view::npos : frag - pos);
  std::size_t q = before.find('?');
  if (q == std::string_view::npos) {
    out.append(before);
  } else {
    out.append(before.substr(0, q + 1));
    append_params(out, before.substr(q + 1));
  }
  if (frag != std::string_view::npos) {
    out.push_back('#');
    append_params(out, url.substr(frag + 1));
  }
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

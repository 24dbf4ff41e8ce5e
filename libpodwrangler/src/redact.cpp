// The one redactor (rules in redact.hpp). A scanner, not a URL parser: it must also work on
// malformed URLs (that is when they get echoed in error messages), on URLs nested inside
// query values, paths or JSON, and on free text, and it must never touch ordinary words.
// Self-contained (the PostgreSQL module compiles this file without the rest of the core).
#include <podwrangler/redact.hpp>
#include <podwrangler/secret.hpp>

#include <algorithm>
#include <array>
#include <cstddef>

namespace pw {

namespace {

constexpr std::string_view kMask = "***";
constexpr std::size_t npos = std::string_view::npos;
// Percent-encoded text inside percent-encoded text…: deeper than this is hidden whole.
constexpr int kMaxDepth = 4;

bool ascii_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool ascii_lower(char c) { return c >= 'a' && c <= 'z'; }
bool ascii_alpha(char c) { return ascii_upper(c) || ascii_lower(c); }
bool ascii_digit(char c) { return c >= '0' && c <= '9'; }
bool ascii_alnum(char c) { return ascii_alpha(c) || ascii_digit(c); }
char to_lower(char c) { return ascii_upper(c) ? static_cast<char>(c - 'A' + 'a') : c; }
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool one_of(char c, std::string_view set) { return set.find(c) != npos; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool valid_escape(std::string_view s, std::size_t i) {
  return s[i] == '%' && i + 2 < s.size() && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0;
}

// One level of lenient percent-decoding ('+' stays '+'); broken escapes are kept.
std::string percent_decode_lenient(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (valid_escape(s, i)) {
      out.push_back(static_cast<char>(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Encodes all but unreserved characters and the mask's '*'.
std::string percent_encode_keep_mask(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (ascii_alnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == '*') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0xF]);
    }
  }
  return out;
}

bool sensitive_name(std::string_view raw) {
  return is_sensitive_key(raw) || (raw.find('%') != npos && is_sensitive_key(percent_decode_lenient(raw)));
}

// Characters of a parameter name: "X-Amz-Signature", "user[password]", "%74oken", "--api-key".
bool is_key_char(char c) { return ascii_alnum(c) || one_of(c, "_-.%[]~"); }
bool is_scheme_char(char c) { return ascii_alnum(c) || one_of(c, "+-."); }
// Where an authority ends: RFC 3986 delimiters, and characters no URL holds raw (quotes,
// angle brackets) so that a URL quoted in text or JSON ends at its quote.
bool is_authority_end(char c) { return one_of(c, "/?#\\\"'<>`") || is_space(c); }
// Where a value of a sensitive key ends (a ';' does not end it: servers that split on ';'
// would otherwise see the rest as the value).
bool is_value_end(char c) { return one_of(c, "&#\"<>`") || is_space(c); }
bool is_trailing_punct(char c) { return one_of(c, ")]}>'\"`,;:."); }
// Characters of a percent-encoded run ('/', '=', '&', '?', '#' and quotes end it).
bool is_encoded_char(char c) { return ascii_alnum(c) || one_of(c, "%.-_~+*:@!"); }
// What may precede "user:pw" of a scheme-less "user:pw@host".
bool is_userinfo_start(char c) { return one_of(c, "=&?#/;,([{<\"'`|@") || is_space(c); }

// A host:port whose "port" is not a number: "user:pa" of "https://user:pa/ss@host".
bool malformed_port(std::string_view authority) {
  std::string_view port;
  if (!authority.empty() && authority[0] == '[') {
    std::size_t rb = authority.find(']');
    if (rb == npos || rb + 1 >= authority.size() || authority[rb + 1] != ':') return false;
    port = authority.substr(rb + 2);
  } else {
    std::size_t colon = authority.find(':');
    if (colon == npos) return false;
    port = authority.substr(colon + 1);
  }
  for (char c : port)
    if (!ascii_digit(c)) return true;
  return false;
}

// Values that are documentation, not secrets: KEY=VALUE, token=<jwt>, ${TOKEN}, "…", ***.
// Capitals are a placeholder only after a key in capitals (KEY=VALUE, not token=SECRET).
bool placeholder(std::string_view key, std::string_view v) {
  if (v == kMask || v == "..." || v == "\xE2\x80\xA6" || iequals(v, "value")) return true;
  if (v.size() >= 2 && ((v.front() == '<' && v.back() == '>') || (v.front() == '{' && v.back() == '}'))) return true;
  if (v.size() >= 2 && v[0] == '$') {
    std::string_view name = v.substr(1);
    if (name.size() >= 2 && name.front() == '{' && name.back() == '}') name = name.substr(1, name.size() - 2);
    if (name.empty()) return false;
    for (char c : name)
      if (!ascii_upper(c) && !ascii_digit(c) && c != '_') return false;
    return true;
  }
  auto capitals = [](std::string_view w) {
    bool upper = false;
    for (char c : w) {
      if (ascii_upper(c))
        upper = true;
      else if (c != '_' && c != '-')
        return false;
    }
    return upper;
  };
  return v.size() <= 24 && capitals(v) && capitals(key);
}

// Position of the closing quote `q` at or after `from` ('"' honours backslash escapes).
std::size_t find_close(std::string_view s, std::size_t from, char q) {
  for (std::size_t i = from; i < s.size(); ++i) {
    if (q == '"' && s[i] == '\\') {
      ++i;
      continue;
    }
    if (s[i] == q) return i;
  }
  return npos;
}

std::string redact_impl(std::string_view text, int depth);

enum class Pending { none, quote, json_value };

// Rules 1-3 on one whitespace-free word; appends the result to `out`. What it cannot finish
// inside the word (a quoted value with spaces, a JSON value in the next word) is returned.
class WordScrubber {
 public:
  WordScrubber(std::string_view s, int depth, std::string& out) : s_(s), depth_(depth), out_(out) {}

  Pending run() {
    const std::size_t n = s_.size();
    while (i_ < n) {
      char c = s_[i_];
      if (c == ':' && s_.substr(i_, 3) == "://")
        authority();
      else if (c == '=')
        key_value();
      else if (c == ':' && i_ > 0 && s_[i_ - 1] == '"')
        json_pair();
      else if (c == '%' && valid_escape(s_, i_))
        encoded();
      else if (c == '@')
        schemeless_userinfo();
      else
        ++i_;
    }
    out_.append(s_.substr(emitted_));
    return pending_;
  }
  char quote() const { return quote_; }

 private:
  void replace(std::size_t b, std::size_t e, std::string_view with) {
    if (b < emitted_) b = emitted_;
    if (e < b) e = b;
    out_.append(s_.substr(emitted_, b - emitted_));
    out_.append(with);
    emitted_ = e;
  }
  // Hides s_[b, e), the value of `key`, unless it is empty or a placeholder.
  void hide(std::string_view key, std::size_t b, std::size_t e, std::size_t full_e) {
    std::string_view v = s_.substr(b, e - b);
    if (!v.empty() && !placeholder(key, v) && !placeholder(key, s_.substr(b, full_e - b))) replace(b, e, kMask);
  }
  void hide(std::string_view key, std::size_t b, std::size_t e) { hide(key, b, e, e); }
  // A value running past the end of the word, up to the closing quote `q` somewhere later.
  void hide_rest_until(char q) {
    replace(i_, s_.size(), kMask);
    i_ = s_.size();
    pending_ = Pending::quote;
    quote_ = q;
  }

  std::size_t next_at(std::size_t from) {
    if (next_at_ == npos - 1 || (next_at_ != npos && next_at_ < from)) next_at_ = s_.find('@', from);
    return next_at_;
  }

  // Rule 1 at "://".
  void authority() {
    const std::size_t n = s_.size();
    std::size_t sb = i_;
    while (sb > 0 && is_scheme_char(s_[sb - 1])) --sb;
    std::string_view scheme = s_.substr(sb, i_ - sb);
    std::size_t a = i_ + 3, e = a;
    while (e < n && !is_authority_end(s_[e])) ++e;
    std::string_view auth = s_.substr(a, e - a);
    std::size_t at = auth.rfind('@');
    if (at == npos) {
      if (malformed_port(auth)) {
        // "https://user:pa/ss@host", "…server=https://u:p&w@x": the password holds a
        // delimiter; it ends at the last '@' before the next '/' after the first '@'.
        std::size_t f = next_at(e);
        if (f != npos) {
          std::size_t stop = f;
          while (stop < n && s_[stop] != '/' && !is_space(s_[stop])) ++stop;
          std::size_t last = s_.rfind('@', stop - 1);
          replace(a, last, kMask);
          i_ = last + 1;
          return;
        }
      }
      i_ = a;
      return;
    }
    std::string_view userinfo = auth.substr(0, at);
    bool keep = userinfo.empty() || (iequals(scheme, "k8s") && userinfo.find(':') == npos);
    if (!keep) replace(a, a + at, kMask);
    i_ = a + at + 1;
  }

  // Rule 2 at '=': "token=…", "?a=1&Password=…", ";jsessionid=…", "--api-key=…".
  void key_value() {
    const std::size_t n = s_.size();
    // The name is read from the input even where it was already rewritten ("%40token" of a
    // re-encoded run): the value after '=' is what gets hidden.
    std::size_t j = i_, ks = j;
    while (ks > 0 && is_key_char(s_[ks - 1])) --ks;
    ++i_;
    std::string_view key = s_.substr(ks, j - ks);
    if (key.empty() || !sensitive_name(key)) return;
    std::size_t vb = j + 1;
    if (vb < n && (s_[vb] == '"' || s_[vb] == '\'')) {
      std::size_t ve = find_close(s_, vb + 1, s_[vb]);
      if (ve == npos) {
        i_ = vb + 1;
        hide_rest_until(s_[vb]);
        return;
      }
      hide(key, vb + 1, ve);
      i_ = ve + 1;
      return;
    }
    std::size_t ve = vb;
    while (ve < n && !is_value_end(s_[ve])) ++ve;
    const std::size_t full_ve = ve;
    if (ve == n)
      while (ve > vb && is_trailing_punct(s_[ve - 1])) --ve;
    hide(key, vb, ve, full_ve);
    if (ve > i_) i_ = ve;
  }

  // Rule 2 for JSON: "password":"…" (the value may be in the next word).
  void json_pair() {
    const std::size_t n = s_.size();
    std::size_t close = i_ - 1;
    ++i_;
    if (close == 0) return;
    std::size_t open = s_.rfind('"', close - 1);
    if (open == npos || open < emitted_) return;
    std::string_view key = s_.substr(open + 1, close - open - 1);
    if (!sensitive_name(key)) return;
    std::size_t vb = close + 2;
    if (vb == n) {
      pending_ = Pending::json_value;
      return;
    }
    if (s_[vb] == '"') {
      std::size_t ve = find_close(s_, vb + 1, '"');
      if (ve == npos) {
        i_ = vb + 1;
        hide_rest_until('"');
        return;
      }
      hide(key, vb + 1, ve);
      i_ = ve + 1;
      return;
    }
    std::size_t ve = vb;
    while (ve < n && !one_of(s_[ve], ",}]")) ++ve;
    hide(key, vb, ve);
    i_ = ve;
  }

  // Rule 3 at a percent escape: the run around it is decoded and scanned again.
  void encoded() {
    const std::size_t n = s_.size();
    std::size_t rb = i_, re = i_;
    while (rb > emitted_ && is_encoded_char(s_[rb - 1])) --rb;
    while (re < n && is_encoded_char(s_[re])) ++re;
    std::string_view run = s_.substr(rb, re - rb);
    std::string decoded = percent_decode_lenient(run);
    std::string redacted = redact_impl(decoded, depth_ + 1);
    if (redacted != decoded) replace(rb, re, percent_encode_keep_mask(redacted));
    i_ = re;
  }

  // Rule 1 without a scheme: "alice:s3cret@db:5432".
  void schemeless_userinfo() {
    const std::size_t n = s_.size();
    std::size_t t = i_, b = t;
    ++i_;
    // Back to a delimiter, to what was already rewritten, or to a mask ("***@": done).
    while (b > emitted_ && !is_userinfo_start(s_[b - 1]) && !(b >= 3 && s_.substr(b - 3, 3) == kMask)) --b;
    std::string_view seg = s_.substr(b, t - b);
    if (seg.find(':') == npos || seg == kMask || t + 1 >= n || !(ascii_alnum(s_[t + 1]) || s_[t + 1] == '[')) return;
    for (std::string_view scheme : {"mailto:", "sip:", "sips:", "xmpp:"})
      if (istarts_with(seg, scheme)) return;
    // A password may hold '@': the userinfo ends at the last '@' of this token.
    std::size_t end = t + 1;
    while (end < n && !one_of(s_[end], "/?#;,\"'<>`") && !is_space(s_[end])) ++end;
    std::size_t last = s_.rfind('@', end - 1);
    replace(b, last, kMask);
    i_ = last + 1;
  }

  std::string_view s_;
  int depth_;
  std::string& out_;
  std::size_t i_ = 0;
  std::size_t emitted_ = 0;
  std::size_t next_at_ = npos - 1;  // cache of s_.find('@', …); npos - 1: not looked up yet
  Pending pending_ = Pending::none;
  char quote_ = 0;
};

bool is_auth_scheme(std::string_view w) {
  for (std::string_view s : {"bearer", "basic", "token", "digest", "negotiate"})
    if (iequals(w, s)) return true;
  return false;
}

// What follows "Bearer"/"Basic" in prose is hidden only when it is not a plain word:
// "bearer tokens", "Basic authentication" stay; so does a parameter (realm="x").
bool looks_like_credential(std::string_view w) {
  std::size_t eq = w.find('=');
  if (eq != npos && eq > 0 && eq + 1 < w.size() && w[eq + 1] != '=') {
    bool name = true;
    for (std::size_t i = 0; i < eq; ++i) name = name && ascii_alpha(w[i]);
    if (name) return false;
  }
  bool letters = true, plain_case = true;
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (!ascii_alpha(w[i]))
      letters = false;
    else if (i > 0 && ascii_upper(w[i]))
      plain_case = false;
  }
  return !(letters && plain_case && w.size() < 20);
}

bool is_sensitive_header(std::string_view name) {
  if (iequals(name, "authorization") || iequals(name, "proxy-authorization") || iequals(name, "cookie") ||
      iequals(name, "set-cookie"))
    return true;
  return name.find('-') != npos && is_sensitive_key(name);
}

std::string redact_impl(std::string_view text, int depth) {
  if (depth > kMaxDepth) return std::string(kMask);
  static constexpr std::string_view kOpen = "'\"<([{`";
  static constexpr std::string_view kClose = "'\">)]}`,;:.";
  enum class Hide { none, soft, hard } hide = Hide::none;
  std::string out;
  out.reserve(text.size());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    if (is_space(text[i])) {
      out.push_back(text[i++]);
      continue;
    }
    std::size_t j = i;
    while (j < n && !is_space(text[j])) ++j;
    std::string_view word = text.substr(i, j - i);
    i = j;
    std::size_t a = 0, b = word.size();
    while (a < b && one_of(word[a], kOpen)) ++a;
    while (b > a && one_of(word[b - 1], kClose)) --b;
    std::string_view core = word.substr(a, b - a);

    // Rule 4: the credential after an auth scheme or a credential header.
    if (hide == Hide::hard && !core.empty()) {
      if (is_auth_scheme(core)) {
        out.append(word);
        continue;
      }
      hide = Hide::none;
      out.append(word.substr(0, a));
      out.append(kMask);
      out.append(word.substr(b));
      continue;
    }
    std::string scrubbed;
    WordScrubber scrub(word, depth, scrubbed);
    Pending pending = scrub.run();
    if (hide == Hide::soft && !core.empty()) {
      // Decided on the scrubbed word, so that redacting again decides the same.
      hide = Hide::none;
      std::size_t sa = 0, sb = scrubbed.size();
      while (sa < sb && one_of(scrubbed[sa], kOpen)) ++sa;
      while (sb > sa && one_of(scrubbed[sb - 1], kClose)) --sb;
      std::string_view score = std::string_view(scrubbed).substr(sa, sb - sa);
      if (!score.empty() && looks_like_credential(score)) {
        out.append(scrubbed, 0, sa);
        out.append(kMask);
        out.append(scrubbed, sb);
        if (pending == Pending::quote) {
          std::size_t k = find_close(text, i, scrub.quote());
          if (k == npos) return out;
          i = k;
        }
        continue;
      }
    }
    out.append(scrubbed);
    if (iequals(core, "bearer") || iequals(core, "basic"))
      hide = Hide::soft;
    else if (!core.empty() && b < word.size() && word[b] == ':' && is_sensitive_header(core))
      hide = Hide::hard;

    if (pending == Pending::quote) {
      std::size_t k = find_close(text, i, scrub.quote());
      if (k == npos) return out;  // the rest is the value
      i = k;
    } else if (pending == Pending::json_value) {
      while (i < n && is_space(text[i])) out.push_back(text[i++]);
      if (i < n && text[i] == '"') {
        std::size_t k = find_close(text, i + 1, '"');
        out.push_back('"');
        if (k == npos) {
          out.append(kMask);
          return out;
        }
        std::string_view v = text.substr(i + 1, k - i - 1);
        out.append(v.empty() || placeholder({}, v) ? v : kMask);
        i = k;
      } else {
        std::size_t k = i;
        while (k < n && !is_space(text[k]) && !one_of(text[k], ",}]")) ++k;
        std::string_view v = text.substr(i, k - i);
        out.append(v.empty() || placeholder({}, v) ? v : kMask);
        i = k;
      }
    }
  }
  return out;
}

}  // namespace

bool is_sensitive_key(std::string_view key) noexcept {
  std::string flat;
  flat.reserve(key.size());
  for (char c : key)
    if (ascii_alnum(c)) flat.push_back(to_lower(c));
  static constexpr std::array<std::string_view, 15> kContains{
      "token",  "passw", "passphrase", "secret", "signature",  "credential", "apikey", "authorization",
      "cookie", "jwt",   "session",    "sessid", "privatekey", "accesskey",  "bearer"};
  for (std::string_view needle : kContains)
    if (flat.find(needle) != npos) return true;
  // Words: split at non-alphanumerics and camelCase ("apiKey", "APIKey" → api, key).
  std::size_t i = 0;
  while (i < key.size()) {
    if (!ascii_alnum(key[i])) {
      ++i;
      continue;
    }
    std::size_t j = i + 1;
    while (j < key.size() && ascii_alnum(key[j])) {
      if (ascii_upper(key[j]) && (ascii_lower(key[j - 1]) || ascii_digit(key[j - 1]))) break;
      if (ascii_upper(key[j]) && ascii_upper(key[j - 1]) && j + 1 < key.size() && ascii_lower(key[j + 1])) break;
      ++j;
    }
    std::string w;
    for (std::size_t k = i; k < j; ++k) w.push_back(to_lower(key[k]));
    if (w == "key" || w == "auth" || w == "sig" || w == "pass" || ends_with(w, "key") || ends_with(w, "auth"))
      return true;
    i = j;
  }
  return false;
}

std::string redact_url(std::string_view url) { return redact_impl(url, 0); }

std::string redact_text(std::string_view text) { return redact_impl(text, 0); }

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

std::string shown_command(std::string_view command) {
  // Redacted before it is cut: a cut in the middle of "https://u:pw@h" would hide the '@'
  // that marks the password.
  constexpr std::size_t kMax = 200;
  std::string shown = redact_text(command);
  if (command.size() <= kMax && shown.size() <= kMax) return shown;
  std::string out(shown.substr(0, std::min(kMax, shown.size())));
  out += "... (";
  out += std::to_string(command.size());
  out += " bytes)";
  return out;
}

std::string shown_url(std::string_view url) {
  // Control bytes become '?' before redaction, so "pod=x\0token=…" is seen as two items.
  // Redacted whole, then cut: cut first, "https://TOKEN…@host" would lose the '@' that
  // marks TOKEN as userinfo.
  std::string r(url);
  for (char& c : r)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  r = redact_url(r);
  if (r.size() > 512) {
    r.resize(512);
    r += "...";
  }
  return r;
}

}  // namespace pw

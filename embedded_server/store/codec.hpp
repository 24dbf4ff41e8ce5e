#pragma once
// Private helpers shared by the SQLite and PostgreSQL stores: the text sanitisation both
// apply before writing (so they store identical text), the labels JSON codec, the selector
// match and the URL-parsing pieces of open_store.
#include "embedded_server/store/store.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace pw::server::detail {

// Text columns hold valid UTF-8 without NUL on both backends (PostgreSQL text can hold
// neither 0x00 nor invalid UTF-8). Every NUL byte and every byte that does not belong to a
// well-formed UTF-8 sequence (overlong forms, surrogates and code points above U+10FFFF
// are not well-formed) becomes U+FFFD, one replacement per offending byte.
bool is_clean_text(std::string_view s) noexcept;
std::string sanitize_text(std::string_view s);
// `s` itself when clean, else its sanitised copy kept in `buf`.
inline const std::string& clean(const std::string& s, std::string& buf) {
  if (is_clean_text(s)) return s;
  buf = sanitize_text(s);
  return buf;
}

// Labels as a JSON object of strings, keys sorted: {"app":"web","env":"prod"}.
// Keys and values are sanitised like any text.
std::string labels_to_json(const Labels& labels);
// Parses what labels_to_json writes (any JSON object of strings); throws StoreError.
Labels labels_from_json(std::string_view json);
// `selector` itself when all its keys and values are clean, else its sanitised copy in `buf`
// (so a selector finds labels that were sanitised when stored).
const Labels& clean(const Labels& selector, Labels& buf);
// True when `labels` contains every pair of `selector`.
bool labels_match(const Labels& labels, const Labels& selector) noexcept;
// The pods whose labels contain every pair of `selector` (all of them for an empty one).
std::vector<PodRecord> select_pods(const std::vector<PodRecord>& pods, const Labels& selector);

// A connection's last full pod listing and the pods_version it was read under: reused
// while the version is unchanged (an empty version is never trusted).
class PodListCache {
 public:
  template <class Load>
  const std::vector<PodRecord>& get(const std::string& version, Load&& load) {
    if (!valid_ || version.empty() || version != version_) {
      valid_ = false;
      pods_ = load();
      version_ = version;
      valid_ = true;
    }
    return pods_;
  }

 private:
  std::vector<PodRecord> pods_;
  std::string version_;
  bool valid_ = false;
};

// A JSON string literal (quotes included) of already-clean text.
void append_json_string(std::string& out, std::string_view s);

// Lowercase hex of bytes and back (PostgreSQL's bytea text form is "\x" + hex).
std::string hex_decode(std::string_view hex);  // throws StoreError on bad input

}  // namespace pw::server::detail

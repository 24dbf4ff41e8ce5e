#pragma once
// UTF-8 well-formedness (Unicode table 3-7: overlong forms, surrogates and code points above
// U+10FFFF are not well-formed) and replacement of what is not, for the store's text columns
// (codec.hpp, which also refuses NUL) and the API's command output (http_util.hpp).
// Header-only: the server and both stores (the PostgreSQL module included) use it.
#include <cstddef>
#include <string>
#include <string_view>

namespace pw::server::utf8 {

// Length of the well-formed UTF-8 sequence at s[i] (i < s.size()), 0 if none. NUL is a
// one-byte sequence here.
inline std::size_t sequence_length(std::string_view s, std::size_t i) noexcept {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  const std::size_t left = s.size() - i;
  if (c < 0x80) return 1;
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

// What a text may hold besides well-formed UTF-8.
enum class Nul { allowed, refused };

// True when every byte of `s` belongs to a well-formed sequence (and, with Nul::refused, none
// is NUL).
inline bool is_well_formed(std::string_view s, Nul nul) noexcept {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {  // ASCII runs: the common case
      if (c == 0 && nul == Nul::refused) return false;
      ++i;
      continue;
    }
    const std::size_t n = sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

inline constexpr std::string_view REPLACEMENT = "\xEF\xBF\xBD";  // U+FFFD

// `s` with every byte that does not belong to a well-formed sequence (and, with
// Nul::refused, every NUL) replaced by U+FFFD: one replacement per offending byte.
inline std::string replace_invalid(std::string_view s, Nul nul) {
  std::string out;
  out.reserve(s.size() + 8);
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = s[i] == '\0' && nul == Nul::refused ? 0 : sequence_length(s, i);
    if (n == 0) {
      out.append(REPLACEMENT);
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

}  // namespace pw::server::utf8

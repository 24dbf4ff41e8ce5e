// Timestamps as the store keeps them: fixed-width RFC 3339 UTC with milliseconds
// ("2026-11-25T16:00:00.123Z"), so that string order is time order on every backend.
#include "embedded_server/store/store.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>

namespace pw::server {

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
  std::int64_t y;
  unsigned m, d;
};
Civil civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2), m, d};
}

bool is_leap(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }
unsigned days_in_month(std::int64_t y, unsigned m) {
  static constexpr std::array<unsigned, 12> n{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : n[m - 1];
}

// Milliseconds since the epoch → stored form; nullopt outside years 0000–9999.
std::optional<std::string> format_ms(std::int64_t ms) {
  std::int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
  std::int64_t rem = ms - days * 86400000;  // 0 … 86399999
  Civil c = civil_from_days(days);
  if (c.y < 0 || c.y > 9999) return std::nullopt;
  const auto sec_of_day = rem / 1000;
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<int>(c.y), c.m, c.d,
                static_cast<int>(sec_of_day / 3600), static_cast<int>(sec_of_day / 60 % 60),
                static_cast<int>(sec_of_day % 60), static_cast<int>(rem % 1000));
  return std::string(buf);
}

bool digit(char c) { return c >= '0' && c <= '9'; }

// Reads exactly n digits at text[i…].
bool read_num(const std::string& t, std::size_t& i, int n, int& out) {
  if (i + static_cast<std::size_t>(n) > t.size()) return false;
  int v = 0;
  for (int k = 0; k < n; ++k) {
    char c = t[i + static_cast<std::size_t>(k)];
    if (!digit(c)) return false;
    v = v * 10 + (c - '0');
  }
  i += static_cast<std::size_t>(n);
  out = v;
  return true;
}

std::optional<std::string> parse_unix(const std::string& t) {
  // [0-9]+ ( . [0-9]+ )? — seconds, fraction truncated to milliseconds.
  std::size_t i = 0;
  std::int64_t secs = 0;
  while (i < t.size() && digit(t[i])) {
    if (secs > 400000000000LL) return std::nullopt;  // far past year 9999
    secs = secs * 10 + (t[i] - '0');
    ++i;
  }
  if (i == 0) return std::nullopt;
  std::int64_t frac_ms = 0;
  if (i < t.size()) {
    if (t[i] != '.' || i + 1 == t.size()) return std::nullopt;
    ++i;
    int k = 0;
    for (; i < t.size(); ++i, ++k) {
      if (!digit(t[i])) return std::nullopt;
      if (k < 3) frac_ms = frac_ms * 10 + (t[i] - '0');
    }
    for (; k < 3; ++k) frac_ms *= 10;
  }
  return format_ms(secs * 1000 + frac_ms);
}

std::optional<std::string> parse_rfc3339(const std::string& t) {
  std::size_t i = 0;
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  if (!read_num(t, i, 4, y) || i >= t.size() || t[i++] != '-' || !read_num(t, i, 2, mo) || i >= t.size() ||
      t[i++] != '-' || !read_num(t, i, 2, d))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || static_cast<unsigned>(d) > days_in_month(y, static_cast<unsigned>(mo)))
    return std::nullopt;
  std::int64_t frac_ms = 0;
  std::int64_t offset_min = 0;
  if (i < t.size()) {  // a date alone means its midnight UTC
    if (t[i] != 'T' && t[i] != 't' && t[i] != ' ') return std::nullopt;
    ++i;
    if (!read_num(t, i, 2, h) || i >= t.size() || t[i++] != ':' || !read_num(t, i, 2, mi)) return std::nullopt;
    if (i < t.size() && t[i] == ':') {
      ++i;
      if (!read_num(t, i, 2, s)) return std::nullopt;
    }
    if (h > 23 || mi > 59 || s > 60) return std::nullopt;
    if (s == 60) s = 59;  // a leap second is kept inside its minute
    if (i < t.size() && (t[i] == '.' || t[i] == ',')) {
      ++i;
      int k = 0;
      for (; i < t.size() && digit(t[i]); ++i, ++k)
        if (k < 3) frac_ms = frac_ms * 10 + (t[i] - '0');
      if (k == 0) return std::nullopt;
      for (; k < 3; ++k) frac_ms *= 10;
    }
    if (i < t.size()) {
      char z = t[i];
      if (z == 'Z' || z == 'z') {
        ++i;
      } else if (z == '+' || z == '-') {
        ++i;
        int oh = 0, om = 0;
        if (!read_num(t, i, 2, oh)) return std::nullopt;
        if (i < t.size() && t[i] == ':') ++i;
        if (!read_num(t, i, 2, om)) return std::nullopt;
        if (oh > 23 || om > 59) return std::nullopt;
        offset_min = (std::int64_t{oh} * 60 + om) * (z == '-' ? -1 : 1);
      } else {
        return std::nullopt;
      }
    }
    if (i != t.size()) return std::nullopt;
  }
  std::int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  std::int64_t ms = ((days * 24 + h) * 60 + mi - offset_min) * 60000 + s * 1000LL + frac_ms;
  return format_ms(ms);
}

}  // namespace

std::string now_rfc3339() {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
                .count();
  return *format_ms(ms);
}

std::string now_plus_rfc3339(double seconds) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
                .count();
  const double off = seconds == seconds ? seconds * 1000.0 : 0.0;  // NaN: no offset
  // Clamped: a nonsense offset gives a far (but formattable) time, never UB.
  const double clamped = off > 1e14 ? 1e14 : (off < -1e12 ? -1e12 : off);
  ms += static_cast<std::int64_t>(clamped);
  if (auto t = format_ms(ms)) return *t;
  return ms < 0 ? "1970-01-01T00:00:00.000Z" : "9999-12-31T23:59:59.999Z";
}

std::optional<std::string> normalize_time(const std::string& text) {
  if (text.empty() || text.size() > 64) return std::nullopt;
  if (text.size() >= 5 && digit(text[0]) && digit(text[1]) && digit(text[2]) && digit(text[3]) && text[4] == '-')
    return parse_rfc3339(text);
  return parse_unix(text);
}

}  // namespace pw::server

#include "cli/render.hpp"

#include <nlohmann/json.hpp>

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace pw::cli {

Format parse_format(const std::string& s) {
  if (s == "json") return Format::json;
  if (s == "ndjson") return Format::ndjson;
  if (s == "plain" || s == "raw") return Format::plain;  // raw: exact bytes where a command prints one result
  return Format::table;
}

Terminal detect_terminal(bool no_color_flag) {
  Terminal t;
  t.stdout_tty = ::isatty(STDOUT_FILENO) == 1;
  t.stderr_tty = ::isatty(STDERR_FILENO) == 1;
  if (t.stdout_tty) {
    struct winsize ws {};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) t.width = ws.ws_col;
    if (t.width == 0)
      if (const char* c = std::getenv("COLUMNS")) t.width = std::atoi(c);
    if (t.width <= 0) t.width = 80;
  }
  const char* no_color = std::getenv("NO_COLOR");
  const char* term = std::getenv("TERM");
  bool colors_ok = !no_color_flag && !(no_color && *no_color) && !(term && std::strcmp(term, "dumb") == 0);
  t.color_out = colors_ok && t.stdout_tty;
  t.color_err = colors_ok && t.stderr_tty;
  return t;
}

std::string paint(std::string_view text, Style style, bool enabled) {
  if (!enabled) return std::string(text);
  const char* code = "";
  switch (style) {
    case Style::bold: code = "1"; break;
    case Style::dim: code = "2"; break;
    case Style::red: code = "31"; break;
    case Style::green: code = "32"; break;
    case Style::yellow: code = "33"; break;
    case Style::blue: code = "34"; break;
    case Style::magenta: code = "35"; break;
    case Style::cyan: code = "36"; break;
  }
  return std::string("\033[") + code + "m" + std::string(text) + "\033[0m";
}

std::string paint_status(const std::string& status, bool enabled) {
  if (status == "succeeded" || status == "ok") return paint(status, Style::green, enabled);
  if (status == "failed") return paint(status, Style::red, enabled);
  if (status == "timeout" || status == "running" || status == "degraded") return paint(status, Style::yellow, enabled);
  return paint(status, Style::magenta, enabled);
}

std::size_t display_width(std::string_view text) {
  std::size_t w = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == 0x1b && i + 1 < text.size() && text[i + 1] == '[') {  // CSI … final byte
      i += 2;
      while (i < text.size() && !(text[i] >= 0x40 && text[i] <= 0x7e)) ++i;
      continue;
    }
    if ((c & 0xC0) != 0x80) ++w;
  }
  return w;
}

std::string truncate_display(std::string_view text, std::size_t width) {
  if (display_width(text) <= width) return std::string(text);
  if (width == 0) return {};
  std::string out;
  std::size_t w = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if ((c & 0xC0) != 0x80) {
      if (w + 1 == width) break;
      ++w;
    }
    out.push_back(text[i]);
  }
  return out + "…";
}

namespace {

std::string one_line(const std::string& s) {
  if (s.find_first_of("\r\n\t") == std::string::npos) return s;
  std::string out;
  for (char c : s) {
    if (c == '\n')
      out += "⏎";
    else if (c == '\r')
      continue;
    else if (c == '\t')
      out += ' ';
    else
      out.push_back(c);
  }
  return out;
}

}  // namespace

std::string render_table(const std::vector<Column>& columns, const std::vector<std::vector<std::string>>& rows,
                         int width, bool color) {
  const std::size_t n = columns.size();
  std::vector<std::vector<std::string>> cells;
  cells.reserve(rows.size());
  for (const auto& r : rows) {
    std::vector<std::string> line(n);
    for (std::size_t i = 0; i < n && i < r.size(); ++i) line[i] = one_line(r[i]);
    cells.push_back(std::move(line));
  }
  std::vector<std::size_t> w(n);
  for (std::size_t i = 0; i < n; ++i) {
    w[i] = display_width(columns[i].header);
    for (const auto& r : cells) w[i] = std::max(w[i], display_width(r[i]));
  }
  if (width > 0 && n > 0) {
    auto total = [&] {
      std::size_t t = 2 * (n - 1);
      for (auto x : w) t += x;
      return t;
    };
    while (total() > static_cast<std::size_t>(width)) {
      // the widest shrinkable column that is still above its floor
      std::size_t best = n;
      for (std::size_t i = 0; i < n; ++i) {
        std::size_t floor = std::max<std::size_t>(8, display_width(columns[i].header));
        if (!columns[i].shrink || w[i] <= floor) continue;
        if (best == n || w[i] > w[best]) best = i;
      }
      if (best == n) break;  // nothing left to cut: let the terminal wrap
      std::size_t floor = std::max<std::size_t>(8, display_width(columns[best].header));
      std::size_t excess = total() - static_cast<std::size_t>(width);
      // cut the widest down towards the next widest, at most to what is needed
      std::size_t next = floor;
      for (std::size_t i = 0; i < n; ++i)
        if (i != best && columns[i].shrink) next = std::max(next, std::min(w[i], w[best]));
      std::size_t cut = std::min(excess, w[best] - std::max(next, floor));
      if (cut == 0) cut = std::min(excess, w[best] - floor);
      w[best] -= cut;
    }
  }
  std::string out;
  auto emit = [&](const std::vector<std::string>& line, bool header) {
    std::string text;
    for (std::size_t i = 0; i < n; ++i) {
      std::string cell = truncate_display(line[i], w[i]);
      std::size_t pad = w[i] - display_width(cell);
      bool last = i + 1 == n;
      if (header) cell = paint(cell, Style::bold, color);
      if (columns[i].right)
        text += std::string(pad, ' ') + cell;
      else
        text += cell + (last ? std::string() : std::string(pad, ' '));
      if (!last) text += "  ";
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text + "\n";
  };
  std::vector<std::string> header(n);
  for (std::size_t i = 0; i < n; ++i) header[i] = columns[i].header;
  emit(header, true);
  for (const auto& r : cells) emit(r, false);
  return out;
}

std::string render_kv(const std::vector<std::pair<std::string, std::string>>& pairs, bool color) {
  std::size_t kw = 0;
  for (const auto& [k, v] : pairs) kw = std::max(kw, display_width(k));
  std::string out;
  for (const auto& [k, v] : pairs)
    out += paint(k, Style::bold, color) + std::string(kw - display_width(k) + 2, ' ') + v + "\n";
  return out;
}

std::string render_plain(const std::vector<std::vector<std::string>>& rows) {
  std::string out;
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size(); ++i) {
      if (i) out += '\t';
      for (char c : r[i]) out.push_back(c == '\t' || c == '\n' ? ' ' : c);
    }
    out += '\n';
  }
  return out;
}

std::string to_json_text(const nlohmann::json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string to_ndjson_line(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string format_duration(double s) {
  char buf[32];
  if (s < 0) s = 0;
  if (s < 1.0)
    std::snprintf(buf, sizeof buf, "%d ms", static_cast<int>(std::lround(s * 1000.0)));
  else if (s < 60.0)
    std::snprintf(buf, sizeof buf, "%.2f s", s);
  else {
    int total = static_cast<int>(std::lround(s));
    std::snprintf(buf, sizeof buf, "%dm%02ds", total / 60, total % 60);
  }
  return buf;
}

Spinner::Spinner(std::string label, bool enabled, bool color) : label_(std::move(label)), color_(color) {
  if (enabled) thread_ = std::thread([this] { loop(); });
}

Spinner::~Spinner() { stop(); }

void Spinner::set_label(std::string label) {
  std::lock_guard<std::mutex> lock(mu_);
  label_ = std::move(label);
}

void Spinner::above(const std::function<void()>& fn) {
  std::lock_guard<std::mutex> lock(mu_);
  if (drawn_) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
  }
  fn();
  std::fflush(stdout);
}

void Spinner::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Spinner::loop() {
  static constexpr const char* kFrames[] = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};
  std::unique_lock<std::mutex> lock(mu_);
  // Quick calls finish before the first frame: no flicker.
  if (cv_.wait_for(lock, std::chrono::milliseconds(150), [this] { return stop_; })) return;
  for (std::size_t i = 0; !stop_; ++i) {
    std::string line = "\r\033[K" + paint(kFrames[i % 10], Style::cyan, color_) + " " + label_;
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
    drawn_ = true;
    cv_.wait_for(lock, std::chrono::milliseconds(80), [this] { return stop_; });
  }
  if (drawn_) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
  }
}

}  // namespace pw::cli

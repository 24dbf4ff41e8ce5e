#pragma once
// Human and machine output: aligned tables fitted to the terminal width, colours (only on a
// terminal, NO_COLOR honoured), a spinner on stderr (only when stderr is a terminal), and
// JSON / NDJSON for scripts. Results go to stdout, progress and diagnostics to stderr.
#include <nlohmann/json_fwd.hpp>

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace pw::cli {

enum class Format { table, plain, json, ndjson };
// Valid names only (checked by the config layer); "raw" gives plain (CommandContext::raw_output()
// tells the commands that write exact bytes).
Format parse_format(const std::string& s);

struct Terminal {
  bool stdout_tty = false;
  bool stderr_tty = false;
  int width = 0;  // columns of the terminal on stdout; 0: not a terminal (no fitting)
  bool color_out = false;
  bool color_err = false;
};
// Looks at the file descriptors, TIOCGWINSZ/$COLUMNS, NO_COLOR, TERM=dumb and --no-color.
Terminal detect_terminal(bool no_color_flag);

enum class Style { bold, dim, red, green, yellow, blue, magenta, cyan };
std::string paint(std::string_view text, Style style, bool enabled);
// Colour for a command status word ("succeeded" green, "failed" red, …).
std::string paint_status(const std::string& status, bool enabled);

// Display width of UTF-8 text (code points; no wide characters in our tables) without
// ANSI colour sequences.
std::size_t display_width(std::string_view text);
// Cuts text to `width` columns, ending in "…" when cut.
std::string truncate_display(std::string_view text, std::size_t width);

struct Column {
  std::string header;
  bool shrink = false;  // may be cut to fit the width (URLs, commands, labels)
  bool right = false;   // right-aligned (numbers)
};

// Aligned columns separated by two spaces, header in bold when `color`. With width > 0,
// shrinkable columns are cut (widest first, not below their header or 8 columns) until
// each line fits. Cells must not contain newlines (they are replaced by "⏎").
std::string render_table(const std::vector<Column>& columns, const std::vector<std::vector<std::string>>& rows,
                         int width, bool color);
// Key/value pairs, keys aligned ("status    ok").
std::string render_kv(const std::vector<std::pair<std::string, std::string>>& pairs, bool color);
// Tab-separated lines without a header (for cut/awk).
std::string render_plain(const std::vector<std::vector<std::string>>& rows);

// JSON document (pretty, 2 spaces) / one compact line.
std::string to_json_text(const nlohmann::json& j);
std::string to_ndjson_line(const nlohmann::json& j);

// "12 ms", "1.50 s", "2m03s"
std::string format_duration(double seconds);

// A spinner drawn on stderr from a background thread, after a short delay so quick calls
// show nothing; does nothing at all when disabled. stop() erases it.
class Spinner {
 public:
  Spinner(std::string label, bool enabled, bool color = false);
  ~Spinner();
  Spinner(const Spinner&) = delete;
  Spinner& operator=(const Spinner&) = delete;
  void set_label(std::string label);
  // Runs `fn` (which prints lines) with the spinner line erased; it is redrawn after.
  void above(const std::function<void()>& fn);
  void stop();

 private:
  void loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::string label_;
  bool stop_ = false;
  bool drawn_ = false;
  bool color_ = false;
  std::thread thread_;
};

}  // namespace pw::cli

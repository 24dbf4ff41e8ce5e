#pragma once
// Sentinel framing for persistent shells (PROTOCOLS.md §4).
//
// A command is sent as
//   __pw_n=<nonce>; { command eval '<command, single-quote escaped>'; } </dev/null 2>&1;
//   printf '\036PW%s:%d\036\n' "$__pw_n" "$?"
// The echoed input (on a TTY with echo) shows "\036" as four characters, so only the
// real printf output contains the byte 0x1E followed by "PW<nonce>:". The eval keeps
// unbalanced quotes from leaving the shell waiting for more input, and `command`
// keeps a syntax error from ending a non-interactive shell. A command that ends the
// shell (exit, exec) still reports its status: the EXIT trap (exit_trap()) prints the
// sentinel as "PW<nonce>:X<status>" and the scanner sets shell_exited().
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace pw {

// 16 lower-case hex characters from a per-thread generator seeded by OpenSSL's CSPRNG.
std::string make_nonce();

// The bytes to send for `command` (ends with '\n').
std::string frame_command(std::string_view command, std::string_view nonce);
// Installs the EXIT trap that reports the status of a command that ends the shell.
std::string exit_trap();
// A sentinel-only payload, used to sync with a fresh or interrupted shell.
std::string frame_sync(std::string_view nonce);
// Quotes `s` for a POSIX shell: 'it'\''s'.
std::string shell_quote(std::string_view s);

// Incremental scanner: feed() raw bytes as they arrive; once done(), output() holds
// everything before the sentinel and
// exit_code() the status. Output beyond max_output is dropped and truncated() set;
// the scanner keeps looking for the sentinel across chunk borders.
class SentinelScanner {
 public:
  SentinelScanner(std::string nonce, std::size_t max_output, bool tty);

  // Returns true once the sentinel has been seen (extra bytes after it are ignored
  // and available through leftover()).
  bool feed(std::string_view chunk);
  bool done() const noexcept { return done_; }
  int exit_code() const noexcept { return exit_code_; }
  // The command ended the shell (the sentinel came from the EXIT trap).
  bool shell_exited() const noexcept { return shell_exited_; }
  bool truncated() const noexcept { return truncated_; }
  // Output so far (partial while !done()), CRLF normalised on TTYs.
  std::string output() const;
  std::string take_output();
  const std::string& leftover() const noexcept { return leftover_; }
  std::size_t bytes_seen() const noexcept { return bytes_seen_; }

 private:
  void scan();
  std::string finish(std::string s) const;

  std::string nonce_;
  std::string marker_;  // "\x1ePW<nonce>:"
  std::size_t max_output_;
  bool tty_;
  std::string buf_;          // kept output (up to max_output_) + unscanned tail
  std::size_t kept_ = 0;     // bytes of buf_ that are definitely output
  bool truncated_ = false;
  bool done_ = false;
  int exit_code_ = -1;
  bool shell_exited_ = false;
  std::string leftover_;
  std::size_t bytes_seen_ = 0;
};

// Removes CR before LF and terminal noise (bracketed-paste toggles) from TTY output.
std::string normalize_tty_output(std::string_view s);

}  // namespace pw

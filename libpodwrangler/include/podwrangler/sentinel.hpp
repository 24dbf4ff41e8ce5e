#pragma once
// Sentinel framing for persistent shells: how one command's output and exit status are
// delimited in a shell's byte stream.
//
// A command is sent as one line:
//   { \command eval '<command, single-quote escaped>'; } </dev/null 2>&1;
//   \command \printf '\036PW<nonce>:%d\036\n' "$?"
// The sentinel's authenticity rests on the nonce, so the nonce is never readable by the
// command it frames: 128 bits from OpenSSL's CSPRNG, fresh for every frame, written
// literally into the printf that runs after the command has ended, never stored in a
// shell variable or the environment (nothing to find with `set`, `env`, /proc/$$/environ)
// and never in a trap. Earlier nonces (visible with `set -x`) are worthless: each one is
// used once. The echoed input (on a TTY with echo) shows "\036" as four characters, so
// only the real printf output contains the byte 0x1E followed by "PW<nonce>:".
//
// `eval` keeps unbalanced quotes from leaving the shell waiting for more input, and
// `command` keeps a syntax error from ending a non-interactive shell; the backslashes keep
// the framing's own words out of alias expansion and `command` makes `printf` the builtin
// even when the user has defined a function of that name.
//
// A command that ends the shell (exit) still reports its status: the EXIT trap
// (exit_trap()) prints the fixed marker "\036PWX:<status>\036". Anyone can print that
// marker, so it carries no nonce and is trusted only when the stream really ends right
// after it (SentinelScanner::finish_at_end()).
//
// The boundary: the command runs inside the session's shell, so a command that
// deliberately reprograms that shell (a function called `command`, bash DEBUG traps)
// can still disturb the framing of the commands that follow it.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace pw {

// 32 lower-case hex characters (128 bits) from OpenSSL's RAND_bytes, new on every call.
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
// everything before the sentinel, byte for byte, and exit_code() the status. Output
// beyond max_output is dropped and truncated() set (true exactly when bytes were
// dropped); the scanner keeps looking for the sentinel across chunk borders.
class SentinelScanner {
 public:
  SentinelScanner(std::string nonce, std::size_t max_output);

  // Returns true once the sentinel has been seen (extra bytes after it are ignored
  // and available through leftover()).
  bool feed(std::string_view chunk);
  // The stream has ended (or the transport saw the shell end). If the last bytes were
  // the EXIT trap's marker, the scan is done: shell_exited(), with `status` when the
  // transport knows the shell's real exit status, else the marker's. Returns done().
  bool finish_at_end(std::optional<int> status = std::nullopt);
  // The EXIT trap's marker is the last thing seen so far (finish_at_end() would accept it).
  bool exit_pending() const noexcept { return exit_pending_; }

  bool done() const noexcept { return done_; }
  int exit_code() const noexcept { return exit_code_; }
  // The command ended the shell (the EXIT trap's marker, then the end of the stream).
  bool shell_exited() const noexcept { return shell_exited_; }
  bool truncated() const noexcept { return truncated_; }
  // Output so far (partial while !done()): exactly the bytes the command wrote.
  std::string output() const;
  std::string take_output();
  const std::string& leftover() const noexcept { return leftover_; }
  std::size_t bytes_seen() const noexcept { return bytes_seen_; }

 private:
  void scan();
  void cap(std::size_t upto);

  std::string nonce_;
  std::size_t max_output_;
  std::string buf_;       // kept output (up to max_output_) + unscanned tail
  std::size_t kept_ = 0;  // bytes of buf_ that are definitely output
  bool truncated_ = false;
  bool done_ = false;
  int exit_code_ = -1;
  bool shell_exited_ = false;
  bool exit_pending_ = false;
  int exit_candidate_ = -1;  // status in the pending EXIT marker
  std::string leftover_;
  std::size_t bytes_seen_ = 0;
};

}  // namespace pw

#include <podwrangler/sentinel.hpp>

#include <openssl/rand.h>

#include <cstdint>
#include <random>
#include <stdexcept>

namespace pw {

std::string make_nonce() {
  // A per-thread generator seeded once from OpenSSL's CSPRNG: calling RAND_bytes per
  // command costs a getpid() syscall each time (fork-safety check), and the nonce only
  // has to be unguessable before the command runs, not a key.
  thread_local std::mt19937_64 gen = [] {
    std::uint64_t seed[2];
    if (RAND_bytes(reinterpret_cast<unsigned char*>(seed), sizeof seed) != 1)
      throw std::runtime_error("RAND_bytes failed");
    std::seed_seq seq{seed[0] & 0xffffffffu, seed[0] >> 32, seed[1] & 0xffffffffu, seed[1] >> 32};
    return std::mt19937_64(seq);
  }();
  std::uint64_t v = gen();
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = hex[v & 0xF];
    v >>= 4;
  }
  return out;
}

std::string shell_quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('\'');
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

namespace {
constexpr std::string_view kPrintf = "printf '\\036PW%s:%d\\036\\n' ";
}

std::string frame_command(std::string_view command, std::string_view nonce) {
  std::string out;
  out.reserve(command.size() + 112);
  out += "__pw_n=";
  out += nonce;
  out += "; { command eval ";
  out += shell_quote(command);
  out += "; } </dev/null 2>&1; printf '\\036PW%s:%d\\036\\n' \"$__pw_n\" \"$?\"\n";
  return out;
}

std::string exit_trap() {
  return "trap 'printf \"\\036PW%s:X%d\\036\\n\" \"$__pw_n\" \"$?\"' EXIT\n";
}

std::string frame_sync(std::string_view nonce) {
  std::string out{kPrintf};
  out += nonce;
  out += " \"$?\"\n";
  return out;
}

std::string normalize_tty_output(std::string_view s) {
  // Terminal control that is about the screen, not the text: OSC strings (window titles,
  // ESC ] … BEL or ESC ] … ESC \) and CSI sequences other than SGR colours (cursor
  // moves, line erases, mode switches such as bracketed paste ESC[?2004h). Colours
  // (CSI … m) are kept: they are what the command printed. Incomplete sequences stay.
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') continue;
    if (c == '\x1b' && i + 1 < s.size() && s[i + 1] == '[') {
      std::size_t j = i + 2;
      while (j < s.size() && static_cast<unsigned char>(s[j]) >= 0x20 && static_cast<unsigned char>(s[j]) <= 0x3f) ++j;
      if (j < s.size() && static_cast<unsigned char>(s[j]) >= 0x40 && static_cast<unsigned char>(s[j]) <= 0x7e) {
        if (s[j] == 'm') {
          out.append(s.substr(i, j + 1 - i));
        }
        i = j;
        continue;
      }
    } else if (c == '\x1b' && i + 1 < s.size() && s[i + 1] == ']') {
      std::size_t j = i + 2;
      while (j < s.size() && s[j] != '\x07' && !(s[j] == '\x1b' && j + 1 < s.size() && s[j + 1] == '\\')) ++j;
      if (j < s.size()) {
        i = s[j] == '\x07' ? j : j + 1;
        continue;
      }
    }
    out.push_back(c);
  }
  return out;
}

SentinelScanner::SentinelScanner(std::string nonce, std::size_t max_output, bool tty)
    : nonce_(std::move(nonce)), max_output_(max_output), tty_(tty) {
  marker_ = "\x1ePW";
  marker_ += nonce_;
  marker_ += ':';
}

bool SentinelScanner::feed(std::string_view chunk) {
  bytes_seen_ += chunk.size();
  if (done_) {
    leftover_.append(chunk);
    return true;
  }
  buf_.append(chunk);
  scan();
  return done_;
}

void SentinelScanner::scan() {
  // buf_[0, kept_) is confirmed output; the rest is still being scanned.
  std::size_t from = kept_;
  while (true) {
    std::size_t p = buf_.find(marker_, from);
    if (p == std::string::npos) break;
    std::size_t q = p + marker_.size();
    bool exited = q < buf_.size() && buf_[q] == 'X';
    if (exited) ++q;
    std::size_t digits = 0;
    while (q < buf_.size() && digits < 4 && buf_[q] >= '0' && buf_[q] <= '9') { ++q; ++digits; }
    if (q == buf_.size()) {
      // Incomplete marker: wait for more bytes, keep everything from p on.
      if (p > kept_) kept_ = p;
      return;
    }
    if (digits == 0 || buf_[q] != '\x1e') {
      from = p + 1;  // looks like the marker but is not: ordinary output
      continue;
    }
    // The sentinel line ends with "\n" ("\r\n" on a TTY), which may arrive in the next
    // chunk: wait for it, so that it never shows up as leftover (or as the first byte
    // of the next command's output).
    std::size_t end = q + 1;
    if (end < buf_.size() && buf_[end] == '\r') ++end;
    if (end == buf_.size()) {
      if (p > kept_) kept_ = p;
      return;
    }
    if (buf_[end] != '\n') {
      from = p + 1;  // the real sentinel line always ends here: this one is output
      continue;
    }
    ++end;
    exit_code_ = std::stoi(buf_.substr(q - digits, digits));
    shell_exited_ = exited;
    leftover_ = buf_.substr(end);
    // The marker follows the output directly (no newline of ours in between), so a
    // line-framed peer sends no extra frame and output without a final newline is kept.
    std::size_t out_end = p;
    buf_.resize(out_end);
    if (buf_.size() > max_output_) {
      buf_.resize(max_output_);
      truncated_ = true;
    }
    kept_ = buf_.size();
    done_ = true;
    return;
  }
  // No marker: all but the last marker_.size()+1 bytes are output for sure (the +1
  // keeps a CR before the framing newline together with it).
  std::size_t keep_tail = marker_.size() + 2;
  if (buf_.size() > keep_tail && buf_.size() - keep_tail > kept_) kept_ = buf_.size() - keep_tail;
  if (kept_ > max_output_) {
    // Over the cap: drop confirmed output beyond it, keep the unscanned tail.
    buf_.erase(max_output_, kept_ - max_output_);
    kept_ = max_output_;
    truncated_ = true;
  }
}

std::string SentinelScanner::finish(std::string s) const {
  return tty_ ? normalize_tty_output(s) : s;
}

std::string SentinelScanner::output() const {
  if (done_) return finish(buf_);
  // Partial output: the confirmed part plus what is still being scanned.
  std::string s = buf_;
  if (s.size() > max_output_) s.resize(max_output_);
  return finish(std::move(s));
}

std::string SentinelScanner::take_output() {
  std::string s = output();
  buf_.clear();
  kept_ = 0;
  return s;
}

}  // namespace pw

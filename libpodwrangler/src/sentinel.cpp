#include <podwrangler/sentinel.hpp>

#include <openssl/rand.h>

#include <algorithm>
#include <stdexcept>

namespace pw {

std::string make_nonce() {
  // Fresh from the CSPRNG every time: a generator seeded once would let anyone who has
  // seen enough earlier nonces (`set -x` shows them once used) predict the next one.
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) throw std::runtime_error("RAND_bytes failed");
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(2 * sizeof raw, '0');
  for (std::size_t i = 0; i < sizeof raw; ++i) {
    out[2 * i] = hex[raw[i] >> 4];
    out[2 * i + 1] = hex[raw[i] & 0xF];
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
// The sentinel's printf, the nonce written into its format: never a shell variable.
void append_sentinel_printf(std::string& out, std::string_view nonce) {
  out += "\\command \\printf '\\036PW";
  out += nonce;
  out += ":%d\\036\\n' \"$?\"\n";
}
constexpr std::string_view kLead = "\x1ePW";
constexpr std::size_t kMaxDigits = 3;  // $? is 0..255
}  // namespace

std::string frame_command(std::string_view command, std::string_view nonce) {
  std::string out;
  out.reserve(command.size() + 128);
  out += "{ \\command eval ";
  out += shell_quote(command);
  out += "; } </dev/null 2>&1; ";
  append_sentinel_printf(out, nonce);
  return out;
}

std::string exit_trap() {
  // A fixed marker: the trap is listed by `trap`, so it must hold nothing secret.
  return "trap '\\command \\printf \"\\036PWX:%d\\036\\n\" \"$?\"' EXIT\n";
}

std::string frame_sync(std::string_view nonce) {
  std::string out;
  append_sentinel_printf(out, nonce);
  return out;
}

SentinelScanner::SentinelScanner(std::string nonce, std::size_t max_output)
    : nonce_(std::move(nonce)), max_output_(max_output) {}

bool SentinelScanner::feed(std::string_view chunk) {
  bytes_seen_ += chunk.size();
  if (done_) {
    leftover_.append(chunk);
    return true;
  }
  if (chunk.empty()) return false;
  buf_.append(chunk);
  scan();
  return done_;
}

// Confirms buf_[0, upto) as output, dropping what lies beyond max_output_.
void SentinelScanner::cap(std::size_t upto) {
  if (upto > kept_) kept_ = upto;
  if (kept_ > max_output_) {
    buf_.erase(max_output_, kept_ - max_output_);
    kept_ = max_output_;
    truncated_ = true;
  }
}

void SentinelScanner::scan() {
  // buf_[0, kept_) is confirmed output; the rest is still being scanned. A marker line is
  //   "\x1ePW" <nonce> ":" <1-3 digits> "\x1e" ["\r"] "\n"   the sentinel, or
  //   "\x1ePW" "X:" <1-3 digits> "\x1e" ["\r"] "\n"          the EXIT trap's marker.
  exit_pending_ = false;
  std::size_t from = kept_;
  while (true) {
    std::size_t p = buf_.find(kLead, from);
    if (p == std::string::npos) break;
    std::size_t q = p + kLead.size();
    std::string_view rest = std::string_view(buf_).substr(q);
    // Which kind of marker, if any: compare as far as the bytes go.
    bool exit_marker = false;
    std::string_view head;
    if (!rest.empty() && rest[0] == 'X') {
      exit_marker = true;
      head = "X:";
    } else {
      head = nonce_;
    }
    std::size_t n = std::min(rest.size(), head.size());
    bool colon_ok = exit_marker || rest.size() <= head.size() || rest[head.size()] == ':';
    if (rest.compare(0, n, head.substr(0, n)) != 0 || !colon_ok) {
      from = p + 1;  // not ours: ordinary output
      continue;
    }
    std::size_t d = q + head.size() + (exit_marker ? 0 : 1);
    if (d > buf_.size()) {
      cap(p);  // incomplete marker: wait for more bytes, keep everything from p on
      return;
    }
    std::size_t e = d;
    while (e < buf_.size() && e - d < kMaxDigits && buf_[e] >= '0' && buf_[e] <= '9') ++e;
    if (e == buf_.size()) {
      cap(p);
      return;
    }
    if (e == d || buf_[e] != '\x1e') {
      from = p + 1;
      continue;
    }
    // The marker line ends with "\n" ("\r\n" on a terminal that still translates), which
    // may arrive in the next chunk: wait for it, so that it never shows up as leftover
    // (or as the first byte of the next command's output).
    std::size_t end = e + 1;
    if (end < buf_.size() && buf_[end] == '\r') ++end;
    if (end == buf_.size()) {
      cap(p);
      return;
    }
    if (buf_[end] != '\n') {
      from = p + 1;  // the real line always ends here: this one is output
      continue;
    }
    ++end;
    int code = std::stoi(buf_.substr(d, e - d));
    if (exit_marker) {
      if (end == buf_.size()) {
        // Trusted only if the stream ends here (finish_at_end()); more bytes make it output.
        cap(p);
        exit_pending_ = true;
        exit_candidate_ = code;
        return;
      }
      from = end;
      continue;
    }
    exit_code_ = code;
    leftover_ = buf_.substr(end);
    // The marker follows the output directly (no newline of ours in between), so a
    // line-framed peer sends no extra frame and output without a final newline is kept.
    buf_.resize(p);
    cap(p);
    done_ = true;
    return;
  }
  // No marker: all but the last two bytes are output for sure (they may be the start of
  // a marker split across chunks; a longer start is found and handled above).
  std::size_t keep_tail = kLead.size() - 1;
  if (buf_.size() > keep_tail) cap(buf_.size() - keep_tail);
}

bool SentinelScanner::finish_at_end(std::optional<int> status) {
  if (done_ || !exit_pending_) return done_;
  buf_.resize(kept_);  // the marker itself is not output
  exit_code_ = status.value_or(exit_candidate_);
  shell_exited_ = true;
  exit_pending_ = false;
  done_ = true;
  return true;
}

std::string SentinelScanner::output() const {
  if (done_) return buf_;
  // Partial output: the confirmed part plus what is still being scanned.
  std::string s = buf_;
  if (s.size() > max_output_) s.resize(max_output_);
  return s;
}

std::string SentinelScanner::take_output() {
  std::string s = output();
  buf_.clear();
  kept_ = 0;
  return s;
}

}  // namespace pw

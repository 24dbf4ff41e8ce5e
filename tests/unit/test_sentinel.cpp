// Unit tests for libpodwrangler/src/sentinel.cpp: nonces, quoting, the command frame,
// the incremental sentinel scanner, and the frame run through a real /bin/sh.
#include <doctest/doctest.h>
#include <podwrangler/sentinel.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <set>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace pw;
using namespace std::string_literals;

namespace {

const std::string kNonce = "0123456789abcdef";

std::string sentinel(int code, const std::string& nonce = kNonce, const std::string& eol = "\n") {
  return "\x1ePW" + nonce + ":" + std::to_string(code) + "\x1e" + eol;
}

struct Scan {
  bool done;
  int exit_code;
  std::string output;
  std::string leftover;
  bool truncated;
};

Scan scan_chunks(const std::vector<std::string>& chunks, std::size_t max_output = 1 << 20,
                 const std::string& nonce = kNonce) {
  SentinelScanner sc(nonce, max_output);
  for (const auto& c : chunks) sc.feed(c);
  return {sc.done(), sc.exit_code(), sc.output(), sc.leftover(), sc.truncated()};
}

Scan scan_all(const std::string& s, std::size_t max_output = 1 << 20) { return scan_chunks({s}, max_output); }

// --- a real shell behind pipes --------------------------------------------------------

struct ShellResult {
  bool done = false;  // sentinel seen
  bool eof = false;   // the shell closed its stdout
  int exit_code = -1;
  bool shell_exited = false;
  bool truncated = false;
  std::string output;
};

class Shell {
 public:
  explicit Shell(const char* path = "/bin/sh") {
    std::signal(SIGPIPE, SIG_IGN);
    int in[2], out[2];
    REQUIRE(::pipe2(in, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, 2);  // the shell's own stderr; commands' stderr goes via 2>&1
      ::execl(path, path, static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    in_ = in[1];
    out_ = out[0];
  }
  ~Shell() {
    if (in_ >= 0) ::close(in_);
    if (out_ >= 0) ::close(out_);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
      }
    }
  }
  Shell(const Shell&) = delete;
  Shell& operator=(const Shell&) = delete;

  void send(const std::string& bytes) {
    std::size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = ::write(in_, bytes.data() + off, bytes.size() - off);
      if (n < 0 && errno == EINTR) continue;
      REQUIRE(n > 0);
      off += static_cast<std::size_t>(n);
    }
  }

  // Reads into `sc` until its sentinel, EOF or the deadline. Keeps stdin open, so a
  // shell waiting for more input shows up as a timeout rather than a lucky EOF.
  ShellResult wait_for(SentinelScanner& sc, std::chrono::milliseconds timeout) {
    ShellResult r;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[65536];
    while (!sc.done()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{out_, POLLIN, 0};
      int rc = ::poll(&p, 1, static_cast<int>(left.count()));
      if (rc < 0 && errno == EINTR) continue;
      if (rc <= 0) break;
      ssize_t n = ::read(out_, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        r.eof = true;
        sc.finish_at_end();
        break;
      }
      sc.feed(std::string_view(buf, static_cast<std::size_t>(n)));
    }
    r.done = sc.done();
    r.exit_code = sc.exit_code();
    r.shell_exited = sc.shell_exited();
    r.truncated = sc.truncated();
    r.output = sc.output();
    return r;
  }

  ShellResult run(const std::string& command, std::size_t max_output = 1 << 20,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    last_nonce = make_nonce();
    SentinelScanner sc(last_nonce, max_output);
    send(frame_command(command, last_nonce));
    return wait_for(sc, timeout);
  }

  std::string last_nonce;  // of the last run()

 private:
  pid_t pid_ = -1;
  int in_ = -1;
  int out_ = -1;
};

bool has(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

}  // namespace

TEST_SUITE_BEGIN("sentinel");

// --- make_nonce, shell_quote, frames -----------------------------------------------------

TEST_CASE("security: make_nonce is 128 bits (32 lower-case hex characters), fresh each time") {
  std::set<std::string> seen;
  int bit_counts[128] = {};
  for (int i = 0; i < 1000; ++i) {
    std::string n = make_nonce();
    REQUIRE(n.size() == 32);
    for (std::size_t k = 0; k < n.size(); ++k) {
      char c = n[k];
      CHECK(((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')));
      int v = c <= '9' ? c - '0' : c - 'a' + 10;
      for (int b = 0; b < 4; ++b) bit_counts[k * 4 + b] += (v >> b) & 1;
    }
    seen.insert(n);
  }
  CHECK(seen.size() == 1000);
  // Every one of the 128 bits varies (a 64-bit generator padded to 128 would not).
  for (int b = 0; b < 128; ++b) {
    CAPTURE(b);
    CHECK(bit_counts[b] > 380);
    CHECK(bit_counts[b] < 620);
  }
}

TEST_CASE("shell_quote") {
  CHECK(shell_quote("a") == "'a'");
  CHECK(shell_quote("") == "''");
  CHECK(shell_quote("it's") == R"('it'\''s')");
  CHECK(shell_quote("''") == R"(''\'''\''')");
  CHECK(shell_quote("$HOME `x` \"y\" \\ *") == "'$HOME `x` \"y\" \\ *'");
  CHECK(shell_quote("a\nb") == "'a\nb'");
}

TEST_CASE("frame_command: shape") {
  std::string f = frame_command("echo hi", kNonce);
  REQUIRE_FALSE(f.empty());
  CHECK(f.back() == '\n');
  CHECK(f.find('\n') == f.size() - 1);  // one line for a one-line command
  CHECK(has(f, kNonce));
  CHECK(has(f, "'echo hi'"));
  CHECK(has(f, "</dev/null"));
  CHECK(has(f, "2>&1"));
  CHECK(has(f, "$?"));
  // The frame never contains the marker byte itself: an echo of it cannot match.
  CHECK_FALSE(has(f, "\x1e"));
  CHECK_FALSE(has(frame_command("printf x", kNonce), "\x1ePW" + kNonce));
  // Quotes inside the command are escaped.
  CHECK(has(frame_command("echo 'a'", kNonce), shell_quote("echo 'a'")));
}

TEST_CASE("security: the nonce is in no variable and no trap, only in the sentinel's printf") {
  const std::string nonce = "0123456789abcdef0123456789abcdef";
  for (const std::string& f : {frame_command("echo hi", nonce), frame_sync(nonce)}) {
    CAPTURE(f);
    CHECK(f.find(nonce) == f.rfind(nonce));  // once
    std::size_t at = f.find(nonce);
    REQUIRE(at != std::string::npos);
    // Inside the printf format, right after \036PW: not an assignment, not an argument.
    CHECK(f.compare(at - 6, 6, "\\036PW") == 0);
    CHECK(f.find("printf") < at);
    CHECK_FALSE(has(f, "__pw"));
    CHECK_FALSE(has(f, "=" + nonce));
    CHECK_FALSE(has(f, "export"));
  }
  // The EXIT trap is listed by `trap`: it holds a fixed marker and nothing secret.
  CHECK_FALSE(has(exit_trap(), nonce));
  CHECK(has(exit_trap(), "PWX:"));
  CHECK_FALSE(has(exit_trap(), "__pw"));
  // The framing's own words are out of alias expansion, printf is the builtin.
  CHECK(has(frame_command("x", nonce), "\\command eval "));
  CHECK(has(frame_command("x", nonce), "\\command \\printf "));
}

TEST_CASE("frame_sync: shape") {
  std::string f = frame_sync(kNonce);
  CHECK(f.back() == '\n');
  CHECK(f.find('\n') == f.size() - 1);
  CHECK(has(f, kNonce));
  CHECK(has(f, "printf"));
  CHECK_FALSE(has(f, "\x1e"));
}

// --- SentinelScanner on synthetic input ---------------------------------------------------

TEST_CASE("scanner: a simple result") {
  SentinelScanner sc(kNonce, 1024);
  CHECK_FALSE(sc.done());
  CHECK(sc.exit_code() == -1);
  CHECK_FALSE(sc.feed("hello\n"));
  CHECK_FALSE(sc.done());
  CHECK(sc.feed(sentinel(0)));
  CHECK(sc.done());
  CHECK(sc.exit_code() == 0);
  CHECK(sc.output() == "hello\n");
  CHECK(sc.leftover().empty());
  CHECK_FALSE(sc.truncated());
  CHECK(sc.bytes_seen() == 6 + sentinel(0).size());
}

TEST_CASE("scanner: output without trailing newline, empty output") {
  CHECK(scan_all("abc" + sentinel(0)).output == "abc");
  CHECK(scan_all("abc\n" + sentinel(0)).output == "abc\n");
  CHECK(scan_all("abc\n\n" + sentinel(0)).output == "abc\n\n");
  Scan e = scan_all(sentinel(3));
  CHECK(e.done);
  CHECK(e.output.empty());
  CHECK(e.exit_code == 3);
  // No newline at all before the marker (a shell that does not print one).
  Scan bare = scan_all("\x1ePW" + kNonce + ":0\x1e\n");
  CHECK(bare.done);
  CHECK(bare.output.empty());
  Scan bare2 = scan_all("xyz\x1ePW" + kNonce + ":0\x1e\n");
  CHECK(bare2.output == "xyz");
}

TEST_CASE("scanner: exit codes 0..255") {
  for (int code = 0; code <= 255; ++code) {
    CAPTURE(code);
    Scan s = scan_all("out" + sentinel(code));
    CHECK(s.done);
    CHECK(s.exit_code == code);
    CHECK(s.output == "out");
  }
}

TEST_CASE("scanner: the sentinel split across chunks at every byte boundary") {
  const std::string out = "line one\nline two\n\xff\x01 no newline at end";
  for (bool tty : {false, true}) {  // a terminal that still translates ends the line with CRLF
    const std::string eol = tty ? "\r\n" : "\n";
    const std::string stream = out + sentinel(42, kNonce, eol) + "NEXT";
    CAPTURE(tty);
    SUBCASE("two chunks") {
      for (std::size_t i = 0; i <= stream.size(); ++i) {
        CAPTURE(i);
        Scan s = scan_chunks({stream.substr(0, i), stream.substr(i)});
        CHECK(s.done);
        CHECK(s.exit_code == 42);
        CHECK(s.output == out);
        CHECK(s.leftover == "NEXT");
      }
    }
    SUBCASE("three chunks") {
      for (std::size_t i = 0; i <= stream.size(); ++i) {
        for (std::size_t j = i; j <= stream.size(); ++j) {
          Scan s = scan_chunks({stream.substr(0, i), stream.substr(i, j - i), stream.substr(j)});
          if (!(s.done && s.exit_code == 42 && s.output == out && s.leftover == "NEXT")) {
            CAPTURE(i);
            CAPTURE(j);
            CHECK(s.done);
            CHECK(s.exit_code == 42);
            CHECK(s.output == out);
            CHECK(s.leftover == "NEXT");
          }
        }
      }
    }
    SUBCASE("one byte at a time") {
      SentinelScanner sc(kNonce, 1 << 20);
      std::size_t done_at = 0;
      for (std::size_t i = 0; i < stream.size(); ++i) {
        bool d = sc.feed(std::string_view(&stream[i], 1));
        if (d && done_at == 0) done_at = i + 1;
      }
      CHECK(sc.done());
      CHECK(sc.exit_code() == 42);
      CHECK(sc.output() == out);
      CHECK(sc.leftover() == "NEXT");
      // Done exactly when the sentinel line is complete.
      CHECK(done_at == stream.size() - 4);
    }
  }
}

TEST_CASE("scanner: fake sentinels in the output are output") {
  const std::string other = "fedcba9876543210";
  std::vector<std::string> fakes = {
      "\x1ePW" + other + ":0\x1e\n",                 // another nonce
      "\x1ePW" + kNonce + ":\x1e\n",                 // no digits
      "\x1ePW" + kNonce + ":abc\x1e\n",              // not digits
      "\x1ePW" + kNonce + ":12345\x1e\n",            // too many digits
      "\x1ePW" + kNonce + ":7\n",                    // no closing byte
      "\x1ePW" + kNonce + ":7x\x1e\n",               // junk after the digits
      "\x1ePW" + kNonce + "7\x1e\n",                 // no colon
      "\x1ePW" + kNonce.substr(0, 15) + ":0\x1e\n",  // short nonce
      "PW" + kNonce + ":0\x1e\n",                    // no leading marker byte
      "\\036PW" + kNonce + ":0\\036\n",              // the echoed form of the printf
      "\x1e\x1e\x1ePW\x1ePW" + kNonce.substr(0, 8),
      "\x1ePW" + kNonce + ":",  // a bare marker prefix
  };
  for (const auto& fake : fakes) {
    CAPTURE(fake);
    const std::string out = "before " + fake + " after";
    const std::string stream = out + sentinel(5) + "L";
    Scan whole = scan_all(stream);
    CHECK(whole.done);
    CHECK(whole.exit_code == 5);
    CHECK(whole.output == out);
    CHECK(whole.leftover == "L");
    for (std::size_t i = 0; i <= stream.size(); ++i) {
      Scan s = scan_chunks({stream.substr(0, i), stream.substr(i)});
      if (!(s.done && s.exit_code == 5 && s.output == out && s.leftover == "L")) {
        CAPTURE(i);
        CHECK(s.done);
        CHECK(s.exit_code == 5);
        CHECK(s.output == out);
        CHECK(s.leftover == "L");
      }
    }
  }
  // Fakes immediately before the real sentinel, at every split point.
  for (const std::string& fake :
       {"\x1ePW" + kNonce + ":", "\x1ePW" + kNonce + ":9", "\x1ePW" + kNonce + ":X", "\x1ePW" + kNonce + ":1x"}) {
    CAPTURE(fake);
    const std::string stream = fake + sentinel(6) + "L";
    for (std::size_t i = 0; i <= stream.size(); ++i) {
      Scan s = scan_chunks({stream.substr(0, i), stream.substr(i)});
      if (!(s.done && s.exit_code == 6 && s.output == fake && s.leftover == "L")) {
        CAPTURE(i);
        CHECK(s.done);
        CHECK(s.exit_code == 6);
        CHECK(s.output == fake);
        CHECK(s.leftover == "L");
      }
    }
  }
  // A fake alone never completes the scan.
  for (const auto& fake : fakes) {
    SentinelScanner sc(kNonce, 1024);
    CHECK_FALSE(sc.feed(fake + "\n more"));
    CHECK_FALSE(sc.done());
  }
}

TEST_CASE("fidelity: the scanner never rewrites output bytes (CRLF, escape sequences, binary)") {
  // What the command wrote is what the result holds: no CRLF folding, no dropped
  // "terminal noise" (a terminal's own translation is switched off at the source).
  for (const std::string& raw : {"a\r\nb\r\n"s, "x\r\n"s, "\x1b[?2004hok\x1b[?2004l\r"s, "\x1b]0;title\x07hi\x1b[2K\n"s,
                                 "\x1b[31mred\x1b[0m"s, "50%\r100%\r\n"s}) {
    CAPTURE(raw);
    CHECK(scan_all(raw + sentinel(0)).output == raw);
    CHECK(scan_all(raw + sentinel(0, kNonce, "\r\n")).output == raw);
  }
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  all += "\xc3\x28\xa0\xa1\xe2\x82\xf0\x28\x8c\xbc";  // invalid UTF-8 sequences
  Scan s = scan_all(all + sentinel(0));
  CHECK(s.done);
  CHECK(s.output == all);
  // Valid UTF-8 passes as is.
  const std::string utf8 = "gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80\n";
  CHECK(scan_all(utf8 + sentinel(0)).output == utf8);
}

TEST_CASE("scanner: leftover and feeding after done") {
  SentinelScanner sc(kNonce, 1024);
  CHECK(sc.feed("out" + sentinel(1) + "rest"));
  CHECK(sc.leftover() == "rest");
  CHECK(sc.feed("more"));
  CHECK(sc.leftover() == "restmore");
  CHECK(sc.output() == "out");
  CHECK(sc.exit_code() == 1);
  // A second sentinel after the first one does not change the result.
  CHECK(sc.feed(sentinel(9)));
  CHECK(sc.exit_code() == 1);
  CHECK(sc.output() == "out");
}

TEST_CASE("scanner: a sentinel must end its line") {
  // The frame always ends with "\x1e\n" ("\x1e\r\n" on a TTY). Marker bytes followed by
  // anything else are output (a command that knows the nonce cannot end the scan early).
  Scan s = scan_all("o" + sentinel(0, kNonce, "") + "X");
  CHECK_FALSE(s.done);
  Scan t = scan_all("o" + sentinel(0, kNonce, "\r") + "X");
  CHECK_FALSE(t.done);
  Scan u = scan_all("o" + sentinel(0, kNonce, "") + "X" + sentinel(3) + "L");
  CHECK(u.done);
  CHECK(u.exit_code == 3);
  CHECK(u.output == "o" + sentinel(0, kNonce, "") + "X");
  CHECK(u.leftover == "L");
}

TEST_CASE("scanner: partial output while running, take_output") {
  SentinelScanner sc(kNonce, 1024);
  sc.feed("hello wor");
  CHECK(sc.output() == "hello wor");
  sc.feed("ld\n");
  CHECK(sc.output() == "hello world\n");
  sc.feed(sentinel(0));
  CHECK(sc.take_output() == "hello world\n");
  CHECK(sc.output().empty());
  CHECK(sc.done());
  CHECK(sc.exit_code() == 0);
}

TEST_CASE("scanner: the EXIT trap's marker reports an ended shell once the stream ends") {
  const std::string exit7 = "\x1ePWX:7\x1e\n";
  SentinelScanner sc(kNonce, 1024);
  CHECK_FALSE(sc.feed("bye\n" + exit7));
  CHECK_FALSE(sc.done());  // not yet: anyone can print the marker
  CHECK(sc.exit_pending());
  CHECK(sc.finish_at_end());
  CHECK(sc.done());
  CHECK(sc.exit_code() == 7);
  CHECK(sc.shell_exited());
  CHECK(sc.output() == "bye\n");
  // The transport's own status wins over the marker's.
  SentinelScanner st(kNonce, 1024);
  st.feed("x" + exit7);
  CHECK(st.finish_at_end(137));
  CHECK(st.exit_code() == 137);
  CHECK(st.output() == "x");
  // The marker split across chunks, CRLF, truncation before it.
  for (std::size_t i = 0; i <= exit7.size(); ++i) {
    SentinelScanner sp(kNonce, 2);
    sp.feed("abc" + exit7.substr(0, i));
    sp.feed(exit7.substr(i));
    CHECK(sp.exit_pending());
    CHECK(sp.finish_at_end());
    CHECK(sp.exit_code() == 7);
    CHECK(sp.output() == "ab");
    CHECK(sp.truncated());
  }
  // A normal sentinel is not an exit; the end of the stream without the marker is nothing.
  SentinelScanner sc2(kNonce, 1024);
  sc2.feed("x" + sentinel(3));
  CHECK_FALSE(sc2.shell_exited());
  SentinelScanner none(kNonce, 1024);
  none.feed("output only\n");
  CHECK_FALSE(none.finish_at_end());
  CHECK_FALSE(none.done());
  // "X" without digits is not a marker.
  SentinelScanner sc3(kNonce, 1024);
  sc3.feed("\x1ePWX:\x1e\n");
  CHECK_FALSE(sc3.exit_pending());
  CHECK_FALSE(sc3.finish_at_end());
}

TEST_CASE("security: a forged EXIT marker followed by more output is just output") {
  const std::string fake = "\x1ePWX:0\x1e\n";
  const std::string stream = "a" + fake + "late\n" + sentinel(7) + "L";
  for (std::size_t i = 0; i <= stream.size(); ++i) {
    Scan s = scan_chunks({stream.substr(0, i), stream.substr(i)});
    if (!(s.done && s.exit_code == 7 && s.output == "a" + fake + "late\n")) {
      CAPTURE(i);
      CHECK(s.done);
      CHECK(s.exit_code == 7);
      CHECK(s.output == "a" + fake + "late\n");
    }
  }
  // Directly before the real sentinel, too.
  Scan d = scan_all(fake + sentinel(4));
  CHECK(d.done);
  CHECK(d.exit_code == 4);
  CHECK(d.output == fake);
  // Once more bytes came, the marker is output even if the stream then ends.
  SentinelScanner sc(kNonce, 1024);
  sc.feed(fake);
  CHECK(sc.exit_pending());
  sc.feed("more");
  CHECK_FALSE(sc.exit_pending());
  CHECK_FALSE(sc.finish_at_end());
  CHECK(sc.output() == fake + "more");
}

TEST_CASE("scanner: truncation at max_output") {
  SUBCASE("exactly at the limit is not truncated") {
    Scan s = scan_all(std::string(100, 'a') + sentinel(0), 100);
    CHECK(s.output.size() == 100);
    CHECK_FALSE(s.truncated);
  }
  SUBCASE("one byte over is truncated") {
    Scan s = scan_all(std::string(101, 'a') + sentinel(0), 100);
    CHECK(s.output == std::string(100, 'a'));
    CHECK(s.truncated);
  }
  SUBCASE("limit 0") {
    Scan s = scan_all("abc" + sentinel(4), 0);
    CHECK(s.output.empty());
    CHECK(s.truncated);
    CHECK(s.exit_code == 4);
    Scan e = scan_all(sentinel(4), 0);
    CHECK_FALSE(e.truncated);
  }
  SUBCASE("small limits, many chunk sizes: the first bytes are kept, the sentinel is found") {
    std::string out;
    for (int i = 0; i < 5000; ++i) out += static_cast<char>('a' + i % 26);
    const std::string stream = out + sentinel(17) + "tail";
    for (std::size_t max : {std::size_t{0}, std::size_t{1}, std::size_t{25}, std::size_t{1000}, std::size_t{4999},
                            std::size_t{5000}, std::size_t{5001}}) {
      for (std::size_t chunk : {std::size_t{1}, std::size_t{7}, std::size_t{21}, std::size_t{22}, std::size_t{23},
                                std::size_t{512}, stream.size()}) {
        CAPTURE(max);
        CAPTURE(chunk);
        SentinelScanner sc(kNonce, max);
        for (std::size_t off = 0; off < stream.size(); off += chunk) {
          sc.feed(std::string_view(stream).substr(off, chunk));
          CHECK(sc.output().size() <= max);
        }
        CHECK(sc.done());
        CHECK(sc.exit_code() == 17);
        CHECK(sc.output() == out.substr(0, max));
        CHECK(sc.truncated() == (max < out.size()));
        CHECK(sc.leftover() == "tail");
        CHECK(sc.bytes_seen() == stream.size());
      }
    }
  }
  SUBCASE("megabytes of output past the limit") {
    const std::size_t max = 1 << 20;
    SentinelScanner sc(kNonce, max);
    std::string block(64 * 1024, '\0');
    for (std::size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>('A' + i % 23);
    std::size_t total = 0;
    for (int i = 0; i < 80; ++i) {  // 5 MiB
      CHECK_FALSE(sc.feed(block));
      total += block.size();
    }
    CHECK(sc.truncated());
    CHECK(sc.output().size() <= max);
    // The sentinel split awkwardly across two chunks, the way a network delivers it.
    std::string s = "\r" + sentinel(200, kNonce, "\r\n");
    CHECK_FALSE(sc.feed(s.substr(0, 9)));
    CHECK(sc.feed(s.substr(9)));
    CHECK(sc.done());
    CHECK(sc.exit_code() == 200);
    CHECK(sc.truncated());
    std::string o = sc.output();
    REQUIRE(o.size() == max);
    CHECK(o.compare(0, block.size(), block) == 0);
    CHECK(sc.bytes_seen() == total + s.size());
  }
}

// --- the frame through a real /bin/sh -----------------------------------------------------

TEST_CASE("sh: frame_command output runs and reports status and output") {
  Shell sh;
  auto r = sh.run("echo hello");
  REQUIRE(r.done);
  CHECK(r.exit_code == 0);
  CHECK(r.output == "hello\n");

  r = sh.run("printf abc");
  REQUIRE(r.done);
  CHECK(r.output == "abc");

  r = sh.run("true");
  REQUIRE(r.done);
  CHECK(r.output.empty());
  CHECK(r.exit_code == 0);

  r = sh.run("false");
  REQUIRE(r.done);
  CHECK(r.exit_code == 1);

  r = sh.run("echo to-stderr >&2; echo to-stdout");
  REQUIRE(r.done);
  CHECK(r.output == "to-stderr\nto-stdout\n");

  r = sh.run("nonexistent-command-xyz");
  REQUIRE(r.done);
  CHECK(r.exit_code == 127);
  CHECK(has(r.output, "nonexistent-command-xyz"));
}

TEST_CASE("sh: commands with single quotes") {
  Shell sh;
  auto r = sh.run("echo 'hello world'");
  REQUIRE(r.done);
  CHECK(r.output == "hello world\n");
  r = sh.run(R"(printf '%s\n' "it's")");
  REQUIRE(r.done);
  CHECK(r.output == "it's\n");
  r = sh.run(R"(echo 'it'\''s' '' "''")");
  REQUIRE(r.done);
  CHECK(r.output == "it's  ''\n");
  r = sh.run(R"(x='a b'; echo "[$x]" '[$x]')");
  REQUIRE(r.done);
  CHECK(r.output == "[a b] [$x]\n");
}

TEST_CASE("sh: unbalanced quotes end with a sentinel and a non-zero status") {
  Shell sh;
  for (const char* cmd : {"echo \"abc", "echo 'abc", "echo `abc", "echo $(echo", "if true; then", "echo \"a'b", "'"}) {
    INFO(std::string(cmd));
    auto r = sh.run(cmd, 1 << 20, std::chrono::seconds(5));
    CHECK_FALSE(r.eof);
    REQUIRE(r.done);
    CHECK(r.exit_code != 0);
  }
  // And the shell is still there, in the same state.
  sh.run("cd /tmp && X=kept");
  auto r = sh.run("echo \"unterminated");
  CHECK(r.done);
  r = sh.run("echo \"$X\" \"$(pwd)\"");
  REQUIRE(r.done);
  CHECK(r.output == "kept /tmp\n");
}

TEST_CASE("sh: multi-line commands") {
  Shell sh;
  auto r = sh.run("echo one\necho two\n\necho three");
  REQUIRE(r.done);
  CHECK(r.output == "one\ntwo\nthree\n");
  r = sh.run("for i in 1 2 3; do\n  echo \"n=$i\"\ndone");
  REQUIRE(r.done);
  CHECK(r.output == "n=1\nn=2\nn=3\n");
  r = sh.run("cat <<'EOF'\nit's \"quoted\" $HOME\nEOF");
  REQUIRE(r.done);
  CHECK(r.output == "it's \"quoted\" $HOME\n");
  r = sh.run("echo 'a\nb'; (exit 9)");
  REQUIRE(r.done);
  CHECK(r.output == "a\nb\n");
  CHECK(r.exit_code == 9);
  r = sh.run("echo trailing\n");
  REQUIRE(r.done);
  CHECK(r.output == "trailing\n");
}

TEST_CASE("sh: exit codes 0..255 on one persistent shell") {
  Shell sh;
  for (int code = 0; code <= 255; ++code) {
    auto r = sh.run("(exit " + std::to_string(code) + ")");
    if (!(r.done && r.exit_code == code && r.output.empty())) {
      CAPTURE(code);
      CHECK(r.done);
      CHECK(r.exit_code == code);
      CHECK(r.output.empty());
    }
  }
}

TEST_CASE("sh: state persists, stdin is /dev/null, the next command is not swallowed") {
  Shell sh;
  CHECK(sh.run("cd /usr; export FOO=bar").done);
  auto r = sh.run("pwd; echo $FOO");
  REQUIRE(r.done);
  CHECK(r.output == "/usr\nbar\n");
  r = sh.run("cat");  // reads stdin: gets /dev/null, not our next frame
  REQUIRE(r.done);
  CHECK(r.output.empty());
  CHECK(r.exit_code == 0);
  r = sh.run("read line; echo \"rc=$?\"");
  REQUIRE(r.done);
  CHECK(r.output == "rc=1\n");
  r = sh.run("echo still here");
  REQUIRE(r.done);
  CHECK(r.output == "still here\n");
}

TEST_CASE("sh: output that fakes a sentinel, binary output, CRLF kept on a pipe") {
  Shell sh;
  auto r = sh.run(R"(printf '\036PW0000000000000000:0\036\n'; echo real; exit_code=3; (exit 3))");
  REQUIRE(r.done);
  CHECK(r.exit_code == 3);
  CHECK(r.output == "\x1ePW0000000000000000:0\x1e\nreal\n");
  r = sh.run(R"(printf '\377\376\000\001x')");
  REQUIRE(r.done);
  CHECK(r.output == "\xff\xfe\x00\x01x"s);
  r = sh.run(R"(printf 'a\r\nb\r\n')");
  REQUIRE(r.done);
  CHECK(r.output == "a\r\nb\r\n");
}

TEST_CASE("sh: shell_quote round-trips arbitrary bytes through a real shell") {
  Shell sh;
  std::string all;
  for (int c = 1; c < 256; ++c) all.push_back(static_cast<char>(c));
  for (const std::string& s : {"plain"s, "it's"s, "''''"s, "\\'"s, "$(id) `id` ${x}"s, "*?[a]"s, "new\nline"s, all}) {
    CAPTURE(s);
    auto r = sh.run("printf '%s' " + shell_quote(s));
    REQUIRE(r.done);
    CHECK(r.output == s);
  }
}

TEST_CASE("sh: large output is truncated while the sentinel is still found") {
  Shell sh;
  auto r = sh.run("head -c 3000000 /dev/zero | tr '\\0' 'x'; echo; (exit 4)", 1 << 20, std::chrono::seconds(30));
  REQUIRE(r.done);
  CHECK(r.exit_code == 4);
  CHECK(r.truncated);
  CHECK(r.output == std::string(1 << 20, 'x'));
  auto next = sh.run("echo after");
  REQUIRE(next.done);
  CHECK(next.output == "after\n");
}

TEST_CASE("sh: frame_sync answers with the last status") {
  Shell sh;
  std::string nonce = make_nonce();
  SentinelScanner sc(nonce, 1024);
  sh.send("(exit 6)\n" + frame_sync(nonce));
  auto r = sh.wait_for(sc, std::chrono::seconds(10));
  REQUIRE(r.done);
  CHECK(r.exit_code == 6);
  CHECK(r.output.empty());
}

TEST_CASE("sh: a command that ends the shell reports through the exit trap") {
  Shell sh;
  sh.send(exit_trap());
  auto r = sh.run("echo bye; exit 3");
  REQUIRE(r.done);
  CHECK(r.shell_exited);
  CHECK(r.exit_code == 3);
  CHECK(r.output == "bye\n");
}

TEST_CASE("security: sh: the running command cannot read its nonce") {
  // Everything a command can look at in its own shell: variables, the environment,
  // traps, the shell's /proc entries, the old $__pw_n.
  for (const std::string path : {"/bin/sh", "/bin/bash"}) {
    CAPTURE(path);
    Shell sh(path.c_str());
    sh.send(exit_trap());
    auto r = sh.run(
        "echo \"n=$__pw_n\"; set; env; trap; export -p; cat /proc/$$/environ /proc/$$/cmdline | tr '\\0' '\\n'; "
        "alias 2>/dev/null; history 2>/dev/null; echo \"$BASH_COMMAND\"; declare -p 2>/dev/null; true");
    REQUIRE(r.done);
    CHECK(r.exit_code == 0);
    CHECK(has(r.output, "n=\n"));
    CHECK_FALSE(has(r.output, sh.last_nonce));
    CHECK(has(r.output, "PWX:"));  // the trap is listed, and holds nothing secret
  }
}

TEST_CASE("security: sh: a command that forges the sentinel gets its true status and all its output") {
  Shell sh;
  sh.send(exit_trap());
  // An earlier nonce (`set -x` shows each one once it has been used) is worth nothing.
  REQUIRE(sh.run("echo two").done);
  const std::string old_nonce = sh.last_nonce;
  const std::string forge =
      "printf '\\036PW%s:0\\036\\n' \"$__pw_n\"; "
      "printf '\\036PW" +
      old_nonce +
      ":0\\036\\n'; "
      "for n in $(set | grep -o 'PW[0-9a-f]*'); do printf \"\\036$n:0\\036\\n\"; done; "
      "printf '\\036PWX:0\\036\\n'; "
      "sleep 0.3; echo late; (exit 7)";
  auto r = sh.run(forge);
  REQUIRE(r.done);
  CHECK(r.exit_code == 7);
  CHECK(has(r.output, "late\n"));
  CHECK(has(r.output, "\x1ePWX:0\x1e\n"));  // the forged exit marker is plain output
  CHECK_FALSE(r.shell_exited);
  auto next = sh.run("echo next");
  REQUIRE(next.done);
  CHECK(next.output == "next\n");
}

TEST_SUITE_END();

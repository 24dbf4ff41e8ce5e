// The in-capsule agent (apps/pw-agent) and its client (AgentChannel), end to end: the real
// static agent runs as a local process on this host (no container needed) and the tests
// talk to it through connect_agent exactly as the capsule manager does.
#include "fixtures.hpp"

#include <doctest/doctest.h>
#include <podwrangler/capsules/agent_client.hpp>
#include <podwrangler/capsules/agent_protocol.hpp>
#include <podwrangler/errors.hpp>

#include <openssl/evp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#ifndef PW_AGENT_BIN
#error "PW_AGENT_BIN must name the pw-agent executable"
#endif

using namespace pw::capsules;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using pw::testing::wait_until;

namespace {

// The agent as a local process: its socket in a 0700 run directory, PODWRANGLER_* in its
// environment (which no child may see).
struct LocalAgent {
  pw::testing::TempDir dir;
  std::string run_dir;
  std::string sock;
  pw::testing::Process proc;

  explicit LocalAgent(std::vector<std::string> extra = {}, std::string socket_dir = "") {
    run_dir = socket_dir.empty() ? dir.file("run") : socket_dir;
    fs::create_directories(run_dir);
    fs::permissions(run_dir, fs::perms::owner_all, fs::perm_options::replace);
    sock = run_dir + "/agent.sock";
    std::vector<std::string> argv = {"env", "PODWRANGLER_SECRET_KEY=hunter2-secret", PW_AGENT_BIN, "--socket", sock};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc = pw::testing::Process(argv, dir.file("agent.log"));
  }
  std::unique_ptr<ExecChannel> connect(std::chrono::milliseconds timeout = 5s) {
    return connect_agent(sock, proc.pid(), timeout);
  }
  std::string log() const { return pw::testing::read_file(dir.file("agent.log")); }
};

ExecRequest cmd(std::vector<std::string> argv) {
  ExecRequest r;
  r.argv = std::move(argv);
  return r;
}

ExecRequest sh(const std::string& script) { return cmd({"sh", "-c", script}); }

// A field of /proc/<pid>/status in kB (VmRSS, VmHWM), -1 when unreadable.
long status_kb(const std::string& pid, const std::string& field) {
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

bool process_exists(int pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

std::set<std::string> fds_of(int pid) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) out.insert(e.path().filename());
  return out;
}

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const char* p, std::size_t n) { EVP_DigestUpdate(ctx_, p, n); }
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    std::string out;
    char b[3];
    for (unsigned int i = 0; i < len; ++i) {
      std::snprintf(b, sizeof(b), "%02x", md[i]);
      out += b;
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

// `total` pseudo-random bytes, made as they are read (never held whole), hashed on the way.
class RandomSource : public ByteSource {
 public:
  explicit RandomSource(std::size_t total, std::size_t fail_after = SIZE_MAX) : left_(total), fail_after_(fail_after) {}
  std::size_t read(char* buf, std::size_t n) override {
    if (given_ >= fail_after_) throw std::runtime_error("source failed on purpose");
    n = std::min(n, left_);
    for (std::size_t i = 0; i < n; ++i) {
      state_ ^= state_ << 13;
      state_ ^= state_ >> 7;
      state_ ^= state_ << 17;
      buf[i] = static_cast<char>(state_ & 0xff);
    }
    left_ -= n;
    given_ += n;
    sha_.update(buf, n);
    return n;
  }
  std::string hex() { return sha_.hex(); }

 private:
  std::size_t left_;
  std::size_t fail_after_;
  std::size_t given_ = 0;
  std::uint64_t state_ = 0x9e3779b97f4a7c15ULL;
  Sha256 sha_;
};

// Hashes what arrives and records the test process's peak RSS meanwhile.
class HashSink : public ByteSink {
 public:
  void write(std::string_view b) override {
    sha_.update(b.data(), b.size());
    size_ += b.size();
    if (size_ - last_sample_ >= 4 * 1024 * 1024) {
      last_sample_ = size_;
      max_rss_kb_ = std::max(max_rss_kb_, status_kb("self", "VmRSS"));
    }
  }
  std::string hex() { return sha_.hex(); }
  std::size_t size() const { return size_; }
  long max_rss_kb() const { return max_rss_kb_; }

 private:
  Sha256 sha_;
  std::size_t size_ = 0;
  std::size_t last_sample_ = 0;
  long max_rss_kb_ = 0;
};

class StringSink : public ByteSink {
 public:
  void write(std::string_view b) override { data.append(b); }
  std::string data;
};

class StringSource : public ByteSource {
 public:
  explicit StringSource(std::string s) : s_(std::move(s)) {}
  std::size_t read(char* buf, std::size_t n) override {
    n = std::min(n, s_.size() - off_);
    std::copy_n(s_.data() + off_, n, buf);
    off_ += n;
    return n;
  }

 private:
  std::string s_;
  std::size_t off_ = 0;
};

// An exec running on its own thread; its pid is known once it started.
struct Running {
  std::thread t;
  std::atomic<int> pid{0};
  std::mutex m;
  ExecResult result;
  std::string error;
  std::atomic<bool> done{false};

  Running(ExecChannel& ch, ExecRequest req) {
    t = std::thread([this, &ch, req] {
      ExecSink sink = [this](const ExecEvent& ev) {
        if (ev.kind == ExecEvent::Kind::started) pid = ev.pid;
      };
      try {
        auto r = ch.exec(req, &sink);
        std::lock_guard lk(m);
        result = r;
      } catch (const pw::AgentError& e) {
        std::lock_guard lk(m);
        error = std::string("AgentError: ") + e.what();
      } catch (const std::exception& e) {
        std::lock_guard lk(m);
        error = e.what();
      }
      done = true;
    });
  }
  ~Running() {
    if (t.joinable()) t.join();
  }
  Running(const Running&) = delete;
  Running& operator=(const Running&) = delete;
};

}  // namespace

TEST_SUITE("agent") {
  TEST_CASE("exec: stdout, stderr and the exit code come back apart") {
    LocalAgent a;
    auto ch = a.connect();
    CHECK(ch->mode() == "agent");
    auto r = ch->exec(sh("printf out; printf err >&2; exit 7"));
    CHECK(r.stdout_data == "out");
    CHECK(r.stderr_data == "err");
    CHECK(r.exit_code == 7);
    CHECK_FALSE(r.timed_out);
    CHECK(r.duration_s > 0);
    CHECK(r.duration_s < 5);

    auto k = ch->exec(sh("kill -TERM $$"));
    CHECK(k.exit_code == 128 + SIGTERM);

    auto nf = ch->exec(cmd({"pw-no-such-command-here"}));
    CHECK(nf.exit_code == 127);
    CHECK(nf.stderr_data.find("command not found") != std::string::npos);
  }

  TEST_CASE("exec: env overlays the agent's environment, cwd is honoured, PODWRANGLER_* never reaches a child") {
    LocalAgent a;
    auto ch = a.connect();
    auto req = sh("printf '%s|%s|%s' \"$FOO\" \"$(pwd)\" \"$PATH\"; env | grep -c PODWRANGLER_ || true");
    req.env = {{"FOO", "bar baz"}};
    req.cwd = a.dir.path().string();
    auto r = ch->exec(req);
    CHECK(r.exit_code == 0);
    const std::string expected = "bar baz|" + fs::canonical(a.dir.path()).string() + "|" + std::getenv("PATH") + "0\n";
    CHECK(r.stdout_data == expected);

    // An explicit PATH in the request is the one searched.
    auto p = cmd({"true"});
    p.env = {{"PATH", "/nonexistent"}};
    CHECK(ch->exec(p).exit_code == 127);

    auto bad = sh("true");
    bad.cwd = a.dir.file("missing-dir");
    CHECK_THROWS_AS(ch->exec(bad), pw::CapsuleNotFoundError);
    auto env_bad = sh("true");
    env_bad.env = {{"A=B", "x"}};
    CHECK_THROWS_AS(ch->exec(env_bad), pw::CapsuleValidationError);
    CHECK_THROWS_AS(ch->exec(cmd({})), pw::CapsuleValidationError);
  }

  TEST_CASE("exec: stdin is written then closed, large ones too") {
    LocalAgent a;
    auto ch = a.connect();
    auto r = cmd({"cat"});
    r.stdin_data = "hello\nworld\n";
    CHECK(ch->exec(r).stdout_data == "hello\nworld\n");

    auto big = cmd({"wc", "-c"});
    big.stdin_data.assign(3 * 1024 * 1024 + 7, 'z');
    auto out = ch->exec(big);
    CHECK(out.exit_code == 0);
    CHECK(std::stoul(out.stdout_data) == 3 * 1024 * 1024 + 7);

    // A process that ignores its stdin still ends normally.
    auto ignore = cmd({"true"});
    ignore.stdin_data.assign(2 * 1024 * 1024, 'q');
    CHECK(ch->exec(ignore).exit_code == 0);

    // Without stdin_data, stdin is at its end at once.
    CHECK(ch->exec(cmd({"cat"})).stdout_data.empty());
  }

  TEST_CASE("exec: a timeout kills the whole process group, grandchildren included") {
    LocalAgent a;
    auto ch = a.connect();
    auto req = sh("sleep 1000 & echo $!; sleep 1000");
    req.timeout_s = 0.5;
    const auto t0 = std::chrono::steady_clock::now();
    auto r = ch->exec(req);
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(r.timed_out);
    CHECK(r.exit_code == 137);
    CHECK(took < 5s);
    CHECK(took >= 400ms);
    const int grandchild = std::stoi(r.stdout_data);
    REQUIRE(grandchild > 0);
    CHECK(wait_until([&] { return !process_exists(grandchild); }, 5s));
  }

  TEST_CASE("exec: output beyond max_output_bytes is dropped and marked truncated") {
    LocalAgent a;
    auto ch = a.connect();
    auto req = sh("head -c 300000 /dev/zero; head -c 10 /dev/zero >&2");
    req.max_output_bytes = 1000;
    auto r = ch->exec(req);
    CHECK(r.exit_code == 0);
    CHECK(r.stdout_data.size() == 1000);
    CHECK(r.stderr_data.size() == 10);
    CHECK(r.truncated);
    req.max_output_bytes = 400000;
    auto whole = ch->exec(req);
    CHECK(whole.stdout_data.size() == 300000);
    CHECK_FALSE(whole.truncated);
  }

  TEST_CASE("streamed exec: events arrive live and in order, the exit last") {
    LocalAgent a;
    auto ch = a.connect();
    const std::string flag = a.dir.file("flag");
    // The process waits for a file that only the sink creates when it has seen "first":
    // it can only end if events are delivered while it runs.
    auto req = sh("echo first; while [ ! -e '" + flag + "' ]; do sleep 0.01; done; echo second >&2; echo third");
    std::vector<ExecEvent> events;
    ExecSink sink = [&](const ExecEvent& ev) {
      events.push_back(ev);
      if (ev.kind == ExecEvent::Kind::stdout_data && ev.data.find("first") != std::string::npos)
        std::ofstream(flag) << "x";
    };
    req.timeout_s = 20;
    auto r = ch->exec(req, &sink);
    CHECK_FALSE(r.timed_out);
    CHECK(r.exit_code == 0);
    CHECK(r.stdout_data.empty());
    REQUIRE(events.size() >= 4);
    CHECK(events.front().kind == ExecEvent::Kind::started);
    CHECK(events.front().pid > 0);
    CHECK(events.back().kind == ExecEvent::Kind::exit);
    CHECK(events.back().exit_code == 0);
    std::string out;
    std::string err;
    for (std::size_t i = 1; i + 1 < events.size(); ++i) {
      CHECK(events[i].kind != ExecEvent::Kind::exit);
      CHECK(events[i].kind != ExecEvent::Kind::started);
      (events[i].kind == ExecEvent::Kind::stdout_data ? out : err) += events[i].data;
    }
    CHECK(out == "first\nthird\n");
    CHECK(err == "second\n");
  }

  TEST_CASE("200 concurrent execs from 8 threads on one connection each get their own output") {
    LocalAgent a;
    auto ch = a.connect();
    std::atomic<int> ok{0};
    std::mutex m;
    std::vector<std::string> failures;
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 25; ++i) {
          const std::string tag = "t" + std::to_string(t) + "-" + std::to_string(i);
          try {
            ExecRequest req;
            if (i % 3 == 0) {
              req = cmd({"cat"});
              req.stdin_data = tag + std::string(static_cast<std::size_t>(i) * 1000, '.');
              auto r = ch->exec(req);
              if (r.stdout_data == req.stdin_data && r.exit_code == 0) {
                ++ok;
                continue;
              }
            } else {
              req = sh("printf %s \"$1\"; printf %s \"$1\" >&2; exit $2");
              req.argv.insert(req.argv.end(), {"sh", tag, std::to_string(i)});
              auto r = ch->exec(req);
              if (r.stdout_data == tag && r.stderr_data == tag && r.exit_code == i) {
                ++ok;
                continue;
              }
            }
            std::lock_guard lk(m);
            failures.push_back(tag + ": wrong result");
          } catch (const std::exception& e) {
            std::lock_guard lk(m);
            failures.push_back(tag + ": " + e.what());
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(ok == 200);
    for (const auto& f : failures) FAIL_CHECK(f);
    CHECK(ch->alive());
  }

  TEST_CASE("background processes: started, listed, logged, killed") {
    LocalAgent a;
    auto ch = a.connect();
    const int pid = ch->start_background(sh("echo bg-out-$$; exec sleep 300"));
    REQUIRE(pid > 1);
    const std::string log = "/tmp/.podwrangler/" + std::to_string(pid) + ".log";
    CHECK(wait_until(
        [&] { return pw::testing::read_file(log).find("bg-out-" + std::to_string(pid)) != std::string::npos; }));
    auto ps = ch->processes();
    auto it = std::find_if(ps.begin(), ps.end(), [&](const ProcessInfo& p) { return p.pid == pid; });
    REQUIRE(it != ps.end());
    CHECK(it->background);
    CHECK(it->argv == std::vector<std::string>{"sh", "-c", "echo bg-out-$$; exec sleep 300"});
    CHECK(it->running_s >= 0);
    CHECK(fds_of(pid) == std::set<std::string>{"0", "1", "2"});

    ch->kill(pid, SIGTERM);
    CHECK(wait_until([&] {
      auto now = ch->processes();
      return std::none_of(now.begin(), now.end(), [&](const ProcessInfo& p) { return p.pid == pid; });
    }));
    CHECK_FALSE(process_exists(pid));
    CHECK_THROWS_AS(ch->kill(pid, SIGTERM), pw::CapsuleNotFoundError);  // gone (ESRCH)
    CHECK_THROWS_AS(ch->kill(1, SIGTERM), pw::CapsuleValidationError);
    CHECK_THROWS_AS(ch->start_background(cmd({"pw-no-such-command-here"})), pw::CapsuleNotFoundError);
    fs::remove(log);
  }

  TEST_CASE("activity counts a running sleep, processes lists it, the idle time grows without work") {
    LocalAgent a;
    auto ch = a.connect();
    CHECK(ch->activity().running_processes == 0);
    Running run(*ch, cmd({"sleep", "300"}));
    REQUIRE(wait_until([&] { return run.pid > 0; }));
    auto act = ch->activity();
    CHECK(act.running_processes == 1);
    auto ps = ch->processes();
    REQUIRE(ps.size() == 1);
    CHECK(ps[0].pid == run.pid);
    CHECK_FALSE(ps[0].background);
    ch->kill(run.pid, SIGKILL);
    run.t.join();
    CHECK(run.result.exit_code == 137);
    CHECK(ch->activity().running_processes == 0);
    const auto idle0 = ch->activity().idle_ms;
    CHECK(wait_until([&] { return ch->activity().idle_ms >= idle0 + 50; }));
  }

  TEST_CASE("children get only fds 0/1/2 and a clean environment") {
    LocalAgent a;
    auto ch = a.connect();
    auto second = a.connect();  // more sockets open in the agent: none may leak
    Running run(*ch, cmd({"sleep", "300"}));
    REQUIRE(wait_until([&] { return run.pid > 0; }));
    // The pid is known from fork on; the descriptors are checked once the child has exec'd.
    REQUIRE(wait_until([&] {
      return pw::testing::read_file("/proc/" + std::to_string(run.pid) + "/cmdline").rfind("sleep", 0) == 0;
    }));
    CHECK(fds_of(run.pid) == std::set<std::string>{"0", "1", "2"});
    const std::string environ_text = pw::testing::read_file("/proc/" + std::to_string(run.pid) + "/environ");
    CHECK(environ_text.find("PODWRANGLER_") == std::string::npos);
    CHECK(environ_text.find("hunter2") == std::string::npos);
    ch->kill(run.pid, SIGKILL);
    run.t.join();

    // From the inside: ls sees its own three and the directory it reads (fd 3), nothing else.
    auto ls = ch->exec(sh("ls /proc/self/fd | tr '\\n' ' '"));
    CHECK(ls.stdout_data == "0 1 2 3 ");
    // The agent was started with a PODWRANGLER_ variable; no child sees it.
    CHECK(ch->exec(sh("env")).stdout_data.find("PODWRANGLER") == std::string::npos);
  }

  TEST_CASE("100 MiB upload and download, streamed, checksums equal, memory bounded") {
    LocalAgent a;
    auto ch = a.connect();
    const std::size_t size = 100 * 1024 * 1024;
    const std::string path = a.dir.file("big.bin");
    const long rss0 = status_kb("self", "VmRSS");
    RandomSource src(size);
    ch->upload(path, src, 0640);
    const std::string sent_hash = src.hex();
    const long rss_after_upload = status_kb("self", "VmRSS");
    auto st = ch->stat(path);
    CHECK(st.size == size);
    CHECK(st.type == "file");
    CHECK(st.mode == 0640);

    HashSink sink;
    ch->download(path, sink);
    CHECK(sink.size() == size);
    CHECK(sink.hex() == sent_hash);
    // Neither side ever held the file: the client grew by far less than 100 MiB …
    if (pw::testing::rss_is_meaningful()) {
      CHECK(rss_after_upload - rss0 < 32 * 1024);
      CHECK(sink.max_rss_kb() - rss0 < 48 * 1024);
    }
    // … and neither did the agent (its peak over its whole life), which is small again now.
    const std::string apid = std::to_string(a.proc.pid());
    CHECK(status_kb(apid, "VmHWM") < 8 * 1024);
    CHECK(wait_until([&] { return status_kb(apid, "VmRSS") <= 2048; }, 5s));
    MESSAGE("agent VmHWM " << status_kb(apid, "VmHWM") << " kB, VmRSS after " << status_kb(apid, "VmRSS")
                           << " kB; client peak growth " << (sink.max_rss_kb() - rss0) << " kB");
  }

  TEST_CASE("flow control: a consumer that stops holds the agent back instead of filling memory") {
    LocalAgent a;
    auto ch = a.connect();
    const std::size_t size = 100 * 1024 * 1024;
    const std::string path = a.dir.file("big.bin");
    RandomSource src(size);
    ch->upload(path, src);
    const std::string apid = std::to_string(a.proc.pid());

    // A sink that blocks on its first bytes until the test lets it go.
    struct GatedSink : ByteSink {
      std::mutex m;
      std::condition_variable cv;
      bool open = false;
      HashSink inner;
      void write(std::string_view b) override {
        std::unique_lock lk(m);
        cv.wait(lk, [&] { return open; });
        inner.write(b);
      }
    } sink;
    std::string error;
    std::thread t([&] {
      try {
        ch->download(path, sink);
      } catch (const std::exception& e) {
        error = e.what();
      }
    });
    struct Release {  // whatever happens below, the sink is let go and the thread joined
      GatedSink& s;
      std::thread& t;
      ~Release() {
        {
          std::lock_guard lk(s.m);
          s.open = true;
        }
        s.cv.notify_all();
        if (t.joinable()) t.join();
      }
    } release{sink, t};
    // How far the agent has read the file: the offset of its descriptor for it.
    const auto agent_offset = [&]() -> long long {
      for (const auto& e : fs::directory_iterator("/proc/" + apid + "/fd")) {
        std::error_code ec;
        if (fs::read_symlink(e.path(), ec) != path) continue;
        const std::string info = pw::testing::read_file("/proc/" + apid + "/fdinfo/" + e.path().filename().string());
        return std::stoll(info.substr(info.find("pos:") + 4));
      }
      return -1;
    };
    REQUIRE(wait_until([&] { return agent_offset() >= 4 * 1024 * 1024; }));
    // Stalled: the reader thread holds at most its channel's 8 MiB, the agent its 1 MiB
    // (plus the socket buffers); it must not read on while nobody consumes.
    CHECK_FALSE(wait_until([&] { return agent_offset() > 24 * 1024 * 1024 || agent_offset() < 0; }, 500ms));
    CHECK(status_kb(apid, "VmRSS") < 8 * 1024);
    {
      std::lock_guard lk(sink.m);
      sink.open = true;
    }
    sink.cv.notify_all();
    t.join();
    CHECK(error.empty());
    CHECK(sink.inner.size() == size);
    CHECK(sink.inner.hex() == src.hex());
    CHECK(ch->alive());
  }

  TEST_CASE("uploads replace atomically: a failed upload leaves no file behind") {
    LocalAgent a;
    auto ch = a.connect();
    const std::string path = a.dir.file("atomic.txt");
    StringSource first("version one");
    ch->upload(path, first);
    RandomSource failing(10 * 1024 * 1024, 1024 * 1024);
    CHECK_THROWS_WITH_AS(ch->upload(path, failing), "source failed on purpose", std::runtime_error);
    // The old content is intact and no temporary file is left (the cancel reaches the agent).
    CHECK(pw::testing::read_file(path) == "version one");
    CHECK(wait_until([&] {
      int n = 0;
      for ([[maybe_unused]] const auto& e : fs::directory_iterator(a.dir.path())) ++n;
      return n == 3;  // run/, agent.log, atomic.txt
    }));
    // Missing parents are made; a parent that is a file is refused.
    StringSource missing_dir("x");
    ch->upload(a.dir.file("no/such/dir/f"), missing_dir);
    CHECK(pw::testing::read_file(a.dir.file("no/such/dir/f")) == "x");
    StringSource under_file("x");
    CHECK_THROWS_AS(ch->upload(path + "/f", under_file), pw::PodClientError);
    StringSource to_dir("x");
    CHECK_THROWS_AS(ch->upload(a.dir.path().string(), to_dir), pw::CapsuleValidationError);
    StringSource relative("x");
    CHECK_THROWS_AS(ch->upload("relative/path", relative), pw::CapsuleValidationError);

    // A sink that gives up: the error reaches the caller and the channel goes on working.
    struct Throwing : ByteSink {
      void write(std::string_view) override { throw std::runtime_error("sink gave up"); }
    } throwing;
    CHECK_THROWS_WITH_AS(ch->download(path, throwing), "sink gave up", std::runtime_error);
    StringSink again;
    ch->download(path, again);
    CHECK(again.data == "version one");
  }

  TEST_CASE("stat, list with depth, mkdir, remove; symlinks are never followed") {
    LocalAgent a;
    auto ch = a.connect();
    const std::string root = a.dir.file("tree");
    ch->mkdir(root + "/a/b/c", true);
    CHECK(ch->stat(root + "/a/b/c").type == "dir");
    CHECK_THROWS_AS(ch->mkdir(root + "/x/y", false), pw::CapsuleNotFoundError);
    CHECK_THROWS_AS(ch->mkdir(root + "/a", false), pw::CapsuleValidationError);  // exists
    ch->mkdir(root + "/a", true);                                                // exists: fine with parents
    StringSource f("12345");
    ch->upload(root + "/a/file.txt", f, 0600);
    StringSource g("deep");
    ch->upload(root + "/a/b/c/deep.txt", g);

    // A victim outside the tree, reachable only through symlinks.
    const std::string victim = a.dir.file("victim");
    fs::create_directories(victim);
    std::ofstream(victim + "/keep.txt") << "keep";
    fs::create_directory_symlink(victim, root + "/a/link-to-victim");

    auto l1 = ch->list(root + "/a", 1);
    std::vector<std::string> names;
    for (const auto& e : l1) names.push_back(e.name);
    CHECK(names == std::vector<std::string>{"b", "file.txt", "link-to-victim"});
    CHECK(l1[1].path == root + "/a/file.txt");
    CHECK(l1[1].size == 5);
    CHECK(l1[1].mode == 0600);
    CHECK(l1[2].type == "symlink");
    CHECK(l1[2].link_target == victim);

    auto l3 = ch->list(root + "/a", 3);
    std::vector<std::string> paths;
    for (const auto& e : l3) paths.push_back(e.path.substr(root.size()));
    CHECK(paths == std::vector<std::string>{"/a/b", "/a/b/c", "/a/b/c/deep.txt", "/a/file.txt", "/a/link-to-victim"});
    CHECK(ch->list(root + "/a", 2).size() == 4);
    CHECK_THROWS_AS(ch->list(root + "/a/file.txt", 1), pw::CapsuleValidationError);  // ENOTDIR

    auto ls = ch->stat(root + "/a/link-to-victim");
    CHECK(ls.type == "symlink");
    CHECK(ls.name == "link-to-victim");

    // Removing the link removes the link, not its target.
    ch->remove(root + "/a/link-to-victim", true);
    CHECK_FALSE(fs::exists(fs::symlink_status(root + "/a/link-to-victim")));
    CHECK(pw::testing::read_file(victim + "/keep.txt") == "keep");

    // A tree with a symlink inside it: recursive removal does not go through the link.
    fs::create_directory_symlink(victim, root + "/a/b/c/inner-link");
    CHECK_THROWS_AS(ch->remove(root + "/a", false), pw::CapsuleValidationError);  // not empty
    ch->remove(root + "/a", true);
    CHECK_FALSE(fs::exists(root + "/a"));
    CHECK(pw::testing::read_file(victim + "/keep.txt") == "keep");

    // The agent's own run directory (its socket) cannot be removed, nor anything above it.
    CHECK_THROWS_AS(ch->remove(a.run_dir, true), pw::CapsuleValidationError);
    CHECK_THROWS_AS(ch->remove(a.sock, false), pw::CapsuleValidationError);
    CHECK_THROWS_AS(ch->remove(a.dir.path().string(), true), pw::CapsuleValidationError);
    CHECK_THROWS_AS(ch->remove("/", true), pw::CapsuleValidationError);
    CHECK(fs::exists(a.sock));
    CHECK(ch->alive());
  }

  TEST_CASE("a missing path is CapsuleNotFoundError naming the file") {
    LocalAgent a;
    auto ch = a.connect();
    const std::string missing = a.dir.file("nope.txt");
    CHECK_THROWS_AS(ch->stat(missing), pw::CapsuleNotFoundError);
    StringSink s;
    CHECK_THROWS_AS(ch->download(missing, s), pw::CapsuleNotFoundError);
    CHECK_THROWS_AS(ch->list(missing, 1), pw::CapsuleNotFoundError);
    CHECK_THROWS_AS(ch->remove(missing, false), pw::CapsuleNotFoundError);
    try {
      ch->stat(missing);
    } catch (const pw::CapsuleNotFoundError& e) {
      CHECK(e.name() == missing);
      CHECK(std::string(e.what()).find("file") != std::string::npos);
    }
    CHECK_THROWS_AS(ch->download(a.dir.path().string(), s), pw::CapsuleValidationError);  // a directory
  }

  TEST_CASE("the peer check: a socket held by another process is not the capsule's agent") {
    LocalAgent a;
    try {
      connect_agent(a.sock, a.proc.pid() + 1, 5s);
      FAIL("connected to a socket whose peer is not the expected pid");
    } catch (const pw::AgentError& e) {
      CHECK(std::string(e.what()).find("is not the capsule's agent") != std::string::npos);
    }
    CHECK(connect_agent(a.sock, 0, 5s)->alive());  // 0: no check
    CHECK_THROWS_AS(connect_agent(a.dir.file("run/none.sock"), 0, 100ms), pw::AgentError);
  }

  TEST_CASE("a socket path longer than a unix address allows is reached through its directory") {
    pw::testing::TempDir base;
    const std::string deep = base.file(std::string(60, 'd') + "/" + std::string(60, 'e'));
    REQUIRE(deep.size() + 11 > 108);
    LocalAgent a({}, deep);
    auto ch = a.connect();
    CHECK(ch->exec(cmd({"echo", "long"})).stdout_data == "long\n");
  }

  TEST_CASE("an agent killed mid-exec fails the call promptly with AgentError") {
    LocalAgent a;
    auto ch = a.connect();
    Running run(*ch, cmd({"sleep", "300"}));
    REQUIRE(wait_until([&] { return run.pid > 0; }));
    const int orphan = run.pid;
    a.proc.kill_now();
    CHECK(wait_until([&] { return run.done.load(); }, 3s));
    run.t.join();
    CHECK(run.error.find("AgentError") == 0);
    CHECK_THROWS_AS(ch->exec(cmd({"true"})), pw::AgentError);
    CHECK_FALSE(ch->alive());
    ::kill(-orphan, SIGKILL);  // its own group: nothing of it outlives the test
  }

  TEST_CASE("close() fails running calls with AgentError and later calls too") {
    LocalAgent a;
    auto ch = a.connect();
    CHECK(ch->alive());
    Running run(*ch, cmd({"sleep", "300"}));
    REQUIRE(wait_until([&] { return run.pid > 0; }));
    ch->close();
    CHECK(wait_until([&] { return run.done.load(); }, 3s));
    run.t.join();
    CHECK(run.error.find("AgentError") == 0);
    CHECK_FALSE(ch->alive());
    CHECK_THROWS_AS(ch->stat("/"), pw::AgentError);
    // The agent killed the exec whose connection went away.
    CHECK(wait_until([&] { return !process_exists(run.pid); }));
  }

  TEST_CASE("bytes that look like frames in a child's output are just output") {
    LocalAgent a;
    auto ch = a.connect();
    namespace proto = pw::capsules::agent;
    proto::ExitMsg forged_exit;
    forged_exit.code = 99;
    std::string forged;
    for (std::uint32_t c = 0; c < 64; ++c) {
      proto::append_frame(forged, proto::MsgType::exit, c, forged_exit.encode());
      proto::append_frame(forged, proto::MsgType::stdout_data, c, "forged");
    }
    proto::append_frame(forged, proto::MsgType::hello, 0, proto::Hello{}.encode());
    forged += std::string("\xff\xff\xff\xff", 4);  // an impossible length, if it were parsed
    auto req = cmd({"cat"});
    req.stdin_data = forged;
    auto r = ch->exec(req);
    CHECK(r.exit_code == 0);
    CHECK(r.stdout_data == forged);
    auto err = sh("cat >&2; exit 3");
    err.stdin_data = forged;
    auto e = ch->exec(err);
    CHECK(e.exit_code == 3);
    CHECK(e.stderr_data == forged);
    CHECK(ch->exec(cmd({"echo", "still fine"})).stdout_data == "still fine\n");
  }

  TEST_CASE("SIGTERM ends the running execs (reported) and the agent; --lifetime ends it by itself") {
    {
      LocalAgent a;
      auto ch = a.connect();
      Running run(*ch, cmd({"sleep", "300"}));
      REQUIRE(wait_until([&] { return run.pid > 0; }));
      ::kill(a.proc.pid(), SIGTERM);
      CHECK(wait_until([&] { return run.done.load(); }, 5s));
      run.t.join();
      CHECK(run.error.empty());
      CHECK(run.result.exit_code == 128 + SIGTERM);
      CHECK(wait_until([&] { return !a.proc.running(); }, 5s));
      CHECK_FALSE(fs::exists(a.sock));
    }
    {
      LocalAgent a({"--lifetime", "1"});
      auto ch = a.connect();
      const int bg = ch->start_background(cmd({"sleep", "300"}));
      CHECK(wait_until([&] { return !a.proc.running(); }, 10s));
      CHECK(wait_until([&] { return !process_exists(bg); }, 5s));
      CHECK(a.log().find("lifetime ended") != std::string::npos);
      fs::remove("/tmp/.podwrangler/" + std::to_string(bg) + ".log");
    }
  }

  TEST_CASE("--lifetime counts running time: time spent stopped (a paused capsule) is not consumed") {
    LocalAgent a({"--lifetime", "2"});
    auto ch = a.connect();
    REQUIRE(ch->alive());
    // Frozen for longer than the whole lifetime, as the cgroup freezer does to a paused capsule.
    ::kill(a.proc.pid(), SIGSTOP);
    CHECK_FALSE(wait_until([&] { return !a.proc.running(); }, 2500ms));
    ::kill(a.proc.pid(), SIGCONT);
    // Had the frozen time counted, it would end at once; it still has most of its lifetime.
    CHECK_FALSE(wait_until([&] { return !a.proc.running(); }, 300ms));
    CHECK(ch->alive());
    CHECK(wait_until([&] { return !a.proc.running(); }, 5s));
    CHECK(a.log().find("lifetime ended") != std::string::npos);
  }

  TEST_CASE("an idle agent stays within 2 MiB of memory") {
    LocalAgent a;
    auto ch = a.connect();
    for (int i = 0; i < 20; ++i) CHECK(ch->exec(cmd({"true"})).exit_code == 0);
    CHECK(ch->alive());
    const long rss = status_kb(std::to_string(a.proc.pid()), "VmRSS");
    MESSAGE("idle agent VmRSS " << rss << " kB");
    CHECK(rss > 0);
    CHECK(rss <= 2048);
  }
}

// DockerExecChannel: the fallback ExecChannel, one Engine API call per operation.
#include <podwrangler/capsules/archive.hpp>
#include <podwrangler/capsules/docker_backend.hpp>

#include <podwrangler/base64.hpp>
#include <podwrangler/errors.hpp>
#include <podwrangler/url.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

namespace pw::capsules {

namespace {

using Clock = std::chrono::steady_clock;

// Runs argv after reporting the process id on stderr's first line. runc makes every exec
// the leader of its own session and process group, so `kill -KILL -<pid>` ends the
// command with everything it started.
constexpr const char* kPidWrapper = "echo $$ >&2; exec \"$@\"";
// Starts argv in the background with its output in /tmp/.podwrangler/<pid>.log and
// prints its pid (the inner shell's $$ is the command's pid once it has exec'd).
constexpr const char* kBackground =
    "mkdir -p /tmp/.podwrangler 2>/dev/null; "
    "sh -c 'exec \"$@\" >\"/tmp/.podwrangler/$$.log\" 2>&1 </dev/null' sh \"$@\" & echo $!";
// The pids among $@ that are alive (not zombies): "pid" lines.
constexpr const char* kAlive =
    "for p in \"$@\"; do s=; { read -r s < /proc/$p/stat; } 2>/dev/null || continue; "
    "s=${s##*) }; case $s in Z*|X*) ;; *) echo $p;; esac; done";
// kill: exit 3 when no such process is alive (a zombie is not).
constexpr const char* kKill =
    "s=; { read -r s < /proc/$1/stat; } 2>/dev/null || exit 3; case ${s##*) } in Z*|X*) exit 3;; esac; "
    "kill -\"$2\" \"$1\"";
// ls: exit 3 no such path, 4 not a directory; else "size:rawmode-hex:mtime:path" lines.
constexpr const char* kList =
    "[ -e \"$1\" ] || exit 3; [ -d \"$1\" ] || exit 4; "
    "find \"$1/\" -mindepth 1 -maxdepth \"$2\" -print0 | xargs -0 -r stat -c '%s:%f:%Y:%n'";
// mkdir: exit 3 parent missing, 5 exists (not a directory, or at all without parents).
constexpr const char* kMkdir =
    "p=$1; if [ \"$2\" = 1 ]; then [ -d \"$p\" ] && exit 0; [ -e \"$p\" ] && exit 5; mkdir -p -- \"$p\" || exit 1; "
    "else [ -e \"$p\" ] && exit 5; d=${p%/*}; [ -d \"${d:-/}\" ] || exit 3; mkdir -- \"$p\" || exit 1; fi";
// rm: exit 3 no such path, 6 a directory that is not empty (without recursive).
constexpr const char* kRemove =
    "p=$1; [ -e \"$p\" ] || [ -L \"$p\" ] || exit 3; "
    "if [ -d \"$p\" ] && [ ! -L \"$p\" ]; then "
    "if [ \"$2\" = 1 ]; then rm -rf -- \"$p\" || exit 1; else rmdir -- \"$p\" 2>/dev/null || exit 6; fi; "
    "else rm -f -- \"$p\" || exit 1; fi";

constexpr std::size_t kSpoolInMemory = 1 << 20;

// `/bin/sh -c script sh argv…` with the request's environment and directory.
EngineExecSpec script_spec(const char* script, const ExecRequest& req) {
  if (req.argv.empty() || req.argv[0].empty()) throw CapsuleValidationError("argv", "no command given");
  EngineExecSpec spec;
  spec.argv = {"/bin/sh", "-c", script, "sh"};
  spec.argv.insert(spec.argv.end(), req.argv.begin(), req.argv.end());
  spec.env = req.env;
  spec.cwd = req.cwd;
  return spec;
}

void check_path(const std::string& path) {
  if (path.empty() || path.front() != '/')
    throw CapsuleValidationError("path", "'" + path + "' is not an absolute path");
  if (path.find('\0') != std::string::npos) throw CapsuleValidationError("path", "the path contains a NUL byte");
}

std::string parent_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string trim_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The whole of a ByteSource, kept to be read again: in memory up to 1 MiB, then in an
// unlinked 0600 temporary file ($TMPDIR or /tmp).
class Spool final : public ByteSource {
 public:
  explicit Spool(ByteSource& src) {
    std::vector<char> buf(std::size_t{64} * 1024);
    while (std::size_t n = src.read(buf.data(), buf.size())) {
      size_ += n;
      if (fd_ < 0 && mem_.size() + n <= kSpoolInMemory) {
        mem_.append(buf.data(), n);
        continue;
      }
      if (fd_ < 0) {
        open_file();
        write_all(mem_.data(), mem_.size());
        std::string().swap(mem_);
      }
      write_all(buf.data(), n);
    }
  }
  ~Spool() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  std::uint64_t size() const { return size_; }
  void rewind() { pos_ = 0; }

  std::size_t read(char* buf, std::size_t n) override {
    std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, size_ - pos_));
    if (k == 0) return 0;
    if (fd_ < 0) {
      std::memcpy(buf, mem_.data() + pos_, k);
    } else {
      ssize_t got = ::pread(fd_, buf, k, static_cast<off_t>(pos_));
      while (got < 0 && errno == EINTR) got = ::pread(fd_, buf, k, static_cast<off_t>(pos_));
      if (got <= 0)
        throw CapsuleValidationError("upload", std::string("cannot read the spool file: ") + std::strerror(errno));
      k = static_cast<std::size_t>(got);
    }
    pos_ += k;
    return k;
  }

 private:
  void open_file() {
    const char* dir = std::getenv("TMPDIR");
    std::string d = dir && *dir ? dir : "/tmp";
    fd_ = ::open(d.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      std::string tmpl = d + "/pw-upload-" + std::string(6, 'X');  // mkostemp template
      fd_ = ::mkostemp(tmpl.data(), O_CLOEXEC);
      if (fd_ >= 0) ::unlink(tmpl.c_str());
    }
    if (fd_ < 0)
      throw CapsuleValidationError("upload", "cannot spool the upload in " + d + ": " + std::strerror(errno));
  }
  void write_all(const char* p, std::size_t n) {
    while (n > 0) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0)
        throw CapsuleValidationError("upload", std::string("cannot spool the upload: ") + std::strerror(errno));
      p += w;
      n -= static_cast<std::size_t>(w);
    }
  }

  std::string mem_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  std::uint64_t pos_ = 0;
};

// "2024-05-01T10:20:30.123456789Z" → seconds since the epoch (UTC); 0 when unreadable.
std::int64_t parse_rfc3339(const std::string& s) {
  std::tm tm{};
  int year = 0, mon = 0, day = 0, hh = 0, mm = 0, ss = 0;
  if (std::sscanf(s.c_str(), "%d-%d-%dT%d:%d:%d", &year, &mon, &day, &hh, &mm, &ss) != 6) return 0;
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hh;
  tm.tm_min = mm;
  tm.tm_sec = ss;
  std::int64_t t = timegm(&tm);
  // A zone offset ("+02:00") after the seconds and their fraction.
  auto zone = s.find_first_of("+-", 19);
  if (zone != std::string::npos && zone + 5 < s.size() + 1) {
    int oh = 0, om = 0;
    if (std::sscanf(s.c_str() + zone + 1, "%d:%d", &oh, &om) == 2)
      t -= std::int64_t{s[zone] == '+' ? 1 : -1} * (oh * 3600 + om * 60);
  }
  return t;
}

// Go's os.FileMode (the engine's path stat) → our type and permission bits.
void apply_go_mode(FileStat& st, std::uint64_t mode) {
  constexpr std::uint64_t kDir = 1ull << 31, kSymlink = 1ull << 27, kSetuid = 1ull << 23, kSetgid = 1ull << 22,
                          kSticky = 1ull << 20;
  constexpr std::uint64_t kType =
      kDir | kSymlink | (1ull << 26) | (1ull << 25) | (1ull << 24) | (1ull << 21) | (1ull << 19);
  st.type = (mode & kDir) ? "dir" : (mode & kSymlink) ? "symlink" : (mode & kType) ? "other" : "file";
  st.mode = static_cast<std::uint32_t>(mode & 0777);
  if (mode & kSetuid) st.mode |= 04000;
  if (mode & kSetgid) st.mode |= 02000;
  if (mode & kSticky) st.mode |= 01000;
}

std::string type_of_raw_mode(unsigned raw) {
  switch (raw & 0170000) {
    case 0100000: return "file";
    case 0040000: return "dir";
    case 0120000: return "symlink";
    default: return "other";
  }
}

// Appends to `to` at most up to `cap` bytes; true when some were dropped.
bool append_capped(std::string& to, std::string_view data, std::size_t cap) {
  if (to.size() >= cap) return !data.empty();
  std::size_t room = cap - to.size();
  to.append(data.substr(0, room));
  return data.size() > room;
}

}  // namespace

struct DockerExecChannel::Impl {
  std::shared_ptr<EngineClient> engine;
  std::string container;
  std::atomic<bool> closed{false};

  struct Running {
    std::vector<std::string> argv;
    Clock::time_point started;
    int pid = 0;
  };
  struct Background {
    std::vector<std::string> argv;
    Clock::time_point started;
  };
  std::mutex mu;
  std::map<std::uint64_t, Running> running;  // execs in flight, by call number
  std::uint64_t next_call = 0;
  std::map<int, Background> background;  // started here, maybe still alive
  int open_streams = 0;
  Clock::time_point last_activity = Clock::now();

  void check_open() const {
    if (closed) throw AgentError("the docker-exec channel of container " + container + " is closed");
  }
  void touch() {
    std::lock_guard lock(mu);
    last_activity = Clock::now();
  }

  // Counts a call as work in progress while it lasts.
  struct Busy {
    Impl& c;
    std::uint64_t call;
    Busy(Impl& impl, const std::vector<std::string>& argv) : c(impl) {
      std::lock_guard lock(c.mu);
      call = c.next_call++;
      c.running[call] = Running{argv, Clock::now(), 0};
      c.last_activity = Clock::now();
    }
    ~Busy() {
      std::lock_guard lock(c.mu);
      c.running.erase(call);
      c.last_activity = Clock::now();
    }
    void set_pid(int pid) {
      std::lock_guard lock(c.mu);
      c.running[call].pid = pid;
    }
  };
  struct Stream {
    Impl& c;
    explicit Stream(Impl& impl) : c(impl) {
      std::lock_guard lock(c.mu);
      ++c.open_streams;
      c.last_activity = Clock::now();
    }
    ~Stream() {
      std::lock_guard lock(c.mu);
      --c.open_streams;
      c.last_activity = Clock::now();
    }
  };

  // A helper command of ours (no pid report, no timeout): stdout, stderr, exit code.
  // `counted`: it is work done for the caller (mkdir, ls …); the checks behind activity()
  // are not, or the monitor asking would keep the capsule busy for ever.
  ExecResult run_plain(std::vector<std::string> argv, bool counted = true) {
    EngineExecSpec spec;
    spec.argv = std::move(argv);
    return run_plain(std::move(spec), counted);
  }
  ExecResult run_plain(EngineExecSpec spec, bool counted = true) {
    std::optional<Busy> busy;
    if (counted) busy.emplace(*this, spec.argv);
    auto t0 = Clock::now();
    auto exec = engine->exec_start(container, spec);
    ExecResult res;
    while (exec->next(res.stdout_data, res.stderr_data, Clock::time_point::max()) != EngineExec::Next::end) {
    }
    exec->close();
    res.exit_code = exit_code_of(exec->id());
    res.duration_s = seconds_since(t0);
    return res;
  }

  // The exit code once the engine has it (it is set before the streams close; a short
  // wait covers an engine that reports it late).
  int exit_code_of(const std::string& exec_id) {
    for (int i = 0; i < 50; ++i) {
      EngineExecState st = engine->exec_inspect(exec_id);
      if (!st.running) return st.exit_code;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return engine->exec_inspect(exec_id).exit_code;
  }

  std::vector<int> alive(const std::vector<int>& pids) {
    std::vector<std::string> argv{"/bin/sh", "-c", kAlive, "sh"};
    for (int p : pids) argv.push_back(std::to_string(p));
    ExecResult r = run_plain(std::move(argv), false);
    std::vector<int> out;
    std::size_t pos = 0;
    while (pos < r.stdout_data.size()) {
      std::size_t nl = r.stdout_data.find('\n', pos);
      if (nl == std::string::npos) nl = r.stdout_data.size();
      int v = std::atoi(r.stdout_data.substr(pos, nl - pos).c_str());
      if (v > 0) out.push_back(v);
      pos = nl + 1;
    }
    return out;
  }

  // The background processes started here that still run (the others are forgotten).
  std::map<int, Background> live_background() {
    std::vector<int> pids;
    {
      std::lock_guard lock(mu);
      for (const auto& [pid, b] : background) pids.push_back(pid);
    }
    if (pids.empty()) return {};
    std::vector<int> live = alive(pids);
    std::lock_guard lock(mu);
    for (int p : pids)
      if (std::find(live.begin(), live.end(), p) == live.end()) background.erase(p);
    return background;
  }

  EngineReply put_archive(const std::string& dir, ByteSource& tar) {
    return engine->upload("PUT",
                          "/v1.41/containers/" + percent_encode(container) + "/archive?path=" + percent_encode(dir) +
                              "&noOverwriteDirNonDir=true",
                          "application/x-tar", tar);
  }
};

DockerExecChannel::DockerExecChannel(std::shared_ptr<EngineClient> engine, std::string container_id)
    : impl_(std::make_unique<Impl>()) {
  impl_->engine = std::move(engine);
  impl_->container = std::move(container_id);
}

DockerExecChannel::~DockerExecChannel() = default;

ExecResult DockerExecChannel::exec(const ExecRequest& req, const ExecSink* sink) {
  auto& c = *impl_;
  c.check_open();
  EngineExecSpec spec = script_spec(kPidWrapper, req);
  if (req.timeout_s < 0) throw CapsuleValidationError("timeout", "must not be negative");
  Impl::Busy busy(c, req.argv);
  spec.attach_stdin = !req.stdin_data.empty();
  auto t0 = Clock::now();
  auto exec = c.engine->exec_start(c.container, spec);
  if (spec.attach_stdin) exec->send_stdin(req.stdin_data);

  ExecResult res;
  int pid = 0;
  bool pid_known = false;
  std::string pid_line;  // stderr's first line, until it is whole
  std::string held_out;  // stdout that came before the pid (sink: the started event goes first)
  auto deliver = [&](ExecEvent::Kind kind, std::string_view data) {
    if (data.empty()) return;
    if (sink && *sink) {
      ExecEvent ev;
      ev.kind = kind;
      ev.data = std::string(data);
      (*sink)(ev);
      return;
    }
    std::string& to = kind == ExecEvent::Kind::stdout_data ? res.stdout_data : res.stderr_data;
    if (append_capped(to, data, req.max_output_bytes)) res.truncated = true;
  };
  auto started = [&](int p) {
    pid_known = true;
    pid = p;
    busy.set_pid(p);
    if (sink && *sink) {
      ExecEvent ev;
      ev.kind = ExecEvent::Kind::started;
      ev.pid = p;
      (*sink)(ev);
    }
    deliver(ExecEvent::Kind::stdout_data, held_out);
    held_out.clear();
  };

  Clock::time_point deadline =
      req.timeout_s > 0 ? t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(req.timeout_s))
                        : Clock::time_point::max();
  bool timed_out = false;
  while (true) {
    std::string out, err;
    EngineExec::Next next = exec->next(out, err, deadline);
    if (!out.empty() || !err.empty()) c.touch();
    if (!pid_known && !err.empty()) {
      pid_line += err;
      err.clear();
      auto nl = pid_line.find('\n');
      int p = 0;
      auto [end, ec] = std::from_chars(pid_line.data(), pid_line.data() + std::min(nl, pid_line.size()), p);
      bool digits_so_far = ec == std::errc() || pid_line.empty();
      if (nl != std::string::npos && ec == std::errc() && end == pid_line.data() + nl && p > 0) {
        err = pid_line.substr(nl + 1);
        pid_line.clear();
        started(p);
      } else if (nl != std::string::npos || !digits_so_far || pid_line.size() > 32) {
        err = std::move(pid_line);  // not our line: the exec failed before the shell ran
        pid_line.clear();
        started(0);
      }
    }
    if (!pid_known) {
      held_out += out;
      if (held_out.size() > (1u << 20)) started(0);
    } else {
      deliver(ExecEvent::Kind::stdout_data, out);
    }
    deliver(ExecEvent::Kind::stderr_data, err);
    if (next == EngineExec::Next::end) break;
    if (next != EngineExec::Next::timeout) continue;
    if (timed_out) {  // killed, yet the streams stay open (a child kept them): give up on them
      exec->close();
      break;
    }
    timed_out = true;
    if (pid > 0) {
      try {
        ExecResult k = c.run_plain({"kill", "-KILL", "-" + std::to_string(pid)});
        if (k.exit_code != 0) c.run_plain({"kill", "-KILL", std::to_string(pid)});
      } catch (const CapsuleConflictError&) {
        // the capsule stopped meanwhile: the process is gone too
      }
    }
    deadline = Clock::now() + std::chrono::seconds(5);
  }
  if (!pid_known) {
    std::string rest = std::move(pid_line);
    started(0);
    deliver(ExecEvent::Kind::stderr_data, rest);
  }
  exec->close();
  res.exit_code = timed_out ? 137 : c.exit_code_of(exec->id());
  res.timed_out = timed_out;
  res.duration_s = seconds_since(t0);
  if (sink && *sink) {
    ExecEvent ev;
    ev.kind = ExecEvent::Kind::exit;
    ev.exit_code = res.exit_code;
    ev.duration_s = res.duration_s;
    ev.timed_out = res.timed_out;
    (*sink)(ev);
  }
  return res;
}

int DockerExecChannel::start_background(const ExecRequest& req) {
  auto& c = *impl_;
  c.check_open();
  ExecResult r = c.run_plain(script_spec(kBackground, req));
  int code = r.exit_code;
  const std::string& out = r.stdout_data;
  const std::string& err = r.stderr_data;
  int pid = std::atoi(out.c_str());
  if (code != 0 || pid <= 0)
    throw CapsuleValidationError("argv", "cannot start the command in the background (exit code " +
                                             std::to_string(code) + "): " + err.substr(0, 300));
  std::lock_guard lock(c.mu);
  c.background[pid] = Impl::Background{req.argv, Clock::now()};
  return pid;
}

std::vector<ProcessInfo> DockerExecChannel::processes() {
  auto& c = *impl_;
  c.check_open();
  std::map<int, Impl::Background> bg = c.live_background();
  std::vector<ProcessInfo> out;
  std::lock_guard lock(c.mu);
  out.reserve(bg.size() + c.running.size());
  for (const auto& [pid, b] : bg) out.push_back(ProcessInfo{pid, b.argv, seconds_since(b.started), true});
  for (const auto& [call, r] : c.running)
    if (r.pid > 0) out.push_back(ProcessInfo{r.pid, r.argv, seconds_since(r.started), false});
  return out;
}

void DockerExecChannel::kill(int pid, int signal) {
  auto& c = *impl_;
  c.check_open();
  if (pid <= 1) throw CapsuleValidationError("pid", "must be a process id above 1");
  if (signal < 0 || signal > 64)
    throw CapsuleValidationError("signal", std::to_string(signal) + " is not a signal number");
  ExecResult r = c.run_plain({"/bin/sh", "-c", kKill, "sh", std::to_string(pid), std::to_string(signal)});
  if (r.exit_code == 3) throw CapsuleNotFoundError(std::to_string(pid), "process");
  if (r.exit_code != 0)
    throw CapsuleValidationError("signal", "cannot send " + std::to_string(signal) + " to " + std::to_string(pid) +
                                               ": " + r.stderr_data.substr(0, 300));
}

void DockerExecChannel::upload(const std::string& path, ByteSource& src, std::uint32_t mode) {
  auto& c = *impl_;
  c.check_open();
  check_path(path);
  std::string clean = trim_slashes(path);
  if (clean == "/") throw CapsuleValidationError("path", "'/' is a directory");
  Impl::Stream stream(c);
  Spool spool(src);
  std::string dir = parent_of(clean), name = clean.substr(clean.find_last_of('/') + 1);
  if (spool.size() > kSpoolInMemory) {
    // A large body is not sent to learn that the directory is missing: asked first.
    EngineReply head = c.engine->call(
        "HEAD", "/v1.41/containers/" + percent_encode(c.container) + "/archive?path=" + percent_encode(dir));
    if (head.status == 404) mkdir(dir, true);
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    spool.rewind();
    auto tar = single_file_tar(name, spool.size(), mode, spool);
    EngineReply r = c.put_archive(dir, *tar);
    if (r.ok()) return;
    bool no_container = r.status == 404 && r.message().find("No such container") != std::string::npos;
    if (no_container) throw CapsuleNotFoundError(c.container, "container");
    if (r.status == 404 && attempt == 0) {
      mkdir(dir, true);  // the parent directory is missing: made, then once more
      continue;
    }
    if (r.status == 400) throw CapsuleValidationError("path", "cannot write '" + path + "': " + r.message());
    if (r.status == 403) throw CapsuleValidationError("path", "'" + dir + "' is read-only: " + r.message());
    throw_engine_error(r, "upload " + path, path, "file");
  }
}

void DockerExecChannel::download(const std::string& path, ByteSink& sink) {
  auto& c = *impl_;
  c.check_open();
  check_path(path);
  Impl::Stream stream(c);
  std::string current = trim_slashes(path);
  for (int hop = 0; hop < 8; ++hop) {
    auto body = c.engine->open(
        "GET", "/v1.41/containers/" + percent_encode(c.container) + "/archive?path=" + percent_encode(current));
    const EngineReply& r = body->reply();
    if (r.status == 404) {
      if (r.message().find("No such container") != std::string::npos)
        throw CapsuleNotFoundError(c.container, "container");
      throw CapsuleNotFoundError(path, "file");
    }
    if (!r.ok()) throw_engine_error(r, "download " + path, path, "file");
    struct Counting final : ByteSink {
      ByteSink& to;
      Impl& c;
      Counting(ByteSink& s, Impl& impl) : to(s), c(impl) {}
      void write(std::string_view bytes) override {
        c.touch();
        to.write(bytes);
      }
    } counting(sink, c);
    FileStat st = copy_first_file(*body, counting);
    if (st.type == "file") return;
    if (st.type == "dir")
      throw CapsuleValidationError("path", "'" + path + "' is a directory (download a directory as a tar archive)");
    if (st.type != "symlink" || st.link_target.empty())
      throw CapsuleValidationError("path", "'" + path + "' is not a regular file");
    current = st.link_target.front() == '/' ? st.link_target : parent_of(current) + "/" + st.link_target;
  }
  throw CapsuleValidationError("path", "'" + path + "': too many levels of symbolic links");
}

FileStat DockerExecChannel::stat(const std::string& path) {
  auto& c = *impl_;
  c.check_open();
  check_path(path);
  std::string clean = trim_slashes(path);
  EngineReply r = c.engine->call(
      "HEAD", "/v1.41/containers/" + percent_encode(c.container) + "/archive?path=" + percent_encode(clean));
  if (r.status == 404) {
    // HEAD answers carry no message: a missing container is told apart by inspecting it.
    EngineReply ctr = c.engine->call("GET", "/v1.41/containers/" + percent_encode(c.container) + "/json");
    if (ctr.status == 404) throw CapsuleNotFoundError(c.container, "container");
    throw CapsuleNotFoundError(path, "file");
  }
  if (!r.ok()) throw_engine_error(r, "stat " + path, path, "file");
  auto it = r.headers.find("x-docker-container-path-stat");
  if (it == r.headers.end())
    throw EngineUnavailableError("the Docker engine at " + c.engine->describe() + " sent no path stat for " + path);
  auto j = nlohmann::json::parse(pw::base64_decode(it->second).value_or(""), nullptr, false);
  if (!j.is_object())
    throw EngineUnavailableError("the Docker engine at " + c.engine->describe() + " sent an unreadable path stat");
  FileStat st;
  st.path = clean;
  st.name = j.value("name", std::string());
  st.size = j.value("size", std::uint64_t{0});
  apply_go_mode(st, j.value("mode", std::uint64_t{0}));
  st.mtime_s = parse_rfc3339(j.value("mtime", std::string()));
  st.link_target = j.value("linkTarget", std::string());
  return st;
}

std::vector<FileStat> DockerExecChannel::list(const std::string& path, int depth) {
  auto& c = *impl_;
  c.check_open();
  check_path(path);
  if (depth < 1 || depth > 64) throw CapsuleValidationError("depth", "must be 1-64");
  std::string clean = trim_slashes(path);
  ExecResult r = c.run_plain({"/bin/sh", "-c", kList, "sh", clean == "/" ? "" : clean, std::to_string(depth)});
  if (r.exit_code == 3) throw CapsuleNotFoundError(path, "file");
  if (r.exit_code == 4) throw CapsuleValidationError("path", "'" + path + "' is not a directory");
  if (r.exit_code != 0)
    throw CapsuleValidationError("path", "cannot list '" + path + "': " + r.stderr_data.substr(0, 300));
  std::string prefix = clean == "/" ? "/" : clean + "/";
  std::vector<FileStat> out;
  std::size_t pos = 0;
  const std::string& s = r.stdout_data;
  while (pos < s.size()) {
    std::size_t nl = s.find('\n', pos);
    if (nl == std::string::npos) nl = s.size();
    std::string line = s.substr(pos, nl - pos);
    pos = nl + 1;
    // size:rawmode:mtime:path; a line that is not one continues the previous name (a
    // newline inside a file name).
    unsigned long long size = 0;
    unsigned raw = 0;
    long long mtime = 0;
    int consumed = 0;
    bool entry = std::sscanf(line.c_str(), "%llu:%x:%lld:%n", &size, &raw, &mtime, &consumed) == 3 &&
                 line.compare(static_cast<std::size_t>(consumed), prefix.size(), prefix) == 0;
    if (!entry) {
      if (!out.empty()) {
        out.back().path += "\n" + line;
        out.back().name = out.back().path.substr(out.back().path.find_last_of('/') + 1);
      }
      continue;
    }
    FileStat st;
    st.path = line.substr(static_cast<std::size_t>(consumed));
    while (st.path.starts_with("//")) st.path.erase(0, 1);
    st.name = st.path.substr(st.path.find_last_of('/') + 1);
    st.size = size;
    st.type = type_of_raw_mode(raw);
    st.mode = raw & 07777;
    st.mtime_s = mtime;
    out.push_back(std::move(st));
  }
  std::sort(out.begin(), out.end(), [](const FileStat& a, const FileStat& b) { return a.path < b.path; });
  return out;
}

void DockerExecChannel::mkdir(const std::string& path, bool parents) {
  auto& c = *impl_;
  c.check_open();
  check_path(path);
  std::string clean = trim_slashes(path);
  ExecResult r = c.run_plain({"/bin/sh", "-c", kMkdir, "sh", clean, parents ? "1" : "0"});
  if (r.exit_code == 0) return;
  if (r.exit_code == 3) throw CapsuleNotFoundError(parent_of(clean), "directory");
  if (r.exit_code == 5) throw CapsuleConflictError("cannot make directory " + path + ": it exists already");
  throw CapsuleValidationError("path", "cannot make directory '" + path + "': " + r.stderr_data.substr(0, 300));
}

void DockerExecChannel::remove(const std::string& path, bool recursive) {
  auto& c = *impl_;
  c.check_open();
  check_path(path);
  std::string clean = trim_slashes(path);
  if (clean == "/") throw CapsuleValidationError("path", "'/' cannot be removed");
  ExecResult r = c.run_plain({"/bin/sh", "-c", kRemove, "sh", clean, recursive ? "1" : "0"});
  if (r.exit_code == 0) return;
  if (r.exit_code == 3) throw CapsuleNotFoundError(path, "file");
  if (r.exit_code == 6) throw CapsuleConflictError("cannot remove " + path + ": the directory is not empty");
  throw CapsuleValidationError("path", "cannot remove '" + path + "': " + r.stderr_data.substr(0, 300));
}

AgentActivity DockerExecChannel::activity() {
  auto& c = *impl_;
  c.check_open();
  std::size_t bg = 0;
  {
    std::lock_guard lock(c.mu);
    bg = c.background.size();
  }
  if (bg > 0) bg = c.live_background().size();
  AgentActivity a;
  std::lock_guard lock(c.mu);
  a.running_processes = static_cast<int>(c.running.size() + bg);
  a.open_streams = c.open_streams;
  a.idle_ms = a.running_processes + a.open_streams > 0
                  ? 0
                  : std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - c.last_activity).count();
  return a;
}

bool DockerExecChannel::alive() {
  auto& c = *impl_;
  if (c.closed) return false;
  try {
    EngineReply r = c.engine->call("GET", "/v1.41/containers/" + percent_encode(c.container) + "/json", "",
                                   std::chrono::seconds(5));
    if (r.status != 200) return false;
    auto j = r.json();
    return j.contains("State") && j["State"].value("Running", false) && !j["State"].value("Paused", false);
  } catch (const PodClientError&) {
    return false;
  }
}

void DockerExecChannel::close() { impl_->closed = true; }

}  // namespace pw::capsules

#include "agent.hpp"

#include "files.hpp"

#include <podwrangler/capsules/agent_protocol.hpp>

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <utility>
#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX declares it nowhere

namespace pwagent {
namespace {

namespace proto = pw::capsules::agent;
using proto::MsgType;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Flow control: above kHighWater bytes waiting for a connection's socket, its pipes and
// files are not read; reading resumes below kLowWater.
constexpr std::uint32_t kIn = EPOLLIN;
constexpr std::size_t kHighWater = std::size_t{1024} * 1024;
constexpr std::size_t kLowWater = std::size_t{256} * 1024;
constexpr std::size_t kPipeRead = std::size_t{64} * 1024;
constexpr std::size_t kSocketRead = std::size_t{64} * 1024;
constexpr std::size_t kMaxListEntries = 100000;
constexpr std::size_t kListFrameBytes = std::size_t{256} * 1024;
// After an exec's process has exited, how long its pipes may stay open (a daemonised
// grandchild holding them) before the exit is reported anyway.
constexpr milliseconds kPipeGrace{200};
// SIGTERM to the children at shutdown, then SIGKILL after this.
constexpr milliseconds kTermGrace{1000};
// The lifetime counts running time: a gap between two loop turns longer than this (the
// capsule was paused, its processes frozen) counts as this much.
constexpr milliseconds kMaxTick{1500};
constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr const char* kLogDir = "/tmp/.podwrangler";

__attribute__((format(printf, 1, 2))) void log_line(const char* fmt, ...) {
  std::array<char, 1024> buf{};
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(buf.data(), buf.size(), fmt, ap);
  va_end(ap);
  if (n <= 0) return;
  std::string line = "pw-agent: ";
  line.append(buf.data(), std::min<std::size_t>(static_cast<std::size_t>(n), buf.size() - 1));
  line.push_back('\n');
  [[maybe_unused]] const ssize_t w = ::write(2, line.data(), line.size());
}

std::uint64_t micros_since(Clock::time_point t) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t).count());
}

void write_header(char* p, MsgType type, std::uint32_t channel, std::size_t len) {
  const auto l = static_cast<std::uint32_t>(len);
  p[0] = static_cast<char>(l >> 24);
  p[1] = static_cast<char>((l >> 16) & 0xff);
  p[2] = static_cast<char>((l >> 8) & 0xff);
  p[3] = static_cast<char>(l & 0xff);
  p[4] = static_cast<char>(type);
  p[5] = static_cast<char>(channel >> 24);
  p[6] = static_cast<char>((channel >> 16) & 0xff);
  p[7] = static_cast<char>((channel >> 8) & 0xff);
  p[8] = static_cast<char>(channel & 0xff);
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

struct Conn;

struct ExecOp {
  Conn* conn = nullptr;
  std::uint32_t channel = 0;
  pid_t pid = -1;
  std::vector<std::string> argv;
  int out_fd = -1;
  int err_fd = -1;
  int in_fd = -1;
  std::string in_buf;
  std::size_t in_off = 0;
  bool in_eof = false;  // the client sent stdin_eof (or there is no stdin)
  bool exited = false;
  int status = 0;
  bool cancelled = false;  // the client abandoned it: output dropped
  bool timed_out = false;
  bool truncated = false;
  std::uint64_t max_output = 0;
  std::array<std::uint64_t, 2> sent{0, 0};
  Clock::time_point start;
  Clock::time_point deadline = Clock::time_point::max();
  Clock::time_point grace = Clock::time_point::max();
};

struct ReadOp {
  int fd = -1;
};

struct WriteOp {
  int fd = -1;
  std::string tmp;
  std::string path;
  std::uint32_t mode = 0644;
};

struct Conn {
  std::uint64_t id = 0;
  int fd = -1;
  proto::FrameDecoder in;
  std::string out;
  std::size_t out_off = 0;
  bool paused = false;
  bool closed = false;
  std::map<std::uint32_t, std::unique_ptr<ExecOp>> execs;
  std::map<std::uint32_t, ReadOp> reads;
  std::map<std::uint32_t, WriteOp> writes;
  std::size_t pending() const { return out.size() - out_off; }
  bool busy(std::uint32_t ch) const { return execs.count(ch) + reads.count(ch) + writes.count(ch) > 0; }
};

struct Background {
  std::vector<std::string> argv;
  Clock::time_point start;
  Clock::time_point deadline = Clock::time_point::max();
};

enum class Kind : std::uint8_t { listener, signals, conn, exec_out, exec_err, exec_in };

struct Watch {
  Kind kind = Kind::listener;
  Conn* conn = nullptr;
  ExecOp* exec = nullptr;
  std::uint32_t events = 0;  // what epoll watches (0: not registered)
};

// The file actions and attributes of a child: its own session (so a timeout or a kill
// reaches its whole process group), an empty signal mask and default dispositions, fds
// 0/1/2 from the agent and nothing above 2.
pid_t spawn_child(const std::string& program, const std::vector<std::string>& argv, const std::vector<std::string>& env,
                  const std::string& cwd, int fd0, int fd1, int fd2, int& err) {
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  envp.reserve(env.size() + 1);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fd0, 0);
  posix_spawn_file_actions_adddup2(&fa, fd1, 1);
  posix_spawn_file_actions_adddup2(&fa, fd2, 2);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, cwd.c_str());
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&at, &none);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigdefault(&at, &all);
  pid_t pid = -1;
  err = ::posix_spawn(&pid, program.c_str(), &fa, &at, args.data(), envp.data());
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  return err == 0 ? pid : -1;
}

class Agent {
 public:
  explicit Agent(Options o) : opt_(std::move(o)) {}
  int run();

 private:
  void setup();
  void bind_socket();

  // epoll bookkeeping: every fd we poll has a Watch; events 0 = known but not polled.
  void watch(int fd, Kind kind, Conn* c, ExecOp* e, std::uint32_t events);
  void set_events(int fd, std::uint32_t events);
  void unwatch(int fd);

  void on_accept();
  void on_signals();
  void on_conn(Conn& c, std::uint32_t ev);
  // Reads what one pipe has; at its end, reports the exit if that was all (unless !may_finish).
  void on_exec_output(ExecOp& e, bool is_err, bool may_finish = true);
  void on_exec_input(ExecOp& e);
  void reap();
  Clock::time_point check_deadlines(Clock::time_point now);
  void pump_reads();
  void flush(Conn& c);
  void update_pause(Conn& c);
  void close_conn(Conn& c);
  void begin_terminate(const char* why);
  void signal_children(int sig);

  void send(Conn& c, MsgType t, std::uint32_t ch, std::string_view payload);
  void send_error(Conn& c, std::uint32_t ch, int err, const std::string& path, const std::string& message);
  void handle(Conn& c, const proto::Frame& f);
  void dispatch(Conn& c, const proto::Frame& f);
  void start_exec(Conn& c, std::uint32_t ch, const proto::ExecMsg& m);
  void start_background(Conn& c, std::uint32_t ch, const proto::ExecMsg& m);
  void finish_exec_if_done(ExecOp& e);
  void drop_exec_pipe(ExecOp& e, bool is_err);
  void start_read(Conn& c, std::uint32_t ch, const proto::Args& a);
  void start_write(Conn& c, std::uint32_t ch, const proto::Args& a);
  void write_data(Conn& c, std::uint32_t ch, std::string_view data);
  void end_write(Conn& c, std::uint32_t ch);
  void abort_write(Conn& c, std::uint32_t ch);
  void send_list(Conn& c, std::uint32_t ch, const proto::Args& a);
  void do_kill(const proto::Args& a);
  void cancel(Conn& c, std::uint32_t ch);

  void validate_exec(const proto::ExecMsg& m) const;
  std::vector<std::string> build_env(const proto::ExecMsg& m) const;
  int resolve_program(const proto::ExecMsg& m, const std::vector<std::string>& env, std::string& program) const;
  bool is_own_child(pid_t pid) const;

  Options opt_;
  int ep_ = -1;
  int listen_fd_ = -1;
  int sig_fd_ = -1;
  int devnull_ = -1;
  ino_t socket_ino_ = 0;
  std::string protect_;  // the real path of the socket's directory
  std::vector<std::string> base_env_;
  std::unordered_map<int, Watch> watches_;
  std::map<std::uint64_t, std::unique_ptr<Conn>> conns_;
  std::uint64_t next_conn_ = 1;
  std::unordered_map<pid_t, ExecOp*> exec_by_pid_;
  std::map<pid_t, Background> background_;
  Clock::time_point last_activity_ = Clock::now();
  bool terminating_ = false;
  Clock::time_point term_deadline_ = Clock::time_point::max();
  Clock::duration running_{};  // lifetime consumed
  Clock::time_point last_tick_ = Clock::now();
};

// ---- setup ------------------------------------------------------------------------------

void Agent::setup() {
  // Nothing inherited survives (whatever the engine or a test harness left open).
  ::close_range(3, ~0U, 0);
  // Processes inside the capsule must not reach our descriptors (/proc/1/fd) or ptrace us.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  // Outside a container (tests) orphans of our children come back to us to be reaped.
  if (::getpid() != 1) ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  // Big buffers (file transfers) come from mmap and go back to the system when freed: an
  // idle agent stays small after a 1 GiB download.
  ::mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  ::mallopt(M_TRIM_THRESHOLD, 256 * 1024);
  // fds 0/1/2 exist, so no pipe or socket of ours ever lands there.
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
      const int n = ::open("/dev/null", O_RDWR);
      if (n >= 0 && n != fd) {
        ::dup2(n, fd);
        ::close(n);
      }
    }
  }
  devnull_ = ::open("/dev/null", O_RDWR | O_CLOEXEC);

  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view kv(*e);
    if (kv.rfind("PODWRANGLER_", 0) == 0) continue;  // never handed to a child
    base_env_.emplace_back(kv);
  }

  ::signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  sig_fd_ = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sig_fd_ < 0) throw SysError(errno, "", std::string("signalfd: ") + std::strerror(errno));

  ep_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep_ < 0) throw SysError(errno, "", std::string("epoll: ") + std::strerror(errno));
  bind_socket();
  watch(sig_fd_, Kind::signals, nullptr, nullptr, EPOLLIN);
  watch(listen_fd_, Kind::listener, nullptr, nullptr, EPOLLIN);
  if (char* r = ::realpath(dir_name(opt_.socket_path).c_str(), nullptr)) {
    protect_ = r;
    std::free(r);  // NOLINT(cppcoreguidelines-no-malloc): realpath's buffer
  }
}

void Agent::bind_socket() {
  const std::string& path = opt_.socket_path;
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());  // a previous run's
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0) throw SysError(errno, path, std::string("socket: ") + std::strerror(errno));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // A path too long for sun_path is reached through an O_PATH descriptor of its directory.
  std::string target = path;
  int dirfd = -1;
  if (path.size() >= sizeof(addr.sun_path)) {
    dirfd = ::open(dir_name(path).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) throw_errno(errno, dir_name(path), "cannot open");
    target = "/proc/self/fd/" + std::to_string(dirfd) + "/" + base_name(path);
    if (target.size() >= sizeof(addr.sun_path)) throw SysError(ENAMETOOLONG, path, "socket name too long: " + path);
  }
  std::memcpy(addr.sun_path, target.c_str(), target.size() + 1);
  const mode_t old = ::umask(077);  // 0600 from its first instant
  const int rc = ::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  const int err = errno;
  ::umask(old);
  if (rc != 0) {
    if (dirfd >= 0) ::close(dirfd);
    throw_errno(err, path, "cannot bind");
  }
  ::chmod(target.c_str(), 0600);
  if (::stat(target.c_str(), &st) == 0) socket_ino_ = st.st_ino;
  if (dirfd >= 0) ::close(dirfd);
  if (::listen(listen_fd_, 128) != 0) throw_errno(errno, path, "cannot listen on");
}

// ---- epoll ---------------------------------------------------------------------------------

void Agent::watch(int fd, Kind kind, Conn* c, ExecOp* e, std::uint32_t events) {
  Watch w;
  w.kind = kind;
  w.conn = c;
  w.exec = e;
  watches_[fd] = w;
  set_events(fd, events);
}

void Agent::set_events(int fd, std::uint32_t events) {
  if (fd < 0) return;
  auto it = watches_.find(fd);
  if (it == watches_.end() || it->second.events == events) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (events == 0) {
    ::epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);
  } else if (it->second.events == 0) {
    ::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
  } else {
    ::epoll_ctl(ep_, EPOLL_CTL_MOD, fd, &ev);
  }
  it->second.events = events;
}

void Agent::unwatch(int fd) {
  auto it = watches_.find(fd);
  if (it == watches_.end()) return;
  if (it->second.events != 0) ::epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);
  watches_.erase(it);
}

// ---- the loop ----------------------------------------------------------------------------

int Agent::run() {
  setup();
  log_line("listening on %s (pid %d)", opt_.socket_path.c_str(), static_cast<int>(::getpid()));
  std::array<epoll_event, 64> evs{};
  while (true) {
    const auto now = Clock::now();
    running_ += std::min<Clock::duration>(now - last_tick_, kMaxTick);
    last_tick_ = now;
    if (opt_.lifetime_s > 0 && running_ >= std::chrono::seconds(opt_.lifetime_s)) begin_terminate("lifetime ended");
    if (terminating_) {
      bool work = !background_.empty();
      for (const auto& [id, c] : conns_) work = work || !c->execs.empty();
      if (!work || now >= term_deadline_) {
        if (work) signal_children(SIGKILL);
        for (auto& [id, c] : conns_) flush(*c);
        return 0;
      }
    }
    auto wake = check_deadlines(now);
    if (opt_.lifetime_s > 0) wake = std::min(wake, now + milliseconds(1000));
    if (terminating_) wake = std::min(wake, term_deadline_);
    pump_reads();
    for (auto& [id, c] : conns_)
      if (c->pending() > 0) flush(*c);
    // Decided after the flush: a file read can go on at once only where the socket took
    // the bytes; elsewhere EPOLLOUT wakes us when it drains.
    bool more = false;
    for (const auto& [id, c] : conns_) more = more || (!c->reads.empty() && !c->closed && c->pending() < kHighWater);
    int timeout = -1;
    if (more) {
      timeout = 0;
    } else if (wake != Clock::time_point::max()) {
      const auto ms = std::chrono::duration_cast<milliseconds>(wake - Clock::now()).count() + 1;
      timeout = static_cast<int>(std::clamp<long long>(ms, 0, INT_MAX));
    }
    const int n = ::epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()), timeout);
    if (n < 0 && errno != EINTR) throw SysError(errno, "", std::string("epoll_wait: ") + std::strerror(errno));
    for (int i = 0; i < n; ++i) {
      const int fd = evs[static_cast<std::size_t>(i)].data.fd;
      const std::uint32_t ev = evs[static_cast<std::size_t>(i)].events;
      auto it = watches_.find(fd);
      if (it == watches_.end()) continue;  // closed by an earlier event of this batch
      const Watch w = it->second;
      switch (w.kind) {
        case Kind::listener: on_accept(); break;
        case Kind::signals: on_signals(); break;
        case Kind::conn: on_conn(*w.conn, ev); break;
        case Kind::exec_out: on_exec_output(*w.exec, false); break;
        case Kind::exec_err: on_exec_output(*w.exec, true); break;
        case Kind::exec_in: on_exec_input(*w.exec); break;
      }
    }
    for (auto& [id, c] : conns_)
      if (c->pending() > 0) flush(*c);
    for (auto it = conns_.begin(); it != conns_.end();) {
      if (it->second->closed) {
        it = conns_.erase(it);
        if (conns_.empty()) ::malloc_trim(0);
      } else {
        ++it;
      }
    }
  }
}

void Agent::on_accept() {
  while (true) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;  // EAGAIN, or a connection that went away
    auto c = std::make_unique<Conn>();
    c->id = next_conn_++;
    c->fd = fd;
    watch(fd, Kind::conn, c.get(), nullptr, EPOLLIN);
    conns_[c->id] = std::move(c);
  }
}

void Agent::on_signals() {
  signalfd_siginfo si{};
  bool child = false;
  while (::read(sig_fd_, &si, sizeof(si)) == static_cast<ssize_t>(sizeof(si))) {
    if (si.ssi_signo == SIGCHLD) child = true;
    if (si.ssi_signo == SIGTERM) begin_terminate("SIGTERM");
    if (si.ssi_signo == SIGINT) begin_terminate("SIGINT");
  }
  if (child) reap();
}

void Agent::reap() {
  int status = 0;
  pid_t pid = 0;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    if (auto it = exec_by_pid_.find(pid); it != exec_by_pid_.end()) {
      ExecOp& e = *it->second;
      exec_by_pid_.erase(it);
      e.exited = true;
      e.status = status;
      last_activity_ = Clock::now();
      if (e.out_fd >= 0 || e.err_fd >= 0) e.grace = Clock::now() + kPipeGrace;
      finish_exec_if_done(e);
    } else if (background_.erase(pid) > 0) {
      last_activity_ = Clock::now();
    }
    // anything else: an orphan that was re-parented to us (we are init)
  }
}

Clock::time_point Agent::check_deadlines(Clock::time_point now) {
  auto wake = Clock::time_point::max();
  std::vector<ExecOp*> expired;
  for (auto& [id, c] : conns_) {
    for (auto& [ch, e] : c->execs) {
      if (e->deadline <= now) {
        ::kill(-e->pid, SIGKILL);
        e->timed_out = true;
        e->deadline = Clock::time_point::max();
      }
      wake = std::min(wake, e->deadline);
      if (e->grace <= now && !c->paused) {
        expired.push_back(e.get());
      } else if (!c->paused) {
        wake = std::min(wake, e->grace);
      }
    }
  }
  for (ExecOp* e : expired) {
    // What is already in the pipes is still delivered, then the exit is.
    on_exec_output(*e, false, false);
    on_exec_output(*e, true, false);
    if (e->out_fd >= 0) drop_exec_pipe(*e, false);
    if (e->err_fd >= 0) drop_exec_pipe(*e, true);
    finish_exec_if_done(*e);
  }
  for (auto& [pid, b] : background_) {
    if (b.deadline <= now) {
      ::kill(-pid, SIGKILL);
      b.deadline = Clock::time_point::max();
    }
    wake = std::min(wake, b.deadline);
  }
  return wake;
}

void Agent::pump_reads() {
  for (auto& [id, cp] : conns_) {
    Conn& c = *cp;
    for (auto it = c.reads.begin(); it != c.reads.end();) {
      if (c.pending() >= kHighWater) break;
      const std::uint32_t ch = it->first;
      const std::size_t old = c.out.size();
      c.out.resize(old + proto::kHeaderSize + proto::kDataChunk);
      const ssize_t n = ::read(it->second.fd, c.out.data() + old + proto::kHeaderSize, proto::kDataChunk);
      if (n > 0) {
        write_header(c.out.data() + old, MsgType::data, ch, static_cast<std::size_t>(n));
        c.out.resize(old + proto::kHeaderSize + static_cast<std::size_t>(n));
        last_activity_ = Clock::now();
        ++it;
        continue;
      }
      c.out.resize(old);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        ++it;
        continue;
      }
      if (n == 0) {
        send(c, MsgType::end, ch, {});
      } else {
        send_error(c, ch, errno, "", std::string("read failed: ") + std::strerror(errno));
      }
      ::close(it->second.fd);
      it = c.reads.erase(it);
    }
  }
}

void Agent::on_conn(Conn& c, std::uint32_t ev) {
  if ((ev & EPOLLOUT) != 0) flush(c);
  if (c.closed) return;
  if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) == 0) return;
  static std::array<char, kSocketRead> buf{};
  for (int round = 0; round < 16 && !c.closed; ++round) {
    const ssize_t n = ::read(c.fd, buf.data(), buf.size());
    if (n == 0) {
      close_conn(c);
      return;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      close_conn(c);
      return;
    }
    c.in.feed(buf.data(), static_cast<std::size_t>(n));
    try {
      proto::Frame f;
      while (!c.closed && c.in.next(f)) handle(c, f);
    } catch (const proto::ProtocolError& e) {
      log_line("connection %llu: %s", static_cast<unsigned long long>(c.id), e.what());
      close_conn(c);
      return;
    }
    c.in.shrink();
    if (static_cast<std::size_t>(n) < buf.size()) return;
  }
}

void Agent::flush(Conn& c) {
  if (c.closed) return;
  while (c.pending() > 0) {
    const ssize_t n = ::send(c.fd, c.out.data() + c.out_off, c.pending(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c.out_off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    close_conn(c);
    return;
  }
  if (c.pending() == 0) {
    c.out.clear();
    c.out_off = 0;
    if (c.out.capacity() > kLowWater) std::string().swap(c.out);
    set_events(c.fd, EPOLLIN);
  } else {
    if (c.out_off > c.pending()) {  // more sent than left: move the rest to the front
      c.out.erase(0, c.out_off);
      c.out_off = 0;
    }
    set_events(c.fd, EPOLLIN | EPOLLOUT);
  }
  update_pause(c);
}

void Agent::update_pause(Conn& c) {
  const bool pause = c.paused ? c.pending() >= kLowWater : c.pending() > kHighWater;
  if (pause == c.paused) return;
  c.paused = pause;
  for (auto& [ch, e] : c.execs) {
    set_events(e->out_fd, pause ? 0 : kIn);
    set_events(e->err_fd, pause ? 0 : kIn);
  }
}

void Agent::close_conn(Conn& c) {
  if (c.closed) return;
  c.closed = true;
  // Its execs have nowhere to report to: killed (their processes are reaped as orphans).
  for (auto& [ch, e] : c.execs) {
    if (!e->exited) {
      ::kill(-e->pid, SIGKILL);
      exec_by_pid_.erase(e->pid);
    }
    for (int* fd : {&e->out_fd, &e->err_fd, &e->in_fd}) {
      unwatch(*fd);
      close_fd(*fd);
    }
  }
  c.execs.clear();
  for (auto& [ch, r] : c.reads) ::close(r.fd);
  c.reads.clear();
  for (auto& [ch, w] : c.writes) {
    ::close(w.fd);
    ::unlink(w.tmp.c_str());
  }
  c.writes.clear();
  unwatch(c.fd);
  close_fd(c.fd);
  c.out.clear();
  c.out_off = 0;
}

void Agent::signal_children(int sig) {
  if (::getpid() == 1) {
    ::kill(-1, sig);  // as the namespace's init: every process of the capsule
    return;
  }
  for (const auto& [pid, e] : exec_by_pid_) ::kill(-pid, sig);
  for (const auto& [pid, b] : background_) ::kill(-pid, sig);
}

void Agent::begin_terminate(const char* why) {
  if (terminating_) return;
  terminating_ = true;
  log_line("%s: terminating", why);
  unwatch(listen_fd_);
  close_fd(listen_fd_);
  struct stat st {};
  if (::stat(opt_.socket_path.c_str(), &st) == 0 && st.st_ino == socket_ino_) ::unlink(opt_.socket_path.c_str());
  signal_children(SIGTERM);
  term_deadline_ = Clock::now() + kTermGrace;
}

// ---- frames -------------------------------------------------------------------------------

void Agent::send(Conn& c, MsgType t, std::uint32_t ch, std::string_view payload) {
  if (c.closed) return;
  proto::append_frame(c.out, t, ch, payload);
}

void Agent::send_error(Conn& c, std::uint32_t ch, int err, const std::string& path, const std::string& message) {
  proto::ErrorMsg m;
  m.err_no = err;
  m.path = path;
  m.message = message;
  send(c, MsgType::error, ch, m.encode());
}

void Agent::handle(Conn& c, const proto::Frame& f) {
  try {
    dispatch(c, f);
  } catch (const SysError& e) {
    send_error(c, f.channel, e.err(), e.path(), e.message());
  } catch (const proto::ProtocolError& e) {
    send_error(c, f.channel, EPROTO, "", std::string("malformed ") + proto::type_name(f.type) + ": " + e.what());
  } catch (const std::bad_alloc&) {
    send_error(c, f.channel, ENOMEM, "", "out of memory");
  }
}

void Agent::dispatch(Conn& c, const proto::Frame& f) {
  const std::uint32_t ch = f.channel;
  switch (f.type) {
    case MsgType::hello: {
      proto::Hello h;
      h.pid = ::getpid();
      h.capabilities = {"exec", "stream", "files", "processes", "activity"};
      send(c, MsgType::hello, ch, h.encode());
      return;
    }
    case MsgType::ping: send(c, MsgType::pong, ch, {}); return;
    case MsgType::exec: start_exec(c, ch, proto::ExecMsg::decode(f.payload)); return;
    case MsgType::stdin_data:
    case MsgType::stdin_eof: {
      auto it = c.execs.find(ch);
      if (it == c.execs.end() || it->second->in_fd < 0) return;  // gone, or its stdin closed
      ExecOp& e = *it->second;
      if (f.type == MsgType::stdin_eof) {
        e.in_eof = true;
      } else {
        e.in_buf.append(f.payload);
      }
      on_exec_input(e);
      return;
    }
    case MsgType::signal: {
      auto it = c.execs.find(ch);
      const auto a = proto::Args::decode(f.payload);
      if (it != c.execs.end() && !it->second->exited && a.signal > 0 && a.signal < 65)
        ::kill(-it->second->pid, static_cast<int>(a.signal));
      return;
    }
    case MsgType::cancel: cancel(c, ch); return;
    case MsgType::start_background: start_background(c, ch, proto::ExecMsg::decode(f.payload)); return;
    case MsgType::processes: {
      proto::TlvWriter w;
      for (const auto& [id, conn] : conns_) {
        for (const auto& [xch, e] : conn->execs) {
          if (e->exited) continue;
          proto::Process p;
          p.pid = e->pid;
          p.argv = e->argv;
          p.running_us = micros_since(e->start);
          p.encode_into(w);
        }
      }
      for (const auto& [pid, b] : background_) {
        proto::Process p;
        p.pid = pid;
        p.argv = b.argv;
        p.running_us = micros_since(b.start);
        p.background = true;
        p.encode_into(w);
      }
      send(c, MsgType::process_list, ch, w.bytes());
      return;
    }
    case MsgType::kill:
      do_kill(proto::Args::decode(f.payload));
      send(c, MsgType::ok, ch, {});
      return;
    case MsgType::read: start_read(c, ch, proto::Args::decode(f.payload)); return;
    case MsgType::write: start_write(c, ch, proto::Args::decode(f.payload)); return;
    case MsgType::data: write_data(c, ch, f.payload); return;
    case MsgType::end: end_write(c, ch); return;
    case MsgType::stat: {
      proto::TlvWriter w;
      stat_entry(proto::Args::decode(f.payload).path).encode_into(w);
      send(c, MsgType::stat_reply, ch, w.bytes());
      return;
    }
    case MsgType::list: send_list(c, ch, proto::Args::decode(f.payload)); return;
    case MsgType::mkdir: {
      const auto a = proto::Args::decode(f.payload);
      make_dir(a.path, a.parents);
      send(c, MsgType::ok, ch, {});
      return;
    }
    case MsgType::remove: {
      const auto a = proto::Args::decode(f.payload);
      remove_path(a.path, a.recursive, protect_);
      send(c, MsgType::ok, ch, {});
      return;
    }
    case MsgType::activity: {
      proto::Activity a;
      a.running_processes = static_cast<std::int64_t>(background_.size());
      for (const auto& [id, conn] : conns_) {
        a.open_streams += static_cast<std::int64_t>(conn->reads.size() + conn->writes.size());
        for (const auto& [xch, e] : conn->execs) {
          if (!e->exited) ++a.running_processes;
          if (e->in_fd >= 0) ++a.open_streams;
        }
      }
      a.idle_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - last_activity_).count();
      send(c, MsgType::activity_reply, ch, a.encode());
      return;
    }
    default:
      send_error(c, ch, ENOSYS, "",
                 std::string("unexpected message ") + proto::type_name(f.type) + " (" +
                     std::to_string(static_cast<int>(f.type)) + ")");
      return;
  }
}

// ---- exec ----------------------------------------------------------------------------------

void Agent::validate_exec(const proto::ExecMsg& m) const {
  if (m.argv.empty() || m.argv[0].empty()) throw SysError(EINVAL, "", "argv is empty");
  for (const auto& a : m.argv)
    if (has_nul(a)) throw SysError(EINVAL, "", "an argument contains a NUL byte");
  for (const auto& [k, v] : m.env)
    if (has_nul(k) || has_nul(v)) throw SysError(EINVAL, "", "an environment variable contains a NUL byte");
  if (!m.cwd.empty()) {
    if (has_nul(m.cwd)) throw SysError(EINVAL, "", "cwd contains a NUL byte");
    struct stat st {};
    if (::stat(m.cwd.c_str(), &st) != 0) throw_errno(errno, m.cwd, "working directory");
    if (!S_ISDIR(st.st_mode)) throw SysError(ENOTDIR, m.cwd, "working directory " + m.cwd + ": not a directory");
  }
}

std::vector<std::string> Agent::build_env(const proto::ExecMsg& m) const {
  std::vector<std::string> env = base_env_;
  for (const auto& [k, v] : m.env) {
    const std::string prefix = k + "=";
    auto it = std::find_if(env.begin(), env.end(), [&](const std::string& e) { return e.rfind(prefix, 0) == 0; });
    if (it != env.end()) {
      *it = prefix + v;
    } else {
      env.push_back(prefix + v);
    }
  }
  return env;
}

// execvp's search, but in the PATH of the child's environment. 0, or ENOENT/EACCES.
int Agent::resolve_program(const proto::ExecMsg& m, const std::vector<std::string>& env, std::string& program) const {
  const std::string& name = m.argv[0];
  if (name.find('/') != std::string::npos) {
    program = name;
    return 0;
  }
  std::string path = kDefaultPath;
  for (const auto& e : env)
    if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
  int err = ENOENT;
  std::size_t i = 0;
  while (i <= path.size()) {
    const auto j = path.find(':', i);
    std::string dir = path.substr(i, j == std::string::npos ? std::string::npos : j - i);
    i = j == std::string::npos ? path.size() + 1 : j + 1;
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + name;
    if (candidate[0] != '/' && !m.cwd.empty()) candidate = m.cwd + "/" + candidate;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (::access(candidate.c_str(), X_OK) != 0) {
      err = EACCES;
      continue;
    }
    program = std::move(candidate);
    return 0;
  }
  return err;
}

void Agent::start_exec(Conn& c, std::uint32_t ch, const proto::ExecMsg& m) {
  if (c.busy(ch)) throw SysError(EINVAL, "", "channel " + std::to_string(ch) + " is in use");
  if (terminating_) throw SysError(ESHUTDOWN, "", "the agent is shutting down");
  validate_exec(m);
  const auto env = build_env(m);
  auto e = std::make_unique<ExecOp>();
  e->conn = &c;
  e->channel = ch;
  e->argv = m.argv;
  e->max_output = m.max_output;
  e->start = Clock::now();
  if (m.timeout_ms > 0) e->deadline = e->start + milliseconds(m.timeout_ms);
  last_activity_ = e->start;

  std::string program;
  int err = resolve_program(m, env, program);
  std::array<int, 2> out{-1, -1};
  std::array<int, 2> errp{-1, -1};
  std::array<int, 2> in{-1, -1};
  pid_t pid = -1;
  if (err == 0) {
    if (::pipe2(out.data(), O_CLOEXEC) != 0 || ::pipe2(errp.data(), O_CLOEXEC) != 0 ||
        ((m.has_stdin || devnull_ < 0) && ::pipe2(in.data(), O_CLOEXEC) != 0)) {
      const int perr = errno;
      for (int* fd : {&out[0], &out[1], &errp[0], &errp[1], &in[0], &in[1]}) close_fd(*fd);
      throw SysError(perr, "", std::string("pipe: ") + std::strerror(perr));
    }
    const int child_in = in[0] >= 0 ? in[0] : devnull_;
    pid = spawn_child(program, m.argv, env, m.cwd, child_in, out[1], errp[1], err);
    close_fd(out[1]);
    close_fd(errp[1]);
    close_fd(in[0]);
    if (!m.has_stdin) close_fd(in[1]);  // no devnull: an empty pipe is stdin
  }
  if (pid < 0) {
    // Not started: the shell's answer (127 not found, 126 cannot run) with the reason.
    for (int* fd : {&out[0], &errp[0], &in[1]}) close_fd(*fd);
    const std::string msg = "pw-agent: " + m.argv[0] + ": " +
                            (err == ENOENT ? std::string("command not found") : std::string(std::strerror(err))) + "\n";
    send(c, MsgType::stderr_data, ch, msg);
    proto::ExitMsg x;
    x.code = err == ENOENT ? 127 : 126;
    x.duration_us = micros_since(e->start);
    send(c, MsgType::exit, ch, x.encode());
    return;
  }
  for (int fd : {out[0], errp[0], in[1]})
    if (fd >= 0) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  e->pid = pid;
  e->out_fd = out[0];
  e->err_fd = errp[0];
  e->in_fd = in[1];
  e->in_eof = e->in_fd < 0;
  ExecOp* ep = e.get();
  exec_by_pid_[pid] = ep;
  watch(ep->out_fd, Kind::exec_out, &c, ep, c.paused ? 0 : kIn);
  watch(ep->err_fd, Kind::exec_err, &c, ep, c.paused ? 0 : kIn);
  if (ep->in_fd >= 0) watch(ep->in_fd, Kind::exec_in, &c, ep, 0);
  c.execs[ch] = std::move(e);
  if (m.want_started) {
    proto::TlvWriter w;
    w.i64(proto::Tag::pid, pid);
    send(c, MsgType::started, ch, w.bytes());
  }
}

void Agent::on_exec_output(ExecOp& e, bool is_err, bool may_finish) {
  Conn& c = *e.conn;
  int& fd = is_err ? e.err_fd : e.out_fd;
  if (fd < 0) return;
  const std::size_t old = c.out.size();
  c.out.resize(old + proto::kHeaderSize + kPipeRead);
  const ssize_t n = ::read(fd, c.out.data() + old + proto::kHeaderSize, kPipeRead);
  if (n > 0) {
    last_activity_ = Clock::now();
    auto keep = static_cast<std::uint64_t>(n);
    auto& sent = e.sent[is_err ? 1 : 0];
    if (e.cancelled) {
      keep = 0;
    } else if (e.max_output > 0 && sent + keep > e.max_output) {
      keep = e.max_output - std::min(sent, e.max_output);
      e.truncated = true;
    }
    sent += keep;
    if (keep == 0) {
      c.out.resize(old);
    } else {
      write_header(c.out.data() + old, is_err ? MsgType::stderr_data : MsgType::stdout_data, e.channel, keep);
      c.out.resize(old + proto::kHeaderSize + keep);
    }
    if (!c.paused && c.pending() > kHighWater) update_pause(c);
    return;
  }
  c.out.resize(old);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  drop_exec_pipe(e, is_err);  // EOF (or a broken pipe)
  if (may_finish) finish_exec_if_done(e);
}

void Agent::drop_exec_pipe(ExecOp& e, bool is_err) {
  int& fd = is_err ? e.err_fd : e.out_fd;
  unwatch(fd);
  close_fd(fd);
}

void Agent::on_exec_input(ExecOp& e) {
  while (e.in_fd >= 0 && e.in_off < e.in_buf.size()) {
    const ssize_t n = ::write(e.in_fd, e.in_buf.data() + e.in_off, e.in_buf.size() - e.in_off);
    if (n > 0) {
      e.in_off += static_cast<std::size_t>(n);
      last_activity_ = Clock::now();
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      set_events(e.in_fd, EPOLLOUT);
      return;
    }
    // EPIPE: the process stopped reading; the rest is dropped.
    e.in_buf.clear();
    e.in_off = 0;
    e.in_eof = true;
  }
  e.in_buf.clear();
  e.in_off = 0;
  if (e.in_fd >= 0 && e.in_eof) {
    unwatch(e.in_fd);
    close_fd(e.in_fd);
  } else {
    set_events(e.in_fd, 0);
  }
}

void Agent::finish_exec_if_done(ExecOp& e) {
  if (!e.exited || e.out_fd >= 0 || e.err_fd >= 0) return;
  Conn& c = *e.conn;
  proto::ExitMsg x;
  if (WIFEXITED(e.status)) {
    x.code = WEXITSTATUS(e.status);
  } else if (WIFSIGNALED(e.status)) {
    x.signal = WTERMSIG(e.status);
    x.code = 128 + x.signal;
  }
  x.timed_out = e.timed_out;
  x.truncated = e.truncated;
  x.duration_us = micros_since(e.start);
  if (!e.cancelled) send(c, MsgType::exit, e.channel, x.encode());
  unwatch(e.in_fd);
  close_fd(e.in_fd);
  c.execs.erase(e.channel);  // e is gone from here on
}

void Agent::start_background(Conn& c, std::uint32_t ch, const proto::ExecMsg& m) {
  if (terminating_) throw SysError(ESHUTDOWN, "", "the agent is shutting down");
  validate_exec(m);
  const auto env = build_env(m);
  std::string program;
  if (const int err = resolve_program(m, env, program); err != 0)
    throw SysError(err, m.argv[0], m.argv[0] + ": " + (err == ENOENT ? "command not found" : std::strerror(err)));
  // The log is created under a temporary name and renamed once the pid is known.
  if (::mkdir("/tmp", 01777) == 0) ::chmod("/tmp", 01777);
  if (::mkdir(kLogDir, 0700) != 0 && errno != EEXIST) throw_errno(errno, kLogDir, "cannot create");
  static std::uint64_t counter = 0;
  const std::string tmp = std::string(kLogDir) + "/.new-" + std::to_string(++counter) + ".log";
  const int log = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (log < 0) throw_errno(errno, tmp, "cannot create");
  int in = devnull_;
  std::array<int, 2> empty{-1, -1};
  if (in < 0 && ::pipe2(empty.data(), O_CLOEXEC) == 0) {
    in = empty[0];
    close_fd(empty[1]);
  }
  int err = 0;
  const pid_t pid = spawn_child(program, m.argv, env, m.cwd, in, log, log, err);
  ::close(log);
  close_fd(empty[0]);
  if (pid < 0) {
    ::unlink(tmp.c_str());
    throw SysError(err, m.argv[0], m.argv[0] + ": " + std::strerror(err));
  }
  const std::string final_log = std::string(kLogDir) + "/" + std::to_string(pid) + ".log";
  ::rename(tmp.c_str(), final_log.c_str());
  Background b;
  b.argv = m.argv;
  b.start = Clock::now();
  if (m.timeout_ms > 0) b.deadline = b.start + milliseconds(m.timeout_ms);
  background_[pid] = std::move(b);
  last_activity_ = Clock::now();
  proto::TlvWriter w;
  w.i64(proto::Tag::pid, pid);
  send(c, MsgType::ok, ch, w.bytes());
}

bool Agent::is_own_child(pid_t pid) const { return exec_by_pid_.count(pid) > 0 || background_.count(pid) > 0; }

void Agent::do_kill(const proto::Args& a) {
  if (a.signal < 0 || a.signal > 64) throw SysError(EINVAL, "", "invalid signal " + std::to_string(a.signal));
  if (a.pid <= 1 || a.pid == ::getpid() || a.pid > INT_MAX)
    throw SysError(EINVAL, "", "invalid pid " + std::to_string(a.pid));
  const auto pid = static_cast<pid_t>(a.pid);
  const int sig = static_cast<int>(a.signal);
  // Our children lead their own process group: the signal reaches what they started too.
  if (is_own_child(pid) && ::kill(-pid, sig) == 0) return;
  if (::kill(pid, sig) != 0) {
    const int err = errno;
    throw SysError(err, "", "kill " + std::to_string(pid) + ": " + std::strerror(err));
  }
}

void Agent::cancel(Conn& c, std::uint32_t ch) {
  if (auto it = c.execs.find(ch); it != c.execs.end()) {
    ExecOp& e = *it->second;
    e.cancelled = true;
    if (!e.exited) ::kill(-e.pid, SIGKILL);
    e.in_buf.clear();
    e.in_eof = true;
    on_exec_input(e);
    return;
  }
  if (auto it = c.reads.find(ch); it != c.reads.end()) {
    ::close(it->second.fd);
    c.reads.erase(it);
    return;
  }
  abort_write(c, ch);
}

// ---- files ---------------------------------------------------------------------------------

void Agent::start_read(Conn& c, std::uint32_t ch, const proto::Args& a) {
  if (c.busy(ch)) throw SysError(EINVAL, "", "channel " + std::to_string(ch) + " is in use");
  check_path(a.path);
  const int fd = ::open(a.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) throw_errno(errno, a.path, "cannot open");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const bool dir = S_ISDIR(st.st_mode);
    ::close(fd);
    throw SysError(dir ? EISDIR : EINVAL, a.path, a.path + (dir ? ": is a directory" : ": not a regular file"));
  }
  ReadOp r;
  r.fd = fd;
  c.reads[ch] = r;
}

void Agent::start_write(Conn& c, std::uint32_t ch, const proto::Args& a) {
  if (c.busy(ch)) throw SysError(EINVAL, "", "channel " + std::to_string(ch) + " is in use");
  check_path(a.path);
  if (base_name(a.path) == "/" || a.path.back() == '/') throw SysError(EISDIR, a.path, a.path + ": is a directory");
  if (touches_protected(a.path, protect_))
    throw SysError(EINVAL, a.path, "refusing to write " + a.path + ": the agent's directory");
  struct stat st {};
  if (::stat(a.path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    throw SysError(EISDIR, a.path, a.path + ": is a directory");
  // A temporary file next to the target, renamed over it at the end: a failed upload
  // never leaves a half-written file under the real name.
  const std::string dir = dir_name(a.path);
  // Missing parent directories are made (0755), as the engine's fallback channel makes them.
  if (::stat(dir.c_str(), &st) != 0 && errno == ENOENT) make_dir(dir, true);
  const std::string unique(6, 'X');  // mkostemp's placeholder
  std::string tmpl = (dir == "/" ? std::string() : dir) + "/." + base_name(a.path) + ".pw-upload-" + unique;
  if (base_name(tmpl).size() > NAME_MAX) tmpl = (dir == "/" ? std::string() : dir) + "/.pw-upload-" + unique;
  const int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) throw_errno(errno, dir, "cannot create a file in");
  WriteOp w;
  w.fd = fd;
  w.tmp = std::move(tmpl);
  w.path = a.path;
  w.mode = a.mode & 07777;
  c.writes[ch] = std::move(w);
  last_activity_ = Clock::now();
}

void Agent::write_data(Conn& c, std::uint32_t ch, std::string_view data) {
  auto it = c.writes.find(ch);
  if (it == c.writes.end()) return;  // an upload that already failed: the rest is dropped
  std::size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(it->second.fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      const std::string path = it->second.path;
      abort_write(c, ch);
      send_error(c, ch, err, path, "cannot write " + path + ": " + std::strerror(err));
      return;
    }
    off += static_cast<std::size_t>(n);
  }
  last_activity_ = Clock::now();
}

void Agent::end_write(Conn& c, std::uint32_t ch) {
  auto it = c.writes.find(ch);
  if (it == c.writes.end()) return;
  WriteOp w = std::move(it->second);
  c.writes.erase(it);
  int err = 0;
  if (::fchmod(w.fd, w.mode) != 0) err = errno;
  if (::close(w.fd) != 0 && err == 0) err = errno;
  if (err == 0 && ::rename(w.tmp.c_str(), w.path.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(w.tmp.c_str());
    send_error(c, ch, err, w.path, "cannot write " + w.path + ": " + std::strerror(err));
    return;
  }
  last_activity_ = Clock::now();
  send(c, MsgType::ok, ch, {});
}

void Agent::abort_write(Conn& c, std::uint32_t ch) {
  auto it = c.writes.find(ch);
  if (it == c.writes.end()) return;
  ::close(it->second.fd);
  ::unlink(it->second.tmp.c_str());
  c.writes.erase(it);
}

void Agent::send_list(Conn& c, std::uint32_t ch, const proto::Args& a) {
  const auto entries = list_dir(a.path, static_cast<int>(std::clamp<std::int64_t>(a.depth, -1, 1024)), kMaxListEntries);
  proto::TlvWriter w;
  for (const auto& e : entries) {
    e.encode_into(w);
    if (w.size() >= kListFrameBytes) {
      send(c, MsgType::list_entries, ch, w.bytes());
      w = proto::TlvWriter();
    }
  }
  if (w.size() > 0) send(c, MsgType::list_entries, ch, w.bytes());
  send(c, MsgType::end, ch, {});
}

}  // namespace

int run_agent(const Options& options) {
  Agent a(options);
  try {
    return a.run();
  } catch (const SysError& e) {
    log_line("%s", e.message().c_str());
    return 1;
  }
}

}  // namespace pwagent

// Local PTY transport: a shell on a pseudo-terminal of our own, talked to through the master.
//
// What the shell starts with, and nothing else:
//   - file descriptors 0, 1 and 2 (the terminal); every other descriptor of this process
//     is closed in the child before exec (close_range, else a /proc/self/fd sweep), and
//     every descriptor the library opens is close-on-exec anyway;
//   - the environment HOME, USER, LOGNAME (from the passwd entry of the effective uid:
//     "/" and the numeric uid without one), SHELL (the pod's shell), PATH
//     (kPodPath), TERM=dumb and LANG=C.UTF-8 — nothing from this process's environment,
//     so no PODWRANGLER_* setting, key or database URL ever reaches a pod;
//   - default signal dispositions and an empty signal mask (a server blocks or ignores
//     signals it handles itself, and both survive exec);
//   - its own session with the terminal as controlling tty, in the pod's cwd;
//   - a raw terminal: no output processing (the bytes a command writes are the bytes we
//     read, no "\n" → "\r\n"), no echo, no line editing, no signal characters and no flow
//     control (a command's text reaches the shell byte for byte).
// The shell is interactive (its stdin is a terminal), so it runs each job in a process
// group of its own in the terminal's foreground: interrupt() signals that group, the way
// Ctrl-C would, and the shell itself survives.
#include <podwrangler/errors.hpp>
#include <podwrangler/providers/local.hpp>

#include <utility>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

namespace pw {

namespace {

constexpr auto use_aw = asio::use_awaitable_t<Executor>{};
constexpr const char* kPodPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// An owned descriptor (closed on scope exit unless released).
struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int release() { return std::exchange(fd, -1); }
};

std::string errno_text(int e) { return std::strerror(e); }

// The environment of a pod's shell (see the top of this file).
std::vector<std::string> pod_environment(const std::string& shell) {
  uid_t uid = ::geteuid();
  std::string home = "/", user = std::to_string(uid);
  long size = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? static_cast<std::size_t>(size) : 16384);
  struct passwd entry {};
  struct passwd* found = nullptr;
  while (::getpwuid_r(uid, &entry, buf.data(), buf.size(), &found) == ERANGE && buf.size() < (1u << 20))
    buf.resize(buf.size() * 2);
  if (found) {
    if (found->pw_dir && *found->pw_dir) home = found->pw_dir;
    if (found->pw_name && *found->pw_name) user = found->pw_name;
  }
  return {"HOME=" + home, "USER=" + user, "LOGNAME=" + user, "SHELL=" + shell, std::string("PATH=") + kPodPath,
          "TERM=dumb",    "LANG=C.UTF-8"};
}

// Closes every descriptor from 3 up. Runs in the child between fork and exec: only
// async-signal-safe calls.
void close_fds_from_3() noexcept {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return;
#endif
  int dir = ::open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    alignas(8) char buf[4096];
    while (true) {
      long n = ::syscall(SYS_getdents64, dir, buf, sizeof buf);
      if (n <= 0) break;
      for (long off = 0; off < n;) {
        auto* d = reinterpret_cast<struct dirent64*>(buf + off);
        off += d->d_reclen;
        int fd = 0;
        bool num = d->d_name[0] != '\0';
        for (const char* c = d->d_name; *c; ++c) {
          if (*c < '0' || *c > '9') {
            num = false;
            break;
          }
          fd = fd * 10 + (*c - '0');
        }
        if (num && fd > 2 && fd != dir) ::close(fd);
      }
    }
    ::close(dir);
    return;
  }
  struct rlimit rl {};
  int max = ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 65536
                ? static_cast<int>(rl.rlim_cur)
                : 65536;
  for (int fd = 3; fd < max; ++fd) ::close(fd);
}

[[noreturn]] void exec_shell_child(int slave, const char* path, char* const* argv, char* const* envp,
                                   const char* cwd) noexcept {
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &sa, nullptr);
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (::setsid() < 0) ::_exit(126);
  if (::ioctl(slave, TIOCSCTTY, 0) < 0) ::_exit(126);
  for (int fd = 0; fd < 3; ++fd)
    if (::dup2(slave, fd) < 0) ::_exit(126);
  close_fds_from_3();
  if (cwd && ::chdir(cwd) != 0) ::_exit(127);
  ::execve(path, argv, envp);
  ::_exit(127);
}

// A raw terminal: bytes pass unchanged both ways.
void make_raw(termios& t) {
  t.c_iflag &= ~static_cast<tcflag_t>(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON | IXOFF | IXANY |
                                      IMAXBEL);
  t.c_oflag &= ~static_cast<tcflag_t>(OPOST);
  t.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
  t.c_cflag &= ~static_cast<tcflag_t>(CSIZE | PARENB);
  t.c_cflag |= CS8;
  t.c_cc[VMIN] = 1;
  t.c_cc[VTIME] = 0;
}

class PtyConnection final : public Connection {
 public:
  PtyConnection(Executor ex, std::string shell, std::string cwd, int cols)
      : ex_(ex), shell_(std::move(shell)), cwd_(std::move(cwd)), cols_(cols), master_(ex), waiter_(ex) {}
  ~PtyConnection() override { close(); }

  Task<void> connect(std::chrono::milliseconds) override {
    if (::access(shell_.c_str(), X_OK) != 0)
      throw PodConnectionError("cannot start local shell '" + shell_ + "': " + errno_text(errno));
    if (!cwd_.empty() && ::access(cwd_.c_str(), X_OK) != 0)
      throw PodConnectionError("cannot use working directory '" + cwd_ + "': " + errno_text(errno));
    // Everything the child needs is prepared before fork(): only async-signal-safe
    // calls happen in the child of this (possibly multi-threaded) process.
    std::vector<std::string> env_store = pod_environment(shell_);
    std::vector<char*> envp;
    envp.reserve(env_store.size() + 1);
    for (auto& s : env_store) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string argv0 = shell_;
    char* argv[] = {argv0.data(), nullptr};

    // Both ends are close-on-exec from the start: no other child of this process can
    // inherit them, whichever thread forks meanwhile.
    Fd master(::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (master.fd < 0) throw PodConnectionError("cannot open a pseudo-terminal: " + errno_text(errno));
    if (::grantpt(master.fd) != 0 || ::unlockpt(master.fd) != 0)
      throw PodConnectionError("cannot set up a pseudo-terminal: " + errno_text(errno));
    Fd slave;
#ifdef TIOCGPTPEER
    slave.fd = ::ioctl(master.fd, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
#endif
    if (slave.fd < 0) {
      char name[128];
      if (::ptsname_r(master.fd, name, sizeof name) != 0)
        throw PodConnectionError("cannot name the pseudo-terminal: " + errno_text(errno));
      slave.fd = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
      if (slave.fd < 0) throw PodConnectionError("cannot open the pseudo-terminal: " + errno_text(errno));
    }
    termios t{};
    if (::tcgetattr(slave.fd, &t) == 0) {
      make_raw(t);
      ::tcsetattr(slave.fd, TCSANOW, &t);
    }
    struct winsize ws {};
    ws.ws_col = static_cast<unsigned short>(cols_);
    ws.ws_row = 50;
    ::ioctl(slave.fd, TIOCSWINSZ, &ws);

    const char* cwd = cwd_.empty() ? nullptr : cwd_.c_str();
    pid_t pid = ::fork();
    if (pid < 0) throw PodConnectionError("cannot start local shell '" + shell_ + "': fork: " + errno_text(errno));
    if (pid == 0) exec_shell_child(slave.fd, argv0.c_str(), argv, envp.data(), cwd);
    pid_ = pid;
    exited_at_ = {};
    last_data_at_ = std::chrono::steady_clock::now();
    boost::system::error_code ec;
    master_.assign(master.fd, ec);
    if (ec) throw PodConnectionError("cannot watch the pseudo-terminal: " + ec.message());
    master.release();
    // Our copy of the terminal stays open until the shell has gone and the terminal is
    // quiet (read()): while any end of the slave is open, the kernel never reports the end
    // (EIO) with output of the shell's last moments still buffered, however far our reader
    // lags. The end of the shell is then learnt from a pidfd, waited on together with the
    // master through one epoll descriptor. Without pidfds (Linux < 5.3) the copy is closed
    // at once and EIO tells, as it always did.
    Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));  // close-on-exec by definition
    Fd ep(::epoll_create1(EPOLL_CLOEXEC));
    if (pidfd.fd >= 0 && ep.fd >= 0) {
      epoll_event in{};
      in.events = EPOLLIN;
      in.data.fd = master_.native_handle();
      epoll_event gone{};
      gone.events = EPOLLIN;
      gone.data.fd = pidfd.fd;
      if (::epoll_ctl(ep.fd, EPOLL_CTL_ADD, master_.native_handle(), &in) == 0 &&
          ::epoll_ctl(ep.fd, EPOLL_CTL_ADD, pidfd.fd, &gone) == 0) {
        waiter_.assign(ep.fd, ec);
        if (!ec) {
          ep.release();
          pidfd_ = pidfd.release();
          slave_keep_ = slave.release();
        }
      }
    }
    // read() reads the master itself, without blocking (Asio's writes cope with that too).
    ::fcntl(master_.native_handle(), F_SETFL, ::fcntl(master_.native_handle(), F_GETFL) | O_NONBLOCK);
    open_ = true;
    co_return;
  }

  Task<void> write(std::string_view data) override {
    if (!open_) throw PodNotConnectedError();
    boost::system::error_code ec;
    co_await asio::async_write(master_, asio::buffer(data.data(), data.size()), asio::redirect_error(use_aw, ec));
    if (ec) throw PodConnectionError("write to local shell failed: " + ec.message());
  }

  Task<bool> read(std::string& out) override {
    char buf[16384];
    while (open_) {
      ssize_t n = ::read(master_.native_handle(), buf, sizeof buf);
      if (n > 0) {
        out.append(buf, static_cast<std::size_t>(n));
        last_data_at_ = std::chrono::steady_clock::now();
        co_return true;
      }
      int err = n < 0 ? errno : 0;
      if (err == EINTR) continue;
      // EIO (or 0) on the master: the shell, every job holding the terminal and our copy
      // of it have gone, and everything they wrote has been read.
      if (n == 0 || err == EIO) {
        reap();
        co_return false;
      }
      if (err != EAGAIN && err != EWOULDBLOCK) throw PodConnectionError("local shell read failed: " + errno_text(err));
      boost::system::error_code ec;
      if (slave_keep_ >= 0) {
        reap();
        if (exit_status_ != -1) {
          // The shell has gone: once nothing more arrives for a moment, let our copy of the
          // terminal go too, so that EIO ends the stream when no job holds it any more.
          auto quiet_until = std::max(exited_at_, last_data_at_) + kQuietAfterExit;
          if (std::chrono::steady_clock::now() >= quiet_until) {
            ::close(std::exchange(slave_keep_, -1));
            continue;
          }
          asio::steady_timer t(ex_, quiet_until);
          co_await t.async_wait(asio::redirect_error(use_aw, ec));
          continue;
        }
        // Output, or the end of the shell (its pidfd turns readable).
        co_await waiter_.async_wait(asio::posix::descriptor_base::wait_read, asio::redirect_error(use_aw, ec));
      } else {
        co_await master_.async_wait(asio::posix::descriptor_base::wait_read, asio::redirect_error(use_aw, ec));
      }
      if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) break;
      if (ec) throw PodConnectionError("local shell read failed: " + ec.message());
    }
    reap();
    co_return false;
  }

  // SIGINT (then SIGKILL) to the terminal's foreground process group: the running job.
  // When the shell itself is in the foreground (a builtin such as a `while` loop runs),
  // SIGINT goes to the shell, which as an interactive shell abandons the line; killing
  // it is never an option, so the hard stage reports that it cannot help.
  Task<bool> interrupt(bool hard) override {
    if (!open_ || pid_ <= 0) co_return false;
    pid_t fg = ::tcgetpgrp(master_.native_handle());
    if (fg <= 0) co_return false;
    if (fg == pid_) {
      if (hard) co_return false;
      co_return ::kill(pid_, SIGINT) == 0;
    }
    co_return ::kill(-fg, hard ? SIGKILL : SIGINT) == 0;
  }

  std::optional<int> exit_status() override {
    reap();
    if (exit_status_ == -1) return std::nullopt;
    if (WIFEXITED(exit_status_)) return WEXITSTATUS(exit_status_);
    if (WIFSIGNALED(exit_status_)) return 128 + WTERMSIG(exit_status_);
    return std::nullopt;
  }

  // Collects the shell's status once it has gone (so that errors can say why).
  void reap() noexcept {
    if (pid_ <= 0) return;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_status_ = status;
      exited_at_ = std::chrono::steady_clock::now();
      pid_ = -1;
    }
  }

  void close() noexcept override {
    open_ = false;
    if (slave_keep_ >= 0) ::close(std::exchange(slave_keep_, -1));
    boost::system::error_code ec;
    if (waiter_.is_open()) waiter_.close(ec);
    if (pidfd_ >= 0) ::close(std::exchange(pidfd_, -1));
    if (master_.is_open()) master_.close(ec);
    if (pid_ > 0) {
      ::kill(pid_, SIGHUP);
      ::kill(pid_, SIGKILL);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      pid_ = -1;
    }
  }

  bool is_tty() const noexcept override { return true; }
  std::string describe() const override {
    std::string d = "local shell " + shell_;
    if (exit_status_ == -1) return d;
    if (WIFEXITED(exit_status_))
      d += " (exited with status " + std::to_string(WEXITSTATUS(exit_status_)) + ")";
    else if (WIFSIGNALED(exit_status_))
      d += " (killed by signal " + std::to_string(WTERMSIG(exit_status_)) + ")";
    return d;
  }

 private:
  Executor ex_;
  std::string shell_, cwd_;
  int cols_;
  asio::posix::stream_descriptor master_;
  pid_t pid_ = -1;
  int exit_status_ = -1;                   // waitpid() status once reaped, -1 before
  asio::posix::stream_descriptor waiter_;  // epoll of {master, pidfd}: output or the shell's end
  int pidfd_ = -1;
  int slave_keep_ = -1;  // our copy of the terminal (see connect() and read())
  std::chrono::steady_clock::time_point exited_at_{}, last_data_at_{};
  static constexpr auto kQuietAfterExit = std::chrono::milliseconds(20);
  bool open_ = false;
};

}  // namespace

std::unique_ptr<Connection> make_pty_connection(Executor ex, std::string shell, std::string cwd, int cols) {
  return std::make_unique<PtyConnection>(ex, std::move(shell), std::move(cwd), cols);
}

}  // namespace pw

// Local PTY transport: forkpty() a shell and talk to the master side.
#include <podwrangler/errors.hpp>
#include <podwrangler/providers/local.hpp>

#include <utility>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <pty.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

extern char** environ;

namespace pw {

namespace {

constexpr auto use_aw = asio::use_awaitable_t<Executor>{};

class PtyConnection final : public Connection {
 public:
  PtyConnection(Executor ex, std::string shell, std::string cwd, int cols)
      : ex_(ex), shell_(std::move(shell)), cwd_(std::move(cwd)), cols_(cols), master_(ex) {}
  ~PtyConnection() override { close(); }

  Task<void> connect(std::chrono::milliseconds) override {
    if (::access(shell_.c_str(), X_OK) != 0)
      throw PodConnectionError("cannot start local shell '" + shell_ + "': " + std::strerror(errno));
    if (!cwd_.empty() && ::access(cwd_.c_str(), X_OK) != 0)
      throw PodConnectionError("cannot use working directory '" + cwd_ + "': " + std::strerror(errno));
    // Everything the child needs is prepared before fork(): only async-signal-safe
    // calls happen in the child of this (possibly multi-threaded) process.
    std::vector<std::string> env_store;
    for (char** e = environ; e && *e; ++e) {
      std::string_view kv(*e);
      if (kv.starts_with("TERM=") || kv.starts_with("PS1=") || kv.starts_with("ENV=") ||
          kv.starts_with("PROMPT_COMMAND="))
        continue;
      env_store.emplace_back(kv);
    }
    env_store.emplace_back("TERM=dumb");
    env_store.emplace_back("PS1=");
    env_store.emplace_back("NO_COLOR=1");
    std::vector<char*> envp;
    for (auto& s : env_store) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string argv0 = shell_;
    char* argv[] = {argv0.data(), nullptr};
    struct winsize ws {};
    ws.ws_col = static_cast<unsigned short>(cols_);
    ws.ws_row = 50;
    int fd = -1;
    pid_t pid = ::forkpty(&fd, nullptr, nullptr, &ws);
    if (pid < 0) throw PodConnectionError(std::string("forkpty failed: ") + std::strerror(errno));
    if (pid == 0) {
      if (!cwd_.empty() && ::chdir(cwd_.c_str()) != 0) ::_exit(127);
      ::execve(argv0.c_str(), argv, envp.data());
      ::_exit(127);
    }
    pid_ = pid;
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    master_.assign(fd);
    open_ = true;
    co_return;
  }

  Task<void> write(std::string_view data) override {
    if (!open_) throw PodNotConnectedError();
    boost::system::error_code ec;
    co_await asio::async_write(master_, asio::buffer(data.data(), data.size()),
                               asio::redirect_error(use_aw, ec));
    if (ec) throw PodConnectionError("write to local shell failed: " + ec.message());
  }

  Task<bool> read(std::string& out) override {
    if (!open_) co_return false;
    char buf[16384];
    boost::system::error_code ec;
    std::size_t n = co_await master_.async_read_some(asio::buffer(buf), asio::redirect_error(use_aw, ec));
    if (n > 0) out.append(buf, n);
    if (ec) {
      // EIO on the master means the shell (and every holder of the slave) has gone.
      if (ec == asio::error::eof || ec.value() == EIO || ec == asio::error::operation_aborted ||
          ec == asio::error::bad_descriptor) {
        reap();
        co_return n > 0;
      }
      throw PodConnectionError("local shell read failed: " + ec.message());
    }
    co_return true;
  }

  // Collects the shell's status once it has gone (so that errors can say why).
  void reap() noexcept {
    if (pid_ <= 0) return;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_status_ = status;
      pid_ = -1;
    }
  }

  void close() noexcept override {
    open_ = false;
    boost::system::error_code ec;
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
    if (WIFEXITED(exit_status_)) d += " (exited with status " + std::to_string(WEXITSTATUS(exit_status_)) + ")";
    else if (WIFSIGNALED(exit_status_)) d += " (killed by signal " + std::to_string(WTERMSIG(exit_status_)) + ")";
    return d;
  }

 private:
  Executor ex_;
  std::string shell_, cwd_;
  int cols_;
  asio::posix::stream_descriptor master_;
  pid_t pid_ = -1;
  int exit_status_ = -1;  // waitpid() status once reaped, -1 before
  bool open_ = false;
};

}  // namespace

std::unique_ptr<Connection> make_pty_connection(Executor ex, std::string shell, std::string cwd,
                                                int cols) {
  return std::make_unique<PtyConnection>(ex, std::move(shell), std::move(cwd), cols);
}

}  // namespace pw

#include <podwrangler/capsules/agent_client.hpp>
#include <podwrangler/capsules/agent_protocol.hpp>
#include <podwrangler/errors.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <utility>
#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

namespace pw::capsules {
namespace {

namespace proto = agent;
using proto::MsgType;
using Clock = std::chrono::steady_clock;

// Frames one call may have waiting before the reader waits for it.
constexpr std::size_t kChannelBuffer = std::size_t{8} * 1024 * 1024;
// How long a request/reply call (stat, mkdir, kill …) may take.
constexpr std::chrono::seconds kControlTimeout{60};
// How long past its own timeout an exec's exit may take to arrive.
constexpr std::chrono::seconds kExecSlack{30};

std::string errno_text(int err) { return std::strerror(err); }

std::string dir_part(const std::string& p) {
  const auto slash = p.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : p.substr(0, slash);
}
std::string base_part(const std::string& p) {
  const auto slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

// An agent error → the library's exception. `field` names what a validation error is about.
[[noreturn]] void throw_agent_error(const proto::ErrorMsg& e, const std::string& field,
                                    const std::string& fallback_name) {
  const std::string name = e.path.empty() ? fallback_name : e.path;
  switch (e.err_no) {
    case ENOENT: throw CapsuleNotFoundError(name.empty() ? e.message : name, "file");
    case ESRCH: throw CapsuleNotFoundError(name.empty() ? e.message : name, "process");
    case EINVAL:
    case ENOTDIR:
    case EISDIR:
    case EEXIST:
    case ENOTEMPTY:
    case E2BIG:
    case ENAMETOOLONG:
    case ELOOP: throw CapsuleValidationError(field, e.message);
    default: throw AgentError("agent: " + e.message);
  }
}

void check_path(const std::string& path) {
  if (path.empty() || path[0] != '/') throw CapsuleValidationError("path", "must be absolute: " + path);
  if (path.find('\0') != std::string::npos) throw CapsuleValidationError("path", "contains a NUL byte");
}

struct Waiter {
  std::mutex m;
  std::condition_variable cv;
  std::deque<proto::Frame> frames;
  std::size_t bytes = 0;
  bool broken = false;  // the connection ended: after the frames already here, calls fail
  std::string reason;
  bool abandoned = false;  // the call is gone: the reader drops its frames
};

class AgentChannel final : public ExecChannel {
 public:
  AgentChannel(int fd, std::string path, std::chrono::milliseconds timeout)
      : fd_(fd), path_(std::move(path)), timeout_(timeout) {
    reader_ = std::thread([this] { reader_loop(); });
  }
  ~AgentChannel() override {
    close();
    ::close(fd_);
  }
  AgentChannel(const AgentChannel&) = delete;
  AgentChannel& operator=(const AgentChannel&) = delete;

  std::string mode() const override { return "agent"; }
  ExecResult exec(const ExecRequest& req, const ExecSink* sink) override;
  int start_background(const ExecRequest& req) override;
  std::vector<ProcessInfo> processes() override;
  void kill(int pid, int signal) override;
  void upload(const std::string& path, ByteSource& src, std::uint32_t mode) override;
  void download(const std::string& path, ByteSink& sink) override;
  FileStat stat(const std::string& path) override;
  std::vector<FileStat> list(const std::string& path, int depth) override;
  void mkdir(const std::string& path, bool parents) override;
  void remove(const std::string& path, bool recursive) override;
  AgentActivity activity() override;
  bool alive() override;
  void close() override;

 private:
  // One operation on its own channel, for as long as it lives; abandoned before its end
  // (an exception, a sink that threw), it tells the agent to cancel.
  class Call {
   public:
    explicit Call(AgentChannel& ch) : ch_(ch), w_(std::make_shared<Waiter>()), id_(ch.open_channel(w_)) {}
    ~Call() { ch_.release(id_, w_, done_); }
    Call(const Call&) = delete;
    Call& operator=(const Call&) = delete;
    void send(MsgType t, std::string_view payload = {}) { ch_.send(t, id_, payload); }
    // The next frame; nullopt when the deadline passed. AgentError once the connection is gone.
    std::optional<proto::Frame> next(Clock::time_point deadline);
    // A frame if one is waiting now.
    std::optional<proto::Frame> poll();
    // The next frame, which must come within the control timeout.
    proto::Frame reply(const char* what);
    void done() { done_ = true; }

   private:
    proto::Frame pop();
    AgentChannel& ch_;
    std::shared_ptr<Waiter> w_;
    std::uint32_t id_;
    bool done_ = false;
  };

  std::uint32_t open_channel(const std::shared_ptr<Waiter>& w);
  void release(std::uint32_t id, const std::shared_ptr<Waiter>& w, bool done);
  void send(MsgType t, std::uint32_t ch, std::string_view payload);
  void reader_loop();
  void deliver(proto::Frame&& f);
  void fail_all(const std::string& reason);
  [[noreturn]] void unexpected(const proto::Frame& f, const char* what) const {
    throw AgentError("agent at " + path_ + ": unexpected " + proto::type_name(f.type) + " answering " + what);
  }

  int fd_;
  std::string path_;
  std::chrono::milliseconds timeout_;
  std::thread reader_;
  std::mutex close_mu_;
  std::atomic<bool> closing_{false};
  std::mutex write_mu_;
  std::mutex mu_;  // guards what follows
  std::unordered_map<std::uint32_t, std::shared_ptr<Waiter>> waiters_;
  std::uint32_t next_id_ = 1;
  bool broken_ = false;
  std::string broken_reason_;
};

// ---- channels -------------------------------------------------------------------------------

std::uint32_t AgentChannel::open_channel(const std::shared_ptr<Waiter>& w) {
  std::lock_guard lk(mu_);
  if (broken_) throw AgentError(broken_reason_);
  std::uint32_t id = next_id_++;
  if (id == 0) id = next_id_++;  // 0 is the hello's
  waiters_.emplace(id, w);
  return id;
}

void AgentChannel::release(std::uint32_t id, const std::shared_ptr<Waiter>& w, bool done) {
  bool broken = false;
  {
    std::lock_guard lk(mu_);
    waiters_.erase(id);
    broken = broken_;
  }
  {
    std::lock_guard lk(w->m);
    w->abandoned = true;
    w->frames.clear();
  }
  w->cv.notify_all();
  if (!done && !broken) {
    try {
      send(MsgType::cancel, id, {});
    } catch (const std::exception&) {  // the connection is going away anyway
    }
  }
}

void AgentChannel::send(MsgType t, std::uint32_t ch, std::string_view payload) {
  std::string header;
  proto::put_header(header, t, ch, payload.size());
  std::array<iovec, 2> iov{};
  iov[0].iov_base = header.data();
  iov[0].iov_len = header.size();
  iov[1].iov_base = const_cast<char*>(payload.data());
  iov[1].iov_len = payload.size();
  std::size_t idx = 0;
  std::lock_guard lk(write_mu_);
  while (idx < iov.size()) {
    if (iov[idx].iov_len == 0) {
      ++idx;
      continue;
    }
    msghdr msg{};
    msg.msg_iov = &iov[idx];
    msg.msg_iovlen = iov.size() - idx;
    const ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      {
        std::lock_guard g(mu_);
        if (broken_) throw AgentError(broken_reason_);
      }
      throw AgentError("agent at " + path_ + ": cannot send: " + errno_text(err));
    }
    auto left = static_cast<std::size_t>(n);
    while (idx < iov.size() && left >= iov[idx].iov_len) {
      left -= iov[idx].iov_len;
      ++idx;
    }
    if (idx < iov.size()) {
      iov[idx].iov_base = static_cast<char*>(iov[idx].iov_base) + left;
      iov[idx].iov_len -= left;
    }
  }
}

void AgentChannel::reader_loop() {
  std::vector<char> buf(proto::kDataChunk);
  proto::FrameDecoder dec;
  std::string reason;
  try {
    while (true) {
      const ssize_t n = ::read(fd_, buf.data(), buf.size());
      if (n == 0) {
        reason = "the agent closed the connection";
        break;
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        reason = "connection lost: " + errno_text(errno);
        break;
      }
      dec.feed(buf.data(), static_cast<std::size_t>(n));
      proto::Frame f;
      while (dec.next(f)) deliver(std::move(f));
    }
  } catch (const proto::ProtocolError& e) {
    reason = std::string("protocol error: ") + e.what();
    ::shutdown(fd_, SHUT_RDWR);
  }
  if (closing_) reason = "the connection was closed";
  fail_all("agent at " + path_ + ": " + reason);
}

void AgentChannel::deliver(proto::Frame&& f) {
  std::shared_ptr<Waiter> w;
  {
    std::lock_guard lk(mu_);
    auto it = waiters_.find(f.channel);
    if (it == waiters_.end()) return;  // a call that already ended
    w = it->second;
  }
  std::unique_lock lk(w->m);
  // Flow control: a caller that does not keep up holds the reader (and so the agent) back.
  w->cv.wait(lk, [&] { return w->bytes < kChannelBuffer || w->abandoned || closing_.load(); });
  if (w->abandoned) return;
  w->bytes += f.payload.size();
  w->frames.push_back(std::move(f));
  lk.unlock();
  w->cv.notify_all();
}

void AgentChannel::fail_all(const std::string& reason) {
  std::vector<std::shared_ptr<Waiter>> ws;
  {
    std::lock_guard lk(mu_);
    if (!broken_) {
      broken_ = true;
      broken_reason_ = reason;
    }
    for (auto& [id, w] : waiters_) ws.push_back(w);
  }
  for (auto& w : ws) {
    {
      std::lock_guard lk(w->m);
      w->broken = true;
      w->reason = reason;
    }
    w->cv.notify_all();
  }
}

void AgentChannel::close() {
  std::lock_guard lk(close_mu_);
  closing_ = true;
  ::shutdown(fd_, SHUT_RDWR);
  {  // a reader waiting for a slow call wakes up and sees closing_
    std::vector<std::shared_ptr<Waiter>> ws;
    {
      std::lock_guard g(mu_);
      for (auto& [id, w] : waiters_) ws.push_back(w);
    }
    for (auto& w : ws) {
      { std::lock_guard g(w->m); }
      w->cv.notify_all();
    }
  }
  if (reader_.joinable() && reader_.get_id() != std::this_thread::get_id()) reader_.join();
}

proto::Frame AgentChannel::Call::pop() {
  proto::Frame f = std::move(w_->frames.front());
  w_->frames.pop_front();
  w_->bytes -= f.payload.size();
  return f;
}

std::optional<proto::Frame> AgentChannel::Call::next(Clock::time_point deadline) {
  std::unique_lock lk(w_->m);
  const auto ready = [&] { return !w_->frames.empty() || w_->broken; };
  if (deadline == Clock::time_point::max()) {
    w_->cv.wait(lk, ready);
  } else if (!w_->cv.wait_until(lk, deadline, ready)) {
    return std::nullopt;
  }
  if (w_->frames.empty()) throw AgentError(w_->reason);
  proto::Frame f = pop();
  lk.unlock();
  w_->cv.notify_all();  // room for the reader
  return f;
}

std::optional<proto::Frame> AgentChannel::Call::poll() {
  std::unique_lock lk(w_->m);
  if (w_->frames.empty()) {
    if (w_->broken) throw AgentError(w_->reason);
    return std::nullopt;
  }
  proto::Frame f = pop();
  lk.unlock();
  w_->cv.notify_all();
  return f;
}

proto::Frame AgentChannel::Call::reply(const char* what) {
  auto f = next(Clock::now() + kControlTimeout);
  if (!f)
    throw AgentError("agent at " + ch_.path_ + ": no answer to " + what + " within " +
                     std::to_string(kControlTimeout.count()) + " s");
  return std::move(*f);
}

// ---- exec ----------------------------------------------------------------------------------

proto::ExecMsg exec_message(const ExecRequest& req) {
  if (req.argv.empty() || req.argv[0].empty()) throw CapsuleValidationError("argv", "must not be empty");
  for (const auto& a : req.argv)
    if (a.find('\0') != std::string::npos) throw CapsuleValidationError("argv", "an argument contains a NUL byte");
  proto::ExecMsg m;
  m.argv = req.argv;
  for (const auto& [k, v] : req.env) {
    if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos)
      throw CapsuleValidationError("env", "invalid variable name: " + k);
    if (v.find('\0') != std::string::npos)
      throw CapsuleValidationError("env", "the value of " + k + " contains a NUL byte");
    m.env.emplace_back(k, v);
  }
  if (!std::isfinite(req.timeout_s) || req.timeout_s < 0)
    throw CapsuleValidationError("timeout", "must be a non-negative number of seconds");
  m.cwd = req.cwd;
  if (req.timeout_s > 0)
    m.timeout_ms = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::llround(req.timeout_s * 1000)));
  m.has_stdin = !req.stdin_data.empty();
  m.max_output = req.max_output_bytes;
  return m;
}

ExecResult AgentChannel::exec(const ExecRequest& req, const ExecSink* sink) {
  proto::ExecMsg m = exec_message(req);
  m.want_started = sink != nullptr && *sink;
  Call call(*this);
  const auto start = Clock::now();
  call.send(MsgType::exec, m.encode());
  for (std::size_t off = 0; off < req.stdin_data.size(); off += proto::kDataChunk)
    call.send(MsgType::stdin_data, std::string_view(req.stdin_data).substr(off, proto::kDataChunk));
  if (m.has_stdin) call.send(MsgType::stdin_eof);
  const auto deadline =
      req.timeout_s > 0 ? start + std::chrono::milliseconds(m.timeout_ms) + kExecSlack : Clock::time_point::max();
  ExecResult r;
  const auto keep = [&](std::string& into, const std::string& data) {
    const std::size_t room =
        m.max_output == 0 ? data.size() : m.max_output - std::min<std::size_t>(into.size(), m.max_output);
    if (data.size() > room) r.truncated = true;
    into.append(data, 0, std::min(room, data.size()));
  };
  while (true) {
    auto f = call.next(deadline);
    if (!f) throw AgentError("agent at " + path_ + ": " + req.argv[0] + " did not end within its timeout");
    switch (f->type) {
      case MsgType::started:
        if (sink != nullptr && *sink) {
          ExecEvent ev;
          ev.kind = ExecEvent::Kind::started;
          ev.pid = static_cast<int>(proto::Args::decode(f->payload).pid);
          (*sink)(ev);
        }
        break;
      case MsgType::stdout_data:
      case MsgType::stderr_data:
        if (sink != nullptr && *sink) {
          ExecEvent ev;
          ev.kind = f->type == MsgType::stdout_data ? ExecEvent::Kind::stdout_data : ExecEvent::Kind::stderr_data;
          ev.data = std::move(f->payload);
          (*sink)(ev);
        } else {
          keep(f->type == MsgType::stdout_data ? r.stdout_data : r.stderr_data, f->payload);
        }
        break;
      case MsgType::exit: {
        call.done();
        const auto x = proto::ExitMsg::decode(f->payload);
        r.exit_code = static_cast<int>(x.code);
        r.timed_out = x.timed_out;
        r.truncated = r.truncated || x.truncated;
        r.duration_s = static_cast<double>(x.duration_us) / 1e6;
        if (sink != nullptr && *sink) {
          ExecEvent ev;
          ev.kind = ExecEvent::Kind::exit;
          ev.exit_code = r.exit_code;
          ev.duration_s = r.duration_s;
          ev.timed_out = r.timed_out;
          (*sink)(ev);
        }
        return r;
      }
      case MsgType::error: {
        call.done();
        const auto e = proto::ErrorMsg::decode(f->payload);
        throw_agent_error(e, e.path.empty() ? "argv" : "cwd", req.cwd);
      }
      default: unexpected(*f, "exec");
    }
  }
}

int AgentChannel::start_background(const ExecRequest& req) {
  proto::ExecMsg m = exec_message(req);
  m.has_stdin = false;
  Call call(*this);
  call.send(MsgType::start_background, m.encode());
  auto f = call.reply("start_background");
  call.done();
  if (f.type == MsgType::error) throw_agent_error(proto::ErrorMsg::decode(f.payload), "argv", req.argv[0]);
  if (f.type != MsgType::ok) unexpected(f, "start_background");
  return static_cast<int>(proto::Args::decode(f.payload).pid);
}

std::vector<ProcessInfo> AgentChannel::processes() {
  Call call(*this);
  call.send(MsgType::processes);
  auto f = call.reply("processes");
  call.done();
  if (f.type == MsgType::error) throw_agent_error(proto::ErrorMsg::decode(f.payload), "processes", "");
  if (f.type != MsgType::process_list) unexpected(f, "processes");
  std::vector<ProcessInfo> out;
  for (auto& p : proto::decode_processes(f.payload)) {
    ProcessInfo i;
    i.pid = static_cast<int>(p.pid);
    i.argv = std::move(p.argv);
    i.running_s = static_cast<double>(p.running_us) / 1e6;
    i.background = p.background;
    out.push_back(std::move(i));
  }
  return out;
}

void AgentChannel::kill(int pid, int signal) {
  if (pid <= 1) throw CapsuleValidationError("pid", "must be a process of the capsule: " + std::to_string(pid));
  if (signal < 0 || signal > 64) throw CapsuleValidationError("signal", "no such signal: " + std::to_string(signal));
  proto::Args a;
  a.pid = pid;
  a.signal = signal;
  Call call(*this);
  call.send(MsgType::kill, a.encode());
  auto f = call.reply("kill");
  call.done();
  if (f.type == MsgType::error) throw_agent_error(proto::ErrorMsg::decode(f.payload), "pid", std::to_string(pid));
  if (f.type != MsgType::ok) unexpected(f, "kill");
}

// ---- files ---------------------------------------------------------------------------------

void AgentChannel::upload(const std::string& path, ByteSource& src, std::uint32_t mode) {
  check_path(path);
  proto::Args a;
  a.path = path;
  a.mode = mode & 07777;
  Call call(*this);
  call.send(MsgType::write, a.encode());
  std::string buf(proto::kDataChunk, '\0');
  const auto fail_if_refused = [&](std::optional<proto::Frame> f) {
    if (!f) return;
    call.done();
    if (f->type == MsgType::error) throw_agent_error(proto::ErrorMsg::decode(f->payload), "path", path);
    unexpected(*f, "write");
  };
  while (true) {
    const std::size_t n = src.read(buf.data(), buf.size());
    if (n == 0) break;
    fail_if_refused(call.poll());  // the agent refused (no such directory, disk full): stop now
    call.send(MsgType::data, std::string_view(buf.data(), n));
  }
  call.send(MsgType::end);
  auto f = call.next(Clock::now() + kControlTimeout);
  if (!f) throw AgentError("agent at " + path_ + ": no answer to write " + path);
  call.done();
  if (f->type == MsgType::ok) return;
  fail_if_refused(std::move(f));
}

void AgentChannel::download(const std::string& path, ByteSink& sink) {
  check_path(path);
  proto::Args a;
  a.path = path;
  Call call(*this);
  call.send(MsgType::read, a.encode());
  while (true) {
    auto f = call.next(Clock::now() + kControlTimeout);
    if (!f) throw AgentError("agent at " + path_ + ": read " + path + " stalled");
    switch (f->type) {
      case MsgType::data: sink.write(f->payload); break;
      case MsgType::end: call.done(); return;
      case MsgType::error: call.done(); throw_agent_error(proto::ErrorMsg::decode(f->payload), "path", path);
      default: unexpected(*f, "read");
    }
  }
}

FileStat to_stat(proto::Entry&& e) {
  FileStat s;
  s.path = std::move(e.path);
  s.name = std::move(e.name);
  s.type = std::move(e.type);
  s.size = e.size;
  s.mode = e.mode;
  s.mtime_s = e.mtime_s;
  s.link_target = std::move(e.link_target);
  return s;
}

FileStat AgentChannel::stat(const std::string& path) {
  check_path(path);
  proto::Args a;
  a.path = path;
  Call call(*this);
  call.send(MsgType::stat, a.encode());
  auto f = call.reply("stat");
  call.done();
  if (f.type == MsgType::error) throw_agent_error(proto::ErrorMsg::decode(f.payload), "path", path);
  if (f.type != MsgType::stat_reply) unexpected(f, "stat");
  auto entries = proto::decode_entries(f.payload);
  if (entries.size() != 1) throw AgentError("agent at " + path_ + ": malformed stat answer");
  return to_stat(std::move(entries[0]));
}

std::vector<FileStat> AgentChannel::list(const std::string& path, int depth) {
  check_path(path);
  if (depth < 1) throw CapsuleValidationError("depth", "must be at least 1");
  proto::Args a;
  a.path = path;
  a.depth = depth;
  Call call(*this);
  call.send(MsgType::list, a.encode());
  std::vector<FileStat> out;
  while (true) {
    auto f = call.reply("list");
    switch (f.type) {
      case MsgType::list_entries:
        for (auto& e : proto::decode_entries(f.payload)) out.push_back(to_stat(std::move(e)));
        break;
      case MsgType::end: call.done(); return out;
      case MsgType::error: call.done(); throw_agent_error(proto::ErrorMsg::decode(f.payload), "path", path);
      default: unexpected(f, "list");
    }
  }
}

void AgentChannel::mkdir(const std::string& path, bool parents) {
  check_path(path);
  proto::Args a;
  a.path = path;
  a.parents = parents;
  Call call(*this);
  call.send(MsgType::mkdir, a.encode());
  auto f = call.reply("mkdir");
  call.done();
  if (f.type == MsgType::error) throw_agent_error(proto::ErrorMsg::decode(f.payload), "path", path);
  if (f.type != MsgType::ok) unexpected(f, "mkdir");
}

void AgentChannel::remove(const std::string& path, bool recursive) {
  check_path(path);
  proto::Args a;
  a.path = path;
  a.recursive = recursive;
  Call call(*this);
  call.send(MsgType::remove, a.encode());
  auto f = call.reply("remove");
  call.done();
  if (f.type == MsgType::error) throw_agent_error(proto::ErrorMsg::decode(f.payload), "path", path);
  if (f.type != MsgType::ok) unexpected(f, "remove");
}

AgentActivity AgentChannel::activity() {
  Call call(*this);
  call.send(MsgType::activity);
  auto f = call.reply("activity");
  call.done();
  if (f.type == MsgType::error) throw_agent_error(proto::ErrorMsg::decode(f.payload), "activity", "");
  if (f.type != MsgType::activity_reply) unexpected(f, "activity");
  const auto x = proto::Activity::decode(f.payload);
  AgentActivity a;
  a.running_processes = static_cast<int>(x.running_processes);
  a.open_streams = static_cast<int>(x.open_streams);
  a.idle_ms = x.idle_ms;
  return a;
}

bool AgentChannel::alive() {
  try {
    Call call(*this);
    call.send(MsgType::ping);
    auto f = call.next(Clock::now() + timeout_);
    if (!f) return false;
    call.done();
    return f->type == MsgType::pong;
  } catch (const std::exception&) {
    return false;
  }
}

// ---- connecting ----------------------------------------------------------------------------

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// One connection attempt: the socket, or -1 with errno.
int connect_once(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string target = path;
  std::optional<Fd> dir;
  if (path.size() >= sizeof(addr.sun_path)) {
    dir.emplace(::open(dir_part(path).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (dir->get() < 0) return -1;
    target = "/proc/self/fd/" + std::to_string(dir->get()) + "/" + base_part(path);
    if (target.size() >= sizeof(addr.sun_path)) {
      errno = ENAMETOOLONG;
      return -1;
    }
  }
  std::memcpy(addr.sun_path, target.c_str(), target.size() + 1);
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return -1;
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) return -1;
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  return fd.release();
}

// The hello exchange on a fresh connection, within the deadline.
proto::Hello say_hello(int fd, const std::string& path, Clock::time_point deadline) {
  proto::Hello h;
  const std::string frame = proto::encode_frame(MsgType::hello, 0, h.encode());
  if (::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(frame.size()))
    throw AgentError("agent at " + path + ": cannot send hello: " + errno_text(errno));
  proto::FrameDecoder dec;
  std::array<char, 4096> buf{};
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) throw AgentError("agent at " + path + ": no hello within the timeout");
    pollfd p{fd, POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 60000)));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) continue;
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n <= 0) throw AgentError("agent at " + path + ": the connection closed before hello");
    dec.feed(buf.data(), static_cast<std::size_t>(n));
    proto::Frame f;
    try {
      if (!dec.next(f)) continue;
      if (f.type != MsgType::hello || f.channel != 0)
        throw AgentError("agent at " + path + ": expected hello, got " + proto::type_name(f.type));
      auto reply = proto::Hello::decode(f.payload);
      if (reply.version != proto::kProtocolVersion)
        throw AgentError("agent at " + path + " speaks protocol version " + std::to_string(reply.version) +
                         ", this program version " + std::to_string(proto::kProtocolVersion));
      return reply;
    } catch (const proto::ProtocolError& e) {
      throw AgentError("agent at " + path + ": malformed hello: " + e.what());
    }
  }
}

}  // namespace

std::unique_ptr<ExecChannel> connect_agent(const std::string& socket_path, int expected_peer_pid,
                                           std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  int raw = -1;
  while (true) {
    raw = connect_once(socket_path);
    if (raw >= 0) break;
    const int err = errno;
    const bool starting = err == ENOENT || err == ECONNREFUSED || err == EAGAIN;
    if (!starting || Clock::now() + pause >= deadline)
      throw AgentError("cannot connect to the agent at " + socket_path + ": " + errno_text(err));
    std::this_thread::sleep_for(pause);  // the agent is still starting: retry
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
  Fd fd(raw);
  if (expected_peer_pid != 0) {
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
      throw AgentError("agent at " + socket_path + ": cannot read the peer's credentials: " + errno_text(errno));
    if (cred.pid != expected_peer_pid)
      throw AgentError("agent socket " + socket_path + ": the process listening (pid " + std::to_string(cred.pid) +
                       ") is not the capsule's agent (pid " + std::to_string(expected_peer_pid) + ")");
  }
  say_hello(fd.get(), socket_path, deadline);
  return std::make_unique<AgentChannel>(fd.release(), socket_path, timeout);
}

}  // namespace pw::capsules

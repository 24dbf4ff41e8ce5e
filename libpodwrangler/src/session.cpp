#include <podwrangler/errors.hpp>
#include <podwrangler/redact.hpp>
#include <podwrangler/sentinel.hpp>
#include <podwrangler/session.hpp>

#include "async_mutex.hpp"

#include <utility>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cmath>

namespace pw {

namespace {
constexpr auto use_aw = asio::use_awaitable_t<Executor>{};
using Clock = std::chrono::steady_clock;

std::chrono::milliseconds to_ms(double seconds) {
  if (!(seconds > 0)) return std::chrono::milliseconds(0);
  if (seconds > 1e7) seconds = 1e7;
  return std::chrono::milliseconds(static_cast<long long>(std::ceil(seconds * 1000.0)));
}
// After a timeout: how long the shell gets to answer once its command was asked to stop
// (SIGINT, Ctrl-C), and once it was made to (SIGKILL, Ctrl-\\), before it is replaced.
constexpr double kSoftGraceSeconds = 0.3;
constexpr double kHardGraceSeconds = 1.0;
// While the EXIT trap's marker is the last thing seen: how often to ask the transport
// whether the shell has really ended (a background job may keep the stream open).
constexpr auto kExitPoll = std::chrono::milliseconds(20);

// The shell's $$ from the connect round's "\x1f<pid>\x1f" (0 if absent).
long parse_shell_pid(const std::string& out) {
  std::size_t end = out.rfind('\x1f');
  if (end == std::string::npos || end == 0) return 0;
  std::size_t start = out.rfind('\x1f', end - 1);
  if (start == std::string::npos || end - start < 2 || end - start > 11) return 0;
  long pid = 0;
  for (std::size_t i = start + 1; i < end; ++i) {
    if (out[i] < '0' || out[i] > '9') return 0;
    pid = pid * 10 + (out[i] - '0');
  }
  return pid;
}
}  // namespace

struct PodSession::Impl : std::enable_shared_from_this<PodSession::Impl> {
  Impl(Executor e, PodEndpoint ep, SessionOptions o)
      : ex(e), endpoint(std::move(ep)), opts(std::move(o)), signal(e), mutex(e) {
    if (!endpoint.provider) throw PodConfigValidationError("provider", "endpoint has no provider");
    schema = endpoint.provider->build_connection_spec(endpoint.identity, endpoint.token);
  }

  Executor ex;
  PodEndpoint endpoint;
  SessionOptions opts;
  ConnectionSpec schema;
  std::shared_ptr<Connection> conn;
  std::uint64_t generation = 0;
  std::string inbox;
  bool eof = false;
  std::string read_error;
  asio::steady_timer signal;
  bool pending = false;
  detail::AsyncMutex mutex;
  bool tty = true;
  bool echo = false;
  bool ever_connected = false;
  bool closed_by_user = false;
  bool reconnect_next = false;  // the last command ended the shell on purpose (exit, exec)
  long shell_pid = 0;           // the shell's $$ as the pod sees it (0 if unknown)

  void notify() {
    pending = true;
    signal.cancel();
  }

  // Waits for new bytes (true) or the deadline (false).
  Task<bool> wait(Clock::time_point deadline) {
    if (pending) {
      pending = false;
      co_return true;
    }
    if (Clock::now() >= deadline) co_return false;
    signal.expires_at(deadline);
    boost::system::error_code ec;
    co_await signal.async_wait(asio::redirect_error(use_aw, ec));
    if (pending) {
      pending = false;
      co_return true;
    }
    co_return Clock::now() < deadline;
  }

  static Task<void> reader(std::shared_ptr<Impl> self, std::shared_ptr<Connection> c, std::uint64_t gen) {
    std::string chunk;
    try {
      while (true) {
        chunk.clear();
        bool more = co_await c->read(chunk);
        if (gen != self->generation) co_return;
        if (!chunk.empty()) self->inbox += chunk;
        if (!more) {
          self->eof = true;
          self->notify();
          co_return;
        }
        self->notify();
      }
    } catch (const std::exception& e) {
      if (gen == self->generation) {
        self->read_error = e.what();
        self->eof = true;
        self->notify();
      }
    }
  }

  void drop_connection() {
    ++generation;
    if (conn) conn->close();
    conn.reset();
    inbox.clear();
    eof = false;
    pending = false;
  }

  bool usable() const { return conn && !eof; }

  std::string lost_reason() const { return read_error.empty() ? "connection closed by " + schema_desc() : read_error; }
  std::string schema_desc() const { return conn ? conn->describe() : endpoint.identity.label(); }

  // Sends a sentinel-only payload (optionally after `prefix`) and waits for it.
  // Returns the scanner (done() false on deadline).
  Task<SentinelScanner> sync(Clock::time_point deadline, std::string prefix = {}) {
    std::string nonce = make_nonce();
    SentinelScanner sc(nonce, 1 << 20);
    inbox.clear();
    pending = false;
    co_await conn->write(prefix + frame_sync(nonce));
    while (true) {
      if (!inbox.empty()) {
        sc.feed(inbox);
        inbox.clear();
        if (sc.done()) co_return sc;
      }
      if (eof) throw PodConnectionError(lost_reason());
      if (!co_await wait(deadline)) co_return sc;
    }
  }

  Task<void> connect_once() {
    drop_connection();
    auto c = std::shared_ptr<Connection>(endpoint.provider->open(ex, schema));
    auto deadline = Clock::now() + to_ms(opts.connect_timeout);
    co_await c->connect(to_ms(opts.connect_timeout));
    conn = c;
    read_error.clear();
    auto gen = ++generation;
    asio::co_spawn(ex, reader(shared_from_this(), c, gen), asio::detached);
    try {
      co_await endpoint.provider->init_shell(*c, schema);
      // First round: learn the shell's pid, test for a terminal and wait until the
      // preamble has run. Prompts go too: a shell prints its prompt after a command's
      // sentinel, and on a terminal the echo of the next command can arrive before it, so
      // a prompt would land in that command's output.
      tty = c->is_tty();
      SentinelScanner first = co_await sync(
          deadline,
          exit_trap() +
              "PS1='' PS2='' PROMPT_COMMAND=''; \\command \\printf '\\037%d\\037' \"$$\"; test -t 1 2>/dev/null; ");
      if (!first.done())
        throw PodConnectionError("shell on " + c->describe() + " did not answer within " +
                                 std::to_string(opts.connect_timeout) + "s");
      tty = first.exit_code() == 0;
      shell_pid = parse_shell_pid(first.output());
      // Second round: anything before the sentinel now is an echo of our input.
      SentinelScanner second = co_await sync(deadline);
      if (!second.done()) throw PodConnectionError("shell on " + c->describe() + " stopped answering");
      echo = second.output().find("PW") != std::string::npos;
    } catch (...) {
      drop_connection();
      throw;
    }
    ever_connected = true;
    closed_by_user = false;
    reconnect_next = false;
  }

  Task<void> connect() {
    int attempts = 1 + (opts.auto_reconnect ? std::max(0, opts.max_reconnect_attempts) : 0);
    std::string last;
    for (int i = 0; i < attempts; ++i) {
      if (i > 0) {
        asio::steady_timer t(ex, to_ms(opts.reconnect_backoff_base * std::pow(2.0, i - 1)));
        boost::system::error_code ec;
        co_await t.async_wait(asio::redirect_error(use_aw, ec));
      }
      try {
        co_await connect_once();
        co_return;
      } catch (const PodConnectionError& e) {
        last = e.reason();
      }
    }
    if (attempts > 1) last += " (after " + std::to_string(attempts) + " attempts)";
    throw PodConnectionError(last);
  }

  // After a timeout: interrupt the command and resync with the same shell (true), or,
  // where the command cannot be reached or does not stop, replace the shell (false).
  Task<bool> recover() {
    if (usable()) {
      auto c = conn;
      try {
        for (int stage = 0; stage < 2; ++stage) {
          bool hard = stage == 1;
          bool sent =
              co_await endpoint.provider->interrupt(*c, endpoint.identity, endpoint.token, shell_pid, tty, hard);
          if (!sent || !usable() || conn != c) break;
          SentinelScanner sc = co_await sync(Clock::now() + to_ms(hard ? kHardGraceSeconds : kSoftGraceSeconds));
          if (sc.done()) co_return true;
        }
      } catch (const PodClientError&) {
      }
    }
    drop_connection();
    try {
      co_await connect();
    } catch (const PodClientError&) {
      // Left disconnected; the next run reconnects or reports it.
    }
    co_return false;
  }

  Task<CommandResult> run_locked(std::string command, double timeout) {
    if (!usable()) {
      if (closed_by_user || !ever_connected) throw PodNotConnectedError();
      // A shell the last command ended on purpose is replaced silently; a lost
      // connection only with auto_reconnect.
      if (!reconnect_next && !opts.auto_reconnect) {
        std::string why = lost_reason();
        drop_connection();
        throw PodNotConnectedError("session is not connected (connection lost: " + why + ")");
      }
      co_await connect();
    }
    auto start = Clock::now();
    std::string nonce = make_nonce();
    std::string payload = frame_command(command, nonce);
    SentinelScanner sc(nonce, opts.max_output_bytes);
    inbox.clear();
    pending = false;
    co_await conn->write(payload);
    auto deadline = start + to_ms(timeout);
    while (true) {
      if (!inbox.empty()) {
        sc.feed(inbox);
        inbox.clear();
        if (sc.done()) break;
      }
      if (eof) {
        // The EXIT trap's marker right before the end: the command ended the shell.
        if (sc.finish_at_end(conn ? conn->exit_status() : std::nullopt)) break;
        std::string why = lost_reason();
        conn.reset();
        throw PodConnectionError("connection lost while running '" + shown_command(command) + "': " + why);
      }
      auto until = deadline;
      if (sc.exit_pending()) {
        // The marker is trusted only once the shell has really gone; a job it left
        // behind may hold the stream open, so ask the transport too.
        if (auto status = conn->exit_status()) {
          sc.finish_at_end(status);
          break;
        }
        until = std::min(deadline, Clock::now() + kExitPoll);
      }
      bool got = co_await wait(until);
      if (!got && Clock::now() >= deadline) {
        std::string partial = sc.output();
        bool kept = co_await recover();
        throw PodCommandTimeoutError(command, timeout, strip_echo(std::move(partial), payload), !kept);
      }
    }
    if (sc.shell_exited()) {
      // The command ended the shell (exit, exec …): its status is known; the next
      // command gets a fresh shell.
      drop_connection();
      reconnect_next = true;
    }
    CommandResult r;
    r.command = std::move(command);
    r.output = strip_echo(sc.take_output(), payload);
    r.exit_code = sc.exit_code();
    r.truncated = sc.truncated();
    r.session_reset = sc.shell_exited();
    r.duration = std::chrono::duration<double>(Clock::now() - start).count();
    r.pod_label = endpoint.identity.label();
    co_return r;
  }

  std::string strip_echo(std::string out, const std::string& payload) const {
    if (!echo) return out;
    // The echo of the payload's final newline: "\n", "\r\n" (output processing) or "^J"
    // (ECHOCTL on a terminal without a line editor).
    std::string_view body(payload);
    if (!body.empty() && body.back() == '\n') body.remove_suffix(1);
    if (!std::string_view(out).starts_with(body)) return out;
    std::string_view rest = std::string_view(out).substr(body.size());
    for (std::string_view eol : {std::string_view("\r\n"), std::string_view("\n"), std::string_view("^J")})
      if (rest.starts_with(eol)) return std::string(rest.substr(eol.size()));
    return out;
  }
};

PodSession::PodSession(Executor ex, PodEndpoint endpoint, SessionOptions options)
    : impl_(std::make_shared<Impl>(ex, std::move(endpoint), std::move(options))) {}

PodSession PodSession::from_url(Executor ex, std::string_view url, std::shared_ptr<ProviderInterface> provider,
                                SessionOptions options) {
  return PodSession(ex, endpoint_from_url(url, std::move(provider)), std::move(options));
}

PodSession::~PodSession() {
  if (!impl_) return;
  // Close on the session's executor: the reader coroutine lives there.
  asio::post(impl_->ex, [impl = impl_] {
    impl->closed_by_user = true;
    impl->drop_connection();
  });
}

PodSession::PodSession(PodSession&&) noexcept = default;
PodSession& PodSession::operator=(PodSession&& o) noexcept {
  if (this != &o) {
    PodSession tmp(std::move(*this));
    impl_ = std::move(o.impl_);
  }
  return *this;
}

Task<void> PodSession::connect() {
  auto impl = impl_;
  detail::AsyncMutex::Guard g = co_await impl->mutex.lock();
  co_await impl->connect();
}

Task<void> PodSession::close() {
  auto impl = impl_;
  detail::AsyncMutex::Guard g = co_await impl->mutex.lock();
  impl->closed_by_user = true;
  impl->drop_connection();
}

void PodSession::abort() noexcept {
  auto& impl = *impl_;
  impl.closed_by_user = true;
  if (!impl.conn) return;
  impl.read_error = "the session was aborted";
  impl.conn->close();
  impl.eof = true;
  impl.notify();
}

bool PodSession::connected() const noexcept { return impl_ && impl_->usable(); }

Task<CommandResult> PodSession::run(std::string command, std::optional<double> timeout, bool check) {
  auto impl = impl_;
  double t = timeout.value_or(impl->opts.command_timeout);
  if (!(t > 0)) throw PodConfigValidationError("timeout", "must be a positive number of seconds");
  CommandResult r;
  {
    detail::AsyncMutex::Guard g = co_await impl->mutex.lock();
    r = co_await impl->run_locked(std::move(command), t);
  }
  if (check && r.exit_code != 0) throw PodCommandError(r.command, r.exit_code, r.output);
  co_return r;
}

Task<CommandResult> PodSession::try_run(std::string command, std::optional<double> timeout) {
  CommandResult r;
  r.command = command;
  r.pod_label = label();
  auto start = Clock::now();
  try {
    co_return co_await run(std::move(command), timeout, false);
  } catch (const PodCommandTimeoutError& e) {
    r.output = e.output();
    r.error = e.what();
    r.session_reset = e.session_reset();
  } catch (const PodClientError& e) {
    r.error = e.what();
  }
  r.duration = std::chrono::duration<double>(Clock::now() - start).count();
  co_return r;
}

Task<std::vector<CommandResult>> PodSession::run_many(std::vector<std::string> commands,
                                                      std::optional<double> timeout_each, bool stop_on_error) {
  std::vector<CommandResult> out;
  out.reserve(commands.size());
  for (auto& c : commands) {
    out.push_back(co_await try_run(std::move(c), timeout_each));
    if (stop_on_error && !out.back().succeeded()) break;
  }
  co_return out;
}

Task<std::string> PodSession::detect_namespace() {
  auto impl = impl_;
  if (!impl->opts.namespace_.empty()) co_return impl->opts.namespace_;
  if (!impl->endpoint.identity.namespace_.empty()) co_return impl->endpoint.identity.namespace_;
  if (!impl->usable()) throw PodNotConnectedError();
  co_return co_await impl->endpoint.provider->detect_namespace(*impl->conn, impl->endpoint.identity, impl->schema);
}

const PodEndpoint& PodSession::endpoint() const noexcept { return impl_->endpoint; }
const SessionOptions& PodSession::options() const noexcept { return impl_->opts; }
std::string PodSession::label() const { return impl_->endpoint.identity.label(); }

}  // namespace pw

#include <podwrangler/errors.hpp>
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
constexpr double kRecoverSeconds = 2.0;  // how long an interrupted shell gets to answer
}  // namespace

struct PodSession::Impl : std::enable_shared_from_this<PodSession::Impl> {
  Impl(Executor e, PodEndpoint ep, SessionOptions o)
      : ex(e), endpoint(std::move(ep)), opts(std::move(o)), signal(e), mutex(e) {
    if (!endpoint.provider) throw PodConfigValidationError("provider", "endpoint has no provider");
    schema = endpoint.provider->build_wss_schema(endpoint.identity, endpoint.token);
  }

  Executor ex;
  PodEndpoint endpoint;
  SessionOptions opts;
  WssSchema schema;
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

  static Task<void> reader(std::shared_ptr<Impl> self, std::shared_ptr<Connection> c,
                           std::uint64_t gen) {
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

  std::string lost_reason() const {
    return read_error.empty() ? "connection closed by " + schema_desc() : read_error;
  }
  std::string schema_desc() const { return conn ? conn->describe() : endpoint.identity.label(); }

  // Sends a sentinel-only payload (optionally after `prefix`) and waits for it.
  // Returns the scanner (done() false on deadline).
  Task<SentinelScanner> sync(Clock::time_point deadline, std::string prefix = {}) {
    std::string nonce = make_nonce();
    SentinelScanner sc(nonce, 1 << 20, tty);
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
      // First round: test for a terminal and wait until the preamble has run.
      tty = c->is_tty();
      SentinelScanner first = co_await sync(deadline, exit_trap() + "test -t 1 2>/dev/null; ");
      if (!first.done())
        throw PodConnectionError("shell on " + c->describe() + " did not answer within " +
                                 std::to_string(opts.connect_timeout) + "s");
      tty = first.exit_code() == 0;
      // Second round: anything before the sentinel now is an echo of our input.
      SentinelScanner second = co_await sync(deadline);
      if (!second.done())
        throw PodConnectionError("shell on " + c->describe() + " stopped answering");
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

  // After a timeout: interrupt the command and resync, or replace the connection.
  Task<void> recover() {
    if (usable() && tty) {
      try {
        auto deadline = Clock::now() + to_ms(kRecoverSeconds);
        SentinelScanner sc = co_await sync(deadline, "\x03");
        if (sc.done()) co_return;
      } catch (const PodClientError&) {
      }
    }
    drop_connection();
    try {
      co_await connect();
    } catch (const PodClientError&) {
      // Left disconnected; the next run reconnects or reports it.
    }
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
    SentinelScanner sc(nonce, opts.max_output_bytes, tty);
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
        std::string why = lost_reason();
        conn.reset();
        throw PodConnectionError("connection lost while running '" + shown_command(command) + "': " + why);
      }
      if (!co_await wait(deadline)) {
        std::string partial = sc.output();
        co_await recover();
        throw PodCommandTimeoutError(command, timeout, strip_echo(std::move(partial), payload));
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
    r.duration = std::chrono::duration<double>(Clock::now() - start).count();
    r.pod_label = endpoint.identity.label();
    co_return r;
  }

  std::string strip_echo(std::string out, const std::string& payload) const {
    if (!echo) return out;
    if (out.starts_with(payload)) return out.substr(payload.size());
    return out;
  }
};

PodSession::PodSession(Executor ex, PodEndpoint endpoint, SessionOptions options)
    : impl_(std::make_shared<Impl>(ex, std::move(endpoint), std::move(options))) {}

PodSession PodSession::from_url(Executor ex, std::string_view url,
                                std::shared_ptr<ProviderSpec> provider, SessionOptions options) {
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
  } catch (const PodClientError& e) {
    r.error = e.what();
  }
  r.duration = std::chrono::duration<double>(Clock::now() - start).count();
  co_return r;
}

Task<std::vector<CommandResult>> PodSession::run_many(std::vector<std::string> commands,
                                                      std::optional<double> timeout_each,
                                                      bool stop_on_error) {
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
  co_return co_await impl->endpoint.provider->detect_namespace(*impl->conn, impl->endpoint.identity,
                                                               impl->schema);
}

const PodEndpoint& PodSession::endpoint() const noexcept { return impl_->endpoint; }
const SessionOptions& PodSession::options() const noexcept { return impl_->opts; }
std::string PodSession::label() const { return impl_->endpoint.identity.label(); }

}  // namespace pw

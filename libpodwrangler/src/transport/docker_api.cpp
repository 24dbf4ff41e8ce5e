// Docker Engine API client with Boost.Beast HTTP over a unix socket, TCP or TLS.
#include "docker_api.hpp"
#include "cloexec.hpp"
#include "tls_socket.hpp"

#include <podwrangler/errors.hpp>
#include <podwrangler/redact.hpp>

#include <utility>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <limits>
#include <optional>

namespace pw::transport {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
constexpr auto use_aw = asio::use_awaitable_t<Executor>{};

// The byte stream to the engine: a unix socket, a TCP socket, or TLS over TCP. Beast's
// reads and writes go to whichever is in use (an AsyncReadStream and AsyncWriteStream).
class EngineStream {
 public:
  using executor_type = Executor;
  explicit EngineStream(const Executor& ex) : ex_(ex), unix_(ex) {}
  executor_type get_executor() { return ex_; }

  local::socket& unix_socket() { return unix_; }
  void use_tcp(tcp::socket s) { tcp_.emplace(std::move(s)); }
  TlsSocket& use_tls(tcp::socket s, SSL* ssl) {
    tls_ = std::make_unique<TlsSocket>(std::move(s), ssl);
    return *tls_;
  }

  template <class Buffers, class Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, const Buffers& b) {
          if (tls_)
            tls_->async_read_some(b, std::move(handler));
          else if (tcp_)
            tcp_->async_read_some(b, std::move(handler));
          else
            unix_.async_read_some(b, std::move(handler));
        },
        token, buffers);
  }

  template <class Buffers, class Token>
  auto async_write_some(const Buffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, const Buffers& b) {
          if (tls_)
            tls_->async_write_some(b, std::move(handler));
          else if (tcp_)
            tcp_->async_write_some(b, std::move(handler));
          else
            unix_.async_write_some(b, std::move(handler));
        },
        token, buffers);
  }

  // The end of what we send (stdin EOF). Under TLS the TCP side is shut down, as the docker
  // CLI does for a hijacked TLS connection.
  void shutdown_send() {
    error_code ec;
    if (tls_)
      tls_->next_layer().shutdown(tcp::socket::shutdown_send, ec);
    else if (tcp_)
      tcp_->shutdown(tcp::socket::shutdown_send, ec);
    else
      unix_.shutdown(local::socket::shutdown_send, ec);
  }

  void close() {
    error_code ec;
    if (tls_) tls_->close(ec);
    if (tcp_) tcp_->close(ec);
    unix_.close(ec);
  }

 private:
  Executor ex_;
  local::socket unix_;
  std::optional<tcp::socket> tcp_;
  std::unique_ptr<TlsSocket> tls_;
};

// A stream plus a deadline that closes it. The timer's handler holds only a weak_ptr, and
// a generation number so that an expiry queued just before disarm() or a new arm() is void.
struct TimedStream : std::enable_shared_from_this<TimedStream> {
  explicit TimedStream(const Executor& ex) : stream(ex), timer(ex) {}
  EngineStream stream;
  asio::steady_timer timer;
  bool timed_out = false;
  unsigned generation = 0;

  void arm(std::chrono::milliseconds timeout) {
    timer.expires_after(timeout);
    timer.async_wait([w = weak_from_this(), g = ++generation](error_code ec) {
      auto self = w.lock();
      if (ec || !self || self->generation != g) return;
      self->timed_out = true;
      self->stream.close();
    });
  }
  void disarm() {
    ++generation;
    timer.cancel();
  }
};

std::string docker_message(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) return j["message"].get<std::string>();
  return body.substr(0, 200);
}

Task<void> connect_stream(TimedStream& ts, const DockerEndpoint& ep, std::chrono::steady_clock::time_point deadline) {
  if (!ep.socket_path.empty()) {
    error_code ec;
    open_cloexec(ts.stream.unix_socket(), local(), ec);
    if (!ec)
      co_await ts.stream.unix_socket().async_connect(local::endpoint(ep.socket_path), asio::redirect_error(use_aw, ec));
    if (ec)
      throw PodConnectionError("cannot reach the Docker daemon at " + ep.host + ": " +
                               (ts.timed_out ? std::string("timed out") : ec.message()) + " (is dockerd running?)");
    co_return;
  }
  std::string where = "the Docker daemon at " + ep.host;
  tcp::socket sock = co_await connect_tcp(ep.tcp_host, ep.tcp_port, deadline, where);
  if (!ep.tls) {
    ts.stream.use_tcp(std::move(sock));
    co_return;
  }
  auto ctx = client_tls_context(ep.tls_options, ep.cert_file, ep.key_file);
  SSL* ssl = SSL_new(ctx->native_handle());
  if (!ssl) throw PodConnectionError("cannot create a TLS session for " + where);
  TlsSocket& tls = ts.stream.use_tls(std::move(sock), ssl);
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  co_await tls_client_handshake(tls, ep.tcp_host, ep.tls_options, std::max(left, std::chrono::milliseconds(1)), where);
}

void set_common_fields(http::request_header<>& req, const std::string& content_type, bool has_body) {
  req.set(http::field::host, "api.moby.localhost");  // the daemon wants a Host without '/'
  req.set(http::field::user_agent, "podwrangler");
  if (has_body) req.set(http::field::content_type, content_type);
}

template <class Body>
http::request<Body> make_request(http::verb verb, const std::string& target, std::string body) {
  http::request<Body> req{verb, target, 11};
  set_common_fields(req, "application/json", !body.empty());
  if (!body.empty()) req.body() = std::move(body);
  req.prepare_payload();
  return req;
}

Task<HttpReply> request_on(TimedStream& ts, const std::string& host, http::verb verb, const std::string& target,
                           std::string body) {
  auto req = make_request<http::string_body>(verb, target, std::move(body));
  error_code ec;
  co_await http::async_write(ts.stream, req, asio::redirect_error(use_aw, ec));
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  if (!ec) co_await http::async_read(ts.stream, buf, res, asio::redirect_error(use_aw, ec));
  if (ec) {
    if (ts.timed_out) throw PodConnectionError("Docker daemon at " + host + " did not answer in time");
    throw PodConnectionError("Docker API request to " + host + " failed: " + ec.message());
  }
  co_return HttpReply{static_cast<int>(res.result_int()), std::move(res.body()), {}};
}

std::string exec_create_body(const DockerExecSpec& spec, bool stdin_attached) {
  nlohmann::json j{{"AttachStdin", stdin_attached},
                   {"AttachStdout", true},
                   {"AttachStderr", true},
                   {"Tty", false},
                   {"Cmd", spec.argv}};
  if (!spec.user.empty()) j["User"] = spec.user;
  return j.dump();
}

[[noreturn]] void throw_exec_create_failure(const DockerExecSpec& spec, const HttpReply& r) {
  std::string msg = docker_message(r.body);
  if (r.status == 404)
    throw PodConnectionError("container '" + spec.container + "' not found on " + spec.host + " (" + msg + ")");
  if (r.status == 409) throw PodConnectionError("container '" + spec.container + "' is not running (" + msg + ")");
  throw PodConnectionError("Docker exec in '" + spec.container + "' failed: HTTP " + std::to_string(r.status) + ": " +
                           msg);
}

DockerEndpoint unix_endpoint(const DockerExecSpec& spec) {
  DockerEndpoint ep;
  ep.host = spec.host;
  ep.socket_path = spec.socket_path;
  return ep;
}

// Creates and starts an exec; on return `ts.stream` is the raw multiplexed stream and
// `rest` holds bytes already read past the upgrade response.
Task<std::string> start_exec(TimedStream& ts, const DockerExecSpec& spec, bool stdin_attached, std::string& rest) {
  DockerEndpoint ep = unix_endpoint(spec);
  co_await connect_stream(ts, ep, std::chrono::steady_clock::time_point::max());
  HttpReply created =
      co_await request_on(ts, spec.host, http::verb::post, "/v1.41/containers/" + spec.container + "/exec",
                          exec_create_body(spec, stdin_attached));
  if (created.status != 201) throw_exec_create_failure(spec, created);
  auto cj = nlohmann::json::parse(created.body, nullptr, false);
  if (!cj.is_object() || !cj.contains("Id") || !cj["Id"].is_string())
    throw PodConnectionError("Docker exec create returned no Id");
  std::string exec_id = cj["Id"].get<std::string>();
  auto req = make_request<http::string_body>(http::verb::post, "/v1.41/exec/" + exec_id + "/start",
                                             R"({"Detach":false,"Tty":false})");
  req.set(http::field::connection, "Upgrade");
  req.set(http::field::upgrade, "tcp");
  error_code ec;
  co_await http::async_write(ts.stream, req, asio::redirect_error(use_aw, ec));
  beast::flat_buffer buf;
  http::response_parser<http::empty_body> parser;
  parser.skip(true);  // 101/200 without length: the body is the raw stream
  if (!ec) co_await http::async_read_header(ts.stream, buf, parser, asio::redirect_error(use_aw, ec));
  if (ec) throw PodConnectionError("Docker exec start in '" + spec.container + "' failed: " + ec.message());
  int status = static_cast<int>(parser.get().result_int());
  if (status != 101 && status != 200)
    throw PodConnectionError("Docker exec start in '" + spec.container + "' failed: HTTP " + std::to_string(status));
  auto data = buf.data();
  rest.assign(static_cast<const char*>(data.data()), data.size());
  co_return exec_id;
}

class DockerExecConnection final : public Connection {
 public:
  DockerExecConnection(Executor ex, DockerExecSpec spec)
      : ex_(ex), spec_(std::move(spec)), ts_(std::make_shared<TimedStream>(ex)) {}

  Task<void> connect(std::chrono::milliseconds timeout) override {
    ts_->arm(timeout);
    try {
      exec_id_ = co_await start_exec(*ts_, spec_, true, pending_);
    } catch (...) {
      ts_->disarm();
      throw;
    }
    ts_->disarm();
    if (ts_->timed_out) throw PodConnectionError("Docker exec in '" + spec_.container + "' timed out");
    open_ = true;
  }

  Task<void> write(std::string_view data) override {
    if (!open_) throw PodNotConnectedError();
    error_code ec;
    co_await asio::async_write(ts_->stream, asio::buffer(data.data(), data.size()), asio::redirect_error(use_aw, ec));
    if (ec) throw PodConnectionError("write to container '" + spec_.container + "' failed: " + ec.message());
  }

  Task<bool> read(std::string& out) override {
    while (true) {
      if (!pending_.empty()) {
        std::string chunk = std::move(pending_);
        pending_.clear();
        if (!demux_.feed(chunk, out, nullptr))
          throw PodConnectionError("malformed stream from container '" + spec_.container + "'");
        if (!out.empty()) co_return true;
      }
      if (!open_) co_return false;
      char buf[16384];
      error_code ec;
      std::size_t n = co_await ts_->stream.async_read_some(asio::buffer(buf), asio::redirect_error(use_aw, ec));
      if (n > 0) pending_.append(buf, n);
      if (ec) {
        open_ = false;
        if (!pending_.empty()) continue;
        if (ec == asio::error::eof || ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor)
          co_return false;
        throw PodConnectionError("connection to container '" + spec_.container + "' lost: " + ec.message());
      }
    }
  }

  void close() noexcept override {
    open_ = false;
    ts_->stream.close();
  }
  bool is_tty() const noexcept override { return false; }
  std::string describe() const override { return "container '" + spec_.container + "' on " + spec_.host; }

 private:
  Executor ex_;
  DockerExecSpec spec_;
  std::shared_ptr<TimedStream> ts_;
  std::string exec_id_;
  std::string pending_;
  docker::Demux demux_;
  bool open_ = false;
};

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A raw stream that ends without a clean close (TLS without close_notify, a reset) after
// the daemon finished the exec still ends it: the exit code comes from exec inspect.
bool ends_stream(const error_code& ec) {
  if (ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
      ec == asio::error::bad_descriptor)
    return true;
  return &ec.category() == &tls_category() &&
         ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

DockerEndpoint parse_docker_endpoint(std::string_view host, bool tls) {
  auto bad = [&](const std::string& why) -> PodConfigValidationError {
    return PodConfigValidationError("host", why + " in '" + redact_url(std::string(host)) +
                                                "' (expected unix:///path/to/docker.sock or tcp://HOST:PORT)");
  };
  DockerEndpoint ep;
  ep.host = std::string(host);
  if (host.starts_with("unix://")) {
    std::string_view path = host.substr(7);
    if (path.empty() || path[0] != '/') throw bad("the socket path must be absolute");
    ep.socket_path = std::string(path);
    return ep;
  }
  if (!host.starts_with("tcp://")) throw bad("unsupported scheme");
  std::string_view rest = host.substr(6);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty() || rest.find_first_of("/?#@") != std::string_view::npos) throw bad("expected HOST[:PORT] only");
  std::string_view port;
  if (rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos) throw bad("unclosed '[' of an IPv6 address");
    ep.tcp_host = std::string(rest.substr(1, close - 1));
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') throw bad("junk after the IPv6 address");
      port = after.substr(1);
      if (port.empty()) throw bad("empty port");
    }
  } else {
    auto colon = rest.rfind(':');
    ep.tcp_host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = rest.substr(colon + 1);
      if (port.empty()) throw bad("empty port");
    }
  }
  if (ep.tcp_host.empty()) throw bad("missing host");
  if (!port.empty()) {
    if (!all_digits(port) || port.size() > 5 || std::stoi(std::string(port)) < 1 ||
        std::stoi(std::string(port)) > 65535)
      throw bad("port must be 1-65535");
    ep.tcp_port = std::string(port);
  } else {
    ep.tcp_port = tls ? "2376" : "2375";
  }
  ep.tls = tls;
  return ep;
}

Task<HttpReply> docker_request(std::string socket_path, std::string method, std::string target, std::string body,
                               std::chrono::milliseconds timeout) {
  auto ex = co_await asio::this_coro::executor;
  auto ts = std::make_shared<TimedStream>(ex);
  DockerEndpoint ep;
  ep.host = "unix://" + socket_path;
  ep.socket_path = socket_path;
  ts->arm(timeout);
  co_await connect_stream(*ts, ep, std::chrono::steady_clock::now() + timeout);
  HttpReply r = co_await request_on(*ts, ep.host, http::string_to_verb(method), target, std::move(body));
  ts->disarm();
  co_return r;
}

std::unique_ptr<Connection> make_docker_exec_connection(Executor ex, DockerExecSpec spec) {
  return std::make_unique<DockerExecConnection>(ex, std::move(spec));
}

Task<ExecOutput> docker_exec_once(DockerExecSpec spec, double timeout) {
  auto ex = co_await asio::this_coro::executor;
  auto ts = std::make_shared<TimedStream>(ex);
  ts->arm(std::chrono::milliseconds(static_cast<long long>(timeout * 1000)));
  std::string pending;
  ExecOutput out;
  std::string exec_id = co_await start_exec(*ts, spec, false, pending);
  docker::Demux demux;
  char buf[16384];
  while (true) {
    if (!pending.empty()) {
      if (!demux.feed(pending, out.stdout_text, &out.stderr_text))
        throw PodConnectionError("malformed stream from container '" + spec.container + "'");
      pending.clear();
    }
    error_code ec;
    std::size_t n = co_await ts->stream.async_read_some(asio::buffer(buf), asio::redirect_error(use_aw, ec));
    if (n > 0) pending.append(buf, n);
    if (ec) {
      if (!pending.empty()) demux.feed(pending, out.stdout_text, &out.stderr_text);
      if (ts->timed_out)
        throw PodCommandTimeoutError(spec.argv.empty() ? std::string() : spec.argv.back(), timeout, out.stdout_text);
      if (ec != asio::error::eof)
        throw PodConnectionError("connection to container '" + spec.container + "' lost: " + ec.message());
      break;
    }
  }
  ts->disarm();
  HttpReply inspect = co_await docker_request(spec.socket_path, "GET", "/v1.41/exec/" + exec_id + "/json", "",
                                              std::chrono::seconds(10));
  auto j = nlohmann::json::parse(inspect.body, nullptr, false);
  if (inspect.status != 200 || !j.is_object() || !j.contains("ExitCode") || !j["ExitCode"].is_number_integer())
    throw PodConnectionError("Docker exec inspect failed: HTTP " + std::to_string(inspect.status));
  out.exit_code = j["ExitCode"].get<int>();
  co_return out;
}

// ---- DockerConnection ----------------------------------------------------------------------

struct DockerConnection::Impl {
  explicit Impl(DockerEndpoint e) : ep(std::move(e)) {}

  DockerEndpoint ep;
  asio::io_context ctx{1};  // declared before everything bound to it, destroyed after
  std::shared_ptr<TimedStream> ts = std::make_shared<TimedStream>(ctx.get_executor());
  beast::flat_buffer buf;
  std::optional<http::response_parser<http::buffer_body>> parser;
  bool connected = false;
  bool body_done = true;
  bool early_answer = false;  // answered before the request was sent whole: not reusable
  bool upgraded = false;

  // The raw stream after an upgrade: one read in flight at a time, its own timer.
  std::string raw_leftover;
  std::vector<char> raw_buf = std::vector<char>(std::size_t{64} * 1024);
  bool read_in_flight = false;
  bool read_done = false;
  error_code read_ec;
  std::size_t read_n = 0;
  bool raw_eof = false;
  asio::steady_timer raw_timer{ctx};
  unsigned raw_generation = 0;
  bool raw_timer_fired = false;
  std::string wdata;
  bool wclose = false;

  // Runs the io_context on this thread until `done`.
  void drive(const bool& done) {
    ctx.restart();
    while (!done)
      if (ctx.run_one() == 0)
        throw PodConnectionError("Docker API connection to " + ep.host + ": nothing left to wait for");
  }

  template <class T>
  T run(Task<T> task) {
    std::exception_ptr err;
    bool done = false;
    if constexpr (std::is_void_v<T>) {
      asio::co_spawn(ctx, std::move(task), [&](std::exception_ptr e) {
        err = e;
        done = true;
      });
      drive(done);
      if (err) std::rethrow_exception(err);
    } else {
      std::optional<T> out;
      asio::co_spawn(ctx, std::move(task), [&](std::exception_ptr e, T v) {
        err = e;
        if (!e) out.emplace(std::move(v));
        done = true;
      });
      drive(done);
      if (err) std::rethrow_exception(err);
      return std::move(*out);
    }
  }

  // (Inside a task: the caller of run() resets the connection.)
  [[noreturn]] void fail(const std::string& what, const error_code& ec) {
    if (ts->timed_out)
      throw PodConnectionError("Docker daemon at " + ep.host + " did not answer in time (" + what + ")");
    throw PodConnectionError("Docker API " + what + " to " + ep.host + " failed: " + ec.message());
  }

  // Closes the stream and forgets the connection's state; the next send() reconnects.
  void reset() noexcept {
    ts->disarm();
    ts->stream.close();
    try {
      ctx.restart();
      ctx.poll();  // the handlers of cancelled operations, while what they point to exists
    } catch (...) {
    }
    ts = std::make_shared<TimedStream>(ctx.get_executor());
    buf.clear();
    parser.reset();
    connected = upgraded = raw_eof = read_in_flight = read_done = early_answer = false;
    body_done = true;
    raw_leftover.clear();
  }

  Task<HttpReply> send_task(const Request& req, std::chrono::milliseconds idle) {
    ts->arm(idle);
    if (!connected) {
      co_await connect_stream(*ts, ep, std::chrono::steady_clock::now() + idle);
      connected = true;
    }
    error_code ec;
    http::verb verb = http::string_to_verb(req.method);
    if (req.source) {
      http::request<http::buffer_body> r{verb, req.target, 11};
      set_common_fields(r, req.content_type, true);
      r.chunked(true);
      r.body().data = nullptr;
      r.body().more = true;
      http::request_serializer<http::buffer_body> sr{r};
      co_await http::async_write_header(ts->stream, sr, asio::redirect_error(use_aw, ec));
      std::vector<char> chunk(std::size_t{64} * 1024);
      while (!ec) {
        std::size_t n = req.source(chunk.data(), chunk.size());
        ts->arm(idle);
        r.body().data = n ? chunk.data() : nullptr;
        r.body().size = n;
        r.body().more = n > 0;
        co_await http::async_write(ts->stream, sr, asio::redirect_error(use_aw, ec));
        if (ec == http::error::need_buffer) ec = {};
        if (n == 0) break;
      }
    } else {
      http::request<http::string_body> r{verb, req.target, 11};
      set_common_fields(r, req.content_type, !req.body.empty());
      r.body() = req.body;
      r.prepare_payload();
      if (req.upgrade) {
        r.set(http::field::connection, "Upgrade");
        r.set(http::field::upgrade, "tcp");
      }
      co_await http::async_write(ts->stream, r, asio::redirect_error(use_aw, ec));
    }
    // The engine may answer before it has read the whole body (a 404 for a missing
    // directory) and close: its answer is then the one to return.
    bool write_failed = ec && !ts->timed_out;
    if (ec && !write_failed) fail(req.method + " " + req.target, ec);
    error_code write_ec = ec;
    ec = {};
    parser.emplace();
    // No limit (read_body_all has its own). Not boost::none: Boost 1.74 compares the
    // Content-Length with the optional, and every length is "greater" than none.
    parser->body_limit(std::numeric_limits<std::uint64_t>::max());
    if (verb == http::verb::head) parser->skip(true);
    co_await http::async_read_header(ts->stream, buf, *parser, asio::redirect_error(use_aw, ec));
    if (ec) fail(req.method + " " + req.target, write_failed ? write_ec : ec);
    ts->disarm();
    HttpReply reply;
    reply.status = static_cast<int>(parser->get().result_int());
    for (const auto& f : parser->get())
      reply.headers[lower({f.name_string().data(), f.name_string().size()})] = std::string(f.value());
    if (req.upgrade && reply.status == 101) {
      upgraded = true;
      body_done = true;
      auto data = buf.data();
      raw_leftover.assign(static_cast<const char*>(data.data()), data.size());
      buf.consume(buf.size());
    } else {
      body_done = parser->is_done();
    }
    if (write_failed) early_answer = true;
    co_return reply;
  }

  Task<std::size_t> read_body_task(char* p, std::size_t n, std::chrono::milliseconds idle) {
    ts->arm(idle);
    std::size_t got = 0;
    while (got == 0 && !parser->is_done()) {
      parser->get().body().data = p;
      parser->get().body().size = n;
      error_code ec;
      co_await http::async_read_some(ts->stream, buf, *parser, asio::redirect_error(use_aw, ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) fail("response body", ec);
      got = n - parser->get().body().size;
    }
    ts->disarm();
    body_done = parser->is_done();
    co_return got;
  }

  RawRead take_raw(std::string& out) {
    read_in_flight = false;
    read_done = false;
    out.append(raw_buf.data(), read_n);
    if (read_ec) {
      if (!ends_stream(read_ec))
        throw PodConnectionError("connection to the Docker daemon at " + ep.host + " lost: " + read_ec.message());
      raw_eof = true;
    }
    return read_n > 0 ? RawRead::data : RawRead::eof;
  }
};

DockerConnection::DockerConnection(DockerEndpoint endpoint) : impl_(std::make_unique<Impl>(std::move(endpoint))) {}

DockerConnection::~DockerConnection() { close(); }

const DockerEndpoint& DockerConnection::endpoint() const noexcept { return impl_->ep; }

void DockerConnection::connect(Clock::time_point deadline) {
  if (impl_->connected) return;
  auto& d = *impl_;
  try {
    d.ts->arm(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    d.run(connect_stream(*d.ts, d.ep, deadline));
    d.ts->disarm();
    d.connected = true;
  } catch (...) {
    d.reset();
    throw;
  }
}

HttpReply DockerConnection::send(const Request& req, std::chrono::milliseconds idle) {
  auto& d = *impl_;
  // A body left unread (or a connection handed to a raw stream) cannot carry the next
  // request: start over on a fresh connection.
  if (d.upgraded || !d.body_done) d.reset();
  try {
    return d.run(d.send_task(req, idle));
  } catch (...) {
    d.reset();
    throw;
  }
}

std::size_t DockerConnection::read_body(char* buf, std::size_t n, std::chrono::milliseconds idle) {
  auto& d = *impl_;
  if (d.body_done || !d.parser || n == 0) return 0;
  try {
    return d.run(d.read_body_task(buf, n, idle));
  } catch (...) {
    d.reset();
    throw;
  }
}

std::string DockerConnection::read_body_all(std::size_t limit, std::chrono::milliseconds idle) {
  std::string out;
  char chunk[16384];
  while (std::size_t n = read_body(chunk, sizeof chunk, idle)) {
    if (out.size() + n > limit) {
      impl_->reset();
      throw PodConnectionError("Docker API answer from " + impl_->ep.host + " is larger than " + std::to_string(limit) +
                               " bytes");
    }
    out.append(chunk, n);
  }
  return out;
}

DockerConnection::RawRead DockerConnection::read_raw(std::string& out, Clock::time_point deadline) {
  auto& d = *impl_;
  if (!d.upgraded) throw PodConnectionError("Docker API connection to " + d.ep.host + " is not a raw stream");
  if (!d.raw_leftover.empty()) {
    out += d.raw_leftover;
    d.raw_leftover.clear();
    return RawRead::data;
  }
  if (d.raw_eof) return RawRead::eof;
  if (!d.read_in_flight) {
    d.read_in_flight = true;
    d.read_done = false;
    d.ts->stream.async_read_some(asio::buffer(d.raw_buf), [&d](error_code ec, std::size_t n) {
      d.read_ec = ec;
      d.read_n = n;
      d.read_done = true;
    });
  }
  d.raw_timer_fired = false;
  unsigned generation = ++d.raw_generation;
  if (deadline != Clock::time_point::max()) {
    d.raw_timer.expires_at(deadline);
    d.raw_timer.async_wait([&d, generation](error_code ec) {
      if (!ec && d.raw_generation == generation) d.raw_timer_fired = true;
    });
  }
  d.ctx.restart();
  while (!d.read_done && !d.raw_timer_fired)
    if (d.ctx.run_one() == 0) break;
  ++d.raw_generation;
  d.raw_timer.cancel();
  if (d.read_done) return d.take_raw(out);
  return RawRead::timeout;
}

void DockerConnection::write_raw(std::string data, bool then_close) {
  auto& d = *impl_;
  if (!d.upgraded) throw PodConnectionError("Docker API connection to " + d.ep.host + " is not a raw stream");
  d.wdata = std::move(data);
  d.wclose = then_close;
  if (d.wdata.empty()) {
    if (then_close) d.ts->stream.shutdown_send();
    return;
  }
  asio::async_write(d.ts->stream, asio::buffer(d.wdata), [&d](error_code ec, std::size_t) {
    if (!ec && d.wclose) d.ts->stream.shutdown_send();
  });
}

bool DockerConnection::reusable() const noexcept {
  return impl_->connected && impl_->body_done && !impl_->upgraded && !impl_->early_answer;
}

void DockerConnection::close() noexcept { impl_->reset(); }

}  // namespace pw::transport

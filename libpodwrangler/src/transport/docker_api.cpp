// Docker Engine API client over a unix socket with Boost.Beast HTTP.
#include "docker_api.hpp"
#include "cloexec.hpp"

#include <podwrangler/errors.hpp>

#include <utility>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <nlohmann/json.hpp>

namespace pw::transport {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;
constexpr auto use_aw = asio::use_awaitable_t<Executor>{};

// A socket plus a deadline that closes it: the timer handler holds only a weak_ptr.
struct TimedSocket : std::enable_shared_from_this<TimedSocket> {
  explicit TimedSocket(Executor ex) : sock(ex), timer(ex) {}
  local::socket sock;
  asio::steady_timer timer;
  bool timed_out = false;

  void arm(std::chrono::milliseconds timeout) {
    timer.expires_after(timeout);
    timer.async_wait([w = weak_from_this()](boost::system::error_code ec) {
      if (ec) return;
      if (auto self = w.lock()) {
        self->timed_out = true;
        boost::system::error_code ignored;
        self->sock.close(ignored);
      }
    });
  }
  void disarm() { timer.cancel(); }
};

std::string docker_message(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) return j["message"].get<std::string>();
  return body.substr(0, 200);
}

Task<void> connect_socket(TimedSocket& ts, const std::string& path, const std::string& host) {
  boost::system::error_code ec;
  open_cloexec(ts.sock, local(), ec);
  if (!ec) co_await ts.sock.async_connect(local::endpoint(path), asio::redirect_error(use_aw, ec));
  if (ec)
    throw PodConnectionError("cannot reach the Docker daemon at " + host + ": " + ec.message() +
                             " (is dockerd running?)");
}

template <class Body>
http::request<Body> make_request(http::verb verb, const std::string& target, std::string body) {
  http::request<Body> req{verb, target, 11};
  req.set(http::field::host, "api.moby.localhost");  // the daemon wants a Host without '/'
  req.set(http::field::user_agent, "podwrangler");
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
  }
  req.prepare_payload();
  return req;
}

Task<HttpReply> request_on(TimedSocket& ts, const std::string& host, http::verb verb, const std::string& target,
                           std::string body) {
  auto req = make_request<http::string_body>(verb, target, std::move(body));
  boost::system::error_code ec;
  co_await http::async_write(ts.sock, req, asio::redirect_error(use_aw, ec));
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  if (!ec) co_await http::async_read(ts.sock, buf, res, asio::redirect_error(use_aw, ec));
  if (ec) {
    if (ts.timed_out) throw PodConnectionError("Docker daemon at " + host + " did not answer in time");
    throw PodConnectionError("Docker API request to " + host + " failed: " + ec.message());
  }
  co_return HttpReply{static_cast<int>(res.result_int()), std::move(res.body())};
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

// Creates and starts an exec; on return `ts.sock` is the raw multiplexed stream and
// `rest` holds bytes already read past the upgrade response.
Task<std::string> start_exec(TimedSocket& ts, const DockerExecSpec& spec, bool stdin_attached, std::string& rest) {
  co_await connect_socket(ts, spec.socket_path, spec.host);
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
  boost::system::error_code ec;
  co_await http::async_write(ts.sock, req, asio::redirect_error(use_aw, ec));
  beast::flat_buffer buf;
  http::response_parser<http::empty_body> parser;
  parser.skip(true);  // 101/200 without length: the body is the raw stream
  if (!ec) co_await http::async_read_header(ts.sock, buf, parser, asio::redirect_error(use_aw, ec));
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
      : ex_(ex), spec_(std::move(spec)), ts_(std::make_shared<TimedSocket>(ex)) {}

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
    boost::system::error_code ec;
    co_await asio::async_write(ts_->sock, asio::buffer(data.data(), data.size()), asio::redirect_error(use_aw, ec));
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
      boost::system::error_code ec;
      std::size_t n = co_await ts_->sock.async_read_some(asio::buffer(buf), asio::redirect_error(use_aw, ec));
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
    boost::system::error_code ec;
    ts_->sock.close(ec);
  }
  bool is_tty() const noexcept override { return false; }
  std::string describe() const override { return "container '" + spec_.container + "' on " + spec_.host; }

 private:
  Executor ex_;
  DockerExecSpec spec_;
  std::shared_ptr<TimedSocket> ts_;
  std::string exec_id_;
  std::string pending_;
  docker::Demux demux_;
  bool open_ = false;
};

}  // namespace

Task<HttpReply> docker_request(std::string socket_path, std::string method, std::string target, std::string body,
                               std::chrono::milliseconds timeout) {
  auto ex = co_await asio::this_coro::executor;
  auto ts = std::make_shared<TimedSocket>(ex);
  std::string host = "unix://" + socket_path;
  ts->arm(timeout);
  co_await connect_socket(*ts, socket_path, host);
  HttpReply r = co_await request_on(*ts, host, http::string_to_verb(method), target, std::move(body));
  ts->disarm();
  co_return r;
}

std::unique_ptr<Connection> make_docker_exec_connection(Executor ex, DockerExecSpec spec) {
  return std::make_unique<DockerExecConnection>(ex, std::move(spec));
}

Task<ExecOutput> docker_exec_once(DockerExecSpec spec, double timeout) {
  auto ex = co_await asio::this_coro::executor;
  auto ts = std::make_shared<TimedSocket>(ex);
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
    boost::system::error_code ec;
    std::size_t n = co_await ts->sock.async_read_some(asio::buffer(buf), asio::redirect_error(use_aw, ec));
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

}  // namespace pw::transport

#include "embedded_server/http_server.hpp"

#include "embedded_server/http_util.hpp"

#include <podwrangler/loop_thread.hpp>

#include <utility>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <httplib.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

namespace pw::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Executor = asio::any_io_executor;
template <class T = void>
using Task = asio::awaitable<T, Executor>;

namespace {

constexpr auto use_aw = asio::use_awaitable_t<Executor>{};

std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(static_cast<long long>(seconds * 1000.0));
}

bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

// Header values a handler set must not split the response (CR/LF injection).
std::string header_safe(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v)
    if (c != '\r' && c != '\n' && c != '\0') out.push_back(c);
  return out;
}

// Text for messages: control bytes shown as '?', at most 200 bytes.
std::string shown_short(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 200)) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  if (s.size() > 200) out += "…";
  return out;
}

}  // namespace

std::string escape_log_field(std::string_view s, std::size_t max_len) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(std::min(s.size(), max_len) + 8);
  for (std::size_t i = 0; i < s.size() && i < max_len; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0xF]);
    }
  }
  if (s.size() > max_len) out += "...";
  return out;
}

// ---------------------------------------------------------------- Router

void Router::add(std::string method, const std::string& pattern, Handler h) {
  routes_.push_back(Route{std::move(method), std::regex(pattern, std::regex::ECMAScript | std::regex::optimize),
                          std::move(h), nullptr});
}

void Router::add_stream(std::string method, const std::string& pattern, StreamHandler h) {
  routes_.push_back(Route{std::move(method), std::regex(pattern, std::regex::ECMAScript | std::regex::optimize),
                          nullptr, std::move(h)});
}

const StreamHandler* Router::find_stream(httplib::Request& req) const {
  for (const auto& r : routes_) {
    if (r.method != req.method) continue;
    if (std::regex_match(req.path, req.matches, r.re)) {
      if (r.stream) return &r.stream;
      break;  // the first matching route takes whole bodies
    }
  }
  req.matches = std::smatch();
  return nullptr;
}

const Handler* Router::find(httplib::Request& req, std::string& allow) const {
  const std::string& want = req.method == "HEAD" ? std::string("GET") : req.method;
  for (const auto& r : routes_) {
    if (r.method != want || r.stream) continue;
    if (std::regex_match(req.path, req.matches, r.re)) return &r.handler;
  }
  req.matches = std::smatch();
  std::vector<std::string> methods;
  for (const auto& r : routes_) {
    if (std::find(methods.begin(), methods.end(), r.method) != methods.end()) continue;
    if (std::regex_match(req.path, r.re)) methods.push_back(r.method);
  }
  allow.clear();
  if (methods.empty()) return nullptr;
  if (std::find(methods.begin(), methods.end(), "GET") != methods.end()) methods.emplace_back("HEAD");
  methods.emplace_back("OPTIONS");
  for (const auto& m : methods) {
    if (!allow.empty()) allow += ", ";
    allow += m;
  }
  return nullptr;
}

// ---------------------------------------------------------------- connections

namespace {

struct ConnBase {
  std::string client;  // remote address, the per-client key
  int client_port = 0;
  std::string local_addr;
  int local_port = 0;
  // Waiting for a request, reading one, or in the TLS handshake: stop() closes it (a
  // request not received whole is dropped; one being handled is answered first).
  bool idle = false;
  virtual ~ConnBase() = default;
  virtual beast::tcp_stream& lowest() = 0;
};

template <class Stream>
struct Conn final : ConnBase {
  template <class... A>
  explicit Conn(A&&... a) : stream(std::forward<A>(a)...) {}
  Stream stream;
  beast::tcp_stream& lowest() override { return beast::get_lowest_layer(stream); }
};

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

template <class S>
constexpr bool is_tls = std::is_same_v<S, TlsStream>;

std::string status_line(int status) {
  std::string reason(http::obsolete_reason(static_cast<http::status>(status)));
  if (reason.empty() || reason == "<unknown-status>") reason = "Status";
  return "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
}

bool has_header_ci(const httplib::Headers& h, std::string_view name) {
  for (const auto& [k, v] : h)
    if (ieq(k, name)) return true;
  return false;
}

}  // namespace

struct HttpServer::Impl {
  Impl(HttpLimits l, Router r, HttpHooks h)
      : limits(l),
        router(std::move(r)),
        hooks(std::move(h)),
        workers(static_cast<std::size_t>(std::max(1, l.workers))) {}

  HttpLimits limits;
  Router router;
  HttpHooks hooks;
  // Connections and the accept loop live on this loop's thread.
  LoopThread loop;
  Executor loop_ex = loop.executor();
  std::optional<asio::ssl::context> tls;
  asio::thread_pool workers;
  tcp::acceptor acceptor{loop_ex};
  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> open{0};
  // Touched on the loop thread only.
  std::unordered_map<std::string, std::size_t> per_client;
  std::unordered_set<ConnBase*> conns;

  // Runs f() on a worker thread; resumes the caller on the loop afterwards.
  template <class F>
  Task<void> on_worker(F& f) {
    auto initiate = [this, &f](auto handler) {
      asio::post(workers, [&f, h = std::move(handler)]() mutable {
        f();
        auto ex = asio::get_associated_executor(h);
        asio::post(ex, std::move(h));
      });
    };
    co_await asio::async_initiate<const asio::use_awaitable_t<Executor>&, void()>(initiate, use_aw);
  }

  // ------------------------------------------------------------ handling (worker thread)

  void error(httplib::Response& res, ErrorKind kind, const std::string& message) {
    const ErrorInfo& info = error_info(kind);
    res.status = info.http_status;
    if (hooks.on_error) {
      hooks.on_error(res, kind, message);
    } else {
      res.set_content("{\"code\":\"" + std::string(info.code) + "\"}", "application/json");
    }
  }

  void handle(httplib::Request& req, httplib::Response& res, const StreamHandler* stream = nullptr,
              BodyReader* body = nullptr) {
    try {
      if (hooks.pre_routing && hooks.pre_routing(req, res)) return;
      if (stream) {
        (*stream)(req, res, *body);
        if (res.status == -1) res.status = 200;
        return;
      }
      std::string allow;
      if (const Handler* h = router.find(req, allow)) {
        (*h)(req, res);
        if (res.status == -1) res.status = 200;
        return;
      }
      if (allow.empty()) {
        error(res, ErrorKind::route_not_found,
              "no such endpoint: " + shown_short(req.method) + " " + shown_short(req.path));
      } else if (req.method == "OPTIONS") {
        res.status = 204;
        res.set_header("Allow", allow);
      } else {
        res.set_header("Allow", allow);
        error(res, ErrorKind::method_not_allowed,
              shown_short(req.method) + " is not allowed on " + shown_short(req.path) + " (allowed: " + allow + ")");
      }
    } catch (...) {
      res.headers.clear();
      res.body.clear();
      if (hooks.on_exception) {
        try {
          hooks.on_exception(res);
          return;
        } catch (...) {
        }
      }
      error(res, ErrorKind::internal, "internal server error");
    }
  }

  // ------------------------------------------------------------ responses

  std::string head_of(const httplib::Response& res, bool keep_alive, bool chunked, std::size_t content_length) {
    std::string out = status_line(res.status);
    for (const auto& [k, v] : hooks.default_headers)
      if (!has_header_ci(res.headers, k)) out += k + ": " + header_safe(v) + "\r\n";
    for (const auto& [k, v] : res.headers) {
      if (ieq(k, "Content-Length") || ieq(k, "Transfer-Encoding") || ieq(k, "Connection")) continue;
      out += header_safe(k) + ": " + header_safe(v) + "\r\n";
    }
    bool bodiless = res.status == 204 || res.status == 304 || (res.status >= 100 && res.status < 200);
    if (chunked)
      out += "Transfer-Encoding: chunked\r\n";
    else if (!bodiless)
      out += "Content-Length: " + std::to_string(content_length) + "\r\n";
    out += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
    out += "\r\n";
    return out;
  }

  template <class Stream>
  Task<bool> write_all(Conn<Stream>& c, std::string_view data, double timeout_s) {
    boost::system::error_code ec;
    c.lowest().expires_after(ms(timeout_s));
    co_await asio::async_write(c.stream, asio::buffer(data.data(), data.size()), asio::redirect_error(use_aw, ec));
    co_return !ec;
  }

  // An error the front end answers itself, then the connection closes: the client may
  // still be sending (a body over the limit), so our side is shut down first and what
  // arrives is read and dropped for a moment, or the client would see a reset instead
  // of the answer.
  template <class Stream>
  Task<void> answer_and_close(Conn<Stream>& c, httplib::Request* req, ErrorKind kind, const std::string& message) {
    httplib::Response res;
    error(res, kind, message);
    const std::string data = head_of(res, false, false, res.body.size()) + res.body;
    co_await write_all(c, data, 2.0);
    if (hooks.logger && req) hooks.logger(*req, res, 0.0);
    co_await linger_close(c);
  }

  template <class Stream>
  Task<void> linger_close(Conn<Stream>& c) {
    boost::system::error_code ec;
    auto& low = c.lowest();
    if constexpr (!is_tls<Stream>) {
      low.socket().shutdown(tcp::socket::shutdown_send, ec);
      low.expires_after(std::chrono::milliseconds(500));
      char sink[16384];
      std::size_t dropped = 0;
      while (dropped < (4u << 20)) {
        std::size_t n = co_await low.async_read_some(asio::buffer(sink), asio::redirect_error(use_aw, ec));
        if (ec) break;
        dropped += n;
      }
    }
    low.close();
  }

  // Streams a chunked body: the provider runs on a worker; each chunk it writes is sent
  // from the loop, and the worker waits for it (a slow reader slows the provider).
  template <class Stream>
  Task<bool> stream_body(Conn<Stream>& c, httplib::Response& res, bool chunked) {
    auto write_from_worker = [this, &c](std::string data) -> bool {
      std::promise<bool> done;
      auto fut = done.get_future();
      asio::post(loop_ex, [this, &c, &data, &done] {
        c.lowest().expires_after(ms(limits.write_timeout_s));
        asio::async_write(c.stream, asio::buffer(data),
                          [&done](const boost::system::error_code& ec, std::size_t) { done.set_value(!ec); });
      });
      return fut.get();
    };
    bool ok = true;
    auto run = [&] {
      httplib::DataSink sink;
      bool finished = false;
      std::size_t offset = 0;
      sink.write = [&](const char* d, std::size_t n) -> bool {
        if (!ok) return false;
        if (n == 0) return true;
        std::string chunk;
        if (chunked) {
          char len[24];
          int k = std::snprintf(len, sizeof len, "%zx\r\n", n);
          chunk.reserve(static_cast<std::size_t>(k) + n + 2);
          chunk.append(len, static_cast<std::size_t>(k));
        }
        chunk.append(d, n);
        if (chunked) chunk += "\r\n";
        ok = write_from_worker(std::move(chunk));
        offset += n;
        return ok;
      };
      sink.is_writable = [&] { return ok; };
      sink.done = [&] {
        if (finished) return;
        finished = true;
        if (ok && chunked) ok = write_from_worker("0\r\n\r\n");
      };
      try {
        while (ok && !finished) {
          if (!res.content_provider_(offset, 0, sink)) {
            ok = false;
            break;
          }
        }
      } catch (...) {
        ok = false;
      }
      res.content_provider_success_ = ok && finished;
    };
    co_await on_worker(run);
    co_return ok;
  }

  // ------------------------------------------------------------ one connection

  struct Registration {
    Registration(Impl& s, ConnBase& c) : self(s), conn(c) { self.conns.insert(&conn); }
    ~Registration() {
      self.conns.erase(&conn);
      auto it = self.per_client.find(conn.client);
      if (it != self.per_client.end() && --it->second == 0) self.per_client.erase(it);
      self.open.fetch_sub(1);
    }
    Impl& self;
    ConnBase& conn;
  };

  template <class Stream>
  Task<void> serve(std::shared_ptr<Conn<Stream>> cp) {
    Conn<Stream>& c = *cp;
    Registration reg(*this, c);
    auto& low = c.lowest();
    boost::system::error_code ec;
    if constexpr (is_tls<Stream>) {
      low.expires_after(ms(limits.request_timeout_s));
      c.idle = true;
      co_await c.stream.async_handshake(asio::ssl::stream_base::server, asio::redirect_error(use_aw, ec));
      c.idle = false;
      if (ec || stopping.load()) {
        low.close();
        co_return;
      }
    }
    beast::flat_buffer buf;
    for (int served = 0;; ++served) {
      if (buf.size() == 0) {
        // Idle: no thread waits here, only the deadline.
        c.idle = true;
        if (stopping.load()) break;
        low.expires_after(ms(served == 0 ? limits.request_timeout_s : limits.keep_alive_timeout_s));
        std::size_t n = co_await c.stream.async_read_some(buf.prepare(4096), asio::redirect_error(use_aw, ec));
        c.idle = false;
        if (ec) break;
        buf.commit(n);
      }
      auto t0 = std::chrono::steady_clock::now();
      http::request_parser<http::string_body> p;
      p.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
      // Beast refuses a Content-Length above the body limit while it reads the header, before
      // the route is known: the larger of the two limits here, the route's own once it is.
      p.body_limit(std::max<std::uint64_t>(limits.max_body_bytes, limits.max_upload_bytes));
      // One deadline for the whole request, headers and body (not per read).
      low.expires_after(ms(limits.request_timeout_s));
      c.idle = true;
      co_await http::async_read_header(c.stream, buf, p, asio::redirect_error(use_aw, ec));
      c.idle = false;
      if (!ec && stopping.load()) break;
      if (ec) {
        co_await read_failed(c, ec, nullptr);
        co_return;
      }
      auto& h = p.get();
      httplib::Request req;
      req.method = std::string(h.method_string());
      req.target = std::string(h.target());
      req.version = h.version() == 10 ? "HTTP/1.0" : "HTTP/1.1";
      req.remote_addr = c.client;
      req.remote_port = c.client_port;
      req.local_addr = c.local_addr;
      req.local_port = c.local_port;
      if (req.target.size() > limits.max_target_bytes) {
        const std::string msg = "request target is longer than " + std::to_string(limits.max_target_bytes) + " bytes";
        co_await answer_and_close(c, &req, ErrorKind::uri_too_long, msg);
        co_return;
      }
      if (req.target.empty() || req.target[0] != '/') {
        const std::string msg = "request target must be an absolute path";
        co_await answer_and_close(c, &req, ErrorKind::bad_request, msg);
        co_return;
      }
      {
        auto q = req.target.find('?');
        req.path = httplib::detail::decode_url(req.target.substr(0, q), false);
        if (q != std::string::npos) httplib::detail::parse_query_text(req.target.substr(q + 1), req.params);
      }
      // A route that reads its body as a stream (uploads) gets it from here on.
      if (const StreamHandler* sh = router.find_stream(req)) {
        const bool more = co_await serve_streamed(c, buf, p, req, *sh, served, t0);
        if (!more) co_return;
        continue;
      }
      p.body_limit(limits.max_body_bytes);
      if (auto cl = p.content_length(); cl && *cl > limits.max_body_bytes) {
        const std::string msg = body_too_large();
        co_await answer_and_close(c, &req, ErrorKind::payload_too_large, msg);
        co_return;
      }
      if (!p.is_done()) {
        auto expect = h[http::field::expect];
        if (ieq(std::string_view(expect.data(), expect.size()), "100-continue")) {
          static constexpr std::string_view k100 = "HTTP/1.1 100 Continue\r\n\r\n";
          co_await asio::async_write(c.stream, asio::buffer(k100.data(), k100.size()),
                                     asio::redirect_error(use_aw, ec));
          if (ec) break;
        }
        c.idle = true;
        co_await http::async_read(c.stream, buf, p, asio::redirect_error(use_aw, ec));
        c.idle = false;
        if (!ec && stopping.load()) break;
        if (ec) {
          co_await read_failed(c, ec, &req);
          co_return;
        }
      }
      bool keep_alive = p.get().keep_alive();
      for (const auto& f : p.get()) req.headers.emplace(std::string(f.name_string()), std::string(f.value()));
      req.body = std::move(p.get().body());

      httplib::Response res;
      auto work = [this, &req, &res] { handle(req, res); };
      co_await on_worker(work);

      keep_alive = keep_alive && !stopping.load() && served + 1 < limits.keep_alive_max_count &&
                   !ieq(res.get_header_value("Connection"), "close");
      const bool ok = co_await respond(c, req, res, keep_alive, t0);
      if (!ok) break;
      if (!keep_alive) {
        low.socket().shutdown(tcp::socket::shutdown_send, ec);
        break;
      }
    }
    low.close();
  }

  // Writes the handler's response (streamed bodies chunk by chunk) and logs it; false when
  // the client could not be written to.
  template <class Stream>
  Task<bool> respond(Conn<Stream>& c, httplib::Request& req, httplib::Response& res, bool& keep_alive,
                     std::chrono::steady_clock::time_point t0) {
    const bool head_only = req.method == "HEAD";
    bool ok = true;
    if (res.content_provider_ && !head_only) {
      const bool chunked = req.version == "HTTP/1.1";
      if (!chunked) keep_alive = false;  // HTTP/1.0: the body ends with the connection
      const std::string head = head_of(res, keep_alive, chunked, 0);
      ok = co_await write_all(c, head, limits.write_timeout_s);
      if (ok) ok = co_await stream_body(c, res, chunked);
    } else {
      std::string data = head_of(res, keep_alive, false, res.body.size());
      if (!head_only) data += res.body;
      ok = co_await write_all(c, data, limits.write_timeout_s);
    }
    if (hooks.logger) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      hooks.logger(req, res, secs);
    }
    co_return ok;
  }

  // The body of a streamed request, read by the handler on its worker: each read() posts one
  // async_read_some to the loop and waits for it. The connection's coroutine is suspended
  // meanwhile (it waits for the handler), so the parser and buffer have one user at a time.
  // No byte within the request timeout ends the request (a stalled client holds a worker no
  // longer than that); the total is capped by max_upload_bytes while it is read.
  template <class Stream>
  struct StreamedBody final : BodyReader {
    StreamedBody(Impl& s, Conn<Stream>& conn, beast::flat_buffer& b, http::request_parser<http::buffer_body>& parser,
                 bool expect_100)
        : self(s), c(conn), buf(b), p(parser), expect_continue(expect_100) {}
    Impl& self;
    Conn<Stream>& c;
    beast::flat_buffer& buf;
    http::request_parser<http::buffer_body>& p;
    bool expect_continue;
    bool failed = false;

    std::size_t read(char* out, std::size_t n) override {
      if (failed) throw HttpError(ErrorKind::bad_request, "the request body could not be read");
      if (n == 0 || p.is_done()) return 0;
      for (;;) {
        std::promise<std::pair<boost::system::error_code, std::size_t>> done;
        auto fut = done.get_future();
        asio::post(self.loop_ex, [this, out, n, &done] {
          auto start = [this, out, n, &done] {
            auto& b = p.get().body();
            b.data = out;
            b.size = n;
            b.more = true;
            c.lowest().expires_after(ms(self.limits.request_timeout_s));
            http::async_read_some(c.stream, buf, p, [this, n, &done](boost::system::error_code ec, std::size_t) {
              std::size_t got = n - p.get().body().size;
              if (ec == http::error::need_buffer) ec = {};
              done.set_value({ec, got});
            });
          };
          if (!expect_continue) {
            start();
            return;
          }
          expect_continue = false;
          static constexpr std::string_view k100 = "HTTP/1.1 100 Continue\r\n\r\n";
          c.lowest().expires_after(ms(self.limits.request_timeout_s));
          asio::async_write(c.stream, asio::buffer(k100.data(), k100.size()),
                            [start, &done](boost::system::error_code ec, std::size_t) {
                              if (ec)
                                done.set_value({ec, 0});
                              else
                                start();
                            });
        });
        auto [ec, got] = fut.get();
        if (ec) {
          failed = true;
          if (ec == http::error::body_limit) throw HttpError(ErrorKind::payload_too_large, self.upload_too_large());
          throw HttpError(ErrorKind::bad_request, "the request body stopped before its end (" + ec.message() + ")");
        }
        if (got > 0 || p.is_done()) return got;
      }
    }
  };

  std::string upload_too_large() const {
    return "request body is larger than " + std::to_string(limits.max_upload_bytes) +
           " bytes (PODWRANGLER_MAX_UPLOAD_BYTES)";
  }

  // One request of a streamed-body route; false when the connection is done.
  template <class Stream>
  Task<bool> serve_streamed(Conn<Stream>& c, beast::flat_buffer& buf, http::request_parser<http::string_body>& p0,
                            httplib::Request& req, const StreamHandler& handler, int served,
                            std::chrono::steady_clock::time_point t0) {
    http::request_parser<http::buffer_body> p(std::move(p0));
    p.body_limit(limits.max_upload_bytes);
    if (auto cl = p.content_length(); cl && *cl > limits.max_upload_bytes) {
      const std::string msg = upload_too_large();
      co_await answer_and_close(c, &req, ErrorKind::payload_too_large, msg);
      co_return false;
    }
    for (const auto& f : p.get()) req.headers.emplace(std::string(f.name_string()), std::string(f.value()));
    auto expect = p.get()[http::field::expect];
    StreamedBody<Stream> body(*this, c, buf, p, ieq(std::string_view(expect.data(), expect.size()), "100-continue"));
    bool keep_alive = p.get().keep_alive();

    httplib::Response res;
    auto work = [this, &req, &res, &handler, &body] { handle(req, res, &handler, &body); };
    co_await on_worker(work);

    // A body the handler did not read to its end (it refused the request first) leaves the
    // connection in the middle of a message: it is closed after the answer.
    const bool whole = p.is_done() && !body.failed;
    keep_alive = keep_alive && whole && !stopping.load() && served + 1 < limits.keep_alive_max_count &&
                 !ieq(res.get_header_value("Connection"), "close");
    const bool ok = co_await respond(c, req, res, keep_alive, t0);
    if (ok && keep_alive) co_return true;
    if (ok && !whole && !body.failed) {
      co_await linger_close(c);
    } else {
      boost::system::error_code ec;
      c.lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
      c.lowest().close();
    }
    co_return false;
  }

  std::string body_too_large() const {
    return "request body is larger than " + std::to_string(limits.max_body_bytes) + " bytes";
  }

  template <class Stream>
  Task<void> read_failed(Conn<Stream>& c, const boost::system::error_code ec, httplib::Request* req) {
    if (ec == http::error::body_limit) {
      const std::string msg = body_too_large();
      co_await answer_and_close(c, req, ErrorKind::payload_too_large, msg);
    } else if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      const std::string msg = "request headers are larger than " + std::to_string(limits.max_header_bytes) + " bytes";
      co_await answer_and_close(c, req, ErrorKind::headers_too_large, msg);
    } else if (ec == beast::error::timeout ||
               // At the deadline Beast has closed the socket: no answer is owed to a client that
               // did not send its request in time (nginx's client_header_timeout does the same).
               ec == http::error::end_of_stream || ec == http::error::partial_message || ec == asio::error::eof ||
               ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
               ec.category() == asio::error::get_ssl_category()) {
      c.lowest().close();
    } else {
      const std::string msg = "malformed HTTP request (" + ec.message() + ")";
      co_await answer_and_close(c, req, ErrorKind::bad_request, msg);
    }
  }

  // ------------------------------------------------------------ accepting

  Task<void> refuse(tcp::socket sock, std::string why) {
    if (tls) {
      boost::system::error_code ec;
      sock.close(ec);
      co_return;
    }
    Conn<PlainStream> c(std::move(sock));
    httplib::Response res;
    error(res, ErrorKind::too_many_connections, why);
    res.set_header("Retry-After", "1");
    std::string data = head_of(res, false, false, res.body.size()) + res.body;
    co_await write_all(c, data, 1.0);
    boost::system::error_code ec;
    c.lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
    c.lowest().close();
  }

  void admit(tcp::socket sock) {
    boost::system::error_code ec;
    auto remote = sock.remote_endpoint(ec);
    if (ec) return;
    auto local = sock.local_endpoint(ec);
    std::string client = remote.address().to_string();
    std::size_t& mine = per_client[client];
    if (open.load() >= limits.max_connections || mine >= limits.max_connections_per_client) {
      std::string why =
          mine >= limits.max_connections_per_client
              ? "too many connections from " + client + " (limit " + std::to_string(limits.max_connections_per_client) +
                    ")"
              : "the server has " + std::to_string(limits.max_connections) + " connections open (its limit)";
      if (mine == 0) per_client.erase(client);
      asio::co_spawn(loop_ex, refuse(std::move(sock), std::move(why)), asio::detached);
      return;
    }
    ++mine;
    open.fetch_add(1);
    int one = 1;
    ::setsockopt(sock.native_handle(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto fill = [&](ConnBase& c) {
      c.client = client;
      c.client_port = remote.port();
      c.local_addr = local.address().to_string();
      c.local_port = local.port();
    };
    if (tls) {
      auto c = std::make_shared<Conn<TlsStream>>(std::move(sock), *tls);
      fill(*c);
      asio::co_spawn(loop_ex, serve(std::move(c)), asio::detached);
    } else {
      auto c = std::make_shared<Conn<PlainStream>>(std::move(sock));
      fill(*c);
      asio::co_spawn(loop_ex, serve(std::move(c)), asio::detached);
    }
  }

  // accept4() ourselves: the connection's descriptor is close-on-exec from its first
  // instant (Asio's accept does not set it), so no shell we spawn can inherit it.
  Task<void> accept_loop() {
    boost::system::error_code ec;
    asio::steady_timer backoff(loop_ex);
    while (!stopping.load()) {
      co_await acceptor.async_wait(tcp::acceptor::wait_read, asio::redirect_error(use_aw, ec));
      if (stopping.load() || ec == asio::error::operation_aborted || !acceptor.is_open()) break;
      for (int k = 0; k < 256; ++k) {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        int fd =
            ::accept4(acceptor.native_handle(), reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
          if (errno == EINTR || errno == ECONNABORTED) continue;
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            // Out of descriptors: leave the backlog for a moment instead of spinning.
            backoff.expires_after(std::chrono::milliseconds(50));
            co_await backoff.async_wait(asio::redirect_error(use_aw, ec));
          }
          break;
        }
        tcp::socket sock(loop_ex);
        sock.assign(ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
        if (ec) {
          ::close(fd);
          continue;
        }
        admit(std::move(sock));
      }
    }
  }

  void do_stop() {
    stopping.store(true);
    boost::system::error_code ec;
    acceptor.close(ec);
    for (ConnBase* c : conns)
      if (c->idle) c->lowest().cancel();
  }
};

HttpServer::HttpServer(HttpLimits limits, Router router, HttpHooks hooks, const std::string& tls_cert,
                       const std::string& tls_key)
    : impl_(std::make_shared<Impl>(limits, std::move(router), std::move(hooks))) {
  if (!tls_cert.empty()) {
    auto& ctx = impl_->tls.emplace(asio::ssl::context::tls_server);
    ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                    asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                    asio::ssl::context::single_dh_use);
    boost::system::error_code ec;
    ctx.use_certificate_chain_file(tls_cert, ec);
    if (!ec) ctx.use_private_key_file(tls_key, asio::ssl::context::pem, ec);
    if (ec) throw std::runtime_error("cannot load the TLS certificate or key: " + ec.message());
  }
}

HttpServer::~HttpServer() {
  if (!impl_) return;
  stop();
  impl_->workers.join();
  // Normally wait() has already joined the loop; otherwise connections still open are
  // dropped here, before the objects they use go away.
  impl_->loop.stop();
}

int HttpServer::bind(const std::string& host, int port) {
  auto& a = impl_->acceptor;
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) {
    // A host name: the first address it resolves to.
    tcp::resolver r(impl_->loop_ex);
    auto results = r.resolve(host, std::to_string(port), ec);
    if (ec || results.empty()) throw std::system_error(ec ? ec : asio::error::host_not_found, host);
    addr = results.begin()->endpoint().address();
  }
  tcp::endpoint ep(addr, static_cast<unsigned short>(port));
  int fd = ::socket(ep.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
  a.assign(ep.protocol(), fd, ec);
  if (ec) {
    ::close(fd);
    throw std::system_error(ec, "socket");
  }
  a.set_option(tcp::acceptor::reuse_address(true), ec);
  a.bind(ep, ec);
  if (!ec) a.listen(1024, ec);
  if (ec) {
    a.close();
    throw std::system_error(ec);
  }
  return a.local_endpoint().port();
}

void HttpServer::start() {
  auto* impl = impl_.get();
  asio::co_spawn(impl->loop_ex, impl->accept_loop(), asio::detached);
}

void HttpServer::wait() { impl_->loop.join(); }

void HttpServer::run() {
  start();
  wait();
}

void HttpServer::stop() {
  auto* impl = impl_.get();
  if (impl->stopping.exchange(true)) return;
  asio::post(impl->loop_ex, [impl] { impl->do_stop(); });
}

std::size_t HttpServer::connections() const noexcept { return impl_->open.load(); }

}  // namespace pw::server

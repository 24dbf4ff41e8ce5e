#pragma once
// The HTTP/1.1 front end of the REST server.
//
// Connections live on one event-loop thread (Asio + Beast's parser): an idle keep-alive
// connection or a client that trickles its headers costs a coroutine and a descriptor, never
// a thread. A request whose headers and body have arrived whole (within one deadline and
// the size limits) is handed to a worker pool, where route handlers run with cpp-httplib's
// Request/Response types. Limits are enforced while reading: body (chunked or not), headers,
// target, whole-request time, connections in total and per client address (over a limit
// the connection is answered 503 at once and closed, never queued).
#include "embedded_server/httplib_fwd.hpp"

#include <podwrangler/error_table.hpp>

#include <utility>
#include <cstddef>
#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <vector>

namespace pw::server {

using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

// The body of a request whose route takes it as a stream (Router::PutStream): read on the
// handler's thread while the client sends it, never held whole. The first read answers a
// client's "Expect: 100-continue", so a handler that refuses the request before reading
// (404, 422) spares the client from sending the body.
class BodyReader {
 public:
  virtual ~BodyReader() = default;
  // Up to n bytes into buf, waiting for the client; 0 once the body has ended. Throws
  // HttpError: payload_too_large past the upload limit (HttpLimits::max_upload_bytes, chunked
  // or not), bad_request when the client stops sending (the connection closed, or no byte
  // within the request timeout).
  virtual std::size_t read(char* buf, std::size_t n) = 0;
};
using StreamHandler = std::function<void(const httplib::Request&, httplib::Response&, BodyReader&)>;

// Method + path-pattern table. Patterns are ECMAScript regular expressions matched against
// the whole (percent-decoded) path; groups land in Request::matches.
class Router {
 public:
  void Get(const std::string& pattern, Handler h) { add("GET", pattern, std::move(h)); }
  void Post(const std::string& pattern, Handler h) { add("POST", pattern, std::move(h)); }
  void Put(const std::string& pattern, Handler h) { add("PUT", pattern, std::move(h)); }
  void Patch(const std::string& pattern, Handler h) { add("PATCH", pattern, std::move(h)); }
  void Delete(const std::string& pattern, Handler h) { add("DELETE", pattern, std::move(h)); }
  // A PUT whose body the handler reads as a stream, under max_upload_bytes instead of
  // max_body_bytes (uploads).
  void PutStream(const std::string& pattern, StreamHandler h) { add_stream("PUT", pattern, std::move(h)); }
  void add(std::string method, const std::string& pattern, Handler h);
  void add_stream(std::string method, const std::string& pattern, StreamHandler h);

  // The handler for req.method (HEAD uses GET's) on req.path, with req.matches filled;
  // nullptr when there is none. `allow` then lists the path's methods ("GET, HEAD,
  // OPTIONS"), empty for an unknown path.
  const Handler* find(httplib::Request& req, std::string& allow) const;
  // The stream handler for req.method on req.path, with req.matches filled; nullptr when
  // the route (if any) takes whole bodies. Asked once the headers are read.
  const StreamHandler* find_stream(httplib::Request& req) const;

 private:
  struct Route {
    std::string method;
    std::regex re;
    Handler handler;
    StreamHandler stream;  // set for the routes of add_stream (handler is then empty)
  };
  std::vector<Route> routes_;
};

struct HttpLimits {
  std::size_t max_body_bytes = 1 << 20;                 // decoded body, chunked or not → 413
  std::size_t max_upload_bytes = std::size_t{4} << 30;  // a streamed body (Router::PutStream) → 413
  std::size_t max_header_bytes = 32 << 10;              // request line + headers → 431
  std::size_t max_target_bytes = 8 << 10;               // request target → 414
  double request_timeout_s = 10.0;                      // one deadline for a request's headers and body
  double keep_alive_timeout_s = 5.0;                    // idle time between requests on a connection
  int keep_alive_max_count = 1000;                      // requests per connection
  double write_timeout_s = 30.0;                        // a response (or one streamed chunk) being written
  std::size_t max_connections = 8192;                   // open at once, all clients
  std::size_t max_connections_per_client = 512;         // open at once from one address
  int workers = 64;                                     // handler threads
};

struct HttpHooks {
  // Runs before routing; returns true when it answered (authentication).
  std::function<bool(const httplib::Request&, httplib::Response&)> pre_routing;
  // A handler threw: turns the exception being handled into the response.
  std::function<void(httplib::Response&)> on_exception;
  // The body of an error the front end answers itself (404, 405, 413 …); the status is
  // already set from the kind's row of the error table.
  std::function<void(httplib::Response&, ErrorKind kind, const std::string& message)> on_error;
  // After each response: remote address, method, raw target, status, body bytes, seconds.
  std::function<void(const httplib::Request&, const httplib::Response&, double seconds)> logger;
  std::vector<std::pair<std::string, std::string>> default_headers;
};

class HttpServer {
 public:
  // TLS when cert and key paths are given (throws std::runtime_error when they do not load).
  HttpServer(HttpLimits limits, Router router, HttpHooks hooks, const std::string& tls_cert = {},
             const std::string& tls_key = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens (port 0: any free port); returns the port. Throws std::system_error.
  int bind(const std::string& host, int port);
  // Starts accepting on the server's own loop thread and returns.
  void start();
  // Blocks until stop() has been called and every connection has ended.
  void wait();
  // start() + wait().
  void run();
  // Thread-safe, returns at once: no new connections, idle ones are closed, requests in
  // progress finish and their connections close after the response.
  void stop();
  // Connections open right now.
  std::size_t connections() const noexcept;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// One line of the access log, every byte outside printable ASCII (and '"', '\\', space
// inside fields) escaped as %XX, so a request is always exactly one line.
std::string escape_log_field(std::string_view s, std::size_t max_len = 512);

}  // namespace pw::server

#pragma once
// Docker Engine API v1.41 (Beast HTTP) over a unix socket, TCP, or TCP with TLS client
// certificates: plain requests, streamed request and response bodies, and exec on a
// hijacked connection. Internal to the library: providers/docker.cpp uses the coroutine
// functions (unix sockets), the capsule layer (capsules/engine_client.cpp) the blocking
// DockerConnection.
#include <podwrangler/connection.hpp>
#include <podwrangler/model.hpp>
#include <podwrangler/providers/docker.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pw::transport {

struct HttpReply {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case (filled by DockerConnection)
};

// Where a Docker engine listens and how to reach it.
struct DockerEndpoint {
  std::string host;         // as given ("unix:///var/run/docker.sock", "tcp://10.0.0.1:2376"): messages
  std::string socket_path;  // unix://
  std::string tcp_host;     // tcp:// (an IPv6 address without its brackets)
  std::string tcp_port;
  bool tls = false;                 // tcp:// only
  TlsOptions tls_options;           // the CA that signs the daemon's certificate (or insecure_skip_verify)
  std::string cert_file, key_file;  // the client certificate ("" = none)
};

// unix:///path or tcp://host[:port] (port 2376 with TLS, else 2375). Throws
// PodConfigValidationError("host", …) for anything else (ssh://, npipe://, a bare path).
DockerEndpoint parse_docker_endpoint(std::string_view host, bool tls);

// One request on a fresh connection to the daemon at `socket_path`. Throws
// PodConnectionError when the daemon cannot be reached (naming the socket).
Task<HttpReply> docker_request(std::string socket_path, std::string method, std::string target, std::string body,
                               std::chrono::milliseconds timeout);

struct DockerExecSpec {
  std::string socket_path;
  std::string host;  // for messages: unix:///var/run/docker.sock
  std::string container;
  std::vector<std::string> argv;
  std::string user;
};

// A Connection onto `argv` running in the container (stdin attached, no TTY); stdout and
// stderr frames are merged into the byte stream.
std::unique_ptr<Connection> make_docker_exec_connection(Executor ex, DockerExecSpec spec);

// Runs argv once; stdout and stderr apart, exit code from exec inspect.
Task<ExecOutput> docker_exec_once(DockerExecSpec spec, double timeout);

// One HTTP/1.1 connection to the engine, used from one thread at a time, blocking: each
// call drives a private io_context on the caller's thread until its step is done, so a
// slow body source or sink stalls only its own connection, never a shared loop. Requests
// may follow each other on the connection (keep-alive) until one is upgraded (exec).
// Failures to reach or talk to the engine throw PodConnectionError naming `endpoint.host`;
// a deadline that passes closes the connection (except in read_raw, see there).
class DockerConnection {
 public:
  using Clock = std::chrono::steady_clock;
  // Pulls the next piece of a streamed request body into buf (at most n bytes); 0 = the end.
  using BodySource = std::function<std::size_t(char* buf, std::size_t n)>;

  explicit DockerConnection(DockerEndpoint endpoint);
  ~DockerConnection();
  DockerConnection(const DockerConnection&) = delete;
  DockerConnection& operator=(const DockerConnection&) = delete;

  const DockerEndpoint& endpoint() const noexcept;

  // Connects (and for TLS, handshakes) before `deadline`.
  void connect(Clock::time_point deadline);

  struct Request {
    std::string method = "GET";
    std::string target;  // "/v1.41/…"
    std::string body;    // sent whole (Content-Length) unless `source` is set
    std::string content_type = "application/json";
    BodySource source;     // a streamed body (Transfer-Encoding: chunked), read until it returns 0
    bool upgrade = false;  // Connection: Upgrade, Upgrade: tcp (exec start)
  };
  // Sends the request (connecting first if needed) and reads the response's header:
  // status and headers; the body follows through read_body (or, after a 101, read_raw).
  // `idle` bounds every step: each piece of a streamed body resets it.
  HttpReply send(const Request& req, std::chrono::milliseconds idle);
  // The next bytes of the response body (at most n); 0 at its end.
  std::size_t read_body(char* buf, std::size_t n, std::chrono::milliseconds idle);
  // The rest of the body, at most `limit` bytes (PodConnectionError beyond).
  std::string read_body_all(std::size_t limit, std::chrono::milliseconds idle);

  // After an upgrade: the raw stream. Appends what arrives to `out`. A deadline that
  // passes returns timeout and keeps the connection and the pending read (call again).
  enum class RawRead { data, eof, timeout };
  RawRead read_raw(std::string& out, Clock::time_point deadline);
  // Queues `data` for the raw stream, written while read_raw runs; with `then_close`, the
  // sending side is shut down after it (stdin EOF). Write failures (the process exited
  // without reading) are ignored.
  void write_raw(std::string data, bool then_close);

  // Connected, the last answer read whole, not upgraded: it can carry another request.
  bool reusable() const noexcept;
  void close() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pw::transport

#pragma once
// EngineClient: the Docker Engine API v1.41 as the capsule layer uses it (DockerBackend,
// DockerExecChannel). One implementation of the protocol, transport/docker_api.cpp (Beast),
// reached three ways: a unix socket (the default), tcp://, and tcp:// with TLS client
// certificates read as the docker CLI reads them (engine_endpoint_from_env).
//
// Blocking and thread-safe: each call runs on the caller's thread, on a connection of its
// own (idle connections are kept for reuse, up to four), so a slow upload or download
// never holds up another call. Every failure to reach or talk to the engine throws
// EngineUnavailableError naming the engine (redacted); HTTP error answers are returned,
// for the caller to map (throw_engine_error helps).
#include <podwrangler/capsules/model.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pw::capsules {

// Where the engine listens and how to reach it.
struct EngineEndpoint {
  std::string host = "unix:///var/run/docker.sock";  // unix:///path or tcp://HOST[:PORT]
  bool tls = false;                                  // tcp:// over TLS
  bool tls_verify = false;                           // verify the daemon's certificate against ca_file (and its name)
  std::string ca_file;                               // PEM; with tls_verify
  std::string cert_file;                             // the client certificate (PEM), "" = none
  std::string key_file;                              // its key (PEM)
};

// The docker CLI's rules (docker/cli, opts and flags): `host`, else $DOCKER_HOST, else
// unix:///var/run/docker.sock. TLS when $DOCKER_TLS_VERIFY is non-empty (the daemon's
// certificate verified against ca.pem) or $DOCKER_TLS is non-empty (encrypted, not
// verified: a warning on every connection); the files are ca.pem, cert.pem and key.pem in
// $DOCKER_CERT_PATH (default ~/.docker). A client certificate is used when cert.pem exists.
// Nothing is read for unix:// hosts. Throws CapsuleValidationError("docker_host", …) for a
// host that is neither unix:// nor tcp://.
EngineEndpoint engine_endpoint_from_env(std::string host = "");

struct EngineReply {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case
  bool ok() const noexcept { return status >= 200 && status < 300; }
  // The engine's {"message": …}, else the start of the body.
  std::string message() const;
  // The body as JSON (EngineUnavailableError when it is not JSON).
  nlohmann::json json() const;
};

struct EngineExecSpec {
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;
  std::string cwd;   // WorkingDir ("" = the container's)
  std::string user;  // "" = the container's
  bool attach_stdin = false;
};

struct EngineExecState {
  bool running = false;
  int exit_code = 0;
  int pid = 0;  // on the engine's host
};

// A started exec (hijacked connection, 8-byte stdcopy frames). Used from one thread.
class EngineExec {
 public:
  using Clock = std::chrono::steady_clock;
  virtual ~EngineExec() = default;
  virtual const std::string& id() const noexcept = 0;
  // Queues `data` for the exec's stdin, then closes it; written while next() waits.
  virtual void send_stdin(std::string data) = 0;
  enum class Next { data, end, timeout };
  // Waits for output until `deadline` (Clock::time_point::max(): no limit) and appends
  // stdout and stderr payloads to out and err. `end`: the streams are closed (the process
  // has exited, or its output is closed); `timeout` keeps the exec: call again.
  virtual Next next(std::string& out, std::string& err, Clock::time_point deadline) = 0;
  virtual void close() noexcept = 0;
};

class EngineClient {
 public:
  explicit EngineClient(EngineEndpoint endpoint);
  ~EngineClient();
  EngineClient(const EngineClient&) = delete;
  EngineClient& operator=(const EngineClient&) = delete;

  const EngineEndpoint& endpoint() const noexcept;
  // "unix:///var/run/docker.sock", "tcp://10.0.0.5:2376 (TLS)": redacted.
  std::string describe() const;

  // One request, the answer read whole (at most 64 MiB). `timeout` bounds each step.
  EngineReply call(const std::string& method, const std::string& target, const std::string& body = "",
                   std::chrono::milliseconds timeout = std::chrono::seconds(60));
  EngineReply call_json(const std::string& method, const std::string& target, const nlohmann::json& body,
                        std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // A request whose body is pulled from `src` as it is sent (chunked): `timeout` bounds
  // each piece, not the whole transfer.
  EngineReply upload(const std::string& method, const std::string& target, const std::string& content_type,
                     ByteSource& src, std::chrono::milliseconds timeout = std::chrono::seconds(60));

  // A request whose answer's body is read as it arrives: reply() has the status and
  // headers; a 2xx body is read through read(), any other was read whole into reply().body.
  // It must not outlive the client.
  class BodyStream : public ByteSource {
   public:
    virtual const EngineReply& reply() const noexcept = 0;
  };
  std::unique_ptr<BodyStream> open(const std::string& method, const std::string& target,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(60));

  // Creates and starts an exec in `container` (POST /containers/{id}/exec, then
  // /exec/{id}/start upgraded on the same connection). 404 → CapsuleNotFoundError,
  // 409 (not running, paused) → CapsuleConflictError, other refusals → CapsuleValidationError.
  std::unique_ptr<EngineExec> exec_start(const std::string& container, const EngineExecSpec& spec);
  EngineExecState exec_inspect(const std::string& exec_id);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Throws the capsule error for an engine's refusal: 404 → CapsuleNotFoundError(name, what),
// 409 → CapsuleConflictError, 400 → CapsuleValidationError(what), 5xx → `server_error`'s
// choice (CapsuleValidationError while creating or starting: the engine refused a
// setting; CapsuleConflictError otherwise). `action` words the message ("pause capsule").
enum class ServerErrorAs { validation, conflict };
[[noreturn]] void throw_engine_error(const EngineReply& r, const std::string& action, const std::string& name,
                                     std::string_view what, ServerErrorAs server_error = ServerErrorAs::conflict);

}  // namespace pw::capsules

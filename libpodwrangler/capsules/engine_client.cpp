#include <podwrangler/capsules/engine_client.hpp>

#include <podwrangler/errors.hpp>
#include <podwrangler/providers/docker.hpp>
#include <podwrangler/redact.hpp>
#include <podwrangler/url.hpp>

#include "transport/docker_api.hpp"

#include <cstdlib>
#include <filesystem>
#include <mutex>

namespace pw::capsules {

namespace {

using transport::DockerConnection;
constexpr std::size_t kMaxReply = 64u << 20;
constexpr std::size_t kMaxIdle = 4;

std::string env_or(const char* name, std::string fallback = "") {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : std::move(fallback);
}

transport::DockerEndpoint to_transport(const EngineEndpoint& ep) {
  try {
    transport::DockerEndpoint t = transport::parse_docker_endpoint(ep.host, ep.tls);
    if (t.tls) {
      t.tls_options.insecure_skip_verify = !ep.tls_verify;
      t.tls_options.ca_file = ep.ca_file;
      t.cert_file = ep.cert_file;
      t.key_file = ep.key_file;
    }
    return t;
  } catch (const PodConfigValidationError& e) {
    throw CapsuleValidationError("docker_host", e.what());
  }
}

std::string shown(const EngineEndpoint& ep) {
  std::string s = redact_url(ep.host);
  if (ep.tls) s += ep.tls_verify ? " (TLS)" : " (TLS, unverified)";
  return s;
}

}  // namespace

EngineEndpoint engine_endpoint_from_env(std::string host) {
  EngineEndpoint ep;
  ep.host = host.empty() ? env_or("DOCKER_HOST", "unix:///var/run/docker.sock") : std::move(host);
  (void)to_transport(ep);  // validates the host
  if (!ep.host.starts_with("tcp://")) return ep;
  bool verify = !env_or("DOCKER_TLS_VERIFY").empty();
  ep.tls = verify || !env_or("DOCKER_TLS").empty();
  if (!ep.tls) return ep;
  ep.tls_verify = verify;
  std::filesystem::path dir = env_or("DOCKER_CERT_PATH");
  if (dir.empty()) dir = std::filesystem::path(env_or("HOME", "/root")) / ".docker";
  if (verify) ep.ca_file = (dir / "ca.pem").string();
  std::error_code ec;
  if (std::filesystem::exists(dir / "cert.pem", ec)) {
    ep.cert_file = (dir / "cert.pem").string();
    ep.key_file = (dir / "key.pem").string();
  }
  return ep;
}

std::string EngineReply::message() const {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) return j["message"].get<std::string>();
  std::string s = body.substr(0, 300);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

nlohmann::json EngineReply::json() const {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded())
    throw EngineUnavailableError("the Docker engine answered HTTP " + std::to_string(status) +
                                 " with a body that is not JSON: " + redact_text(body.substr(0, 120)));
  return j;
}

void throw_engine_error(const EngineReply& r, const std::string& action, const std::string& name, std::string_view what,
                        ServerErrorAs server_error) {
  std::string msg = redact_text(r.message());
  switch (r.status) {
    case 404: throw CapsuleNotFoundError(name, what);
    case 409: throw CapsuleConflictError("cannot " + action + ": " + msg);
    case 400: throw CapsuleValidationError(std::string(what), "cannot " + action + ": " + msg);
    default: break;
  }
  std::string text = "cannot " + action + ": the engine answered HTTP " + std::to_string(r.status) + ": " + msg;
  if (server_error == ServerErrorAs::validation) throw CapsuleValidationError(std::string(what), text);
  throw CapsuleConflictError(text);
}

// ---- EngineClient ----------------------------------------------------------------------------

struct EngineClient::Impl {
  EngineEndpoint ep;
  transport::DockerEndpoint tep;
  std::string where;
  std::mutex mu;
  std::vector<std::unique_ptr<DockerConnection>> idle;

  // A connection from the pool (reused = true) or a new one.
  std::unique_ptr<DockerConnection> acquire(bool& reused) {
    {
      std::lock_guard lock(mu);
      if (!idle.empty()) {
        auto c = std::move(idle.back());
        idle.pop_back();
        reused = true;
        return c;
      }
    }
    reused = false;
    return std::make_unique<DockerConnection>(tep);
  }
  void release(std::unique_ptr<DockerConnection> c) {
    if (!c || !c->reusable()) return;
    std::lock_guard lock(mu);
    if (idle.size() < kMaxIdle) idle.push_back(std::move(c));
  }

  [[noreturn]] void unavailable(const PodClientError& e) const {
    if (const auto* ce = dynamic_cast<const PodConnectionError*>(&e)) throw EngineUnavailableError(ce->reason());
    throw EngineUnavailableError("cannot reach the Docker engine at " + where + ": " + e.what());
  }

  // Sends `req` and reads its answer's header. A reused connection the engine has closed
  // in the meantime fails at once: the request is sent again on a fresh one (never for a
  // streamed body, which cannot be sent twice).
  std::pair<std::unique_ptr<DockerConnection>, transport::HttpReply> send(const DockerConnection::Request& req,
                                                                          std::chrono::milliseconds timeout) {
    for (int attempt = 0;; ++attempt) {
      bool reused = false;
      auto conn = acquire(reused);
      try {
        transport::HttpReply r = conn->send(req, timeout);
        return {std::move(conn), std::move(r)};
      } catch (const PodConnectionError& e) {
        if (reused && attempt == 0 && !req.source) continue;
        unavailable(e);
      } catch (const PodConfigValidationError& e) {
        unavailable(e);
      }
    }
  }

  EngineReply read_whole(std::unique_ptr<DockerConnection> conn, transport::HttpReply r,
                         std::chrono::milliseconds timeout) {
    EngineReply out;
    out.status = r.status;
    out.headers = std::move(r.headers);
    try {
      out.body = conn->read_body_all(kMaxReply, timeout);
    } catch (const PodConnectionError& e) {
      unavailable(e);
    }
    release(std::move(conn));
    // Go's answer to plain HTTP on a TLS port: not the engine's word on the request.
    if (out.status == 400 && out.body.find("Client sent an HTTP request to an HTTPS server") != std::string::npos)
      throw EngineUnavailableError("the Docker engine at " + where +
                                   " speaks TLS only (set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH)");
    return out;
  }
};

EngineClient::EngineClient(EngineEndpoint endpoint) : impl_(std::make_unique<Impl>()) {
  impl_->tep = to_transport(endpoint);
  impl_->where = shown(endpoint);
  impl_->ep = std::move(endpoint);
}

EngineClient::~EngineClient() = default;

const EngineEndpoint& EngineClient::endpoint() const noexcept { return impl_->ep; }

std::string EngineClient::describe() const { return impl_->where; }

EngineReply EngineClient::call(const std::string& method, const std::string& target, const std::string& body,
                               std::chrono::milliseconds timeout) {
  DockerConnection::Request req;
  req.method = method;
  req.target = target;
  req.body = body;
  auto [conn, r] = impl_->send(req, timeout);
  return impl_->read_whole(std::move(conn), std::move(r), timeout);
}

EngineReply EngineClient::call_json(const std::string& method, const std::string& target, const nlohmann::json& body,
                                    std::chrono::milliseconds timeout) {
  return call(method, target, body.dump(), timeout);
}

EngineReply EngineClient::upload(const std::string& method, const std::string& target, const std::string& content_type,
                                 ByteSource& src, std::chrono::milliseconds timeout) {
  DockerConnection::Request req;
  req.method = method;
  req.target = target;
  req.content_type = content_type;
  req.source = [&src](char* buf, std::size_t n) { return src.read(buf, n); };
  auto [conn, r] = impl_->send(req, timeout);
  return impl_->read_whole(std::move(conn), std::move(r), timeout);
}

namespace {
class ConnectionBody final : public EngineClient::BodyStream {
 public:
  ConnectionBody(std::unique_ptr<DockerConnection> conn, EngineReply reply, std::chrono::milliseconds timeout,
                 std::function<void(std::unique_ptr<DockerConnection>)> release)
      : conn_(std::move(conn)),
        reply_(std::move(reply)),
        timeout_(timeout),
        release_(std::move(release)),
        done_(conn_ == nullptr) {}
  ~ConnectionBody() override {
    if (done_) release_(std::move(conn_));
  }
  const EngineReply& reply() const noexcept override { return reply_; }
  std::size_t read(char* buf, std::size_t n) override {
    if (done_ || n == 0) return 0;
    std::size_t got = 0;
    try {
      got = conn_->read_body(buf, n, timeout_);
    } catch (const PodConnectionError& e) {
      throw EngineUnavailableError(e.reason());
    }
    if (got == 0) done_ = true;
    return got;
  }

 private:
  std::unique_ptr<DockerConnection> conn_;
  EngineReply reply_;
  std::chrono::milliseconds timeout_;
  std::function<void(std::unique_ptr<DockerConnection>)> release_;
  bool done_;
};

class HijackedExec final : public EngineExec {
 public:
  HijackedExec(std::unique_ptr<DockerConnection> conn, std::string id, std::string where)
      : conn_(std::move(conn)), id_(std::move(id)), where_(std::move(where)) {}
  ~HijackedExec() override { close(); }
  const std::string& id() const noexcept override { return id_; }
  void send_stdin(std::string data) override {
    try {
      conn_->write_raw(std::move(data), true);
    } catch (const PodConnectionError& e) {
      throw EngineUnavailableError(e.reason());
    }
  }
  Next next(std::string& out, std::string& err, Clock::time_point deadline) override {
    if (ended_) return Next::end;
    std::string raw;
    DockerConnection::RawRead r{};
    try {
      r = conn_->read_raw(raw, deadline);
    } catch (const PodConnectionError& e) {
      throw EngineUnavailableError(e.reason());
    }
    if (!raw.empty() && !demux_.feed(raw, out, &err))
      throw EngineUnavailableError("malformed exec stream from the Docker engine at " + where_);
    if (r == DockerConnection::RawRead::eof) {
      ended_ = true;
      return Next::end;
    }
    return r == DockerConnection::RawRead::timeout ? Next::timeout : Next::data;
  }
  void close() noexcept override { conn_->close(); }

 private:
  std::unique_ptr<DockerConnection> conn_;
  std::string id_;
  std::string where_;
  docker::Demux demux_;
  bool ended_ = false;
};
}  // namespace

std::unique_ptr<EngineClient::BodyStream> EngineClient::open(const std::string& method, const std::string& target,
                                                             std::chrono::milliseconds timeout) {
  DockerConnection::Request req;
  req.method = method;
  req.target = target;
  auto [conn, r] = impl_->send(req, timeout);
  EngineReply reply;
  reply.status = r.status;
  reply.headers = std::move(r.headers);
  auto release = [impl = impl_.get()](std::unique_ptr<DockerConnection> c) { impl->release(std::move(c)); };
  if (!reply.ok()) {
    EngineReply whole = impl_->read_whole(std::move(conn), std::move(r), timeout);
    whole.headers = std::move(reply.headers);
    auto body = std::make_unique<ConnectionBody>(nullptr, std::move(whole), timeout, release);
    return body;
  }
  return std::make_unique<ConnectionBody>(std::move(conn), std::move(reply), timeout, release);
}

std::unique_ptr<EngineExec> EngineClient::exec_start(const std::string& container, const EngineExecSpec& spec) {
  nlohmann::json body{{"AttachStdin", spec.attach_stdin},
                      {"AttachStdout", true},
                      {"AttachStderr", true},
                      {"Tty", false},
                      {"Cmd", spec.argv}};
  if (!spec.env.empty()) {
    std::vector<std::string> env;
    for (const auto& [k, v] : spec.env) env.push_back(k + "=" + v);
    body["Env"] = env;
  }
  if (!spec.cwd.empty()) body["WorkingDir"] = spec.cwd;
  if (!spec.user.empty()) body["User"] = spec.user;
  DockerConnection::Request req;
  req.method = "POST";
  req.target = "/v1.41/containers/" + percent_encode(container) + "/exec";
  req.body = body.dump();
  constexpr auto timeout = std::chrono::seconds(60);
  auto [conn, r] = impl_->send(req, timeout);
  std::string text;
  try {
    text = conn->read_body_all(kMaxReply, timeout);
  } catch (const PodConnectionError& e) {
    impl_->unavailable(e);
  }
  EngineReply created{r.status, std::move(text), {}};
  if (created.status != 201)
    throw_engine_error(created, "exec in container " + container, container, "container", ServerErrorAs::validation);
  auto j = created.json();
  if (!j.is_object() || !j.contains("Id") || !j["Id"].is_string())
    throw EngineUnavailableError("the Docker engine at " + impl_->where + " created an exec without an Id");
  std::string id = j["Id"].get<std::string>();
  DockerConnection::Request start;
  start.method = "POST";
  start.target = "/v1.41/exec/" + id + "/start";
  start.body = R"({"Detach":false,"Tty":false})";
  start.upgrade = true;
  transport::HttpReply started;
  try {
    started = conn->send(start, timeout);
    if (started.status != 101) started.body = conn->read_body_all(kMaxReply, timeout);
  } catch (const PodConnectionError& e) {
    impl_->unavailable(e);
  }
  if (started.status != 101) {
    EngineReply refused{started.status, std::move(started.body), {}};
    throw_engine_error(refused, "start exec in container " + container, container, "container",
                       ServerErrorAs::validation);
  }
  return std::make_unique<HijackedExec>(std::move(conn), std::move(id), impl_->where);
}

EngineExecState EngineClient::exec_inspect(const std::string& exec_id) {
  EngineReply r = call("GET", "/v1.41/exec/" + exec_id + "/json");
  if (r.status != 200) throw_engine_error(r, "inspect exec " + exec_id, exec_id, "exec");
  auto j = r.json();
  EngineExecState s;
  s.running = j.value("Running", false);
  if (j.contains("ExitCode") && j["ExitCode"].is_number_integer()) s.exit_code = j["ExitCode"].get<int>();
  if (j.contains("Pid") && j["Pid"].is_number_integer()) s.pid = j["Pid"].get<int>();
  return s;
}

}  // namespace pw::capsules

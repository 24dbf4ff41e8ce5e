#include "embedded_server/server.hpp"

#include "embedded_server/capsule_service.hpp"
#include "embedded_server/http_server.hpp"
#include "embedded_server/http_util.hpp"
#include "embedded_server/pool.hpp"
#include "embedded_server/replicas.hpp"
#include "embedded_server/routes.hpp"
#include "embedded_server/server_loop.hpp"

#include <podwrangler/errors.hpp>
#include <podwrangler/redact.hpp>
#include <podwrangler/sigpipe.hpp>

#include <httplib.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <iostream>
#include <optional>
#include <thread>

namespace pw::server {
namespace {

// Constant-time comparison of the presented key with ours (hashes first, so the
// length of the key does not leak either).
bool key_matches(const std::string& presented, const std::string& expected) {
  unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(presented.data()), presented.size(), a);
  SHA256(reinterpret_cast<const unsigned char*>(expected.data()), expected.size(), b);
  return CRYPTO_memcmp(a, b, sizeof a) == 0;
}

// RFC 9110 §11.1: the scheme is case-insensitive ("bearer", "BEARER"), then one or more
// spaces, then the token. nullopt for anything else.
std::optional<std::string> bearer_token(std::string_view auth) {
  static constexpr std::string_view kScheme = "bearer";
  if (auth.size() <= kScheme.size() + 1) return std::nullopt;
  for (std::size_t i = 0; i < kScheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(auth[i])) != kScheme[i]) return std::nullopt;
  std::size_t i = kScheme.size();
  if (auth[i] != ' ') return std::nullopt;
  while (i < auth.size() && auth[i] == ' ') ++i;
  std::string_view token = auth.substr(i);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  if (token.empty()) return std::nullopt;
  return std::string(token);
}

// Every warm session holds a descriptor (a socket or a PTY): lift the soft limit to the
// hard one so a fleet of a few thousand pods fits.
void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

struct Server::Impl {
  explicit Impl(Settings s) {
    raise_fd_limit();
    if (s.database_url.empty()) s.database_url = default_database_url();
    s.validate();
    ctx.settings = std::move(s);
    ctx.server_id = make_server_id();
    // Opening checks the secret key against the database's key check: a mis-keyed
    // replica stops here, before it writes anything.
    ctx.store = open_store(ctx.settings.database_url);
    // This replica's lease; every heartbeat also closes the rows of dead replicas (expired
    // leases, dead processes of this host) as interrupted, at their time of death.
    lease = std::make_unique<ReplicaLease>(*ctx.store, ctx.server_id, ReplicaTiming::from_env());
    runtime = std::make_unique<ServerLoop>();
    pool = std::make_unique<SessionPool>(runtime->executor(), ctx.settings.pool_max_sessions,
                                         ctx.settings.pool_idle_ttl_s);
    ctx.runtime = runtime.get();
    ctx.pool = pool.get();
    pool->start_reaper();
    capsules = std::make_unique<CapsuleService>(ctx);
    ctx.capsules = capsules.get();
    capsules->start();
    make_http();
  }

  ~Impl() { stop(ctx.settings.shutdown_grace_s); }

  void make_http() {
    const auto& s = ctx.settings;
    HttpLimits limits;
    limits.max_body_bytes = s.max_body_bytes;
    limits.max_upload_bytes = s.max_upload_bytes;
    limits.request_timeout_s = s.request_timeout_s;
    limits.keep_alive_timeout_s = s.keep_alive_timeout_s;
    limits.keep_alive_max_count = s.keep_alive_max_count;
    limits.max_connections = s.max_connections;
    limits.max_connections_per_client = s.max_connections_per_client;
    limits.workers = s.threads;

    HttpHooks hooks;
    hooks.default_headers = {{"Cache-Control", "no-store"}};
    hooks.pre_routing = [this](const httplib::Request& req, httplib::Response& res) {
      if (ctx.settings.api_key.empty() || req.path == "/health" || req.path == "/health/") return false;
      std::string auth = req.get_header_value("Authorization");
      std::optional<std::string> token = bearer_token(auth);
      if (token && key_matches(*token, ctx.settings.api_key.reveal())) return false;
      res.set_header("WWW-Authenticate", "Bearer");
      send_error(res, ErrorKind::unauthorized,
                 auth.empty() ? "missing Authorization: Bearer <key> header" : "invalid API key");
      return true;
    };
    hooks.on_exception = [](httplib::Response& res) { send_current_exception(res); };
    hooks.on_error = [](httplib::Response& res, ErrorKind kind, const std::string& message) {
      send_error(res, kind, message);
    };
    if (s.access_log) {
      // One request, one line: every field is escaped (a %0a in a path cannot start a
      // line of its own); never bodies or headers.
      hooks.logger = [](const httplib::Request& req, const httplib::Response& res, double seconds) {
        char ms[32];
        std::snprintf(ms, sizeof ms, "%.3f", seconds * 1000.0);
        std::string line = escape_log_field(req.remote_addr, 64) + " \"" + escape_log_field(req.method, 16) + " " +
                           escape_log_field(redact_url(req.target)) + "\" " + std::to_string(res.status) + " " +
                           std::to_string(res.body.size()) + " " + ms + "ms\n";
        std::cerr << line << std::flush;
      };
    }
    Router router;
    add_health_routes(router, ctx);
    add_pod_routes(router, ctx);
    add_exec_routes(router, ctx);
    add_command_routes(router, ctx);
    add_capsule_routes(router, ctx);
    add_capsule_exec_routes(router, ctx);
    add_capsule_file_routes(router, ctx);
    add_docs_routes(router, ctx);
    try {
      http = std::make_unique<HttpServer>(limits, std::move(router), std::move(hooks), s.tls_cert, s.tls_key);
    } catch (const std::runtime_error& e) {
      throw PodConfigValidationError("tls", "cannot load --tls-cert/--tls-key (" + s.tls_cert + "): " + e.what());
    }
  }

  int bind() {
    if (bound_port > 0) return bound_port;
    const auto& s = ctx.settings;
    try {
      bound_port = http->bind(s.host, s.port);
    } catch (const std::system_error& e) {
      throw ListenError(s.host, s.port, e.code().message());
    }
    return bound_port;
  }

  void run() {
    bind();
    http->run();
  }

  void stop(double grace_s) {
    if (stopped.exchange(true)) return;
    runtime->set_draining();
    http->stop();  // no new connections, idle ones closed; requests in progress go on
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<long>(grace_s * 1000));
    if (!runtime->wait_idle(deadline)) {
      // Past the grace: what is still running is recorded as interrupted.
      runtime->set_hard_stop();
      runtime->block_on([p = pool.get()]() { return p->close_all(); });
      runtime->wait_idle(std::chrono::steady_clock::now() + std::chrono::seconds(5));
    }
    http->wait();      // every connection has ended
    capsules->stop();  // the monitor; capsules themselves live on (their idle timers resume at the next start)
    try {
      runtime->block_on([p = pool.get()]() { return p->close_all(); });
    } catch (...) {
    }
    try {
      ctx.store->interrupt_running(ctx.server_id);
    } catch (const std::exception& e) {
      std::cerr << "podwrangler serve: could not mark interrupted commands: " << e.what() << "\n";
    }
    lease->stop(/*release=*/true);
    runtime->stop();
  }

  ServerState ctx;
  std::unique_ptr<ReplicaLease> lease;
  // Destroyed in reverse order: the pool's sessions go while the loop object exists.
  std::unique_ptr<ServerLoop> runtime;
  std::unique_ptr<SessionPool> pool;
  std::unique_ptr<CapsuleService> capsules;
  std::unique_ptr<HttpServer> http;
  int bound_port = 0;
  std::atomic<bool> stopped{false};
};

Server::Server(Settings settings) : impl_(std::make_unique<Impl>(std::move(settings))) {}
Server::~Server() = default;
int Server::bind() { return impl_->bind(); }
void Server::run() { impl_->run(); }
int Server::start_background() {
  // The server's threads start with SIGPIPE blocked (they inherit this mask): cpp-httplib
  // answers with send() without MSG_NOSIGNAL, and a client that leaves mid-answer must be
  // EPIPE for that worker, not the end of a host process (the CLI's --local, a test).
  ScopedSigpipeBlock nopipe;
  int port = impl_->bind();
  impl_->http->start();
  return port;
}
void Server::stop(double grace_s) { impl_->stop(grace_s); }
int Server::port() const noexcept { return impl_->bound_port; }
const Settings& Server::settings() const noexcept { return impl_->ctx.settings; }

int serve_forever(Settings settings) {
  // Signals are taken by sigwait on this thread; every thread started below inherits
  // the blocked mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Server server(std::move(settings));
  int port = server.start_background();
  const auto& s = server.settings();
  std::cerr << "podwrangler: serving on " << (s.tls_cert.empty() ? "http" : "https") << "://"
            << (s.host.find(':') != std::string::npos ? "[" + s.host + "]" : s.host) << ":" << port
            << " (database: " << database_kind(s.database_url) << ")" << std::endl;
  int sig = 0;
  sigwait(&set, &sig);
  std::cerr << "podwrangler: " << (sig == SIGINT ? "SIGINT" : "SIGTERM") << ": stopping (running commands get "
            << s.shutdown_grace_s << " s)" << std::endl;
  // A second signal stops at once.
  std::thread([set]() mutable {
    int again = 0;
    sigwait(&set, &again);
    std::_Exit(130);
  }).detach();
  server.stop(s.shutdown_grace_s);
  std::cerr << "podwrangler: stopped" << std::endl;
  return 0;
}

}  // namespace pw::server

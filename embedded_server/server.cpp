#include "embedded_server/server.hpp"

#include "embedded_server/http_util.hpp"
#include "embedded_server/pool.hpp"
#include "embedded_server/routes.hpp"
#include "embedded_server/runtime.hpp"

#include <podwrangler/errors.hpp>

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
#include <thread>

namespace pw::server {
namespace {

std::string make_server_id() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  return std::string(host) + ":" + std::to_string(getpid()) + ":" + std::to_string(ms);
}

// Constant-time comparison of the presented key with ours (hashes first, so the
// length of the key does not leak either).
bool key_matches(const std::string& presented, const std::string& expected) {
  unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(presented.data()), presented.size(), a);
  SHA256(reinterpret_cast<const unsigned char*>(expected.data()), expected.size(), b);
  return CRYPTO_memcmp(a, b, sizeof a) == 0;
}

// Running rows owned by server processes of this host that no longer exist.
std::vector<std::string> dead_local_servers(const std::vector<std::string>& ids) {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  std::string prefix = std::string(host) + ":";
  std::vector<std::string> dead;
  for (const auto& id : ids) {
    if (id.rfind(prefix, 0) != 0) continue;
    auto rest = id.substr(prefix.size());
    auto colon = rest.find(':');
    if (colon == std::string::npos) continue;
    long pid = std::strtol(rest.substr(0, colon).c_str(), nullptr, 10);
    if (pid <= 0) continue;
    if (pid == getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) dead.push_back(id);
  }
  return dead;
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
    ctx.store = open_store(ctx.settings.database_url);
    // Rows left `running` by a server of this host that died are no longer running.
    try {
      auto dead = dead_local_servers(ctx.store->running_server_ids());
      if (!dead.empty()) ctx.store->interrupt_orphans(dead);
    } catch (const StoreError& e) {
      std::cerr << "podwrangler serve: could not check for orphaned commands: " << e.what() << "\n";
    }
    runtime = std::make_unique<Runtime>();
    pool = std::make_unique<SessionPool>(runtime->executor(), ctx.settings.pool_max_sessions,
                                         ctx.settings.pool_idle_ttl_s);
    ctx.runtime = runtime.get();
    ctx.pool = pool.get();
    pool->start_reaper();
    make_http();
  }

  ~Impl() {
    stop(ctx.settings.shutdown_grace_s);
  }

  void make_http() {
    const auto& s = ctx.settings;
    if (!s.tls_cert.empty()) {
      auto ssl = std::make_unique<httplib::SSLServer>(s.tls_cert.c_str(), s.tls_key.c_str());
      if (!ssl->is_valid())
        throw PodConfigValidationError("tls", "cannot load --tls-cert/--tls-key (" + s.tls_cert + ")");
      http = std::move(ssl);
    } else {
      http = std::make_unique<httplib::Server>();
    }
    auto& h = *http;
    int threads = s.threads;
    h.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    h.set_tcp_nodelay(true);
    h.set_keep_alive_max_count(static_cast<size_t>(s.keep_alive_max_count));
    h.set_keep_alive_timeout(s.keep_alive_timeout_s);
    h.set_read_timeout(30, 0);
    h.set_write_timeout(30, 0);
    h.set_payload_max_length(s.max_body_bytes);
    h.set_socket_options([this](int fd) {
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      listen_fd = fd;
    });
    h.set_default_headers({{"Cache-Control", "no-store"}});

    h.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (ctx.settings.api_key.empty() || req.path == "/health" || req.path == "/health/")
        return httplib::Server::HandlerResponse::Unhandled;
      std::string auth = req.get_header_value("Authorization");
      static constexpr std::string_view kBearer = "Bearer ";
      bool ok = auth.size() > kBearer.size() && auth.compare(0, kBearer.size(), kBearer) == 0 &&
                key_matches(auth.substr(kBearer.size()), ctx.settings.api_key.reveal());
      if (ok) return httplib::Server::HandlerResponse::Unhandled;
      res.set_header("WWW-Authenticate", "Bearer");
      send_error(res, 401, "unauthorized",
                 auth.empty() ? "missing Authorization: Bearer <key> header" : "invalid API key");
      return httplib::Server::HandlerResponse::Handled;
    });
    h.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      try {
        std::rethrow_exception(ep);
      } catch (...) {
        send_current_exception(res);
      }
    });
    // httplib's own errors (no route, body too large, unparsable request) as JSON.
    h.set_error_handler(httplib::Server::HandlerWithResponse(
        [](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      switch (res.status) {
        case 404: send_error(res, 404, "not_found", "no such endpoint: " + req.method + " " + req.path.substr(0, 200)); break;
        case 413: send_error(res, 413, "payload_too_large", "request body is larger than the limit"); break;
        case 405: send_error(res, 405, "method_not_allowed", "method not allowed"); break;
        case 400: send_error(res, 400, "bad_request", "malformed request"); break;
        default: send_error(res, res.status, "http_error", "request failed"); break;
      }
      return httplib::Server::HandlerResponse::Handled;
    }));
    if (s.access_log) {
      h.set_logger([](const httplib::Request& req, const httplib::Response& res) {
        std::cerr << req.method << " " << req.path << " " << res.status << "\n";
      });
    }
    add_health_routes(h, ctx);
    add_pod_routes(h, ctx);
    add_exec_routes(h, ctx);
    add_command_routes(h, ctx);
    add_docs_routes(h, ctx);
  }

  int bind() {
    if (bound_port > 0) return bound_port;
    const auto& s = ctx.settings;
    int port = s.port;
    if (port == 0) {
      port = http->bind_to_any_port(s.host);
      if (port <= 0) throw PodConnectionError("cannot bind " + s.host + ": " + std::strerror(errno));
    } else if (!http->bind_to_port(s.host, port)) {
      throw PodConnectionError("cannot listen on " + s.host + ":" + std::to_string(port) + ": " +
                               std::strerror(errno));
    }
    // httplib listens with a backlog of 5: a burst of clients would wait for SYN
    // retransmits. listen() again raises it.
    if (listen_fd >= 0) ::listen(listen_fd, 1024);
    bound_port = port;
    return port;
  }

  void run() {
    bind();
    http->listen_after_bind();
  }

  void stop(double grace_s) {
    if (stopped.exchange(true)) return;
    runtime->set_draining();
    http->stop();  // no new connections; requests in progress go on
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(static_cast<long>(grace_s * 1000));
    if (!runtime->wait_idle(deadline)) {
      // Past the grace: what is still running is recorded as interrupted.
      runtime->set_hard_stop();
      runtime->block_on([p = pool.get()]() { return p->close_all(); });
      runtime->wait_idle(std::chrono::steady_clock::now() + std::chrono::seconds(5));
    }
    if (listener.joinable()) listener.join();
    try {
      runtime->block_on([p = pool.get()]() { return p->close_all(); });
    } catch (...) {
    }
    try {
      ctx.store->interrupt_running(ctx.server_id);
    } catch (const std::exception& e) {
      std::cerr << "podwrangler serve: could not mark interrupted commands: " << e.what() << "\n";
    }
    runtime->stop();
  }

  Context ctx;
  // Destroyed in reverse order: the pool's sessions go while the loop object exists.
  std::unique_ptr<Runtime> runtime;
  std::unique_ptr<SessionPool> pool;
  std::unique_ptr<httplib::Server> http;
  std::thread listener;
  int listen_fd = -1;
  int bound_port = 0;
  std::atomic<bool> stopped{false};
};

Server::Server(Settings settings) : impl_(std::make_unique<Impl>(std::move(settings))) {}
Server::~Server() = default;
int Server::bind() { return impl_->bind(); }
void Server::run() { impl_->run(); }
int Server::start_background() {
  int port = impl_->bind();
  impl_->listener = std::thread([this] { impl_->http->listen_after_bind(); });
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
  std::cerr << "podwrangler: " << (sig == SIGINT ? "SIGINT" : "SIGTERM")
            << ": stopping (running commands get " << s.shutdown_grace_s << " s)" << std::endl;
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

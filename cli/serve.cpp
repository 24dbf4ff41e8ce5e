// podwrangler serve: the REST API in the foreground (embedded_server).
#include "cli/commands.hpp"
#include "cli/context.hpp"

#include "embedded_server/server.hpp"
#include "embedded_server/settings.hpp"

#include <CLI/CLI.hpp>

#include <utility>
#include <memory>

namespace pw::cli {

namespace {

// Unset options (-1 or 0, empty) leave the environment's setting or the default.
struct ServeOptions {
  std::string host, database_url, tls_cert, tls_key;
  int port = -1, threads = 0, parallel = 0;
  bool insecure_no_auth = false, access_log = false;
  double grace = -1, idle_ttl = -1;
  long long max_sessions = 0;
};

// The settings from PODWRANGLER_* with the options on top; serves until SIGINT/SIGTERM.
int serve(const ServeOptions& o) {
  auto s = pw::server::Settings::from_env();
  if (!o.host.empty()) s.host = o.host;
  if (o.port >= 0) s.port = o.port;
  if (!o.database_url.empty()) s.database_url = o.database_url;
  if (!o.tls_cert.empty()) s.tls_cert = o.tls_cert;
  if (!o.tls_key.empty()) s.tls_key = o.tls_key;
  if (o.insecure_no_auth) s.insecure_no_auth = true;
  if (o.threads > 0) s.threads = o.threads;
  if (o.parallel > 0) s.default_parallel = o.parallel;
  if (o.max_sessions > 0) s.pool_max_sessions = static_cast<std::size_t>(o.max_sessions);
  if (o.idle_ttl > 0) s.pool_idle_ttl_s = o.idle_ttl;
  if (o.grace >= 0) s.shutdown_grace_s = o.grace;
  if (o.access_log) s.access_log = true;
  s.validate();
  return pw::server::serve_forever(std::move(s));
}

}  // namespace

void set_serve_command(CLI::App& app, CommandContext& ctx) {
  auto o = std::make_shared<ServeOptions>();
  auto* c = app.add_subcommand("serve", "Run the REST API server in the foreground (until SIGINT/SIGTERM)");
  c->add_option("--host", o->host, "Address to listen on (PODWRANGLER_API_HOST, default 127.0.0.1)")->type_name("ADDR");
  c->add_option("--port", o->port, "Port, 0 for any free one (PODWRANGLER_API_PORT, default 8000)")
      ->check(CLI::Range(0, 65535))
      ->type_name("PORT");
  c->add_option("--database-url", o->database_url,
                "sqlite:///rel.db, sqlite:////abs.db, postgresql://user:pass@host:port/db "
                "(PODWRANGLER_DATABASE_URL, default SQLite in $XDG_DATA_HOME/podwrangler)")
      ->type_name("URL");
  c->add_option("--tls-cert", o->tls_cert, "PEM certificate chain: serve HTTPS (with --tls-key)")->type_name("FILE");
  c->add_option("--tls-key", o->tls_key, "PEM private key for --tls-cert")->type_name("FILE");
  c->add_flag("--insecure-no-auth", o->insecure_no_auth, "Allow a non-loopback address without PODWRANGLER_API_KEY");
  c->add_option("--threads", o->threads, "Worker threads (keep-alive connections held at once; default 64)")
      ->check(CLI::Range(1, 4096))
      ->type_name("N");
  c->add_option("--parallel", o->parallel, "Default fan-out width of run-many (default 32)")
      ->check(CLI::Range(1, 1024))
      ->type_name("N");
  c->add_option("--pool-max-sessions", o->max_sessions, "Warm pod sessions kept at most (default 4096)")
      ->check(CLI::Range(1LL, 1000000LL))
      ->type_name("N");
  c->add_option("--pool-idle-ttl", o->idle_ttl, "Seconds before an idle session is closed (default 300)")
      ->check(CLI::PositiveNumber)
      ->type_name("SECONDS");
  c->add_option("--shutdown-grace", o->grace, "Seconds running commands may finish on SIGTERM (default 30)")
      ->check(CLI::NonNegativeNumber)
      ->type_name("SECONDS");
  c->add_flag("--access-log", o->access_log, "One line per request on stderr");
  c->footer(
      "PODWRANGLER_API_KEY, when set, is required as a Bearer token on every endpoint but\n"
      "GET /health. PODWRANGLER_SECRET_KEY encrypts stored pod URLs (default: a key file in\n"
      "$XDG_DATA_HOME/podwrangler). API docs: http://HOST:PORT/docs.\n"
      "Capsules: PODWRANGLER_DOCKER_HOST (default DOCKER_HOST, else unix:///var/run/docker.sock),\n"
      "PODWRANGLER_CAPSULES=off, PODWRANGLER_AGENT_PATH, PODWRANGLER_WARM_POOL=image=N,…,\n"
      "PODWRANGLER_CAPSULE_TEMPLATES (a TOML file of [templates.NAME] tables: image, defaults,\n"
      "warm = N), PODWRANGLER_MAX_UPLOAD_BYTES (default 4 GiB). While the engine cannot be reached, capsule\n"
      "requests answer 503 and everything else works.\n\n"
      "Examples:\n"
      "  podwrangler serve\n"
      "  podwrangler serve --port 0 --database-url sqlite:////var/lib/podwrangler/pods.db\n"
      "  PODWRANGLER_API_KEY=$(openssl rand -hex 24) podwrangler serve --host 0.0.0.0 \\\n"
      "      --tls-cert cert.pem --tls-key key.pem \\\n"
      "      --database-url postgresql://pw:secret@db:5432/podwrangler");
  set_action(c, ctx, [o] { return serve(*o); });
}

}  // namespace pw::cli

#pragma once
// Server settings: defaults, then PODWRANGLER_* environment variables, then flags
// (the CLI's `serve` sets the fields it was given after from_env()).
#include <podwrangler/secret.hpp>

#include <cstddef>
#include <map>
#include <string>

namespace pw::server {

struct Settings {
  std::string host = "127.0.0.1";
  int port = 8000;                // 0: any free port (Server::port() tells which)
  std::string database_url;       // "": the default SQLite file (default_database_url()) at start
  SecretString api_key;           // empty: no auth (only allowed on loopback addresses)
  bool insecure_no_auth = false;  // allow a non-loopback address without a key
  std::string tls_cert, tls_key;  // both set: HTTPS
  // Request bodies (chunked or not) larger than this are refused while being read: 413.
  std::size_t max_body_bytes = 1 << 20;
  int threads = 64;                    // handler threads (idle connections hold none)
  int keep_alive_max_count = 1000;     // requests per keep-alive connection
  double keep_alive_timeout_s = 5;     // idle time between requests on a connection
  double request_timeout_s = 10;       // one deadline for a request's headers and body, then the connection is closed
  std::size_t max_connections = 8192;  // open at once; beyond: 503 at once
  std::size_t max_connections_per_client = 512;  // open at once from one address; beyond: 503
  std::size_t pool_max_sessions = 4096;          // warm sessions kept at most (LRU idle ones go)
  double pool_idle_ttl_s = 300.0;                // idle sessions closed after this
  int default_parallel = 32;                     // fan-out width when the request gives none
  int max_parallel = 1024;
  double shutdown_grace_s = 30.0;  // running commands may finish within this on SIGTERM
  bool access_log = false;         // one line per request on stderr (never bodies or headers)

  // Capsules (routes_capsules*.cpp, capsule_service.cpp).
  bool capsules_enabled = true;  // PODWRANGLER_CAPSULES=on|off
  // The engine: PODWRANGLER_DOCKER_HOST, else DOCKER_HOST, else the default socket.
  std::string docker_host = "unix:///var/run/docker.sock";
  std::string agent_path;                // PODWRANGLER_AGENT_PATH; "" = look next to the program
  std::map<std::string, int> warm_pool;  // PODWRANGLER_WARM_POOL "image=N,…"; empty = off
  std::string capsule_templates_file;    // PODWRANGLER_CAPSULE_TEMPLATES: TOML (capsule_templates.hpp)
  // Streamed uploads (PUT /api/v1/capsules/{id}/files) are not held by the body limit above
  // but by this one, counted while they are read: 413 past it.
  std::size_t max_upload_bytes = std::size_t{4} << 30;
  // Create the capsule manager at start (serve: reconcile at once) or on the first capsule
  // request (the CLI's --local, so a `pod list` never waits for the engine).
  bool capsules_lazy = false;

  // Defaults overlaid with PODWRANGLER_DATABASE_URL, PODWRANGLER_API_HOST,
  // PODWRANGLER_API_PORT, PODWRANGLER_API_KEY, PODWRANGLER_MAX_BODY_BYTES,
  // PODWRANGLER_REQUEST_TIMEOUT, PODWRANGLER_MAX_CONNECTIONS,
  // PODWRANGLER_MAX_CONNECTIONS_PER_CLIENT, PODWRANGLER_CAPSULES, PODWRANGLER_DOCKER_HOST
  // (DOCKER_HOST), PODWRANGLER_AGENT_PATH, PODWRANGLER_WARM_POOL,
  // PODWRANGLER_MAX_UPLOAD_BYTES. Throws PodConfigValidationError naming the variable for a
  // bad value.
  static Settings from_env();
  // Validates the combination (port range, TLS pair, auth vs address); throws
  // PodConfigValidationError naming the field.
  void validate() const;
};

bool is_loopback_host(const std::string& host);

// PODWRANGLER_WARM_POOL: "image=N,image2=M" (N 0-100; an image reference may hold ':' and
// '/', not '=' or ','). Throws PodConfigValidationError naming `field`.
std::map<std::string, int> parse_warm_pool(const std::string& text, const char* field = "PODWRANGLER_WARM_POOL");

}  // namespace pw::server

#include "embedded_server/settings.hpp"

#include "embedded_server/store/store.hpp"

#include <podwrangler/errors.hpp>

#include <arpa/inet.h>

#include <cstdlib>
#include <string>

namespace pw::server {
namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return (v && *v) ? v : nullptr;
}

int parse_port(const std::string& text, const char* field) {
  char* end = nullptr;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < 0 || v > 65535)
    throw PodConfigValidationError(field, "'" + text + "' is not a port number (0-65535)");
  return static_cast<int>(v);
}

}  // namespace

Settings Settings::from_env() {
  Settings s;
  if (const char* v = env("PODWRANGLER_DATABASE_URL")) {
    s.database_url = v;
    try {
      (void)database_kind(s.database_url);
    } catch (const PodConfigValidationError& e) {
      std::string m = e.what();  // "invalid database_url: <problem>"
      auto colon = m.find(": ");
      throw PodConfigValidationError("PODWRANGLER_DATABASE_URL",
                                     colon == std::string::npos ? m : m.substr(colon + 2));
    }
  }
  if (const char* v = env("PODWRANGLER_API_HOST")) s.host = v;
  if (const char* v = env("PODWRANGLER_API_PORT")) s.port = parse_port(v, "PODWRANGLER_API_PORT");
  if (const char* v = env("PODWRANGLER_API_KEY")) s.api_key = SecretString(v);
  return s;
}

bool is_loopback_host(const std::string& host) {
  if (host == "localhost") return true;
  in_addr a4{};
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  in6_addr a6{};
  if (inet_pton(AF_INET6, host.c_str(), &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

void Settings::validate() const {
  if (port < 0 || port > 65535) throw PodConfigValidationError("port", "must be 0-65535");
  if (tls_cert.empty() != tls_key.empty())
    throw PodConfigValidationError("tls", "--tls-cert and --tls-key go together");
  if (api_key.empty() && !insecure_no_auth && !is_loopback_host(host))
    throw PodConfigValidationError(
        "host", "refusing to listen on " + host +
                    " without PODWRANGLER_API_KEY; set a key or pass --insecure-no-auth");
  if (!api_key.empty() && api_key.reveal().size() < 16)
    throw PodConfigValidationError("PODWRANGLER_API_KEY", "must be at least 16 characters");
  if (threads < 1 || threads > 4096) throw PodConfigValidationError("threads", "must be 1-4096");
  if (max_body_bytes < 1024) throw PodConfigValidationError("max_body_bytes", "must be at least 1024");
  if (default_parallel < 1 || default_parallel > max_parallel)
    throw PodConfigValidationError("parallel", "must be 1-" + std::to_string(max_parallel));
  if (pool_max_sessions < 1) throw PodConfigValidationError("pool_max_sessions", "must be at least 1");
  if (!(pool_idle_ttl_s > 0)) throw PodConfigValidationError("pool_idle_ttl", "must be positive");
  if (!(shutdown_grace_s >= 0)) throw PodConfigValidationError("shutdown_grace", "must be >= 0");
  if (!database_url.empty()) (void)database_kind(database_url);
}

}  // namespace pw::server

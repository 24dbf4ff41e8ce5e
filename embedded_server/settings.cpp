#include "embedded_server/settings.hpp"

#include "embedded_server/store/store.hpp"

#include <podwrangler/errors.hpp>

#include <arpa/inet.h>

#include <cctype>
#include <cerrno>
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

// A whole decimal number in [min, max]: "5x", " 5", "" and out-of-range values are refused.
long long parse_whole(const std::string& text, const char* field, long long min, long long max) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  bool digits = !text.empty() && (std::isdigit(static_cast<unsigned char>(text[0])) != 0);
  if (!digits || *end != '\0' || errno == ERANGE || v < min || v > max)
    throw PodConfigValidationError(field, "'" + text.substr(0, 32) + "' is not a whole number in " +
                                              std::to_string(min) + "-" + std::to_string(max));
  return v;
}

double parse_seconds(const std::string& text, const char* field, double max) {
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(text.c_str(), &end);
  bool digits = !text.empty() && (std::isdigit(static_cast<unsigned char>(text[0])) != 0);
  if (!digits || *end != '\0' || errno == ERANGE || !(v > 0) || v > max)
    throw PodConfigValidationError(field, "'" + text.substr(0, 32) + "' is not a number of seconds in (0, " +
                                              std::to_string(static_cast<long>(max)) + "]");
  return v;
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
      throw PodConfigValidationError("PODWRANGLER_DATABASE_URL", colon == std::string::npos ? m : m.substr(colon + 2));
    }
  }
  if (const char* v = env("PODWRANGLER_API_HOST")) s.host = v;
  if (const char* v = env("PODWRANGLER_API_PORT")) s.port = parse_port(v, "PODWRANGLER_API_PORT");
  if (const char* v = env("PODWRANGLER_API_KEY")) s.api_key = SecretString(v);
  if (const char* v = env("PODWRANGLER_MAX_BODY_BYTES"))
    s.max_body_bytes = static_cast<std::size_t>(parse_whole(v, "PODWRANGLER_MAX_BODY_BYTES", 1024, 1LL << 34));
  if (const char* v = env("PODWRANGLER_REQUEST_TIMEOUT"))
    s.request_timeout_s = parse_seconds(v, "PODWRANGLER_REQUEST_TIMEOUT", 3600);
  if (const char* v = env("PODWRANGLER_MAX_CONNECTIONS"))
    s.max_connections = static_cast<std::size_t>(parse_whole(v, "PODWRANGLER_MAX_CONNECTIONS", 1, 1000000));
  if (const char* v = env("PODWRANGLER_MAX_CONNECTIONS_PER_CLIENT"))
    s.max_connections_per_client =
        static_cast<std::size_t>(parse_whole(v, "PODWRANGLER_MAX_CONNECTIONS_PER_CLIENT", 1, 1000000));
  if (const char* v = env("PODWRANGLER_CAPSULES")) {
    std::string t = v;
    if (t == "on" || t == "1" || t == "true")
      s.capsules_enabled = true;
    else if (t == "off" || t == "0" || t == "false")
      s.capsules_enabled = false;
    else
      throw PodConfigValidationError("PODWRANGLER_CAPSULES", "'" + t.substr(0, 32) + "' is not on or off");
  }
  if (const char* v = env("PODWRANGLER_DOCKER_HOST"))
    s.docker_host = v;
  else if (const char* d = env("DOCKER_HOST"))
    s.docker_host = d;
  if (const char* v = env("PODWRANGLER_AGENT_PATH")) s.agent_path = v;
  if (const char* v = env("PODWRANGLER_WARM_POOL")) s.warm_pool = parse_warm_pool(v);
  if (const char* v = env("PODWRANGLER_CAPSULE_TEMPLATES")) s.capsule_templates_file = v;
  if (const char* v = env("PODWRANGLER_MAX_UPLOAD_BYTES"))
    s.max_upload_bytes = static_cast<std::size_t>(parse_whole(v, "PODWRANGLER_MAX_UPLOAD_BYTES", 1024, 1LL << 40));
  return s;
}

std::map<std::string, int> parse_warm_pool(const std::string& text, const char* field) {
  std::map<std::string, int> out;
  if (text.empty()) return out;
  for (std::size_t pos = 0; pos != std::string::npos;) {
    std::size_t comma = text.find(',', pos);
    std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? std::string::npos : comma + 1;
    auto eq = item.find('=');
    if (item.empty() || eq == std::string::npos || eq == 0)
      throw PodConfigValidationError(field, "'" + item.substr(0, 64) + "' is not image=N (image=N,image2=M)");
    std::string image = item.substr(0, eq);
    for (char c : image) {
      auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u == 0x7f)
        throw PodConfigValidationError(field, "image '" + image.substr(0, 64) + "' holds a space or control byte");
    }
    int n = static_cast<int>(parse_whole(item.substr(eq + 1), field, 0, 100));
    if (!out.emplace(image, n).second)
      throw PodConfigValidationError(field, "image '" + image.substr(0, 64) + "' is given twice");
  }
  return out;
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
        "host", "refusing to listen on " + host + " without PODWRANGLER_API_KEY; set a key or pass --insecure-no-auth");
  if (!api_key.empty() && api_key.reveal().size() < 16)
    throw PodConfigValidationError("PODWRANGLER_API_KEY", "must be at least 16 characters");
  if (threads < 1 || threads > 4096) throw PodConfigValidationError("threads", "must be 1-4096");
  if (max_body_bytes < 1024) throw PodConfigValidationError("max_body_bytes", "must be at least 1024");
  if (!(request_timeout_s > 0)) throw PodConfigValidationError("request_timeout", "must be positive");
  if (!(keep_alive_timeout_s > 0)) throw PodConfigValidationError("keep_alive_timeout", "must be positive");
  if (max_connections < 1) throw PodConfigValidationError("max_connections", "must be at least 1");
  if (max_connections_per_client < 1)
    throw PodConfigValidationError("max_connections_per_client", "must be at least 1");
  if (default_parallel < 1 || default_parallel > max_parallel)
    throw PodConfigValidationError("parallel", "must be 1-" + std::to_string(max_parallel));
  if (pool_max_sessions < 1) throw PodConfigValidationError("pool_max_sessions", "must be at least 1");
  if (!(pool_idle_ttl_s > 0)) throw PodConfigValidationError("pool_idle_ttl", "must be positive");
  if (!(shutdown_grace_s >= 0)) throw PodConfigValidationError("shutdown_grace", "must be >= 0");
  if (!database_url.empty()) (void)database_kind(database_url);
  if (max_upload_bytes < 1024) throw PodConfigValidationError("max_upload_bytes", "must be at least 1024");
  if (capsules_enabled && docker_host.empty())
    throw PodConfigValidationError("PODWRANGLER_DOCKER_HOST", "must not be empty");
}

}  // namespace pw::server

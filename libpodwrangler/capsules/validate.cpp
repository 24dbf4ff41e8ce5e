// Templates and validation: a spec or a request is checked whole before anything is made,
// and a bad value is a CapsuleValidationError naming its field.
#include "manager_impl.hpp"

#include <podwrangler/errors.hpp>

#include <arpa/inet.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <set>

namespace pw::capsules::mgr {
namespace {

// Upper bounds that keep every later multiplication (ms, bytes, nanocpus) far from overflow.
constexpr std::int64_t kMaxSeconds = 10LL * 365 * 24 * 3600;  // ten years
constexpr std::int64_t kMaxMemoryMb = 16LL * 1024 * 1024;     // 16 TiB
constexpr std::int64_t kMaxPids = 4LL * 1024 * 1024;

bool has_control(std::string_view s) noexcept {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

bool is_env_key(std::string_view k) noexcept {
  if (k.empty() || k.size() > 256) return false;
  auto alpha = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  if (!alpha(k[0])) return false;
  for (char c : k)
    if (!alpha(c) && !(c >= '0' && c <= '9')) return false;
  return true;
}

void check_env(const std::map<std::string, std::string>& env, const char* field) {
  for (const auto& [k, v] : env) {
    if (!is_env_key(k))
      throw CapsuleValidationError(field,
                                   "'" + k + "' is not a variable name (letters, digits and _, not a digit first)");
    if (v.find('\0') != std::string::npos) throw CapsuleValidationError(field, k + ": a value cannot hold a NUL byte");
  }
}

// An absolute path without NUL, "." or ".." components.
bool is_clean_absolute(std::string_view p) noexcept {
  if (p.empty() || p[0] != '/' || p.size() > 4096 || p.find('\0') != std::string_view::npos) return false;
  std::size_t i = 0;
  while (i < p.size()) {
    std::size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    std::string_view part = p.substr(i, j - i);
    if (part == "." || part == "..") return false;
    i = j + 1;
  }
  return true;
}

std::string normal(std::string_view p) {
  std::string out;
  for (char c : p)
    if (!(c == '/' && !out.empty() && out.back() == '/')) out += c;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

bool is_under(std::string_view path, std::string_view dir) {
  return path == dir || (path.size() > dir.size() && path.starts_with(dir) && path[dir.size()] == '/');
}

bool is_ip(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool is_network_name(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  auto ok = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
  };
  if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= '0' && s[0] <= '9'))) return false;
  for (char c : s)
    if (!ok(c)) return false;
  return true;
}

// An image reference as the engine takes it: [registry/]name[:tag][@digest], no spaces.
bool is_image_ref(std::string_view s) {
  if (s.empty() || s.size() > 512) return false;
  for (unsigned char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-' || c == '/' || c == ':' || c == '@';
    if (!ok) return false;
  }
  return s[0] != '-' && s[0] != '/' && s[0] != ':' && s[0] != '@';
}

}  // namespace

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int host_cpus() noexcept {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

bool is_safe_component(std::string_view s) noexcept {
  if (s.empty() || s.size() > 128 || s[0] == '.') return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-' || c == '@' || c == '+';
    if (!ok) return false;
  }
  return true;
}

CapsuleSpec resolve_template(const CapsuleSpec& req, const std::map<std::string, CapsuleSpec>& templates) {
  if (req.template_name.empty()) return req;
  auto it = templates.find(req.template_name);
  if (it == templates.end()) throw CapsuleNotFoundError(req.template_name, "template");
  const CapsuleSpec def;
  CapsuleSpec out = it->second;
  out.template_name = req.template_name;
  if (!req.image.empty()) out.image = req.image;
  if (req.vcpus != def.vcpus) out.vcpus = req.vcpus;
  if (req.memory_mb != def.memory_mb) out.memory_mb = req.memory_mb;
  if (req.pids_limit != def.pids_limit) out.pids_limit = req.pids_limit;
  if (req.idle_timeout_s != def.idle_timeout_s) out.idle_timeout_s = req.idle_timeout_s;
  if (req.on_expire != def.on_expire) out.on_expire = req.on_expire;
  if (req.lifetime_s != def.lifetime_s) out.lifetime_s = req.lifetime_s;
  if (req.remove_at_end != def.remove_at_end) out.remove_at_end = req.remove_at_end;
  for (const auto& [k, v] : req.env) out.env[k] = v;
  if (!req.mounts.empty()) out.mounts = req.mounts;
  if (!req.ports.empty()) out.ports = req.ports;
  if (req.network != def.network) out.network = req.network;
  for (const auto& [k, v] : req.labels) out.labels[k] = v;
  out.owner = req.owner;
  out.session = req.session;
  out.workspace = req.workspace || out.workspace;
  if (req.auto_resume != def.auto_resume) out.auto_resume = req.auto_resume;
  return out;
}

void validate_owner_session(const CapsuleSpec& spec) {
  for (const auto& [field, value] : {std::pair<const char*, const std::string*>{"owner", &spec.owner},
                                     std::pair<const char*, const std::string*>{"session", &spec.session}}) {
    if (value->size() > 256) throw CapsuleValidationError(field, "longer than 256 characters");
    if (has_control(*value) || value->find('\0') != std::string::npos)
      throw CapsuleValidationError(field, "holds control characters");
    if (spec.workspace && !is_safe_component(*value))
      throw CapsuleValidationError(field,
                                   "a workspace needs an owner and a session that are safe directory names "
                                   "(letters, digits, . _ - @ +; at most 128; not starting with '.')");
  }
}

void validate_spec(const CapsuleSpec& spec, bool reserved_labels) {
  if (spec.image.empty()) throw CapsuleValidationError("image", "an image or a template is required");
  if (!is_image_ref(spec.image)) throw CapsuleValidationError("image", "not an image reference: '" + spec.image + "'");
  const int cpus = host_cpus();
  if (!(spec.vcpus > 0) || !std::isfinite(spec.vcpus)) throw CapsuleValidationError("vcpus", "must be more than 0");
  if (spec.vcpus > cpus)
    throw CapsuleValidationError("vcpus", "at most " + std::to_string(cpus) + " (the host's CPUs)");
  if (spec.memory_mb < 6) throw CapsuleValidationError("memory_mb", "at least 6 MiB (the engine's minimum)");
  if (spec.memory_mb > kMaxMemoryMb) throw CapsuleValidationError("memory_mb", "too large");
  if (spec.pids_limit < 16) throw CapsuleValidationError("pids_limit", "at least 16");
  if (spec.pids_limit > kMaxPids) throw CapsuleValidationError("pids_limit", "too large");
  if (spec.idle_timeout_s < 0 || spec.idle_timeout_s > kMaxSeconds)
    throw CapsuleValidationError("timeout", "seconds from 0 (never) to ten years");
  if (spec.lifetime_s < 0 || spec.lifetime_s > kMaxSeconds)
    throw CapsuleValidationError("lifetime", "seconds from 0 (until closed) to ten years");
  check_env(spec.env, "env");

  std::set<std::string> targets;
  for (const auto& m : spec.mounts) {
    if (!is_clean_absolute(m.host_path))
      throw CapsuleValidationError("mounts", "the host path must be absolute, without . or ..: '" + m.host_path + "'");
    if (!is_clean_absolute(m.target))
      throw CapsuleValidationError("mounts", "the target must be absolute, without . or ..: '" + m.target + "'");
    const std::string t = normal(m.target);
    if (t == "/") throw CapsuleValidationError("mounts", "cannot mount over /");
    if (is_under(t, "/.podwrangler") || is_under("/.podwrangler", t))
      throw CapsuleValidationError("mounts", "/.podwrangler is reserved for the agent");
    if (spec.workspace && (is_under(t, kWorkspaceInCapsule) || is_under(kWorkspaceInCapsule, t)))
      throw CapsuleValidationError("mounts", "/workspace is the workspace's mount point");
    if (!targets.insert(t).second) throw CapsuleValidationError("mounts", "two mounts on " + t);
  }

  std::set<int> ports;
  for (const auto& p : spec.ports) {
    if (p.container_port < 1 || p.container_port > 65535)
      throw CapsuleValidationError("ports", "a port is 1-65535, not " + std::to_string(p.container_port));
    if (p.host_port < 0 || p.host_port > 65535)
      throw CapsuleValidationError("ports", "a host port is 0 (any) or 1-65535, not " + std::to_string(p.host_port));
    if (!is_ip(p.host_ip)) throw CapsuleValidationError("ports", "host_ip is not an IP address: '" + p.host_ip + "'");
    if (!ports.insert(p.container_port).second)
      throw CapsuleValidationError("ports", "port " + std::to_string(p.container_port) + " given twice");
  }

  if (spec.network == "host") throw CapsuleValidationError("network", "\"host\" is refused (no isolation)");
  if (spec.network.starts_with("container:"))
    throw CapsuleValidationError("network", "sharing another container's network is refused");
  if (!is_network_name(spec.network))
    throw CapsuleValidationError("network", "\"none\", \"bridge\" or the name of a network");
  if (spec.network == "none" && !spec.ports.empty())
    throw CapsuleValidationError("ports", "published ports need a network (network is \"none\")");

  for (const auto& [k, v] : spec.labels) {
    if (k.empty() || k.size() > 256 || has_control(k))
      throw CapsuleValidationError("labels", "a label key is 1-256 printable characters");
    if (!reserved_labels && k.starts_with("podwrangler."))
      throw CapsuleValidationError("labels", "the prefix \"podwrangler.\" is reserved: '" + k + "'");
    if (v.size() > 4096 || v.find('\0') != std::string::npos)
      throw CapsuleValidationError("labels", k + ": a value is at most 4096 bytes, without NUL");
  }
  validate_owner_session(spec);
}

void validate_exec(const ExecRequest& req) {
  if (req.argv.empty() || req.argv[0].empty()) throw CapsuleValidationError("argv", "a command is required");
  for (const auto& a : req.argv)
    if (a.find('\0') != std::string::npos) throw CapsuleValidationError("argv", "an argument cannot hold a NUL byte");
  check_env(req.env, "env");
  if (!req.cwd.empty() && !is_clean_absolute(req.cwd))
    throw CapsuleValidationError("cwd", "an absolute path without . or ..");
  if (!(req.timeout_s >= 0) || !std::isfinite(req.timeout_s) || req.timeout_s > static_cast<double>(kMaxSeconds))
    throw CapsuleValidationError("timeout", "seconds, 0 (none) or more");
}

void validate_path(const std::string& path) {
  if (path.empty() || path[0] != '/' || path.find('\0') != std::string::npos)
    throw CapsuleValidationError("path", "an absolute path inside the capsule");
}

}  // namespace pw::capsules::mgr

#include "embedded_server/routes_capsules_common.hpp"

#include "embedded_server/capsule_service.hpp"
#include "embedded_server/http_util.hpp"
#include "embedded_server/routes.hpp"
#include "embedded_server/server_loop.hpp"

#include <podwrangler/errors.hpp>

#include <httplib.h>

#include <algorithm>
#include <cmath>
#include <map>

namespace pw::server {

namespace {

constexpr std::size_t kMaxPath = 4096;
constexpr std::size_t kMaxList = 32;

bool env_name_ok(std::string_view k) noexcept {
  if (k.empty() || k.size() > 255) return false;
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!alpha(k[0])) return false;
  return std::all_of(k.begin(), k.end(), [&](char c) { return alpha(c) || (c >= '0' && c <= '9'); });
}

// An image or template reference, a network name: one token, no space or control byte.
std::optional<std::string> optional_token(const nlohmann::json& body, const char* field, std::size_t max_len) {
  auto s = optional_string(body, field, max_len);
  if (!s) return s;
  check_token_text(*s, field);
  if (s->find(' ') != std::string::npos) throw validation_error(field, "must not contain spaces");
  return s;
}

std::optional<std::string> optional_name(const nlohmann::json& body, const char* field) {
  auto s = optional_string(body, field, 256);
  if (s && !is_valid_alias(*s))
    throw validation_error(field, "'" + shown(*s) +
                                      "' is not a valid name (1-63 of A-Z a-z 0-9 . _ -, starting with a "
                                      "letter or digit)");
  return s;
}

std::optional<double> optional_number(const nlohmann::json& body, const char* field, double max) {
  auto it = body.find(field);
  if (it == body.end()) return std::nullopt;
  if (!it->is_number()) throw validation_error(field, "must be a number");
  double v = it->get<double>();
  if (!(v > 0) || v > max || !std::isfinite(v))
    throw validation_error(field, "must be greater than 0 and at most " + std::to_string(static_cast<long>(max)));
  return v;
}

std::string check_host_path(const std::string& path, const std::string& field) {
  std::string p = check_capsule_path(path, field);
  for (std::size_t pos = 0; pos != std::string::npos;) {
    std::size_t slash = p.find('/', pos + 1);
    std::string_view part =
        std::string_view(p).substr(pos + 1, slash == std::string::npos ? std::string::npos : slash - pos - 1);
    if (part == "..") throw validation_error(field, "must not contain '..'");
    pos = slash;
  }
  return p;
}

std::vector<capsules::MountSpec> parse_mounts(const nlohmann::json& j) {
  if (!j.is_array()) throw validation_error("mounts", "must be an array of {host_path, target, read_only}");
  if (j.size() > kMaxList) throw validation_error("mounts", "at most 32 mounts");
  std::vector<capsules::MountSpec> out;
  for (std::size_t i = 0; i < j.size(); ++i) {
    // The field is "mounts" (the request's field); the message says which item and key.
    const std::string f = "mounts[" + std::to_string(i) + "]";
    const auto& m = j[i];
    if (!m.is_object()) throw validation_error("mounts", f + " must be an object {host_path, target, read_only}");
    for (const auto& [k, v] : m.items())
      if (k != "host_path" && k != "target" && k != "read_only")
        throw validation_error("mounts", f + "." + shown(k) + ": unknown field");
    capsules::MountSpec spec;
    try {
      spec.host_path = check_host_path(required_string(m, "host_path", kMaxPath), f + ".host_path");
      spec.target = check_host_path(required_string(m, "target", kMaxPath), f + ".target");
      if (spec.target == "/") throw validation_error(f + ".target", "must not be /");
      spec.read_only = optional_bool(m, "read_only").value_or(false);
    } catch (const HttpError& e) {
      const std::string& inner = e.message();
      throw validation_error("mounts", inner.rfind(f, 0) == 0 ? inner : f + "." + inner);
    }
    out.push_back(std::move(spec));
  }
  return out;
}

std::vector<capsules::PortSpec> parse_ports(const nlohmann::json& j) {
  if (!j.is_array()) throw validation_error("ports", "must be an array of ports");
  if (j.size() > kMaxList) throw validation_error("ports", "at most 32 ports");
  std::vector<capsules::PortSpec> out;
  for (std::size_t i = 0; i < j.size(); ++i) {
    const std::string f = "ports[" + std::to_string(i) + "]";
    const auto& p = j[i];
    capsules::PortSpec spec;
    auto fail = [&](const std::string& problem) { return validation_error("ports", f + problem); };
    if (p.is_number_integer()) {
      long v = p.get<long>();
      if (v < 1 || v > 65535) throw fail(" must be a port 1-65535");
      spec.container_port = static_cast<int>(v);
    } else if (p.is_object()) {
      for (const auto& [k, v] : p.items())
        if (k != "container_port" && k != "host_ip" && k != "host_port") throw fail("." + shown(k) + ": unknown field");
      try {
        auto cp = optional_int(p, "container_port", 1, 65535);
        if (!cp) throw validation_error("container_port", "is required");
        spec.container_port = static_cast<int>(*cp);
        if (auto ip = optional_string(p, "host_ip", 64)) {
          check_token_text(*ip, "host_ip");
          if (ip->empty() || ip->find(' ') != std::string::npos)
            throw validation_error("host_ip", "must be an IP address");
          spec.host_ip = *ip;
        }
        spec.host_port = static_cast<int>(optional_int(p, "host_port", 0, 65535).value_or(0));
      } catch (const HttpError& e) {
        throw fail("." + e.message());
      }
    } else {
      throw fail(" must be a port number or {container_port, host_ip, host_port}");
    }
    out.push_back(std::move(spec));
  }
  return out;
}

}  // namespace

const std::vector<std::string_view> kSpecFields = {
    "image",     "template",     "vcpus",         "memory_mb", "pids_limit", "timeout_sec",
    "on_expire", "lifetime_sec", "remove_at_end", "env",       "mounts",     "ports",
    "network",   "labels",       "owner",         "session",   "workspace",  "auto_resume"};

std::string path_capsule_id(const httplib::Request& req, int match) {
  std::string id = req.matches[match];
  if (!capsules::is_capsule_id(id)) throw CapsuleNotFoundError(shown(id));
  return id;
}

std::shared_ptr<capsules::CapsuleManager> shared_capsule_manager(ServerState& ctx) {
  if (ctx.runtime && ctx.runtime->draining())
    throw HttpError(ErrorKind::shutting_down, "the server is shutting down; try again shortly");
  if (!ctx.capsules) throw EngineUnavailableError("capsules are not available on this server");
  return ctx.capsules->shared();
}

capsules::CapsuleManager& capsule_manager(ServerState& ctx) { return *shared_capsule_manager(ctx); }

void expect_empty_body(const httplib::Request& req) {
  if (req.body.empty()) return;
  auto body = parse_object_body(req);
  reject_unknown_keys(body, {});
}

void reject_unknown_keys(const nlohmann::json& body, const std::vector<std::string_view>& allowed,
                         const std::vector<std::string_view>& more) {
  for (const auto& [key, value] : body.items()) {
    bool ok = std::find(allowed.begin(), allowed.end(), key) != allowed.end() ||
              std::find(more.begin(), more.end(), key) != more.end();
    if (!ok) throw validation_error(shown(key), "unknown field");
  }
}

std::string check_capsule_path(const std::string& path, const std::string& field) {
  if (path.empty()) throw validation_error(field, "must not be empty");
  if (path.size() > kMaxPath) throw validation_error(field, "longer than 4096 bytes");
  for (char c : path) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f)
      throw validation_error(field, "must not contain control characters (got '" + shown(path) + "')");
  }
  if (path[0] != '/') throw validation_error(field, "must be an absolute path (got '" + shown(path) + "')");
  return path;
}

std::map<std::string, std::string> parse_env(const nlohmann::json& j, const std::string& field) {
  if (!j.is_object()) throw validation_error(field, "must be an object of string values");
  if (j.size() > 256) throw validation_error(field, "at most 256 variables");
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : j.items()) {
    if (!env_name_ok(k))
      throw validation_error(field, "'" + shown(k) + "' is not a variable name ([A-Za-z_][A-Za-z0-9_]*)");
    if (!v.is_string()) throw validation_error(field + "." + k, "must be a string");
    const auto& s = v.get_ref<const std::string&>();
    if (s.size() > 32768) throw validation_error(field + "." + k, "longer than 32768 bytes");
    if (s.find('\0') != std::string::npos) throw validation_error(field + "." + k, "must not contain a NUL byte");
    out.emplace(k, s);
  }
  return out;
}

capsules::CapsuleSpec parse_capsule_spec(const nlohmann::json& body, const std::vector<std::string_view>& skip) {
  auto skipped = [&](std::string_view f) { return std::find(skip.begin(), skip.end(), f) != skip.end(); };
  capsules::CapsuleSpec spec;
  auto image = optional_token(body, "image", 512);
  auto tmpl = optional_token(body, "template", 128);
  if (image && image->empty()) throw validation_error("image", "must not be empty");
  if (tmpl && tmpl->empty()) throw validation_error("template", "must not be empty");
  bool has_image = image.has_value(), has_template = tmpl.has_value();
  if (!has_image && !has_template) throw validation_error("image", "give image or template");
  if (has_image && has_template) throw validation_error("template", "give image or template, not both");
  if (has_image) spec.image = *image;
  if (has_template) spec.template_name = *tmpl;
  if (auto v = optional_number(body, "vcpus", 256)) spec.vcpus = *v;
  if (auto v = optional_int(body, "memory_mb", 6, 1L << 20)) spec.memory_mb = *v;
  if (auto v = optional_int(body, "pids_limit", 16, 1L << 22)) spec.pids_limit = *v;
  if (!skipped("timeout_sec"))
    if (auto v = optional_int(body, "timeout_sec", 0, 30L * 86400)) spec.idle_timeout_s = *v;
  if (auto v = optional_string(body, "on_expire", 16)) {
    auto a = capsules::parse_expiry_action(*v);
    if (!a) throw validation_error("on_expire", "must be pause, stop or destroy");
    spec.on_expire = *a;
  }
  if (auto v = optional_int(body, "lifetime_sec", 0, 366L * 86400)) spec.lifetime_s = *v;
  if (auto v = optional_bool(body, "remove_at_end")) spec.remove_at_end = *v;
  if (auto it = body.find("env"); it != body.end()) spec.env = parse_env(*it, "env");
  if (auto it = body.find("mounts"); it != body.end()) spec.mounts = parse_mounts(*it);
  if (auto it = body.find("ports"); it != body.end()) spec.ports = parse_ports(*it);
  if (auto v = optional_token(body, "network", 128)) {
    if (v->empty()) throw validation_error("network", "must not be empty (none, bridge or a network's name)");
    if (*v == "host") throw validation_error("network", "host networking is not allowed for capsules");
    spec.network = *v;
  }
  if (auto it = body.find("labels"); it != body.end()) {
    spec.labels = parse_labels(*it, "labels");
    for (const auto& [k, v] : spec.labels)
      if (k.rfind("podwrangler.", 0) == 0)
        throw validation_error("labels", "'" + shown(k) + "': keys starting with podwrangler. are reserved");
  }
  if (auto v = optional_name(body, "owner")) spec.owner = *v;
  if (auto v = optional_name(body, "session")) spec.session = *v;
  if (auto v = optional_bool(body, "workspace")) spec.workspace = *v;
  if (spec.workspace && (spec.owner.empty() || spec.session.empty()))
    throw validation_error("workspace", "needs owner and session (the workspace is workspaces/OWNER/SESSION)");
  if (auto v = optional_bool(body, "auto_resume")) spec.auto_resume = *v;
  return spec;
}

capsules::ExecRequest parse_exec_request(const nlohmann::json& body, bool with_timeout, std::size_t max_len) {
  capsules::ExecRequest req;
  auto argv = body.find("argv");
  auto cmd = optional_string(body, "cmd", max_len);
  if ((argv != body.end()) == cmd.has_value()) throw validation_error("argv", "give argv (an array) or cmd (a string)");
  if (cmd) {
    if (cmd->empty()) throw validation_error("cmd", "must not be empty");
    req.argv = {"/bin/sh", "-c", *cmd};
  } else {
    if (!argv->is_array() || argv->empty()) throw validation_error("argv", "must be a non-empty array of strings");
    if (argv->size() > 4096) throw validation_error("argv", "at most 4096 words");
    for (const auto& w : *argv) {
      if (!w.is_string()) throw validation_error("argv", "must be an array of strings");
      const auto& s = w.get_ref<const std::string&>();
      if (s.find('\0') != std::string::npos) throw validation_error("argv", "must not contain a NUL byte");
      req.argv.push_back(s);
    }
    if (req.argv[0].empty()) throw validation_error("argv", "the program (argv[0]) must not be empty");
  }
  if (auto it = body.find("env"); it != body.end()) req.env = parse_env(*it, "env");
  if (auto cwd = optional_string(body, "cwd", kMaxPath)) req.cwd = check_capsule_path(*cwd, "cwd");
  if (with_timeout)
    req.timeout_s = optional_seconds(body, "timeout_sec", kMaxExecTimeout).value_or(kDefaultExecTimeout);
  if (auto it = body.find("stdin"); it != body.end()) {
    // Any bytes JSON can carry, NUL included: stdin is data, not a command.
    if (!it->is_string()) throw validation_error("stdin", "must be a string");
    req.stdin_data = it->get<std::string>();
  }
  return req;
}

void put_bytes(nlohmann::json& j, const std::string& name, const std::string& bytes) {
  if (is_valid_utf8(bytes)) {
    j[name] = bytes;
  } else {
    j[name] = utf8_lossy(bytes);
    j[name + "_b64"] = base64_encode(bytes);
  }
}

nlohmann::json capsule_json(const capsules::CapsuleRecord& rec) {
  nlohmann::json j = rec;
  // Env values may hold credentials: the API never returns them.
  if (auto spec = j.find("spec"); spec != j.end())
    if (auto env = spec->find("env"); env != spec->end() && env->is_object())
      for (auto& v : *env) v = "***";
  return j;
}

nlohmann::json exec_result_json(const capsules::CapsuleExecResult& r) {
  nlohmann::json j = r.result;
  put_bytes(j, "stdout", r.result.stdout_data);
  put_bytes(j, "stderr", r.result.stderr_data);
  j["resumed"] = r.resumed;
  j["recovered"] = r.recovered;
  return j;
}

}  // namespace pw::server

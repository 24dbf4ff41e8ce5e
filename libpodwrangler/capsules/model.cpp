#include <podwrangler/capsules/model.hpp>

#include <podwrangler/errors.hpp>

#include <openssl/rand.h>

#include <array>
#include <nlohmann/json.hpp>

namespace pw::capsules {
namespace {

constexpr std::array<std::pair<CapsuleState, std::string_view>, 6> kStates{{
    {CapsuleState::starting, "starting"},
    {CapsuleState::running, "running"},
    {CapsuleState::paused, "paused"},
    {CapsuleState::stopped, "stopped"},
    {CapsuleState::destroyed, "destroyed"},
    {CapsuleState::error, "error"},
}};

constexpr std::array<std::pair<ExpiryAction, std::string_view>, 3> kActions{{
    {ExpiryAction::pause, "pause"},
    {ExpiryAction::stop, "stop"},
    {ExpiryAction::destroy, "destroy"},
}};

template <class T>
void get_if(const nlohmann::json& j, const char* key, T& out) {
  if (auto it = j.find(key); it != j.end() && !it->is_null()) it->get_to(out);
}

}  // namespace

std::string_view to_string(CapsuleState s) noexcept {
  for (const auto& [v, name] : kStates)
    if (v == s) return name;
  return "error";
}

std::optional<CapsuleState> parse_state(std::string_view s) noexcept {
  for (const auto& [v, name] : kStates)
    if (name == s) return v;
  return std::nullopt;
}

std::string_view to_string(ExpiryAction a) noexcept {
  for (const auto& [v, name] : kActions)
    if (v == a) return name;
  return "pause";
}

std::optional<ExpiryAction> parse_expiry_action(std::string_view s) noexcept {
  for (const auto& [v, name] : kActions)
    if (name == s) return v;
  return std::nullopt;
}

void to_json(nlohmann::json& j, const MountSpec& v) {
  j = {{"host_path", v.host_path}, {"target", v.target}, {"read_only", v.read_only}};
}
void from_json(const nlohmann::json& j, MountSpec& v) {
  get_if(j, "host_path", v.host_path);
  get_if(j, "target", v.target);
  get_if(j, "read_only", v.read_only);
}

void to_json(nlohmann::json& j, const PortSpec& v) {
  j = {{"container_port", v.container_port}, {"host_ip", v.host_ip}, {"host_port", v.host_port}};
}
void from_json(const nlohmann::json& j, PortSpec& v) {
  get_if(j, "container_port", v.container_port);
  get_if(j, "host_ip", v.host_ip);
  get_if(j, "host_port", v.host_port);
}

void to_json(nlohmann::json& j, const CapsuleSpec& v) {
  j = {{"image", v.image},
       {"template", v.template_name},
       {"vcpus", v.vcpus},
       {"memory_mb", v.memory_mb},
       {"pids_limit", v.pids_limit},
       {"timeout_sec", v.idle_timeout_s},
       {"on_expire", to_string(v.on_expire)},
       {"lifetime_sec", v.lifetime_s},
       {"remove_at_end", v.remove_at_end},
       {"env", v.env},
       {"mounts", v.mounts},
       {"ports", v.ports},
       {"network", v.network},
       {"labels", v.labels},
       {"owner", v.owner},
       {"session", v.session},
       {"workspace", v.workspace},
       {"auto_resume", v.auto_resume}};
}

void from_json(const nlohmann::json& j, CapsuleSpec& v) {
  get_if(j, "image", v.image);
  get_if(j, "template", v.template_name);
  get_if(j, "vcpus", v.vcpus);
  get_if(j, "memory_mb", v.memory_mb);
  get_if(j, "pids_limit", v.pids_limit);
  get_if(j, "timeout_sec", v.idle_timeout_s);
  if (auto it = j.find("on_expire"); it != j.end() && it->is_string()) {
    auto a = parse_expiry_action(it->get<std::string>());
    if (!a) throw CapsuleValidationError("on_expire", "must be pause, stop or destroy");
    v.on_expire = *a;
  }
  get_if(j, "lifetime_sec", v.lifetime_s);
  get_if(j, "remove_at_end", v.remove_at_end);
  get_if(j, "env", v.env);
  get_if(j, "mounts", v.mounts);
  get_if(j, "ports", v.ports);
  get_if(j, "network", v.network);
  get_if(j, "labels", v.labels);
  get_if(j, "owner", v.owner);
  get_if(j, "session", v.session);
  get_if(j, "workspace", v.workspace);
  get_if(j, "auto_resume", v.auto_resume);
}

void to_json(nlohmann::json& j, const CapsuleLimits& v) {
  j = {{"vcpus", v.vcpus},
       {"memory_bytes", v.memory_bytes},
       {"pids_limit", v.pids_limit},
       {"privileged", v.privileged},
       {"no_new_privileges", v.no_new_privileges},
       {"read_only_rootfs", v.read_only_rootfs},
       {"cap_drop", v.cap_drop},
       {"cap_add", v.cap_add}};
}
void from_json(const nlohmann::json& j, CapsuleLimits& v) {
  get_if(j, "vcpus", v.vcpus);
  get_if(j, "memory_bytes", v.memory_bytes);
  get_if(j, "pids_limit", v.pids_limit);
  get_if(j, "privileged", v.privileged);
  get_if(j, "no_new_privileges", v.no_new_privileges);
  get_if(j, "read_only_rootfs", v.read_only_rootfs);
  get_if(j, "cap_drop", v.cap_drop);
  get_if(j, "cap_add", v.cap_add);
}

void to_json(nlohmann::json& j, const CapsuleEvent& v) {
  j = {{"seq", v.seq}, {"capsule_id", v.capsule_id}, {"at_ms", v.at_ms}, {"from", v.from},
       {"to", v.to},   {"reason", v.reason}};
}

void to_json(nlohmann::json& j, const CapsuleRecord& v) {
  nlohmann::json ports = nlohmann::json::object();
  for (const auto& [c, h] : v.published_ports) ports[std::to_string(c)] = h;
  j = {{"id", v.id},
       {"state", to_string(v.state)},
       {"spec", v.spec},
       {"backend", v.backend},
       {"container_id", v.container_id},
       {"image_id", v.image_id},
       {"exec_mode", v.exec_mode},
       {"exec_mode_reason", v.exec_mode_reason},
       {"origin", v.origin},
       {"reason", v.reason},
       {"last_logs", v.last_logs},
       {"published_ports", ports},
       {"limits", v.limits},
       {"created_ms", v.created_ms},
       {"updated_ms", v.updated_ms},
       {"last_active_ms", v.last_active_ms},
       {"idle_remaining_ms", v.idle_remaining_ms},
       {"version", v.version}};
}

void from_json(const nlohmann::json& j, CapsuleRecord& v) {
  get_if(j, "id", v.id);
  if (auto it = j.find("state"); it != j.end() && it->is_string())
    v.state = parse_state(it->get<std::string>()).value_or(CapsuleState::error);
  get_if(j, "spec", v.spec);
  get_if(j, "backend", v.backend);
  get_if(j, "container_id", v.container_id);
  get_if(j, "image_id", v.image_id);
  get_if(j, "exec_mode", v.exec_mode);
  get_if(j, "exec_mode_reason", v.exec_mode_reason);
  get_if(j, "origin", v.origin);
  get_if(j, "reason", v.reason);
  get_if(j, "last_logs", v.last_logs);
  v.published_ports.clear();
  if (auto it = j.find("published_ports"); it != j.end() && it->is_object())
    for (const auto& [c, h] : it->items()) v.published_ports[std::stoi(c)] = h.get<int>();
  get_if(j, "limits", v.limits);
  get_if(j, "created_ms", v.created_ms);
  get_if(j, "updated_ms", v.updated_ms);
  get_if(j, "last_active_ms", v.last_active_ms);
  get_if(j, "idle_remaining_ms", v.idle_remaining_ms);
  get_if(j, "version", v.version);
}

void to_json(nlohmann::json& j, const ExecResult& v) {
  j = {{"stdout", v.stdout_data},  {"stderr", v.stderr_data},
       {"exit_code", v.exit_code}, {"duration_ms", static_cast<std::int64_t>(v.duration_s * 1000.0 + 0.5)},
       {"timed_out", v.timed_out}, {"truncated", v.truncated}};
}

void to_json(nlohmann::json& j, const FileStat& v) {
  j = {{"path", v.path}, {"name", v.name}, {"type", v.type}, {"size", v.size}, {"mode", v.mode}, {"mtime", v.mtime_s}};
  if (!v.link_target.empty()) j["link_target"] = v.link_target;
}

void to_json(nlohmann::json& j, const ProcessInfo& v) {
  j = {{"pid", v.pid}, {"argv", v.argv}, {"running_sec", v.running_s}, {"background", v.background}};
}

std::string new_capsule_id() {
  unsigned char raw[8];
  if (RAND_bytes(raw, sizeof raw) != 1) throw PodClientError("RAND_bytes failed");
  static constexpr char hex[] = "0123456789abcdef";
  std::string id = "cap-";
  for (unsigned char b : raw) {
    id += hex[b >> 4];
    id += hex[b & 0xF];
  }
  return id;
}

bool is_capsule_id(std::string_view s) noexcept {
  if (s.size() != 20 || !s.starts_with("cap-")) return false;
  for (char c : s.substr(4))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace pw::capsules

#include <podwrangler/capsules/docker_backend.hpp>

#include <podwrangler/errors.hpp>
#include <podwrangler/providers/docker.hpp>
#include <podwrangler/redact.hpp>
#include <podwrangler/url.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <set>
#include <sys/stat.h>

namespace pw::capsules {

namespace {

using nlohmann::json;

// PID 1 without an agent: waits for SIGTERM (docker stop) and ends at once on it.
constexpr const char* kKeepAlive = "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done";

std::string containers(const std::string& id) { return "/v1.41/containers/" + percent_encode(id); }

void check_absolute(const std::string& field, const std::string& path) {
  if (path.empty() || path.front() != '/')
    throw CapsuleValidationError(field, "'" + path + "' is not an absolute path");
  if (path.find('\0') != std::string::npos) throw CapsuleValidationError(field, "the path contains a NUL byte");
}

bool under(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.starts_with(dir) && path[dir.size()] == '/');
}

void validate(const CapsuleSpec& spec, const CreateContext& ctx) {
  if (spec.image.empty()) throw CapsuleValidationError("image", "no image given");
  if (spec.network == "host") throw CapsuleValidationError("network", "host networking is refused");
  if (spec.network.empty()) throw CapsuleValidationError("network", "empty (use \"none\" for no network)");
  if (!(spec.vcpus >= 0) || !std::isfinite(spec.vcpus))
    throw CapsuleValidationError("vcpus", "must be a positive number");
  if (spec.memory_mb < 0) throw CapsuleValidationError("memory", "must not be negative");
  if (spec.memory_mb > 0 && spec.memory_mb < 6) throw CapsuleValidationError("memory", "at least 6 MiB");
  if (spec.lifetime_s < 0) throw CapsuleValidationError("lifetime", "must not be negative");
  std::set<std::string> targets;
  for (const auto& m : spec.mounts) {
    check_absolute("mount", m.host_path);
    check_absolute("mount", m.target);
    struct stat st {};
    if (::stat(m.host_path.c_str(), &st) != 0)
      throw CapsuleValidationError("mount", "host path '" + m.host_path + "' does not exist");
    if (under(m.target, "/.podwrangler") || m.target == "/")
      throw CapsuleValidationError("mount", "target '" + m.target + "' is reserved");
    if (!ctx.workspace_dir.empty() && under(m.target, kWorkspaceInCapsule))
      throw CapsuleValidationError("mount", "target '" + m.target + "' is the workspace's");
    if (!targets.insert(m.target).second)
      throw CapsuleValidationError("mount", "target '" + m.target + "' is given twice");
  }
  if (!spec.ports.empty() && spec.network == "none")
    throw CapsuleValidationError("network",
                                 "\"none\" has no ports to publish: give a network (for example \"bridge\")");
  for (const auto& p : spec.ports) {
    if (p.container_port < 1 || p.container_port > 65535)
      throw CapsuleValidationError("port", std::to_string(p.container_port) + " is not a port (1-65535)");
    if (p.host_port < 0 || p.host_port > 65535)
      throw CapsuleValidationError("port", "host port " + std::to_string(p.host_port) + " is not a port (0-65535)");
  }
  for (const auto& [k, v] : spec.labels)
    if (k.starts_with("podwrangler."))
      throw CapsuleValidationError("label", "'" + k + "': the podwrangler. prefix is reserved");
  for (const auto& [k, v] : spec.env)
    if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos)
      throw CapsuleValidationError("env", "'" + k + "' is not a variable name");
  if (!ctx.agent_path.empty()) {
    check_absolute("agent", ctx.agent_path);
    check_absolute("run_dir", ctx.run_dir);
  }
}

json mount(const std::string& source, const std::string& target, bool read_only) {
  return json{{"Type", "bind"}, {"Source", source}, {"Target", target}, {"ReadOnly", read_only}};
}

json create_body(const CapsuleSpec& spec, const CreateContext& ctx) {
  json body;
  body["Image"] = spec.image;
  body["Tty"] = false;
  body["OpenStdin"] = false;
  json mounts = json::array();
  if (!ctx.agent_path.empty()) {
    body["Entrypoint"] = json::array({kAgentPathInCapsule});
    std::vector<std::string> cmd{"--socket", std::string(kRunDirInCapsule) + "/" + kAgentSocketName};
    if (spec.lifetime_s > 0) {
      cmd.emplace_back("--lifetime");
      cmd.push_back(std::to_string(spec.lifetime_s));
    }
    body["Cmd"] = cmd;
    mounts.push_back(mount(ctx.agent_path, kAgentPathInCapsule, true));
    mounts.push_back(mount(ctx.run_dir, kRunDirInCapsule, false));
  } else {
    std::string script = kKeepAlive;
    if (spec.lifetime_s > 0) script = "trap 'exit 0' TERM; sleep " + std::to_string(spec.lifetime_s) + " & wait $!";
    body["Entrypoint"] = json::array({"/bin/sh", "-c", script});
    body["Cmd"] = json::array();
    if (!ctx.run_dir.empty()) mounts.push_back(mount(ctx.run_dir, kRunDirInCapsule, false));
  }
  body["User"] = "0:0";
  if (!ctx.workspace_dir.empty()) {
    mounts.push_back(mount(ctx.workspace_dir, kWorkspaceInCapsule, false));
    body["WorkingDir"] = kWorkspaceInCapsule;
  }
  for (const auto& m : spec.mounts) mounts.push_back(mount(m.host_path, m.target, m.read_only));
  std::vector<std::string> env;
  for (const auto& [k, v] : spec.env) env.push_back(k + "=" + v);
  body["Env"] = env;
  json labels = json::object();
  for (const auto& [k, v] : spec.labels) labels[k] = v;
  labels[kLabelCapsule] = ctx.capsule_id;
  labels[kLabelOwner] = spec.owner;
  labels[kLabelSession] = spec.session;
  body["Labels"] = labels;

  json host;
  host["Mounts"] = mounts;
  host["NetworkMode"] = spec.network;
  if (!spec.ports.empty()) {
    json exposed = json::object(), bindings = json::object();
    if (!spec.ports.empty() && spec.network == "none")
      throw CapsuleValidationError("network",
                                   "\"none\" has no ports to publish: give a network (for example \"bridge\")");
    for (const auto& p : spec.ports) {
      std::string key = std::to_string(p.container_port) + "/tcp";
      exposed[key] = json::object();
      bindings[key].push_back(json{{"HostIp", p.host_ip.empty() ? "127.0.0.1" : p.host_ip},
                                   {"HostPort", p.host_port ? std::to_string(p.host_port) : ""}});
    }
    body["ExposedPorts"] = exposed;
    host["PortBindings"] = bindings;
  }
  if (spec.vcpus > 0) host["NanoCpus"] = static_cast<std::int64_t>(std::llround(spec.vcpus * 1e9));
  if (spec.memory_mb > 0) {
    host["Memory"] = spec.memory_mb * 1024 * 1024;
    host["MemorySwap"] = spec.memory_mb * 1024 * 1024;
  }
  if (spec.pids_limit > 0) host["PidsLimit"] = spec.pids_limit;
  host["Privileged"] = false;
  host["CapDrop"] = json::array({"ALL"});
  host["CapAdd"] = json(std::vector<std::string>(kCapsuleCapabilities.begin(), kCapsuleCapabilities.end()));
  host["SecurityOpt"] = json::array({"no-new-privileges"});
  host["Init"] = false;
  host["AutoRemove"] = false;
  host["RestartPolicy"] = json{{"Name", "no"}};
  body["HostConfig"] = host;
  return body;
}

std::vector<std::string> strings(const json& j, const char* key) {
  std::vector<std::string> out;
  if (j.contains(key) && j[key].is_array())
    for (const auto& v : j[key])
      if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

template <class T>
T number(const json& j, const char* key, T fallback = 0) {
  return j.contains(key) && j[key].is_number() ? j[key].get<T>() : fallback;
}

std::string text(const json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

}  // namespace

DockerBackend::DockerBackend(EngineEndpoint endpoint) : engine_(std::make_shared<EngineClient>(std::move(endpoint))) {}

std::string DockerBackend::describe() const { return "docker at " + engine_->describe(); }

std::string DockerBackend::create(const CapsuleSpec& spec, const CreateContext& ctx) {
  if (!is_capsule_id(ctx.capsule_id)) throw CapsuleValidationError("capsule id", "'" + ctx.capsule_id + "' is not one");
  validate(spec, ctx);
  std::string name = "pw-" + ctx.capsule_id;
  EngineReply r =
      engine_->call_json("POST", "/v1.41/containers/create?name=" + percent_encode(name), create_body(spec, ctx));
  if (r.status == 404) {
    // No such image, or no such network: the image is the likely one, and asked for.
    EngineReply img = engine_->call("GET", "/v1.41/images/" + percent_encode(spec.image) + "/json");
    if (img.status == 404) throw CapsuleNotFoundError(spec.image, "image");
    throw CapsuleNotFoundError(spec.network, "network");
  }
  if (r.status == 409) throw CapsuleConflictError("a container named " + name + " exists already: " + r.message());
  if (r.status != 201)
    throw_engine_error(r, "create capsule " + ctx.capsule_id, spec.image, "spec", ServerErrorAs::validation);
  std::string id = text(r.json(), "Id");
  if (id.empty())
    throw EngineUnavailableError("the Docker engine at " + engine_->describe() + " created a container without an Id");
  EngineReply started = engine_->call("POST", containers(id) + "/start", "", std::chrono::seconds(120));
  if (started.status != 204 && started.status != 304) {
    try {
      destroy(id);
    } catch (const PodClientError&) {
      // the start failure is the error to report
    }
    throw_engine_error(started, "start capsule " + ctx.capsule_id, id, "spec", ServerErrorAs::validation);
  }
  return id;
}

void DockerBackend::start(const std::string& container_id) {
  EngineReply r = engine_->call("POST", containers(container_id) + "/start", "", std::chrono::seconds(120));
  if (r.status == 204 || r.status == 304) return;
  throw_engine_error(r, "start container " + container_id, container_id, "container");
}

void DockerBackend::stop(const std::string& container_id, int grace_s) {
  grace_s = std::max(grace_s, 0);
  EngineReply r = engine_->call("POST", containers(container_id) + "/stop?t=" + std::to_string(grace_s), "",
                                std::chrono::seconds(grace_s + 60));
  if (r.status == 204 || r.status == 304) return;
  throw_engine_error(r, "stop container " + container_id, container_id, "container");
}

void DockerBackend::pause(const std::string& container_id) {
  EngineReply r = engine_->call("POST", containers(container_id) + "/pause");
  if (r.status == 204) return;
  throw_engine_error(r, "pause container " + container_id, container_id, "container");
}

void DockerBackend::resume(const std::string& container_id) {
  EngineReply r = engine_->call("POST", containers(container_id) + "/unpause");
  if (r.status == 204) return;
  throw_engine_error(r, "resume container " + container_id, container_id, "container");
}

void DockerBackend::destroy(const std::string& container_id) {
  if (container_id.empty()) return;
  EngineReply r = engine_->call("DELETE", containers(container_id) + "?force=1&v=1", "", std::chrono::seconds(120));
  if (r.status == 204 || r.status == 404) return;
  // "removal of container … is already in progress": another caller is destroying it.
  if (r.status == 409 && r.message().find("already in progress") != std::string::npos) return;
  throw_engine_error(r, "destroy container " + container_id, container_id, "container");
}

EngineState DockerBackend::inspect(const std::string& container_id) {
  EngineState s;
  EngineReply r = engine_->call("GET", containers(container_id) + "/json");
  if (r.status == 404) return s;
  if (r.status != 200) throw_engine_error(r, "inspect container " + container_id, container_id, "container");
  json j = r.json();
  s.exists = true;
  const json& st = j.contains("State") && j["State"].is_object() ? j["State"] : json::object();
  s.status = text(st, "Status");
  s.running = st.value("Running", false);
  s.paused = st.value("Paused", false);
  s.exit_code = number<int>(st, "ExitCode");
  s.oom_killed = st.value("OOMKilled", false);
  s.pid = number<int>(st, "Pid");
  s.error = text(st, "Error");
  s.started_at = text(st, "StartedAt");
  s.finished_at = text(st, "FinishedAt");
  if (j.contains("NetworkSettings") && j["NetworkSettings"].is_object()) {
    const json& ns = j["NetworkSettings"];
    if (ns.contains("Ports") && ns["Ports"].is_object()) {
      for (const auto& [key, binds] : ns["Ports"].items()) {
        if (!binds.is_array() || binds.empty() || !key.ends_with("/tcp")) continue;
        int cport = std::atoi(key.c_str());
        for (const auto& b : binds) {
          int hport = std::atoi(text(b, "HostPort").c_str());
          if (cport > 0 && hport > 0) {
            s.published_ports[cport] = hport;
            break;
          }
        }
      }
    }
  }
  const json& hc = j.contains("HostConfig") && j["HostConfig"].is_object() ? j["HostConfig"] : json::object();
  s.limits.vcpus = static_cast<double>(number<std::int64_t>(hc, "NanoCpus")) / 1e9;
  s.limits.memory_bytes = number<std::int64_t>(hc, "Memory");
  s.limits.pids_limit = number<std::int64_t>(hc, "PidsLimit");
  s.limits.privileged = hc.value("Privileged", false);
  s.limits.read_only_rootfs = hc.value("ReadonlyRootfs", false);
  for (const auto& opt : strings(hc, "SecurityOpt"))
    if (opt == "no-new-privileges" || opt == "no-new-privileges:true" || opt == "no-new-privileges=true")
      s.limits.no_new_privileges = true;
  s.limits.cap_drop = strings(hc, "CapDrop");
  s.limits.cap_add = strings(hc, "CapAdd");
  return s;
}

std::vector<EngineContainer> DockerBackend::list_capsule_containers() {
  json filters{{"label", json::array({kLabelCapsule})}};
  EngineReply r = engine_->call("GET", "/v1.41/containers/json?all=1&filters=" + percent_encode(filters.dump()));
  if (r.status != 200) throw_engine_error(r, "list containers", "containers", "container");
  std::vector<EngineContainer> out;
  json j = r.json();
  if (!j.is_array()) return out;
  for (const auto& c : j) {
    EngineContainer e;
    e.container_id = text(c, "Id");
    e.status = text(c, "State");
    if (c.contains("Labels") && c["Labels"].is_object()) e.capsule_id = text(c["Labels"], kLabelCapsule);
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<std::string> DockerBackend::logs(const std::string& container_id, int tail_lines) {
  std::vector<std::string> lines;
  if (tail_lines <= 0) return lines;
  EngineReply r =
      engine_->call("GET", containers(container_id) + "/logs?stdout=1&stderr=1&tail=" + std::to_string(tail_lines));
  if (r.status != 200) throw_engine_error(r, "read the logs of container " + container_id, container_id, "container");
  std::string merged;
  docker::Demux demux;
  if (!demux.feed(r.body, merged, nullptr)) merged = r.body;  // a TTY container's log is not framed
  std::size_t pos = 0;
  while (pos < merged.size()) {
    std::size_t nl = merged.find('\n', pos);
    if (nl == std::string::npos) nl = merged.size();
    std::string line = merged.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(redact_text(line));
    pos = nl + 1;
  }
  return lines;
}

bool DockerBackend::ping() {
  try {
    EngineReply r = engine_->call("GET", "/_ping", "", std::chrono::seconds(5));
    return r.status == 200;
  } catch (const EngineUnavailableError&) {
    return false;
  }
}

std::unique_ptr<ExecChannel> DockerBackend::exec_channel(const std::string& container_id) {
  return std::make_unique<DockerExecChannel>(engine_, container_id);
}

std::unique_ptr<DockerBackend> make_docker_backend(std::string docker_host) {
  return std::make_unique<DockerBackend>(engine_endpoint_from_env(std::move(docker_host)));
}

}  // namespace pw::capsules

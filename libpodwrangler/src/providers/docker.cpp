#include <podwrangler/errors.hpp>
#include <podwrangler/providers/docker.hpp>
#include <podwrangler/url.hpp>

#include "transport/docker_api.hpp"

#include <nlohmann/json.hpp>

#include <cctype>
#include <cstdlib>

namespace pw {

namespace docker {

std::string socket_path(std::string_view host) {
  constexpr std::string_view prefix = "unix://";
  if (!host.starts_with(prefix) || host.size() <= prefix.size() || host[prefix.size()] != '/')
    throw PodConfigValidationError("host", "expected unix:///path/to/docker.sock (only unix sockets are supported)");
  return std::string(host.substr(prefix.size()));
}

bool Demux::feed(std::string_view bytes, std::string& out, std::string* err) {
  pending_.append(bytes);
  std::size_t pos = 0;
  while (pending_.size() - pos >= 8) {
    auto type = static_cast<unsigned char>(pending_[pos]);
    if (type > 3 || pending_[pos + 1] != 0 || pending_[pos + 2] != 0 || pending_[pos + 3] != 0) return false;
    std::uint32_t len = 0;
    for (int i = 4; i < 8; ++i) len = (len << 8) | static_cast<unsigned char>(pending_[pos + i]);
    if (pending_.size() - pos - 8 < len) break;
    std::string_view payload(pending_.data() + pos + 8, len);
    if (type == 2 && err)
      err->append(payload);
    else
      out.append(payload);  // stdout, stderr merged, or a system error (type 3) text
    pos += 8 + len;
  }
  pending_.erase(0, pos);
  return true;
}

}  // namespace docker

namespace {
bool container_ref_ok(std::string_view s) {
  if (s.empty() || s.size() > 128 || !std::isalnum(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') return false;
  return true;
}

struct DockerTarget {
  std::string container, host, shell = "/bin/sh", user;
};

DockerTarget target_of(std::string_view url) {
  Url u = parse_url_strict(url);
  if (u.scheme != "docker") throw PodURLParseError("scheme", "expected docker://", url);
  if (!container_ref_ok(u.host))
    throw PodURLParseError("container", "expected a container name or id ([A-Za-z0-9][A-Za-z0-9_.-]*)", url);
  if (!u.port.empty() || !u.userinfo.empty())
    throw PodURLParseError("container", "docker:// takes only a container", url);
  if (!u.path.empty() && u.path != "/") throw PodURLParseError("path", "docker:// takes no path", url);
  DockerTarget t;
  t.container = u.host;
  t.host = DockerProvider::default_host();
  for (const auto& [k, v] : u.query) {
    if (k == "host") {
      t.host = v;
      try {
        docker::socket_path(v);
      } catch (const PodConfigValidationError&) {
        throw PodURLParseError("host", "expected unix:///path/to/docker.sock", url);
      }
    } else if (k == "shell") {
      if (v.empty() || v[0] != '/') throw PodURLParseError("shell", "must be an absolute path", url);
      t.shell = v;
    } else if (k == "user") {
      t.user = v;
    } else {
      throw PodURLParseError("query", "unknown parameter '" + k + "' (host, shell, user)", url);
    }
  }
  return t;
}

std::string url_of(const DockerTarget& t) {
  std::string s = "docker://" + t.container + "?host=" + percent_encode(t.host);
  if (t.shell != "/bin/sh") s += "&shell=" + percent_encode(t.shell);
  if (!t.user.empty()) s += "&user=" + percent_encode(t.user);
  return s;
}

transport::DockerExecSpec spec_of(const DockerTarget& t, std::vector<std::string> argv) {
  return transport::DockerExecSpec{docker::socket_path(t.host), t.host, t.container, std::move(argv), t.user};
}
}  // namespace

std::string DockerProvider::default_host() {
  const char* env = std::getenv("DOCKER_HOST");
  if (env && *env) return env;
  return "unix:///var/run/docker.sock";
}

std::pair<PodIdentity, SecretString> DockerProvider::parse_url(std::string_view url) const {
  DockerTarget t = target_of(url);
  PodIdentity id;
  id.pod_name = t.container;
  id.service = "docker";
  id.cluster = t.host;
  id.container = t.container;
  id.origin = url_of(t);
  return {std::move(id), SecretString{}};
}

ConnectionSpec DockerProvider::build_connection_spec(const PodIdentity& identity, const SecretString&) const {
  ConnectionSpec s;
  s.url = identity.origin.empty() ? "docker://" + identity.pod_name : identity.origin;
  s.line_framed = false;
  s.is_binary_framed = true;
  s.tty = false;
  return s;
}

Task<void> DockerProvider::init_shell(Connection& conn, const ConnectionSpec&) const {
  co_await conn.write("PS1=''; PS2=''; export TERM=dumb NO_COLOR=1 PAGER=cat GIT_PAGER=cat\n");
}

std::unique_ptr<Connection> DockerProvider::open(Executor ex, const ConnectionSpec& schema) const {
  DockerTarget t = target_of(schema.url);
  return transport::make_docker_exec_connection(ex, spec_of(t, {t.shell}));
}

Task<bool> DockerProvider::interrupt(Connection&, const PodIdentity& identity, const SecretString&, long shell_pid,
                                     bool, bool hard) const {
  if (shell_pid <= 1) co_return false;
  std::vector<std::string> argv = interrupt_children_argv(shell_pid, hard);
  PodIdentity id = identity;
  try {
    ExecOutput out = co_await exec_once(std::move(id), std::move(argv), 5.0);
    // 3: nothing runs below the shell. Asking may still help (the command may just be
    // ending); insisting cannot (the shell itself is busy), so the shell is replaced.
    co_return out.exit_code == 0 || (!hard && out.exit_code == 3);
  } catch (const PodClientError&) {
    co_return false;
  }
}

Task<std::vector<PodIdentity>> DockerProvider::list_pods(const SecretString&, ListPodsOptions options) const {
  std::string host = host_.empty() ? default_host() : host_;
  nlohmann::json filters{{"status", {"running"}}};
  if (!options.label_selector.empty()) {
    nlohmann::json labels = nlohmann::json::array();
    std::size_t i = 0;
    const std::string& sel = options.label_selector;
    while (i <= sel.size()) {
      std::size_t c = sel.find(',', i);
      if (c == std::string::npos) c = sel.size();
      std::string item = sel.substr(i, c - i);
      if (!item.empty()) labels.push_back(item);
      i = c + 1;
    }
    filters["label"] = labels;
  }
  auto reply = co_await transport::docker_request(docker::socket_path(host), "GET",
                                                  "/v1.41/containers/json?filters=" + percent_encode(filters.dump()),
                                                  "", std::chrono::seconds(15));
  if (reply.status != 200)
    throw PodConnectionError("Docker container list on " + host + " failed: HTTP " + std::to_string(reply.status));
  auto j = nlohmann::json::parse(reply.body, nullptr, false);
  std::vector<PodIdentity> out;
  if (!j.is_array()) co_return out;
  for (const auto& c : j) {
    std::string name;
    if (c.contains("Names") && c["Names"].is_array() && !c["Names"].empty() && c["Names"][0].is_string())
      name = c["Names"][0].get<std::string>();
    if (!name.empty() && name[0] == '/') name.erase(0, 1);
    if (name.empty() && c.contains("Id") && c["Id"].is_string()) name = c["Id"].get<std::string>().substr(0, 12);
    DockerTarget t;
    t.container = name;
    t.host = host;
    auto [id, tok] = parse_url(url_of(t));
    out.push_back(std::move(id));
  }
  co_return out;
}

Task<ExecOutput> DockerProvider::exec_once(PodIdentity identity, std::vector<std::string> argv, double timeout) {
  DockerTarget t = target_of(identity.origin.empty() ? "docker://" + identity.pod_name : identity.origin);
  co_return co_await transport::docker_exec_once(spec_of(t, std::move(argv)), timeout);
}

}  // namespace pw

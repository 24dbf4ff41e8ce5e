#include <podwrangler/errors.hpp>
#include <podwrangler/providers/local.hpp>
#include <podwrangler/url.hpp>

namespace pw {

std::pair<PodIdentity, SecretString> LocalProvider::parse_url(std::string_view url) const {
  Url u = parse_url_strict(url);
  if (u.scheme != "local") throw PodURLParseError("scheme", "expected local://", url);
  if (!u.port.empty() || !u.userinfo.empty()) throw PodURLParseError("host", "local:// takes only a name", url);
  if (!u.path.empty() && u.path != "/") throw PodURLParseError("path", "local:// takes no path", url);
  PodIdentity id;
  id.pod_name = u.host.empty() ? "local" : u.host;
  id.service = "local";
  id.cluster = "local";
  std::string query;
  for (const auto& [k, v] : u.query) {
    if (k != "shell" && k != "cwd" && k != "cols")
      throw PodURLParseError("query", "unknown parameter '" + k + "' (shell, cwd, cols)", url);
    if ((k == "shell" || k == "cwd") && (v.empty() || v[0] != '/'))
      throw PodURLParseError(k, "must be an absolute path", url);
    if (k == "cols") {
      if (v.empty() || v.size() > 4 || v.find_first_not_of("0123456789") != std::string::npos)
        throw PodURLParseError("cols", "not a number", url);
      id.cols = std::stoi(v);
      if (id.cols < 1) throw PodURLParseError("cols", "must be positive", url);
      continue;
    }
    query += (query.empty() ? "?" : "&") + k + "=" + percent_encode(v);
  }
  id.origin = "local://" + u.host + query;
  return {std::move(id), SecretString{}};
}

ConnectionSpec LocalProvider::build_connection_spec(const PodIdentity& identity, const SecretString&) const {
  ConnectionSpec s;
  s.url = identity.origin.empty() ? "local://" + identity.pod_name : identity.origin;
  // The origin leaves the width out; open() reads it back from here (the last "cols" wins,
  // as in parse_url()).
  if (identity.cols != DEFAULT_TERMINAL_COLS)
    s.url += (s.url.find('?') == std::string::npos ? "?cols=" : "&cols=") + std::to_string(identity.cols);
  s.line_framed = false;
  s.is_binary_framed = true;
  s.tty = true;
  return s;
}

Task<std::vector<PodIdentity>> LocalProvider::list_pods(const SecretString&, ListPodsOptions) const {
  auto [id, tok] = parse_url("local://local");
  co_return std::vector<PodIdentity>{id};
}

Task<void> LocalProvider::init_shell(Connection& conn, const ConnectionSpec&) const {
  co_await conn.write(default_shell_preamble(false));
}

std::unique_ptr<Connection> LocalProvider::open(Executor ex, const ConnectionSpec& schema) const {
  Url u = parse_url_strict(schema.url);
  std::string shell = u.param("shell").value_or("/bin/sh");
  std::string cwd = u.param("cwd").value_or("");
  int cols = DEFAULT_TERMINAL_COLS;
  for (const auto& [k, v] : u.query) {
    if (k == "cols" && !v.empty() && v.size() <= 4 && v.find_first_not_of("0123456789") == std::string::npos &&
        std::stoi(v) >= 1)
      cols = std::stoi(v);
  }
  return make_pty_connection(ex, std::move(shell), std::move(cwd), cols);
}

}  // namespace pw

#include <podwrangler/errors.hpp>
#include <podwrangler/provider.hpp>
#include <podwrangler/providers/docker.hpp>
#include <podwrangler/providers/kubernetes.hpp>
#include <podwrangler/providers/local.hpp>
#include <podwrangler/providers/plaintty.hpp>

#include <algorithm>
#include <mutex>

namespace pw {

std::string default_shell_preamble(bool terminal_setup) {
  std::string s;
  // -icanon (with min 1 time 0): no 4096-byte line limit of the terminal's line editor,
  // so long commands arrive whole; -opost: output bytes pass unchanged (no "\n" → "\r\n");
  // -ixon: a ^S in a command does not stop the output. ISIG stays on: Ctrl-C interrupts.
  if (terminal_setup) s += "stty -echo -opost -onlcr -ixon -icanon min 1 time 0 2>/dev/null; ";
  // bash on a terminal is interactive: no line editor (readline would echo and emit
  // bracketed-paste codes) and no history (it would record every frame we send).
  s += "PS1=''; PS2=''; PS4=''; export TERM=dumb NO_COLOR=1 PAGER=cat GIT_PAGER=cat; "
       "unset PROMPT_COMMAND HISTFILE 2>/dev/null; "
       "case ${BASH_VERSION-} in ?*) set +o history +o emacs +o vi;; esac\n";
  return s;
}

Task<void> ProviderInterface::init_shell(Connection& conn, const ConnectionSpec&) const {
  co_await conn.write(default_shell_preamble());
}

Task<bool> Connection::interrupt(bool) { co_return false; }

Task<bool> ProviderInterface::interrupt(Connection& conn, const PodIdentity&, const SecretString&, long, bool tty,
                                        bool hard) const {
  bool done = co_await conn.interrupt(hard);
  if (!done && tty) {
    // The terminal's line discipline turns these into SIGINT / SIGQUIT for its foreground job.
    std::string key(1, hard ? '\x1c' : '\x03');
    co_await conn.write(key);
    done = true;
  }
  co_return done;
}

std::vector<std::string> interrupt_children_argv(long shell_pid, bool hard) {
  if (shell_pid <= 1) throw PodConfigValidationError("shell_pid", "must be a process id above 1");
  // POSIX sh (busybox ash included). The descendants of $1 come from the kernel's
  // /proc/<pid>/task/<tid>/children lists, level by level (only the shell's own tree is
  // read); without them, one pass over /proc/*/stat collects pid:ppid pairs (the fields
  // after the last ')' are state and ppid) and the tree is closed over in memory. The
  // script is started by the exec, not by the shell, so it is never one of them; $1
  // must be a pid above 1.
  static constexpr const char* kScript =
      "s=$1; sig=$2\n"
      "case $s in ''|*[!0-9]*) exit 3;; esac\n"
      "[ \"$s\" -gt 1 ] || exit 3\n"
      "d=\n"
      "if [ -r \"/proc/$s/task/$s/children\" ]; then\n"
      "  queue=$s\n"
      "  while [ -n \"$queue\" ]; do\n"
      "    next=\n"
      "    for p in $queue; do\n"
      "      for f in /proc/$p/task/*/children; do\n"
      "        l=; { read -r l < \"$f\"; } 2>/dev/null\n"
      "        next=\"$next $l\"\n"
      "      done\n"
      "    done\n"
      "    set -- $next; queue=$*; d=\"$d $queue\"\n"
      "  done\n"
      "else\n"
      "  pairs=\n"
      "  for f in /proc/[0-9]*/stat; do\n"
      "    l=; { read -r l < \"$f\"; } 2>/dev/null || continue\n"
      "    p=${f#/proc/}; p=${p%/stat}\n"
      "    set -- ${l##*) }\n"
      "    pairs=\"$pairs $p:$2\"\n"
      "  done\n"
      "  all=\" $s \"; more=1\n"
      "  while [ $more = 1 ]; do\n"
      "    more=0\n"
      "    for e in $pairs; do\n"
      "      case $all in *\" ${e%%:*} \"*) continue;; esac\n"
      "      case $all in *\" ${e#*:} \"*) all=\"$all${e%%:*} \"; d=\"$d ${e%%:*}\"; more=1;; esac\n"
      "    done\n"
      "  done\n"
      "fi\n"
      "set -- $d\n"
      "[ $# -gt 0 ] || exit 3\n"
      "kill -s \"$sig\" \"$@\" 2>/dev/null\n"
      "exit 0\n";
  return {"/bin/sh", "-c", kScript, "pw-interrupt", std::to_string(shell_pid), hard ? "KILL" : "INT"};
}

Task<std::string> ProviderInterface::detect_namespace(Connection&, const PodIdentity& identity,
                                                      const ConnectionSpec&) const {
  co_return identity.namespace_.empty() ? std::string("default") : identity.namespace_;
}

Task<std::vector<PodIdentity>> ProviderInterface::list_pods(const SecretString&, ListPodsOptions) const {
  throw PodClientError("provider '" + name() + "' cannot list pods");
  co_return std::vector<PodIdentity>{};
}

std::unique_ptr<Connection> ProviderInterface::open(Executor ex, const ConnectionSpec& schema) const {
  return make_websocket_connection(ex, schema);
}

namespace {
std::mutex g_catalog_mu;
}

ProviderCatalog::ProviderCatalog() {
  providers_["plaintty"] = std::make_shared<PlainTTYProvider>();
  providers_["local"] = std::make_shared<LocalProvider>();
  providers_["docker"] = std::make_shared<DockerProvider>();
  auto k8s = std::make_shared<KubernetesProvider>();
  providers_["kubernetes"] = k8s;
  providers_["k8s"] = k8s;
}

ProviderCatalog& ProviderCatalog::instance() {
  static ProviderCatalog catalog;
  return catalog;
}

void ProviderCatalog::add(std::string name, std::shared_ptr<ProviderInterface> provider) {
  std::lock_guard lock(g_catalog_mu);
  providers_[std::move(name)] = std::move(provider);
}

std::shared_ptr<ProviderInterface> ProviderCatalog::get(std::string_view name) const {
  std::lock_guard lock(g_catalog_mu);
  auto it = providers_.find(name);
  return it == providers_.end() ? nullptr : it->second;
}

std::vector<std::string> ProviderCatalog::names() const {
  std::lock_guard lock(g_catalog_mu);
  std::vector<std::string> out;
  for (const auto& [k, v] : providers_) out.push_back(k);
  return out;
}

std::shared_ptr<ProviderInterface> ProviderCatalog::for_url(std::string_view url) const {
  std::size_t se = url.find("://");
  std::string scheme(url.substr(0, se == std::string_view::npos ? 0 : se));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) { return std::tolower(c); });
  if (scheme == "local") return get("local");
  if (scheme == "ws" || scheme == "wss") return get("plaintty");
  if (auto p = get(scheme)) return p;
  throw PodURLParseError("scheme", "no provider handles this scheme", url);
}

PodEndpoint endpoint_from_url(std::string_view url, std::shared_ptr<ProviderInterface> provider) {
  if (!provider) provider = ProviderCatalog::instance().for_url(url);
  auto [identity, token] = provider->parse_url(url);
  return PodEndpoint{std::move(identity), std::move(provider), std::move(token)};
}

}  // namespace pw

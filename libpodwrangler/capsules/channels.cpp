// How the manager reaches the inside of a capsule: the in-capsule agent (one multiplexed
// unix-socket connection, the fast path) or, where the agent cannot start, the engine's
// exec (the fallback), with the reason in the record. One channel per capsule, cached.
#include "manager_impl.hpp"

#include <podwrangler/errors.hpp>

#include <podwrangler/capsules/agent_client.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <thread>

namespace pw::capsules {
namespace {

namespace fs = std::filesystem;

bool is_executable_file(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
}

std::string socket_path(const std::string& run_dir) { return run_dir + "/" + kAgentSocketName; }

}  // namespace

std::string find_agent_executable() {
  if (const char* env = std::getenv("PODWRANGLER_AGENT_PATH"); env && *env) {
    return is_executable_file(env) ? std::string(env) : std::string();
  }
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec || exe.empty()) return "";
  const fs::path dir = exe.parent_path();
  for (const fs::path& p : {dir / "pw-agent", dir / ".." / "libexec" / "podwrangler" / "pw-agent"}) {
    if (is_executable_file(p)) return fs::weakly_canonical(p, ec).string();
  }
  return "";
}

void CapsuleManager::Impl::resolve_agent() {
  const std::string no = std::string(mgr::kNoAgentReason);
  if (!settings.agent_path.empty()) {
    if (is_executable_file(settings.agent_path)) {
      agent_path = fs::absolute(settings.agent_path).string();
    } else {
      agent_missing_reason = no + " at " + settings.agent_path;
    }
  } else {
    agent_path = find_agent_executable();
    if (agent_path.empty())
      agent_missing_reason =
          no + " found (PODWRANGLER_AGENT_PATH, pw-agent next to the program, ../libexec/podwrangler/pw-agent)";
  }
}

bool CapsuleManager::Impl::agent_available() const { return !agent_path.empty(); }

std::unique_ptr<ExecChannel> CapsuleManager::Impl::dial_agent(const std::string& socket, int pid,
                                                              std::chrono::milliseconds timeout) {
  return connect_agent(socket, pid, timeout);
}

bool CapsuleManager::Impl::had_agent(const CapsuleRecord& rec) const {
  if (rec.exec_mode == "agent") return true;
  if (rec.exec_mode == "docker-exec") return !rec.exec_mode_reason.starts_with(mgr::kNoAgentReason);
  return agent_available();
}

void CapsuleManager::Impl::drop_channel(Entry& e) {
  std::shared_ptr<ExecChannel> ch;
  {
    std::lock_guard lk(e.ch_mu);
    ch.swap(e.channel);
  }
  if (ch) {
    try {
      ch->close();
    } catch (...) {  // a channel that is already broken: nothing to close
    }
  }
  std::lock_guard lk(e.bg_mu);
  e.background_pids.clear();
}

void CapsuleManager::Impl::attach(CapsuleRecord& rec, Entry& e, bool agent_injected) {
  drop_channel(e);
  const auto t0 = std::chrono::steady_clock::now();
  EngineState st = backend->inspect(rec.container_id);
  if (!st.exists || !st.running)
    throw AgentError("the capsule's container is not running (" + (st.exists ? st.status : "missing") + ", exit code " +
                     std::to_string(st.exit_code) + ")");
  rec.published_ports = st.published_ports;
  rec.limits = st.limits;

  std::unique_ptr<ExecChannel> ch;
  std::string why;
  if (agent_injected && agent_available()) {
    const auto deadline = t0 + settings.ready_timeout;
    const std::string sock = socket_path(run_dir(rec.id));
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() < 1) left = std::chrono::milliseconds(1);
      try {
        ch = dial_agent(sock, st.pid, std::min(left, std::chrono::milliseconds(1000)));
        break;
      } catch (const std::exception& ex) {
        why = ex.what();
      }
      if (std::chrono::steady_clock::now() >= deadline) break;
      st = backend->inspect(rec.container_id);
      if (!st.exists || !st.running)
        throw AgentError("the capsule's container exited while its agent started (exit code " +
                         std::to_string(st.exit_code) + "): " + why);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!ch) why = "the agent did not answer within " + std::to_string(settings.ready_timeout.count()) + " ms: " + why;
  } else {
    why = agent_missing_reason.empty() ? std::string(mgr::kNoAgentReason) : agent_missing_reason;
  }
  if (ch) {
    rec.exec_mode = "agent";
    rec.exec_mode_reason.clear();
  } else {
    ch = backend->exec_channel(rec.container_id);
    rec.exec_mode = "docker-exec";
    rec.exec_mode_reason = why;
  }
  {
    std::lock_guard lk(e.ch_mu);
    e.channel = std::move(ch);
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  note(rec, "connected",
       rec.exec_mode + " in " + std::to_string(ms.count()) + " ms" +
           (rec.exec_mode_reason.empty() ? "" : " (" + rec.exec_mode_reason + ")"));
}

std::shared_ptr<ExecChannel> CapsuleManager::Impl::channel(CapsuleRecord& rec, Entry& e) {
  {
    std::lock_guard lk(e.ch_mu);
    if (e.channel) return e.channel;
  }
  std::unique_ptr<ExecChannel> ch;
  std::string mode = rec.exec_mode, reason = rec.exec_mode_reason;
  if (rec.exec_mode == "agent") {
    // The capsule outlived our process (or its connection): the agent keeps running.
    EngineState st = backend->inspect(rec.container_id);
    if (!st.exists || !st.running) throw AgentError("the capsule's container is not running");
    try {
      ch = dial_agent(socket_path(run_dir(rec.id)), st.pid, std::chrono::milliseconds(2000));
    } catch (const std::exception& ex) {
      mode = "docker-exec";
      reason = std::string("the agent did not answer when reconnecting: ") + ex.what();
    }
  } else {
    mode = "docker-exec";
  }
  if (!ch) ch = backend->exec_channel(rec.container_id);
  std::shared_ptr<ExecChannel> shared(std::move(ch));
  {
    std::lock_guard lk(e.ch_mu);
    e.channel = shared;
  }
  rec.exec_mode = mode;
  rec.exec_mode_reason = reason;
  note(rec, "connected", mode + " (reconnected)" + (reason.empty() ? "" : " (" + reason + ")"));
  return shared;
}

}  // namespace pw::capsules

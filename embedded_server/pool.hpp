#pragma once
// SessionPool: one warm PodSession per pod, reused across requests.
// - A session is created (connected) on first use and reused while the pod's
//   connection details (provider + URL) are unchanged; a PATCHed pod gets a new one.
// - Idle sessions are closed after the idle TTL; at most `max_sessions` are kept (the
//   least recently used idle one makes room; when every kept session is busy the
//   command runs on a session that is closed right after).
// - A session whose connection broke is dropped and the next command gets a new one;
//   one lost while idle is reconnected transparently before the command is sent.
// Every member runs on the ServerLoop's loop thread (no locks).
#include "embedded_server/store/command_status.hpp"

#include <podwrangler/errors.hpp>
#include <podwrangler/model.hpp>
#include <podwrangler/session.hpp>

#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace pw::server {

struct ExecOutcome {
  CommandResult result;
  CommandStatus status = CommandStatus::error;  // succeeded | failed | timeout | error
  std::optional<ErrorKind> error_kind;          // set when the command did not complete
};

class SessionPool {
 public:
  SessionPool(Executor ex, std::size_t max_sessions, double idle_ttl_s);
  ~SessionPool();

  // Runs `command` on the pod's warm session. Never throws for pod-side failures:
  // they come back in the outcome.
  Task<ExecOutcome> exec(std::string alias, PodEndpoint endpoint, std::string fingerprint, std::string command,
                         double timeout);
  // Closes every session (shutdown); running commands end with a connection error and
  // commands not yet started (queued in a fan-out) are not started any more.
  Task<void> close_all();
  // Starts the idle reaper (a timer on the loop).
  void start_reaper();
  std::size_t size() const noexcept { return entries_.size(); }

  struct Entry;

 private:
  Task<std::shared_ptr<Entry>> acquire(const std::string& alias, const PodEndpoint& endpoint,
                                       const std::string& fingerprint, double timeout);
  void retire(const std::string& alias);
  void touch(Entry& e);
  bool make_room();
  Task<void> reap_loop();

  Executor ex_;
  std::size_t max_;
  double ttl_;
  std::map<std::string, std::shared_ptr<Entry>, std::less<>> entries_;
  std::list<std::string> lru_;  // front: most recently used
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool closing_ = false;  // close_all() ran: no new sessions, no new commands
};

// What identifies a pod's connection details (provider + URL).
std::string session_fingerprint(const std::string& provider, const std::string& url);

}  // namespace pw::server

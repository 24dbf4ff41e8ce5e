#include "embedded_server/pool.hpp"

#include "embedded_server/store/store.hpp"

#include <utility>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>

namespace pw::server {

using Clock = std::chrono::steady_clock;

struct SessionPool::Entry {
  std::shared_ptr<PodSession> session;
  std::string fingerprint;
  bool connecting = true;
  bool kept = true;  // false: a one-off session, closed after its command
  int busy = 0;
  Clock::time_point last_used = Clock::now();
  std::shared_ptr<asio::steady_timer> ready;  // cancelled when connecting ends
  std::list<std::string>::iterator lru_pos;
};

std::string session_fingerprint(const std::string& provider, const std::string& url) { return provider + '\n' + url; }

SessionPool::SessionPool(Executor ex, std::size_t max_sessions, double idle_ttl_s)
    : ex_(std::move(ex)), max_(max_sessions), ttl_(idle_ttl_s) {}

SessionPool::~SessionPool() { *alive_ = false; }

namespace {

Task<void> close_quietly(std::shared_ptr<PodSession> s) {
  try {
    co_await s->close();
  } catch (...) {
  }
}

SessionOptions pool_session_options(double timeout) {
  SessionOptions o;
  // A connection lost while idle is replaced once, quickly, before the command goes out.
  o.auto_reconnect = true;
  o.max_reconnect_attempts = 1;
  o.reconnect_backoff_base = 0.1;
  o.connect_timeout = std::min(DEFAULT_CONNECT_TIMEOUT, std::max(timeout, 0.5));
  return o;
}

}  // namespace

void SessionPool::touch(Entry& e) {
  e.last_used = Clock::now();
  if (e.kept) lru_.splice(lru_.begin(), lru_, e.lru_pos);
}

void SessionPool::retire(const std::string& alias) {
  auto it = entries_.find(alias);
  if (it == entries_.end()) return;
  auto e = it->second;
  lru_.erase(e->lru_pos);
  entries_.erase(it);
  e->kept = false;
  if (e->busy == 0 && !e->connecting) asio::co_spawn(ex_, close_quietly(e->session), asio::detached);
}

bool SessionPool::make_room() {
  if (entries_.size() < max_) return true;
  for (auto it = lru_.rbegin(); it != lru_.rend(); ++it) {
    auto e = entries_.find(*it);
    if (e != entries_.end() && e->second->busy == 0 && !e->second->connecting) {
      retire(std::string(*it));
      return true;
    }
  }
  return false;
}

Task<std::shared_ptr<SessionPool::Entry>> SessionPool::acquire(const std::string& alias, const PodEndpoint& endpoint,
                                                               const std::string& fingerprint, double timeout) {
  while (true) {
    auto it = entries_.find(alias);
    if (it != entries_.end() && it->second->fingerprint == fingerprint) {
      auto e = it->second;
      if (!e->connecting) co_return e;
      // Someone else is connecting this pod: wait for them, then look again.
      auto ready = e->ready;
      boost::system::error_code ec;
      co_await ready->async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    if (it != entries_.end()) retire(alias);  // the pod's URL or provider changed

    auto e = std::make_shared<Entry>();
    e->fingerprint = fingerprint;
    e->ready = std::make_shared<asio::steady_timer>(ex_, Clock::time_point::max());
    e->session = std::make_shared<PodSession>(ex_, endpoint, pool_session_options(timeout));
    e->kept = make_room();
    if (e->kept) {
      lru_.push_front(alias);
      e->lru_pos = lru_.begin();
      entries_.emplace(alias, e);
    }
    try {
      co_await e->session->connect();
    } catch (...) {
      e->connecting = false;
      e->ready->cancel();
      auto cur = entries_.find(alias);
      if (cur != entries_.end() && cur->second == e) {
        lru_.erase(e->lru_pos);
        entries_.erase(cur);
      }
      throw;
    }
    e->connecting = false;
    e->ready->cancel();
    co_return e;
  }
}

Task<ExecOutcome> SessionPool::exec(std::string alias, PodEndpoint endpoint, std::string fingerprint,
                                    std::string command, double timeout) {
  ExecOutcome out;
  auto started = Clock::now();
  std::shared_ptr<Entry> e;
  auto fail = [&](const PodClientError& err, CommandStatus status) {
    out.result.command = command;
    out.result.pod_label = endpoint.identity.label();
    out.result.error = err.what();
    out.result.exit_code = -1;
    out.status = status;
    out.error_kind = err.kind();
    out.result.duration = std::chrono::duration<double>(Clock::now() - started).count();
  };
  try {
    if (closing_) throw PodNotConnectedError("the server is shutting down");
    e = co_await acquire(alias, endpoint, fingerprint, timeout);
  } catch (const PodClientError& err) {
    fail(err, CommandStatus::error);
    co_return out;
  }
  ++e->busy;
  touch(*e);
  bool broken = false;
  try {
    out.result = co_await e->session->run(command, timeout, false);
    out.status = out.result.exit_code == 0 ? CommandStatus::succeeded : CommandStatus::failed;
  } catch (const PodCommandTimeoutError& err) {
    fail(err, CommandStatus::timeout);
    out.result.output = err.output();
  } catch (const PodClientError& err) {
    fail(err, CommandStatus::error);
    broken = err.kind() == ErrorKind::connection || err.kind() == ErrorKind::not_connected;
  }
  --e->busy;
  touch(*e);
  auto cur = entries_.find(alias);
  bool still_kept = cur != entries_.end() && cur->second == e;
  if (broken && still_kept) {
    retire(alias);
  } else if (!still_kept && e->busy == 0) {
    asio::co_spawn(ex_, close_quietly(e->session), asio::detached);
  }
  co_return out;
}

Task<void> SessionPool::close_all() {
  closing_ = true;
  auto all = std::move(entries_);
  entries_.clear();
  lru_.clear();
  // Abort first: a close() would wait for the running command to end.
  for (auto& [alias, e] : all) {
    e->kept = false;
    e->session->abort();
  }
  for (auto& [alias, e] : all) co_await close_quietly(e->session);
}

void SessionPool::start_reaper() { asio::co_spawn(ex_, reap_loop(), asio::detached); }

Task<void> SessionPool::reap_loop() {
  auto alive = alive_;
  asio::steady_timer timer(ex_);
  auto period = std::chrono::milliseconds(static_cast<long>(std::clamp(ttl_ / 4.0, 0.05, 30.0) * 1000.0));
  while (*alive) {
    timer.expires_after(period);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (!*alive || ec) co_return;
    auto now = Clock::now();
    auto ttl = std::chrono::duration<double>(ttl_);
    std::vector<std::string> idle;
    for (auto& [alias, e] : entries_)
      if (e->busy == 0 && !e->connecting && now - e->last_used >= ttl) idle.push_back(alias);
    for (auto& a : idle) retire(a);
  }
}

}  // namespace pw::server

#include <podwrangler/errors.hpp>
#include <podwrangler/registry.hpp>

#include <utility>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace pw {

void PodRegistry::register_pod(const std::string& alias, PodEndpoint endpoint) {
  if (alias.empty()) throw PodConfigValidationError("alias", "must not be empty");
  if (!endpoint.provider) throw PodConfigValidationError("provider", "endpoint has no provider");
  if (pods_.contains(alias)) throw PodConfigValidationError("alias", "'" + alias + "' is already registered");
  pods_.emplace(alias, std::move(endpoint));
  order_.push_back(alias);
}

void PodRegistry::register_from_url(const std::string& alias, std::string_view url,
                                    std::shared_ptr<ProviderInterface> provider) {
  register_pod(alias, endpoint_from_url(url, std::move(provider)));
}

bool PodRegistry::unregister(const std::string& alias) {
  if (pods_.erase(alias) == 0) return false;
  order_.erase(std::find(order_.begin(), order_.end(), alias));
  return true;
}

const PodEndpoint& PodRegistry::get(const std::string& alias) const {
  auto it = pods_.find(alias);
  if (it == pods_.end()) throw PodNotFoundError(alias);
  return it->second;
}

bool PodRegistry::contains(const std::string& alias) const { return pods_.contains(alias); }

std::vector<std::string> PodRegistry::aliases() const { return order_; }

PodSession PodRegistry::session(Executor ex, const std::string& alias, SessionOptions options) const {
  return PodSession(ex, get(alias), std::move(options));
}

namespace {
struct BoundedState {
  explicit BoundedState(Executor ex) : done(ex, asio::steady_timer::time_point::max()) {}
  std::size_t next = 0;
  std::size_t running = 0;
  asio::steady_timer done;
};

Task<void> bounded_worker(std::shared_ptr<BoundedState> st, std::size_t n,
                          const std::function<Task<void>(std::size_t)>* work) {
  while (st->next < n) {
    std::size_t i = st->next++;
    try {
      co_await (*work)(i);
    } catch (...) {
      // work() records its own failures; nothing may escape a detached worker.
    }
  }
  if (--st->running == 0) st->done.cancel();
}
}  // namespace

Task<void> for_each_bounded(std::size_t n, std::size_t width, std::function<Task<void>(std::size_t)> work) {
  if (n == 0) co_return;
  auto ex = co_await asio::this_coro::executor;
  auto st = std::make_shared<BoundedState>(ex);
  width = std::clamp<std::size_t>(width, 1, n);
  st->running = width;
  for (std::size_t w = 0; w < width; ++w) asio::co_spawn(ex, bounded_worker(st, n, &work), asio::detached);
  boost::system::error_code ec;
  while (st->running > 0) co_await st->done.async_wait(asio::redirect_error(asio::use_awaitable_t<Executor>{}, ec));
}

Task<std::vector<CommandResult>> PodRegistry::fan_out(std::vector<std::string> aliases, std::string command,
                                                      FanOutOptions options) const {
  auto ex = co_await asio::this_coro::executor;
  std::vector<CommandResult> results(aliases.size());
  // Named and moved in, never a temporary: GCC 12 destroys a temporary passed to a
  // coroutine's by-value parameter twice.
  std::function<Task<void>(std::size_t)> work = [&](std::size_t i) -> Task<void> {
    CommandResult& r = results[i];
    r.command = command;
    auto start = std::chrono::steady_clock::now();
    auto it = pods_.find(aliases[i]);
    if (it == pods_.end()) {
      r.pod_label = aliases[i];
      r.error = PodNotFoundError(aliases[i]).what();
      co_return;
    }
    PodSession s(ex, it->second, options.session);
    r.pod_label = s.label();
    try {
      co_await s.connect();
      r = co_await s.try_run(command, options.timeout);
    } catch (const PodClientError& e) {
      r.error = e.what();
    }
    r.duration = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    co_await s.close();
  };
  co_await for_each_bounded(aliases.size(), options.width, std::move(work));
  co_return results;
}

}  // namespace pw

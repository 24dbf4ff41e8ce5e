#pragma once
// PodRegistry: alias → endpoint catalogue, sessions by alias and a bounded fan-out.
#include <podwrangler/session.hpp>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace pw {

struct FanOutOptions {
  std::size_t width = 32;         // commands in flight at once
  std::optional<double> timeout;  // per pod; default SessionOptions::command_timeout
  SessionOptions session;
};

class PodRegistry {
 public:
  // Throws PodConfigValidationError for an empty or duplicate alias.
  void register_pod(const std::string& alias, PodEndpoint endpoint);
  void register_from_url(const std::string& alias, std::string_view url,
                         std::shared_ptr<ProviderInterface> provider = {});
  bool unregister(const std::string& alias);
  const PodEndpoint& get(const std::string& alias) const;  // PodNotFoundError
  bool contains(const std::string& alias) const;
  std::vector<std::string> aliases() const;  // registration order
  std::size_t size() const noexcept { return order_.size(); }

  PodSession session(Executor ex, const std::string& alias, SessionOptions options = {}) const;

  // Runs `command` once on each alias (fresh session each) with at most `width` in
  // flight. Results come back in the order of `aliases`; one pod's failure (unknown
  // alias, connection, timeout) is recorded in its result and never fails the others.
  Task<std::vector<CommandResult>> fan_out(std::vector<std::string> aliases, std::string command,
                                           FanOutOptions options = {}) const;

 private:
  std::map<std::string, PodEndpoint, std::less<>> pods_;
  std::vector<std::string> order_;
};

// Runs `work(i)` for i in [0, n) with at most `width` coroutines at once and waits
// for all of them (the building block of every fan-out).
Task<void> for_each_bounded(std::size_t n, std::size_t width, std::function<Task<void>(std::size_t)> work);

}  // namespace pw

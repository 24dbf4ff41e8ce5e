#pragma once
// Secret<T>: the only holder of tokens. It prints, logs and serialises as "***";
// the value is reachable only through an explicit reveal().
#include <utility>
#include <nlohmann/json_fwd.hpp>
#include <ostream>
#include <string>

namespace pw {

inline constexpr const char* REDACTED = "***";

template <class T>
class Secret {
 public:
  Secret() = default;
  explicit Secret(T value) : value_(std::move(value)) {}

  const T& reveal() const noexcept { return value_; }
  bool empty() const noexcept { return value_.empty(); }

  friend bool operator==(const Secret& a, const Secret& b) { return a.value_ == b.value_; }
  friend std::ostream& operator<<(std::ostream& os, const Secret&) { return os << REDACTED; }
  std::string str() const { return empty() ? std::string{} : std::string{REDACTED}; }

 private:
  T value_{};
};

using SecretString = Secret<std::string>;

// Serialisation never reveals: a secret becomes "***" (or "" when empty).
void to_json(nlohmann::json& j, const SecretString& s);

}  // namespace pw

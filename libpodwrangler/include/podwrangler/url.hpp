#pragma once
// A small, strict URL splitter for ws://, wss://, local://, k8s:// and docker:// URLs.
#include <utility>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pw {

struct Url {
  std::string scheme;  // lower-case
  std::string userinfo;
  std::string host;                                        // without brackets for IPv6
  std::string port;                                        // empty when absent
  std::string path;                                        // percent-decoded? no: raw, starts with '/' or empty
  std::vector<std::pair<std::string, std::string>> query;  // decoded

  std::optional<std::string> param(std::string_view key) const;
  // host[:port] as it goes into a Host header.
  std::string authority() const;
};

// Throws PodURLParseError naming the bad part; the message never contains
// credential values (they are redacted).
Url parse_url_strict(std::string_view url);

std::string percent_decode(std::string_view s, bool plus_is_space);
std::string percent_encode(std::string_view s);

}  // namespace pw

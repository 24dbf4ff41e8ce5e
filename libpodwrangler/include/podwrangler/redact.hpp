#pragma once
// Redaction of secrets inside free text: URLs shown back to users, error messages.
#include <string>
#include <string_view>

namespace pw {

// Replaces the values of credential-carrying query parameters (token, access_token,
// api_key, password, …) and the password of a userinfo part with "***".
std::string redact_url(std::string_view url);

// Replaces every occurrence of `secret` in `text` with "***" (no-op for short secrets
// of under 4 bytes, which would mangle ordinary text).
std::string redact_value(std::string_view text, std::string_view secret);

// True for names of query parameters and headers that carry credentials.
bool is_sensitive_key(std::string_view key) noexcept;

}  // namespace pw

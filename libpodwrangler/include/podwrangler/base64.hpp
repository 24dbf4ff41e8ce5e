#pragma once
// Standard base64 (RFC 4648 §4: '+' '/', '=' padding) with OpenSSL's EVP block functions:
// the `*_b64` fields of API answers, kubeconfig certificate data, the engine's JSON headers.
#include <optional>
#include <string>
#include <string_view>

namespace pw {

std::string base64_encode(std::string_view bytes);
// The bytes, or nullopt when `text` is not base64. ASCII whitespace anywhere is skipped
// (kubeconfig data and PEM-style line breaks).
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace pw

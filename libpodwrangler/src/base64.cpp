#include <podwrangler/base64.hpp>

#include <openssl/evp.h>

#include <algorithm>
#include <vector>

namespace pw {

std::string base64_encode(std::string_view bytes) {
  // EVP_EncodeBlock takes an int length and NUL-terminates: encode in chunks of a multiple
  // of 3 bytes (so the pieces join into one padded encoding) into a scratch buffer.
  constexpr std::size_t kChunk = std::size_t{3} * 256 * 1024;
  std::string out;
  out.reserve(4 * ((bytes.size() + 2) / 3));
  std::vector<unsigned char> buf(4 * (std::min(kChunk, bytes.size()) / 3 + 1) + 1);
  for (std::size_t pos = 0; pos < bytes.size(); pos += kChunk) {
    std::size_t n = std::min(kChunk, bytes.size() - pos);
    int len =
        EVP_EncodeBlock(buf.data(), reinterpret_cast<const unsigned char*>(bytes.data() + pos), static_cast<int>(n));
    out.append(reinterpret_cast<const char*>(buf.data()), static_cast<std::size_t>(len));
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  std::string clean;
  clean.reserve(text.size());
  for (char c : text)
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t' && c != '\v' && c != '\f') clean.push_back(c);
  if (clean.empty()) return std::string();
  if (clean.size() % 4 != 0) return std::nullopt;
  // EVP_DecodeBlock decodes whole 4-character groups, padding included as zero bytes.
  std::string out(clean.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()), static_cast<int>(clean.size()));
  if (n < 0) return std::nullopt;
  std::size_t pad = 0;
  if (clean.back() == '=') ++pad;
  if (clean[clean.size() - 2] == '=') ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

}  // namespace pw

#pragma once
// SecretBox: AES-256-GCM for the full pod URLs (they carry tokens) in the `url_secret`
// column.
//
// Sealed format (version 1), stored as raw bytes (SQLite BLOB, PostgreSQL bytea):
//   0x01 | 12-byte random nonce | ciphertext | 16-byte GCM tag
// The pod alias is the additional authenticated data, so a value copied to another row
// does not decrypt.
//
// Key (SecretBox::from_environment):
//   - PODWRANGLER_SECRET_KEY, when set and non-empty: any string; the key is its SHA-256
//     (so a passphrase and a base64/hex key all work; replicas must share the same string);
//   - else the key file data_dir()/secret.key: 32 random bytes, created once (mode 0600,
//     atomically: written to a temporary file opened O_EXCL, then link()ed into place, so
//     two servers starting together agree on one key); a warning goes to stderr when it
//     is readable by group or others.
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace pw::server::detail {

class SecretBox {
 public:
  explicit SecretBox(const std::array<unsigned char, 32>& key);
  ~SecretBox();
  SecretBox(const SecretBox&) = default;
  SecretBox& operator=(const SecretBox&) = default;

  // Reads the key as described above; throws StoreError when the key file is unusable.
  static SecretBox from_environment();

  std::string seal(std::string_view plaintext, std::string_view aad) const;
  // nullopt when the value was sealed with another key, for another alias, or is corrupt.
  std::optional<std::string> open(std::string_view sealed, std::string_view aad) const;

 private:
  std::array<unsigned char, 32> key_;
};

// Decrypted URLs by (alias, sealed value): listing pods decrypts each value once, not on
// every call. One per pooled connection (no locking); bounded.
class UrlCache {
 public:
  // The URL, or throws StoreError("cannot decrypt pod URL for '<alias>': …"). `stored` is
  // the column as read: the sealed bytes, or with `hex` PostgreSQL's bytea text "\x…".
  const std::string& get(const SecretBox& box, const std::string& alias, std::string_view stored,
                         bool hex = false);

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  struct Entry {
    std::string alias, url;
  };
  // Keyed by the sealed value (unique: it starts with a random nonce), no allocation on a hit.
  std::unordered_map<std::string, Entry, Hash, std::equal_to<>> map_;
};

}  // namespace pw::server::detail

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
//     two servers starting together agree on one key); an existing key file we own that
//     group or others may read is made 0600 (a warning goes to stderr when it cannot be).
//
// Key check: each database holds one value sealed with the key it was created with (the
// `meta` row "key_check", aad "podwrangler:key_check"); the stores refuse to open with a
// key that cannot open it (StoreKeyMismatchError), so a mis-keyed replica never writes.
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

  // The key check value to store in a new database, and whether a stored one was sealed
  // with this key.
  std::string seal_key_check() const;
  bool opens_key_check(std::string_view sealed) const;
  // The one-line reason a database's key check does not open with this key: names
  // PODWRANGLER_SECRET_KEY (and the key file when the key came from it), never the key.
  std::string mismatch_message() const;

 private:
  std::array<unsigned char, 32> key_;
  std::string source_;  // "" (env) or the key file's path
};

// The meta row that holds the key check.
inline constexpr const char* KEY_CHECK_NAME = "key_check";

// Why a pod's URL is missing from a PodRecord (PodRecord::url_error).
inline constexpr const char* URL_UNREADABLE =
    "the stored pod URL cannot be decrypted with this server's secret key "
    "(PODWRANGLER_SECRET_KEY); register the URL again";

// Decrypted URLs by (alias, sealed value): listing pods decrypts each value once, not on
// every call. One per pooled connection (no locking); bounded.
class UrlCache {
 public:
  // The URL, or nullptr when it does not decrypt (another key, another alias, corrupt).
  // `stored` is the column as read: the sealed bytes, or with `hex` PostgreSQL's bytea
  // text "\x…".
  const std::string* get(const SecretBox& box, const std::string& alias, std::string_view stored, bool hex = false);

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  struct Entry {
    std::string alias, url;
  };
  // Keyed by the sealed value (unique: it starts with a random nonce), no allocation on a hit.
  std::unordered_map<std::string, Entry, Hash, std::equal_to<>> map_;
};

}  // namespace pw::server::detail

#include "embedded_server/store/secret_box.hpp"

#include "embedded_server/store/codec.hpp"
#include "embedded_server/store/store.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <sys/stat.h>
#include <unistd.h>

namespace pw::server::detail {

namespace {

constexpr unsigned char FORMAT_V1 = 0x01;
constexpr std::size_t NONCE_LEN = 12;
constexpr std::size_t TAG_LEN = 16;

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
using CtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

const EVP_CIPHER* aes_gcm() {
  // Fetched once: EVP_aes_256_gcm() would look the implementation up on every init.
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return cipher ? cipher : EVP_aes_256_gcm();
}

enum class Direction { encrypt, decrypt };

// AES-256-GCM of the `n` bytes at `in` into `out` (as many bytes) with `aad` authenticated:
// encrypting writes the 16-byte tag to `tag`; decrypting checks it. False when OpenSSL fails
// or the tag does not match.
bool gcm(Direction dir, const unsigned char* key, const unsigned char* nonce, std::string_view aad,
         const unsigned char* in, std::size_t n, unsigned char* out, unsigned char* tag) {
  const bool enc = dir == Direction::encrypt;
  const auto* aad_bytes = reinterpret_cast<const unsigned char*>(aad.data());
  const int tag_len = static_cast<int>(TAG_LEN);
  CtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  return ctx && EVP_CipherInit_ex(ctx.get(), aes_gcm(), nullptr, key, nonce, enc ? 1 : 0) == 1 &&
         EVP_CipherUpdate(ctx.get(), nullptr, &len, aad_bytes, static_cast<int>(aad.size())) == 1 &&
         EVP_CipherUpdate(ctx.get(), out, &len, in, static_cast<int>(n)) == 1 &&
         (enc || EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, tag_len, tag) == 1) &&
         EVP_CipherFinal_ex(ctx.get(), out + len, &len) == 1 &&
         (!enc || EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, tag_len, tag) == 1);
}

std::string errno_text() { return std::strerror(errno); }

// Calls `io` (::read or ::write) until all `n` bytes at `p` are through, retrying on EINTR;
// false on an error or end of file first.
template <class Io, class Bytes>
bool transfer_all(Io io, int fd, Bytes* p, std::size_t n) {
  std::size_t done = 0;
  while (done < n) {
    const ssize_t r = io(fd, p + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    done += static_cast<std::size_t>(r);
  }
  return true;
}

bool read_exact(int fd, unsigned char* p, std::size_t n) {
  if (!transfer_all(::read, fd, p, n)) return false;
  unsigned char extra;
  return ::read(fd, &extra, 1) == 0;  // exactly n bytes
}

bool write_all(int fd, const unsigned char* p, std::size_t n) { return transfer_all(::write, fd, p, n); }

std::array<unsigned char, 32> read_key_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) throw StoreError("cannot read the secret key file " + path + ": " + errno_text());
  struct stat st {};
  if (::fstat(fd, &st) == 0 && (st.st_mode & 077) != 0) {
    // Ours: take group/other access away. Not ours (or fchmod refused): say so.
    if (!(S_ISREG(st.st_mode) && st.st_uid == ::geteuid() && ::fchmod(fd, st.st_mode & 0700) == 0))
      std::fprintf(stderr,
                   "podwrangler: warning: the secret key file %s is readable by group or others "
                   "(chmod 600 it)\n",
                   path.c_str());
  }
  std::array<unsigned char, 32> key{};
  bool ok = read_exact(fd, key.data(), key.size());
  ::close(fd);
  if (!ok) throw StoreError("the secret key file " + path + " does not hold exactly 32 bytes");
  return key;
}

std::string key_file_path() { return data_dir() + "/secret.key"; }

std::array<unsigned char, 32> key_file_key(const std::string& path) {
  if (::access(path.c_str(), F_OK) == 0) return read_key_file(path);

  std::array<unsigned char, 32> key{};
  if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1)
    throw StoreError("cannot generate a secret key (RAND_bytes failed)");
  // Write a private temporary file, then link() it into place: link fails if another
  // process made the key first, and then we use theirs. Readers never see a partial key.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw StoreError("cannot create the secret key file " + tmp + ": " + errno_text());
  bool ok = write_all(fd, key.data(), key.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    ::unlink(tmp.c_str());
    throw StoreError("cannot write the secret key file " + tmp + ": " + errno_text());
  }
  int rc = ::link(tmp.c_str(), path.c_str());
  int link_errno = errno;
  ::unlink(tmp.c_str());
  if (rc != 0) {
    OPENSSL_cleanse(key.data(), key.size());
    if (link_errno == EEXIST) return read_key_file(path);
    errno = link_errno;
    throw StoreError("cannot create the secret key file " + path + ": " + errno_text());
  }
  return key;
}

}  // namespace

SecretBox::SecretBox(const std::array<unsigned char, 32>& key) : key_(key) {}
SecretBox::~SecretBox() { OPENSSL_cleanse(key_.data(), key_.size()); }

SecretBox SecretBox::from_environment() {
  const char* env = std::getenv("PODWRANGLER_SECRET_KEY");
  if (env && *env) {
    std::array<unsigned char, 32> key{};
    SHA256(reinterpret_cast<const unsigned char*>(env), std::strlen(env), key.data());
    SecretBox box(key);
    OPENSSL_cleanse(key.data(), key.size());
    return box;
  }
  const std::string path = key_file_path();
  auto key = key_file_key(path);
  SecretBox box(key);
  OPENSSL_cleanse(key.data(), key.size());
  box.source_ = path;
  return box;
}

namespace {
constexpr std::string_view KEY_CHECK_PLAINTEXT = "podwrangler key check v1";
constexpr std::string_view KEY_CHECK_AAD = "podwrangler:key_check";
}  // namespace

std::string SecretBox::seal_key_check() const { return seal(KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD); }

bool SecretBox::opens_key_check(std::string_view sealed) const {
  auto v = open(sealed, KEY_CHECK_AAD);
  return v && *v == KEY_CHECK_PLAINTEXT;
}

std::string SecretBox::mismatch_message() const {
  if (source_.empty())
    return "the database was encrypted with a different key: start every server on this database "
           "with the PODWRANGLER_SECRET_KEY it was created with";
  return "PODWRANGLER_SECRET_KEY is unset and the key file " + source_ +
         " is not the key the database was encrypted with: set PODWRANGLER_SECRET_KEY to the key "
         "it was created with";
}

std::string SecretBox::seal(std::string_view plaintext, std::string_view aad) const {
  std::string out(1 + NONCE_LEN + plaintext.size() + TAG_LEN, '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  p[0] = FORMAT_V1;
  unsigned char* nonce = p + 1;
  unsigned char* ct = nonce + NONCE_LEN;
  if (RAND_bytes(nonce, static_cast<int>(NONCE_LEN)) != 1) throw StoreError("RAND_bytes failed");
  const bool ok =
      gcm(Direction::encrypt, key_.data(), nonce, aad, reinterpret_cast<const unsigned char*>(plaintext.data()),
          plaintext.size(), ct, ct + plaintext.size());
  if (!ok) throw StoreError("AES-256-GCM encryption failed");
  return out;
}

std::optional<std::string> SecretBox::open(std::string_view sealed, std::string_view aad) const {
  if (sealed.size() < 1 + NONCE_LEN + TAG_LEN || static_cast<unsigned char>(sealed[0]) != FORMAT_V1)
    return std::nullopt;
  const auto* p = reinterpret_cast<const unsigned char*>(sealed.data());
  const unsigned char* nonce = p + 1;
  const unsigned char* ct = nonce + NONCE_LEN;
  const std::size_t ct_len = sealed.size() - 1 - NONCE_LEN - TAG_LEN;
  unsigned char tag[TAG_LEN];
  std::memcpy(tag, ct + ct_len, TAG_LEN);
  std::string out(ct_len, '\0');
  const bool ok =
      gcm(Direction::decrypt, key_.data(), nonce, aad, ct, ct_len, reinterpret_cast<unsigned char*>(out.data()), tag);
  if (!ok) {
    OPENSSL_cleanse(out.data(), out.size());
    return std::nullopt;
  }
  return out;
}

const std::string* UrlCache::get(const SecretBox& box, const std::string& alias, std::string_view stored, bool hex) {
  auto it = map_.find(stored);
  if (it != map_.end() && it->second.alias == alias) return &it->second.url;
  std::optional<std::string> url;
  try {
    if (!hex)
      url = box.open(stored, alias);
    else if (stored.size() >= 2 && stored[0] == '\\' && stored[1] == 'x')
      url = box.open(hex_decode(stored.substr(2)), alias);
  } catch (const StoreError&) {  // corrupt hex: as undecryptable
  }
  if (!url) return nullptr;
  if (it != map_.end()) {
    it->second = Entry{alias, std::move(*url)};
    return &it->second.url;
  }
  if (map_.size() >= 4096) map_.clear();
  return &map_.emplace(std::string(stored), Entry{alias, std::move(*url)}).first->second.url;
}

}  // namespace pw::server::detail

// The data directory and the default database in it, and the private-file helpers
// (private_files.hpp). Kept apart from open_store.cpp because the secret box (also linked
// into the PostgreSQL module) needs data_dir().
#include "embedded_server/store/private_files.hpp"
#include "embedded_server/store/store.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pw::server {

namespace detail {

namespace {

// Group/other bits off (setuid/setgid/sticky too) when `fd` is a `type` we own.
void tighten_fd(int fd, mode_t type, mode_t owner_bits_if_none) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || (st.st_mode & S_IFMT) != type || st.st_uid != ::geteuid()) return;
  mode_t want = st.st_mode & 0700;
  if (want == 0) want = owner_bits_if_none;
  if ((st.st_mode & 07777) != want) (void)::fchmod(fd, want);
}

}  // namespace

void make_private_dirs(const std::filesystem::path& dir_in) {
  const std::filesystem::path dir = dir_in.lexically_normal();
  std::filesystem::path prefix;
  for (const auto& part : dir) {
    prefix /= part;
    if (part.empty() || part == "/" || part == "." || part == "..") continue;
    if (::mkdir(prefix.c_str(), 0700) == 0) {
      (void)::chmod(prefix.c_str(), 0700);  // exactly 0700, whatever the umask
      continue;
    }
    if (errno == EEXIST) continue;
    throw StoreError("cannot create " + prefix.string() + ": " + std::strerror(errno));
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) throw StoreError("cannot create " + dir.string() + ": not a directory");
}

void tighten_dir(const std::filesystem::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  tighten_fd(fd, S_IFDIR, 0700);
  ::close(fd);
}

void ensure_private_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
  if (fd >= 0) {
    (void)::fchmod(fd, 0600);  // exactly 0600, whatever the umask
    ::close(fd);
    return;
  }
  if (errno != EEXIST) return;
  fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return;
  tighten_fd(fd, S_IFREG, 0600);
  ::close(fd);
}

void tighten_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
  if (fd < 0) return;
  tighten_fd(fd, S_IFREG, 0600);
  ::close(fd);
}

}  // namespace detail

std::string data_dir_path() {
  std::string base;
  const char* xdg = std::getenv("XDG_DATA_HOME");
  if (xdg && xdg[0] == '/') {  // relative values are ignored (XDG base directory spec)
    base = xdg;
  } else {
    const char* home = std::getenv("HOME");
    std::string h = home && *home ? home : "";
    if (h.empty())
      if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_dir) h = pw->pw_dir;
    if (h.empty()) h = "/tmp";
    base = h + "/.local/share";
  }
  return (std::filesystem::path(base) / "podwrangler").string();
}

std::string data_dir() {
  std::string dir = data_dir_path();
  // Missing parents are made 0700 too (the XDG base directory spec asks for it); an
  // existing data directory we own is made 0700 again if it was loosened.
  detail::make_private_dirs(dir);
  detail::tighten_dir(dir);
  return dir;
}

std::string default_database_url() { return "sqlite:///" + data_dir() + "/pods.db"; }

}  // namespace pw::server

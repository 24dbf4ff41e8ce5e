// The data directory and the default database in it. Kept apart from open_store.cpp
// because the secret box (also linked into the PostgreSQL module) needs data_dir().
#include "embedded_server/store/store.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pw::server {

namespace {

void make_private_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) return;
  if (dir.has_parent_path()) std::filesystem::create_directories(dir.parent_path(), ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw StoreError("cannot create " + dir.string() + ": " + std::strerror(errno));
}

}  // namespace

std::string data_dir() {
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
  std::filesystem::path dir = std::filesystem::path(base) / "podwrangler";
  make_private_dir(dir);
  return dir.string();
}

std::string default_database_url() { return "sqlite:///" + data_dir() + "/pods.db"; }

}  // namespace pw::server

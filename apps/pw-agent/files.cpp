#include "files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

namespace pwagent {

namespace agent = pw::capsules::agent;

void throw_errno(int err, const std::string& path, const char* what) {
  throw SysError(err, path, std::string(what) + " " + path + ": " + std::strerror(err));
}

void check_path(const std::string& path) {
  if (path.empty() || path[0] != '/') throw SysError(EINVAL, path, "path must be absolute: " + path);
  if (path.find('\0') != std::string::npos) throw SysError(EINVAL, "", "path contains a NUL byte");
}

std::string dir_name(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const auto slash = p.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return p.substr(0, slash);
}

std::string base_name(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  if (p == "/") return "/";
  const auto slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

namespace {

std::string join(const std::string& dir, const std::string& name) {
  return !dir.empty() && dir.back() == '/' ? dir + name : dir + "/" + name;
}

const char* type_of(mode_t m) {
  if (S_ISREG(m)) return "file";
  if (S_ISDIR(m)) return "dir";
  if (S_ISLNK(m)) return "symlink";
  return "other";
}

std::string read_link_at(int dirfd, const char* name) {
  std::string buf(256, '\0');
  while (true) {
    const ssize_t n = ::readlinkat(dirfd, name, buf.data(), buf.size());
    if (n < 0) return "";
    if (static_cast<std::size_t>(n) < buf.size()) {
      buf.resize(static_cast<std::size_t>(n));
      return buf;
    }
    if (buf.size() >= 65536) return "";
    buf.resize(buf.size() * 2);
  }
}

agent::Entry entry_from(const struct stat& st, std::string path, std::string name, int dirfd, const char* at_name) {
  agent::Entry e;
  e.path = std::move(path);
  e.name = std::move(name);
  e.type = type_of(st.st_mode);
  e.size = static_cast<std::uint64_t>(st.st_size);
  e.mode = static_cast<std::uint32_t>(st.st_mode & 07777);
  e.mtime_s = st.st_mtim.tv_sec;
  if (S_ISLNK(st.st_mode)) e.link_target = read_link_at(dirfd, at_name);
  return e;
}

// The names in an open directory (without . and ..), sorted. Takes ownership of fd.
std::vector<std::string> read_names(int fd, const std::string& path) {
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    const int err = errno;
    ::close(fd);
    throw_errno(err, path, "cannot read directory");
  }
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* de = ::readdir(d)) {
    if (std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0) names.emplace_back(de->d_name);
  }
  const int err = errno;
  ::closedir(d);
  if (err != 0) throw_errno(err, path, "cannot read directory");
  std::sort(names.begin(), names.end());
  return names;
}

void list_into(int dirfd, const std::string& path, int levels, std::size_t max_entries,
               std::vector<agent::Entry>& out) {
  const int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno(errno, path, "cannot open directory");
  const std::vector<std::string> names = read_names(fd, path);
  for (const auto& name : names) {
    struct stat st {};
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // vanished meanwhile
    if (out.size() >= max_entries)
      throw SysError(
          E2BIG, path,
          "listing " + path + " has more than " + std::to_string(max_entries) + " entries: use a smaller depth");
    const std::string child = join(path, name);
    out.push_back(entry_from(st, child, name, dirfd, name.c_str()));
    if (levels > 1 && S_ISDIR(st.st_mode)) {
      const int sub = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) continue;  // unreadable: listed, not descended into
      try {
        list_into(sub, child, levels - 1, max_entries, out);
      } catch (...) {
        ::close(sub);
        throw;
      }
      ::close(sub);
    }
  }
}

// Removes `name` in dirfd and, if it is a directory, everything in it; symlinks are
// unlinked, never followed (each level is opened with O_NOFOLLOW).
void remove_tree(int dirfd, const std::string& name, const std::string& path) {
  const int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOTDIR || errno == ELOOP) {
      if (::unlinkat(dirfd, name.c_str(), 0) != 0) throw_errno(errno, path, "cannot remove");
      return;
    }
    throw_errno(errno, path, "cannot open directory");
  }
  const int keep = ::dup(fd);  // read_names closes fd; the unlinks need the directory open
  if (keep < 0) {
    const int err = errno;
    ::close(fd);
    throw_errno(err, path, "cannot open directory");
  }
  ::fcntl(keep, F_SETFD, FD_CLOEXEC);
  try {
    for (const auto& child : read_names(fd, path)) remove_tree(keep, child, join(path, child));
  } catch (...) {
    ::close(keep);
    throw;
  }
  ::close(keep);
  if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0) throw_errno(errno, path, "cannot remove");
}

// Lexically cleans an absolute path: no empty or "." components, ".." resolved.
std::string clean(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t i = 0;
  while (i < path.size()) {
    const auto j = path.find('/', i);
    const std::string part = path.substr(i, j == std::string::npos ? std::string::npos : j - i);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    if (j == std::string::npos) break;
    i = j + 1;
  }
  std::string out;
  for (const auto& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

bool is_within(const std::string& inner, const std::string& outer) {
  if (outer == "/") return true;
  return inner == outer ||
         (inner.size() > outer.size() && inner.compare(0, outer.size(), outer) == 0 && inner[outer.size()] == '/');
}

}  // namespace

agent::Entry stat_entry(const std::string& path) {
  check_path(path);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) throw_errno(errno, path, "cannot stat");
  return entry_from(st, path, base_name(path), AT_FDCWD, path.c_str());
}

std::vector<agent::Entry> list_dir(const std::string& path, int depth, std::size_t max_entries) {
  check_path(path);
  if (depth < 1) throw SysError(EINVAL, path, "depth must be at least 1");
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno(errno, path, "cannot list");
  std::vector<agent::Entry> out;
  try {
    list_into(fd, path, depth, max_entries, out);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return out;
}

void make_dir(const std::string& path, bool parents) {
  check_path(path);
  if (!parents) {
    if (::mkdir(path.c_str(), 0755) != 0) throw_errno(errno, path, "cannot create directory");
    return;
  }
  const std::string target = clean(path);
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = target.find('/', pos + 1);
    const std::string prefix = target.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0755) == 0) continue;
    const int err = errno;
    struct stat st {};
    if (err == EEXIST && ::stat(prefix.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) continue;
    throw_errno(err == EEXIST ? ENOTDIR : err, prefix, "cannot create directory");
  }
}

bool touches_protected(const std::string& path, const std::string& protect) {
  if (protect.empty()) return false;
  const std::string cleaned = clean(path);
  if (cleaned == "/") return true;
  // The parent's real path (symlinks of ancestors resolved) plus the last component.
  const std::string parent = dir_name(cleaned);
  std::string real = parent;
  if (char* r = ::realpath(parent.c_str(), nullptr)) {
    real = r;
    std::free(r);  // NOLINT(cppcoreguidelines-no-malloc): realpath's buffer
  }
  const std::string resolved = (real == "/" ? "" : real) + "/" + base_name(cleaned);
  return is_within(resolved, protect) || is_within(protect, resolved) || is_within(cleaned, protect) ||
         is_within(protect, cleaned);
}

void remove_path(const std::string& path, bool recursive, const std::string& protect) {
  check_path(path);
  const std::string cleaned = clean(path);
  if (cleaned == "/") throw SysError(EINVAL, path, "refusing to remove /");
  if (touches_protected(path, protect))
    throw SysError(EINVAL, path, "refusing to remove " + path + ": it holds the agent's socket");
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) throw_errno(errno, path, "cannot remove");
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0) throw_errno(errno, path, "cannot remove");
    return;
  }
  if (!recursive) {
    if (::rmdir(path.c_str()) != 0) throw_errno(errno, path, "cannot remove");
    return;
  }
  const std::string parent = dir_name(cleaned);
  const int pfd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (pfd < 0) throw_errno(errno, parent, "cannot open directory");
  try {
    remove_tree(pfd, base_name(cleaned), path);
  } catch (...) {
    ::close(pfd);
    throw;
  }
  ::close(pfd);
}

}  // namespace pwagent

#pragma once
// The agent's file operations (pw-agent runs them inside the capsule, as its init).
// Each throws SysError (errno, the path concerned, a message) on failure. Paths must be
// absolute and free of NUL bytes (EINVAL otherwise).
#include <podwrangler/capsules/agent_protocol.hpp>

#include <cstddef>
#include <exception>
#include <string>
#include <vector>

namespace pwagent {

class SysError : public std::exception {
 public:
  SysError(int err, std::string path, std::string message)
      : err_(err), path_(std::move(path)), message_(std::move(message)) {}
  int err() const noexcept { return err_; }
  const std::string& path() const noexcept { return path_; }
  const std::string& message() const noexcept { return message_; }
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  int err_;
  std::string path_;
  std::string message_;
};

// "<what> <path>: <strerror(err)>" as a SysError.
[[noreturn]] void throw_errno(int err, const std::string& path, const char* what);

// EINVAL unless `path` is absolute and has no NUL byte.
void check_path(const std::string& path);

// lstat: a symlink is reported as such, with its target.
pw::capsules::agent::Entry stat_entry(const std::string& path);

// The entries under a directory, depth levels deep (1 = its children), each directory's
// entries sorted by name and followed by their own (depth first); symlinks are never
// followed. More than max_entries: E2BIG.
std::vector<pw::capsules::agent::Entry> list_dir(const std::string& path, int depth, std::size_t max_entries);

// mkdir (0755); with parents, missing ancestors too and an existing directory is fine.
void make_dir(const std::string& path, bool parents);

// Removes a file, a symlink (never its target) or an empty directory; with recursive, a
// directory and everything in it, without following any symlink. `protect` is a real
// path that must survive (the agent's run directory): removing it, an ancestor or
// anything inside it is refused (EINVAL).
void remove_path(const std::string& path, bool recursive, const std::string& protect);

// Whether changing `path` would touch `protect` (a real path): the path resolves (through
// the symlinks of its parent directories) to protect, an ancestor of it or something inside.
bool touches_protected(const std::string& path, const std::string& protect);

// The directory part and the last component of an absolute path ("/a/b" → "/a", "b").
std::string dir_name(const std::string& path);
std::string base_name(const std::string& path);

}  // namespace pwagent

#pragma once
// Private files and directories for what the store keeps on disk (the SQLite database and
// its -wal/-shm/-journal files, the secret key file, the data directory): files 0600,
// directories 0700, on creation and again whenever they are opened (a file or directory we
// own with group/other permission bits loses them). No process-wide umask is touched (the
// server is multi-threaded): files are created with an explicit mode and fchmod()ed, and
// SQLite creates its -wal/-shm/-journal files with the mode of the database file, so a
// database file made 0600 before SQLite opens it gives 0600 side files.
#include <filesystem>
#include <string>

namespace pw::server::detail {

// Creates `dir` and each missing parent with mode 0700 (exactly, whatever the umask);
// existing directories are left as they are. Throws StoreError.
void make_private_dirs(const std::filesystem::path& dir);
// A directory we own that group or others may use becomes 0700. Missing: nothing happens.
void tighten_dir(const std::filesystem::path& dir);
// Creates the file 0600 (O_EXCL, O_CLOEXEC) when missing; an existing regular file we own
// loses its group/other bits. Follows a symlink, as SQLite does for a database path. Never
// throws: when the file cannot be opened, whoever opens it next reports why.
void ensure_private_file(const std::string& path);
// An existing regular file we own loses its group/other bits (symlinks are not followed).
void tighten_file(const std::string& path);

}  // namespace pw::server::detail

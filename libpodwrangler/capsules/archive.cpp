#include <podwrangler/capsules/archive.hpp>

#include <podwrangler/errors.hpp>

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pw::capsules {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kChunk = std::size_t{64} * 1024;

struct ReadFree {
  void operator()(archive* a) const noexcept { archive_read_free(a); }
};
struct WriteFree {
  void operator()(archive* a) const noexcept { archive_write_free(a); }
};
using ReadArchive = std::unique_ptr<archive, ReadFree>;
using WriteArchive = std::unique_ptr<archive, WriteFree>;

[[noreturn]] void bad_entry(std::string_view name, const std::string& why) {
  throw CapsuleValidationError("archive", "entry '" + std::string(name) + "': " + why);
}

// libarchive reading a ByteSource. An exception thrown by the source is kept and rethrown
// by check(), so the caller sees the source's own error (the engine went away …).
struct SourceReader {
  explicit SourceReader(ByteSource& s) : src(&s) {}
  ByteSource* src;
  std::vector<char> buf = std::vector<char>(kChunk);
  std::exception_ptr err;

  static la_ssize_t read(archive* a, void* self, const void** out) {
    auto* r = static_cast<SourceReader*>(self);
    try {
      std::size_t n = r->src->read(r->buf.data(), r->buf.size());
      *out = r->buf.data();
      return static_cast<la_ssize_t>(n);
    } catch (...) {
      r->err = std::current_exception();
      archive_set_error(a, EIO, "the data source failed");
      return -1;
    }
  }

  ReadArchive open() {
    ReadArchive a(archive_read_new());
    if (!a) throw std::bad_alloc();
    archive_read_support_format_tar(a.get());
    if (archive_read_open(a.get(), this, nullptr, &SourceReader::read, nullptr) != ARCHIVE_OK) check(a.get());
    return a;
  }

  [[noreturn]] void check(archive* a) const {
    if (err) std::rethrow_exception(err);
    const char* why = archive_error_string(a);
    throw CapsuleValidationError("archive", why ? why : "not a tar archive");
  }
};

// libarchive writing to a ByteSink (or to a string, for the pull-style tar source).
struct SinkWriter {
  explicit SinkWriter(ByteSink* s) : sink(s) {}
  ByteSink* sink;
  std::string* into = nullptr;
  std::exception_ptr err;

  static la_ssize_t write(archive* a, void* self, const void* data, std::size_t n) {
    auto* w = static_cast<SinkWriter*>(self);
    try {
      if (w->into)
        w->into->append(static_cast<const char*>(data), n);
      else
        w->sink->write(std::string_view(static_cast<const char*>(data), n));
      return static_cast<la_ssize_t>(n);
    } catch (...) {
      w->err = std::current_exception();
      archive_set_error(a, EIO, "the destination failed");
      return -1;
    }
  }

  WriteArchive open() {
    WriteArchive a(archive_write_new());
    if (!a) throw std::bad_alloc();
    archive_write_set_format_pax_restricted(a.get());
    if (archive_write_open(a.get(), this, nullptr, &SinkWriter::write, nullptr) != ARCHIVE_OK) check(a.get());
    return a;
  }

  [[noreturn]] void check(archive* a) const {
    if (err) std::rethrow_exception(err);
    const char* why = archive_error_string(a);
    throw CapsuleValidationError("archive", why ? why : "cannot write the tar archive");
  }
};

// An entry's name as a clean relative path ("./a//b/" → "a/b"), or an error: absolute,
// a ".." component, empty.
std::string clean_relative(std::string_view raw, std::string_view entry_name, const char* what) {
  if (raw.empty()) bad_entry(entry_name, std::string("empty ") + what);
  if (raw.front() == '/')
    bad_entry(entry_name, std::string("absolute ") + what + " (refused: outside the destination)");
  std::string out;
  std::size_t i = 0;
  while (i <= raw.size()) {
    std::size_t j = raw.find('/', i);
    if (j == std::string_view::npos) j = raw.size();
    std::string_view part = raw.substr(i, j - i);
    if (part == "..") bad_entry(entry_name, std::string("'..' in the ") + what + " (refused: outside the destination)");
    if (!part.empty() && part != ".") {
      if (!out.empty()) out += '/';
      out += part;
    }
    i = j + 1;
  }
  if (out.empty()) bad_entry(entry_name, std::string("empty ") + what);
  return out;
}

// True when `target` (a symbolic link's content), read in the directory of `link_name`,
// stays inside the destination.
bool link_stays_inside(std::string_view link_name, std::string_view target) {
  if (target.empty() || target.front() == '/') return false;
  int depth = static_cast<int>(std::count(link_name.begin(), link_name.end(), '/'));  // the link's directory
  std::size_t i = 0;
  while (i <= target.size()) {
    std::size_t j = target.find('/', i);
    if (j == std::string_view::npos) j = target.size();
    std::string_view part = target.substr(i, j - i);
    if (part == "..") {
      if (--depth < 0) return false;
    } else if (!part.empty() && part != ".") {
      ++depth;
    }
    i = j + 1;
  }
  return true;
}

// Refuses a path below `root` that goes through a symbolic link on disk; a link in the
// final place is removed (the entry replaces it; its target is never touched).
void check_on_disk(const std::string& root, const std::string& rel, std::string_view entry_name, bool final_too) {
  std::string path = root;
  std::size_t i = 0;
  while (i < rel.size()) {
    std::size_t j = rel.find('/', i);
    bool last = j == std::string::npos;
    if (last) j = rel.size();
    path += '/';
    path.append(rel, i, j - i);
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return;  // nothing there yet, nor below
    if (S_ISLNK(st.st_mode)) {
      if (!last) bad_entry(entry_name, "goes through the symbolic link '" + rel.substr(0, j) + "' (refused)");
      if (final_too && ::unlink(path.c_str()) != 0)
        bad_entry(entry_name, "cannot replace the symbolic link there: " + std::string(std::strerror(errno)));
    }
    i = j + 1;
  }
}

}  // namespace

std::size_t extract_tar(ByteSource& src, const std::string& dest_dir) {
  std::error_code ec;
  if (!fs::exists(dest_dir, ec)) {
    fs::create_directories(dest_dir, ec);
    if (ec) throw CapsuleValidationError("destination", "cannot create '" + dest_dir + "': " + ec.message());
    fs::permissions(dest_dir, fs::perms::owner_all, ec);
  }
  fs::path root_path = fs::canonical(dest_dir, ec);
  if (ec || !fs::is_directory(root_path))
    throw CapsuleValidationError("destination", "'" + dest_dir + "' is not a directory");
  const std::string root = root_path.string() == "/" ? std::string() : root_path.string();

  SourceReader reader(src);
  ReadArchive in = reader.open();
  struct DiskFree {
    void operator()(archive* a) const noexcept { archive_write_free(a); }
  };
  std::unique_ptr<archive, DiskFree> disk(archive_write_disk_new());
  if (!disk) throw std::bad_alloc();
  archive_write_disk_set_options(
      disk.get(), ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_TIME);
  std::size_t count = 0;
  while (true) {
    archive_entry* e = nullptr;
    int r = archive_read_next_header(in.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) reader.check(in.get());
    const char* raw_name = archive_entry_pathname(e);
    std::string shown = raw_name ? raw_name : "";
    std::string rel = clean_relative(shown, shown, "name");
    const char* hardlink = archive_entry_hardlink(e);
    auto type = archive_entry_filetype(e);
    if (hardlink) {
      std::string hl = clean_relative(hardlink, shown, "hard link target");
      check_on_disk(root, hl, shown, false);
      archive_entry_copy_hardlink(e, (root + "/" + hl).c_str());
    } else if (type == AE_IFLNK) {
      const char* target = archive_entry_symlink(e);
      if (!target || !link_stays_inside(rel, target))
        bad_entry(shown, "symbolic link to '" + std::string(target ? target : "") +
                             "' leads outside the destination (refused)");
    } else if (type != AE_IFREG && type != AE_IFDIR) {
      bad_entry(shown, "special files (devices, FIFOs, sockets) are refused");
    }
    check_on_disk(root, rel, shown, type != AE_IFDIR);
    archive_entry_copy_pathname(e, (root + "/" + rel).c_str());
    archive_entry_set_perm(e, archive_entry_perm(e) & 0777);  // no set-user/group-ID, no sticky bit
    if (archive_write_header(disk.get(), e) < ARCHIVE_WARN) {
      const char* why = archive_error_string(disk.get());
      bad_entry(shown, why ? why : "cannot be written");
    }
    const void* block = nullptr;
    std::size_t size = 0;
    la_int64_t offset = 0;
    while (true) {
      r = archive_read_data_block(in.get(), &block, &size, &offset);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) reader.check(in.get());
      if (archive_write_data_block(disk.get(), block, size, offset) < ARCHIVE_WARN) {
        const char* why = archive_error_string(disk.get());
        bad_entry(shown, why ? why : "cannot be written");
      }
    }
    if (archive_write_finish_entry(disk.get()) < ARCHIVE_WARN) {
      const char* why = archive_error_string(disk.get());
      bad_entry(shown, why ? why : "cannot be finished");
    }
    ++count;
  }
  if (archive_write_close(disk.get()) < ARCHIVE_WARN) {
    const char* why = archive_error_string(disk.get());
    throw CapsuleValidationError("archive", why ? why : "cannot finish the extraction");
  }
  return count;
}

namespace {

// Adds `path` (and what is below it) as `name`; returns the number of entries written.
std::size_t add_path(archive* a, SinkWriter& w, const fs::path& path, const std::string& name);

// The children of the directory `dir`, sorted, each added as prefix + its file name.
std::size_t add_children(archive* a, SinkWriter& w, const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> children;
  std::error_code ec;
  for (const auto& d : fs::directory_iterator(dir, ec)) children.push_back(d.path());
  if (ec) throw CapsuleValidationError("path", "cannot list '" + dir.string() + "': " + ec.message());
  std::sort(children.begin(), children.end());
  std::size_t n = 0;
  for (const auto& c : children) n += add_path(a, w, c, prefix + c.filename().string());
  return n;
}

std::size_t add_path(archive* a, SinkWriter& w, const fs::path& path, const std::string& name) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) throw CapsuleNotFoundError(path.string(), "file");
  std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(), archive_entry_free);
  archive_entry_copy_pathname(e.get(), name.c_str());
  archive_entry_copy_stat(e.get(), &st);
  int fd = -1;
  if (S_ISLNK(st.st_mode)) {
    std::error_code ec;
    fs::path target = fs::read_symlink(path, ec);
    if (ec) throw CapsuleValidationError("path", "cannot read the link '" + path.string() + "': " + ec.message());
    archive_entry_copy_symlink(e.get(), target.c_str());
  } else if (S_ISREG(st.st_mode)) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) throw CapsuleValidationError("path", "cannot read '" + path.string() + "': " + std::strerror(errno));
  } else if (!S_ISDIR(st.st_mode)) {
    return 0;  // devices, FIFOs and sockets are not archived
  }
  struct Closer {
    int fd;
    ~Closer() {
      if (fd >= 0) ::close(fd);
    }
  } closer{fd};
  if (archive_write_header(a, e.get()) < ARCHIVE_WARN) w.check(a);
  if (fd >= 0) {
    std::vector<char> buf(kChunk);
    while (true) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw CapsuleValidationError("path", "cannot read '" + path.string() + "': " + std::strerror(errno));
      if (n == 0) break;
      if (archive_write_data(a, buf.data(), static_cast<std::size_t>(n)) < 0) w.check(a);
    }
  }
  return 1 + (S_ISDIR(st.st_mode) ? add_children(a, w, path, name + "/") : 0);
}

// The pull-style tar of one file: each read() writes the next piece of the file into
// libarchive, whose output collects in `pending_` until it is read.
class SingleFileTar final : public ByteSource {
 public:
  SingleFileTar(const std::string& name, std::uint64_t size, std::uint32_t mode, ByteSource& data)
      : data_(data), remaining_(size), size_(size), writer_(nullptr) {
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
      throw CapsuleValidationError("path", "'" + name + "' is not a file name");
    writer_.into = &pending_;
    a_ = writer_.open();
    std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(), archive_entry_free);
    archive_entry_copy_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), mode & 07777);
    archive_entry_set_size(e.get(), static_cast<la_int64_t>(size));
    archive_entry_set_mtime(e.get(), std::time(nullptr), 0);
    archive_entry_set_uid(e.get(), 0);
    archive_entry_set_gid(e.get(), 0);
    if (archive_write_header(a_.get(), e.get()) < ARCHIVE_WARN) writer_.check(a_.get());
  }

  std::size_t read(char* buf, std::size_t n) override {
    while (pos_ == pending_.size() && !finished_) pump();
    std::size_t k = std::min(n, pending_.size() - pos_);
    std::memcpy(buf, pending_.data() + pos_, k);
    pos_ += k;
    if (pos_ == pending_.size()) {
      pending_.clear();
      pos_ = 0;
    }
    return k;
  }

 private:
  void pump() {
    if (remaining_ > 0) {
      std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, chunk_.size()));
      std::size_t got = data_.read(chunk_.data(), want);
      if (got == 0)
        throw CapsuleValidationError("upload", "the data ended after " + std::to_string(size_ - remaining_) + " of " +
                                                   std::to_string(size_) + " bytes");
      if (archive_write_data(a_.get(), chunk_.data(), got) < 0) writer_.check(a_.get());
      remaining_ -= got;
      return;
    }
    char extra = 0;
    if (data_.read(&extra, 1) != 0)
      throw CapsuleValidationError("upload",
                                   "the data holds more than the " + std::to_string(size_) + " bytes announced");
    if (archive_write_finish_entry(a_.get()) < ARCHIVE_WARN || archive_write_close(a_.get()) < ARCHIVE_WARN)
      writer_.check(a_.get());
    finished_ = true;
  }

  ByteSource& data_;
  std::uint64_t remaining_;
  std::uint64_t size_;
  std::string pending_;  // before a_: freeing an unfinished archive still writes into it
  SinkWriter writer_;
  WriteArchive a_;
  std::size_t pos_ = 0;
  bool finished_ = false;
  std::vector<char> chunk_ = std::vector<char>(kChunk);
};

std::string type_name(unsigned type) {
  switch (type) {
    case AE_IFREG: return "file";
    case AE_IFDIR: return "dir";
    case AE_IFLNK: return "symlink";
    default: return "other";
  }
}

}  // namespace

void write_tar(const std::string& path, ByteSink& sink) {
  fs::path p(path);
  while (p.has_relative_path() && !p.has_filename()) p = p.parent_path();  // "dir/" → "dir"
  std::string name = p.filename().string();
  if (name.empty() || name == "." || name == "..") {
    std::error_code ec;
    name = fs::weakly_canonical(p, ec).filename().string();
    if (name.empty()) name = "root";
  }
  SinkWriter w(&sink);
  WriteArchive a = w.open();
  add_path(a.get(), w, p, name);
  if (archive_write_close(a.get()) < ARCHIVE_WARN) w.check(a.get());
}

std::size_t write_tar_contents(const std::string& dir, ByteSink& sink) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) throw CapsuleNotFoundError(dir, "directory");
  if (!S_ISDIR(st.st_mode)) throw CapsuleValidationError("path", "'" + dir + "' is not a directory");
  SinkWriter w(&sink);
  WriteArchive a = w.open();
  std::size_t n = add_children(a.get(), w, fs::path(dir), "");
  if (archive_write_close(a.get()) < ARCHIVE_WARN) w.check(a.get());
  return n;
}

std::unique_ptr<ByteSource> single_file_tar(const std::string& name, std::uint64_t size, std::uint32_t mode,
                                            ByteSource& data) {
  return std::make_unique<SingleFileTar>(name, size, mode, data);
}

FileStat copy_first_file(ByteSource& src, ByteSink& sink) {
  SourceReader reader(src);
  ReadArchive in = reader.open();
  archive_entry* e = nullptr;
  int r = archive_read_next_header(in.get(), &e);
  if (r == ARCHIVE_EOF) throw CapsuleValidationError("archive", "the archive is empty");
  if (r < ARCHIVE_WARN) reader.check(in.get());
  FileStat st;
  const char* name = archive_entry_pathname(e);
  st.path = name ? name : "";
  st.name = fs::path(st.path).filename().string();
  st.type = archive_entry_hardlink(e) ? "file" : type_name(archive_entry_filetype(e));
  st.size = static_cast<std::uint64_t>(std::max<la_int64_t>(archive_entry_size(e), 0));
  st.mode = archive_entry_perm(e) & 07777;
  st.mtime_s = archive_entry_mtime(e);
  if (const char* t = archive_entry_symlink(e)) st.link_target = t;
  if (st.type != "file" || archive_entry_hardlink(e)) return st;
  std::vector<char> buf(kChunk);
  while (true) {
    la_ssize_t n = archive_read_data(in.get(), buf.data(), buf.size());
    if (n < 0) reader.check(in.get());
    if (n == 0) break;
    sink.write(std::string_view(buf.data(), static_cast<std::size_t>(n)));
  }
  return st;
}

}  // namespace pw::capsules

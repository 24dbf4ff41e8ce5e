#include "embedded_server/capsule_archive.hpp"

#include "embedded_server/http_util.hpp"

#include <podwrangler/errors.hpp>

#include <archive.h>
#include <archive_entry.h>

#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <stdexcept>

namespace pw::server {
namespace {

struct ArchiveFree {
  void operator()(archive* a) const noexcept { archive_write_free(a); }
};
struct ReadFree {
  void operator()(archive* a) const noexcept { archive_read_free(a); }
};
struct EntryFree {
  void operator()(archive_entry* e) const noexcept { archive_entry_free(e); }
};

struct Writer {
  const std::function<bool(std::string_view)>* write;
  bool stopped = false;
};

la_ssize_t write_cb(archive*, void* client, const void* buf, size_t n) {
  auto* w = static_cast<Writer*>(client);
  if (!(*w->write)(std::string_view(static_cast<const char*>(buf), n))) {
    w->stopped = true;
    return -1;
  }
  return static_cast<la_ssize_t>(n);
}

std::string archive_problem(archive* a) {
  const char* s = archive_error_string(a);
  return s ? s : "archive error";
}

// A file's bytes into the open entry, as the manager downloads them.
class EntrySink final : public capsules::ByteSink {
 public:
  EntrySink(archive* a, std::uint64_t size) : a_(a), left_(size) {}
  void write(std::string_view bytes) override {
    // A file that grew since it was listed is cut at its listed size (the header holds it).
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), left_));
    if (n == 0) return;
    if (archive_write_data(a_, bytes.data(), n) < 0) throw std::runtime_error(archive_problem(a_));
    left_ -= n;
  }

 private:
  archive* a_;
  std::uint64_t left_;
};

struct Reader {
  capsules::ByteSource* src;
  std::vector<char> buf = std::vector<char>(std::size_t{64} * 1024);
};

la_ssize_t read_cb(archive*, void* client, const void** out) {
  auto* r = static_cast<Reader*>(client);
  std::size_t n = r->src->read(r->buf.data(), r->buf.size());
  *out = r->buf.data();
  return static_cast<la_ssize_t>(n);
}

// The current entry's data as a byte source (the manager uploads from it).
class EntrySource final : public capsules::ByteSource {
 public:
  explicit EntrySource(archive* a) : a_(a) {}
  std::size_t read(char* buf, std::size_t n) override {
    la_ssize_t got = archive_read_data(a_, buf, n);
    if (got < 0) throw validation_error("body", "not a valid tar archive (" + archive_problem(a_) + ")");
    return static_cast<std::size_t>(got);
  }

 private:
  archive* a_;
};

}  // namespace

std::optional<std::string> safe_entry_name(std::string_view name) {
  if (!name.empty() && name.front() == '/') return std::nullopt;
  std::string out;
  std::size_t pos = 0;
  while (pos <= name.size()) {
    std::size_t slash = name.find('/', pos);
    std::string_view part = name.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    if (part == "..") return std::nullopt;
    if (!part.empty() && part != ".") {
      if (!out.empty()) out += '/';
      out += part;
    }
    if (slash == std::string_view::npos) break;
    pos = slash + 1;
  }
  return out;
}

bool write_capsule_tar(capsules::CapsuleManager& m, const std::string& id, const std::string& dir,
                       const std::function<bool(std::string_view)>& write) {
  std::vector<capsules::FileStat> entries = m.list_files(id, dir, 64);
  // Parents before their children.
  std::sort(entries.begin(), entries.end(),
            [](const capsules::FileStat& a, const capsules::FileStat& b) { return a.path < b.path; });
  std::unique_ptr<archive, ArchiveFree> a(archive_write_new());
  Writer w{&write};
  archive_write_set_format_pax_restricted(a.get());
  archive_write_set_bytes_in_last_block(a.get(), 1);
  if (archive_write_open2(a.get(), &w, nullptr, write_cb, nullptr, nullptr) != ARCHIVE_OK)
    throw std::runtime_error(archive_problem(a.get()));
  const std::string prefix = dir.back() == '/' ? dir : dir + "/";
  for (const auto& f : entries) {
    if (f.path.rfind(prefix, 0) != 0) continue;
    std::string rel = f.path.substr(prefix.size());
    if (rel.empty()) continue;
    std::unique_ptr<archive_entry, EntryFree> e(archive_entry_new());
    archive_entry_set_pathname(e.get(), rel.c_str());
    archive_entry_set_perm(e.get(), f.mode & 07777);
    archive_entry_set_mtime(e.get(), f.mtime_s, 0);
    if (f.type == "dir") {
      archive_entry_set_filetype(e.get(), AE_IFDIR);
    } else if (f.type == "file") {
      archive_entry_set_filetype(e.get(), AE_IFREG);
      archive_entry_set_size(e.get(), static_cast<la_int64_t>(f.size));
    } else if (f.type == "symlink") {
      archive_entry_set_filetype(e.get(), AE_IFLNK);
      archive_entry_set_symlink(e.get(), f.link_target.c_str());
    } else {
      continue;  // devices, sockets, fifos: not data
    }
    if (archive_write_header(a.get(), e.get()) != ARCHIVE_OK) {
      if (w.stopped) return false;
      throw std::runtime_error(archive_problem(a.get()));
    }
    if (f.type == "file" && f.size > 0) {
      EntrySink sink(a.get(), f.size);
      try {
        m.download(id, f.path, sink);
      } catch (const std::runtime_error&) {
        if (w.stopped) return false;
        throw;
      }
    }
    // A file that shrank since it was listed is padded with zeros to its listed size.
    if (archive_write_finish_entry(a.get()) != ARCHIVE_OK) {
      if (w.stopped) return false;
      throw std::runtime_error(archive_problem(a.get()));
    }
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) {
    if (w.stopped) return false;
    throw std::runtime_error(archive_problem(a.get()));
  }
  return !w.stopped;
}

std::size_t read_capsule_tar(capsules::CapsuleManager& m, const std::string& id, const std::string& dir,
                             capsules::ByteSource& src) {
  std::unique_ptr<archive, ReadFree> a(archive_read_new());
  archive_read_support_format_tar(a.get());
  Reader r{&src};
  if (archive_read_open(a.get(), &r, nullptr, read_cb, nullptr) != ARCHIVE_OK)
    throw validation_error("body", "not a valid tar archive (" + archive_problem(a.get()) + ")");
  const std::string base = dir.back() == '/' ? dir.substr(0, dir.size() - 1) : dir;
  m.mkdir(id, base.empty() ? "/" : base, true);
  std::size_t count = 0;
  for (;;) {
    archive_entry* e = nullptr;
    int rc = archive_read_next_header(a.get(), &e);
    if (rc == ARCHIVE_EOF) break;
    if (rc < ARCHIVE_WARN) throw validation_error("body", "not a valid tar archive (" + archive_problem(a.get()) + ")");
    const char* raw = archive_entry_pathname(e);
    std::string name = raw ? raw : "";
    auto rel = safe_entry_name(name);
    if (!rel)
      throw validation_error(
          "body", "archive entry '" + shown(name) + "' would be written outside the directory (absolute or '..')");
    if (rel->empty()) continue;  // "." itself
    const std::string target = base + "/" + *rel;
    switch (archive_entry_filetype(e)) {
      case AE_IFDIR: m.mkdir(id, target, true); break;
      case AE_IFREG: {
        EntrySource data(a.get());
        m.upload(id, target, data, static_cast<std::uint32_t>(archive_entry_perm(e) & 0777));
        break;
      }
      default:
        throw validation_error(
            "body", "archive entry '" + shown(name) + "': only directories and regular files can be uploaded");
    }
    ++count;
  }
  return count;
}

}  // namespace pw::server

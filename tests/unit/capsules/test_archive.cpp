// capsules/archive.cpp: tar extraction that never writes outside its destination, tar
// writing, and the streamed single-file tar used by the fallback channel. The hostile
// archives are made here with libarchive, entry by entry.
#include <doctest/doctest.h>

#include <podwrangler/capsules/archive.hpp>
#include <podwrangler/errors.hpp>

#include <archive.h>
#include <archive_entry.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

using namespace pw;
using namespace pw::capsules;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "pw-archive-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path path;
};

struct Entry {
  std::string name;
  unsigned type = AE_IFREG;
  std::string data;
  std::string symlink;   // for AE_IFLNK
  std::string hardlink;  // a hard link to an earlier entry
  unsigned mode = 0644;
};

la_ssize_t append(archive*, void* out, const void* p, std::size_t n) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(p), n);
  return static_cast<la_ssize_t>(n);
}

std::string make_tar(const std::vector<Entry>& entries) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_open(a, &out, nullptr, append, nullptr);
  for (const auto& e : entries) {
    archive_entry* en = archive_entry_new();
    archive_entry_copy_pathname(en, e.name.c_str());
    archive_entry_set_filetype(en, e.type);
    archive_entry_set_perm(en, e.mode);
    if (e.type == AE_IFCHR) archive_entry_set_rdev(en, makedev(1, 3));
    if (!e.symlink.empty()) archive_entry_copy_symlink(en, e.symlink.c_str());
    if (!e.hardlink.empty()) archive_entry_copy_hardlink(en, e.hardlink.c_str());
    archive_entry_set_size(en, static_cast<la_int64_t>(e.data.size()));
    REQUIRE(archive_write_header(a, en) == ARCHIVE_OK);
    if (!e.data.empty()) archive_write_data(a, e.data.data(), e.data.size());
    archive_entry_free(en);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

// Hands out the bytes in small pieces, as a network stream would.
struct ChunkedSource final : ByteSource {
  explicit ChunkedSource(std::string d, std::size_t chunk = 777) : data(std::move(d)), piece(chunk) {}
  std::size_t read(char* buf, std::size_t n) override {
    std::size_t k = std::min({n, piece, data.size() - pos});
    std::memcpy(buf, data.data() + pos, k);
    pos += k;
    return k;
  }
  std::string data;
  std::size_t piece;
  std::size_t pos = 0;
};
struct StringSink final : ByteSink {
  void write(std::string_view b) override { data.append(b); }
  std::string data;
};

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Extracting `tar` into dir/dest fails with CapsuleValidationError whose message contains `why`.
void refused(const std::string& tar, const fs::path& dest, const std::string& why) {
  ChunkedSource src(tar);
  CHECK_THROWS_WITH_AS(extract_tar(src, dest.string()), doctest::Contains(why.c_str()), CapsuleValidationError);
}

}  // namespace

TEST_CASE("extract_tar: a directory written by write_tar comes back whole") {
  TempDir tmp;
  fs::path src = tmp.path / "project";
  fs::create_directories(src / "sub" / "deeper");
  std::ofstream(src / "a.txt") << "alpha\n";
  std::ofstream(src / "sub" / "deeper" / "b.bin") << std::string(200000, '\x7f');
  fs::create_symlink("sub/deeper/b.bin", src / "link");
  ::chmod((src / "a.txt").c_str(), 0750);
  StringSink tar;
  write_tar(src.string() + "/", tar);
  fs::path dest = tmp.path / "out";
  ChunkedSource in(tar.data);
  CHECK(extract_tar(in, dest.string()) == 6);  // project, a.txt, link, sub, deeper, b.bin
  CHECK(slurp(dest / "project" / "a.txt") == "alpha\n");
  CHECK(slurp(dest / "project" / "sub" / "deeper" / "b.bin") == std::string(200000, '\x7f'));
  CHECK(fs::is_symlink(dest / "project" / "link"));
  CHECK(fs::read_symlink(dest / "project" / "link") == "sub/deeper/b.bin");
  CHECK((fs::status(dest / "project" / "a.txt").permissions() & fs::perms::owner_exec) != fs::perms::none);
  CHECK(fs::status(dest).permissions() == fs::perms::owner_all);  // made 0700
  CHECK_THROWS_AS(write_tar((tmp.path / "missing").string(), tar), CapsuleNotFoundError);
}

TEST_CASE("write_tar_contents: names relative to the directory, links kept, the tree comes back whole") {
  TempDir tmp;
  fs::path src = tmp.path / "src";
  fs::create_directories(src / "sub" / "deeper");
  std::ofstream(src / "a.txt") << "alpha";
  std::ofstream(src / "sub" / "deeper" / "b.bin") << std::string("b\0b", 3);
  ::chmod((src / "a.txt").c_str(), 0750);
  fs::create_symlink("../a.txt", src / "sub" / "to-a");
  StringSink tar;
  CHECK(write_tar_contents(src.string(), tar) == 5);  // a.txt, sub, sub/deeper, sub/deeper/b.bin, sub/to-a
  fs::path dest = tmp.path / "dest";
  ChunkedSource in(tar.data);
  CHECK(extract_tar(in, dest.string()) == 5);
  CHECK(slurp(dest / "a.txt") == "alpha");
  CHECK(slurp(dest / "sub" / "deeper" / "b.bin") == std::string("b\0b", 3));
  CHECK(fs::read_symlink(dest / "sub" / "to-a") == "../a.txt");
  CHECK((fs::status(dest / "a.txt").permissions() & fs::perms::owner_exec) != fs::perms::none);
  CHECK_FALSE(fs::exists(dest / "src"));
  CHECK_THROWS_AS(write_tar_contents((tmp.path / "missing").string(), tar), CapsuleNotFoundError);
  CHECK_THROWS_AS(write_tar_contents((src / "a.txt").string(), tar), CapsuleValidationError);
}

TEST_CASE("security: extract_tar refuses '..', absolute names, links out and writes through links") {
  TempDir tmp;
  fs::path dest = tmp.path / "dest";
  fs::create_directories(dest);

  refused(make_tar({{"../x", AE_IFREG, "evil"}}), dest, "'..'");
  CHECK_FALSE(fs::exists(tmp.path / "x"));
  refused(make_tar({{"ok.txt", AE_IFREG, "fine"}, {"a/../../x", AE_IFREG, "evil"}}), dest, "a/../../x");
  CHECK_FALSE(fs::exists(tmp.path / "x"));

  const std::string etc = "/etc/pw-archive-test-" + std::to_string(::getpid());
  refused(make_tar({{etc, AE_IFREG, "evil"}}), dest, "absolute");
  CHECK_FALSE(fs::exists(etc));
  fs::remove(etc);  // (only if the refusal failed)

  // A link pointing out, then a file through it: the link is refused, nothing escapes.
  fs::create_directories(tmp.path / "outside");
  refused(make_tar({{"link", AE_IFLNK, "", "../outside"}, {"link/x", AE_IFREG, "evil"}}), dest,
          "leads outside the destination");
  CHECK_FALSE(fs::exists(tmp.path / "outside" / "x"));
  CHECK_FALSE(fs::exists(dest / "link"));
  refused(make_tar({{"abs", AE_IFLNK, "", "/etc"}}), dest, "leads outside");
  refused(make_tar({{"d/deep", AE_IFLNK, "", "../../outside"}}), dest, "leads outside");
  // A link that stays inside is fine, but nothing is written through it.
  refused(make_tar(
              {{"sub/", AE_IFDIR, "", "", "", 0755}, {"inner", AE_IFLNK, "", "sub"}, {"inner/x", AE_IFREG, "through"}}),
          dest, "goes through the symbolic link 'inner'");
  CHECK(fs::is_symlink(dest / "inner"));
  CHECK_FALSE(fs::exists(dest / "sub" / "x"));

  // A link already on disk (put there by someone else) is not followed either.
  fs::create_directory_symlink(tmp.path / "outside", dest / "pre");
  refused(make_tar({{"pre/x", AE_IFREG, "evil"}}), dest, "goes through the symbolic link 'pre'");
  CHECK_FALSE(fs::exists(tmp.path / "outside" / "x"));
  // Replacing the link itself is fine: its target is untouched.
  ChunkedSource replace(make_tar({{"pre", AE_IFREG, "now a file"}}));
  CHECK(extract_tar(replace, dest.string()) == 1);
  CHECK_FALSE(fs::is_symlink(dest / "pre"));
  CHECK(slurp(dest / "pre") == "now a file");
  CHECK(fs::is_directory(tmp.path / "outside"));

  // Hard links: to names inside only.
  refused(make_tar({{"h", AE_IFREG, "", "", "../outside/secret"}}), dest, "hard link target");
  refused(make_tar({{"h", AE_IFREG, "", "", "/etc/passwd"}}), dest, "hard link target");
  ChunkedSource hl(make_tar({{"orig", AE_IFREG, "same"}, {"twin", AE_IFREG, "", "", "orig"}}));
  CHECK(extract_tar(hl, dest.string()) == 2);
  CHECK(slurp(dest / "twin") == "same");
  CHECK(fs::hard_link_count(dest / "orig") == 2);

  // Devices and other special files.
  refused(make_tar({{"null", AE_IFCHR}}), dest, "special files");
  CHECK_FALSE(fs::exists(dest / "null"));
  refused(make_tar({{"fifo", AE_IFIFO}}), dest, "special files");

  // Not a tar at all.
  refused(std::string(3000, 'z'), dest, "");
}

TEST_CASE("security: extract_tar drops set-user-ID, set-group-ID and sticky bits") {
  TempDir tmp;
  ChunkedSource src(make_tar({{"suid", AE_IFREG, "#!/bin/sh\n", "", "", 06755}}));
  CHECK(extract_tar(src, tmp.path.string()) == 1);
  struct stat st {};
  REQUIRE(::stat((tmp.path / "suid").c_str(), &st) == 0);
  CHECK((st.st_mode & 07000) == 0);
  CHECK((st.st_mode & 0100) != 0);
}

TEST_CASE("single_file_tar streams one file; copy_first_file reads it back") {
  std::mt19937 rng(7);
  std::string data(5 * 1024 * 1024 + 13, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  ChunkedSource payload(data, 100000);
  auto tar = single_file_tar("blob.bin", data.size(), 0640, payload);
  // Read the tar in odd pieces: it is produced as it is read.
  std::string bytes;
  char buf[4099];
  while (std::size_t n = tar->read(buf, sizeof buf)) bytes.append(buf, n);
  CHECK(bytes.size() % 512 == 0);
  CHECK(bytes.size() < data.size() + 20 * 1024);
  ChunkedSource back(bytes);
  StringSink out;
  FileStat st = copy_first_file(back, out);
  CHECK(st.type == "file");
  CHECK(st.name == "blob.bin");
  CHECK(st.mode == 0640);
  CHECK(st.size == data.size());
  CHECK(out.data == data);

  // A directory or a link as the first entry: the header only, nothing written.
  ChunkedSource dir(make_tar({{"d/", AE_IFDIR, "", "", "", 0755}, {"d/f", AE_IFREG, "x"}}));
  StringSink none;
  CHECK(copy_first_file(dir, none).type == "dir");
  ChunkedSource lnk(make_tar({{"l", AE_IFLNK, "", "/target"}}));
  FileStat ls = copy_first_file(lnk, none);
  CHECK(ls.type == "symlink");
  CHECK(ls.link_target == "/target");
  CHECK(none.data.empty());

  // The data must hold exactly the size announced.
  ChunkedSource short_src("abc");
  auto short_tar = single_file_tar("f", 10, 0644, short_src);
  CHECK_THROWS_WITH_AS(while (short_tar->read(buf, sizeof buf)){}, doctest::Contains("ended after 3 of 10"),
                       CapsuleValidationError);
  ChunkedSource long_src("abcdef");
  auto long_tar = single_file_tar("f", 3, 0644, long_src);
  CHECK_THROWS_AS(while (long_tar->read(buf, sizeof buf)){}, CapsuleValidationError);
  ChunkedSource any("");
  CHECK_THROWS_AS(single_file_tar("a/b", 0, 0644, any), CapsuleValidationError);
}

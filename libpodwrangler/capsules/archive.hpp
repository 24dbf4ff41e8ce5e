#pragma once
// Tar archives for capsule files (libarchive), streamed both ways: nothing here holds a
// whole file in memory.
//
// extract_tar never writes outside the destination directory. Each entry is checked before
// anything is written, and the first bad one stops the extraction with
// CapsuleValidationError("archive", "<entry>: <why>"):
//   - an absolute name ("/etc/x"), a ".." component ("../x", "a/../../x"), an empty name;
//   - a symbolic link whose target is absolute or leads out of the destination
//     (resolved against the link's own directory);
//   - a hard link whose target is absolute or has a ".." component;
//   - an entry whose path goes through a symbolic link already on disk below the
//     destination (an earlier entry, or one that was there), or that would replace one;
//   - device nodes, sockets and other special files.
// libarchive enforces the same with ARCHIVE_EXTRACT_SECURE_NODOTDOT and
// ARCHIVE_EXTRACT_SECURE_SYMLINKS. ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS cannot be passed:
// names are made absolute under the destination (its canonical path, so that no link in
// it trips the symlink check) because a library cannot chdir() in a threaded process; the
// absolute names of the archive are refused by the checks above instead. Owners are not
// restored; modes are, without set-user/group-ID bits (umask applies).
#include <podwrangler/capsules/model.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace pw::capsules {

// Extracts the tar read from `src` into `dest_dir` (created 0700 if missing). Returns the
// number of entries written.
std::size_t extract_tar(ByteSource& src, const std::string& dest_dir);

// Writes `path` as a tar to `sink`: a file, or a directory with everything below it
// (symbolic links stored as links, never followed). Names start with path's last
// component ("dir/a.txt"). CapsuleNotFoundError when `path` does not exist.
void write_tar(const std::string& path, ByteSink& sink);
// The same for what is inside the directory `dir`, with names relative to it ("a.txt",
// "sub/b.bin"): `capsule upload` of a local directory. Returns the number of entries.
std::size_t write_tar_contents(const std::string& dir, ByteSink& sink);

// A tar of one regular file `name` (no '/') with `size` bytes read from `data`, produced
// as it is read: the result is the tar's bytes as a ByteSource. Throws
// CapsuleValidationError when `data` ends early or holds more than `size` bytes.
std::unique_ptr<ByteSource> single_file_tar(const std::string& name, std::uint64_t size, std::uint32_t mode,
                                            ByteSource& data);

// The first entry of the tar read from `src`. For a regular file its bytes are copied to
// `sink` (only then); for anything else only its header is read. path = the entry's name.
FileStat copy_first_file(ByteSource& src, ByteSink& sink);

}  // namespace pw::capsules

#pragma once
// Directories of a capsule as tar archives (libarchive, pax), streamed both ways through the
// capsule manager's file calls: a download walks the directory and streams each file into the
// archive as it is written; an upload reads the archive as it arrives and writes each entry.
// Entry names are relative to the directory; only directories, regular files and (downloads)
// symbolic links are carried.
#include <podwrangler/capsules/manager.hpp>

#include <functional>
#include <string>
#include <string_view>

namespace pw::server {

// Writes the tree under `dir` as a tar archive to `write` (return false to stop: the client
// left). Returns false when stopped; throws what the manager throws.
bool write_capsule_tar(capsules::CapsuleManager& m, const std::string& id, const std::string& dir,
                       const std::function<bool(std::string_view)>& write);

// Reads a tar archive from `src` and creates its entries under `dir` (made if missing).
// Entries with an absolute name, a ".." component, or of another type than directory or
// regular file are refused (422 naming "body"); returns the number of entries written.
std::size_t read_capsule_tar(capsules::CapsuleManager& m, const std::string& id, const std::string& dir,
                             capsules::ByteSource& src);

// A tar entry name as given, made relative and checked: "" for "." (the directory itself),
// nullopt when absolute or holding a ".." component.
std::optional<std::string> safe_entry_name(std::string_view name);

}  // namespace pw::server

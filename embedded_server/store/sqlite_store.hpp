#pragma once
// The SQLite Store (private to store/): see sqlite_store.cpp.
#include "embedded_server/store/store.hpp"

#include <memory>
#include <string>

namespace pw::server::detail {

// Opens (creating it if missing) and migrates the database file at `path`, or a private
// in-memory database for ":memory:". Throws StoreError.
std::unique_ptr<Store> open_sqlite_store(const std::string& path);

}  // namespace pw::server::detail

#pragma once
// The PostgreSQL Store (private to store/): see postgres_store.cpp.
#include "embedded_server/store/store.hpp"

#include <memory>
#include <string>

namespace pw::server::detail {

// Connects with a libpq connection URI ("postgresql://user:pass@host:port/db?…") and
// migrates. `password` (may be empty) is scrubbed from every error message. Throws
// StoreError.
std::unique_ptr<Store> open_postgres_store(const std::string& uri, const std::string& password);

}  // namespace pw::server::detail

#pragma once
// The PostgreSQL Store (private to store/): see postgres_store.cpp.
//
// It is built as a loadable module, libpodwrangler_pg.so (CMake target podwrangler_pg), so
// that only a process that opens a postgresql:// database loads libpq and its dependency
// tree (gssapi, krb5, ldap, sasl, …): open_store() dlopen()s it on first use. The module's
// entry points are the extern "C" functions below; open_store.cpp finds them with dlsym.
//
// Exceptions: the entry points catch everything and report through `err`. The Store the
// module returns is used directly, and its methods throw StoreError/StoreConflictError
// (and std::bad_alloc) into the caller as they always did: the module and the program are
// built by the same compiler against the same shared libstdc++, and libstdc++ matches
// exception types across shared objects by their mangled names, so this is safe. The
// module is never dlclose()d (the Store's code must outlive every Store).
#include "embedded_server/store/store.hpp"

#include <cstddef>
#include <memory>
#include <string>

namespace pw::server::detail {

// Connects with a libpq connection URI ("postgresql://user:pass@host:port/db?…") and
// migrates. `password` (may be empty) is scrubbed from every error message. Throws
// StoreError. (Inside the module only.)
std::unique_ptr<Store> open_postgres_store(const std::string& uri, const std::string& password);

}  // namespace pw::server::detail

#define PW_PG_EXPORT __attribute__((visibility("default")))

// Bumped whenever a signature below, store.hpp's Store or a record type changes.
#define PW_PG_MODULE_ABI 3

extern "C" {

// One (keyword, value) pair of a parsed connection URI; options without a value are skipped.
typedef void (*pw_pg_option_fn)(void* ctx, const char* keyword, const char* value);

// PW_PG_MODULE_ABI as the module was built.
PW_PG_EXPORT int pw_pg_module_abi(void);

// Parses a libpq connection URI (PQconninfoParse) and reports its options to `emit`.
// Returns 0, or -1 with libpq's message (which may quote the URI) in `err`.
PW_PG_EXPORT int pw_pg_conninfo_parse(const char* uri, pw_pg_option_fn emit, void* ctx, char* err, std::size_t errlen);

// What pw_store_open_postgres failed with.
enum { PW_PG_ERR_STORE = 0, PW_PG_ERR_KEY_MISMATCH = 1 };

// open_postgres_store(uri, password): a new Store the caller owns (delete it), or nullptr
// with the message (password scrubbed) in `err` and in `*kind` PW_PG_ERR_KEY_MISMATCH for a
// StoreKeyMismatchError, else PW_PG_ERR_STORE.
PW_PG_EXPORT pw::server::Store* pw_store_open_postgres(const char* uri, const char* password, char* err,
                                                       std::size_t errlen, int* kind);

}  // extern "C"

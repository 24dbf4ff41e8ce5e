// open_store: database URLs (SQLAlchemy style) to a Store.
//
// PostgreSQL support lives in a module, libpodwrangler_pg.so (see postgres_store.hpp), so
// that libpq and its dependency tree are loaded only by a process that uses a postgresql://
// URL. It is dlopen()ed on first use from the first of these paths that exists:
//   1. $PODWRANGLER_PG_MODULE (a full path);
//   2. next to the executable in the install layout: <dir of /proc/self/exe>/
//      PW_PG_MODULE_INSTALL_RELPATH (../lib/podwrangler/libpodwrangler_pg.so, computed by
//      CMake from the install directories);
//   3. PW_PG_MODULE_BUILD_PATH, where the build tree puts it.
// It stays loaded for the life of the process (never dlclose()d).
#include "embedded_server/store/postgres_store.hpp"
#include "embedded_server/store/private_files.hpp"
#include "embedded_server/store/sqlite_store.hpp"
#include "embedded_server/store/store.hpp"

#include <podwrangler/errors.hpp>
#include <podwrangler/redact.hpp>

#include <array>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <filesystem>
#include <unistd.h>
#include <vector>

#ifndef PW_PG_MODULE_INSTALL_RELPATH
#error "PW_PG_MODULE_INSTALL_RELPATH must be defined by the build"
#endif
#ifndef PW_PG_MODULE_BUILD_PATH
#error "PW_PG_MODULE_BUILD_PATH must be defined by the build"
#endif

namespace pw::server {

namespace {

struct ParsedUrl {
  std::string kind;         // "sqlite" | "postgresql"
  std::string sqlite_path;  // file path or ":memory:"
  std::string pg_uri;       // postgresql://… for libpq
  std::string password;     // to scrub from messages
};

// The URL as error messages may show it: redacted, and with the whole userinfo hidden if
// the URL is too malformed for redact_url to find the password.
std::string shown(const std::string& url) {
  std::string s = url.substr(0, 300);
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  s = redact_url(s);
  auto at = s.rfind('@');
  if (at != std::string::npos) {
    auto sep = s.find("://");
    std::size_t start = sep != std::string::npos && sep < at ? sep + 3 : 0;
    s = s.substr(0, start) + "***" + s.substr(at);
  }
  return s;
}

[[noreturn]] void bad(const std::string& url, const std::string& problem) {
  throw PodConfigValidationError("database_url", problem + " in '" + shown(url) + "'");
}

// ---- the PostgreSQL module ----

struct PgModule {
  decltype(&pw_pg_conninfo_parse) parse = nullptr;
  decltype(&pw_store_open_postgres) open = nullptr;
};

[[noreturn]] void pg_unavailable(std::string why) {
  for (char& c : why)
    if (c == '\n' || c == '\r') c = ' ';  // one line
  throw StoreError("PostgreSQL support is not available: cannot load libpodwrangler_pg.so (" + why + ")");
}

std::vector<std::string> pg_module_candidates() {
  std::vector<std::string> paths;
  if (const char* env = std::getenv("PODWRANGLER_PG_MODULE"); env && *env) paths.emplace_back(env);
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec && exe.has_parent_path())
    paths.push_back((exe.parent_path() / PW_PG_MODULE_INSTALL_RELPATH).lexically_normal().string());
  paths.emplace_back(PW_PG_MODULE_BUILD_PATH);
  return paths;
}

std::string dl_error() {
  const char* e = ::dlerror();
  return e ? e : "unknown dynamic loader error";
}

template <class Fn>
Fn pg_symbol(void* handle, const char* name) {
  void* sym = ::dlsym(handle, name);
  if (!sym) pg_unavailable(dl_error());
  return reinterpret_cast<Fn>(sym);
}

PgModule load_pg_module() {
  const std::vector<std::string> candidates = pg_module_candidates();
  std::string path;
  for (const auto& c : candidates)
    if (::access(c.c_str(), F_OK) == 0) {
      path = c;
      break;
    }
  if (path.empty()) {
    std::string tried;
    for (const auto& c : candidates) tried += (tried.empty() ? "" : ", ") + c;
    pg_unavailable("not found: tried " + tried);
  }
  // RTLD_LOCAL: libpq's symbols stay out of the global scope. Never dlclose()d: Stores it
  // made (and their vtables) live as long as the process may use them.
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) pg_unavailable(dl_error());
  const auto abi = pg_symbol<decltype(&pw_pg_module_abi)>(handle, "pw_pg_module_abi");
  if (const int v = abi(); v != PW_PG_MODULE_ABI)
    pg_unavailable(path + " has module ABI " + std::to_string(v) + ", this program needs " +
                   std::to_string(PW_PG_MODULE_ABI));
  PgModule m;
  m.parse = pg_symbol<decltype(m.parse)>(handle, "pw_pg_conninfo_parse");
  m.open = pg_symbol<decltype(m.open)>(handle, "pw_store_open_postgres");
  return m;
}

// Loaded once (thread-safe); a failed load throws and is tried again on the next call.
const PgModule& pg_module() {
  static const PgModule module = load_pg_module();
  return module;
}

struct PgOptions {
  std::string password, port;
};

void collect_pg_option(void* ctx, const char* keyword, const char* value) {
  auto* o = static_cast<PgOptions*>(ctx);
  if (std::strcmp(keyword, "password") == 0) o->password = value;
  if (std::strcmp(keyword, "port") == 0) o->port = value;
}

bool is_driver_name(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

// asyncpg spells libpq's sslmode as ssl=…; translate it so such URLs work unchanged.
std::string translate_query(const std::string& query) {
  std::string out;
  std::size_t i = 0;
  while (i <= query.size()) {
    std::size_t amp = query.find('&', i);
    if (amp == std::string::npos) amp = query.size();
    std::string item = query.substr(i, amp - i);
    if (item.rfind("ssl=", 0) == 0) {
      std::string v = item.substr(4);
      if (v == "true") v = "require";
      if (v == "false") v = "disable";
      item = "sslmode=" + v;
    }
    if (!item.empty()) {
      if (!out.empty()) out += '&';
      out += item;
    }
    i = amp + 1;
  }
  return out;
}

// libpq's port value: empty, or comma-separated numbers 1–65535 (one per host).
bool valid_ports(const std::string& ports) {
  if (ports.empty()) return true;
  std::size_t i = 0;
  while (i <= ports.size()) {
    std::size_t comma = ports.find(',', i);
    if (comma == std::string::npos) comma = ports.size();
    std::string one = ports.substr(i, comma - i);
    if (!one.empty()) {  // an empty item means the default port
      if (one.size() > 5 || one.find_first_not_of("0123456789") != std::string::npos) return false;
      int n = std::stoi(one);
      if (n < 1 || n > 65535) return false;
    }
    i = comma + 1;
  }
  return true;
}

ParsedUrl parse(const std::string& url) {
  if (url.empty()) bad(url, "empty database URL");
  const auto sep = url.find("://");
  if (sep == std::string::npos || sep == 0)
    throw PodConfigValidationError("database_url",
                                   "not a database URL (expected sqlite:///path.db or postgresql://host/db)");
  std::string scheme = url.substr(0, sep);
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string base = scheme, driver;
  if (auto plus = scheme.find('+'); plus != std::string::npos) {
    base = scheme.substr(0, plus);
    driver = scheme.substr(plus + 1);
    if (!is_driver_name(driver)) bad(url, "invalid driver name in the scheme");
  }
  const std::string rest = url.substr(sep + 3);
  ParsedUrl p;
  if (base == "sqlite") {
    p.kind = "sqlite";
    if (rest.empty()) {
      p.sqlite_path = ":memory:";  // sqlite:// (SQLAlchemy: in-memory)
      return p;
    }
    if (rest[0] != '/') bad(url, "an SQLite URL has no host: use sqlite:///relative.db or sqlite:////absolute.db");
    std::string path = rest.substr(1);
    if (path.find('?') != std::string::npos) bad(url, "SQLite URL query parameters are not supported");
    if (path.find('\0') != std::string::npos) bad(url, "NUL byte in the SQLite path");
    p.sqlite_path = path.empty() ? ":memory:" : path;
    return p;
  }
  if (base == "postgresql" || base == "postgres") {
    p.kind = "postgresql";
    std::string body = rest, query;
    if (auto q = body.find('?'); q != std::string::npos) {
      query = translate_query(body.substr(q + 1));
      body = body.substr(0, q);
    }
    p.pg_uri = "postgresql://" + body + (query.empty() ? "" : "?" + query);
    PgOptions opts;
    std::array<char, 1024> err{};
    if (pg_module().parse(p.pg_uri.c_str(), collect_pg_option, &opts, err.data(), err.size()) != 0) {
      std::string msg = err.data();
      if (msg.empty()) msg = "malformed URL";
      while (!msg.empty() && msg.back() == '\n') msg.pop_back();
      bad(url, shown(msg));
    }
    p.password = std::move(opts.password);
    if (!valid_ports(opts.port)) bad(url, "invalid port");
    return p;
  }
  throw PodConfigValidationError(
      "database_url", "unsupported database URL scheme '" + shown(scheme) + "' (use sqlite:///… or postgresql://…)");
}

// The key check failed: one line naming the variable (the message never holds the key).
[[noreturn]] void key_mismatch(const std::string& why) {
  std::string line = why;
  for (char& c : line)
    if (c == '\n' || c == '\r') c = ' ';
  throw PodConfigValidationError("PODWRANGLER_SECRET_KEY", line);
}

std::unique_ptr<Store> open_sqlite(const std::string& path) {
  if (path != ":memory:") {
    // Directories it creates are 0700; the data directory is made 0700 again if loosened
    // (other existing directories are the user's: left alone).
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) {
      detail::make_private_dirs(parent);
      std::error_code ec;
      if (std::filesystem::equivalent(parent, data_dir_path(), ec)) detail::tighten_dir(parent);
    } else {
      std::error_code ec;
      if (std::filesystem::equivalent(".", data_dir_path(), ec)) detail::tighten_dir(".");
    }
  }
  try {
    return detail::open_sqlite_store(path);
  } catch (const StoreKeyMismatchError& e) {
    key_mismatch(e.what());
  }
}

}  // namespace

std::string database_kind(const std::string& database_url) { return parse(database_url).kind; }

std::unique_ptr<Store> open_store(const std::string& database_url) {
  ParsedUrl p = parse(database_url);
  if (p.kind == "sqlite") return open_sqlite(p.sqlite_path);
  try {
    std::array<char, 4096> err{};
    int kind = PW_PG_ERR_STORE;
    Store* store = pg_module().open(p.pg_uri.c_str(), p.password.c_str(), err.data(), err.size(), &kind);
    if (!store && kind == PW_PG_ERR_KEY_MISMATCH) key_mismatch(err.data());
    if (!store) throw StoreError(err.data());
    return std::unique_ptr<Store>(store);
  } catch (const StoreError& e) {
    // Belt and braces: the message must not carry the password in any form.
    std::string msg = e.what();
    if (!p.password.empty()) msg = redact_value(msg, p.password);
    throw StoreError(msg);
  }
}

}  // namespace pw::server

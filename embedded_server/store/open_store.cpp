// open_store: database URLs (SQLAlchemy style) to a Store; the data directory.
#include "embedded_server/store/postgres_store.hpp"
#include "embedded_server/store/sqlite_store.hpp"
#include "embedded_server/store/store.hpp"

#include <podwrangler/errors.hpp>
#include <podwrangler/redact.hpp>

#include <libpq-fe.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

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
    throw PodConfigValidationError(
        "database_url", "not a database URL (expected sqlite:///path.db or postgresql://host/db)");
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
    if (rest[0] != '/')
      bad(url, "an SQLite URL has no host: use sqlite:///relative.db or sqlite:////absolute.db");
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
    char* err = nullptr;
    PQconninfoOption* opts = PQconninfoParse(p.pg_uri.c_str(), &err);
    if (!opts) {
      std::string msg = err ? err : "malformed URL";
      PQfreemem(err);
      while (!msg.empty() && msg.back() == '\n') msg.pop_back();
      bad(url, shown(msg));
    }
    std::string port;
    for (auto* o = opts; o->keyword; ++o) {
      if (std::strcmp(o->keyword, "password") == 0 && o->val) p.password = o->val;
      if (std::strcmp(o->keyword, "port") == 0 && o->val) port = o->val;
    }
    PQconninfoFree(opts);
    if (!valid_ports(port)) bad(url, "invalid port");
    return p;
  }
  throw PodConfigValidationError("database_url",
                                 "unsupported database URL scheme '" + shown(scheme) +
                                     "' (use sqlite:///… or postgresql://…)");
}

void make_private_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) return;
  if (dir.has_parent_path()) std::filesystem::create_directories(dir.parent_path(), ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw StoreError("cannot create " + dir.string() + ": " + std::strerror(errno));
}

}  // namespace

std::string database_kind(const std::string& database_url) { return parse(database_url).kind; }

std::unique_ptr<Store> open_store(const std::string& database_url) {
  ParsedUrl p = parse(database_url);
  if (p.kind == "sqlite") {
    if (p.sqlite_path != ":memory:") {
      std::filesystem::path parent = std::filesystem::path(p.sqlite_path).parent_path();
      std::error_code ec;
      if (!parent.empty() && !std::filesystem::exists(parent, ec)) {
        std::filesystem::create_directories(parent, ec);
        if (ec) throw StoreError("cannot create " + parent.string() + ": " + ec.message());
      }
    }
    return detail::open_sqlite_store(p.sqlite_path);
  }
  try {
    return detail::open_postgres_store(p.pg_uri, p.password);
  } catch (const StoreError& e) {
    // Belt and braces: the message must not carry the password in any form.
    std::string msg = e.what();
    if (!p.password.empty()) msg = redact_value(msg, p.password);
    throw StoreError(msg);
  }
}

std::string data_dir() {
  std::string base;
  const char* xdg = std::getenv("XDG_DATA_HOME");
  if (xdg && xdg[0] == '/') {  // relative values are ignored (XDG base directory spec)
    base = xdg;
  } else {
    const char* home = std::getenv("HOME");
    std::string h = home && *home ? home : "";
    if (h.empty())
      if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_dir) h = pw->pw_dir;
    if (h.empty()) h = "/tmp";
    base = h + "/.local/share";
  }
  std::filesystem::path dir = std::filesystem::path(base) / "podwrangler";
  make_private_dir(dir);
  return dir.string();
}

std::string default_database_url() { return "sqlite:///" + data_dir() + "/pods.db"; }

}  // namespace pw::server

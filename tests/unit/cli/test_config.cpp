// Unit tests for cli/config.cpp: precedence, profiles, TOML errors, permission warning.
#include <doctest/doctest.h>

#include "cli/cli_error.hpp"
#include "cli/config.hpp"
#include "cli/exit_codes.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

using namespace pw::cli;
namespace fs = std::filesystem;

namespace {

struct TempFile {
  fs::path dir;
  fs::path path;
  explicit TempFile(const std::string& text, mode_t mode = 0600) {
    char tmpl[] = "/tmp/pw-cli-config.XXXXXX";
    dir = ::mkdtemp(tmpl);
    path = dir / ".podwrangler.toml";
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
  }
  ~TempFile() { fs::remove_all(dir); }
};

struct FakeEnv {
  std::map<std::string, std::string> vars;
  EnvLookup lookup() const {
    return [this](const char* n) -> const char* {
      auto it = vars.find(n);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  }
};

std::string error_of(const std::string& text) {
  TempFile f(text);
  try {
    load_config_file(f.path.string());
  } catch (const CliError& e) {
    CHECK(e.exit_code() == exit_code::config);
    std::string m = e.what();
    CHECK(m.find('\n') == std::string::npos);
    // the temp path is replaced by FILE for readable expectations
    auto p = m.find(f.path.string());
    if (p != std::string::npos) m.replace(p, f.path.string().size(), "FILE");
    return m;
  }
  return "no error";
}

}  // namespace

TEST_CASE("config: no file, no env: the default URL and table output") {
  FakeEnv env;
  auto file = load_config_file("/nonexistent/dir/.podwrangler.toml");
  CHECK_FALSE(file.exists);
  auto r = resolve_config({}, env.lookup(), file);
  CHECK(r.api_url == "http://127.0.0.1:8000");
  CHECK(r.api_url_source == "default");
  CHECK(r.api_key.empty());
  CHECK(r.output == "table");
  CHECK(r.warnings.empty());
}

TEST_CASE("config: path from PODWRANGLER_CONFIG, else $HOME") {
  FakeEnv env;
  CHECK(config_path(env.lookup()).empty());
  env.vars["HOME"] = "/home/u";
  CHECK(config_path(env.lookup()) == "/home/u/.podwrangler.toml");
  env.vars["PODWRANGLER_CONFIG"] = "/etc/pw.toml";
  CHECK(config_path(env.lookup()) == "/etc/pw.toml");
}

TEST_CASE("config: precedence flag > env > profile > file > default") {
  TempFile f(R"(
api_url = "http://file:1"
api_key = "file-key"
output = "plain"
[profiles.staging]
api_url = "http://staging:2"
output = "json"
[profiles.keyed]
api_key = "profile-key"
)");
  auto file = load_config_file(f.path.string());
  CHECK(file.exists);
  FakeEnv env;
  auto r = resolve_config({}, env.lookup(), file);
  CHECK(r.api_url == "http://file:1");
  CHECK(r.api_url_source == f.path.string());
  CHECK(r.api_key == "file-key");
  CHECK(r.output == "plain");

  r = resolve_config({"", "", "staging"}, env.lookup(), file);
  CHECK(r.api_url == "http://staging:2");
  CHECK(r.output == "json");
  CHECK(r.api_key == "file-key");  // not in the profile: the top-level value

  env.vars["PODWRANGLER_PROFILE"] = "keyed";
  r = resolve_config({}, env.lookup(), file);
  CHECK(r.profile == "keyed");
  CHECK(r.api_key == "profile-key");
  CHECK(r.api_url == "http://file:1");
  r = resolve_config({"", "", "staging"}, env.lookup(), file);  // --profile beats the env
  CHECK(r.profile == "staging");

  env.vars["PODWRANGLER_API_URL"] = "http://env:3";
  env.vars["PODWRANGLER_API_KEY"] = "env-key";
  env.vars["PODWRANGLER_OUTPUT"] = "ndjson";
  r = resolve_config({}, env.lookup(), file);
  CHECK(r.api_url == "http://env:3");
  CHECK(r.api_url_source == "PODWRANGLER_API_URL");
  CHECK(r.api_key == "env-key");
  CHECK(r.output == "ndjson");

  r = resolve_config({"http://flag:4", "table", ""}, env.lookup(), file);
  CHECK(r.api_url == "http://flag:4");
  CHECK(r.api_url_source == "--api-url");
  CHECK(r.output == "table");
}

TEST_CASE("config: unknown profile is a config error naming the known ones") {
  TempFile f("[profiles.a]\napi_url = \"http://a:1\"\n[profiles.b]\n");
  auto file = load_config_file(f.path.string());
  FakeEnv env;
  try {
    resolve_config({"", "", "c"}, env.lookup(), file);
    FAIL("no error");
  } catch (const CliError& e) {
    CHECK(e.exit_code() == exit_code::config);
    CHECK(std::string(e.what()).find("unknown profile 'c'") != std::string::npos);
    CHECK(e.hint() == "known profiles: a, b");
  }
}

TEST_CASE("config: bad output values") {
  FakeEnv env;
  ConfigFile none;
  env.vars["PODWRANGLER_OUTPUT"] = "yaml";
  CHECK_THROWS_AS(resolve_config({}, env.lookup(), none), CliError);
  try {
    resolve_config({"", "xml", ""}, env.lookup(), none);
  } catch (const CliError& e) {
    CHECK(e.exit_code() == exit_code::usage);
  }
  CHECK(error_of("output = \"yaml\"\n") ==
        "FILE:1:10: output must be one of json, ndjson, table, plain, raw (got 'yaml')");
}

TEST_CASE("config: malformed TOML is one line with file, line, column and the problem") {
  CHECK(error_of("api_url = \"http://x\"\napi_key = \n").rfind("FILE:2:", 0) == 0);
  std::string m = error_of("api_url = \"unterminated\n");
  CHECK(m.rfind("FILE:1:", 0) == 0);
  CHECK(m.size() > 10);
  m = error_of("[profiles.a]\napi_url = \"x\"\n[profiles.a]\n");
  CHECK(m.rfind("FILE:3:", 0) == 0);
}

TEST_CASE("config: wrong value types name the key and position") {
  CHECK(error_of("api_url = 8000\n") == "FILE:1:11: api_url must be a string");
  CHECK(error_of("[profiles.x]\napi_key = true\n") == "FILE:2:11: profiles.x.api_key must be a string");
  CHECK(error_of("profiles = 3\n") == "FILE:1:12: profiles must be a table");
}

TEST_CASE("config: unknown keys are warnings, not errors") {
  TempFile f("api_url = \"http://x:1\"\ncolour = true\n");
  auto file = load_config_file(f.path.string());
  REQUIRE(file.warnings.size() == 1);
  CHECK(file.warnings[0] == f.path.string() + ":2:10: unknown key 'colour' (ignored)");
}

TEST_CASE("config: a key in a file others can read gets a warning") {
  FakeEnv env;
  {
    TempFile f("api_key = \"0123456789abcdef\"\n", 0644);
    auto r = resolve_config({}, env.lookup(), load_config_file(f.path.string()));
    REQUIRE(r.warnings.size() == 1);
    CHECK(r.warnings[0].find("readable by other users") != std::string::npos);
    CHECK(r.warnings[0].find("chmod 600") != std::string::npos);
    CHECK(r.warnings[0].find("0123456789abcdef") == std::string::npos);
  }
  {
    TempFile f("api_key = \"0123456789abcdef\"\n", 0600);
    CHECK(resolve_config({}, env.lookup(), load_config_file(f.path.string())).warnings.empty());
  }
  {
    TempFile f("api_url = \"http://x:1\"\n", 0644);  // no key: nothing to protect
    CHECK(resolve_config({}, env.lookup(), load_config_file(f.path.string())).warnings.empty());
  }
}

#include "cli/config.hpp"

#include "cli/cli_error.hpp"
#include "cli/exit_codes.hpp"

#include <toml++/toml.h>

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace pw::cli {

namespace {

std::string where(const std::string& path, const toml::source_region& src) {
  return path + ":" + std::to_string(src.begin.line) + ":" + std::to_string(src.begin.column);
}

void read_values(const std::string& path, const toml::table& t, ConfigValues& out, ConfigFile& file,
                 const std::string& prefix, bool allow_profiles) {
  for (const auto& entry : t) {
    // Not a structured binding: a lambda may not capture one before C++20's P1091, which
    // clang-tidy's clang 14 does not implement.
    const toml::node& node = entry.second;
    std::string key(entry.first.str());
    auto string_value = [&](std::optional<std::string>& slot) {
      if (!node.is_string())
        throw CliError(exit_code::config, where(path, node.source()) + ": " + prefix + key + " must be a string");
      slot = std::string(*node.as_string());
    };
    if (key == "api_url") {
      string_value(out.api_url);
    } else if (key == "api_key") {
      string_value(out.api_key);
      file.holds_key = true;
    } else if (key == "output") {
      string_value(out.output);
      if (!valid_output_format(*out.output))
        throw CliError(exit_code::config, where(path, node.source()) + ": " + prefix +
                                              "output must be one of json, ndjson, table, plain, raw "
                                              "(got '" +
                                              *out.output + "')");
    } else if (key == "profiles" && allow_profiles) {
      if (!node.is_table())
        throw CliError(exit_code::config, where(path, node.source()) + ": profiles must be a table");
      for (const auto& [pname, pnode] : *node.as_table()) {
        std::string name(pname.str());
        if (!pnode.is_table())
          throw CliError(exit_code::config, where(path, pnode.source()) + ": profiles." + name +
                                                " must be a table ([profiles." + name + "])");
        read_values(path, *pnode.as_table(), file.profiles[name], file, "profiles." + name + ".", false);
      }
    } else {
      file.warnings.push_back(where(path, node.source()) + ": unknown key '" + prefix + key + "' (ignored)");
    }
  }
}

}  // namespace

bool valid_output_format(const std::string& s) {
  return s == "json" || s == "ndjson" || s == "table" || s == "plain" || s == "raw";
}

std::string config_path(const EnvLookup& env) {
  if (const char* p = env("PODWRANGLER_CONFIG"); p && *p) return p;
  if (const char* h = env("HOME"); h && *h) return std::string(h) + "/.podwrangler.toml";
  return {};
}

ConfigFile load_config_file(const std::string& path) {
  ConfigFile file;
  file.path = path;
  if (path.empty()) return file;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return file;
    throw CliError(exit_code::config, "cannot read " + path + ": " + std::strerror(errno));
  }
  file.exists = true;
  file.readable_by_others = (st.st_mode & (S_IRGRP | S_IROTH)) != 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CliError(exit_code::config, "cannot read " + path + ": " + std::strerror(errno));
  std::stringstream buf;
  buf << in.rdbuf();
  std::string text = buf.str();
  toml::table t;
  try {
    t = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    std::string desc(e.description());
    for (char& c : desc)
      if (c == '\n' || c == '\r') c = ' ';
    throw CliError(exit_code::config, where(path, e.source()) + ": " + desc);
  }
  read_values(path, t, file.top, file, "", true);
  return file;
}

ResolvedConfig resolve_config(const Overrides& flags, const EnvLookup& env, const ConfigFile& file) {
  ResolvedConfig r;
  r.warnings = file.warnings;
  auto envs = [&](const char* name) -> std::string {
    const char* v = env(name);
    return v ? std::string(v) : std::string();
  };

  r.profile = !flags.profile.empty() ? flags.profile : envs("PODWRANGLER_PROFILE");
  const ConfigValues* prof = nullptr;
  if (!r.profile.empty()) {
    auto it = file.profiles.find(r.profile);
    if (it == file.profiles.end()) {
      std::string known;
      for (const auto& [name, _] : file.profiles) known += (known.empty() ? "" : ", ") + name;
      throw CliError(
          exit_code::config,
          "unknown profile '" + r.profile + "'" +
              (file.exists ? " in " + file.path
                           : std::string(" (no config file at ") +
                                 (file.path.empty() ? "~/.podwrangler.toml" : file.path) + ")"),
          known.empty() ? std::string("define it as [profiles.") + r.profile + "]" : "known profiles: " + known);
    }
    prof = &it->second;
  }
  auto from_file = [&](std::optional<std::string> ConfigValues::*field) -> std::optional<std::string> {
    if (prof && (prof->*field)) return prof->*field;
    if (file.top.*field) return file.top.*field;
    return std::nullopt;
  };

  if (!flags.api_url.empty()) {
    r.api_url = flags.api_url;
    r.api_url_source = "--api-url";
  } else if (std::string e = envs("PODWRANGLER_API_URL"); !e.empty()) {
    r.api_url = e;
    r.api_url_source = "PODWRANGLER_API_URL";
  } else if (auto f = from_file(&ConfigValues::api_url)) {
    r.api_url = *f;
    r.api_url_source = file.path;
  } else {
    r.api_url = kDefaultApiUrl;
    r.api_url_source = "default";
  }

  if (std::string e = envs("PODWRANGLER_API_KEY"); !e.empty())
    r.api_key = e;
  else if (auto f = from_file(&ConfigValues::api_key))
    r.api_key = *f;

  if (!flags.output.empty()) {
    if (!valid_output_format(flags.output))
      throw CliError(exit_code::usage,
                     "--output must be one of json, ndjson, table, plain, raw (got '" + flags.output + "')");
    r.output = flags.output;
  } else if (std::string e = envs("PODWRANGLER_OUTPUT"); !e.empty()) {
    if (!valid_output_format(e))
      throw CliError(exit_code::config,
                     "PODWRANGLER_OUTPUT must be one of json, ndjson, table, plain, raw (got '" + e + "')");
    r.output = e;
  } else if (auto f = from_file(&ConfigValues::output)) {
    r.output = *f;
  } else {
    r.output = "table";
  }

  if (file.holds_key && file.readable_by_others)
    r.warnings.push_back(file.path + " holds an api_key and is readable by other users (chmod 600 " + file.path + ")");
  return r;
}

}  // namespace pw::cli

#pragma once
// ~/.podwrangler.toml and the precedence of the CLI's settings:
//   api_url: --api-url/-u > PODWRANGLER_API_URL > [profiles.<p>].api_url > api_url > default
//   api_key: PODWRANGLER_API_KEY > [profiles.<p>].api_key > api_key
//   output:  --output/--json > PODWRANGLER_OUTPUT > [profiles.<p>].output > output > "table"
//   profile: --profile > PODWRANGLER_PROFILE
// The file is $PODWRANGLER_CONFIG when set, else $HOME/.podwrangler.toml.
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pw::cli {

inline constexpr const char* kDefaultApiUrl = "http://127.0.0.1:8000";

struct ConfigValues {
  std::optional<std::string> api_url, api_key, output;
};

struct ConfigFile {
  std::string path;
  bool exists = false;
  ConfigValues top;
  std::map<std::string, ConfigValues> profiles;
  bool holds_key = false;             // api_key anywhere in the file
  bool readable_by_others = false;    // group/other permission bits set
  std::vector<std::string> warnings;  // unknown keys: "FILE:L:C: unknown key 'x' (ignored)"
};

// Parses `path`; a missing file gives exists=false. Throws CliError(config) with one line
// "FILE:LINE:COL: problem" for malformed TOML or a value of the wrong type.
ConfigFile load_config_file(const std::string& path);

using EnvLookup = std::function<const char*(const char*)>;

// The config file path for an environment: $PODWRANGLER_CONFIG, else $HOME/.podwrangler.toml
// ("" when neither is set).
std::string config_path(const EnvLookup& env);

struct Overrides {  // from the command line; empty = not given
  std::string api_url, output, profile;
};

struct ResolvedConfig {
  std::string api_url;
  std::string api_url_source;  // "--api-url", "PODWRANGLER_API_URL", "FILE", "default"
  std::string api_key;
  std::string output;  // json|ndjson|table|plain|raw
  std::string profile;
  std::vector<std::string> warnings;  // to print on stderr as "warning: …"
};

// Applies the precedence above. Throws CliError(config) for an unknown profile or an
// invalid output value from the environment or file, CliError(usage) for a bad flag value.
ResolvedConfig resolve_config(const Overrides& flags, const EnvLookup& env, const ConfigFile& file);

bool valid_output_format(const std::string& s);

}  // namespace pw::cli

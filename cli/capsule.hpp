#pragma once
// `capsule`: sandboxes on a container engine, through /api/v1/capsules. Three files, one
// concern each: capsule.cpp (the group and the lifecycle: create, get-or-create, list,
// show, destroy, pause, resume, stop, start, ping, set-timeout, events), capsule_exec.cpp
// (exec, run, ps, kill) and capsule_files.cpp (upload, download, ls, mkdir, rm, stat). What
// they share is here.
#include "cli/api_client.hpp"

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace pw::cli {

class CommandContext;

// Type name of a capsule id argument (cap-…), for the completer and the man page.
inline constexpr const char* kCapsuleType = "CAPSULE";

void add_capsule_exec_commands(CLI::App* group, CommandContext& ctx);  // capsule_exec.cpp
void add_capsule_file_commands(CLI::App* group, CommandContext& ctx);  // capsule_files.cpp

// "/api/v1/capsules/<id>", the id percent-encoded.
std::string capsule_path(const std::string& id);

// Throws the CliError for an error answer of a capsule request. A capsule_not_found answer
// (ApiReply::is: a 404 of a route that does not exist is raised like any other error) is
// exit 68 with the server's words, which say what was not found (the capsule, a file, a
// process).
[[noreturn]] void raise_capsule_error(ApiClient& api, const ApiReply& r);

// One request whose success is one of `ok` statuses and whose body fits `contract` (when
// given); any other answer throws through raise_capsule_error.
nlohmann::json capsule_call(ApiClient& api, const std::string& method, const std::string& path,
                            const nlohmann::json* body, std::initializer_list<int> ok,
                            ApiClient::Contract contract = nullptr);

// The spec options of create, get-or-create and run (the API's CapsuleSpec fields).
struct SpecOptions {
  std::string image, template_name, network, owner, session, on_expire;
  double vcpus = 0;
  long long memory_mb = 0, timeout = -1, lifetime = -1;
  std::vector<std::string> env, mounts, labels;
  std::vector<int> ports;
  bool workspace = false, rm_at_end = false, no_auto_resume = false;
};
// Declares them on `cmd` (--image, --template, --vcpus, --memory, --timeout, …).
void add_spec_options(CLI::App* cmd, SpecOptions& o, bool with_timeout = true);
// The request fields for the options given; a usage error (exit 64) for malformed
// KEY=VALUE or HOST:PATH[:ro] items.
nlohmann::json spec_body(const SpecOptions& o);
// --env K=V items as an object (usage error for an item without '=' or name).
std::map<std::string, std::string> parse_env_items(const std::vector<std::string>& items);

// The exact bytes of `name` in an API object: name_b64 decoded when present, else name.
std::string exact_bytes(const ApiClient& api, const std::string& request, const nlohmann::json& j,
                        const std::string& name);

// The shapes of the capsule answers: "" when `j` fits, else what is wrong.
namespace contract {
std::string capsule(const nlohmann::json& j);       // {"id","state","spec",…}
std::string capsule_list(const nlohmann::json& j);  // [capsule…]
std::string exec_result(const nlohmann::json& j);   // {"stdout","stderr","exit_code",…}
std::string exec_event(const nlohmann::json& j);    // {"event":"start"|"stdout"|"stderr"|"exit"|"error",…}
std::string file_stat(const nlohmann::json& j);     // {"path","name","type","size",…}
std::string file_list(const nlohmann::json& j);     // [stat…]
std::string process_list(const nlohmann::json& j);  // [{"pid","argv",…}…]
std::string event_list(const nlohmann::json& j);    // [{"seq","at_ms","from","to",…}…]
}  // namespace contract

}  // namespace pw::cli

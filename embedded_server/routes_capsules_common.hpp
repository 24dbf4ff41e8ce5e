#pragma once
// What the capsule route files share (routes_capsules.cpp, routes_capsules_exec.cpp,
// routes_capsules_files.cpp): request fields → the library's records, records → the API's
// JSON, and the checks every capsule route makes first.
#include "embedded_server/httplib_fwd.hpp"

#include <podwrangler/capsules/manager.hpp>
#include <podwrangler/capsules/model.hpp>

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pw::server {

struct ServerState;

// The capsule id of the path (match 1): an id that cannot exist is simply not found (404
// capsule_not_found), like an alias of the pod routes.
std::string path_capsule_id(const httplib::Request& req, int match = 1);

// The manager; 503 engine_unavailable when capsules are off or the engine is unreachable,
// 503 shutting_down once the server stops accepting work.
capsules::CapsuleManager& capsule_manager(ServerState& ctx);
std::shared_ptr<capsules::CapsuleManager> shared_capsule_manager(ServerState& ctx);

// A POST that takes no fields: no body, or a JSON object without fields ("{}").
void expect_empty_body(const httplib::Request& req);

// 422 naming the first key of `body` outside both lists.
void reject_unknown_keys(const nlohmann::json& body, const std::vector<std::string_view>& allowed,
                         const std::vector<std::string_view>& more = {});

// The fields of a CapsuleSpec (the names model.cpp gives them).
extern const std::vector<std::string_view> kSpecFields;
// A CapsuleSpec from the request fields, each checked (422 naming the field). Fields in
// `skip` are left to the caller (capsule run: timeout_sec is the command's).
capsules::CapsuleSpec parse_capsule_spec(const nlohmann::json& body, const std::vector<std::string_view>& skip = {});

// Exec fields: "argv" (an array) or "cmd" (a string run by /bin/sh -c), env, cwd, stdin,
// and timeout_sec when `with_timeout` (default 30 s).
inline constexpr double kDefaultExecTimeout = 30.0;
inline constexpr double kMaxExecTimeout = 86400.0;
capsules::ExecRequest parse_exec_request(const nlohmann::json& body, bool with_timeout, std::size_t max_len);

// An env object: names [A-Za-z_][A-Za-z0-9_]* (at most 256), string values without NUL.
std::map<std::string, std::string> parse_env(const nlohmann::json& j, const std::string& field);
// An absolute path inside a capsule (no NUL or control byte, at most 4096 bytes).
std::string check_capsule_path(const std::string& path, const std::string& field);

// A capsule as the API shows it: the record's JSON (model.cpp) with env values hidden.
nlohmann::json capsule_json(const capsules::CapsuleRecord& rec);
// An exec result: stdout/stderr as text when they are UTF-8, else a lossy text and the
// exact bytes in stdout_b64/stderr_b64; with what the manager did first.
nlohmann::json exec_result_json(const capsules::CapsuleExecResult& r);
// Output bytes as the fields `name` (text) and `name`_b64 (exact bytes, when not UTF-8).
void put_bytes(nlohmann::json& j, const std::string& name, const std::string& bytes);

}  // namespace pw::server

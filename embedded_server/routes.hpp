#pragma once
// What every route file shares: the server's context and one add_*_routes per resource.
#include "embedded_server/settings.hpp"
#include "embedded_server/store/store.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <string>

namespace pw::server {

class Router;

class SessionPool;
class ServerLoop;
class CapsuleService;

struct ServerState {
  Settings settings;
  std::unique_ptr<Store> store;
  ServerLoop* runtime = nullptr;  // io_context thread + in-flight command tracking
  SessionPool* pool = nullptr;
  CapsuleService* capsules = nullptr;  // the capsule manager (capsule_service.hpp)
  std::string server_id;               // "host:pid:start-ms", owner of the rows it starts
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

// A history row / command result as the API shows it.
nlohmann::json command_json(const CommandRecord& c);

void add_health_routes(Router& http, ServerState& ctx);
void add_pod_routes(Router& http, ServerState& ctx);
void add_exec_routes(Router& http, ServerState& ctx);
void add_command_routes(Router& http, ServerState& ctx);
// /api/v1/capsules: lifecycle (routes_capsules.cpp), exec, run and processes
// (routes_capsules_exec.cpp), files (routes_capsules_files.cpp).
void add_capsule_routes(Router& http, ServerState& ctx);
void add_capsule_exec_routes(Router& http, ServerState& ctx);
void add_capsule_file_routes(Router& http, ServerState& ctx);
// GET /openapi.json, GET /docs and its assets (embedded at build time).
void add_docs_routes(Router& http, ServerState& ctx);

}  // namespace pw::server

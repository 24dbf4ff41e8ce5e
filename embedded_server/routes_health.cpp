// GET /health: liveness, version, database reachability, uptime. Never needs auth.
#include "embedded_server/http_server.hpp"
#include "embedded_server/http_util.hpp"
#include "embedded_server/routes.hpp"
#include "embedded_server/server_loop.hpp"

#include <httplib.h>

namespace pw::server {

void add_health_routes(Router& http, ServerState& ctx) {
  http.Get("/health/?", [&ctx](const httplib::Request&, httplib::Response& res) {
    bool db_ok = ctx.store->ping();
    bool draining = ctx.runtime && ctx.runtime->draining();
    double uptime = std::chrono::duration<double>(std::chrono::steady_clock::now() - ctx.started).count();
    nlohmann::json body = {
        {"status", draining ? "stopping" : (db_ok ? "ok" : "degraded")},
        {"version", PW_VERSION_STRING},
        {"database", {{"kind", ctx.store->kind()}, {"reachable", db_ok}}},
        {"uptime", uptime},
    };
    send_json(res, db_ok && !draining ? 200 : 503, body);
  });
}

}  // namespace pw::server

// /api/v1/capsules: create, get-or-create, list, show, events, destroy (one, or all of an
// owner), pause, resume, stop, start, ping and the idle timeout. Every call goes through the
// CapsuleManager; its errors become answers through the error table (capsule_not_found 404,
// capsule_conflict 409, capsule_invalid 422, engine_unavailable 503, agent_error 502).
#include "embedded_server/http_server.hpp"
#include "embedded_server/http_util.hpp"
#include "embedded_server/routes.hpp"
#include "embedded_server/routes_capsules_common.hpp"

#include <podwrangler/errors.hpp>

#include <httplib.h>

namespace pw::server {
namespace {

using capsules::CapsuleManager;
using capsules::CapsuleRecord;

constexpr const char* kBase = "/api/v1/capsules";
// GET/DELETE /api/v1/capsules/{id}: any segment but the collection's own words, so that
// /get-or-create and /run keep POST as their only method (405 with the right Allow).
constexpr const char* kIdPath = "/api/v1/capsules/((?!(?:get-or-create|run)(?:/|$))[^/]+)/?";

void send_capsule(httplib::Response& res, int status, const CapsuleRecord& rec) {
  send_json(res, status, capsule_json(rec));
}

nlohmann::json capsule_array(const std::vector<CapsuleRecord>& recs) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& r : recs) arr.push_back(capsule_json(r));
  return arr;
}

void create(ServerState& ctx, const httplib::Request& req, httplib::Response& res) {
  auto body = parse_object_body(req);
  reject_unknown_keys(body, kSpecFields, {"wait"});
  capsules::CapsuleSpec spec = parse_capsule_spec(body);
  bool wait = optional_bool(body, "wait").value_or(true);
  CapsuleRecord rec = capsule_manager(ctx).create(std::move(spec), wait);
  res.set_header("Location", std::string(kBase) + "/" + rec.id);
  send_capsule(res, 201, rec);
}

// 201 when a capsule was made, 200 when the owner's session already had one.
void get_or_create(ServerState& ctx, const httplib::Request& req, httplib::Response& res) {
  auto body = parse_object_body(req);
  reject_unknown_keys(body, kSpecFields);
  capsules::CapsuleSpec spec = parse_capsule_spec(body);
  if (spec.owner.empty()) throw validation_error("owner", "is required (get-or-create finds owner + session)");
  if (spec.session.empty()) throw validation_error("session", "is required (get-or-create finds owner + session)");
  bool created = false;
  CapsuleRecord rec = capsule_manager(ctx).get_or_create(std::move(spec), &created);
  res.set_header("Location", std::string(kBase) + "/" + rec.id);
  send_capsule(res, created ? 201 : 200, rec);
}

void list(ServerState& ctx, const httplib::Request& req, httplib::Response& res) {
  reject_unknown_params(req, {"state", "owner", "session", "label", "limit"});
  capsules::CapsuleFilter f;
  if (auto st = query_param(req, "state")) {
    f.state = capsules::parse_state(*st);
    if (!f.state)
      throw validation_error("state", "must be one of starting, running, paused, stopped, destroyed, error");
    f.include_destroyed = *f.state == capsules::CapsuleState::destroyed;
  }
  if (auto o = query_param(req, "owner")) {
    if (!is_valid_alias(*o)) throw validation_error("owner", "'" + shown(*o) + "' is not a valid owner name");
    f.owner = *o;
  }
  if (auto s = query_param(req, "session")) {
    if (!is_valid_alias(*s)) throw validation_error("session", "'" + shown(*s) + "' is not a valid session name");
    f.session = *s;
  }
  for (const auto& item : query_params(req, "label")) {
    if (item.empty()) throw validation_error("label", "must be key=value");
    for (const auto& [k, v] : parse_selector(item, "label")) {
      // The same key=value twice asks the same; two values of one key can never both match.
      auto [at, fresh] = f.labels.emplace(k, v);
      if (!fresh && at->second != v)
        throw validation_error("label", "label key '" + shown(k) + "' given twice with different values");
    }
  }
  if (auto limit = query_param(req, "limit")) f.limit = static_cast<int>(parse_integer(*limit, "limit", 1, 1000));
  send_json(res, 200, capsule_array(capsule_manager(ctx).list(f)));
}

void destroy_all(ServerState& ctx, const httplib::Request& req, httplib::Response& res) {
  reject_unknown_params(req, {"owner"});
  auto owner = query_param(req, "owner");
  if (!owner || owner->empty())
    throw validation_error("owner", "is required: DELETE /api/v1/capsules?owner=NAME destroys that owner's capsules");
  if (!is_valid_alias(*owner)) throw validation_error("owner", "'" + shown(*owner) + "' is not a valid owner name");
  auto ids = capsule_manager(ctx).destroy_all(*owner);
  send_json(res, 200, {{"owner", *owner}, {"destroyed", ids}});
}

void events(ServerState& ctx, const httplib::Request& req, httplib::Response& res) {
  reject_unknown_params(req, {"limit"});
  int limit = 0;
  if (auto l = query_param(req, "limit")) limit = static_cast<int>(parse_integer(*l, "limit", 1, 10000));
  std::string id = path_capsule_id(req);
  auto evs = capsule_manager(ctx).events(id, limit);
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& e : evs) arr.push_back(e);
  send_json(res, 200, arr);
}

// POST …/{id}/pause|resume|stop|start|ping: no fields; the capsule as it is afterwards.
void transition(ServerState& ctx, const httplib::Request& req, httplib::Response& res) {
  expect_empty_body(req);
  std::string id = path_capsule_id(req);
  const std::string verb = req.matches[2];
  CapsuleManager& m = capsule_manager(ctx);
  CapsuleRecord rec;
  if (verb == "pause")
    rec = m.pause(id);
  else if (verb == "resume")
    rec = m.resume(id);
  else if (verb == "stop")
    rec = m.stop(id);
  else if (verb == "start")
    rec = m.start(id);
  else
    rec = m.ping(id);
  send_capsule(res, 200, rec);
}

void set_timeout(ServerState& ctx, const httplib::Request& req, httplib::Response& res) {
  auto body = parse_object_body(req);
  reject_unknown_fields(body, {"timeout_sec"});
  auto secs = optional_int(body, "timeout_sec", 0, 30L * 86400);
  if (!secs) throw validation_error("timeout_sec", "is required (seconds of idleness, 0 = never)");
  std::string id = path_capsule_id(req);
  send_capsule(res, 200, capsule_manager(ctx).set_timeout(id, *secs));
}

}  // namespace

void add_capsule_routes(Router& http, ServerState& ctx) {
  auto route = [&ctx](void (*fn)(ServerState&, const httplib::Request&, httplib::Response&)) {
    return [&ctx, fn](const httplib::Request& req, httplib::Response& res) { fn(ctx, req, res); };
  };
  http.Post("/api/v1/capsules/?", route(create));
  http.Get("/api/v1/capsules/?", route(list));
  http.Delete("/api/v1/capsules/?", route(destroy_all));
  http.Post("/api/v1/capsules/get-or-create/?", route(get_or_create));
  http.Get(kIdPath, [&ctx](const httplib::Request& req, httplib::Response& res) {
    reject_unknown_params(req, {});
    std::string id = path_capsule_id(req);
    send_capsule(res, 200, capsule_manager(ctx).get(id));
  });
  // Idempotent: a destroyed capsule answers 200 with its record again.
  http.Delete(kIdPath, [&ctx](const httplib::Request& req, httplib::Response& res) {
    reject_unknown_params(req, {});
    std::string id = path_capsule_id(req);
    send_capsule(res, 200, capsule_manager(ctx).destroy(id));
  });
  http.Get("/api/v1/capsules/([^/]+)/events/?", route(events));
  http.Post("/api/v1/capsules/([^/]+)/(pause|resume|stop|start|ping)/?", route(transition));
  http.Put("/api/v1/capsules/([^/]+)/timeout/?", route(set_timeout));
  http.Post("/api/v1/capsules/([^/]+)/timeout/?", route(set_timeout));
}

}  // namespace pw::server

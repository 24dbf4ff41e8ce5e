// /api/v1/commands: the command history, newest first, with filters and a cursor.
#include "embedded_server/http_util.hpp"
#include "embedded_server/http_server.hpp"
#include "embedded_server/routes.hpp"

#include <podwrangler/model.hpp>

#include <httplib.h>

namespace pw::server {

nlohmann::json command_json(const CommandRecord& c) {
  return {{"id", c.id},
          {"alias", c.alias},
          {"command", c.command},
          {"status", c.status},
          {"exit_code", c.exit_code ? nlohmann::json(*c.exit_code) : nlohmann::json(nullptr)},
          {"output", c.output},
          {"error", c.error ? nlohmann::json(*c.error) : nlohmann::json(nullptr)},
          {"duration", c.duration},
          {"truncated", c.truncated},
          {"pod_label", c.pod_label},
          {"started_at", c.started_at},
          {"finished_at", c.finished_at ? nlohmann::json(*c.finished_at) : nlohmann::json(nullptr)}};
}

namespace {

long parse_long(const std::string& text, const char* field, long min, long max) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || v < min || v > max)
    throw validation_error(field, "must be an integer " + std::to_string(min) + "-" + std::to_string(max));
  return v;
}

}  // namespace

void add_command_routes(Router& http, Context& ctx) {
  http.Get("/api/v1/commands/?", [&ctx](const httplib::Request& req, httplib::Response& res) {
    CommandFilter f;
    if ((f.alias = query_param(req, "alias"))) check_alias(*f.alias);
    if ((f.status = query_param(req, "status"))) {
      if (!is_valid_status(*f.status))
        throw validation_error("status", "must be one of running, succeeded, failed, timeout, error, interrupted");
    }
    if (auto since = query_param(req, "since")) {
      f.since = normalize_time(*since);
      if (!f.since) throw validation_error("since", "must be an RFC 3339 time or unix seconds");
    }
    if (auto limit = query_param(req, "limit")) f.limit = static_cast<int>(parse_long(*limit, "limit", 1, 1000));
    if (auto before = query_param(req, "before"))
      f.before_id = parse_long(*before, "before", 1, std::numeric_limits<long>::max());
    auto rows = ctx.store->list_commands(f);
    nlohmann::json items = nlohmann::json::array();
    for (const auto& c : rows) items.push_back(command_json(c));
    nlohmann::json next = nullptr;
    if (static_cast<int>(rows.size()) == f.limit && !rows.empty()) next = rows.back().id;
    send_json(res, 200, {{"items", std::move(items)}, {"next_before", next}});
  });

  http.Get("/api/v1/commands/([^/]+)/?", [&ctx](const httplib::Request& req, httplib::Response& res) {
    std::string text = req.matches[1];
    char* end = nullptr;
    long id = std::strtol(text.c_str(), &end, 10);
    std::optional<CommandRecord> c;
    if (!text.empty() && *end == '\0' && id > 0) c = ctx.store->get_command(id);
    if (!c) throw HttpError(404, "command_not_found", "no command with id '" + text.substr(0, 32) + "'");
    send_json(res, 200, command_json(*c));
  });
}

}  // namespace pw::server

// /api/v1/commands: the command history, newest first, with filters and a cursor.
#include "embedded_server/http_server.hpp"
#include "embedded_server/http_util.hpp"
#include "embedded_server/routes.hpp"

#include <podwrangler/model.hpp>

#include <httplib.h>

#include <cstdint>
#include <limits>

namespace pw::server {

nlohmann::json command_json(const CommandRecord& c) {
  nlohmann::json j = {{"id", c.id},
                      {"alias", c.alias},
                      {"command", c.command},
                      {"status", to_string(c.status)},
                      {"exit_code", c.exit_code ? nlohmann::json(*c.exit_code) : nlohmann::json(nullptr)},
                      {"error", c.error ? nlohmann::json(*c.error) : nlohmann::json(nullptr)},
                      {"duration", c.duration},
                      {"truncated", c.truncated},
                      {"pod_label", c.pod_label},
                      {"started_at", c.started_at},
                      {"finished_at", c.finished_at ? nlohmann::json(*c.finished_at) : nlohmann::json(nullptr)}};
  // Bytes stay faithful: valid UTF-8 (NUL included, as \u0000) passes as it is; anything
  // else gets a readable lossy `output` (U+FFFD per bad byte) and the exact bytes in
  // `output_b64`. Nothing is dropped here, so `truncated` stays the session's own.
  if (is_valid_utf8(c.output)) {
    j["output"] = c.output;
  } else {
    j["output"] = utf8_lossy(c.output);
    j["output_b64"] = base64_encode(c.output);
  }
  return j;
}

void add_command_routes(Router& http, ServerState& ctx) {
  http.Get("/api/v1/commands/?", [&ctx](const httplib::Request& req, httplib::Response& res) {
    reject_unknown_params(req, {"alias", "status", "since", "limit", "before"});
    CommandFilter f;
    if ((f.alias = query_param(req, "alias"))) check_alias(*f.alias);
    if (auto status = query_param(req, "status")) {
      f.status = command_status_from_string(*status);
      if (!f.status) throw validation_error("status", "must be one of " + command_status_names());
    }
    if (auto since = query_param(req, "since")) {
      f.since = normalize_time(*since);
      if (!f.since) throw validation_error("since", "must be an RFC 3339 time or unix seconds");
    }
    if (auto limit = query_param(req, "limit")) f.limit = static_cast<int>(parse_integer(*limit, "limit", 1, 1000));
    if (auto before = query_param(req, "before"))
      f.before_id = parse_integer(*before, "before", 1, std::numeric_limits<std::int64_t>::max());
    auto rows = ctx.store->list_commands(f);
    nlohmann::json items = nlohmann::json::array();
    for (const auto& c : rows) items.push_back(command_json(c));
    nlohmann::json next = nullptr;
    if (static_cast<int>(rows.size()) == f.limit && !rows.empty()) next = rows.back().id;
    send_json(res, 200, {{"items", std::move(items)}, {"next_before", next}});
  });

  http.Get("/api/v1/commands/([^/]+)/?", [&ctx](const httplib::Request& req, httplib::Response& res) {
    std::string text = req.matches[1];
    // The whole segment is the id ("5%00abc" and " 5" name no command, not command 5).
    std::optional<std::int64_t> id;
    try {
      id = parse_integer(text, "id", 1, std::numeric_limits<std::int64_t>::max());
    } catch (const HttpError&) {
      // Not an id at all: no such command.
    }
    std::optional<CommandRecord> c;
    if (id) c = ctx.store->get_command(*id);
    if (!c) throw HttpError(ErrorKind::command_not_found, "no command with id '" + shown(text, 32) + "'");
    send_json(res, 200, command_json(*c));
  });
}

}  // namespace pw::server

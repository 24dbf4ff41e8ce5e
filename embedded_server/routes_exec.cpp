// Running commands: POST /api/v1/pods/{alias}/exec (one pod), POST /api/v1/exec (fan-out,
// results in request order) and POST /api/v1/exec/stream (NDJSON events as pods finish).
// Each command is recorded `running` before it starts and completed after.
#include "embedded_server/http_server.hpp"
#include "embedded_server/http_util.hpp"
#include "embedded_server/pool.hpp"
#include "embedded_server/routes.hpp"
#include "embedded_server/server_loop.hpp"

#include <podwrangler/errors.hpp>
#include <podwrangler/provider.hpp>
#include <podwrangler/redact.hpp>
#include <podwrangler/registry.hpp>

#include <httplib.h>

#include <condition_variable>
#include <deque>
#include <iostream>
#include <mutex>
#include <set>

namespace pw::server {
namespace {

constexpr double kMaxTimeout = 86400.0;
constexpr std::size_t kMaxAliases = 10000;

struct Prepared {
  std::string alias;
  PodEndpoint endpoint;
  std::string fingerprint;
};

Prepared prepare(const PodRecord& pod) {
  auto provider = ProviderCatalog::instance().get(pod.provider);
  if (!provider)
    throw PodConfigValidationError("provider", "pod '" + pod.alias + "' uses unknown provider '" + pod.provider + "'");
  return Prepared{pod.alias, endpoint_from_url(pod.url.reveal(), provider),
                  session_fingerprint(pod.provider, pod.url.reveal())};
}

void ensure_accepting(const ServerState& ctx) {
  if (ctx.runtime->draining())
    throw HttpError(ErrorKind::shutting_down, "the server is shutting down; try again shortly");
}

CommandRecord finished_record(std::int64_t id, const std::string& alias, const std::string& started_at,
                              const ExecOutcome& o, const ServerState& ctx) {
  CommandRecord r;
  r.id = id;
  r.alias = alias;
  r.command = o.result.command;
  r.status = o.status;
  if (o.status == CommandStatus::succeeded || o.status == CommandStatus::failed) r.exit_code = o.result.exit_code;
  r.output = o.result.output;
  if (o.result.error) r.error = redact_text(*o.result.error);
  if (ctx.runtime->hard_stopped() && o.status == CommandStatus::error) {
    // Aborted by the shutdown, or never started because of it.
    r.status = CommandStatus::interrupted;
    r.error = "the server shut down before the command finished";
  }
  r.duration = o.result.duration;
  r.truncated = o.result.truncated;
  r.pod_label = o.result.pod_label;
  r.started_at = started_at;
  r.finished_at = now_rfc3339();
  r.server_id = ctx.server_id;
  return r;
}

void record_finish(ServerState& ctx, const CommandRecord& r) {
  try {
    ctx.store->finish_command(r);
  } catch (const std::exception& e) {
    // The row stays `running`: truthful (we could not record the end), never lost.
    std::cerr << "podwrangler serve: could not record the end of command " << r.id << ": " << e.what() << "\n";
  }
}

// ---- one pod ---------------------------------------------------------------------

void exec_one(ServerState& ctx, const httplib::Request& req, httplib::Response& res) {
  std::string alias = req.matches[1];
  if (!is_valid_alias(alias)) throw PodNotFoundError(shown(alias));
  auto body = parse_object_body(req);
  reject_unknown_fields(body, {"command", "timeout", "check"});
  std::string command = required_string(body, "command", ctx.settings.max_body_bytes);
  double timeout = optional_seconds(body, "timeout", kMaxTimeout).value_or(DEFAULT_COMMAND_TIMEOUT);
  bool check = optional_bool(body, "check").value_or(false);
  ensure_accepting(ctx);
  auto pod = ctx.store->get_pod(alias);
  if (!pod) throw PodNotFoundError(alias);
  Prepared p = prepare(*pod);

  ServerLoop::InFlight guard(*ctx.runtime);
  std::string started = now_rfc3339();
  auto ids =
      ctx.store->begin_commands({CommandStart{alias, command, p.endpoint.identity.label(), started}}, ctx.server_id);
  ExecOutcome o;
  ctx.runtime->block_on(
      [&]() -> Task<void> { o = co_await ctx.pool->exec(alias, p.endpoint, p.fingerprint, command, timeout); });
  CommandRecord rec = finished_record(ids.at(0), alias, started, o, ctx);
  record_finish(ctx, rec);
  nlohmann::json result = command_json(rec);
  if (rec.status == CommandStatus::succeeded || (rec.status == CommandStatus::failed && !check)) {
    send_json(res, 200, result);
    return;
  }
  // Any other end is an error answer with the result in it.
  ErrorKind kind = ErrorKind::connection;
  std::string message;
  switch (rec.status) {
    case CommandStatus::failed:  // with check
      kind = ErrorKind::command;
      message = "command exited with code " + std::to_string(*rec.exit_code);
      break;
    case CommandStatus::timeout:
      kind = ErrorKind::command_timeout;
      message = rec.error.value_or("command timed out");
      break;
    case CommandStatus::interrupted:
      kind = ErrorKind::shutting_down;
      message = rec.error.value_or("the server shut down before the command finished");
      break;
    case CommandStatus::error:
    case CommandStatus::running:    // not a finished command's: does not happen
    case CommandStatus::succeeded:  // answered 200 above
      // A session of the pool that is not connected is a pod the server cannot reach.
      kind = o.error_kind.value_or(ErrorKind::connection);
      if (kind == ErrorKind::not_connected) kind = ErrorKind::connection;
      message = rec.error.value_or("command failed");
      break;
  }
  send_error(res, kind, message, {{"result", result}});
}

// ---- fan-out ---------------------------------------------------------------------

struct FanOut {
  // Filled by the handler thread before the run starts.
  std::string command;
  double timeout = DEFAULT_COMMAND_TIMEOUT;
  std::size_t width = 32;
  std::vector<std::string> aliases;              // request order
  std::vector<std::optional<Prepared>> targets;  // nullopt: unknown alias
  std::vector<std::int64_t> ids;                 // per target (0 for unknown)
  std::string started_at;
  std::unique_ptr<ServerLoop::InFlight> in_flight;
  bool collected = false;

  // Completed commands handed from the loop to the handler thread.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<std::size_t, ExecOutcome>> done;

  // Per-request totals: "total" and one count per status a finished command can have.
  nlohmann::json summary = empty_summary();

  static nlohmann::json empty_summary() {
    nlohmann::json s = {{"total", 0}};
    for (const auto& st : kCommandStatuses)
      if (st.status != CommandStatus::running) s[std::string(st.name)] = 0;
    return s;
  }
};

std::shared_ptr<FanOut> parse_fan_out(ServerState& ctx, const httplib::Request& req) {
  auto body = parse_object_body(req);
  reject_unknown_fields(body, {"command", "aliases", "selector", "all", "parallel", "timeout"});
  auto f = std::make_shared<FanOut>();
  f->command = required_string(body, "command", ctx.settings.max_body_bytes);
  f->timeout = optional_seconds(body, "timeout", kMaxTimeout).value_or(DEFAULT_COMMAND_TIMEOUT);
  f->width = static_cast<std::size_t>(
      optional_int(body, "parallel", 1, ctx.settings.max_parallel).value_or(ctx.settings.default_parallel));
  bool has_aliases = body.contains("aliases");
  auto selector = optional_string(body, "selector", 4096);
  auto all_given = optional_bool(body, "all");
  if (all_given && !*all_given) throw validation_error("all", "must be true when given (leave it out otherwise)");
  bool all = all_given.value_or(false);
  int chosen = int(has_aliases) + int(selector.has_value()) + int(all);
  if (chosen != 1) throw validation_error("aliases", "give exactly one of aliases, selector or all=true");
  ensure_accepting(ctx);

  if (has_aliases) {
    const auto& arr = body["aliases"];
    if (!arr.is_array()) throw validation_error("aliases", "must be an array of aliases");
    if (arr.empty()) throw validation_error("aliases", "must not be empty");
    if (arr.size() > kMaxAliases) throw validation_error("aliases", "at most 10000 aliases");
    std::set<std::string> seen;
    for (const auto& a : arr) {
      if (!a.is_string()) throw validation_error("aliases", "must be an array of strings");
      const auto& s = a.get_ref<const std::string&>();
      check_alias(s, "aliases");
      if (!seen.insert(s).second) throw validation_error("aliases", "'" + s + "' is given twice");
      f->aliases.push_back(s);
    }
    for (const auto& a : f->aliases) {
      auto pod = ctx.store->get_pod(a);
      f->targets.push_back(pod ? std::optional<Prepared>(prepare(*pod)) : std::nullopt);
    }
  } else {
    Labels sel = all ? Labels{} : parse_selector(*selector);
    if (!all && sel.empty()) throw validation_error("selector", "must not be empty (use all=true)");
    for (const auto& listed : ctx.store->list_pods(sel)) {
      // Listings may leave the (encrypted) URL out: fetch each target whole.
      auto pod = listed.url.empty() ? ctx.store->get_pod(listed.alias) : std::optional<PodRecord>(listed);
      if (!pod) continue;  // removed meanwhile
      f->aliases.push_back(pod->alias);
      f->targets.emplace_back(prepare(*pod));
    }
  }
  return f;
}

Task<void> run_one(std::shared_ptr<FanOut> f, SessionPool* pool, std::size_t i) {
  ExecOutcome o;
  try {
    const auto& t = *f->targets[i];
    o = co_await pool->exec(t.alias, t.endpoint, t.fingerprint, f->command, f->timeout);
  } catch (const std::exception& e) {
    o.result.command = f->command;
    o.result.error = std::string("internal error: ") + e.what();
    o.status = CommandStatus::error;
  }
  {
    std::lock_guard lk(f->mu);
    f->done.emplace_back(i, std::move(o));
  }
  f->cv.notify_one();
}

Task<void> run_all(std::shared_ptr<FanOut> f, SessionPool* pool, std::vector<std::size_t> known) {
  const std::vector<std::size_t>* order = &known;
  // A named function object, moved in: GCC 12 destroys a temporary passed to a
  // coroutine's by-value parameter twice (here: the FanOut lost a reference early).
  std::function<Task<void>(std::size_t)> work = [f, pool, order](std::size_t k) {
    return run_one(f, pool, (*order)[k]);
  };
  co_await for_each_bounded(known.size(), f->width, std::move(work));
}

// Records the start rows and launches the run on the loop.
void launch(ServerState& ctx, const std::shared_ptr<FanOut>& f) {
  f->in_flight = std::make_unique<ServerLoop::InFlight>(*ctx.runtime);
  f->started_at = now_rfc3339();
  std::vector<CommandStart> starts;
  std::vector<std::size_t> known;
  for (std::size_t i = 0; i < f->targets.size(); ++i) {
    if (!f->targets[i]) continue;
    starts.push_back(CommandStart{f->aliases[i], f->command, f->targets[i]->endpoint.identity.label(), f->started_at});
    known.push_back(i);
  }
  f->ids.assign(f->targets.size(), 0);
  if (!starts.empty()) {
    auto ids = ctx.store->begin_commands(starts, ctx.server_id);
    for (std::size_t k = 0; k < known.size(); ++k) f->ids[known[k]] = ids.at(k);
  }
  SessionPool* pool = ctx.pool;
  // Plain functions with by-value parameters (not capturing coroutine lambdas): their
  // frames own everything they use.
  ctx.runtime->spawn([f, pool, known = std::move(known)]() { return run_all(f, pool, known); });
}

nlohmann::json unknown_alias_result(const FanOut& f, std::size_t i) {
  CommandRecord r;
  r.alias = f.aliases[i];
  r.command = f.command;
  r.status = CommandStatus::error;
  r.error = "pod '" + f.aliases[i] + "' not found";
  r.started_at = f.started_at;
  r.finished_at = f.started_at;
  nlohmann::json j = command_json(r);
  j["id"] = nullptr;
  return j;
}

// Collects every result on the handler thread, records it, and hands it to `emit`
// (index, result json) as it arrives. Returns when every target has a result.
void collect(ServerState& ctx, FanOut& f, const std::function<void(std::size_t, const nlohmann::json&)>& emit) {
  f.collected = true;
  std::size_t expected = 0;
  for (std::size_t i = 0; i < f.targets.size(); ++i) {
    if (f.targets[i]) {
      ++expected;
      continue;
    }
    auto j = unknown_alias_result(f, i);
    f.summary["error"] = f.summary["error"].get<int>() + 1;
    emit(i, j);
  }
  f.summary["total"] = static_cast<int>(f.targets.size());
  std::size_t got = 0;
  auto last_progress = std::chrono::steady_clock::now();
  while (got < expected) {
    std::deque<std::pair<std::size_t, ExecOutcome>> batch;
    {
      std::unique_lock lk(f.mu);
      f.cv.wait_for(lk, std::chrono::milliseconds(200), [&] { return !f.done.empty(); });
      batch.swap(f.done);
    }
    if (batch.empty()) {
      // The loop was stopped under us (shutdown past its grace): give up on the rest.
      if (ctx.runtime->hard_stopped() && std::chrono::steady_clock::now() - last_progress > std::chrono::seconds(5))
        break;
      continue;
    }
    last_progress = std::chrono::steady_clock::now();
    for (auto& [i, o] : batch) {
      CommandRecord rec = finished_record(f.ids[i], f.aliases[i], f.started_at, o, ctx);
      record_finish(ctx, rec);
      const std::string status(to_string(rec.status));
      f.summary[status] = f.summary.value(status, 0) + 1;
      emit(i, command_json(rec));
      ++got;
    }
  }
}

}  // namespace

void add_exec_routes(Router& http, ServerState& ctx) {
  http.Post("/api/v1/pods/([^/]+)/exec/?",
            [&ctx](const httplib::Request& req, httplib::Response& res) { exec_one(ctx, req, res); });

  http.Post("/api/v1/exec/?", [&ctx](const httplib::Request& req, httplib::Response& res) {
    auto f = parse_fan_out(ctx, req);
    launch(ctx, f);
    nlohmann::json results = nlohmann::json::array();
    std::vector<nlohmann::json> ordered(f->targets.size());
    collect(ctx, *f, [&](std::size_t i, const nlohmann::json& j) { ordered[i] = j; });
    for (auto& j : ordered) results.push_back(std::move(j));
    f->in_flight.reset();
    send_json(res, 200, {{"results", std::move(results)}, {"summary", f->summary}});
  });

  http.Post("/api/v1/exec/stream/?", [&ctx](const httplib::Request& req, httplib::Response& res) {
    auto f = parse_fan_out(ctx, req);
    launch(ctx, f);
    res.status = 200;
    res.set_chunked_content_provider(
        "application/x-ndjson",
        [&ctx, f](size_t, httplib::DataSink& sink) {
          bool open = true;
          auto write = [&](const nlohmann::json& j) {
            if (!open) return;
            std::string line = dump_json(j);
            line += '\n';
            open = sink.write(line.data(), line.size());
          };
          write({{"event", "start"}, {"total", f->targets.size()}, {"aliases", f->aliases}});
          // A client that goes away does not stop the run: results are still recorded.
          collect(ctx, *f, [&](std::size_t i, const nlohmann::json& j) {
            nlohmann::json ev = j;
            ev["event"] = "result";
            ev["index"] = i;
            write(ev);
          });
          nlohmann::json summary = f->summary;
          summary["event"] = "summary";
          write(summary);
          f->in_flight.reset();
          if (open) sink.done();
          return open;
        },
        [&ctx, f](bool) {
          // The client went away before the stream started: still record every result.
          if (!f->collected) collect(ctx, *f, [](std::size_t, const nlohmann::json&) {});
          f->in_flight.reset();
        });
  });
}

}  // namespace pw::server

// Commands in capsules: POST /api/v1/capsules/{id}/exec (the result), …/exec/stream (NDJSON
// events as they happen), POST /api/v1/capsules/run (create, exec, destroy), and background
// processes (GET/POST …/{id}/processes, DELETE …/{id}/processes/{pid}).
#include "embedded_server/http_server.hpp"
#include "embedded_server/http_util.hpp"
#include "embedded_server/routes.hpp"
#include "embedded_server/routes_capsules_common.hpp"
#include "embedded_server/server_loop.hpp"

#include <podwrangler/errors.hpp>
#include <podwrangler/model.hpp>

#include <httplib.h>

#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace pw::server {
namespace {

using capsules::CapsuleExecResult;
using capsules::ExecEvent;

const std::vector<std::string_view> kExecFields = {"argv", "cmd", "env", "cwd", "timeout_sec", "stdin"};

nlohmann::json exit_event(const CapsuleExecResult& r) {
  return {{"event", "exit"},
          {"exit_code", r.result.exit_code},
          {"duration_ms", static_cast<std::int64_t>(std::llround(r.result.duration_s * 1000.0))},
          {"timed_out", r.result.timed_out},
          {"resumed", r.resumed},
          {"recovered", r.recovered}};
}

// The exception being handled as an error event: the code and message its answer would have.
nlohmann::json error_event() {
  httplib::Response tmp;
  send_current_exception(tmp);
  nlohmann::json j = nlohmann::json::parse(tmp.body, nullptr, false);
  if (!j.is_object()) j = {{"code", "internal_error"}, {"message", "internal server error"}};
  nlohmann::json ev = {
      {"event", "error"}, {"code", j.value("code", "internal_error")}, {"message", j.value("message", "")}};
  return ev;
}

// Events of one streamed exec, from the capsule layer's thread to the writer (a worker).
// Bounded: past kMaxQueued bytes the producer waits for the writer (a slow client slows the
// stream, it does not fill the server's memory); once the client is gone, events are dropped.
class EventQueue {
 public:
  static constexpr std::size_t kMaxQueued = 8u << 20;

  void push(std::string line, bool last = false) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return closed_ || queued_ < kMaxQueued; });
    if (!closed_) {
      queued_ += line.size();
      lines_.push_back(std::move(line));
    }
    if (last) finished_ = true;
    cv_.notify_all();
  }
  // The next line; nullopt once the last one was taken.
  std::optional<std::string> pop() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return !lines_.empty() || finished_; });
    if (lines_.empty()) return std::nullopt;
    std::string line = std::move(lines_.front());
    lines_.pop_front();
    queued_ -= line.size();
    cv_.notify_all();
    return line;
  }
  // The client is gone: producers never wait again.
  void close() {
    std::lock_guard lk(mu_);
    closed_ = true;
    lines_.clear();
    queued_ = 0;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> lines_;
  std::size_t queued_ = 0;
  bool finished_ = false;
  bool closed_ = false;
};

// One streamed exec: the runner thread calls the manager (its sink queues events), the
// response's content provider (a worker) writes them. A client that leaves does not stop the
// command (it ends by itself or at its timeout); the runner owns what it uses, the manager
// included, and counts as a command in flight for a graceful shutdown.
struct ExecStream {
  std::shared_ptr<EventQueue> queue = std::make_shared<EventQueue>();
  std::thread runner;
  ~ExecStream() {
    queue->close();
    // Never joined here: the last owner may be the HTTP loop's thread.
    if (runner.joinable()) runner.detach();
  }
};

std::string line_of(const nlohmann::json& j) {
  std::string s = dump_json(j);
  s += '\n';
  return s;
}

void run_stream(std::shared_ptr<EventQueue> q, std::shared_ptr<capsules::CapsuleManager> m,
                std::unique_ptr<ServerLoop::InFlight> in_flight, const std::string& id,
                const capsules::ExecRequest& ereq) {
  capsules::ExecSink sink = [q](const ExecEvent& ev) {
    nlohmann::json j;
    switch (ev.kind) {
      case ExecEvent::Kind::started: j = {{"event", "start"}, {"pid", ev.pid}}; break;
      case ExecEvent::Kind::stdout_data:
        j = {{"event", "stdout"}};
        put_bytes(j, "data", ev.data);
        break;
      case ExecEvent::Kind::stderr_data:
        j = {{"event", "stderr"}};
        put_bytes(j, "data", ev.data);
        break;
      case ExecEvent::Kind::exit: return;  // sent below, with what the manager did first
    }
    q->push(line_of(j));
  };
  try {
    CapsuleExecResult r = m->exec(id, ereq, &sink);
    q->push(line_of(exit_event(r)), true);
  } catch (...) {
    q->push(line_of(error_event()), true);
  }
  in_flight.reset();
}

void exec_stream(ServerState& ctx, const httplib::Request& req, httplib::Response& res) {
  auto body = parse_object_body(req);
  reject_unknown_keys(body, kExecFields);
  capsules::ExecRequest ereq = parse_exec_request(body, true, ctx.settings.max_body_bytes);
  std::string id = path_capsule_id(req);
  auto m = shared_capsule_manager(ctx);
  (void)m->get(id);  // an unknown capsule is a 404 answer, not an error event in a 200 stream
  auto st = std::make_shared<ExecStream>();
  std::unique_ptr<ServerLoop::InFlight> in_flight;
  if (ctx.runtime) in_flight = std::make_unique<ServerLoop::InFlight>(*ctx.runtime);
  st->runner = std::thread(run_stream, st->queue, std::move(m), std::move(in_flight), id, std::move(ereq));
  res.status = 200;
  res.set_chunked_content_provider(
      "application/x-ndjson",
      [st](size_t, httplib::DataSink& sink) {
        bool open = true;
        while (auto line = st->queue->pop()) {
          open = sink.write(line->data(), line->size());
          if (!open) break;
        }
        if (!open) {
          st->queue->close();
          return false;
        }
        // The last event is queued: the runner is ending.
        if (st->runner.joinable()) st->runner.join();
        sink.done();
        return true;
      },
      [st](bool) { st->queue->close(); });
}

}  // namespace

void add_capsule_exec_routes(Router& http, ServerState& ctx) {
  http.Post("/api/v1/capsules/([^/]+)/exec/?", [&ctx](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_object_body(req);
    reject_unknown_keys(body, kExecFields);
    capsules::ExecRequest ereq = parse_exec_request(body, true, ctx.settings.max_body_bytes);
    std::string id = path_capsule_id(req);
    auto& m = capsule_manager(ctx);
    std::optional<ServerLoop::InFlight> guard;
    if (ctx.runtime) guard.emplace(*ctx.runtime);
    send_json(res, 200, exec_result_json(m.exec(id, ereq)));
  });

  http.Post("/api/v1/capsules/([^/]+)/exec/stream/?",
            [&ctx](const httplib::Request& req, httplib::Response& res) { exec_stream(ctx, req, res); });

  // One-time jobs: the spec's fields and the command's; timeout_sec is the command's (the
  // capsule is destroyed when it ends, whatever happens).
  http.Post("/api/v1/capsules/run/?", [&ctx](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_object_body(req);
    reject_unknown_keys(body, kSpecFields, {"argv", "cmd", "cwd", "stdin"});
    capsules::CapsuleSpec spec = parse_capsule_spec(body, {"timeout_sec"});
    nlohmann::json exec_fields = nlohmann::json::object();
    for (const char* k : {"argv", "cmd", "cwd", "stdin", "timeout_sec"})
      if (auto it = body.find(k); it != body.end()) exec_fields[k] = *it;
    capsules::ExecRequest ereq = parse_exec_request(exec_fields, true, ctx.settings.max_body_bytes);
    auto& m = capsule_manager(ctx);
    std::optional<ServerLoop::InFlight> guard;
    if (ctx.runtime) guard.emplace(*ctx.runtime);
    send_json(res, 200, exec_result_json(m.run_once(std::move(spec), ereq)));
  });

  http.Get("/api/v1/capsules/([^/]+)/processes/?", [&ctx](const httplib::Request& req, httplib::Response& res) {
    reject_unknown_params(req, {});
    std::string id = path_capsule_id(req);
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& p : capsule_manager(ctx).processes(id)) arr.push_back(p);
    send_json(res, 200, arr);
  });

  http.Post("/api/v1/capsules/([^/]+)/processes/?", [&ctx](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_object_body(req);
    reject_unknown_keys(body, {"argv", "cmd", "env", "cwd"});
    capsules::ExecRequest ereq = parse_exec_request(body, false, ctx.settings.max_body_bytes);
    std::string id = path_capsule_id(req);
    int pid = capsule_manager(ctx).start_background(id, ereq);
    send_json(res, 201, {{"pid", pid}});
  });

  // SIGKILL unless ?signal=N says otherwise.
  http.Delete("/api/v1/capsules/([^/]+)/processes/([^/]+)/?",
              [&ctx](const httplib::Request& req, httplib::Response& res) {
                reject_unknown_params(req, {"signal"});
                int sig = 9;
                if (auto s = query_param(req, "signal")) sig = static_cast<int>(parse_integer(*s, "signal", 1, 64));
                std::string id = path_capsule_id(req);
                const std::string text = req.matches[2];
                std::optional<std::int64_t> pid;
                try {
                  pid = parse_integer(text, "pid", 1, 4194304);
                } catch (const HttpError&) {
                  // Not a pid at all: no such process.
                }
                if (!pid) throw CapsuleNotFoundError(shown(text, 32), "process");
                capsule_manager(ctx).kill(id, static_cast<int>(*pid), sig);
                res.status = 204;
              });
}

}  // namespace pw::server

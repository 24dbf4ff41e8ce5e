// podwrangler exec run-many (declared with the other exec subcommands in exec.cpp)
#include "cli/run_many.hpp"

#include "cli/cli_error.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/exec.hpp"
#include "cli/exit_codes.hpp"
#include "cli/json_access.hpp"
#include "embedded_server/store/command_status.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <tuple>

namespace pw::cli {

using server::command_status_from_string;
using server::CommandStatus;

// --- pure pieces (unit-tested) ----------------------------------------------------------

std::vector<GatherGroup> gather_results(const std::vector<nlohmann::json>& results) {
  std::vector<GatherGroup> groups;
  std::map<std::tuple<std::string, int, std::string>, std::size_t> index;
  for (const auto& r : results) {
    GatherGroup g;
    g.status = field::text(r, "status");
    g.exit_code = static_cast<int>(field::integer(r, "exit_code").value_or(-1));
    g.output = field::text(r, "output");
    std::string err = error_text(r);
    if (g.output.empty() && !err.empty()) g.output = err;
    auto key = std::make_tuple(g.status, g.exit_code, g.output);
    auto it = index.find(key);
    if (it == index.end()) {
      index.emplace(key, groups.size());
      g.aliases.push_back(field::text(r, "alias"));
      groups.push_back(std::move(g));
    } else {
      groups[it->second].aliases.push_back(field::text(r, "alias"));
    }
  }
  return groups;
}

std::string fold_aliases(const std::vector<std::string>& aliases) {
  // prefix → numbers (keeping zero padding as written), in first-seen order
  struct Run {
    std::string prefix;
    std::vector<std::pair<long, std::string>> nums;
  };
  std::vector<Run> runs;
  std::vector<std::string> order;  // either "\x01<prefix>" for a run or a literal alias
  std::map<std::string, std::size_t> by_prefix;
  for (const auto& a : aliases) {
    std::size_t d = a.size();
    while (d > 0 && a[d - 1] >= '0' && a[d - 1] <= '9') --d;
    if (d == a.size() || a.size() - d > 9 || (a.size() - d > 1 && a[d] == '0')) {
      order.push_back(a);
      continue;
    }
    std::string prefix = a.substr(0, d);
    auto it = by_prefix.find(prefix);
    if (it == by_prefix.end()) {
      it = by_prefix.emplace(prefix, runs.size()).first;
      runs.push_back({prefix, {}});
      order.push_back("\x01" + prefix);
    }
    runs[it->second].nums.emplace_back(std::stol(a.substr(d)), a.substr(d));
  }
  std::string out;
  for (const auto& o : order) {
    out += out.empty() ? "" : ",";
    if (o.empty() || o[0] != '\x01') {
      out += o;
      continue;
    }
    Run& run = runs[by_prefix[o.substr(1)]];
    if (run.nums.size() == 1) {
      out += run.prefix + run.nums[0].second;
      continue;
    }
    std::sort(run.nums.begin(), run.nums.end());
    std::string ranges;
    for (std::size_t i = 0; i < run.nums.size();) {
      std::size_t j = i;
      while (j + 1 < run.nums.size() && run.nums[j + 1].first == run.nums[j].first + 1) ++j;
      ranges += ranges.empty() ? "" : ",";
      ranges += run.nums[i].second;
      if (j > i) ranges += "-" + run.nums[j].second;
      i = j + 1;
    }
    out += run.prefix + "[" + ranges + "]";
  }
  return out;
}

nlohmann::json RunManySummary::to_json() const {
  return {{"total", total},     {"succeeded", succeeded}, {"failed", failed},
          {"timeout", timeout}, {"error", error},         {"skipped", skipped}};
}

RunManySummary summarize(const std::vector<nlohmann::json>& received, int total) {
  RunManySummary s;
  s.total = std::max<int>(total, static_cast<int>(received.size()));
  for (const auto& r : received) {
    switch (command_status_from_string(field::text(r, "status")).value_or(CommandStatus::error)) {
      case CommandStatus::succeeded: ++s.succeeded; break;
      case CommandStatus::failed: ++s.failed; break;
      case CommandStatus::timeout: ++s.timeout; break;
      default: ++s.error; break;  // error, interrupted (running: not a result)
    }
  }
  s.skipped = s.total - static_cast<int>(received.size());
  return s;
}

int run_many_exit_code(const RunManySummary& s) {
  if (s.failed > 0) return exit_code::command_failed;
  if (s.timeout > 0) return exit_code::timeout;
  if (s.error > 0) return exit_code::unavailable;
  return exit_code::ok;
}

// --- the subcommand ----------------------------------------------------------------------

namespace {

// The request body, and the pods as messages name them ("aliases web-[1-3]", "selector
// app=web", "all").
struct Request {
  nlohmann::json body;
  std::string target;
};

Request make_request(const RunManyOptions& o) {
  std::string command = join_command(o.command);
  if (command.empty()) throw CliError(exit_code::usage, "no command given");
  Request req{{{"command", command}}, {}};
  if (!o.aliases.empty()) {
    req.body["aliases"] = o.aliases;
    req.target = "aliases " + fold_aliases(o.aliases);
  } else if (!o.labels.empty()) {
    std::string selector = label_selector(o.labels);
    req.body["selector"] = selector;
    req.target = "selector " + selector;
  } else if (o.all) {
    req.body["all"] = true;
    req.target = "all";
  } else {
    throw CliError(exit_code::usage, "say which pods: --aliases A,B, --label KEY=VALUE or --all");
  }
  if (o.parallel > 0) req.body["parallel"] = o.parallel;
  if (o.timeout > 0) req.body["timeout"] = o.timeout;
  return req;
}

// One result as streamed lines: each output line prefixed with "alias: ", then the status
// when it is not "succeeded" ("[exit 2]", "[timeout: …]").
std::string result_lines(const nlohmann::json& r, bool color) {
  std::string st = field::text(r, "status");
  std::string prefix = paint(field::text(r, "alias"), Style::cyan, color) + ": ";
  std::string text = field::text(r, "output");
  std::string out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    out += prefix + text.substr(pos, nl - pos) + "\n";
    pos = nl + 1;
  }
  if (st != "succeeded") {
    std::string err = error_text(r);
    std::string what = st == "failed" ? "exit " + exit_text(r) : st;
    out += prefix +
           paint("[" + what + (err.empty() || st == "failed" ? "" : ": " + err) + "]",
                 st == "timeout" ? Style::yellow : Style::red, color) +
           "\n";
  }
  return out;
}

// Why --fail-fast stopped at this result: "web-2 failed (exit 1)".
std::string failure_text(const nlohmann::json& r) {
  std::string st = field::text(r, "status");
  std::string why = st == "failed"    ? "failed (exit " + exit_text(r) + ")"
                    : st == "timeout" ? "timed out"
                                      : "could not run (" + error_text(r) + ")";
  return field::text(r, "alias") + " " + why;
}

// Reads the event stream: keeps the results and shows each as it arrives (ndjson: the event
// itself; table and plain without --gather: its output lines).
class EventReader {
 public:
  EventReader(CommandContext& ctx, const RunManyOptions& o, Spinner& spin)
      : ctx_(ctx),
        o_(o),
        spin_(spin),
        fmt_(ctx.format()),
        stream_lines_((fmt_ == Format::table || fmt_ == Format::plain) && !o.gather) {}

  // False to stop reading (--fail-fast and a pod did not succeed).
  bool on_event(const nlohmann::json& ev) {
    std::string kind = field::text(ev, "event");
    if (kind == "start") on_start(ev);
    if (kind == "result") return on_result(ev);
    return true;  // summary: recomputed from the results (it also counts skipped pods)
  }

  int total = -1;                        // pods announced by the start event; -1: none came
  std::vector<nlohmann::json> by_index;  // results in request order (null: not received)
  std::vector<nlohmann::json> received;  // results as they arrived
  std::string first_failure;             // --fail-fast: the result that stopped the reading

 private:
  void on_start(const nlohmann::json& ev) {
    total = static_cast<int>(field::integer(ev, "total").value_or(0));
    by_index.assign(static_cast<std::size_t>(std::max(total, 0)), nullptr);
    if (fmt_ == Format::ndjson && total > 0) spin_.above([&] { ctx_.out(to_ndjson_line(ev)); });
  }

  bool on_result(const nlohmann::json& ev) {
    nlohmann::json r = ev;
    r.erase("event");
    auto idx = field::integer(r, "index").value_or(static_cast<long long>(received.size()));
    r.erase("index");
    if (idx >= 0 && static_cast<std::size_t>(idx) < by_index.size()) by_index[static_cast<std::size_t>(idx)] = r;
    received.push_back(r);
    spin_.set_label(std::to_string(received.size()) + "/" + std::to_string(total) + " pods done …");
    if (fmt_ == Format::ndjson)
      spin_.above([&] {
        ctx_.out(to_ndjson_line(ev));
        std::fflush(stdout);
      });
    if (stream_lines_) spin_.above([&] { ctx_.out(result_lines(r, ctx_.term().color_out)); });
    if (o_.fail_fast && field::text(r, "status") != "succeeded") {
      first_failure = failure_text(r);
      return false;
    }
    return true;
  }

  CommandContext& ctx_;
  const RunManyOptions& o_;
  Spinner& spin_;
  const Format fmt_;
  const bool stream_lines_;
};

nlohmann::json group_json(const GatherGroup& g) {
  return nlohmann::json{{"aliases", g.aliases},
                        {"status", g.status},
                        {"exit_code", g.exit_code < 0 ? nlohmann::json(nullptr) : nlohmann::json(g.exit_code)},
                        {"output", g.output}};
}

// --gather in table and plain output: each group's output under its folded aliases.
std::string groups_text(const std::vector<GatherGroup>& groups, bool color) {
  std::string out;
  for (const auto& g : groups) {
    std::string head = fold_aliases(g.aliases) + " (" + std::to_string(g.aliases.size()) + ")";
    if (g.status != "succeeded")
      head += " " + (g.status == "failed" ? "exit " + std::to_string(g.exit_code) : g.status);
    std::string rule(std::min<std::size_t>(display_width(head), 72), '-');
    out += paint(rule, Style::dim, color) + "\n" +
           paint(head, g.status == "succeeded" ? Style::cyan : Style::red, color) + "\n" +
           paint(rule, Style::dim, color) + "\n" + g.output;
    if (!g.output.empty() && g.output.back() != '\n') out += "\n";
  }
  return out;
}

// "3 ok / 1 failed / 0 timed out / 0 unreachable (4 pods, 1.20 s)"
std::string summary_line(const RunManySummary& sum, double elapsed) {
  std::string line = std::to_string(sum.succeeded) + " ok / " + std::to_string(sum.failed) + " failed / " +
                     std::to_string(sum.timeout) + " timed out / " + std::to_string(sum.error) + " unreachable";
  if (sum.skipped) line += " / " + std::to_string(sum.skipped) + " not awaited";
  return line + " (" + std::to_string(sum.total) + " pods, " + format_duration(elapsed) + ")";
}

// What is printed once the stream has ended: json, the document; ndjson, the groups and the
// summary events; table and plain, the groups (--gather), the table of results (table) and
// the summary line.
void print_report(CommandContext& ctx, const RunManyOptions& o, const std::vector<nlohmann::json>& ordered,
                  const RunManySummary& sum, double elapsed) {
  std::vector<GatherGroup> groups;
  if (o.gather) groups = gather_results(ordered);
  const Format fmt = ctx.format();
  const bool color = ctx.term().color_out;
  switch (fmt) {
    case Format::json: {
      nlohmann::json doc{{"results", ordered}, {"summary", sum.to_json()}};
      if (o.gather) {
        doc["groups"] = nlohmann::json::array();
        for (const auto& g : groups) doc["groups"].push_back(group_json(g));
      }
      ctx.out(to_json_text(doc));
      break;
    }
    case Format::ndjson: {
      for (const auto& g : groups) {
        auto j = group_json(g);
        j["event"] = "group";
        ctx.out(to_ndjson_line(j));
      }
      auto s = sum.to_json();
      s["event"] = "summary";
      ctx.out(to_ndjson_line(s));
      break;
    }
    case Format::table:
    case Format::plain: {
      if (o.gather) ctx.out(groups_text(groups, color));
      if (fmt == Format::table && !ordered.empty()) {
        std::vector<std::vector<std::string>> rows;
        rows.reserve(ordered.size());
        for (const auto& r : ordered)
          rows.push_back({field::text(r, "alias"), paint_status(field::text(r, "status"), color), exit_text(r),
                          format_duration(field::number(r, "duration").value_or(0.0)), error_text(r)});
        ctx.out("\n" +
                render_table({{"ALIAS"}, {"STATUS"}, {"EXIT", false, true}, {"DURATION", false, true}, {"ERROR", true}},
                             rows, ctx.term().width, color));
      }
      std::string line = summary_line(sum, elapsed);
      if (fmt == Format::table)
        ctx.out(paint(line, Style::bold, color) + "\n");
      else
        ctx.info(line);
      break;
    }
  }
  std::fflush(stdout);
}

}  // namespace

int exec_run_many(CommandContext& ctx, const RunManyOptions& o) {
  Request req = make_request(o);
  auto& api = ctx.api({5.0, (o.timeout > 0 ? o.timeout : 30.0) + 30.0});
  auto started = std::chrono::steady_clock::now();
  auto spin = ctx.spinner("running on " + req.target + " …");
  EventReader events(ctx, o, spin);
  bool complete =
      api.post_stream("/api/v1/exec/stream", req.body, [&](const nlohmann::json& ev) { return events.on_event(ev); });
  spin.stop();
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (events.total < 0)  // no start event: not our event stream, never an empty success
    api.expect("POST /api/v1/exec/stream", "the event stream has no start event");
  if (events.total == 0)
    throw CliError(exit_code::not_found, o.all ? "no pods registered" : "no pods match " + req.target,
                   "see: podwrangler pod list");

  std::vector<nlohmann::json> ordered;  // request order, received only
  for (const auto& r : events.by_index)
    if (!r.is_null()) ordered.push_back(r);
  RunManySummary sum = summarize(events.received, events.total);
  print_report(ctx, o, ordered, sum, elapsed);

  int rc = run_many_exit_code(sum);
  if (!complete && !events.first_failure.empty())
    throw CliError(rc, "stopped at the first failure (--fail-fast): " + events.first_failure +
                           (sum.skipped ? "; " + std::to_string(sum.skipped) + " pods not awaited" : ""));
  if (rc != exit_code::ok)
    throw CliError(rc, std::to_string(sum.total - sum.succeeded) + " of " + std::to_string(sum.total) +
                           " pods did not succeed (" + std::to_string(sum.failed) + " failed, " +
                           std::to_string(sum.timeout) + " timed out, " + std::to_string(sum.error) + " unreachable)");
  return rc;
}

}  // namespace pw::cli

// podwrangler exec run|run-many|history|show
#include "cli/exec.hpp"

#include "cli/cli_error.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/exit_codes.hpp"

#include <podwrangler/redact.hpp>

#include <CLI/CLI.hpp>
#include <openssl/evp.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>

namespace pw::cli {

namespace {

std::string str(const nlohmann::json& j, const char* key) {
  if (j.is_object() && j.contains(key) && j[key].is_string()) return j[key].get<std::string>();
  if (j.is_object() && j.contains(key) && !j[key].is_null()) return j[key].dump();
  return "";
}

int int_of(const nlohmann::json& j, const char* key, int fallback) {
  if (j.is_object() && j.contains(key) && j[key].is_number_integer()) return j[key].get<int>();
  return fallback;
}

double num(const nlohmann::json& j, const char* key) {
  if (j.is_object() && j.contains(key) && j[key].is_number()) return j[key].get<double>();
  return 0.0;
}

std::string join_command(const std::vector<std::string>& words) {
  std::size_t start = (!words.empty() && words[0] == "--") ? 1 : 0;
  std::string cmd;
  for (std::size_t i = start; i < words.size(); ++i) cmd += (cmd.empty() ? "" : " ") + words[i];
  return cmd;
}

void write_raw(FILE* f, const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), f);
}

// A result's error text as shown (the server redacts it; the CLI does not rely on that).
std::string error_text(const nlohmann::json& r) { return pw::redact_text(str(r, "error")); }

// The exact bytes of a result, or the protocol error.
std::string exact_output(const ApiClient& api, const std::string& request, const nlohmann::json& result) {
  auto bytes = result_bytes(result);
  if (!bytes) api.expect(request, "result: \"output_b64\" is not valid base64");
  return *bytes;
}

// The exit status of `exec run` for a result: the remote command's own status.
int result_exit_code(const nlohmann::json& r) {
  std::string status = str(r, "status");
  if (status == "succeeded") return exit_code::ok;
  if (status == "failed") {
    int code = int_of(r, "exit_code", 1);
    return (code > 0 && code < 256) ? code : exit_code::command_failed;
  }
  if (status == "timeout") return exit_code::timeout;
  return exit_code::unavailable;
}

std::string short_time(const std::string& rfc3339) {
  // 2026-11-25T16:00:00.123Z → 2026-11-25 16:00:00
  if (rfc3339.size() >= 19 && rfc3339[10] == 'T') return rfc3339.substr(0, 10) + " " + rfc3339.substr(11, 8);
  return rfc3339;
}

std::string exit_text(const nlohmann::json& r) {
  return r.contains("exit_code") && r["exit_code"].is_number_integer() ? std::to_string(r["exit_code"].get<int>()) : "-";
}

void validate_history_status(const std::string& s) {
  static const char* kStatuses[] = {"running", "succeeded", "failed", "timeout", "error", "interrupted"};
  for (const char* k : kStatuses)
    if (s == k) return;
  throw CliError(exit_code::usage,
                 "--status must be one of running, succeeded, failed, timeout, error, interrupted (got '" + s + "')");
}

}  // namespace

// --- pure pieces (unit-tested) ----------------------------------------------------------

std::optional<std::string> base64_decode(std::string_view b64) {
  if (b64.size() % 4 != 0) return std::nullopt;
  std::size_t pad = 0;
  for (std::size_t i = 0; i < b64.size(); ++i) {
    char c = b64[i];
    bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
    if (c == '=' && i + 2 >= b64.size() && (i + 1 == b64.size() || b64[i + 1] == '=')) ++pad;
    else if (!alpha || pad > 0) return std::nullopt;
  }
  std::string out;
  out.reserve(b64.size() / 4 * 3);
  // EVP_DecodeBlock takes an int length: decode in chunks (a multiple of 4 characters).
  constexpr std::size_t kChunk = std::size_t{1} << 22;
  for (std::size_t at = 0; at < b64.size(); at += kChunk) {
    std::size_t len = std::min(kChunk, b64.size() - at);
    std::size_t old = out.size();
    out.resize(old + len / 4 * 3);
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data() + old),
                            reinterpret_cast<const unsigned char*>(b64.data() + at), static_cast<int>(len));
    if (n < 0 || static_cast<std::size_t>(n) != len / 4 * 3) return std::nullopt;
  }
  out.resize(out.size() - pad);  // EVP_DecodeBlock counts the padding as zero bytes
  return out;
}

std::optional<std::string> result_bytes(const nlohmann::json& result) {
  if (result.is_object() && result.contains("output_b64") && result["output_b64"].is_string())
    return base64_decode(result["output_b64"].get_ref<const std::string&>());
  return str(result, "output");
}

std::vector<GatherGroup> gather_results(const std::vector<nlohmann::json>& results) {
  std::vector<GatherGroup> groups;
  std::map<std::tuple<std::string, int, std::string>, std::size_t> index;
  for (const auto& r : results) {
    GatherGroup g;
    g.status = str(r, "status");
    g.exit_code = int_of(r, "exit_code", -1);
    g.output = str(r, "output");
    std::string err = error_text(r);
    if (g.output.empty() && !err.empty()) g.output = err;
    auto key = std::make_tuple(g.status, g.exit_code, g.output);
    auto it = index.find(key);
    if (it == index.end()) {
      index.emplace(key, groups.size());
      g.aliases.push_back(str(r, "alias"));
      groups.push_back(std::move(g));
    } else {
      groups[it->second].aliases.push_back(str(r, "alias"));
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
    std::string st = str(r, "status");
    if (st == "succeeded") ++s.succeeded;
    else if (st == "failed") ++s.failed;
    else if (st == "timeout") ++s.timeout;
    else ++s.error;
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

// --- commands ---------------------------------------------------------------------------

namespace {

void set_run(CLI::App& exec, CommandContext& ctx) {
  struct Opts {
    std::string alias;
    std::vector<std::string> command;
    double timeout = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* c = exec.add_subcommand("run", "Run a command on one pod; its exit status becomes ours");
  c->add_option("--timeout,-t", o->timeout, "Seconds before the command is interrupted (server default 30)")
      ->check(CLI::PositiveNumber)
      ->type_name("SECONDS");
  c->add_option("alias", o->alias, "The pod's alias")->required()->type_name(kAliasType);
  c->add_option("command", o->command, "The shell command (words are joined by spaces)")
      ->required()
      ->type_name("COMMAND");
  c->positionals_at_end();
  c->footer(
      "Everything after ALIAS is the command: put options (--timeout, -o) before ALIAS.\n"
      "The command's output is printed as the pod gave it; the exit status is the remote\n"
      "command's (75 on timeout, 69 when the pod cannot be reached, 68 for an unknown alias).\n"
      "json/ndjson output: the result object {id, alias, command, status, exit_code, output,\n"
      "output_b64 (the exact bytes, when they are not UTF-8), error, duration, truncated,\n"
      "pod_label, started_at, finished_at}. --output raw writes the exact bytes the command\n"
      "printed, binary included, and nothing else (default output shows them as text).\n\n"
      "Examples:\n"
      "  podwrangler exec run web-1 uptime\n"
      "  podwrangler exec run web-1 ls -la /app\n"
      "  podwrangler exec run --timeout 120 web-1 'make test && echo done'\n"
      "  podwrangler -o json exec run web-1 hostname | jq -r .output\n"
      "  podwrangler -o raw exec run web-1 'cat /app/logo.png' > logo.png");
  c->callback([&ctx, o] {
    ctx.action = [&ctx, o]() -> int {
      std::string command = join_command(o->command);
      if (command.empty()) throw CliError(exit_code::usage, "no command given", "podwrangler exec run ALIAS COMMAND…");
      nlohmann::json body{{"command", command}};
      if (o->timeout > 0) body["timeout"] = o->timeout;
      double wait = (o->timeout > 0 ? o->timeout : 30.0) + 15.0;
      auto& api = ctx.api({5.0, wait});
      const std::string request = "POST /api/v1/pods/{alias}/exec";
      ApiReply r;
      {
        Spinner spin("running on " + o->alias + " …", ctx.spinner_enabled(), ctx.term().color_err);
        r = api.call("POST", "/api/v1/pods/" + url_encode(o->alias) + "/exec", &body);
      }
      nlohmann::json result;
      if (r.status == 200) {
        api.expect(request, contract::result(r.body));
        result = r.body;
      } else if (r.status >= 400 && r.body.contains("result")) {
        api.expect(request, contract::result(r.body["result"]));
        result = r.body["result"];
      } else if (r.status == 404 && r.body.value("code", "") == "pod_not_found") {
        throw CliError(exit_code::not_found, "pod '" + o->alias + "' not found", "see: podwrangler pod list");
      } else {
        api.raise(r);
      }

      if (ctx.format() == Format::json) ctx.out(to_json_text(result));
      else if (ctx.format() == Format::ndjson) ctx.out(to_ndjson_line(result));
      else {
        if (ctx.raw_output()) {
          write_raw(stdout, exact_output(api, request, result));
        } else {
          std::string output = str(result, "output");
          write_raw(stdout, output);
          if (!output.empty() && output.back() != '\n' && ctx.term().stdout_tty) write_raw(stdout, "\n");
        }
        std::fflush(stdout);
        std::string err = error_text(result);
        if (!err.empty() && r.status == 200) {
          write_raw(stderr, err);
          if (err.back() != '\n') write_raw(stderr, "\n");
        }
        if (result.value("truncated", false)) ctx.info("(output truncated by the server's cap)");
      }
      if (r.status == 200) return result_exit_code(result);
      int mapped = exit_code_for_api_error(r.status, r.body.value("code", ""));
      if (mapped == exit_code::timeout)
        throw CliError(exit_code::timeout, "command timed out after " + format_duration(o->timeout > 0 ? o->timeout : 30.0) +
                                               " on " + o->alias + " (output so far shown)",
                       "raise it with --timeout SECONDS");
      if (r.status == 502 || mapped == exit_code::unavailable)
        throw CliError(exit_code::unavailable, "cannot connect to pod " + o->alias + ": " +
                                                   (error_text(result).empty() ? api_error_message(r) : error_text(result)));
      if (mapped == exit_code::command_failed) return result_exit_code(result);
      api.raise(r);
    };
  });
}

void set_run_many(CLI::App& exec, CommandContext& ctx) {
  struct Opts {
    std::vector<std::string> command, aliases, labels;
    bool all = false, gather = false, fail_fast = false;
    int parallel = 0;
    double timeout = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* c = exec.add_subcommand("run-many", "Run a command on many pods in parallel");
  c->add_option("command", o->command, "The shell command (quote it when it has options: 'df -h')")
      ->required()
      ->type_name("COMMAND");
  auto* a = c->add_option("--aliases,-a", o->aliases, "Comma-separated aliases")->delimiter(',')->type_name(kAliasListType);
  auto* l = c->add_option("--label,-l", o->labels, "Pods with this label (repeat to require several)")->type_name("KEY=VALUE");
  auto* all = c->add_flag("--all", o->all, "Every registered pod");
  a->excludes(l)->excludes(all);
  l->excludes(all);
  c->add_option("--parallel,-P", o->parallel, "Pods at a time (server default 32)")->check(CLI::Range(1, 1024))->type_name("N");
  c->add_option("--timeout,-t", o->timeout, "Seconds per pod (server default 30)")->check(CLI::PositiveNumber)->type_name("SECONDS");
  c->add_flag("--gather,-g", o->gather, "Group pods with identical output (like clush -b)");
  c->add_flag("--fail-fast", o->fail_fast, "Stop at the first pod that does not succeed");
  c->footer(
      "Give exactly one of --aliases, --label, --all. Results stream as each pod finishes.\n"
      "Exit status: 0 when every pod succeeded; 1 when a command failed; else 75 when one\n"
      "timed out; else 69 when a pod was unreachable or unknown; 68 when no pod matched.\n"
      "json output: {results: [result…] in request order, summary: {total, succeeded, failed,\n"
      "timeout, error, skipped}, groups (with --gather): [{aliases, status, exit_code, output}]}.\n"
      "--output raw prints as plain (raw bytes are for one result: exec run, exec show).\n"
      "ndjson output: the API's events as they arrive: {event: start, total, aliases}, {event:\n"
      "result, index, …result}, ({event: group, …} with --gather), {event: summary, …summary}.\n\n"
      "Examples:\n"
      "  podwrangler exec run-many 'df -h /' --aliases web-1,web-2\n"
      "  podwrangler exec run-many uptime --label app=web --parallel 50 --gather\n"
      "  podwrangler exec run-many 'make check' --all --fail-fast\n"
      "  podwrangler -o ndjson exec run-many hostname --all | jq -c 'select(.event==\"result\")'");
  c->callback([&ctx, o] {
    ctx.action = [&ctx, o]() -> int {
      std::string command = join_command(o->command);
      if (command.empty()) throw CliError(exit_code::usage, "no command given");
      nlohmann::json body{{"command", command}};
      std::string target;
      if (!o->aliases.empty()) {
        body["aliases"] = o->aliases;
        target = "aliases " + fold_aliases(o->aliases);
      } else if (!o->labels.empty()) {
        std::string sel;
        for (const auto& lb : o->labels) {
          if (lb.find('=') == std::string::npos || lb[0] == '=')
            throw CliError(exit_code::usage, "--label wants KEY=VALUE (got '" + lb + "')");
          sel += (sel.empty() ? "" : ",") + lb;
        }
        body["selector"] = sel;
        target = "selector " + sel;
      } else if (o->all) {
        body["all"] = true;
        target = "all";
      } else {
        throw CliError(exit_code::usage, "say which pods: --aliases A,B, --label KEY=VALUE or --all");
      }
      if (o->parallel > 0) body["parallel"] = o->parallel;
      if (o->timeout > 0) body["timeout"] = o->timeout;

      const Format fmt = ctx.format();
      const bool color = ctx.term().color_out;
      const bool stream_lines = (fmt == Format::table || fmt == Format::plain) && !o->gather;
      auto& api = ctx.api({5.0, (o->timeout > 0 ? o->timeout : 30.0) + 30.0});

      int total = -1;
      std::vector<std::string> aliases;
      std::vector<nlohmann::json> by_index;
      std::vector<nlohmann::json> received;
      std::string first_failure;
      auto started = std::chrono::steady_clock::now();
      Spinner spin("running on " + target + " …", ctx.spinner_enabled(), ctx.term().color_err);

      bool complete = api.post_stream("/api/v1/exec/stream", body, [&](const nlohmann::json& ev) {
        std::string kind = str(ev, "event");
        if (kind == "start") {
          total = int_of(ev, "total", 0);
          if (ev.contains("aliases") && ev["aliases"].is_array())
            for (const auto& x : ev["aliases"]) aliases.push_back(x.is_string() ? x.get<std::string>() : x.dump());
          by_index.assign(static_cast<std::size_t>(std::max(total, 0)), nullptr);
          if (fmt == Format::ndjson && total > 0) spin.above([&] { ctx.out(to_ndjson_line(ev)); });
          return true;
        }
        if (kind == "result") {
          nlohmann::json r = ev;
          r.erase("event");
          int idx = int_of(r, "index", static_cast<int>(received.size()));
          r.erase("index");
          if (idx >= 0 && static_cast<std::size_t>(idx) < by_index.size()) by_index[static_cast<std::size_t>(idx)] = r;
          received.push_back(r);
          spin.set_label(std::to_string(received.size()) + "/" + std::to_string(total) + " pods done …");
          if (fmt == Format::ndjson) spin.above([&] { ctx.out(to_ndjson_line(ev)); std::fflush(stdout); });
          if (stream_lines) {
            spin.above([&] {
              std::string alias = str(r, "alias");
              std::string st = str(r, "status");
              std::string prefix = paint(alias, Style::cyan, color) + ": ";
              std::string text = str(r, "output");
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
                out += prefix + paint("[" + what + (err.empty() || st == "failed" ? "" : ": " + err) + "]",
                                      st == "timeout" ? Style::yellow : Style::red, color) + "\n";
              }
              ctx.out(out);
            });
          }
          if (o->fail_fast && str(r, "status") != "succeeded") {
            std::string st = str(r, "status");
            first_failure = str(r, "alias") + " " + (st == "failed" ? "failed (exit " + exit_text(r) + ")" : st == "timeout" ? "timed out" : "could not run (" + error_text(r) + ")");
            return false;
          }
          return true;
        }
        return true;  // summary: recomputed below (it also counts skipped pods)
      });
      spin.stop();
      double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      if (total < 0)  // no start event: not our event stream, never an empty success
        api.expect("POST /api/v1/exec/stream", "the event stream has no start event");

      if (total == 0)
        throw CliError(exit_code::not_found,
                       o->all ? "no pods registered" : "no pods match " + target,
                       "see: podwrangler pod list");

      std::vector<nlohmann::json> ordered;  // request order, received only
      for (const auto& r : by_index)
        if (!r.is_null()) ordered.push_back(r);
      RunManySummary sum = summarize(received, total);
      std::vector<GatherGroup> groups;
      if (o->gather) groups = gather_results(ordered);
      auto group_json = [](const GatherGroup& g) {
        return nlohmann::json{{"aliases", g.aliases}, {"status", g.status},
                              {"exit_code", g.exit_code < 0 ? nlohmann::json(nullptr) : nlohmann::json(g.exit_code)},
                              {"output", g.output}};
      };

      switch (fmt) {
        case Format::json: {
          nlohmann::json doc{{"results", ordered}, {"summary", sum.to_json()}};
          if (o->gather) {
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
          if (o->gather) {
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
            ctx.out(out);
          }
          if (fmt == Format::table && !ordered.empty()) {
            std::vector<std::vector<std::string>> rows;
            for (const auto& r : ordered)
              rows.push_back({str(r, "alias"), paint_status(str(r, "status"), color), exit_text(r),
                              format_duration(num(r, "duration")), error_text(r)});
            ctx.out("\n" + render_table({{"ALIAS"}, {"STATUS"}, {"EXIT", false, true}, {"DURATION", false, true}, {"ERROR", true}},
                                        rows, ctx.term().width, color));
          }
          std::string line = std::to_string(sum.succeeded) + " ok / " + std::to_string(sum.failed) + " failed / " +
                             std::to_string(sum.timeout) + " timed out / " + std::to_string(sum.error) + " unreachable";
          if (sum.skipped) line += " / " + std::to_string(sum.skipped) + " not awaited";
          line += " (" + std::to_string(sum.total) + " pods, " + format_duration(elapsed) + ")";
          if (fmt == Format::table) ctx.out(paint(line, Style::bold, color) + "\n");
          else ctx.info(line);
          break;
        }
      }
      std::fflush(stdout);
      int rc = run_many_exit_code(sum);
      if (!complete && !first_failure.empty())
        throw CliError(rc, "stopped at the first failure (--fail-fast): " + first_failure +
                               (sum.skipped ? "; " + std::to_string(sum.skipped) + " pods not awaited" : ""));
      if (rc != exit_code::ok)
        throw CliError(rc, std::to_string(sum.total - sum.succeeded) + " of " + std::to_string(sum.total) +
                               " pods did not succeed (" + std::to_string(sum.failed) + " failed, " +
                               std::to_string(sum.timeout) + " timed out, " + std::to_string(sum.error) +
                               " unreachable)");
      return rc;
    };
  });
}

void set_history(CLI::App& exec, CommandContext& ctx) {
  struct Opts {
    std::string alias, status, since;
    int limit = 50;
    long long before = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* c = exec.add_subcommand("history", "Show past commands, newest first");
  c->add_option("--alias,-a", o->alias, "Only this pod")->type_name(kAliasType);
  c->add_option("--status,-s", o->status, "Only this status: running, succeeded, failed, timeout, error, interrupted")
      ->type_name("STATUS");
  c->add_option("--since", o->since, "Only commands started at or after this time (RFC 3339 or unix seconds)")
      ->type_name("TIME");
  c->add_option("--limit,-n", o->limit, "At most this many (1-1000)")->capture_default_str()->check(CLI::Range(1, 1000))->type_name("N");
  c->add_option("--before", o->before, "Page cursor: commands older than this id (from the previous page)")
      ->type_name("ID");
  c->footer(
      "json output: {items: [result…], next_before: id|null}; ndjson: one result per line.\n\n"
      "Examples:\n"
      "  podwrangler exec history\n"
      "  podwrangler exec history --alias web-1 --status failed --limit 10\n"
      "  podwrangler exec history --since 2026-11-25T00:00:00Z -o json | jq '.items | length'");
  c->callback([&ctx, o] {
    ctx.action = [&ctx, o]() -> int {
      if (!o->status.empty()) validate_history_status(o->status);
      std::string q = "?limit=" + std::to_string(o->limit);
      if (!o->alias.empty()) q += "&alias=" + url_encode(o->alias);
      if (!o->status.empty()) q += "&status=" + url_encode(o->status);
      if (!o->since.empty()) q += "&since=" + url_encode(o->since);
      if (o->before > 0) q += "&before=" + std::to_string(o->before);
      auto& api = ctx.api();
      nlohmann::json page;
      {
        Spinner spin("reading history …", ctx.spinner_enabled(), ctx.term().color_err);
        page = api.get("/api/v1/commands" + q, contract::history_page);
      }
      const nlohmann::json& items = page["items"];
      bool color = ctx.term().color_out;
      switch (ctx.format()) {
        case Format::json: ctx.out(to_json_text(page)); break;
        case Format::ndjson:
          for (const auto& it : items) ctx.out(to_ndjson_line(it));
          break;
        case Format::plain: {
          std::vector<std::vector<std::string>> rows;
          for (const auto& it : items)
            rows.push_back({str(it, "id"), str(it, "started_at"), str(it, "alias"), str(it, "status"), exit_text(it),
                            str(it, "duration"), str(it, "command")});
          ctx.out(render_plain(rows));
          break;
        }
        case Format::table: {
          if (items.empty()) {
            ctx.info("No commands recorded yet.");
            break;
          }
          std::vector<std::vector<std::string>> rows;
          for (const auto& it : items)
            rows.push_back({str(it, "id"), short_time(str(it, "started_at")), str(it, "alias"),
                            paint_status(str(it, "status"), color), exit_text(it), format_duration(num(it, "duration")),
                            str(it, "command")});
          ctx.out(render_table({{"ID", false, true}, {"STARTED"}, {"ALIAS"}, {"STATUS"}, {"EXIT", false, true},
                                {"DURATION", false, true}, {"COMMAND", true}},
                               rows, ctx.term().width, color));
          if (page.contains("next_before") && page["next_before"].is_number_integer())
            ctx.info("more: podwrangler exec history --before " + std::to_string(page["next_before"].get<long long>()));
        }
      }
      return exit_code::ok;
    };
  });
}

void set_show(CLI::App& exec, CommandContext& ctx) {
  auto id = std::make_shared<long long>(0);
  auto* c = exec.add_subcommand("show", "Show one past command with its output");
  c->add_option("id", *id, "History id (from exec history)")->required()->type_name("ID");
  c->footer(
      "--output plain prints the output as text, --output raw its exact bytes (binary included).\n\n"
      "Examples:\n  podwrangler exec show 42\n  podwrangler exec show 42 --json | jq -r .output\n"
      "  podwrangler -o raw exec show 42 > output.bin");
  c->callback([&ctx, id] {
    ctx.action = [&ctx, id]() -> int {
      auto& api = ctx.api();
      const std::string request = "GET /api/v1/commands/{id}";
      auto r = api.call("GET", "/api/v1/commands/" + std::to_string(*id));
      if (r.status == 404 && r.body.value("code", "") == "command_not_found")
        throw CliError(exit_code::not_found, "no command with id " + std::to_string(*id) + " in the history",
                       "see: podwrangler exec history");
      if (r.status != 200) api.raise(r);
      api.expect(request, contract::result(r.body));
      const auto& it = r.body;
      bool color = ctx.term().color_out;
      switch (ctx.format()) {
        case Format::json: ctx.out(to_json_text(it)); break;
        case Format::ndjson: ctx.out(to_ndjson_line(it)); break;
        case Format::plain:
          write_raw(stdout, ctx.raw_output() ? exact_output(api, request, it) : str(it, "output"));
          break;
        case Format::table: {
          std::vector<std::pair<std::string, std::string>> kv{
              {"id", str(it, "id")},
              {"alias", str(it, "alias")},
              {"command", str(it, "command")},
              {"status", paint_status(str(it, "status"), color)},
              {"exit code", exit_text(it)},
              {"started", str(it, "started_at")},
              {"finished", str(it, "finished_at")},
              {"duration", format_duration(num(it, "duration"))}};
          if (!error_text(it).empty()) kv.emplace_back("error", error_text(it));
          if (it.value("truncated", false)) kv.emplace_back("truncated", "yes");
          std::string out = render_kv(kv, color);
          std::string output = str(it, "output");
          if (!output.empty()) {
            out += paint("output", Style::bold, color) + "\n" + output;
            if (output.back() != '\n') out += "\n";
          }
          ctx.out(out);
        }
      }
      return exit_code::ok;
    };
  });
}

}  // namespace

void set_exec_command(CLI::App& app, CommandContext& ctx) {
  auto* exec = app.add_subcommand("exec", "Run commands on pods and read the history");
  exec->require_subcommand(1);
  exec->footer(
      "Examples:\n"
      "  podwrangler exec run web-1 uptime\n"
      "  podwrangler exec run-many 'df -h' --aliases web-1,web-2 --gather\n"
      "  podwrangler exec history --limit 5");
  set_run(*exec, ctx);
  set_run_many(*exec, ctx);
  set_history(*exec, ctx);
  set_show(*exec, ctx);
}

}  // namespace pw::cli

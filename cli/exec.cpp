// podwrangler exec run|history|show (run-many: run_many.cpp)
#include "cli/exec.hpp"

#include "cli/cli_error.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/exit_codes.hpp"
#include "cli/json_access.hpp"
#include "cli/run_many.hpp"
#include "embedded_server/store/command_status.hpp"

#include <podwrangler/redact.hpp>
#include <podwrangler/url.hpp>

#include <CLI/CLI.hpp>
#include <openssl/evp.h>

#include <utility>
#include <algorithm>
#include <cstdio>
#include <memory>

namespace pw::cli {

using server::command_status_from_string;
using server::command_status_names;
using server::CommandStatus;

// --- pure pieces (unit-tested) ----------------------------------------------------------

std::optional<std::string> base64_decode(std::string_view b64) {
  if (b64.size() % 4 != 0) return std::nullopt;
  std::size_t pad = 0;
  for (std::size_t i = 0; i < b64.size(); ++i) {
    char c = b64[i];
    bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
    if (c == '=' && i + 2 >= b64.size() && (i + 1 == b64.size() || b64[i + 1] == '='))
      ++pad;
    else if (!alpha || pad > 0)
      return std::nullopt;
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
  if (auto b64 = field::string(result, "output_b64")) return base64_decode(*b64);
  return field::text(result, "output");
}

std::string join_command(const std::vector<std::string>& words) {
  std::size_t start = (!words.empty() && words[0] == "--") ? 1 : 0;
  std::string cmd;
  for (std::size_t i = start; i < words.size(); ++i) cmd += (cmd.empty() ? "" : " ") + words[i];
  return cmd;
}

std::string error_text(const nlohmann::json& result) { return pw::redact_text(field::text(result, "error")); }

std::string exit_text(const nlohmann::json& result) {
  auto code = field::integer(result, "exit_code");
  return code ? std::to_string(static_cast<int>(*code)) : "-";
}

namespace {

void write_raw(FILE* f, const std::string& text) { std::fwrite(text.data(), 1, text.size(), f); }

// The exact bytes of a result, or the protocol error.
std::string exact_output(const ApiClient& api, const std::string& request, const nlohmann::json& result) {
  auto bytes = result_bytes(result);
  if (!bytes) api.expect(request, "result: \"output_b64\" is not valid base64");
  return *bytes;
}

// The exit status of `exec run` for a result: the remote command's own status.
int result_exit_code(const nlohmann::json& result) {
  auto status = command_status_from_string(field::text(result, "status"));
  if (status == CommandStatus::succeeded) return exit_code::ok;
  if (status == CommandStatus::failed) {
    auto code = static_cast<int>(field::integer(result, "exit_code").value_or(1));
    return (code > 0 && code < 256) ? code : exit_code::command_failed;
  }
  if (status == CommandStatus::timeout) return exit_code::timeout;
  return exit_code::unavailable;
}

// 2026-11-25T16:00:00.123Z → 2026-11-25 16:00:00
std::string short_time(const std::string& rfc3339) {
  if (rfc3339.size() >= 19 && rfc3339[10] == 'T') return rfc3339.substr(0, 10) + " " + rfc3339.substr(11, 8);
  return rfc3339;
}

std::string duration_text(const nlohmann::json& result) {
  return format_duration(field::number(result, "duration").value_or(0.0));
}

bool truncated(const nlohmann::json& result) { return field::boolean(result, "truncated").value_or(false); }

void validate_history_status(const std::string& s) {
  if (command_status_from_string(s)) return;
  throw CliError(exit_code::usage, "--status must be one of " + command_status_names() + " (got '" + s + "')");
}

// --- exec run ----------------------------------------------------------------------------

struct RunOptions {
  std::string alias;
  std::vector<std::string> command;
  double timeout = 0;
};

constexpr const char* kRunRequest = "POST /api/v1/pods/{alias}/exec";

// The result in an answer to kRunRequest: the body (200), or the "result" an error answer
// carries (the command ran and failed, timed out or lost its pod). Any other answer throws.
nlohmann::json run_result(ApiClient& api, const ApiReply& r, const std::string& alias) {
  if (r.status == 200) {
    api.expect(kRunRequest, contract::result(r.body));
    return r.body;
  }
  const nlohmann::json* result = r.status >= 400 ? field::find(r.body, "result") : nullptr;
  if (result) {
    api.expect(kRunRequest, contract::result(*result));
    return *result;
  }
  if (r.is(ErrorKind::not_found)) throw pod_not_found(alias);
  api.raise(r);
}

// table/plain: the output as the pod gave it (--output raw: its exact bytes) and, for a
// result of a 200 answer, its error on stderr; json/ndjson: the result object.
void print_run_result(CommandContext& ctx, const ApiClient& api, const nlohmann::json& result, bool answered_200) {
  if (ctx.format() == Format::json || ctx.format() == Format::ndjson) {
    ctx.out(ctx.format() == Format::json ? to_json_text(result) : to_ndjson_line(result));
    return;
  }
  if (ctx.raw_output()) {
    write_raw(stdout, exact_output(api, kRunRequest, result));
  } else {
    std::string output = field::text(result, "output");
    write_raw(stdout, output);
    if (!output.empty() && output.back() != '\n' && ctx.term().stdout_tty) write_raw(stdout, "\n");
  }
  std::fflush(stdout);
  std::string err = error_text(result);
  if (!err.empty() && answered_200) {
    write_raw(stderr, err);
    if (err.back() != '\n') write_raw(stderr, "\n");
  }
  if (truncated(result)) ctx.info("(output truncated by the server's cap)");
}

int exec_run(CommandContext& ctx, const RunOptions& o) {
  std::string command = join_command(o.command);
  if (command.empty()) throw CliError(exit_code::usage, "no command given", "podwrangler exec run ALIAS COMMAND…");
  nlohmann::json body{{"command", command}};
  if (o.timeout > 0) body["timeout"] = o.timeout;
  const double timeout = o.timeout > 0 ? o.timeout : 30.0;  // the server's default
  auto& api = ctx.api({5.0, timeout + 15.0});
  ApiReply r;
  {
    auto spin = ctx.spinner("running on " + o.alias + " …");
    r = api.call("POST", pod_path(o.alias) + "/exec", &body);
  }
  nlohmann::json result = run_result(api, r, o.alias);
  print_run_result(ctx, api, result, r.status == 200);
  if (r.status == 200) return result_exit_code(result);

  // An error answer that carries the result: the exit status says why.
  int mapped = exit_code_for_api_error(r.status, r.code());
  if (mapped == exit_code::timeout)
    throw CliError(exit_code::timeout,
                   "command timed out after " + format_duration(timeout) + " on " + o.alias + " (output so far shown)",
                   "raise it with --timeout SECONDS");
  if (r.status == 502 || mapped == exit_code::unavailable) {
    std::string why = error_text(result);
    throw CliError(exit_code::unavailable,
                   "cannot connect to pod " + o.alias + ": " + (why.empty() ? api_error_message(r) : why));
  }
  if (mapped == exit_code::command_failed) return result_exit_code(result);
  api.raise(r);
}

// --- exec history ------------------------------------------------------------------------

struct HistoryOptions {
  std::string alias, status, since;
  int limit = 50;
  long long before = 0;
};

int exec_history(CommandContext& ctx, const HistoryOptions& o) {
  if (!o.status.empty()) validate_history_status(o.status);
  std::string q = "?limit=" + std::to_string(o.limit);
  if (!o.alias.empty()) q += "&alias=" + pw::percent_encode(o.alias);
  if (!o.status.empty()) q += "&status=" + pw::percent_encode(o.status);
  if (!o.since.empty()) q += "&since=" + pw::percent_encode(o.since);
  if (o.before > 0) q += "&before=" + std::to_string(o.before);
  auto& api = ctx.api();
  nlohmann::json page;
  {
    auto spin = ctx.spinner("reading history …");
    page = api.get("/api/v1/commands" + q, contract::history_page);
  }
  const nlohmann::json& items = field::array(page, "items");
  bool color = ctx.term().color_out;
  switch (ctx.format()) {
    case Format::json: ctx.out(to_json_text(page)); break;
    case Format::ndjson:
      for (const auto& it : items) ctx.out(to_ndjson_line(it));
      break;
    case Format::plain: {
      std::vector<std::vector<std::string>> rows;
      for (const auto& it : items)
        rows.push_back({field::text(it, "id"), field::text(it, "started_at"), field::text(it, "alias"),
                        field::text(it, "status"), exit_text(it), field::text(it, "duration"),
                        field::text(it, "command")});
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
        rows.push_back({field::text(it, "id"), short_time(field::text(it, "started_at")), field::text(it, "alias"),
                        paint_status(field::text(it, "status"), color), exit_text(it), duration_text(it),
                        field::text(it, "command")});
      ctx.out(render_table({{"ID", false, true},
                            {"STARTED"},
                            {"ALIAS"},
                            {"STATUS"},
                            {"EXIT", false, true},
                            {"DURATION", false, true},
                            {"COMMAND", true}},
                           rows, ctx.term().width, color));
      if (auto next = field::integer(page, "next_before"))
        ctx.info("more: podwrangler exec history --before " + std::to_string(*next));
    }
  }
  return exit_code::ok;
}

// --- exec show ---------------------------------------------------------------------------

struct ShowOptions {
  long long id = 0;
};

int exec_show(CommandContext& ctx, const ShowOptions& o) {
  auto& api = ctx.api();
  const std::string request = "GET /api/v1/commands/{id}";
  auto r = api.call("GET", "/api/v1/commands/" + std::to_string(o.id));
  if (r.is(ErrorKind::command_not_found))
    throw CliError(exit_code::not_found, "no command with id " + std::to_string(o.id) + " in the history",
                   "see: podwrangler exec history");
  if (r.status != 200) api.raise(r);
  api.expect(request, contract::result(r.body));
  const auto& it = r.body;
  bool color = ctx.term().color_out;
  switch (ctx.format()) {
    case Format::json: ctx.out(to_json_text(it)); break;
    case Format::ndjson: ctx.out(to_ndjson_line(it)); break;
    case Format::plain:
      write_raw(stdout, ctx.raw_output() ? exact_output(api, request, it) : field::text(it, "output"));
      break;
    case Format::table: {
      std::vector<std::pair<std::string, std::string>> kv{{"id", field::text(it, "id")},
                                                          {"alias", field::text(it, "alias")},
                                                          {"command", field::text(it, "command")},
                                                          {"status", paint_status(field::text(it, "status"), color)},
                                                          {"exit code", exit_text(it)},
                                                          {"started", field::text(it, "started_at")},
                                                          {"finished", field::text(it, "finished_at")},
                                                          {"duration", duration_text(it)}};
      if (!error_text(it).empty()) kv.emplace_back("error", error_text(it));
      if (truncated(it)) kv.emplace_back("truncated", "yes");
      std::string out = render_kv(kv, color);
      std::string output = field::text(it, "output");
      if (!output.empty()) {
        out += paint("output", Style::bold, color) + "\n" + output;
        if (output.back() != '\n') out += "\n";
      }
      ctx.out(out);
    }
  }
  return exit_code::ok;
}

}  // namespace

void set_exec_command(CLI::App& app, CommandContext& ctx) {
  auto* exec = add_group(app, "exec", "Run commands on pods and read the history",
                         "Examples:\n"
                         "  podwrangler exec run web-1 uptime\n"
                         "  podwrangler exec run-many 'df -h' --aliases web-1,web-2 --gather\n"
                         "  podwrangler exec history --limit 5");

  auto run = std::make_shared<RunOptions>();
  auto* c = exec->add_subcommand("run", "Run a command on one pod; its exit status becomes ours");
  c->add_option("--timeout,-t", run->timeout, "Seconds before the command is interrupted (server default 30)")
      ->check(CLI::PositiveNumber)
      ->type_name("SECONDS");
  c->add_option("alias", run->alias, "The pod's alias")->required()->type_name(kAliasType);
  c->add_option("command", run->command, "The shell command (words are joined by spaces)")
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
  set_action(c, ctx, run, exec_run);

  auto many = std::make_shared<RunManyOptions>();
  c = exec->add_subcommand("run-many", "Run a command on many pods in parallel");
  c->add_option("command", many->command, "The shell command (quote it when it has options: 'df -h')")
      ->required()
      ->type_name("COMMAND");
  auto* aliases = c->add_option("--aliases,-a", many->aliases, "Comma-separated aliases")
                      ->delimiter(',')
                      ->type_name(kAliasListType)
                      ->allow_extra_args(false);  // one value per occurrence: the command may follow
  auto* labels = c->add_option("--label,-l", many->labels, "Pods with this label (repeat to require several)")
                     ->type_name("KEY=VALUE")
                     ->allow_extra_args(false);
  auto* all = c->add_flag("--all", many->all, "Every registered pod");
  aliases->excludes(labels)->excludes(all);
  labels->excludes(all);
  c->add_option("--parallel,-P", many->parallel, "Pods at a time (server default 32)")
      ->check(CLI::Range(1, 1024))
      ->type_name("N");
  c->add_option("--timeout,-t", many->timeout, "Seconds per pod (server default 30)")
      ->check(CLI::PositiveNumber)
      ->type_name("SECONDS");
  c->add_flag("--gather,-g", many->gather, "Group pods with identical output (like clush -b)");
  c->add_flag("--fail-fast", many->fail_fast, "Stop at the first pod that does not succeed");
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
  set_action(c, ctx, many, exec_run_many);

  auto history = std::make_shared<HistoryOptions>();
  c = exec->add_subcommand("history", "Show past commands, newest first");
  c->add_option("--alias,-a", history->alias, "Only this pod")->type_name(kAliasType);
  c->add_option("--status,-s", history->status,
                "Only this status: running, succeeded, failed, timeout, error, interrupted")
      ->type_name("STATUS");
  c->add_option("--since", history->since, "Only commands started at or after this time (RFC 3339 or unix seconds)")
      ->type_name("TIME");
  c->add_option("--limit,-n", history->limit, "At most this many (1-1000)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000))
      ->type_name("N");
  c->add_option("--before", history->before, "Page cursor: commands older than this id (from the previous page)")
      ->type_name("ID");
  c->footer(
      "json output: {items: [result…], next_before: id|null}; ndjson: one result per line.\n\n"
      "Examples:\n"
      "  podwrangler exec history\n"
      "  podwrangler exec history --alias web-1 --status failed --limit 10\n"
      "  podwrangler exec history --since 2026-11-25T00:00:00Z -o json | jq '.items | length'");
  set_action(c, ctx, history, exec_history);

  auto show = std::make_shared<ShowOptions>();
  c = exec->add_subcommand("show", "Show one past command with its output");
  c->add_option("id", show->id, "History id (from exec history)")->required()->type_name("ID");
  c->footer(
      "--output plain prints the output as text, --output raw its exact bytes (binary included).\n\n"
      "Examples:\n  podwrangler exec show 42\n  podwrangler exec show 42 --json | jq -r .output\n"
      "  podwrangler -o raw exec show 42 > output.bin");
  set_action(c, ctx, show, exec_show);
}

}  // namespace pw::cli

// podwrangler capsule exec|run|ps|kill
#include "cli/capsule.hpp"

#include "cli/cli_error.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/exit_codes.hpp"
#include "cli/json_access.hpp"

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <utility>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace pw::cli {

namespace {

constexpr double kServerDefaultTimeout = 30.0;              // the API's default timeout_sec
constexpr std::size_t kMaxStdin = std::size_t{512} * 1024;  // the request must fit the server's body limit (1 MiB)

void write_raw(FILE* f, const std::string& bytes) {
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fflush(f);
}

// argv as given after "--" (CLI11 keeps a leading "--" in some positions).
std::vector<std::string> command_words(const std::vector<std::string>& words) {
  std::vector<std::string> argv = words;
  if (!argv.empty() && argv[0] == "--") argv.erase(argv.begin());
  if (argv.empty()) throw CliError(exit_code::usage, "no command given", "… -- COMMAND ARGS…");
  return argv;
}

std::string read_stdin() {
  std::string data;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    data.append(buf, static_cast<std::size_t>(n));
    if (data.size() > kMaxStdin)
      throw CliError(exit_code::usage, "--stdin takes at most 512 KiB (upload larger data as a file)");
  }
  return data;
}

// The exit status for a result: the command's own (a timeout is 75 with one line saying so).
int result_status(CommandContext& ctx, const nlohmann::json& r, const std::string& where, double timeout) {
  if (field::boolean(r, "truncated").value_or(false)) ctx.info("(output truncated by the server's cap)");
  if (field::boolean(r, "timed_out").value_or(false))
    throw CliError(exit_code::timeout, "command timed out after " + format_duration(timeout) + " in " + where,
                   "raise it with --timeout SECONDS");
  if (field::boolean(r, "resumed").value_or(false)) ctx.info("(the capsule was paused: resumed first)");
  if (auto rec = field::string(r, "recovered"); rec && !rec->empty())
    ctx.info("(the capsule had stopped behind our back: " + std::string(*rec) + ")");
  auto code = field::integer(r, "exit_code").value_or(exit_code::software);
  return (code >= 0 && code < 256) ? static_cast<int>(code) : exit_code::software;
}

// table/plain: stdout and stderr as the command wrote them; json/ndjson: the result.
int print_result(CommandContext& ctx, const ApiClient& api, const std::string& request, const nlohmann::json& r,
                 const std::string& where, double timeout) {
  if (ctx.format() == Format::json || ctx.format() == Format::ndjson) {
    ctx.out(ctx.format() == Format::json ? to_json_text(r) : to_ndjson_line(r));
  } else {
    write_raw(stdout, exact_bytes(api, request, r, "stdout"));
    write_raw(stderr, exact_bytes(api, request, r, "stderr"));
  }
  return result_status(ctx, r, where, timeout);
}

// --- exec ----------------------------------------------------------------------------------------

struct ExecOptions {
  std::string id, cwd;
  std::vector<std::string> command, env;
  double timeout = 0;
  bool stream = false, background = false, stdin_data = false;
};

nlohmann::json exec_body(const ExecOptions& o) {
  nlohmann::json body{{"argv", command_words(o.command)}};
  if (!o.env.empty()) body["env"] = parse_env_items(o.env);
  if (!o.cwd.empty()) body["cwd"] = o.cwd;
  if (o.background) return body;
  if (o.timeout > 0) body["timeout_sec"] = o.timeout;
  if (o.stdin_data) body["stdin"] = read_stdin();
  return body;
}

// --stream: stdout/stderr written as they arrive; json/ndjson: the events, one per line.
int exec_streamed(CommandContext& ctx, ApiClient& api, const ExecOptions& o, const nlohmann::json& body,
                  double timeout) {
  const std::string request = "POST /api/v1/capsules/{id}/exec/stream";
  const bool events_out = ctx.format() == Format::json || ctx.format() == Format::ndjson;
  std::optional<nlohmann::json> exit_ev, error_ev;
  api.post_stream(
      capsule_path(o.id) + "/exec/stream", body,
      [&](const nlohmann::json& ev) {
        if (events_out) {
          ctx.out(to_ndjson_line(ev));
          std::fflush(stdout);
        }
        const std::string kind(field::string(ev, "event").value_or(""));
        if (kind == "stdout" && !events_out) write_raw(stdout, exact_bytes(api, request, ev, "data"));
        if (kind == "stderr" && !events_out) write_raw(stderr, exact_bytes(api, request, ev, "data"));
        if (kind == "exit") exit_ev = ev;
        if (kind == "error") error_ev = ev;
        return true;
      },
      contract::exec_event);
  if (error_ev) {
    const std::string code(field::string(*error_ev, "code").value_or(""));
    int rc = exit_code_for_api_error(500, code);
    if (rc == exit_code::not_found)
      throw CliError(rc, field::text(*error_ev, "message"), "see: podwrangler capsule list");
    throw CliError(rc, field::text(*error_ev, "message"));
  }
  if (!exit_ev) api.expect(request, "the event stream ended without an exit event");
  if (events_out) {
    // The events are the output; the status is still the command's.
    if (field::boolean(*exit_ev, "timed_out").value_or(false)) return exit_code::timeout;
    auto code = field::integer(*exit_ev, "exit_code").value_or(exit_code::software);
    return (code >= 0 && code < 256) ? static_cast<int>(code) : exit_code::software;
  }
  return result_status(ctx, *exit_ev, o.id, timeout);
}

int capsule_exec(CommandContext& ctx, const ExecOptions& o) {
  if (o.background && (o.stream || o.stdin_data || o.timeout > 0))
    throw CliError(exit_code::usage, "--background takes no --stream, --stdin or --timeout");
  nlohmann::json body = exec_body(o);
  const double timeout = o.timeout > 0 ? o.timeout : kServerDefaultTimeout;
  auto& api = ctx.api({5.0, timeout + 30.0});
  if (o.background) {
    auto r = capsule_call(api, "POST", capsule_path(o.id) + "/processes", &body, {201});
    auto pid = field::integer(r, "pid");
    if (!pid) api.expect("POST /api/v1/capsules/{id}/processes", "\"pid\" is missing");
    if (ctx.format() == Format::json || ctx.format() == Format::ndjson)
      ctx.out(ctx.format() == Format::json ? to_json_text(r) : to_ndjson_line(r));
    else
      ctx.out(std::to_string(*pid) + "\n");
    return exit_code::ok;
  }
  if (o.stream) return exec_streamed(ctx, api, o, body, timeout);
  const std::string request = "POST /api/v1/capsules/{id}/exec";
  nlohmann::json r;
  {
    auto spin = ctx.spinner("running in " + o.id + " …");
    r = capsule_call(api, "POST", capsule_path(o.id) + "/exec", &body, {200}, contract::exec_result);
  }
  return print_result(ctx, api, request, r, o.id, timeout);
}

// --- run -----------------------------------------------------------------------------------------

struct RunOptions {
  SpecOptions spec;
  std::vector<std::string> command;
  std::string cwd;
  double timeout = 0;
  bool rm = false;
};

int capsule_run(CommandContext& ctx, const RunOptions& o) {
  nlohmann::json body = spec_body(o.spec);
  auto argv = command_words(o.command);
  const double timeout = o.timeout > 0 ? o.timeout : kServerDefaultTimeout;
  auto& api = ctx.api({5.0, timeout + 120.0});
  if (o.rm) {
    body["argv"] = argv;
    if (!o.cwd.empty()) body["cwd"] = o.cwd;
    if (o.timeout > 0) body["timeout_sec"] = o.timeout;
    const std::string request = "POST /api/v1/capsules/run";
    nlohmann::json r;
    {
      auto spin = ctx.spinner("running in a one-time capsule …");
      r = capsule_call(api, "POST", "/api/v1/capsules/run", &body, {200}, contract::exec_result);
    }
    return print_result(ctx, api, request, r, "the one-time capsule", timeout);
  }
  // Kept: create, then exec; the capsule's id on stderr.
  body["wait"] = true;
  nlohmann::json c;
  {
    auto spin = ctx.spinner("creating a capsule …");
    c = capsule_call(api, "POST", "/api/v1/capsules", &body, {201}, contract::capsule);
  }
  const std::string id = field::text(c, "id");
  ctx.info("capsule " + id + " (kept; destroy it with: podwrangler capsule destroy " + id + ")");
  nlohmann::json exec{{"argv", argv}};
  if (!o.cwd.empty()) exec["cwd"] = o.cwd;
  if (o.timeout > 0) exec["timeout_sec"] = o.timeout;
  const std::string request = "POST /api/v1/capsules/{id}/exec";
  auto r = capsule_call(api, "POST", capsule_path(id) + "/exec", &exec, {200}, contract::exec_result);
  return print_result(ctx, api, request, r, id, timeout);
}

// --- ps, kill --------------------------------------------------------------------------------------

struct PsOptions {
  std::string id;
};

int capsule_ps(CommandContext& ctx, const PsOptions& o) {
  auto& api = ctx.api();
  auto list = capsule_call(api, "GET", capsule_path(o.id) + "/processes", nullptr, {200}, contract::process_list);
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : list) {
    std::string argv;
    for (const auto& w : field::array(p, "argv"))
      argv += (argv.empty() ? "" : " ") + (w.is_string() ? w.get<std::string>() : w.dump());
    rows.push_back({field::text(p, "pid"), format_duration(field::number(p, "running_sec").value_or(0)),
                    field::boolean(p, "background").value_or(false) ? "background" : "exec", argv});
  }
  switch (ctx.format()) {
    case Format::json: ctx.out(to_json_text(list)); break;
    case Format::ndjson:
      for (const auto& p : list) ctx.out(to_ndjson_line(p));
      break;
    case Format::plain: ctx.out(render_plain(rows)); break;
    case Format::table:
      if (rows.empty()) {
        ctx.info("No processes of ours are running in " + o.id + ".");
        break;
      }
      ctx.out(render_table({{"PID", false, true}, {"RUNNING", false, true}, {"KIND"}, {"COMMAND", true}}, rows,
                           ctx.term().width, ctx.term().color_out));
  }
  return exit_code::ok;
}

struct KillOptions {
  std::string id;
  int pid = 0;
  int signal = 9;
};

int capsule_kill(CommandContext& ctx, const KillOptions& o) {
  auto& api = ctx.api();
  capsule_call(api, "DELETE",
               capsule_path(o.id) + "/processes/" + std::to_string(o.pid) + "?signal=" + std::to_string(o.signal),
               nullptr, {204});
  nlohmann::json done{{"id", o.id}, {"pid", o.pid}, {"signal", o.signal}};
  if (ctx.format() == Format::json || ctx.format() == Format::ndjson)
    ctx.out(ctx.format() == Format::json ? to_json_text(done) : to_ndjson_line(done));
  else
    ctx.out("Sent signal " + std::to_string(o.signal) + " to process " + std::to_string(o.pid) + " in " + o.id + "\n");
  return exit_code::ok;
}

}  // namespace

void add_capsule_exec_commands(CLI::App* g, CommandContext& ctx) {
  auto exec = std::make_shared<ExecOptions>();
  auto* c = g->add_subcommand("exec", "Run a command in a capsule; its exit status becomes ours");
  c->add_option("--env,-e", exec->env, "An environment variable for the command (repeatable)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
  c->add_option("--cwd", exec->cwd, "Working directory (absolute, inside the capsule)")->type_name("DIR");
  c->add_option("--timeout,-t", exec->timeout, "Seconds before the command is killed (server default 30)")
      ->check(CLI::Range(0.001, 86400.0))
      ->type_name("SECONDS");
  c->add_flag("--stream", exec->stream, "Write stdout and stderr as they come (NDJSON events underneath)");
  c->add_flag("--stdin", exec->stdin_data, "Send this program's standard input to the command (at most 512 KiB)");
  c->add_flag("--background,-b", exec->background, "Start it in the background and print its pid (see ps, kill)");
  c->add_option("id", exec->id, "The capsule's id")->required()->type_name(kCapsuleType);
  c->add_option("command", exec->command, "The program and its arguments (no shell: use sh -c '…' for one)")
      ->required()
      ->type_name("COMMAND");
  c->positionals_at_end();
  c->footer(
      "Put options before ID; everything after ID (or after --) is the command. A paused capsule\n"
      "is resumed first (unless it was created with --no-auto-resume). Exit status: the command's;\n"
      "75 on timeout, 68 unknown capsule, 73 capsule not running.\n"
      "json/ndjson output: {stdout, stderr, exit_code, duration_ms, timed_out, truncated, resumed,\n"
      "recovered} (stdout_b64/stderr_b64: the exact bytes when they are not UTF-8); with --stream\n"
      "the events, one per line: start, stdout, stderr, exit (or error).\n\n"
      "Examples:\n"
      "  podwrangler capsule exec cap-0123456789abcdef -- uname -a\n"
      "  podwrangler capsule exec --cwd /tmp -e MODE=ci cap-0123456789abcdef -- sh -c 'make test'\n"
      "  podwrangler capsule exec --stream cap-0123456789abcdef -- sh -c 'for i in 1 2 3; do echo $i; sleep 1; done'\n"
      "  podwrangler capsule exec --background cap-0123456789abcdef -- sleep 600");
  set_action(c, ctx, exec, capsule_exec);

  auto run = std::make_shared<RunOptions>();
  c = g->add_subcommand("run", "Create a capsule, run one command in it (and with --rm destroy it)");
  add_spec_options(c, run->spec, /*with_timeout=*/false);
  c->add_flag("--rm", run->rm, "Destroy the capsule afterwards, whatever happens (one-time jobs)");
  c->add_option("--cwd", run->cwd, "Working directory of the command")->type_name("DIR");
  c->add_option("--timeout,-t", run->timeout, "Seconds before the command is killed (server default 30)")
      ->check(CLI::Range(0.001, 86400.0))
      ->type_name("SECONDS");
  c->add_option("command", run->command, "The program and its arguments")->required()->type_name("COMMAND");
  c->positionals_at_end();
  c->footer(
      "Without --rm the capsule stays (its id is printed on stderr). Exit status: the command's.\n\n"
      "Examples:\n"
      "  podwrangler capsule run --rm --image busybox:latest -- sh -c 'echo hello'\n"
      "  podwrangler capsule run --image python:3.12-slim --memory 1024 -- python3 -c 'print(42)'");
  set_action(c, ctx, run, capsule_run);

  auto ps = std::make_shared<PsOptions>();
  c = g->add_subcommand("ps", "The processes we run in a capsule (execs and background processes)");
  c->add_option("id", ps->id, "The capsule's id")->required()->type_name(kCapsuleType);
  c->footer("Example:\n  podwrangler capsule ps cap-0123456789abcdef");
  set_action(c, ctx, ps, capsule_ps);

  auto kill = std::make_shared<KillOptions>();
  c = g->add_subcommand("kill", "Signal a process in a capsule (SIGKILL by default)");
  c->add_option("id", kill->id, "The capsule's id")->required()->type_name(kCapsuleType);
  c->add_option("pid", kill->pid, "The process id (from ps)")
      ->required()
      ->check(CLI::Range(1, 4194304))
      ->type_name("PID");
  c->add_option("--signal,-s", kill->signal, "Signal number (default 9)")->check(CLI::Range(1, 64))->type_name("N");
  c->footer(
      "Examples:\n  podwrangler capsule kill cap-0123456789abcdef 42\n"
      "  podwrangler capsule kill --signal 15 cap-0123456789abcdef 42");
  set_action(c, ctx, kill, capsule_kill);
}

}  // namespace pw::cli

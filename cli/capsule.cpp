// podwrangler capsule create|get-or-create|list|show|destroy|pause|resume|stop|start|ping|
// set-timeout|events (exec, run, ps, kill: capsule_exec.cpp; files: capsule_files.cpp)
#include "cli/capsule.hpp"

#include "cli/cli_error.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/exec.hpp"
#include "cli/exit_codes.hpp"
#include "cli/json_access.hpp"

#include <podwrangler/url.hpp>

#include <CLI/CLI.hpp>

#include <utility>
#include <chrono>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

namespace pw::cli {

// --- shared with capsule_exec.cpp and capsule_files.cpp -----------------------------------------

std::string capsule_path(const std::string& id) { return "/api/v1/capsules/" + pw::percent_encode(id); }

void raise_capsule_error(ApiClient& api, const ApiReply& r) {
  if (r.is(ErrorKind::capsule_not_found))
    throw CliError(exit_code::not_found, api_error_message(r), "see: podwrangler capsule list");
  api.raise(r);
}

nlohmann::json capsule_call(ApiClient& api, const std::string& method, const std::string& path,
                            const nlohmann::json* body, std::initializer_list<int> ok, ApiClient::Contract contract) {
  auto r = api.call(method, path, body);
  if (std::find(ok.begin(), ok.end(), r.status) == ok.end()) {
    if (r.status < 400)
      api.expect(method + " " + path.substr(0, path.find('?')), "unexpected HTTP " + std::to_string(r.status));
    raise_capsule_error(api, r);
  }
  if (contract) api.expect(method + " " + path.substr(0, path.find('?')), contract(r.body));
  return std::move(r.body);
}

std::map<std::string, std::string> parse_env_items(const std::vector<std::string>& items) {
  std::map<std::string, std::string> out;
  for (const auto& item : items) {
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw CliError(exit_code::usage, "--env wants KEY=VALUE (got '" + item + "')");
    out[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return out;
}

namespace {

nlohmann::json parse_mount(const std::string& item) {
  std::vector<std::string> parts;
  for (std::size_t pos = 0;;) {
    auto colon = item.find(':', pos);
    parts.push_back(item.substr(pos, colon == std::string::npos ? std::string::npos : colon - pos));
    if (colon == std::string::npos) break;
    pos = colon + 1;
  }
  bool ok = parts.size() == 2 || (parts.size() == 3 && (parts[2] == "ro" || parts[2] == "rw"));
  if (!ok || parts[0].empty() || parts[1].empty())
    throw CliError(exit_code::usage, "--mount wants HOST:PATH or HOST:PATH:ro (got '" + item + "')");
  return {{"host_path", parts[0]}, {"target", parts[1]}, {"read_only", parts.size() == 3 && parts[2] == "ro"}};
}

}  // namespace

void add_spec_options(CLI::App* cmd, SpecOptions& o, bool with_timeout) {
  auto* image = cmd->add_option("--image,-i", o.image, "Image to run (already in the engine: nothing is pulled)")
                    ->type_name("IMAGE");
  auto* tmpl = cmd->add_option("--template", o.template_name, "A template of the server (an image and its defaults)")
                   ->type_name("NAME");
  image->excludes(tmpl);
  cmd->add_option("--vcpus", o.vcpus, "CPUs (default 1)")->check(CLI::PositiveNumber)->type_name("N");
  cmd->add_option("--memory,-m", o.memory_mb, "Memory limit in MiB (default 512)")
      ->check(CLI::Range(6LL, 1LL << 20))
      ->type_name("MIB");
  if (with_timeout)
    cmd->add_option("--timeout", o.timeout,
                    "Seconds of idleness before --on-expire happens (default 300, 0: never); running commands, "
                    "background processes and open streams are not idleness")
        ->check(CLI::Range(0LL, 30LL * 86400))
        ->type_name("SECONDS");
  cmd->add_option("--env,-e", o.env, "An environment variable (repeatable)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
  cmd->add_option("--mount", o.mounts, "Bind mount (repeatable); HOST must exist on the engine's host")
      ->type_name("HOST:PATH[:ro]")
      ->allow_extra_args(false);
  cmd->add_option("--port,-p", o.ports, "Publish a container port on 127.0.0.1 (repeatable)")
      ->check(CLI::Range(1, 65535))
      ->type_name("PORT")
      ->allow_extra_args(false);
  cmd->add_option("--network", o.network, "none (the default: no network), bridge, or a network's name")
      ->type_name("NETWORK");
  cmd->add_option("--label,-l", o.labels, "A label (repeatable)")->type_name("KEY=VALUE")->allow_extra_args(false);
  cmd->add_option("--owner", o.owner, "Who the capsule belongs to")->type_name("NAME");
  cmd->add_option("--session", o.session, "The owner's session (with --owner, the key of get-or-create)")
      ->type_name("NAME");
  cmd->add_flag("--workspace", o.workspace,
                "Mount the host directory workspaces/OWNER/SESSION of the server's data dir at /workspace "
                "(kept after destroy; needs --owner and --session)");
  cmd->add_option("--on-expire", o.on_expire, "What the idle timeout does: pause (default), stop or destroy")
      ->check(CLI::IsMember({"pause", "stop", "destroy"}))
      ->type_name("ACTION");
  cmd->add_option("--lifetime", o.lifetime,
                  "Seconds of running time after which the capsule ends by itself (default 0: until destroyed)")
      ->check(CLI::Range(0LL, 366LL * 86400))
      ->type_name("SECONDS");
  cmd->add_flag("--rm-at-end", o.rm_at_end, "Destroy the capsule when its --lifetime ends (default: stop it)");
  cmd->add_flag("--no-auto-resume", o.no_auto_resume, "exec on a paused capsule fails instead of resuming it");
}

nlohmann::json spec_body(const SpecOptions& o) {
  if (o.image.empty() && o.template_name.empty())
    throw CliError(exit_code::usage, "give --image IMAGE or --template NAME");
  nlohmann::json b = nlohmann::json::object();
  if (!o.image.empty()) b["image"] = o.image;
  if (!o.template_name.empty()) b["template"] = o.template_name;
  if (o.vcpus > 0) b["vcpus"] = o.vcpus;
  if (o.memory_mb > 0) b["memory_mb"] = o.memory_mb;
  if (o.timeout >= 0) b["timeout_sec"] = o.timeout;
  if (!o.env.empty()) b["env"] = parse_env_items(o.env);
  if (!o.mounts.empty()) {
    b["mounts"] = nlohmann::json::array();
    for (const auto& m : o.mounts) b["mounts"].push_back(parse_mount(m));
  }
  if (!o.ports.empty()) b["ports"] = o.ports;
  if (!o.network.empty()) b["network"] = o.network;
  if (!o.labels.empty()) b["labels"] = parse_labels(o.labels);
  if (!o.owner.empty()) b["owner"] = o.owner;
  if (!o.session.empty()) b["session"] = o.session;
  if (o.workspace) b["workspace"] = true;
  if (!o.on_expire.empty()) b["on_expire"] = o.on_expire;
  if (o.lifetime >= 0) b["lifetime_sec"] = o.lifetime;
  if (o.rm_at_end) b["remove_at_end"] = true;
  if (o.no_auto_resume) b["auto_resume"] = false;
  return b;
}

std::string exact_bytes(const ApiClient& api, const std::string& request, const nlohmann::json& j,
                        const std::string& name) {
  if (auto b64 = field::string(j, name + "_b64")) {
    auto bytes = base64_decode(*b64);
    if (!bytes) api.expect(request, "\"" + name + "_b64\" is not valid base64");
    return *bytes;
  }
  return field::text(j, name);
}

// --- contracts ---------------------------------------------------------------------------------

namespace contract {
namespace {
std::string need(const nlohmann::json& j, const char* what, std::initializer_list<const char*> strings,
                 std::initializer_list<const char*> integers = {}, std::initializer_list<const char*> bools = {}) {
  if (!j.is_object()) return std::string(what) + " is not a JSON object";
  for (const char* k : strings)
    if (!field::string(j, k)) return std::string(what) + ": \"" + k + "\" is missing or not a string";
  for (const char* k : integers)
    if (!field::integer(j, k)) return std::string(what) + ": \"" + k + "\" is missing or not an integer";
  for (const char* k : bools)
    if (!field::boolean(j, k)) return std::string(what) + ": \"" + k + "\" is missing or not a boolean";
  return "";
}
template <class F>
std::string each(const nlohmann::json& j, const char* what, F check) {
  if (!j.is_array()) return std::string(what) + " is not a JSON array";
  for (const auto& it : j)
    if (auto p = check(it); !p.empty()) return p;
  return "";
}
}  // namespace

std::string capsule(const nlohmann::json& j) {
  if (auto p = need(j, "capsule", {"id", "state"}); !p.empty()) return p;
  if (!field::find(j, "spec") || !field::find(j, "spec")->is_object()) return "capsule: \"spec\" is not an object";
  return "";
}
std::string capsule_list(const nlohmann::json& j) { return each(j, "the capsule list", capsule); }
std::string exec_result(const nlohmann::json& j) {
  return need(j, "exec result", {"stdout", "stderr"}, {"exit_code"}, {"timed_out"});
}
std::string exec_event(const nlohmann::json& j) {
  if (auto p = need(j, "event", {"event"}); !p.empty()) return p;
  const std::string ev(*field::string(j, "event"));
  if (ev == "stdout" || ev == "stderr") return need(j, "output event", {"data"});
  if (ev == "exit") return need(j, "exit event", {}, {"exit_code"});
  if (ev == "error") return need(j, "error event", {"code", "message"});
  return "";  // start, and events of later versions
}
std::string file_stat(const nlohmann::json& j) { return need(j, "file", {"path", "name", "type"}, {"size"}); }
std::string file_list(const nlohmann::json& j) { return each(j, "the file list", file_stat); }
std::string process_list(const nlohmann::json& j) {
  return each(j, "the process list", [](const nlohmann::json& p) { return need(p, "process", {}, {"pid"}); });
}
std::string event_list(const nlohmann::json& j) {
  return each(j, "the event list", [](const nlohmann::json& e) { return need(e, "event", {"to"}, {"at_ms"}); });
}
}  // namespace contract

namespace {

// --- how a capsule is shown ---------------------------------------------------------------------

// Unix milliseconds → "2026-11-25 16:00:00" (UTC); "-" for 0.
std::string time_text(long long ms) {
  if (ms <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// "12s", "5m", "3h", "2d" since unix milliseconds.
std::string age_text(long long ms) {
  if (ms <= 0) return "-";
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
                 .count();
  long long s = std::max(0LL, (now - ms) / 1000);
  if (s < 120) return std::to_string(s) + "s";
  if (s < 7200) return std::to_string(s / 60) + "m";
  if (s < 172800) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

const nlohmann::json& spec_of(const nlohmann::json& c) { return field::object(c, "spec"); }

std::string image_text(const nlohmann::json& c) {
  std::string image = field::text(spec_of(c), "image");
  std::string tmpl = field::text(spec_of(c), "template");
  return tmpl.empty() ? image : "template " + tmpl + (image.empty() ? "" : " (" + image + ")");
}

std::string map_text(const nlohmann::json& obj, const char* sep = "=") {
  std::string s;
  for (const auto& [k, v] : obj.items())
    s += (s.empty() ? "" : ",") + k + sep + (v.is_string() ? v.get<std::string>() : v.dump());
  return s;
}

std::string owner_text(const nlohmann::json& c) {
  std::string o = field::text(spec_of(c), "owner"), s = field::text(spec_of(c), "session");
  if (o.empty() && s.empty()) return "-";
  return o + (s.empty() ? "" : "/" + s);
}

std::string state_text(const std::string& state, bool color) {
  if (state == "running") return paint(state, Style::green, color);
  if (state == "paused" || state == "starting") return paint(state, Style::yellow, color);
  if (state == "error") return paint(state, Style::red, color);
  if (state == "stopped" || state == "destroyed") return paint(state, Style::dim, color);
  return state;
}

std::vector<std::string> plain_row(const nlohmann::json& c) {
  return {field::text(c, "id"),
          field::text(c, "state"),
          image_text(c),
          field::text(spec_of(c), "owner"),
          field::text(spec_of(c), "session"),
          field::text(c, "exec_mode")};
}

void print_capsule(CommandContext& ctx, const nlohmann::json& c) {
  bool color = ctx.term().color_out;
  switch (ctx.format()) {
    case Format::json: ctx.out(to_json_text(c)); return;
    case Format::ndjson: ctx.out(to_ndjson_line(c)); return;
    case Format::plain: ctx.out(render_plain({plain_row(c)})); return;
    case Format::table: break;
  }
  const auto& spec = spec_of(c);
  const auto& limits = field::object(c, "limits");
  std::vector<std::pair<std::string, std::string>> kv{
      {"id", field::text(c, "id")},
      {"state", state_text(field::text(c, "state"), color)},
      {"image", image_text(c)},
      {"owner", owner_text(c)},
  };
  std::string mode = field::text(c, "exec_mode");
  if (!field::text(c, "exec_mode_reason").empty()) mode += " (" + field::text(c, "exec_mode_reason") + ")";
  kv.emplace_back("exec", mode.empty() ? "-" : mode);
  kv.emplace_back("origin", field::text(c, "origin", "-"));
  if (!field::text(c, "reason").empty()) kv.emplace_back("reason", field::text(c, "reason"));
  kv.emplace_back("created", time_text(field::integer(c, "created_ms").value_or(0)));
  kv.emplace_back("last active", time_text(field::integer(c, "last_active_ms").value_or(0)));
  long long idle = field::integer(spec, "timeout_sec").value_or(0);
  kv.emplace_back("idle timeout",
                  idle == 0 ? "never" : std::to_string(idle) + " s, then " + field::text(spec, "on_expire"));
  long long life = field::integer(spec, "lifetime_sec").value_or(0);
  if (life > 0)
    kv.emplace_back("lifetime", std::to_string(life) + " s, then " +
                                    (field::boolean(spec, "remove_at_end").value_or(false) ? "destroy" : "stop"));
  kv.emplace_back("network", field::text(spec, "network"));
  // The limits as the engine reports them.
  char cpus[32];
  std::snprintf(cpus, sizeof cpus, "%g", field::number(limits, "vcpus").value_or(0));
  long long mem = field::integer(limits, "memory_bytes").value_or(0);
  std::string caps = "drop ";
  for (const auto& cap : field::array(limits, "cap_drop"))
    caps += (caps == "drop " ? "" : ",") + cap.get<std::string>();
  kv.emplace_back("limits", std::string("cpus ") + cpus + ", memory " + std::to_string(mem / (1024LL * 1024)) +
                                " MiB, pids " + field::text(limits, "pids_limit") + ", privileged " +
                                (field::boolean(limits, "privileged").value_or(false) ? "yes" : "no") +
                                ", no-new-privileges " +
                                (field::boolean(limits, "no_new_privileges").value_or(false) ? "yes" : "no"));
  if (caps != "drop ") kv.emplace_back("capabilities", caps);
  if (!field::object(c, "published_ports").empty())
    kv.emplace_back("ports", map_text(field::object(c, "published_ports"), "→127.0.0.1:"));
  std::string mounts;
  for (const auto& m : field::array(spec, "mounts"))
    mounts += (mounts.empty() ? "" : ", ") + field::text(m, "host_path") + ":" + field::text(m, "target") +
              (field::boolean(m, "read_only").value_or(false) ? ":ro" : "");
  if (field::boolean(spec, "workspace").value_or(false))
    mounts += std::string(mounts.empty() ? "" : ", ") + "workspace";
  if (!mounts.empty()) kv.emplace_back("mounts", mounts);
  if (!field::object(spec, "labels").empty()) kv.emplace_back("labels", map_text(field::object(spec, "labels")));
  std::string env;
  for (const auto& [k, v] : field::object(spec, "env").items()) env += (env.empty() ? "" : ",") + k;
  if (!env.empty()) kv.emplace_back("env", env);
  kv.emplace_back("container", field::text(c, "container_id", "-").substr(0, 12));
  std::string out = render_kv(kv, color);
  const auto& logs = field::array(c, "last_logs");
  if (!logs.empty()) {
    out += paint("last logs", Style::bold, color) + "\n";
    for (const auto& l : logs) out += "  " + (l.is_string() ? l.get<std::string>() : l.dump()) + "\n";
  }
  ctx.out(out);
}

// "Created capsule cap-… (busybox:1, running, agent)"
void print_done(CommandContext& ctx, const std::string& verb, const nlohmann::json& c) {
  if (ctx.format() != Format::table) {
    print_capsule(ctx, c);
    return;
  }
  std::string mode = field::text(c, "exec_mode");
  ctx.out(verb + " capsule " + paint(field::text(c, "id"), Style::bold, ctx.term().color_out) + " (" + image_text(c) +
          ", " + field::text(c, "state") + (mode.empty() ? "" : ", " + mode) + ")\n");
}

// --- the subcommands ------------------------------------------------------------------------------

struct CreateOptions {
  SpecOptions spec;
  bool wait = true;
};

int capsule_create(CommandContext& ctx, const CreateOptions& o) {
  nlohmann::json body = spec_body(o.spec);
  body["wait"] = o.wait;
  auto& api = ctx.api({5.0, 300.0});
  nlohmann::json c;
  {
    auto spin = ctx.spinner("creating a capsule …");
    c = capsule_call(api, "POST", "/api/v1/capsules", &body, {201}, contract::capsule);
  }
  print_done(ctx, "Created", c);
  return exit_code::ok;
}

int capsule_get_or_create(CommandContext& ctx, const SpecOptions& o) {
  if (o.owner.empty() || o.session.empty())
    throw CliError(exit_code::usage, "get-or-create needs --owner and --session (its key)");
  nlohmann::json body = spec_body(o);
  auto& api = ctx.api({5.0, 300.0});
  ApiReply r;
  {
    auto spin = ctx.spinner("finding or creating the capsule …");
    r = api.call("POST", "/api/v1/capsules/get-or-create", &body);
  }
  if (r.status != 200 && r.status != 201) raise_capsule_error(api, r);
  api.expect("POST /api/v1/capsules/get-or-create", contract::capsule(r.body));
  print_done(ctx, r.status == 201 ? "Created" : "Reused", r.body);
  return exit_code::ok;
}

struct ListOptions {
  std::string state, owner, session;
  std::vector<std::string> labels;
  int limit = 0;
};

int capsule_list(CommandContext& ctx, const ListOptions& o) {
  std::string q;
  auto add = [&q](const std::string& k, const std::string& v) {
    q += (q.empty() ? "?" : "&") + k + "=" + pw::percent_encode(v);
  };
  if (!o.state.empty()) add("state", o.state);
  if (!o.owner.empty()) add("owner", o.owner);
  if (!o.session.empty()) add("session", o.session);
  for (const auto& l : o.labels) {
    label_selector({l});  // usage error unless KEY=VALUE
    add("label", l);
  }
  if (o.limit > 0) add("limit", std::to_string(o.limit));
  auto& api = ctx.api();
  nlohmann::json list;
  {
    auto spin = ctx.spinner("listing capsules …");
    list = capsule_call(api, "GET", "/api/v1/capsules" + q, nullptr, {200}, contract::capsule_list);
  }
  bool color = ctx.term().color_out;
  switch (ctx.format()) {
    case Format::json: ctx.out(to_json_text(list)); break;
    case Format::ndjson:
      for (const auto& c : list) ctx.out(to_ndjson_line(c));
      break;
    case Format::plain: {
      std::vector<std::vector<std::string>> rows;
      for (const auto& c : list) rows.push_back(plain_row(c));
      ctx.out(render_plain(rows));
      break;
    }
    case Format::table: {
      if (list.empty()) {
        ctx.info("No capsules (create one: podwrangler capsule create --image IMAGE).");
        break;
      }
      std::vector<std::vector<std::string>> rows;
      for (const auto& c : list)
        rows.push_back({field::text(c, "id"), state_text(field::text(c, "state"), color), image_text(c), owner_text(c),
                        field::text(c, "exec_mode", "-"), age_text(field::integer(c, "created_ms").value_or(0)),
                        map_text(field::object(spec_of(c), "labels"))});
      ctx.out(render_table(
          {{"ID"}, {"STATE"}, {"IMAGE", true}, {"OWNER", true}, {"EXEC"}, {"AGE", false, true}, {"LABELS", true}}, rows,
          ctx.term().width, color));
    }
  }
  return exit_code::ok;
}

struct IdOptions {
  std::string id;
};

int capsule_show(CommandContext& ctx, const IdOptions& o) {
  auto& api = ctx.api();
  print_capsule(ctx, capsule_call(api, "GET", capsule_path(o.id), nullptr, {200}, contract::capsule));
  return exit_code::ok;
}

struct DestroyOptions {
  std::vector<std::string> ids;
  bool all = false;
  std::string owner;
};

int capsule_destroy(CommandContext& ctx, const DestroyOptions& o) {
  if (o.all && !o.ids.empty()) throw CliError(exit_code::usage, "give capsule ids or --all --owner NAME, not both");
  if (!o.all && o.ids.empty()) throw CliError(exit_code::usage, "give capsule ids, or --all --owner NAME");
  if (!o.all && !o.owner.empty()) throw CliError(exit_code::usage, "--owner goes with --all");
  auto& api = ctx.api({5.0, 120.0});
  if (o.all) {
    if (o.owner.empty()) throw CliError(exit_code::usage, "--all needs --owner NAME (whose capsules to destroy)");
    auto r = capsule_call(api, "DELETE", "/api/v1/capsules?owner=" + pw::percent_encode(o.owner), nullptr, {200});
    const auto& ids = field::array(r, "destroyed");
    if (!ids.is_array()) api.expect("DELETE /api/v1/capsules", "\"destroyed\" is not an array");
    if (ctx.format() == Format::json) {
      ctx.out(to_json_text(r));
    } else if (ctx.format() == Format::ndjson) {
      ctx.out(to_ndjson_line(r));
    } else {
      for (const auto& id : ids) ctx.out("Destroyed capsule " + id.get<std::string>() + "\n");
      if (ids.empty()) ctx.info("No capsules of owner " + o.owner + ".");
    }
    return exit_code::ok;
  }
  nlohmann::json done = nlohmann::json::array();
  for (const auto& id : o.ids) {
    auto c = capsule_call(api, "DELETE", capsule_path(id), nullptr, {200}, contract::capsule);
    if (ctx.format() == Format::table || ctx.format() == Format::plain)
      ctx.out("Destroyed capsule " + paint(id, Style::bold, ctx.term().color_out) + "\n");
    else if (ctx.format() == Format::ndjson)
      ctx.out(to_ndjson_line(c));
    done.push_back(std::move(c));
  }
  if (ctx.format() == Format::json) ctx.out(to_json_text(o.ids.size() == 1 ? done[0] : done));
  return exit_code::ok;
}

// pause, resume, stop, start, ping: one POST, the capsule after it.
struct ActionOptions {
  std::string id;
  std::string verb;  // the path's last segment
  std::string done;  // "Paused"
};

int capsule_action(CommandContext& ctx, const ActionOptions& o) {
  auto& api = ctx.api({5.0, 120.0});
  nlohmann::json c;
  {
    auto spin = ctx.spinner(o.verb + " " + o.id + " …");
    c = capsule_call(api, "POST", capsule_path(o.id) + "/" + o.verb, nullptr, {200}, contract::capsule);
  }
  print_done(ctx, o.done, c);
  return exit_code::ok;
}

struct TimeoutOptions {
  std::string id;
  long long seconds = 0;
};

int capsule_set_timeout(CommandContext& ctx, const TimeoutOptions& o) {
  nlohmann::json body{{"timeout_sec", o.seconds}};
  auto& api = ctx.api();
  auto c = capsule_call(api, "PUT", capsule_path(o.id) + "/timeout", &body, {200}, contract::capsule);
  if (ctx.format() == Format::table)
    ctx.out("Capsule " + paint(o.id, Style::bold, ctx.term().color_out) + ": idle timeout " +
            (o.seconds == 0 ? std::string("off") : std::to_string(o.seconds) + " s") + "\n");
  else
    print_capsule(ctx, c);
  return exit_code::ok;
}

struct EventsOptions {
  std::string id;
  int limit = 0;
};

int capsule_events(CommandContext& ctx, const EventsOptions& o) {
  auto& api = ctx.api();
  std::string path = capsule_path(o.id) + "/events";
  if (o.limit > 0) path += "?limit=" + std::to_string(o.limit);
  auto evs = capsule_call(api, "GET", path, nullptr, {200}, contract::event_list);
  switch (ctx.format()) {
    case Format::json: ctx.out(to_json_text(evs)); break;
    case Format::ndjson:
      for (const auto& e : evs) ctx.out(to_ndjson_line(e));
      break;
    case Format::plain:
    case Format::table: {
      std::vector<std::vector<std::string>> rows;
      for (const auto& e : evs)
        rows.push_back({time_text(field::integer(e, "at_ms").value_or(0)), field::text(e, "from", "-"),
                        field::text(e, "to"), field::text(e, "reason")});
      if (ctx.format() == Format::plain)
        ctx.out(render_plain(rows));
      else
        ctx.out(
            render_table({{"TIME"}, {"FROM"}, {"TO"}, {"REASON", true}}, rows, ctx.term().width, ctx.term().color_out));
    }
  }
  return exit_code::ok;
}

}  // namespace

void set_capsule_command(CLI::App& app, CommandContext& ctx) {
  auto* g = add_group(app, "capsule", "Sandboxes on a container engine: create, exec, files, pause/resume",
                      "Capsules run on the server's container engine (PODWRANGLER_DOCKER_HOST). IDs look like\n"
                      "cap-0123456789abcdef. Exit status: 68 unknown capsule (or file), 73 wrong state (e.g. exec\n"
                      "on a stopped capsule), 65 invalid request, 69 engine or agent unavailable.\n\n"
                      "Examples:\n"
                      "  podwrangler capsule create --image busybox:latest --timeout 600 --label team=ml\n"
                      "  podwrangler capsule exec cap-0123456789abcdef -- ls -la /\n"
                      "  podwrangler capsule run --rm --image busybox:latest -- sh -c 'echo hi'\n"
                      "  podwrangler capsule destroy --all --owner alice");

  auto create = std::make_shared<CreateOptions>();
  auto* c = g->add_subcommand("create", "Create a capsule from an image or a template");
  add_spec_options(c, create->spec);
  c->add_flag("--wait,!--no-wait", create->wait, "Return once the capsule answers (default) / at once, starting");
  c->footer(
      "Output: table (one line), plain (id, state, image, owner, session, exec mode), json/ndjson\n"
      "(the capsule: id, state, spec, exec_mode, limits, published_ports, …; env values shown as ***).\n\n"
      "Examples:\n"
      "  podwrangler capsule create --image busybox:latest\n"
      "  podwrangler capsule create -i python:3.12-slim --memory 1024 --vcpus 2 -e MODE=test \\\n"
      "      --mount /srv/data:/data:ro --port 8080 --owner alice --session s1 --workspace\n"
      "  id=$(podwrangler capsule create -i busybox:latest -o json | jq -r .id)");
  set_action(c, ctx, create, capsule_create);

  auto goc = std::make_shared<SpecOptions>();
  c = g->add_subcommand("get-or-create",
                        "The running, paused or stopped capsule of --owner and --session, or a new one");
  add_spec_options(c, *goc);
  c->footer(
      "A paused capsule is resumed and a stopped one started; otherwise one is created with the\n"
      "options given. The table output says Created or Reused.\n\n"
      "Example:\n  podwrangler capsule get-or-create --owner bob --session 123 --image busybox:latest");
  set_action(c, ctx, goc, capsule_get_or_create);

  auto list = std::make_shared<ListOptions>();
  c = g->add_subcommand("list", "List capsules, newest first");
  c->add_option("--state,-s", list->state, "Only this state: starting, running, paused, stopped, destroyed, error")
      ->check(CLI::IsMember({"starting", "running", "paused", "stopped", "destroyed", "error"}))
      ->type_name("STATE");
  c->add_option("--owner", list->owner, "Only this owner's")->type_name("NAME");
  c->add_option("--session", list->session, "Only this session's")->type_name("NAME");
  c->add_option("--label,-l", list->labels, "Only capsules with this label (repeat to require several)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
  c->add_option("--limit,-n", list->limit, "At most this many (1-1000)")->check(CLI::Range(1, 1000))->type_name("N");
  c->footer(
      "Output: table (ID STATE IMAGE OWNER EXEC AGE LABELS), plain (tab-separated id, state, image,\n"
      "owner, session, exec mode), json (array of capsules), ndjson (one per line).\n\n"
      "Examples:\n  podwrangler capsule list\n  podwrangler capsule list --state paused --owner alice -l team=ml");
  set_action(c, ctx, list, capsule_list);

  auto show = std::make_shared<IdOptions>();
  c = g->add_subcommand("show", "Show one capsule: state, exec mode, limits as the engine reports them, ports");
  c->add_option("id", show->id, "The capsule's id")->required()->type_name(kCapsuleType);
  c->footer(
      "Examples:\n  podwrangler capsule show cap-0123456789abcdef\n"
      "  podwrangler capsule show cap-0123456789abcdef --json | jq .limits");
  set_action(c, ctx, show, capsule_show);

  auto destroy = std::make_shared<DestroyOptions>();
  c = g->add_subcommand("destroy", "Destroy capsules (idempotent: a destroyed one is not an error)");
  c->add_option("id", destroy->ids, "Capsule ids")->type_name(kCapsuleType);
  c->add_flag("--all", destroy->all, "Every capsule of --owner");
  c->add_option("--owner", destroy->owner, "With --all: whose capsules")->type_name("NAME");
  c->footer(
      "Workspaces (--workspace) stay on the host. Exit status 68 for an id that never existed.\n\n"
      "Examples:\n  podwrangler capsule destroy cap-0123456789abcdef\n  podwrangler capsule destroy --all --owner "
      "alice");
  set_action(c, ctx, destroy, capsule_destroy);

  struct Verb {
    const char* name;
    const char* help;
    const char* done;
  };
  for (const Verb& v : {Verb{"pause", "Freeze a capsule's processes (cgroup freezer); its idle timer stops", "Paused"},
                        Verb{"resume", "Thaw a paused capsule", "Resumed"},
                        Verb{"stop", "Stop a capsule: processes end, files stay", "Stopped"},
                        Verb{"start", "Start a stopped capsule again", "Started"},
                        Verb{"ping", "Reset a capsule's idle timer", "Pinged"}}) {
    auto o = std::make_shared<ActionOptions>();
    o->verb = v.name;
    o->done = v.done;
    c = g->add_subcommand(v.name, v.help);
    c->add_option("id", o->id, "The capsule's id")->required()->type_name(kCapsuleType);
    c->footer(std::string("Example:\n  podwrangler capsule ") + v.name + " cap-0123456789abcdef");
    set_action(c, ctx, o, capsule_action);
  }

  auto timeout = std::make_shared<TimeoutOptions>();
  c = g->add_subcommand("set-timeout", "Change a capsule's idle timeout, live");
  c->add_option("id", timeout->id, "The capsule's id")->required()->type_name(kCapsuleType);
  c->add_option("seconds", timeout->seconds, "Seconds of idleness (0: never)")
      ->required()
      ->check(CLI::Range(0LL, 30LL * 86400))
      ->type_name("SECONDS");
  c->footer("Example:\n  podwrangler capsule set-timeout cap-0123456789abcdef 3600");
  set_action(c, ctx, timeout, capsule_set_timeout);

  auto events = std::make_shared<EventsOptions>();
  c = g->add_subcommand("events", "A capsule's lifecycle events, oldest first");
  c->add_option("id", events->id, "The capsule's id")->required()->type_name(kCapsuleType);
  c->add_option("--limit,-n", events->limit, "At most this many")->check(CLI::Range(1, 10000))->type_name("N");
  c->footer("Example:\n  podwrangler capsule events cap-0123456789abcdef");
  set_action(c, ctx, events, capsule_events);

  add_capsule_exec_commands(g, ctx);
  add_capsule_file_commands(g, ctx);
}

}  // namespace pw::cli

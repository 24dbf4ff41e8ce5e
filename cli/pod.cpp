// podwrangler pod list|show|add|update|remove
#include "cli/cli_error.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/exit_codes.hpp"
#include "cli/json_access.hpp"

#include <podwrangler/redact.hpp>
#include <podwrangler/url.hpp>

#include <CLI/CLI.hpp>

#include <utility>
#include <memory>
#include <string>
#include <vector>

namespace pw::cli {

namespace {

// --- how a pod is shown ----------------------------------------------------------------------

std::string labels_text(const nlohmann::json& pod) {
  std::string s;
  for (const auto& [k, v] : field::object(pod, "labels").items())
    s += (s.empty() ? "" : ",") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  return s;
}

// A pod as the CLI shows it: its URL redacted (the API does it; the CLI does not rely on it).
nlohmann::json shown(nlohmann::json pod) {
  if (auto url = field::string(pod, "url")) pod["url"] = pw::redact_url(*url);
  return pod;
}

// --output plain: alias, provider, url, labels.
std::vector<std::string> plain_row(const nlohmann::json& pod) {
  return {field::text(pod, "alias"), field::text(pod, "provider"), field::text(pod, "url"), labels_text(pod)};
}

void print_pod(CommandContext& ctx, const nlohmann::json& raw_pod) {
  const nlohmann::json pod = shown(raw_pod);
  switch (ctx.format()) {
    case Format::json: ctx.out(to_json_text(pod)); return;
    case Format::ndjson: ctx.out(to_ndjson_line(pod)); return;
    case Format::plain: ctx.out(render_plain({plain_row(pod)})); return;
    case Format::table:
      ctx.out(render_kv({{"alias", field::text(pod, "alias")},
                         {"provider", field::text(pod, "provider")},
                         {"url", field::text(pod, "url")},
                         {"labels", labels_text(pod)},
                         {"created", field::text(pod, "created_at")},
                         {"updated", field::text(pod, "updated_at")}},
                        ctx.term().color_out));
  }
}

// "Added pod web-1 (local, local://web-1)"
void print_done(CommandContext& ctx, const std::string& verb, const nlohmann::json& pod) {
  ctx.out(verb + " pod " + paint(field::text(pod, "alias"), Style::bold, ctx.term().color_out) + " (" +
          field::text(pod, "provider") + ", " + pw::redact_url(field::text(pod, "url")) + ")\n");
}

// A request about one pod whose answer is the pod: "pod not found" when the API says so
// (ApiReply::is: a 404 from a route that does not exist is raised like any other error).
nlohmann::json pod_request(ApiClient& api, const std::string& method, const std::string& alias,
                           const nlohmann::json* body = nullptr) {
  auto r = api.call(method, pod_path(alias), body);
  if (r.is(ErrorKind::not_found)) throw pod_not_found(alias);
  if (r.status != 200) api.raise(r);
  api.expect(method + " /api/v1/pods/{alias}", contract::pod(r.body));
  return std::move(r.body);
}

// --- the subcommands -------------------------------------------------------------------------

struct ListOptions {
  std::vector<std::string> labels;
};

int pod_list(CommandContext& ctx, const ListOptions& o) {
  std::string selector = label_selector(o.labels);
  std::string path = "/api/v1/pods/";
  if (!selector.empty()) path += "?selector=" + pw::percent_encode(selector);
  auto& api = ctx.api();
  nlohmann::json pods;
  {
    auto spin = ctx.spinner("listing pods …");
    pods = api.get(path, contract::pod_list);
  }
  for (auto& p : pods) p = shown(p);
  switch (ctx.format()) {
    case Format::json: ctx.out(to_json_text(pods)); break;
    case Format::ndjson:
      for (const auto& p : pods) ctx.out(to_ndjson_line(p));
      break;
    case Format::plain: {
      std::vector<std::vector<std::string>> rows;
      for (const auto& p : pods) rows.push_back(plain_row(p));
      ctx.out(render_plain(rows));
      break;
    }
    case Format::table: {
      if (pods.empty()) {
        ctx.info(o.labels.empty() ? "No pods registered (add one: podwrangler pod add --alias NAME --url URL)."
                                  : "No pods match.");
        break;
      }
      std::vector<std::vector<std::string>> rows;
      for (const auto& p : pods)
        rows.push_back({field::text(p, "alias"), field::text(p, "provider"), labels_text(p), field::text(p, "url")});
      ctx.out(render_table({{"ALIAS"}, {"PROVIDER"}, {"LABELS", true}, {"URL", true}}, rows, ctx.term().width,
                           ctx.term().color_out));
    }
  }
  return exit_code::ok;
}

struct ShowOptions {
  std::string alias;
};

int pod_show(CommandContext& ctx, const ShowOptions& o) {
  print_pod(ctx, pod_request(ctx.api(), "GET", o.alias));
  return exit_code::ok;
}

struct AddOptions {
  std::string alias, url, provider;
  std::vector<std::string> labels;
};

int pod_add(CommandContext& ctx, const AddOptions& o) {
  nlohmann::json body{{"alias", o.alias}, {"url", o.url}};
  if (!o.provider.empty()) body["provider"] = o.provider;
  if (!o.labels.empty()) body["labels"] = parse_labels(o.labels);
  auto& api = ctx.api();
  auto r = api.call("POST", "/api/v1/pods/", &body);
  if (r.status == 409)
    throw CliError(exit_code::conflict, "pod '" + o.alias + "' already exists",
                   "change it with: podwrangler pod update " + o.alias + " --url URL");
  if (r.status != 201 && r.status != 200) api.raise(r);
  api.expect("POST /api/v1/pods/", contract::pod(r.body));
  if (ctx.format() == Format::table)
    print_done(ctx, "Added", r.body);
  else
    print_pod(ctx, r.body);
  return exit_code::ok;
}

struct UpdateOptions {
  std::string alias, url, provider;
  std::vector<std::string> labels, unlabels;
  bool clear_labels = false;
};

int pod_update(CommandContext& ctx, const UpdateOptions& o) {
  const bool relabel = !o.labels.empty() || !o.unlabels.empty() || o.clear_labels;
  if (o.url.empty() && o.provider.empty() && !relabel)
    throw CliError(exit_code::usage, "nothing to update",
                   "give --url, --provider, --label, --unlabel or --clear-labels");
  auto set = parse_labels(o.labels);
  auto& api = ctx.api();
  nlohmann::json body = nlohmann::json::object();
  if (!o.url.empty()) body["url"] = o.url;
  if (!o.provider.empty()) body["provider"] = o.provider;
  if (relabel) {
    // The API replaces the whole label set: start from the pod's labels unless clearing.
    nlohmann::json labels = nlohmann::json::object();
    if (!o.clear_labels) labels = field::object(pod_request(api, "GET", o.alias), "labels");
    for (const auto& k : o.unlabels) labels.erase(k);
    for (const auto& [k, v] : set) labels[k] = v;
    body["labels"] = labels;
  }
  auto pod = pod_request(api, "PATCH", o.alias, &body);
  if (ctx.format() == Format::table)
    print_done(ctx, "Updated", pod);
  else
    print_pod(ctx, pod);
  return exit_code::ok;
}

struct RemoveOptions {
  std::vector<std::string> aliases;
  bool force = false;
};

int pod_remove(CommandContext& ctx, const RemoveOptions& o) {
  auto& api = ctx.api();
  nlohmann::json results = nlohmann::json::array();
  std::string missing;  // the unknown aliases, unless --force
  bool any_missing = false;
  for (const auto& alias : o.aliases) {
    auto r = api.call("DELETE", pod_path(alias));
    bool removed = r.status == 204 || r.status == 200;
    bool unknown = r.is(ErrorKind::not_found);
    if (!removed && !unknown) api.raise(r);
    results.push_back({{"alias", alias}, {"removed", removed}});
    if (unknown && !o.force) {
      any_missing = true;
      missing += (missing.empty() ? "" : ", ") + alias;
    }
    if (ctx.human()) {
      if (removed)
        ctx.out("Removed pod " + paint(alias, Style::bold, ctx.term().color_out) + "\n");
      else if (o.force)
        ctx.info("Pod " + alias + " was not registered (nothing to remove).");
    }
  }
  if (ctx.format() == Format::json) ctx.out(to_json_text(o.aliases.size() == 1 ? results[0] : results));
  if (ctx.format() == Format::ndjson)
    for (const auto& r : results) ctx.out(to_ndjson_line(r));
  if (any_missing)
    throw CliError(exit_code::not_found,
                   o.aliases.size() == 1 ? "pod '" + missing + "' not found" : "pods not found: " + missing,
                   "use --force to ignore unknown aliases");
  return exit_code::ok;
}

}  // namespace

void set_pod_command(CLI::App& app, CommandContext& ctx) {
  auto* pod = add_group(app, "pod", "Register, list, show, update and remove pods",
                        "Examples:\n"
                        "  podwrangler pod add --alias web-1 --url local://web-1 --label app=web\n"
                        "  podwrangler pod list --label app=web\n"
                        "  podwrangler pod remove --force web-1");

  auto list = std::make_shared<ListOptions>();
  auto* c = pod->add_subcommand("list", "List registered pods (ordered by alias)");
  c->add_option("--label,-l", list->labels, "Only pods with this label (repeat to require several)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
  c->footer(
      "Output: table (ALIAS PROVIDER LABELS URL), plain (tab-separated alias, provider, url, "
      "labels), json (array of pods), ndjson (one pod per line).\n\n"
      "Examples:\n"
      "  podwrangler pod list\n"
      "  podwrangler pod list -l app=web -l env=prod\n"
      "  podwrangler pod list --output json | jq -r '.[].alias'");
  set_action(c, ctx, list, pod_list);

  auto show = std::make_shared<ShowOptions>();
  c = pod->add_subcommand("show", "Show one pod");
  c->add_option("alias", show->alias, "The pod's alias")->required()->type_name(kAliasType);
  c->footer("Examples:\n  podwrangler pod show web-1\n  podwrangler pod show web-1 --json | jq -r .url");
  set_action(c, ctx, show, pod_show);

  auto add = std::make_shared<AddOptions>();
  c = pod->add_subcommand("add", "Register a pod under an alias");
  c->add_option("--alias,-a", add->alias, "Alias: [A-Za-z0-9][A-Za-z0-9._-]{0,62}")->required()->type_name("NAME");
  c->add_option("--url", add->url,
                "Pod URL: wss://…/exec/ID/?token=…&pod=…, local://NAME, docker://CONTAINER, "
                "k8s://[CTX@]NS/POD[/CONTAINER]")
      ->required()
      ->type_name("URL");
  c->add_option("--provider,-p", add->provider, "plaintty, local, docker or kubernetes (default: from the URL scheme)")
      ->type_name("PROVIDER");
  c->add_option("--label,-l", add->labels, "A label (repeatable)")->type_name("KEY=VALUE")->allow_extra_args(false);
  c->footer(
      "The URL's token is stored encrypted and always shown as token=***.\n\n"
      "Examples:\n"
      "  podwrangler pod add --alias web-1 --url local://web-1\n"
      "  podwrangler pod add --alias prod-web \\\n"
      "      --url 'wss://k8s.provider.com/exec/45582/?token=JWT&pod=my-app-abc-xyz' \\\n"
      "      --provider plaintty --label env=prod");
  set_action(c, ctx, add, pod_add);

  auto update = std::make_shared<UpdateOptions>();
  c = pod->add_subcommand("update", "Change a pod's URL, provider or labels");
  c->add_option("alias", update->alias, "The pod's alias")->required()->type_name(kAliasType);
  c->add_option("--url", update->url, "New URL")->type_name("URL");
  c->add_option("--provider,-p", update->provider, "New provider")->type_name("PROVIDER");
  c->add_option("--label,-l", update->labels, "Set a label (repeatable; other labels are kept)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
  c->add_option("--unlabel", update->unlabels, "Remove a label (repeatable)")
      ->type_name("KEY")
      ->allow_extra_args(false);
  c->add_flag("--clear-labels", update->clear_labels, "Remove every label first");
  c->footer(
      "Examples:\n"
      "  podwrangler pod update web-1 --url local://web-1?shell=/bin/bash\n"
      "  podwrangler pod update web-1 --label env=staging --unlabel tier");
  set_action(c, ctx, update, pod_update);

  auto remove = std::make_shared<RemoveOptions>();
  c = pod->add_subcommand("remove", "Remove pods (their history stays)");
  c->add_option("alias", remove->aliases, "Aliases to remove")->required()->type_name(kAliasType);
  c->add_flag("--force,-f", remove->force, "An unknown alias is not an error (idempotent, for scripts)");
  c->footer(
      "Exit status 68 when an alias is not registered, unless --force.\n"
      "json/ndjson output: {\"alias\": A, \"removed\": true|false} per alias.\n\n"
      "Examples:\n"
      "  podwrangler pod remove web-1\n"
      "  podwrangler pod remove --force web-1 web-2");
  set_action(c, ctx, remove, pod_remove);
}

}  // namespace pw::cli

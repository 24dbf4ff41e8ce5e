// podwrangler pod list|show|add|update|remove
#include "cli/cli_error.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/exit_codes.hpp"

#include <podwrangler/redact.hpp>

#include <CLI/CLI.hpp>

#include <map>
#include <memory>

namespace pw::cli {

namespace {

std::map<std::string, std::string> parse_labels(const std::vector<std::string>& items) {
  std::map<std::string, std::string> out;
  for (const auto& it : items) {
    auto eq = it.find('=');
    if (eq == std::string::npos || eq == 0)
      throw CliError(exit_code::usage, "--label wants KEY=VALUE (got '" + it + "')");
    out[it.substr(0, eq)] = it.substr(eq + 1);
  }
  return out;
}

std::string labels_text(const nlohmann::json& pod) {
  std::string s;
  if (pod.contains("labels") && pod["labels"].is_object())
    for (const auto& [k, v] : pod["labels"].items())
      s += (s.empty() ? "" : ",") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  return s;
}

std::string str(const nlohmann::json& j, const char* key) {
  if (j.contains(key) && j[key].is_string()) return j[key].get<std::string>();
  if (j.contains(key) && !j[key].is_null()) return j[key].dump();
  return "";
}

// A pod as the CLI shows it: its URL redacted (the API does it; the CLI does not rely on it).
nlohmann::json shown(nlohmann::json pod) {
  if (pod.is_object() && pod.contains("url") && pod["url"].is_string())
    pod["url"] = pw::redact_url(pod["url"].get_ref<const std::string&>());
  return pod;
}

void print_pod(CommandContext& ctx, const nlohmann::json& raw_pod) {
  const nlohmann::json pod = shown(raw_pod);
  switch (ctx.format()) {
    case Format::json: ctx.out(to_json_text(pod)); return;
    case Format::ndjson: ctx.out(to_ndjson_line(pod)); return;
    case Format::plain:
      ctx.out(render_plain({{str(pod, "alias"), str(pod, "provider"), str(pod, "url"), labels_text(pod)}}));
      return;
    case Format::table:
      ctx.out(render_kv({{"alias", str(pod, "alias")},
                         {"provider", str(pod, "provider")},
                         {"url", str(pod, "url")},
                         {"labels", labels_text(pod)},
                         {"created", str(pod, "created_at")},
                         {"updated", str(pod, "updated_at")}},
                        ctx.term().color_out));
  }
}

std::string pod_path(const std::string& alias) { return "/api/v1/pods/" + url_encode(alias); }

}  // namespace

void set_pod_command(CLI::App& app, CommandContext& ctx) {
  auto* pod = app.add_subcommand("pod", "Register, list, show, update and remove pods");
  pod->require_subcommand(1);
  pod->footer(
      "Examples:\n"
      "  podwrangler pod add --alias web-1 --url local://web-1 --label app=web\n"
      "  podwrangler pod list --label app=web\n"
      "  podwrangler pod remove --force web-1");

  // list
  {
    auto labels = std::make_shared<std::vector<std::string>>();
    auto* c = pod->add_subcommand("list", "List registered pods (ordered by alias)");
    c->add_option("--label,-l", *labels, "Only pods with this label (repeat to require several)")
        ->type_name("KEY=VALUE");
    c->footer(
        "Output: table (ALIAS PROVIDER LABELS URL), plain (tab-separated alias, provider, url, "
        "labels), json (array of pods), ndjson (one pod per line).\n\n"
        "Examples:\n"
        "  podwrangler pod list\n"
        "  podwrangler pod list -l app=web -l env=prod\n"
        "  podwrangler pod list --output json | jq -r '.[].alias'");
    c->callback([&ctx, labels] {
      ctx.action = [&ctx, labels]() -> int {
        parse_labels(*labels);
        std::string path = "/api/v1/pods/";
        if (!labels->empty()) {
          std::string sel;
          for (const auto& l : *labels) sel += (sel.empty() ? "" : ",") + l;
          path += "?selector=" + url_encode(sel);
        }
        auto& api = ctx.api();
        nlohmann::json pods;
        {
          Spinner spin("listing pods …", ctx.spinner_enabled(), ctx.term().color_err);
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
            for (const auto& p : pods) rows.push_back({str(p, "alias"), str(p, "provider"), str(p, "url"), labels_text(p)});
            ctx.out(render_plain(rows));
            break;
          }
          case Format::table: {
            if (pods.empty()) {
              ctx.info(labels->empty() ? "No pods registered (add one: podwrangler pod add --alias NAME --url URL)."
                                       : "No pods match.");
              break;
            }
            std::vector<std::vector<std::string>> rows;
            for (const auto& p : pods) rows.push_back({str(p, "alias"), str(p, "provider"), labels_text(p), str(p, "url")});
            ctx.out(render_table({{"ALIAS"}, {"PROVIDER"}, {"LABELS", true}, {"URL", true}}, rows,
                                 ctx.term().width, ctx.term().color_out));
          }
        }
        return exit_code::ok;
      };
    });
  }

  // show
  {
    auto alias = std::make_shared<std::string>();
    auto* c = pod->add_subcommand("show", "Show one pod");
    c->add_option("alias", *alias, "The pod's alias")->required()->type_name(kAliasType);
    c->footer("Examples:\n  podwrangler pod show web-1\n  podwrangler pod show web-1 --json | jq -r .url");
    c->callback([&ctx, alias] {
      ctx.action = [&ctx, alias]() -> int {
        auto& api = ctx.api();
        auto r = api.call("GET", pod_path(*alias));
        if (r.status == 404 && r.body.value("code", "") == "pod_not_found")
          throw CliError(exit_code::not_found, "pod '" + *alias + "' not found", "see: podwrangler pod list");
        if (r.status != 200) api.raise(r);
        api.expect("GET /api/v1/pods/{alias}", contract::pod(r.body));
        print_pod(ctx, r.body);
        return exit_code::ok;
      };
    });
  }

  // add
  {
    struct Opts {
      std::string alias, url, provider;
      std::vector<std::string> labels;
    };
    auto o = std::make_shared<Opts>();
    auto* c = pod->add_subcommand("add", "Register a pod under an alias");
    c->add_option("--alias,-a", o->alias, "Alias: [A-Za-z0-9][A-Za-z0-9._-]{0,62}")->required()->type_name("NAME");
    c->add_option("--url", o->url,
                  "Pod URL: wss://…/exec/ID/?token=…&pod=…, local://NAME, docker://CONTAINER, "
                  "k8s://[CTX@]NS/POD[/CONTAINER]")
        ->required()
        ->type_name("URL");
    c->add_option("--provider,-p", o->provider,
                  "plaintty, local, docker or kubernetes (default: from the URL scheme)")
        ->type_name("PROVIDER");
    c->add_option("--label,-l", o->labels, "A label (repeatable)")->type_name("KEY=VALUE");
    c->footer(
        "The URL's token is stored encrypted and always shown as token=***.\n\n"
        "Examples:\n"
        "  podwrangler pod add --alias web-1 --url local://web-1\n"
        "  podwrangler pod add --alias prod-web \\\n"
        "      --url 'wss://k8s.provider.com/exec/45582/?token=JWT&pod=my-app-abc-xyz' \\\n"
        "      --provider plaintty --label env=prod");
    c->callback([&ctx, o] {
      ctx.action = [&ctx, o]() -> int {
        nlohmann::json body{{"alias", o->alias}, {"url", o->url}};
        if (!o->provider.empty()) body["provider"] = o->provider;
        if (!o->labels.empty()) body["labels"] = parse_labels(o->labels);
        auto& api = ctx.api();
        auto r = api.call("POST", "/api/v1/pods/", &body);
        if (r.status == 409)
          throw CliError(exit_code::conflict, "pod '" + o->alias + "' already exists",
                         "change it with: podwrangler pod update " + o->alias + " --url URL");
        if (r.status != 201 && r.status != 200) api.raise(r);
        api.expect("POST /api/v1/pods/", contract::pod(r.body));
        if (ctx.human()) {
          if (ctx.format() == Format::plain) print_pod(ctx, r.body);
          else ctx.out("Added pod " + paint(str(r.body, "alias"), Style::bold, ctx.term().color_out) + " (" +
                       str(r.body, "provider") + ", " + pw::redact_url(str(r.body, "url")) + ")\n");
        } else {
          print_pod(ctx, r.body);
        }
        return exit_code::ok;
      };
    });
  }

  // update
  {
    struct Opts {
      std::string alias, url, provider;
      std::vector<std::string> labels, unlabels;
      bool clear_labels = false;
    };
    auto o = std::make_shared<Opts>();
    auto* c = pod->add_subcommand("update", "Change a pod's URL, provider or labels");
    c->add_option("alias", o->alias, "The pod's alias")->required()->type_name(kAliasType);
    c->add_option("--url", o->url, "New URL")->type_name("URL");
    c->add_option("--provider,-p", o->provider, "New provider")->type_name("PROVIDER");
    c->add_option("--label,-l", o->labels, "Set a label (repeatable; other labels are kept)")->type_name("KEY=VALUE");
    c->add_option("--unlabel", o->unlabels, "Remove a label (repeatable)")->type_name("KEY");
    c->add_flag("--clear-labels", o->clear_labels, "Remove every label first");
    c->footer(
        "Examples:\n"
        "  podwrangler pod update web-1 --url local://web-1?shell=/bin/bash\n"
        "  podwrangler pod update web-1 --label env=staging --unlabel tier");
    c->callback([&ctx, o] {
      ctx.action = [&ctx, o]() -> int {
        if (o->url.empty() && o->provider.empty() && o->labels.empty() && o->unlabels.empty() && !o->clear_labels)
          throw CliError(exit_code::usage, "nothing to update",
                         "give --url, --provider, --label, --unlabel or --clear-labels");
        auto set = parse_labels(o->labels);
        auto& api = ctx.api();
        nlohmann::json body = nlohmann::json::object();
        if (!o->url.empty()) body["url"] = o->url;
        if (!o->provider.empty()) body["provider"] = o->provider;
        if (!o->labels.empty() || !o->unlabels.empty() || o->clear_labels) {
          nlohmann::json labels = nlohmann::json::object();
          if (!o->clear_labels) {
            auto r = api.call("GET", pod_path(o->alias));
            if (r.status == 404 && r.body.value("code", "") == "pod_not_found")
              throw CliError(exit_code::not_found, "pod '" + o->alias + "' not found", "see: podwrangler pod list");
            if (r.status != 200) api.raise(r);
            api.expect("GET /api/v1/pods/{alias}", contract::pod(r.body));
            if (r.body.contains("labels")) labels = r.body["labels"];
          }
          for (const auto& k : o->unlabels) labels.erase(k);
          for (const auto& [k, v] : set) labels[k] = v;
          body["labels"] = labels;
        }
        auto r = api.call("PATCH", pod_path(o->alias), &body);
        if (r.status == 404 && r.body.value("code", "") == "pod_not_found")
          throw CliError(exit_code::not_found, "pod '" + o->alias + "' not found", "see: podwrangler pod list");
        if (r.status != 200) api.raise(r);
        api.expect("PATCH /api/v1/pods/{alias}", contract::pod(r.body));
        if (ctx.format() == Format::table)
          ctx.out("Updated pod " + paint(str(r.body, "alias"), Style::bold, ctx.term().color_out) + " (" +
                  str(r.body, "provider") + ", " + pw::redact_url(str(r.body, "url")) + ")\n");
        else
          print_pod(ctx, r.body);
        return exit_code::ok;
      };
    });
  }

  // remove
  {
    struct Opts {
      std::vector<std::string> aliases;
      bool force = false;
    };
    auto o = std::make_shared<Opts>();
    auto* c = pod->add_subcommand("remove", "Remove pods (their history stays)");
    c->add_option("alias", o->aliases, "Aliases to remove")->required()->type_name(kAliasType);
    c->add_flag("--force,-f", o->force, "An unknown alias is not an error (idempotent, for scripts)");
    c->footer(
        "Exit status 68 when an alias is not registered, unless --force.\n"
        "json/ndjson output: {\"alias\": A, \"removed\": true|false} per alias.\n\n"
        "Examples:\n"
        "  podwrangler pod remove web-1\n"
        "  podwrangler pod remove --force web-1 web-2");
    c->callback([&ctx, o] {
      ctx.action = [&ctx, o]() -> int {
        auto& api = ctx.api();
        nlohmann::json results = nlohmann::json::array();
        int rc = exit_code::ok;
        std::string missing;
        for (const auto& alias : o->aliases) {
          auto r = api.call("DELETE", pod_path(alias));
          bool removed = r.status == 204 || r.status == 200;
          bool unknown = r.status == 404 && r.body.value("code", "") == "pod_not_found";
          if (!removed && !unknown) api.raise(r);
          results.push_back({{"alias", alias}, {"removed", removed}});
          if (unknown && !o->force) {
            rc = exit_code::not_found;
            missing += (missing.empty() ? "" : ", ") + alias;
          }
          if (ctx.format() == Format::table || ctx.format() == Format::plain) {
            if (removed) ctx.out("Removed pod " + paint(alias, Style::bold, ctx.term().color_out) + "\n");
            else if (o->force) ctx.info("Pod " + alias + " was not registered (nothing to remove).");
          }
        }
        if (ctx.format() == Format::json) ctx.out(to_json_text(o->aliases.size() == 1 ? results[0] : results));
        if (ctx.format() == Format::ndjson)
          for (const auto& r : results) ctx.out(to_ndjson_line(r));
        if (rc != exit_code::ok)
          throw CliError(rc, (o->aliases.size() == 1 ? "pod '" + missing + "' not found" : "pods not found: " + missing),
                         "use --force to ignore unknown aliases");
        return rc;
      };
    });
  }
}

}  // namespace pw::cli

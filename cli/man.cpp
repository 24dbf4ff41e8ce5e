#include "cli/man.hpp"

#include "cli/exit_codes.hpp"

#include <podwrangler/version.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <vector>

namespace pw::cli {

namespace {

std::string esc_line(const std::string& line) {
  std::string out;
  for (std::size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (c == '\\')
      out += "\\e";
    else if (c == '-')
      out += "\\-";
    else if (line.compare(i, 3, "\u2026") == 0) {  // … (roff input is ASCII)
      out += "...";
      i += 2;
    } else
      out.push_back(c);
  }
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out = "\\&" + out;
  return out;
}

std::string type_of(const CLI::Option* o) {
  std::string t = o->get_type_name();
  return t.substr(0, t.find(':'));
}

std::string option_label(const CLI::Option* o) {
  std::string s;
  for (const auto& l : o->get_lnames())
    s += (s.empty() ? "" : ", ") + std::string("\\fB") + esc_line("--" + l) + "\\fR";
  for (const auto& n : o->get_snames()) s += (s.empty() ? "" : ", ") + std::string("\\fB") + esc_line("-" + n) + "\\fR";
  if (o->get_items_expected_max() > 0) s += " \\fI" + esc_line(type_of(o)) + "\\fR";
  return s;
}

std::string usage(CLI::App* app, const std::string& path) {
  std::string s = ".B " + esc_line(path) + "\n";
  bool has_opts = false;
  for (CLI::Option* o : app->get_options())
    if (!o->get_positional() && o->get_name() != "--help") has_opts = true;
  if (has_opts) s += "[\\fIOPTIONS\\fR]";
  if (!app->get_subcommands([](CLI::App* x) { return !x->get_group().empty(); }).empty()) s += " \\fICOMMAND\\fR";
  for (CLI::Option* o : app->get_options([](CLI::Option* x) { return x->get_positional(); })) {
    std::string n = "\\fI" + esc_line(type_of(o)) + "\\fR";
    if (o->get_items_expected_max() > 1) n += "\\&...";
    s += " " + (o->get_required() ? n : "[" + n + "]");
  }
  return s + "\n";
}

std::string preformatted(const std::string& text) {
  std::string out = ".PP\n.nf\n";
  std::size_t pos = 0;
  while (pos <= text.size()) {
    auto nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    out += esc_line(text.substr(pos, nl - pos)) + "\n";
    pos = nl + 1;
  }
  return out + ".fi\n";
}

void command_section(CLI::App* app, const std::string& path, std::string& out) {
  out += ".SS \"" + esc_line(path) + "\"\n" + esc_line(app->get_description()) + "\n.PP\n" + usage(app, path);
  for (CLI::Option* o : app->get_options([](CLI::Option* x) { return x->get_positional(); }))
    out += ".TP\n\\fI" + esc_line(type_of(o)) + "\\fR\n" + esc_line(o->get_description()) + "\n";
  for (CLI::Option* o : app->get_options()) {
    if (o->get_positional() || o->get_name() == "--help") continue;
    out += ".TP\n" + option_label(o) + "\n" + esc_line(o->get_description()) + "\n";
  }
  std::string footer = app->get_footer();
  while (!footer.empty() && (footer.back() == '\n' || footer.back() == ' ')) footer.pop_back();
  if (!footer.empty()) out += preformatted(footer);
  for (CLI::App* s : app->get_subcommands([](CLI::App* x) { return !x->get_group().empty(); }))
    command_section(s, path + " " + s->get_name(), out);
}

constexpr const char* kDescription = R"(.B podwrangler
runs shell commands on persistent shells inside Kubernetes pods, PlainTTY WebSocket
terminals, Docker containers and local PTY shells. The command line program talks to the
podwrangler REST API over HTTP: a server started with
.BR "podwrangler serve" ,
or, with
.BR \-\-local ,
one started inside the program on a loopback port for the duration of the command, with its
state (pods, history) kept in the user's data directory.
.PP
Results go to standard output, progress and diagnostics to standard error. On a terminal the
output is aligned tables, colours and a spinner; in pipes there are no colours and no
spinner. Scripts should use
.B \-\-output json
(one JSON document) or
.B \-\-output ndjson
(one JSON object per line);
.B \-\-output raw
makes
.B exec run
and
.B exec show
write the exact bytes a command printed, binary included, and nothing else. Errors are one
line on standard error starting with
.BR "error: " ,
and the exit status tells what went wrong (see
.BR "EXIT STATUS" ).
)";

// The API's error answers, from the error table: HTTP status, code, the exit status the
// program gives for it, meaning; by status.
std::string api_errors_table() {
  std::vector<const ErrorInfo*> rows;
  for (const auto& e : kErrors)
    if (e.answered) rows.push_back(&e);
  std::stable_sort(rows.begin(), rows.end(),
                   [](const ErrorInfo* a, const ErrorInfo* b) { return a->http_status < b->http_status; });
  std::string out =
      ".PP\nAn error answer of the API carries a \\fBcode\\fR; each gives one exit status "
      "(HTTP status, code, exit status, meaning):\n.TS\nl l l l.\n";
  for (const ErrorInfo* e : rows)
    out += std::to_string(e->http_status) + "\t" + esc_line(std::string(e->code)) + "\t" +
           std::to_string(e->api_exit_code) + "\t" + esc_line(std::string(e->meaning)) + "\n";
  return out + ".TE\n";
}

constexpr const char* kPodUrls = R"(.SH POD URLS
.TP
.B wss://HOST[:PORT]/exec/SERVICE_ID/?token=TOKEN&pod=POD[&cols=220]
A PlainTTY terminal over WebSocket (also
.BR ws:// ).
TLS certificates and host names are verified against the system CA store
.RB ( SSL_CERT_FILE
names another bundle).
.TP
.B local://[NAME][?shell=/bin/sh&cwd=DIR]
A real PTY shell on the server's machine.
.TP
.B docker://CONTAINER[?host=unix:///var/run/docker.sock&shell=/bin/sh&user=UID]
A shell in a running Docker container.
.TP
.B k8s://[CONTEXT@]NAMESPACE/POD[/CONTAINER][?QUERY]
A shell in a Kubernetes pod through the API server's exec WebSocket; QUERY is
.BR kubeconfig=PATH ,
or
.BR server=URL&token=T&ca=PATH ,
or
.BR incluster=1 .
.PP
Secrets are never printed: URLs are shown with
.B token=***
(and every other credential parameter: password, secret, key, sig, signature…), with their
userinfo as
.B ***@
(a
.B k8s://
context name excepted), and error messages are redacted the same way.
)";

constexpr const char* kConfig = R"(.SH CONFIGURATION
The API URL is taken from, in this order:
.B \-\-api\-url
(or
.BR \-\-local ),
.BR PODWRANGLER_API_URL ,
the configuration file, and
.BR http://127.0.0.1:8000 .
The configuration file is TOML:
.PP
.nf
api_url = "https://podwrangler.example.com"
api_key = "..."          # sent as "Authorization: Bearer ..."
output  = "table"        # json, ndjson, table, plain or raw

[profiles.staging]       # selected by \-\-profile staging or PODWRANGLER_PROFILE
api_url = "http://10.0.0.5:8000"
.fi
.PP
Profile values override the top-level ones.
.B PODWRANGLER_API_KEY
overrides api_key;
.B \-\-output
and
.B \-\-json
override output. A malformed file is an error naming the file, line and column (exit 78);
a file holding an api_key that other users can read gets a warning.
)";

constexpr const char* kEnvironment = R"(.SH ENVIRONMENT
.TP
.B PODWRANGLER_API_URL
API base URL (below \-\-api\-url, above the configuration file).
.TP
.B PODWRANGLER_API_KEY
Bearer token sent to the API; for
.B serve
and
.BR \-\-local ,
the key the server requires (at least 16 characters).
.TP
.B PODWRANGLER_PROFILE
Profile of the configuration file (below \-\-profile).
.TP
.B PODWRANGLER_OUTPUT
Output format (below \-\-output, above the configuration file).
.TP
.B PODWRANGLER_CONFIG
Path of the configuration file instead of ~/.podwrangler.toml.
.TP
.BR PODWRANGLER_DATABASE_URL ", " PODWRANGLER_API_HOST ", " PODWRANGLER_API_PORT ", " PODWRANGLER_SECRET_KEY
Server settings for
.B serve
and
.B \-\-local
(see
.BR "podwrangler serve \-\-help" ).
.TP
.BR PODWRANGLER_DOCKER_HOST ", " PODWRANGLER_CAPSULES ", " PODWRANGLER_AGENT_PATH ", " PODWRANGLER_WARM_POOL ", " PODWRANGLER_MAX_UPLOAD_BYTES
Capsule settings of
.B serve
and
.BR \-\-local :
the container engine (default
.BR DOCKER_HOST ,
else unix:///var/run/docker.sock),
.B off
to disable capsules (their commands then exit 69), the in\-capsule agent, capsules kept
ready per image
.RI ( image = N ,\&...),
and the largest file
.B capsule upload
may send (default 4 GiB).
.TP
.BR XDG_DATA_HOME ", " HOME
Where the default SQLite database and secret key live
.RB ( $XDG_DATA_HOME/podwrangler ,
default
.BR ~/.local/share/podwrangler ),
and the configuration file.
.TP
.B NO_COLOR
When set and not empty, no colours (also \-\-no\-color, TERM=dumb).
.TP
.B SSL_CERT_FILE
CA bundle trusted for https:// API URLs and wss:// pods.
)";

constexpr const char* kFiles = R"(.SH FILES
.TP
.I ~/.podwrangler.toml
Configuration (see
.BR CONFIGURATION ).
.TP
.I $XDG_DATA_HOME/podwrangler/pods.db
The default SQLite database of
.B serve
and
.BR \-\-local .
.TP
.I $XDG_DATA_HOME/podwrangler/secret.key
The key that encrypts stored pod URLs (mode 0600, made on first use).
)";

constexpr const char* kExamples = R"(.SH EXAMPLES
.nf
podwrangler \-\-local health
podwrangler \-L pod add \-\-alias web\-1 \-\-url local://web\-1 \-\-label app=web
podwrangler \-L pod list
podwrangler \-L exec run web\-1 uptime
podwrangler \-L exec run\-many 'df \-h /' \-\-label app=web \-\-gather
podwrangler \-L exec history \-\-limit 5

# in CI (set \-e): fail the job when any pod fails, keep the details as JSON
podwrangler \-o json exec run\-many 'make check' \-\-all > results.json
jq \-r '.results[] | select(.status != "succeeded") | .alias' results.json
.fi
)";

}  // namespace

std::string man_escape(const std::string& text) { return esc_line(text); }

std::string render_man(CLI::App& app) {
  std::string v = pw::version();
  std::string out;
  out += ".\\\" Generated by `podwrangler __man` from the CLI definition; do not edit.\n";
  out += ".TH PODWRANGLER 1 \"\" \"podwrangler " + v + "\" \"User Commands\"\n";
  out += ".SH NAME\npodwrangler \\- run shell commands inside remote pods, containers and sandboxes\n";
  out +=
      ".SH SYNOPSIS\n.B podwrangler\n[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGUMENTS\\fR]\n";
  out += ".SH DESCRIPTION\n";
  out += kDescription;
  out +=
      ".SH GLOBAL OPTIONS\nThese go before or after the command (but before the command words of\n.BR \"exec run\" "
      ").\n";
  for (CLI::Option* o : app.get_options()) {
    if (o->get_positional()) continue;
    out += ".TP\n" + option_label(o) + "\n" + esc_line(o->get_description()) + "\n";
  }
  out += ".SH COMMANDS\n";
  for (CLI::App* s : app.get_subcommands([](CLI::App* x) { return !x->get_group().empty(); }))
    command_section(s, "podwrangler " + s->get_name(), out);
  out += kPodUrls;
  out += kConfig;
  out +=
      ".SH EXIT STATUS\nOne table (sysexits-style, clear of the 100\\(en127 range of the option parser):\n.TS\nl l.\n";
  for (const auto& e : kExitCodes) out += std::to_string(e.code) + "\t" + esc_line(std::string(e.meaning)) + "\n";
  out +=
      ".TE\n.PP\n.B exec run\nexits with the remote command's own status when it ran (so a remote status can\n"
      "coincide with a code of the table). A command killed by a signal exits with 128 + the signal number.\n";
  out += api_errors_table();
  out += kEnvironment;
  out += kFiles;
  out += kExamples;
  out += ".SH SEE ALSO\n.BR kubectl (1),\n.BR docker (1),\n.BR clush (1)\n";
  return out;
}

}  // namespace pw::cli

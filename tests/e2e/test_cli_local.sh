#!/usr/bin/env bash
# End-to-end: every command with --local (the embedded server, state in the user's data
# dir), help on every level, every error path's message and exit code, pipes vs terminal.
#   tests/e2e/test_cli_local.sh BUILD_DIR
# shellcheck source=tests/e2e/cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"
# shellcheck source=tests/e2e/cli_flow.sh
source "$(dirname "$0")/cli_flow.sh"

# --- help and version --------------------------------------------------------------------
run "$PW" --version
expect "--version" test "$OUT" = "podwrangler 0.1.0"
for cmd in "" "health" "pod" "pod list" "pod show" "pod add" "pod update" "pod remove" "exec" "exec run" \
  "exec run-many" "exec history" "exec show" "serve" "completion"; do
  # shellcheck disable=SC2086
  run "$PW" $cmd --help
  expect "--help on '${cmd:-podwrangler}' exits 0 with examples" test "$RC-$(grep -c '^Examples:' <<<"$OUT")" = "0-1"
done
run "$PW"
expect "no arguments: the help" has "Subcommands:" "$OUT"

# --- the flow on --local -------------------------------------------------------------------
cli_flow local -L
expect "--local keeps its database in XDG_DATA_HOME" test -s "$XDG_DATA_HOME/podwrangler/pods.db"
run "$PW" --local pod list -o plain
expect "--local state persists across invocations" test "$(cut -f1 <<<"$OUT" | tr '\n' ' ')" = "db-1 web-1 "
# a new HOME without XDG_DATA_HOME: ~/.local/share
run env -u XDG_DATA_HOME HOME="$WORK/home2" "$PW" -L pod add --alias x --url local://x
expect "--local default data dir is ~/.local/share/podwrangler" test -s "$WORK/home2/.local/share/podwrangler/pods.db"

# --- error paths: one line "error: …", the documented exit code ----------------------------
port=$(free_port)
err_case "unknown flag" 64 "--nope" "$PW" --nope
err_case "unknown command" 64 "frobnicate" "$PW" frobnicate
err_case "missing subcommand" 64 "subcommand is required" "$PW" pod
err_case "missing argument" 64 "alias is required" "$PW" pod show
err_case "bad --output" 64 "xml" "$PW" -o xml pod list
err_case "--local with --api-url" 64 "excludes" "$PW" -L -u http://127.0.0.1:1 health
err_case "run-many without targets" 64 "say which pods" "$PW" -L exec run-many true
err_case "run-many two targets" 64 "excludes" "$PW" -L exec run-many true --all --aliases a
err_case "history bad --status" 64 "--status must be one of" "$PW" -L exec history --status bogus
err_case "history --limit out of range" 64 "limit" "$PW" -L exec history --limit 0
err_case "update with nothing to change" 64 "nothing to update" "$PW" -L pod update web-1
err_case "bad label syntax" 64 "KEY=VALUE" "$PW" -L pod add --alias z --url local://z --label novalue
err_case "server not running" 69 \
  "cannot reach the API at http://127.0.0.1:$port: connection refused (is the server running? try --local)" \
  "$PW" -u "http://127.0.0.1:$port" pod list
err_case "API URL without scheme" 78 "invalid API URL '127.0.0.1:8000'" "$PW" -u 127.0.0.1:8000 pod list
err_case "unknown pod: show" 68 "pod 'nope' not found" "$PW" -L pod show nope
err_case "unknown pod: update" 68 "not found" "$PW" -L pod update nope --url local://x
err_case "unknown pod: exec run" 68 "pod 'nope' not found" "$PW" -L exec run nope true
err_case "unknown history id" 68 "no command with id 999999" "$PW" -L exec show 999999
err_case "duplicate alias" 73 "pod 'web-1' already exists" "$PW" -L pod add --alias web-1 --url local://w
err_case "invalid alias" 65 "alias" "$PW" -L pod add --alias '-bad' --url local://w
err_case "invalid URL" 65 "scheme" "$PW" -L pod add --alias ok1 --url ftp://host/x
err_case "invalid label value" 65 "label" "$PW" -L pod add --alias ok2 --url local://w --label 'k=bad value'
err_case "exec timeout" 75 "timed out" "$PW" -L exec run --timeout 1 web-1 'sleep 4'
err_case "bad database URL for --local" 78 "PODWRANGLER_DATABASE_URL" env PODWRANGLER_DATABASE_URL=mysql://x "$PW" -L pod list
run "$PW" -L exec run web-1 'exit 7'
expect "remote exit status passes through (7), no error line" test "$RC-$ERR" = "7-"

# --- pipes vs terminal ------------------------------------------------------------------------
run "$PW" -L exec run web-1 'sleep 1; echo done'
expect "pipe: no spinner on stderr" test -z "$ERR"
expect "pipe: no escape sequences on stdout" lacks $'\e' "$OUT"
run "$PW" -L pod list
expect "pipe: no colours in tables" lacks $'\e' "$OUT"
tty_run "$WORK/tty1" "$PW -L exec run web-1 'sleep 1; echo done'"
expect "terminal: a spinner while waiting" grep -q '⠋\|⠙\|⠹\|⠸' "$WORK/tty1"
expect "terminal: the spinner is erased" grep -q $'\e\\[K' "$WORK/tty1"
expect "terminal: the output" grep -q 'done' "$WORK/tty1"
tty_run "$WORK/tty2" "$PW -L pod list"
expect "terminal: bold table header" grep -q $'\e\\[1mALIAS' "$WORK/tty2"
tty_run "$WORK/tty3" "NO_COLOR=1 $PW -L pod list; NO_COLOR=1 $PW -L exec run web-1 'sleep 1; echo done'"
expect "terminal + NO_COLOR: no colours" lacks_match $'\e\\[[0-9;]*m' "$(<"$WORK/tty3")"
expect "terminal + NO_COLOR: the spinner still turns" grep -q '⠋\|⠙\|⠹' "$WORK/tty3"
tty_run "$WORK/tty4" "$PW --no-color -L pod list"
expect "terminal + --no-color: no colours" lacks_match $'\e\\[[0-9;]*m' "$(<"$WORK/tty4")"
tty_run "$WORK/tty5" "$PW -q -L exec run web-1 'sleep 1; echo done'"
expect "terminal + --quiet: no spinner" lacks_match '⠋|⠙|⠹' "$(<"$WORK/tty5")"
tty_run "$WORK/tty6" "$PW -L exec run web-1 'sleep 1; echo done' 2>/dev/null | cat"
expect "stdout piped on a terminal: no colours, no spinner" lacks $'\e' "$(<"$WORK/tty6")"
tty_run "$WORK/tty7" "$PW -L pod show nope"
expect "terminal: error: in red" grep -q $'\e\\[1;31merror:' "$WORK/tty7"
longdir=$WORK/$(printf 'a%.0s' {1..80})
"$PW" -L pod add --alias longurl --url "local://longurl?cwd=$longdir" >/dev/null
tty_run "$WORK/tty8" "stty cols 40; $PW -L pod list"
expect "terminal: the table fits 40 columns" python3 -c '
import re, sys
lines = [re.sub(r"\x1b\[[0-9;]*m", "", l).rstrip("\r\n") for l in open(sys.argv[1], encoding="utf-8")]
rows = [l for l in lines if re.match(r"(ALIAS|db-1|web-1|longurl) ", l)]
sys.exit(0 if len(rows) == 4 and all(len(l) <= 40 for l in rows) else 1)' "$WORK/tty8"
expect "terminal: long URLs are cut with …" grep -q '…' "$WORK/tty8"

finish

#!/usr/bin/env bash
# End-to-end: every command against a separately started `podwrangler serve` (SQLite or a
# throw-away PostgreSQL 15), with local PTY pods and PlainTTY pods on websocketd over TLS;
# API key auth; NDJSON streaming as pods finish; a CI-style `set -e` script with jq; with
# SQLite also HTTPS and the bash completion in a real bash.
#   tests/e2e/test_cli_serve.sh BUILD_DIR sqlite|postgres
# shellcheck source=tests/e2e/cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"
# shellcheck source=tests/e2e/cli_flow.sh
source "$(dirname "$0")/cli_flow.sh"
db=${2:-sqlite}

make_pki "$WORK/pki" || { echo "FAIL: openssl"; exit 1; }
export SSL_CERT_FILE=$WORK/pki/ca.crt  # the server trusts the test CA for wss:// pods
export PODWRANGLER_API_KEY=e2e-api-key-0123456789abcdef

case $db in
  sqlite) dburl="sqlite:///$WORK/pods.db" ;;  # sqlite:/// + absolute path = sqlite:////…
  postgres)
    source "$SRC/tests/fixtures/postgres.sh"
    CLEANUP_HOOKS+=(pw_pg_stop)
    pw_pg_start "$WORK" || { echo "FAIL: PostgreSQL did not start"; exit 1; }
    dburl=$(pw_pg_createdb podwrangler_e2e) || { echo "FAIL: createdb"; exit 1; }
    ;;
  *) echo "usage: $0 BUILD_DIR sqlite|postgres"; exit 2 ;;
esac

start_serve "$WORK/serve.log" --database-url "$dburl" || exit 1
U=$SERVE_URL
expect "serve names its database" grep -q "$db" "$WORK/serve.log"

# --- auth -------------------------------------------------------------------------------------
run env -u PODWRANGLER_API_KEY "$PW" -u "$U" health
expect "health needs no key" test "$RC" -eq 0
err_case "no API key: 77" 77 "PODWRANGLER_API_KEY" env -u PODWRANGLER_API_KEY "$PW" -u "$U" pod list
err_case "wrong API key: 77" 77 "" env PODWRANGLER_API_KEY=wrong-key-wrong-key-wrong "$PW" -u "$U" pod list

# --- the flow ---------------------------------------------------------------------------------
cli_flow "serve-$db" -u "$U"
# the same through PODWRANGLER_API_URL
run env PODWRANGLER_API_URL="$U" "$PW" pod list -o plain
expect "PODWRANGLER_API_URL" test "$(cut -f1 <<<"$OUT" | tr '\n' ' ')" = "db-1 web-1 "

# --- PlainTTY pods: websocketd over TLS, a pipe shell and a PTY shell --------------------------
start_websocketd "$WORK/pki" /bin/sh || exit 1
ws_pipe=$WSD_PORT
start_websocketd "$WORK/pki" script -qfc /bin/sh /dev/null || exit 1
ws_pty=$WSD_PORT
token=tok-$RANDOM-secret-value
run "$PW" -u "$U" pod add --alias ws-1 --url "wss://127.0.0.1:$ws_pipe/exec/45582/?token=$token&pod=app-abc12-xyz99" --label app=ws
expect "wss pod added (provider from the scheme)" has "(plaintty, " "$OUT"
run "$PW" -u "$U" pod add --alias ws-2 --url "wss://127.0.0.1:$ws_pty/exec/45583/?token=$token&pod=app-abc12-xyz98" --label app=ws
run "$PW" -u "$U" pod list
expect "tokens are shown as ***" has "token=***" "$OUT"
expect "tokens are never printed" lacks "$token" "$OUT"
run "$PW" -u "$U" -o json pod list
expect "tokens are never in JSON" lacks "$token" "$OUT"
run "$PW" -u "$U" exec run ws-1 'echo hi from websocketd; echo err >&2'
expect "exec run on websocketd+TLS (pipe shell)" test "$RC-$OUT" = "0-$(printf 'hi from websocketd\nerr')"
run "$PW" -u "$U" exec run ws-2 'echo on a pty; exit 5'
expect "exec run on websocketd+TLS (PTY shell), exit code" test "$RC-$OUT" = "5-on a pty"
run "$PW" -u "$U" exec run ws-2 'cd /tmp'
run "$PW" -u "$U" exec run ws-2 'pwd'
expect "the shell persists between commands (warm session)" test "$OUT" = "/tmp"
run "$PW" -u "$U" exec run-many 'echo same' --label app=ws --gather
expect "run-many --gather across websocketd pods" has "ws-[1-2] (2)" "$OUT"
run "$PW" -u "$U" -o json exec run-many 'echo x' --aliases ws-1,web-1,db-1
expect "run-many over wss and local pods" test "$RC-$(jq -c '.summary.succeeded' <<<"$OUT")" = "0-3"

# NDJSON streams one line per pod as each finishes: the fast pod's line comes first, long
# before the slow one's.
ts_lines() { while IFS= read -r line; do printf '%s %s\n' "$(date +%s.%N)" "$line"; done; }
# shellcheck disable=SC2016  # expanded by the pod's shell
"$PW" -u "$U" -o ndjson exec run-many '[ "$(basename $PWD)" = db ] && sleep 2; echo done' --aliases db-1,ws-1 |
  ts_lines >"$WORK/stream"
first=$(awk '/"event":"result"/ {print $1; exit}' "$WORK/stream")
last=$(awk '/"event":"summary"/ {print $1}' "$WORK/stream")
expect "ndjson: the fast pod first" test "$(grep -m1 '"event":"result"' "$WORK/stream" | grep -o '"alias":"[^"]*"')" = '"alias":"ws-1"'
expect "ndjson: streamed (first result ≥1.5 s before the end)" python3 -c "import sys; sys.exit(0 if $last - $first >= 1.5 else 1)"
expect "ndjson: the result index is the request order" test "$(grep '"alias":"ws-1"' "$WORK/stream" | grep -o '"index":[0-9]*')" = '"index":1'

# A pod whose terminal is gone
stop_pid "${PIDS[-2]}"
err_case "unreachable pod: 69" 69 "cannot connect to pod ws-1" "$PW" -u "$U" exec run ws-1 true
run "$PW" -u "$U" exec run-many true --aliases ws-1,web-1
expect "run-many with an unreachable pod exits 69" test "$RC" -eq 69

# --- a CI pipeline step: set -e, JSON, jq ---------------------------------------------------
cat >"$WORK/ci.sh" <<'CI'
#!/usr/bin/env bash
set -euo pipefail
pw() { "$PW" -u "$U" "$@"; }
pw --json health | jq -e '.status == "ok"' >/dev/null
pw pod add --alias ci-1 --url local://ci-1 --label stage=ci >/dev/null
pw pod add --alias ci-2 --url local://ci-2 --label stage=ci >/dev/null
trap 'pw pod remove --force ci-1 ci-2 >/dev/null' EXIT
n=$(pw -o json pod list --label stage=ci | jq length)
[ "$n" -eq 2 ]
pw -o json exec run-many 'echo ok' --label stage=ci > results.json
jq -e '.summary.succeeded == 2 and .summary.failed == 0' results.json >/dev/null
version=$(pw -o json exec run ci-1 'uname -s' | jq -r '.output | rtrimstr("\n")')
echo "kernel=$version"
# a failing step stops the job (set -e) with the documented exit status
pw -o json exec run-many 'exit 3' --label stage=ci > failed.json
echo "not reached"
CI
chmod +x "$WORK/ci.sh"
run env PW="$PW" U="$U" bash -c "cd '$WORK' && ./ci.sh"
expect "CI script: stops at the failing step with exit 1" test "$RC" -eq 1
expect "CI script: earlier steps worked" has "kernel=Linux" "$OUT"
expect "CI script: nothing after the failure" lacks "not reached" "$OUT"
expect "CI script: the failure's details are JSON" test "$(jq -r '[.results[].exit_code]|join(",")' "$WORK/failed.json")" = "3,3"
expect "CI script: its EXIT trap cleaned up" test "$("$PW" -u "$U" -o json pod list --label stage=ci | jq length)" -eq 0

if [[ $db == sqlite ]]; then
  # --- bash completion in a real bash: commands, and aliases from this server --------------
  "$PW" completion bash >"$WORK/podwrangler.bash"
  complete_in_bash() { # complete_in_bash WORD...: COMPREPLY for the last word
    # shellcheck disable=SC2016  # the script of the inner bash
    env PATH="$(dirname "$PW"):$PATH" PODWRANGLER_API_URL="$U" bash --norc --noprofile -c '
      source "$1"; shift
      COMP_WORDS=(podwrangler "$@"); COMP_CWORD=$#
      COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
      _podwrangler
      printf "%s\n" "${COMPREPLY[@]}"' _ "$WORK/podwrangler.bash" "$@"
  }
  expect "bash: podwrangler po<TAB> → pod" test "$(complete_in_bash po)" = "pod"
  expect "bash: podwrangler pod <TAB> → subcommands" test "$(complete_in_bash pod '' | tr '\n' ' ')" = "list show add update remove "
  expect "bash: podwrangler exec run w<TAB> → aliases from the API" test "$(complete_in_bash exec run w | tr '\n' ' ')" = "web-1 ws-1 ws-2 "
  expect "bash: podwrangler pod show d<TAB> → db-1" test "$(complete_in_bash pod show d)" = "db-1"
  expect "bash: option values" test "$(complete_in_bash -o nd)" = "ndjson"
  run env PODWRANGLER_API_URL="http://127.0.0.1:$(free_port)" "$PW" __complete pod show ''
  expect "completer: silent when the API is down" test "$RC-$OUT-$ERR" = "0--"

  # --- HTTPS API ---------------------------------------------------------------------------
  start_serve "$WORK/serve-tls.log" --database-url "$dburl" --tls-cert "$WORK/pki/server.crt" --tls-key "$WORK/pki/server.key" || exit 1
  run "$PW" -u "$SERVE_URL" pod list -o plain
  expect "https API with the CA in SSL_CERT_FILE" test "$RC-$(cut -f1 <<<"$OUT" | head -1)" = "0-db-1"
  err_case "https API, untrusted certificate: 69" 69 "certificate" env SSL_CERT_FILE=/dev/null "$PW" -u "$SERVE_URL" pod list
  expect "https API, untrusted certificate: named, no enum or number" lacks_match 'SSLServerVerification|Unknown error' "$ERR"
  stop_pid "$SERVE_PID"
fi

# --- graceful stop ------------------------------------------------------------------------------
kill -TERM "${PIDS[0]}"
wait "${PIDS[0]}"
expect "serve exits 0 on SIGTERM" test $? -eq 0
err_case "server gone: 69 with the hint" 69 "try --local" "$PW" -u "$U" pod list

finish

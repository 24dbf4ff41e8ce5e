# shellcheck shell=bash
# Shared helpers of the CLI e2e suites (source it): checks and counters, a private HOME,
# free ports, servers and websocketd started in the background and ended by their PID.
#   source tests/e2e/cli_lib.sh BUILD_DIR
set -uo pipefail
build=${1:?usage: $0 BUILD_DIR}
build=$(cd "$build" && pwd)
PW=$build/apps/podwrangler
# shellcheck disable=SC2034  # SRC is for the suites that source this file
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[[ -x $PW ]] || { echo "FAIL: $PW is not built"; exit 1; }
WORK=$(mktemp -d /tmp/pw-cli-e2e.XXXXXX)
chmod 755 "$WORK"
export HOME=$WORK/home XDG_DATA_HOME=$WORK/home/.local/share
mkdir -p "$HOME"
unset PODWRANGLER_API_URL PODWRANGLER_API_KEY PODWRANGLER_PROFILE PODWRANGLER_OUTPUT \
  PODWRANGLER_CONFIG PODWRANGLER_DATABASE_URL PODWRANGLER_API_HOST PODWRANGLER_API_PORT \
  PODWRANGLER_SECRET_KEY NO_COLOR COLUMNS
export TERM=xterm

PIDS=()
CLEANUP_HOOKS=()
cleanup() {
  local pid h
  for h in "${CLEANUP_HOOKS[@]}"; do $h; done
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok: $1"; }
bad() { failed=$((failed + 1)); echo "FAIL: $1"; [[ -n ${2:-} ]] && echo "  ${2//$'\n'/$'\n'  }"; return 0; }
expect() { # expect NAME COMMAND... (the command's status decides)
  local name=$1; shift
  if "$@"; then ok "$name"; else bad "$name" "rc=${RC:-} out=${OUT:-} err=${ERR:-}"; fi
}
# run COMMAND...: OUT, ERR, RC of the command (stdin from /dev/null)
run() {
  OUT=$("$@" 2>"$WORK/.err" </dev/null)
  RC=$?
  ERR=$(cat "$WORK/.err")
}
has() { [[ $2 == *"$1"* ]]; }  # has NEEDLE TEXT
lacks() { [[ $2 != *"$1"* ]]; }  # lacks NEEDLE TEXT
lacks_match() { ! grep -Eq -- "$1" <<<"$2"; }  # lacks_match ERE TEXT: no line of TEXT matches
# err_case NAME RC PATTERN COMMAND...: exit RC, one line on stderr "error: …PATTERN…"
err_case() {
  local name=$1 rc=$2 pat=$3; shift 3
  run "$@"
  local lines
  lines=$(printf '%s\n' "$ERR" | grep -c '')
  if [[ $RC -eq $rc && $lines -eq 1 && $ERR == "error: "* && $ERR == *"$pat"* ]]; then
    ok "$name (exit $rc)"
  else
    bad "$name" "want exit $rc and one 'error: …$pat…' line; got rc=$RC stderr=$ERR"
  fi
}
finish() {
  echo "$passed passed, $failed failed"
  [[ $failed -eq 0 ]]
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start_serve LOG ARGS...: `podwrangler serve --port 0 ARGS` in the background; sets
# SERVE_URL and SERVE_PID once it listens.
start_serve() {
  local log=$1; shift
  "$PW" serve --port 0 "$@" >"$log" 2>&1 &
  SERVE_PID=$!
  PIDS+=("$SERVE_PID")
  for _ in $(seq 1 200); do
    SERVE_URL=$(grep -o 'http[s]*://[0-9.]*:[0-9]*' "$log" | head -1)
    [[ -n $SERVE_URL ]] && return 0
    kill -0 "$SERVE_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "serve did not start:"; cat "$log"
  return 1
}
stop_pid() { # stop_pid PID: SIGTERM and wait (only processes this suite started)
  kill -TERM "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}

# make_pki DIR: a test CA and a server certificate for 127.0.0.1/localhost (openssl).
make_pki() {
  local d=$1
  mkdir -p "$d"
  (
    cd "$d" || exit 1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
      -subj '/CN=podwrangler e2e CA' -keyout ca.key -out ca.crt 2>/dev/null &&
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj '/CN=localhost' -keyout server.key -out server.csr 2>/dev/null &&
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >ext.cnf &&
      openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile ext.cnf -out server.crt 2>/dev/null
  )
}

# start_websocketd PKI_DIR PROGRAM...: a TLS websocketd on a free port; sets WSD_PORT.
start_websocketd() {
  local pki=$1; shift
  WSD_PORT=$(free_port)
  websocketd --port="$WSD_PORT" --address=127.0.0.1 --loglevel=error --ssl \
    --sslcert="$pki/server.crt" --sslkey="$pki/server.key" "$@" >"$WORK/websocketd-$WSD_PORT.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$WSD_PORT") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "websocketd did not start"; return 1
}

# tty_run FILE COMMAND: runs COMMAND (a shell string) on a pseudo-terminal (script(1)),
# the transcript in FILE.
tty_run() {
  local file=$1 cmd=$2
  COLUMNS=200 script -qfec "$cmd" /dev/null >"$file" 2>&1 </dev/null
}

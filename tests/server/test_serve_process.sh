#!/usr/bin/env bash
# `podwrangler serve` as a process: SIGTERM stops it gracefully (running commands past the
# grace are recorded `interrupted`), SIGKILL mid-command leaves a truthful `running` row that
# the next server start marks `interrupted`, HTTPS with --tls-cert/--tls-key, the refusal to
# listen on a non-loopback address without a key, and PODWRANGLER_* settings; private
# SQLite files; replicas on one PostgreSQL: a SIGKILLed replica's running command is closed
# by a live one within the lease, at its last heartbeat, and a replica with another
# PODWRANGLER_SECRET_KEY does not start.
#   tests/server/test_serve_process.sh BUILD_DIR
set -uo pipefail
build=${1:?usage: $0 BUILD_DIR}
pw=$build/apps/podwrangler
work=$(mktemp -d /tmp/pw-serve-test.XXXXXX)
spid=""
fails=0
cleanup() {
  [[ -n $spid ]] && kill -0 "$spid" 2>/dev/null && kill -KILL "$spid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
export XDG_DATA_HOME=$work/data PODWRANGLER_SECRET_KEY=serve-test-key
unset PODWRANGLER_API_KEY PODWRANGLER_DATABASE_URL PODWRANGLER_API_HOST PODWRANGLER_API_PORT

check() {  # description, then a command that must succeed
  local what=$1
  shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}
wait_for() {  # a command, retried every 50 ms until it succeeds (10 s at most)
  local i
  for ((i = 0; i < 200; i++)); do
    "$@" && return 0
    sleep 0.05
  done
  return 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() {  # args for serve; sets spid and base
  port=$(free_port)
  base=http://127.0.0.1:$port
  "${serve_prefix[@]}" "$pw" serve --host 127.0.0.1 --port "$port" "$@" 2>>"$work/serve.log" &
  spid=$!
  for _ in $(seq 200); do
    curl -fsS "$base/health" >/dev/null 2>&1 && return 0
    kill -0 "$spid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
serve_prefix=()  # e.g. a command that runs serve in a namespace of its own (exec keeps the pid)
post() { curl -sS -X POST -H 'Content-Type: application/json' -d "$2" "$base$1"; }
statuses() { curl -fsS "$base/api/v1/commands?limit=100" | jq -r '[.items[].status] | sort | join(",")'; }
running_is() { curl -fsS "$base/api/v1/commands?status=running" | jq -e ".items | length == $1" >/dev/null; }

db="sqlite:///$work/pods.db"

# --- SIGTERM: graceful ------------------------------------------------------------
check "serve starts" start --database-url "$db" --shutdown-grace 1
post /api/v1/pods/ '{"alias":"p1","url":"local://p1"}' >/dev/null
post /api/v1/pods/ '{"alias":"p2","url":"local://p2"}' >/dev/null
# Each command first leaves a mark: SIGTERM comes once both run.
post /api/v1/pods/p1/exec "{\"command\":\"touch $work/p1.started; sleep 0.3; echo quick\"}" >"$work/quick.json" &
q=$!
post /api/v1/pods/p2/exec "{\"command\":\"touch $work/p2.started; sleep 30\",\"timeout\":60}" >"$work/slow.json" &
s=$!
check "SQLite: the database, WAL and SHM files are 0600" \
  test "$(stat -c %a "$work/pods.db" "$work/pods.db-wal" "$work/pods.db-shm" 2>&1 | sort -u)" = 600
both_started() { [[ -e $work/p1.started && -e $work/p2.started ]]; }
check "SIGTERM: both commands started" wait_for both_started
t0=$(date +%s%N)
kill -TERM "$spid"
wait "$spid"
rc=$?
t1=$(date +%s%N)
wait $q $s
check "SIGTERM: exit status 0" test "$rc" -eq 0
check "SIGTERM: stopped within the grace (+2 s)" test $(((t1 - t0) / 1000000)) -lt 3000
check "SIGTERM: the quick command finished" jq -e '.output == "quick\n"' "$work/quick.json"
check "SIGTERM: the slow one was interrupted" jq -e '.result.status == "interrupted"' "$work/slow.json"
check "SIGTERM: the port is closed" bash -c "! curl -fsS $base/health >/dev/null 2>&1"
check "SIGTERM: a log line says so" grep -q "SIGTERM: stopping" "$work/serve.log"

start --database-url "$db"
check "after SIGTERM: history is interrupted,succeeded" test "$(statuses)" = "interrupted,succeeded"

# --- SIGKILL mid-command: the row stays running, the next start marks it ----------------
post /api/v1/pods/p1/exec '{"command":"sleep 30","timeout":60}' >/dev/null 2>&1 &
check "SIGKILL: the command is recorded running before it ends" wait_for running_is 1
kill -KILL "$spid"
wait "$spid" 2>/dev/null
start --database-url "$db"
check "SIGKILL: the next start marks the orphan interrupted" \
  test "$(statuses)" = "interrupted,interrupted,succeeded"
kill -TERM "$spid"
wait "$spid"

# --- settings -------------------------------------------------------------------------
out=$("$pw" serve --host 0.0.0.0 --port 0 --database-url "$db" 2>&1)
rc=$?
check "no key on 0.0.0.0: refused with a non-zero exit" test "$rc" -ne 0
check "no key on 0.0.0.0: one clear line" bash -c "[[ \$(wc -l <<<'$out') -eq 1 && '$out' == *PODWRANGLER_API_KEY* ]]"
out=$(PODWRANGLER_API_PORT=notaport "$pw" serve --database-url "$db" 2>&1)
check "bad PODWRANGLER_API_PORT: refused, names the variable" bash -c "[[ '$out' == *PODWRANGLER_API_PORT* ]]"
out=$(PODWRANGLER_SECRET_KEY=another-key-Hunter2 "$pw" serve --port 0 --database-url "$db" 2>&1)
rc=$?
check "another PODWRANGLER_SECRET_KEY (SQLite): refused with a non-zero exit" test "$rc" -ne 0
check "another PODWRANGLER_SECRET_KEY (SQLite): one line naming the variable, not the key" \
  bash -c "[[ \$(wc -l <<<'$out') -eq 1 && '$out' == *PODWRANGLER_SECRET_KEY* && '$out' != *another-key-Hunter2* ]]"
out=$("$pw" serve --port 0 --database-url "postgresql://pw:hunter2secret@127.0.0.1:1/x" 2>&1)
check "unreachable PostgreSQL: refused without the password" bash -c "[[ -n '$out' && '$out' != *hunter2secret* ]]"

# --- API key and HTTPS ------------------------------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
PODWRANGLER_API_KEY=k-0123456789abcdef start --database-url "$db" --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" ||
  { [[ $base == http://* ]] && true; }
base=https://127.0.0.1:$port
for _ in $(seq 100); do curl -fsS --cacert "$work/cert.pem" "$base/health" >/dev/null 2>&1 && break; sleep 0.05; done
check "HTTPS: /health answers without a key" curl -fsS --cacert "$work/cert.pem" "$base/health" -o /dev/null
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$work/cert.pem" "$base/api/v1/pods/")
check "HTTPS: pods need the key (401)" test "$code" = 401
check "HTTPS: pods with the key" bash -c "curl -fsS --cacert '$work/cert.pem' -H 'Authorization: Bearer k-0123456789abcdef' '$base/api/v1/pods/' | jq -e 'length == 2' >/dev/null"
check "HTTPS: plain HTTP is not served" bash -c "! curl -fsS http://127.0.0.1:$port/health >/dev/null 2>&1"
kill -TERM "$spid"
wait "$spid"
check "the log never shows the API key" bash -c "! grep -q 0123456789abcdef '$work/serve.log'"

# --- two serve processes on one PostgreSQL database ---------------------------------------
# shellcheck source=tests/fixtures/postgres.sh
source "$(dirname "${BASH_SOURCE[0]}")/../fixtures/postgres.sh"
trap 'pw_pg_stop; cleanup' EXIT
if pw_pg_start "$work"; then
  pgdb=$(pw_pg_createdb twoservers)
  start --database-url "$pgdb"
  apid=$spid a=$base
  start --database-url "$pgdb"
  bpid=$spid b=$base
  curl -sS -X POST -H 'Content-Type: application/json' -d '{"alias":"shared","url":"local://shared"}' "$a/api/v1/pods/" >/dev/null
  check "PG replicas: B sees the pod A registered" curl -fsS "$b/api/v1/pods/shared" -o /dev/null
  check "PG replicas: B runs it" bash -c "curl -fsS -X POST -H 'Content-Type: application/json' -d '{\"command\":\"echo via-b\"}' '$b/api/v1/pods/shared/exec' | jq -e '.output == \"via-b\n\"' >/dev/null"
  check "PG replicas: A lists B's command" bash -c "curl -fsS '$a/api/v1/commands' | jq -e '.items[0].output == \"via-b\n\"' >/dev/null"
  curls=()
  for i in $(seq 1 20); do
    for srv in "$a" "$b"; do
      curl -s -o /dev/null -w '%{http_code}\n' -X POST -H 'Content-Type: application/json' \
        -d "{\"alias\":\"c$i\",\"url\":\"local://c$i\"}" "$srv/api/v1/pods/" >>"$work/codes" &
      curls+=($!)
    done
  done
  wait "${curls[@]}"
  check "PG replicas: racing registrations: 20 created, 20 conflicts" \
    test "$(sort "$work/codes" | uniq -c | awk '{printf "%s:%s ", $2, $1}')" = "201:20 409:20 "
  check "PG replicas: both list 21 pods" bash -c "[[ \$(curl -fsS '$a/api/v1/pods/' | jq length) == 21 && \$(curl -fsS '$b/api/v1/pods/' | jq length) == 21 ]]"
  curl -fsS -X DELETE "$b/api/v1/pods/c1" >/dev/null
  check "PG replicas: a removal through B shows in A's (cached) listing" \
    bash -c "[[ \$(curl -fsS '$a/api/v1/pods/' | jq length) == 20 ]]"
  kill -TERM "$apid" "$bpid"
  wait "$apid" "$bpid"

  # --- replica leases: heartbeat 0.2 s, lease 1 s (the defaults are 5 s and 20 s) ---
  export PODWRANGLER_REPLICA_HEARTBEAT_S=0.2 PODWRANGLER_REPLICA_LEASE_S=1
  pgdb=$(pw_pg_createdb leases)
  start --database-url "$pgdb"
  cpid=$spid c=$base
  # D in a UTS namespace of its own (another hostname, as in a container) when we may, so
  # that only the lease, not the same-host pid check, can tell C that D died.
  isolated=0
  if unshare --uts true 2>/dev/null; then
    serve_prefix=(unshare --uts sh -c 'hostname pw-replica-d && exec "$@"' sh)
    isolated=1
  fi
  start --database-url "$pgdb"
  dpid=$spid d=$base
  serve_prefix=()
  curl -sS -X POST -H 'Content-Type: application/json' -d '{"alias":"victim","url":"local://victim"}' "$c/api/v1/pods/" >/dev/null
  curl -sS -X POST -H 'Content-Type: application/json' -d '{"command":"sleep 60","timeout":120}' \
    "$d/api/v1/pods/victim/exec" >/dev/null 2>&1 &
  running() { curl -fsS "$c/api/v1/commands?status=running" | jq -e '.items | length == 1' >/dev/null; }
  for _ in $(seq 100); do running && break; sleep 0.05; done
  check "PG leases: C sees the command D runs as running" running
  # Both replicas have renewed (and so swept) past D's first lease (1 s) plus two heartbeats:
  # had D stopped renewing, C would have closed its command by then.
  past_first_lease() {
    [[ $("$PW_PG_BIN/psql" -h 127.0.0.1 -p "$PW_PG_PORT" -U pw -d leases -Atc \
      "SELECT count(*) = 2 AND min(last_seen::timestamptz) > max(started_at::timestamptz) + interval '1.4 s'
       FROM replicas") == t ]]
  }
  check "PG leases: both replicas renew their leases" wait_for past_first_lease
  check "PG leases: a live replica's command stays running" running
  t0=$(date +%s%N)
  kill -KILL "$dpid"
  wait "$dpid" 2>/dev/null
  killed_at=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)  # D is gone: its last heartbeat was before this
  for _ in $(seq 200); do running || break; sleep 0.05; done
  t1=$(date +%s%N)
  row=$(curl -fsS "$c/api/v1/commands?alias=victim&limit=1" | jq -c '.items[0]')
  check "PG leases: C marks the SIGKILLed replica's command interrupted" \
    jq -e '.status == "interrupted"' <<<"$row"
  check "PG leases: within lease + heartbeat (1.2 s, +1 s slack) of the kill" test $(((t1 - t0) / 1000000)) -lt 2200
  found_at=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
  # shellcheck disable=SC2016  # $k is jq's
  check "PG leases: finished_at is D's last heartbeat, by the kill (not the discovery at $found_at): $row" \
    jq -e --arg k "$killed_at" '.finished_at <= $k and .finished_at >= .started_at' <<<"$row"
  if [[ $isolated -eq 1 ]]; then
    check "PG leases: C logged the expired lease" grep -q "pw-replica-d:.* stopped renewing its lease" "$work/serve.log"
  else
    echo "note: unshare --uts is not allowed here: D shares C's hostname (the pid check may win)"
    check "PG leases: C logged it" grep -Eq "stopped renewing its lease|ended server process" "$work/serve.log"
  fi
  out=$(PODWRANGLER_SECRET_KEY=wrong-replica-key "$pw" serve --port 0 --database-url "$pgdb" 2>&1)
  rc=$?
  check "PG: a replica with another PODWRANGLER_SECRET_KEY exits non-zero" test "$rc" -ne 0
  check "PG: ... with one line naming the variable, not the key" \
    bash -c "[[ \$(wc -l <<<'$out') -eq 1 && '$out' == *PODWRANGLER_SECRET_KEY* && '$out' != *wrong-replica-key* ]]"
  check "PG: the correctly keyed replica still lists its pods" \
    bash -c "curl -fsS '$c/api/v1/pods/' | jq -e 'length == 1' >/dev/null"
  spid=$cpid
  kill -TERM "$cpid"
  wait "$cpid"
  unset PODWRANGLER_REPLICA_HEARTBEAT_S PODWRANGLER_REPLICA_LEASE_S
else
  echo "FAIL PostgreSQL cluster did not start"
  fails=$((fails + 1))
fi

echo "$fails failed"
[[ $fails -eq 0 ]]

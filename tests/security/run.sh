#!/usr/bin/env bash
# Black-box security, availability and fidelity checks of issue 11, run against a live
# `podwrangler serve` (plus the CLI, a fake non-podwrangler HTTP server and, when
# PostgreSQL 15 is installed, a throwaway cluster with two replicas).
#
#   tests/security/run.sh BUILD_DIR        (BUILD_DIR/apps/podwrangler is the binary)
#
# Prints one table row per attempt (item | attempt | result) and, last, exactly
# "N passed, M failed". Exits non-zero when any attempt failed. Every check is independent
# (each runs in its own subshell, with a timeout on every network call); all traffic stays
# on 127.0.0.0/8; the processes started here are ended by PID on exit.
set -uo pipefail

build=${1:?usage: $0 BUILD_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pw=$build/apps/podwrangler
if [[ ! -x $pw ]]; then
  echo "run.sh: $pw is not an executable" >&2
  echo "0 passed, 1 failed"
  exit 2
fi
# Debian's python3 (a version-manager shim in PATH may take seconds to start)
PY=python3
[[ -x /usr/bin/python3 ]] && PY=/usr/bin/python3
for tool in curl jq "$PY" sha256sum base64 stat; do
  if ! command -v "$tool" >/dev/null; then
    echo "run.sh: $tool is needed" >&2
    echo "0 passed, 1 failed"
    exit 2
  fi
done

# shellcheck source-path=SCRIPTDIR source=../fixtures/postgres.sh disable=SC1091
source "$here/../fixtures/postgres.sh"

umask 022  # the server, not our umask, must make its files private
work=$(mktemp -d /tmp/pw-security.XXXXXX)
chmod 700 "$work"
results=$work/results
: >"$results"
started=()  # PIDs of every process this script started and may still have to end

cleanup() {
  local p
  for p in "${started[@]}"; do
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  done
  pw_pg_stop
  if [[ -n ${PW_SECURITY_KEEP:-} ]]; then echo "run.sh: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
export PW_PG_DIR=$work/pg15/pg  # where item 15's cluster lives (pw_pg_stop on exit finds it)

# A clean, private environment for every process started from here.
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(PODWRANGLER_|https?_proxy$|HTTPS?_PROXY$|ALL_PROXY$|all_proxy$)')
export HOME=$work/home XDG_DATA_HOME=$work/data NO_COLOR=1
mkdir -p "$HOME" "$XDG_DATA_HOME"
API_KEY=sec-apikey-CANARY-5b7e0c1d9a   # the API key of the main server (>= 16 characters)
SECRET_KEY=sec-secretkey-CANARY-3f8a2e  # its PODWRANGLER_SECRET_KEY
CANARY=foo-canary-value-71c4            # FOO_CANARY, another variable of the server's
AUTH="Authorization: Bearer $API_KEY"
datadir=$XDG_DATA_HOME/podwrangler

# ----------------------------------------------------------------------------------------
# helpers

record() {  # item attempt PASS|FAIL|SKIP words
  local words=${4//$'\n'/ }
  words=${words//$'\t'/ }
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${words:0:100}" >>"$results"
  printf '%-4s %-5s %s: %s\n' "$3" "$1" "$2" "${words:0:100}" >&2
}
verdict() {  # item attempt condition-status words  (condition-status: 0 = pass)
  if [[ $3 -eq 0 ]]; then record "$1" "$2" PASS "$4"; else record "$1" "$2" FAIL "$4"; fi
}

now_ms() { date +%s%3N; }
track() { echo "$1" >>"$work/pids.$ITEM"; }  # a background process of the current item
stop_pid() {  # SIGTERM, up to 5 s to stop, then SIGKILL (the process need not be our child)
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null
}
gone() {  # true once process $1 has ended (exited, or a zombie not yet reaped)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  [[ ${stat%% *} == Z ]]
}

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start_serve LOG ENV-ASSIGNMENTS... -- SERVE-ARGS...: prints "PID PORT" once /health answers.
start_serve() {
  local log=$1
  shift
  local envs=()
  while [[ $# -gt 0 && $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  local port pid
  port=$(free_port)
  env "${envs[@]}" "$pw" serve --host 127.0.0.1 --port "$port" "$@" >>"$log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do
    if curl -fsS --noproxy '*' -m 1 "http://127.0.0.1:$port/health" -o /dev/null 2>/dev/null; then
      echo "$pid $port"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { echo "$pid 0"; return 1; }
    sleep 0.05
  done
  echo "$pid $port"
  return 1
}

# api METHOD PATH [JSON] [MAX-SECONDS]: prints the HTTP status ("000" when none); the body
# lands in $B, the response headers in $B.h.
api() {
  local args=(-sS --noproxy '*' -m "${4:-20}" -o "$B" -D "$B.h" -w '%{http_code}' -X "$1" -H "$AUTH")
  [[ -n ${3-} ]] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
  curl "${args[@]}" "$base$2" 2>/dev/null || true
}
add_local_pod() {  # alias → 0 when registered (or already there)
  local code
  code=$(api POST /api/v1/pods/ "$(jq -cn --arg a "$1" '{alias:$a, url:("local://" + $a)}')")
  [[ $code == 201 || $code == 409 ]]
}
pexec() {  # alias command [timeout] → HTTP status; the result in $B
  local t=${3:-20}
  api POST "/api/v1/pods/$1/exec" "$(jq -cn --arg c "$2" --argjson t "$t" '{command:$c, timeout:$t}')" \
    "$(awk -v t="$t" 'BEGIN { printf "%d", t + 15 }')"
}
# The bytes of a result: output_b64 / stdout_b64 when present, else output (UTF-8).
result_bytes() {  # result-json-file out-file
  if jq -e '(.output_b64 // .stdout_b64 // .result.output_b64 // .result.stdout_b64) != null' "$1" >/dev/null 2>&1; then
    jq -j '.output_b64 // .stdout_b64 // .result.output_b64 // .result.stdout_b64' "$1" | base64 -d >"$2"
  else
    jq -j '.output // .result.output // ""' "$1" >"$2" 2>/dev/null
  fi
}
db_files() { local f; for f in "$datadir"/pods.db "$datadir"/pods.db-wal "$datadir"/pods.db-shm; do [[ -f $f ]] && echo "$f"; done; }
# leaks SECRET FILE...: prints the names of the files that contain SECRET
leaks() {
  local s=$1 f
  shift
  for f in "$@"; do grep -aqF -- "$s" "$f" 2>/dev/null && printf '%s ' "${f##*/}"; done
}

# Python helpers: raw sockets (chunked body, slowloris, caps), a fake HTTP server, OpenAPI.
cat >"$work/net.py" <<'PY'
import json, os, select, socket, sys, time

def rss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0

def read_response(s, timeout):
    """Reads one response (head + Content-Length body); returns (status, headers, body, closed)."""
    s.settimeout(timeout)
    data = b""
    deadline = time.time() + timeout
    closed = False
    while time.time() < deadline:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            head = data[:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip() or 0)
            if len(data) >= head_end + 4 + length:
                break
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except OSError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return 0, "", b"", closed
    head = data[:head_end].decode("latin-1")
    try:
        status = int(head.split(" ", 2)[1])
    except (IndexError, ValueError):
        status = 0
    return status, head, data[head_end + 4:], closed

def chunked(port, key, pid, total):
    base = peak = rss(pid)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(("POST /api/v1/pods/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" % key).encode())
    piece = b"[" + b"0," * 32767 + b"0"
    frame = b"%x\r\n" % len(piece) + piece + b"\r\n"
    sent, n, answered_early = 0, 0, False
    deadline = time.time() + 90
    s.settimeout(5)
    while sent < total and time.time() < deadline:
        r, _, _ = select.select([s], [], [], 0)
        if r:
            answered_early = True
            break
        try:
            s.sendall(frame)
        except (socket.timeout, OSError):
            break
        sent += len(piece)
        n += 1
        if n % 16 == 0:
            peak = max(peak, rss(pid))
    if sent >= total:
        try:
            s.sendall(b"0\r\n\r\n")
        except OSError:
            pass
    status, head, body, closed = read_response(s, 60)
    peak = max(peak, rss(pid))
    if not closed:
        try:
            s.settimeout(3)
            closed = s.recv(1) == b""
        except socket.timeout:
            closed = False
        except OSError:
            closed = True
    try:
        code = json.loads(body.decode("utf-8", "replace")).get("code", "")
    except (ValueError, AttributeError):
        code = ""
    time.sleep(0.5)  # one last sample a moment later: growth that lags the answer counts too
    peak = max(peak, rss(pid))
    print(json.dumps({"status": status, "code": code, "closed": closed, "sent_mib": sent >> 20,
                      "early": answered_early, "growth_mib": (peak - base) >> 20}))

def connect_from(src, port, timeout=1.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s

def hold(port, halfopen, sources, keepalive, ready_file, lifetime):
    """Idle keep-alive connections, then half-open ones (request line, unfinished headers)."""
    socks, ka_ok, ka_sent, ho_ok = [], 0, [], 0
    for _ in range(keepalive):
        try:
            s = connect_from("127.0.0.7", port)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            ka_sent.append(s)
        except OSError:
            pass
    deadline = time.time() + 3
    pending = list(ka_sent)
    while pending and time.time() < deadline:
        r, _, _ = select.select(pending, [], [], 0.2)
        for s in r:
            try:
                if s.recv(65536):
                    ka_ok += 1
            except OSError:
                pass
            pending.remove(s)
    socks += ka_sent
    deadline = time.time() + 20
    for i in range(halfopen):
        if time.time() > deadline:
            break
        try:
            s = connect_from(sources[i % len(sources)], port, 0.5)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append(s)
            ho_ok += 1
        except OSError:
            pass
    with open(ready_file + ".tmp", "w") as f:
        json.dump({"halfopen": ho_ok, "keepalive": ka_ok, "keepalive_open": len(ka_sent)}, f)
    os.rename(ready_file + ".tmp", ready_file)
    time.sleep(lifetime)

def accept_queue(port):
    """Connections waiting in the accept queue of the listening socket on port (IPv4)."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
                return int(fields[4].split(":")[1], 16)
    return 0

def cap(port, src, n):
    """n connections from src (half-open), then one more: its answer and how fast it came."""
    socks, opened = [], 0
    deadline = time.time() + 20
    for _ in range(n):
        if time.time() > deadline:
            break
        try:
            s = connect_from(src, port, 0.5)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            socks.append(s)
            opened += 1
        except OSError:
            break
    # the server has taken every one of them from its accept queue before the next one
    deadline = time.time() + 5
    while accept_queue(port) and time.time() < deadline:
        time.sleep(0.01)
    t0 = time.time()
    status, code = 0, ""
    try:
        s = connect_from(src, port, 2)
        try:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        except OSError:
            pass
        status, head, body, closed = read_response(s, 3)
        try:
            code = json.loads(body.decode("utf-8", "replace")).get("code", "")
        except (ValueError, AttributeError):
            code = ""
    except OSError:
        pass
    print(json.dumps({"opened": opened, "status": status, "code": code,
                      "seconds": round(time.time() - t0, 3)}))

mode = sys.argv[1]
if mode == "chunked":
    chunked(int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]))
elif mode == "hold":
    hold(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(","), int(sys.argv[5]), sys.argv[6],
         float(sys.argv[7]))
elif mode == "cap":
    cap(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
PY

cat >"$work/fake.py" <<'PY'
# A web server that is not podwrangler: MODE html404 (every path: an HTML 404 page) or
# json (every path: 200 with JSON that is not podwrangler's shape). Writes its port to PORTFILE.
import http.server, os, sys
mode, portfile = sys.argv[1], sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        if mode == "html404":
            body, status, ctype = b"<html><body><h1>404 Not Found</h1></body></html>", 404, "text/html"
        else:
            body, status, ctype = b'{"status":"ok","data":[1,2,3]}', 200, "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
PY

cat >"$work/oas.py" <<'PY'
# oas.py DOC example METHOD PATH       → the request body example of an operation
# oas.py DOC composed METHOD PATH      → a body made of its schema's property examples
# oas.py DOC props SCHEMA               → the property names a schema declares, one a line
import json, sys
doc = json.load(open(sys.argv[1]))
def resolve(node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"].lstrip("#/").split("/")
        node = doc
        for part in ref:
            node = node[part]
    return node
def example_of(schema, whole=True):
    schema = resolve(schema)
    if whole and "example" in schema:
        return schema["example"]
    if "examples" in schema and isinstance(schema["examples"], list) and schema["examples"]:
        return schema["examples"][0]
    if schema.get("type") == "object" or "properties" in schema:
        out = {}
        for name, prop in schema.get("properties", {}).items():
            ex = example_of(prop)
            if ex is not None:
                out[name] = ex
        return out
    return schema.get("default")
if sys.argv[2] == "composed":
    op = doc["paths"][sys.argv[4]][sys.argv[3].lower()]
    print(json.dumps(example_of(op["requestBody"]["content"]["application/json"]["schema"], whole=False)))
elif sys.argv[2] == "example":
    op = doc["paths"][sys.argv[4]][sys.argv[3].lower()]
    media = op["requestBody"]["content"]["application/json"]
    if "example" in media:
        ex = media["example"]
    elif media.get("examples"):
        ex = resolve(next(iter(media["examples"].values()))).get("value")
    else:
        ex = example_of(media["schema"])
    print(json.dumps(ex))
elif sys.argv[2] == "props":
    for name in resolve(doc["components"]["schemas"][sys.argv[3]]).get("properties", {}):
        print(name)
PY

# ----------------------------------------------------------------------------------------
# the main server: SQLite in a private data dir, an API key, an access log, a canary

mainlog=$work/serve.log
read -r spid port < <(start_serve "$mainlog" PODWRANGLER_API_KEY="$API_KEY" PODWRANGLER_SECRET_KEY="$SECRET_KEY" \
  FOO_CANARY="$CANARY" -- --access-log)
started+=("$spid")
base=http://127.0.0.1:$port
if ! curl -fsS --noproxy '*' -m 2 "$base/health" -o /dev/null 2>/dev/null; then
  echo "run.sh: podwrangler serve did not start:" >&2
  cat "$mainlog" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

# ----------------------------------------------------------------------------------------
# the items

item_1() {
  local out
  out=$("$PY" "$work/net.py" chunked "$port" "$API_KEY" "$spid" $((300 * 1024 * 1024)) 2>&1 | tail -n 1)
  if ! jq -e . >/dev/null 2>&1 <<<"$out"; then
    record 1 "chunked 300 MB POST /api/v1/pods/" FAIL "helper failed: ${out:0:60}"
    return
  fi
  local st code closed growth sent
  read -r st code closed growth sent < <(jq -r '[.status, (.code|tostring), .closed, .growth_mib, .sent_mib] | @tsv' <<<"$out")
  [[ $st == 413 && $code == payload_too_large && $closed == true && $growth -lt 64 ]]
  verdict 1 "chunked 300 MB POST /api/v1/pods/" $? \
    "status $st code '${code}', closed=$closed, RSS +${growth} MiB after $sent MiB sent"
}

item_2() {
  local fd cmd code out bad
  # another client's connection, open while the command runs
  exec {fd}<>"/dev/tcp/127.0.0.1/$port" || { record 2 "fds of a local shell" FAIL "no client socket"; return; }
  printf 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' >&"$fd"
  add_local_pod sec-fd
  # shellcheck disable=SC2016  # $$ is for the pod's shell
  # (no command substitution: its pipe would be the shell's own fd)
  cmd='for f in /proc/$$/fd/*; do printf "%s " "${f##*/}"; readlink "$f"; done'
  code=$(pexec sec-fd "$cmd")
  exec {fd}>&-
  out=$(jq -r '.output // empty' "$B" | tr -d '\r')
  if [[ $code != 200 || -z $out ]]; then
    record 2 "fds of a local shell (ls /proc/\$\$/fd)" FAIL "exec answered $code"
    return
  fi
  # 0-2 may be anything; above them only the shell's own: its terminal, /dev/null, /proc
  # (an fd without a target was closed meanwhile: the glob's own directory fd)
  out=$(awk 'NF >= 2' <<<"$out")
  bad=$(awk '$1 > 2 && $2 !~ /^(\/dev\/pts\/[0-9]+|\/dev\/tty|\/dev\/null|\/proc\/.*)$/ { printf "%s->%s ", $1, $2 }' <<<"$out")
  [[ -z $bad ]]
  verdict 2 "fds of a local shell (ls /proc/\$\$/fd), a client connected" $? \
    "fds: $(awk '{printf "%s ", $1}' <<<"$out")${bad:+| inherited: $bad}"
}

item_3() {
  local code out found=""
  add_local_pod sec-env
  code=$(pexec sec-env env)
  out=$(jq -r '.output // empty' "$B")
  if [[ $code != 200 || -z $out ]]; then record 3 "env in a local pod" FAIL "exec answered $code"; return; fi
  grep -q '^PODWRANGLER_' <<<"$out" && found+="$(grep -o '^PODWRANGLER_[A-Z_]*' <<<"$out" | tr '\n' ' ')"
  grep -q 'FOO_CANARY' <<<"$out" && found+="FOO_CANARY "
  grep -qF -- "$API_KEY" <<<"$out" && found+="(API key value) "
  grep -qF -- "$SECRET_KEY" <<<"$out" && found+="(secret key value) "
  [[ -z $found ]]
  verdict 3 "env in a local pod" $? "${found:+server env leaked: }${found:-no PODWRANGLER_*, no FOO_CANARY}"
}

# stored_secret ITEM ATTEMPT ALIAS URL SECRET...: the URL is registered; no SECRET may show in
# the add, get or list responses, an exec's error or history row, the SQLite files or the log.
stored_secret() {
  local item=$1 attempt=$2 alias=$3 url=$4
  shift 4
  local where="" s code gcode lcode
  code=$(api POST /api/v1/pods/ "$(jq -cn --arg a "$alias" --arg u "$url" '{alias:$a, url:$u}')")
  cp "$B" "$B.add"
  gcode=$(api GET "/api/v1/pods/$alias"); cp "$B" "$B.get"
  lcode=$(api GET /api/v1/pods/); cp "$B" "$B.list"
  # a failed connection's error (the pod is 127.0.0.1:1) and its history row
  : >"$B.exec"
  : >"$B.history"
  if [[ $code == 201 ]]; then
    pexec "$alias" true 5 >/dev/null
    cp "$B" "$B.exec"
    api GET "/api/v1/commands?alias=$alias" >/dev/null
    cp "$B" "$B.history"
  fi
  local dbs
  mapfile -t dbs < <(db_files)
  for s in "$@"; do
    where+=$(leaks "$s" "$B.add" "$B.get" "$B.list" "$B.exec" "$B.history" "${dbs[@]}" "$mainlog")
  done
  where=${where//body.$ITEM./}
  if [[ $code == 422 ]]; then  # refused: fine as long as nothing leaked
    [[ -z $where ]]
    verdict "$item" "$attempt" $? "refused 422${where:+; secret in: $where}"
    return
  fi
  [[ $code == 201 && $gcode == 200 && $lcode == 200 && -z $where ]]
  verdict "$item" "$attempt" $? "add $code get $gcode list $lcode; ${where:+secret in: }${where:-secret nowhere (responses, history, db, log)}"
}

item_4() {
  stored_secret 4 "nested URL password (server=https://u:pw@x)" sec-nested \
    'wss://127.0.0.1:1/exec/1/?token=Tok4nestedQ1&pod=p&server=https://u:Nest3dPassw0rdQ7@x.invalid' \
    Nest3dPassw0rdQ7 Tok4nestedQ1
}

item_5() {
  stored_secret 5 "bare userinfo token (wss://TOKEN@host/...)" sec-userinfo \
    'wss://Us3rInf0T0kenZ9@127.0.0.1:1/exec/1/?token=Tok5plainQ2&pod=p' Us3rInf0T0kenZ9 Tok5plainQ2
  local code msg
  code=$(api POST /api/v1/pods/ '{"alias":"sec-refused1","url":"https://Refus3dT0kenA1@127.0.0.1/"}')
  msg=$(cat "$B")
  [[ $code == 422 && $msg != *Refus3dT0kenA1* ]]
  verdict 5 "refused https://TOKEN@host" $? "answered $code; $([[ $msg == *Refus3dT0kenA1* ]] && echo 'message echoes the token' || echo 'token not echoed')"
  code=$(api POST /api/v1/pods/ '{"alias":"sec-refused2","url":"wss://Refus3dT0kenB2@127.0.0.1:1/exec/1/?token=Refus3dT0kenC3"}')
  msg=$(cat "$B")
  [[ $code == 422 && $msg != *Refus3dT0kenB2* && $msg != *Refus3dT0kenC3* ]]
  verdict 5 "refused wss:// URL without pod=" $? "answered $code; $([[ $msg == *Refus3dT0ken* ]] && echo 'message echoes a secret' || echo 'secrets not echoed')"
}

item_6() {
  local rc err out
  out=$(timeout 20 "$pw" -u 'http://user:Cl1Passw0rdK4@127.0.0.1:1' pod list 2>"$B.err")
  rc=$?
  err=$(cat "$B.err")
  # documented exit codes (cli/exit_codes.hpp, man podwrangler)
  [[ " 64 65 68 69 70 73 74 75 76 77 78 " == *" $rc "* && -n $err && $err != *Cl1Passw0rdK4* && $out != *Cl1Passw0rdK4* ]]
  verdict 6 "CLI -u http://user:pw@127.0.0.1:1 pod list" $? \
    "exit $rc; $([[ "$err$out" == *Cl1Passw0rdK4* ]] && echo 'password echoed' || echo 'password not echoed')"
}

# fake_server MODE: starts it, prints "PID PORT"
fake_server() {
  local pf=$work/fake.$1.port pid
  rm -f "$pf"
  "$PY" "$work/fake.py" "$1" "$pf" >/dev/null 2>&1 &
  pid=$!
  track "$pid"
  for _ in $(seq 100); do [[ -s $pf ]] && break; sleep 0.05; done
  echo "$pid $(cat "$pf" 2>/dev/null || echo 0)"
}

item_10() {
  local mode fpid fport rc out what
  for mode in html404 json; do
    read -r fpid fport < <(fake_server "$mode")
    out=$(timeout 20 "$pw" -u "http://127.0.0.1:$fport" exec history 2>&1)
    rc=$?
    kill -TERM "$fpid" 2>/dev/null
    wait "$fpid" 2>/dev/null
    what=$([[ $mode == html404 ]] && echo "an HTML 404" || echo "JSON not of our shape")
    [[ $rc == 70 && $out != *"No commands"* ]]
    verdict 10 "CLI exec history against $what" $? \
      "exit $rc$([[ $out == *"No commands"* ]] && echo ', printed No commands')"
  done
}

item_7() {
  local code t0 t1 out
  add_local_pod sec-timeout
  pexec sec-timeout 'cd /tmp; X=1' >/dev/null
  t0=$(now_ms)
  code=$(pexec sec-timeout 'sleep 30' 1)
  local tcode=$code
  # shellcheck disable=SC2016  # $X is the pod shell's
  code=$(pexec sec-timeout 'pwd; echo "$X"')
  t1=$(now_ms)
  out=$(jq -r '.output // empty' "$B" | tr -d '\r')
  local extra=$(((t1 - t0) - 1000))
  [[ $tcode == 504 && $code == 200 && $out == $'/tmp\n1' && $extra -lt 3000 ]]
  verdict 7 "cd /tmp; X=1; timeout (1 s) of sleep 30; pwd; echo \$X" $? \
    "timeout answered $tcode; then '${out//$'\n'/|}' (want /tmp|1); ${extra} ms beyond the timeout"
}

item_8() {
  local code forge out ec next
  add_local_pod sec-forge
  # every way a command could learn the nonce: the old variable, trap text, set output; plus
  # the EXIT-trap form and a nonce-less marker
  # shellcheck disable=SC2016  # expanded by the pod's shell
  forge='for n in "${__pw_n:-}" $(trap 2>/dev/null | grep -o "[0-9a-f]\{16,\}") $(set 2>/dev/null | grep -o "[0-9a-f]\{16,\}"); do printf "\036PW%s:0\036\n\036PW%s:X0\036\n" "$n" "$n"; done; printf "\036PWX:0\036\n\036PW:0\036\n"; sleep 0.3; echo LATE; (exit 3)'
  code=$(pexec sec-forge "$forge")
  ec=$(jq -r '.exit_code // .result.exit_code // "none"' "$B")
  out=$(jq -r '.output // .result.output // ""' "$B")
  pexec sec-forge 'echo NEXT' >/dev/null
  next=$(jq -r '.output // ""' "$B" | tr -d '\r')
  [[ $ec == 3 && $out == *LATE* && $next == NEXT ]]
  verdict 8 "forged sentinels (\$__pw_n, trap, set, PWX), then LATE, exit 3" $? \
    "HTTP $code exit $ec, $([[ $out == *LATE* ]] && echo 'has LATE' || echo 'no LATE'); next: '${next//$'\n'/|}'"
}

item_9() {
  local before after forged
  before=$(wc -l <"$mainlog")
  curl -sS --noproxy '*' -m 5 --path-as-is -o /dev/null -H "$AUTH" "$base/api/v1/pods/x%0aFORGED%20LINE%0d%0aFORGED2" 2>/dev/null
  # the access log line may land just after the answer: wait for it (5 s at most)
  for _ in $(seq 100); do (($(wc -l <"$mainlog") > before)) && break; sleep 0.05; done
  after=$(wc -l <"$mainlog")
  forged=$(tail -n +"$((before + 1))" "$mainlog" | grep -c '^FORGED')
  [[ $forged -eq 0 && $((after - before)) -eq 1 ]]
  verdict 9 "GET /api/v1/pods/x%0aFORGED%20LINE (--access-log)" $? \
    "$((after - before)) log line(s) for one request, $forged starting with FORGED"
}

item_11() {
  local m code allow
  for m in PUT TRACE; do
    code=$(api "$m" /api/v1/pods/ "" 5)
    allow=$(grep -i '^allow:' "$B.h" | tr -d '\r' | cut -d: -f2- | xargs)
    [[ $code == 405 && -n $allow ]]
    verdict 11 "$m /api/v1/pods/" $? "answered $code, $([[ -n $allow ]] && echo "Allow: $allow" || echo 'no Allow header')"
  done
  local long
  printf -v long '%*s' 20000 ''
  long=${long// /a}
  code=$(api GET "/api/v1/pods/$long")
  local ecode
  ecode=$(jq -r '.code // "none"' "$B" 2>/dev/null || echo "not JSON")
  [[ $code == 414 && $ecode == uri_too_long ]]
  verdict 11 "GET with a 20,000-byte path" $? "answered $code, code '${ecode:-none}'"
  code=$(curl -sS --noproxy '*' -m 10 -o /dev/null -w '%{http_code}' -H "Authorization: bearer $API_KEY" "$base/api/v1/pods/" 2>/dev/null)
  [[ $code == 200 ]]
  verdict 11 "Authorization: bearer <key> (lower case)" $? "answered $code"
}

item_12() {
  local q code field
  for q in 'limit=5%00abc' 'limit=%205'; do
    code=$(api GET "/api/v1/commands?$q")
    field=$(jq -r '.field // "none"' "$B" 2>/dev/null)
    [[ $code == 422 && $field == limit ]]
    verdict 12 "GET /api/v1/commands?$q" $? "answered $code, field '$field'"
  done
  local msg ok
  # a NUL in a path value: the message quotes the whole value (old: "pod 'ab" and nothing more)
  code=$(api GET /api/v1/pods/ab%00cd)
  msg=$(jq -r '.message // ""' "$B" 2>/dev/null)
  ok=$(jq -r '(.message // "") as $m | if ($m | contains("cd")) or (($m | contains("ab")) | not) then "yes" else "no" end' "$B" 2>/dev/null)
  [[ ($code == 404 || $code == 422) && $ok == yes ]]
  verdict 12 "GET /api/v1/pods/ab%00cd" $? "answered $code$([[ $ok != yes ]] && echo ", message cut at the NUL: ${msg:0:40}")"
  code=$(api GET /api/v1/commands/1%00x)
  [[ $code == 404 || $code == 422 ]]
  verdict 12 "GET /api/v1/commands/1%00x" $? "answered $code$([[ $code == 200 ]] && echo ' (read as id 1)')"
  add_local_pod sec-nulcmd
  code=$(api POST /api/v1/pods/sec-nulcmd/exec '{"command":"echo A\u0000B"}')
  field=$(jq -r '.field // "none"' "$B" 2>/dev/null)
  msg=$(jq -r '.output // ""' "$B" 2>/dev/null | tr -d '\r')
  msg=${msg//$'\n'/|}
  [[ $code == 422 && $field == command ]]
  verdict 12 "exec \"echo A\\u0000B\"" $? "answered $code, field '$field'${msg:+, it ran and printed $msg}"
}

item_13() {
  local f modes="" ok=0 m
  m=$(stat -c %a "$datadir" 2>/dev/null)
  modes+="dir $m"
  [[ $m == 700 ]] || ok=1
  for f in pods.db pods.db-wal pods.db-shm secret.key; do
    if [[ -e $datadir/$f ]]; then
      m=$(stat -c %a "$datadir/$f")
      modes+=", $f $m"
      [[ $m == 600 ]] || ok=1
    elif [[ $f == pods.db ]]; then
      modes+=", no pods.db"
      ok=1
    fi
  done
  verdict 13 "modes of the data dir and SQLite files (umask 022)" $ok "$modes"
  # an existing 0644 database, opened again
  local d=$work/d13 pid p
  mkdir -p "$d"
  : >"$d/pods.db"
  chmod 644 "$d/pods.db"
  read -r pid p < <(start_serve "$work/serve13.log" PODWRANGLER_SECRET_KEY="$SECRET_KEY" -- --database-url "sqlite:///$d/pods.db")
  track "$pid"
  m=$(stat -c %a "$d/pods.db")
  modes="pods.db $m"
  ok=0
  [[ $m == 600 ]] || ok=1
  for f in pods.db-wal pods.db-shm; do
    if [[ -e $d/$f ]]; then
      m=$(stat -c %a "$d/$f")
      modes+=", $f $m"
      [[ $m == 600 ]] || ok=1
    fi
  done
  stop_pid "$pid"
  verdict 13 "an existing 0644 pods.db opened by serve" $ok "$modes"
}

item_fidelity() {
  local name src code want got trunc label
  "$PY" -c 'import sys; sys.stdout.buffer.write(bytes(range(256)))' >"$work/bytes256"
  head -c 1048576 /dev/urandom >"$work/random1m"
  add_local_pod sec-bytes
  for name in bytes256 random1m; do
    src=$work/$name
    code=$(pexec sec-bytes "cat '$src'" 60)
    want=$(sha256sum <"$src" | cut -c1-64)
    result_bytes "$B" "$B.bytes"
    got=$(sha256sum <"$B.bytes" | cut -c1-64)
    trunc=$(jq -r 'if has("truncated") then .truncated elif (.result | type) == "object" then .result.truncated else "missing" end' "$B" 2>/dev/null)
    label="cat all 256 byte values"
    [[ $name == random1m ]] && label="cat 1 MiB of random bytes"
    [[ $code == 200 && $want == "$got" && $trunc == false ]]
    verdict F "$label" $? \
      "HTTP $code, $(stat -c %s "$B.bytes") of $(stat -c %s "$src") bytes back, sha256 $([[ $want == "$got" ]] && echo equal || echo differs), truncated $trunc"
  done
  # a pod reached over TLS on a port that speaks plain HTTP: the error says what happened
  local msg
  code=$(api POST /api/v1/pods/ "{\"alias\":\"sec-tls\",\"url\":\"wss://127.0.0.1:$port/exec/1/?token=TlsTok9&pod=p\"}")
  code=$(pexec sec-tls true 5)
  msg=$(jq -r '[.message, .result.error, .error] | map(select(. != null and . != "")) | join(" / ")' "$B" 2>/dev/null)
  msg=${msg//$'\n'/ }
  [[ $code == 502 && $msg =~ [Tt][Ll][Ss]|[Ss][Ss][Ll]|[Hh]andshake && $msg != *"nknown error"* ]]
  verdict F "pod wss:// on a plain HTTP port: exec" $? "answered $code: ${msg:0:70}"
  local out rc lines
  out=$(timeout 20 "$pw" -u "https://127.0.0.1:$port" health 2>&1 >/dev/null)
  rc=$?
  lines=$(grep -c . <<<"$out")
  [[ $rc -ne 0 && $lines -eq 1 && $out =~ [Tt][Ll][Ss]|[Ss][Ss][Ll]|[Hh]andshake && $out != *"nknown error"* ]]
  verdict F "CLI -u https:// against a plain HTTP port" $? "exit $rc, $lines line(s): ${out:0:70}"
}

item_16() {
  local doc=$B.openapi code ex alias
  code=$(api GET /openapi.json)
  cp "$B" "$doc"
  if [[ $code != 200 ]] || ! jq -e .paths "$doc" >/dev/null 2>&1; then
    record 16 "GET /openapi.json" FAIL "answered $code"
    return
  fi
  ex=$("$PY" "$work/oas.py" "$doc" example POST /api/v1/pods/ 2>/dev/null)
  alias=$(jq -r '.alias // empty' <<<"$ex" 2>/dev/null)
  [[ -n $alias ]] && api DELETE "/api/v1/pods/$alias" >/dev/null
  code=$(api POST /api/v1/pods/ "$ex")
  [[ $code == 2* ]]
  verdict 16 "POST /api/v1/pods/ with the document's example" $? "answered $code$([[ $code != 2* ]] && printf ': %s' "$(jq -r '.message // empty' "$B" 2>/dev/null | cut -c1-60)")"
  if [[ -n $alias ]]; then
    [[ $code == 2* ]] || add_local_pod "$alias"  # PATCH needs the pod, whatever POST said
    ex=$("$PY" "$work/oas.py" "$doc" example PATCH '/api/v1/pods/{alias}' 2>/dev/null)
    code=$(api PATCH "/api/v1/pods/$alias" "$ex")
    [[ $code == 2* ]]
    verdict 16 "PATCH /api/v1/pods/{alias} with the document's example" $? "answered $code"
    ex=$("$PY" "$work/oas.py" "$doc" composed PATCH '/api/v1/pods/{alias}' 2>/dev/null)
    code=$(api PATCH "/api/v1/pods/$alias" "$ex")
    [[ $code == 2* ]]
    verdict 16 "PATCH /api/v1/pods/{alias} with its properties' examples" $? "answered $code$([[ $code != 2* ]] && printf ': %s' "$(jq -r '.message // empty' "$B" 2>/dev/null | cut -c1-60)")"
    api DELETE "/api/v1/pods/$alias" >/dev/null
  fi
  add_local_pod sec-fan
  # the exec example, on a local pod (the document's own pod URLs are not reachable from here)
  ex=$("$PY" "$work/oas.py" "$doc" example POST '/api/v1/pods/{alias}/exec' 2>/dev/null)
  code=$(api POST /api/v1/pods/sec-fan/exec "$ex" 60)
  [[ $code == 200 ]]
  verdict 16 "POST /api/v1/pods/{alias}/exec with the document's example" $? "answered $code"
  # every field of a fan-out answer is declared
  code=$(api POST /api/v1/exec '{"command":"true","aliases":["sec-fan"]}' 30)
  local undeclared
  undeclared=$(comm -23 <(jq -r '.summary | keys[]' "$B" 2>/dev/null | sort) \
    <("$PY" "$work/oas.py" "$doc" props Summary | sort) | tr '\n' ' ')
  undeclared+=$(comm -23 <(jq -r '.results[0] | keys[]' "$B" 2>/dev/null | sort) \
    <("$PY" "$work/oas.py" "$doc" props CommandResult | sort) | tr '\n' ' ')
  [[ $code == 200 && -z ${undeclared// /} ]]
  verdict 16 "fan-out answer fields declared in Summary/CommandResult" $? \
    "answered $code${undeclared:+; undeclared: $undeclared}"
}

item_14() {
  local hpid ready=$work/hold.ready st
  rm -f "$ready"
  "$PY" "$work/net.py" hold "$port" 1000 127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5 100 "$ready" 40 \
    >/dev/null 2>&1 &
  hpid=$!
  track "$hpid"
  for _ in $(seq 300); do [[ -s $ready ]] && break; sleep 0.1; done
  st=$(cat "$ready" 2>/dev/null || echo '{}')
  local i worst=0 codes="" r c t ms
  for i in 1 2 3; do
    r=$(curl -sS --noproxy '*' -m 3 -o /dev/null -w '%{http_code} %{time_total}' "$base/health" 2>/dev/null || true)
    c=${r%% *}
    t=${r##* }
    ms=$(awk -v t="${t:-3}" 'BEGIN { printf "%d", t * 1000 }')
    ((ms > worst)) && worst=$ms
    codes+="${c:-000} "
    sleep 0.1
  done
  local ho ka
  ho=$(jq -r '.halfopen // 0' <<<"$st")
  ka=$(jq -r '.keepalive_open // 0' <<<"$st")
  [[ $codes == "200 200 200 " && $worst -lt 500 && $ho -ge 1000 ]]
  verdict 14 "/health with $ho half-open (127.0.0.2-5) + $ka idle keep-alive connections" $? \
    "answers: ${codes% }, slowest ${worst} ms"
  # over the per-client cap (512 by default): 503 at once
  local out
  out=$("$PY" "$work/net.py" cap "$port" 127.0.0.6 512 2>/dev/null | tail -n 1)
  kill -KILL "$hpid" 2>/dev/null
  wait "$hpid" 2>/dev/null
  local cst csec cop
  jq -e . >/dev/null 2>&1 <<<"$out" || out='{}'
  read -r cst csec cop < <(jq -r '[.status // 0, .seconds // 9, .opened // 0] | @tsv' <<<"$out")
  [[ $cst == 503 ]] && awk -v s="${csec:-9}" 'BEGIN { exit !(s < 1) }'
  verdict 14 "connection 513 from one address (127.0.0.6)" $? "answered ${cst:-0} after ${csec:-?} s (${cop:-0} held)"
}

item_15() {
  local A="PostgreSQL replicas"
  if [[ ! -x ${PW_PG_BIN:-/usr/lib/postgresql/15/bin}/initdb ]] || ! command -v psql >/dev/null || { [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; }; then
    record 15 "$A" SKIP "PostgreSQL 15 (initdb, psql) not installed"
    return
  fi
  if ! pw_pg_start "$work/pg15" >/dev/null 2>&1; then
    record 15 "$A" FAIL "the throwaway PostgreSQL cluster did not start"
    return
  fi
  local db
  db=$(pw_pg_createdb sec15)
  local hb=0.5 lease=2 envs
  envs=(PODWRANGLER_SECRET_KEY="$SECRET_KEY" "PODWRANGLER_REPLICA_HEARTBEAT_S=$hb" "PODWRANGLER_REPLICA_LEASE_S=$lease")
  # replica A as in a container: its own hostname and PID namespace (when unshare works)
  local apid aport upid="" awrap=()
  if unshare --uts --pid --fork --mount-proc true 2>/dev/null; then
    awrap=(unshare --uts --pid --fork --kill-child --mount-proc sh -c 'hostname replica-a && exec "$@"' sh)
  fi
  aport=$(free_port)
  env "${envs[@]}" "${awrap[@]}" "$pw" serve --host 127.0.0.1 --port "$aport" --database-url "$db" \
    >>"$work/serve15a.log" 2>&1 &
  upid=$!
  track "$upid"
  local aup=1
  for _ in $(seq 200); do
    curl -fsS --noproxy '*' -m 1 "http://127.0.0.1:$aport/health" -o /dev/null 2>/dev/null && { aup=0; break; }
    kill -0 "$upid" 2>/dev/null || break
    sleep 0.05
  done
  apid=$upid
  if ((${#awrap[@]})); then  # the serve process itself: unshare's child's child
    local kid
    kid=$(awk '{print $1}' "/proc/$upid/task/$upid/children" 2>/dev/null)
    [[ -n $kid ]] && apid=$kid
  fi
  local bpid bport bup=0
  read -r bpid bport < <(start_serve "$work/serve15b.log" "${envs[@]}" -- --database-url "$db")
  track "$bpid"
  curl -fsS --noproxy '*' -m 2 "http://127.0.0.1:$bport/health" -o /dev/null 2>/dev/null || bup=1
  local a=http://127.0.0.1:$aport b=http://127.0.0.1:$bport
  if ((aup || bup)); then
    record 15 "SIGKILL replica A during sleep 60" FAIL "replica $( ((aup)) && echo A || echo B) did not start: $(head -c 150 "$work/serve15$( ((aup)) && echo a || echo b).log")"
  else
    replica_death "$a" "$b" "$apid" "$hb" "$lease"
  fi
  kill -KILL "$upid" 2>/dev/null
  wait "$upid" 2>/dev/null
  if ((bup)); then
    record 15 "serve with another PODWRANGLER_SECRET_KEY on the same db" FAIL "no correctly keyed replica ran on the database first"
  else
    wrong_key "$db"
  fi
  stop_pid "$bpid"
  pw_pg_stop
}

# replica_death A-URL B-URL A-PID HEARTBEAT LEASE: A runs `sleep 60` and is SIGKILLed; B must
# mark the command interrupted within lease + heartbeat, finished at the time of death.
replica_death() {
  local a=$1 b=$2 apid=$3 hb=$4 lease=$5
  curl -sS --noproxy '*' -m 10 -o /dev/null -H 'Content-Type: application/json' \
    -d '{"alias":"sec-replica","url":"local://sec-replica"}' "$b/api/v1/pods/" 2>/dev/null
  curl -sS --noproxy '*' -m 90 -o /dev/null -H 'Content-Type: application/json' \
    -d '{"command":"sleep 60","timeout":80}' "$a/api/v1/pods/sec-replica/exec" 2>/dev/null &
  local cpid=$!
  track "$cpid"
  local id=""
  for _ in $(seq 50); do
    id=$(curl -fsS --noproxy '*' -m 2 "$b/api/v1/commands?status=running" 2>/dev/null | jq -r '.items[0].id // empty')
    [[ -n $id ]] && break
    sleep 0.1
  done
  if [[ -z $id ]]; then
    record 15 "SIGKILL replica A during sleep 60" FAIL "B never saw A's command running"
  else
    local tk tdone=0 st="" fin
    tk=$(now_ms)
    kill -KILL "$apid" 2>/dev/null
    for _ in $(seq 50); do gone "$apid" && break; sleep 0.1; done
    if curl -fsS --noproxy '*' -m 1 "$a/health" -o /dev/null 2>/dev/null; then
      record 15 "SIGKILL replica A during sleep 60" FAIL "replica A (pid $apid) still answers after SIGKILL"
    fi
    local limit_ms
    limit_ms=$(awk -v h="$hb" -v l="$lease" 'BEGIN { printf "%d", (h + l + 3) * 1000 }')
    while (($(now_ms) - tk < limit_ms)); do
      st=$(curl -fsS --noproxy '*' -m 2 "$b/api/v1/commands/$id" 2>/dev/null | tee "$B.15" | jq -r '.status // empty')
      if [[ $st == interrupted ]]; then tdone=$(now_ms); break; fi
      sleep 0.2
    done
    fin=$(jq -r '.finished_at // empty' "$B.15" 2>/dev/null)
    local fin_ms=0
    [[ -n $fin ]] && fin_ms=$(date -d "$fin" +%s%3N 2>/dev/null || echo 0)
    # the time of death: no later than the kill (+ one heartbeat of clock slack)
    local death_ok=1
    [[ $fin_ms -gt 0 && $fin_ms -le $((tk + 1000)) ]] && death_ok=0
    [[ $st == interrupted && $death_ok -eq 0 ]]
    verdict 15 "SIGKILL replica A (own hostname/PID ns) during sleep 60" $? \
      "$([[ $st == interrupted ]] && echo "B marked it interrupted after $((tdone - tk)) ms (lease ${lease}+${hb} s)" || echo "still '${st:-?}' after $((limit_ms / 1000)) s"), finished_at $([[ $death_ok -eq 0 ]] && echo '= time of death' || echo "${fin:-none}")"
  fi
  kill -KILL "$cpid" 2>/dev/null
  wait "$cpid" 2>/dev/null
}

# wrong_key DB: a replica with another PODWRANGLER_SECRET_KEY must refuse to start, in one line
wrong_key() {
  local db=$1 cport cpid2 out rc=0 lines
  cport=$(free_port)
  env PODWRANGLER_SECRET_KEY=sec-WRONG-key-9d1c "$pw" serve --host 127.0.0.1 --port "$cport" --database-url "$db" \
    >"$work/serve15c.log" 2>&1 &
  cpid2=$!
  track "$cpid2"
  local running=1
  for _ in $(seq 100); do
    if ! kill -0 "$cpid2" 2>/dev/null; then running=0; break; fi
    sleep 0.1
  done
  if ((running)); then
    kill -KILL "$cpid2" 2>/dev/null
    wait "$cpid2" 2>/dev/null
    rc=0
  else
    wait "$cpid2"
    rc=$?
  fi
  out=$(cat "$work/serve15c.log")
  lines=$(grep -c . <<<"$out")
  [[ $running -eq 0 && $rc -ne 0 && $lines -eq 1 && $out == *PODWRANGLER_SECRET_KEY* && $out != *sec-WRONG-key-9d1c* && $out != *"$SECRET_KEY"* ]]
  verdict 15 "serve with another PODWRANGLER_SECRET_KEY on the same db" $? \
    "$([[ $running -eq 1 ]] && echo 'it started and served' || echo "exit $rc, $lines line(s): ${out:0:60}")"
}

# ----------------------------------------------------------------------------------------
# run every item in its own subshell (one failing, crashing or exiting stops nothing)

t_start=$(now_ms)
# PW_SECURITY_ITEMS="2 8 fidelity" runs a subset (while developing a fix); PW_SECURITY_KEEP=1
# keeps the work directory (logs of every serve) for a look afterwards
for it in ${PW_SECURITY_ITEMS:-1 2 3 4 5 6 10 7 8 9 11 12 13 fidelity 16 14 15}; do
  n_before=$(wc -l <"$results")
  t_item=$(now_ms)
  (
    B=$work/body.$it
    ITEM=$it
    "item_$it"
  )
  # processes an item started in the background and could not end itself
  if [[ -f $work/pids.$it ]]; then
    while read -r p; do kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null; done <"$work/pids.$it"
  fi
  if [[ $(wc -l <"$results") -eq $n_before ]]; then
    record "${it/fidelity/F}" "(item $it)" FAIL "the check ended without a result"
  fi
  echo "     ($it took $((($(now_ms) - t_item) / 1000)) s)" >&2
done
if ! kill -0 "$spid" 2>/dev/null; then
  record "-" "serve still running after every check" FAIL "the server died (see below)"
  tail -n 20 "$mainlog" >&2
fi
elapsed=$((($(now_ms) - t_start) / 1000))

# ----------------------------------------------------------------------------------------
# the table

passed=$(awk -F'\t' '$3 == "PASS"' "$results" | wc -l)
failed=$(awk -F'\t' '$3 == "FAIL"' "$results" | wc -l)
skipped=$(awk -F'\t' '$3 == "SKIP"' "$results" | wc -l)
echo
printf '%-4s | %-66s | %s\n' item attempt result
printf '%s\n' "-----+--------------------------------------------------------------------+--------------------------------"
while IFS=$'\t' read -r i a r w; do
  printf '%-4s | %-66s | %s %s\n' "$i" "${a:0:66}" "$r" "$w"
done <"$results"
echo
echo "(${elapsed} s; $skipped skipped; binary $pw)"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]

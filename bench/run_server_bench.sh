#!/usr/bin/env bash
# Benchmarks of the REST server (BENCHMARKS.md, "REST server"):
#   1. wrk -t2 -c32 -d10s on GET /api/v1/pods/ with 100 pods registered
#   2. POST /api/v1/pods/{alias}/exec {"command":"true"} on a warm pod, sequential
#      (wrk -t1 -c1: one request at a time), latency percentiles
#   4. POST /api/v1/exec "hostname" over N local pods (default 1000): wall time cold and
#      warm, server CPU seconds and peak RSS
#   3. connection starvation: wrk GET /api/v1/pods/ at 32 and at 256 keep-alive clients in
#      the same run (p99 ratio, target <= 10x and <= 50 ms), then /health latency while 1,000
#      half-open connections are held (from 127.0.0.2-5: the per-client cap is 512)
# The server is `podwrangler serve` on a free loopback port with a fresh SQLite database
# (or the database URL given as $PW_BENCH_DATABASE_URL), ended by its PID.
#   bench/run_server_bench.sh [BUILD_DIR] [FANOUT_PODS]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build/release}
pods=${2:-1000}
pw=$build/apps/podwrangler
[[ -x $pw ]] || { echo "error: $pw not built (cmake --build --preset release)" >&2; exit 2; }
for t in wrk curl python3; do
  command -v $t >/dev/null || { echo "error: $t missing (scripts/install-deps.sh)" >&2; exit 2; }
done

work=$(mktemp -d /tmp/pw-server-bench.XXXXXX)
spid=""
cleanup() {
  if [[ -n $spid ]] && kill -0 "$spid" 2>/dev/null; then
    kill -TERM "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
export XDG_DATA_HOME=$work/data PODWRANGLER_SECRET_KEY=bench-secret-key
unset PODWRANGLER_API_KEY
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
db=${PW_BENCH_DATABASE_URL:-sqlite:///$work/pods.db}
base=http://127.0.0.1:$port
"$pw" serve --host 127.0.0.1 --port "$port" --database-url "$db" --shutdown-grace 5 \
  2>"$work/serve.log" &
spid=$!
for _ in $(seq 100); do
  curl -fsS "$base/health" >/dev/null 2>&1 && break
  sleep 0.05
done
curl -fsS "$base/health" >/dev/null || { cat "$work/serve.log" >&2; exit 1; }

# Registers pods through one keep-alive connection (python3's http.client).
register() {  # first last prefix
  python3 - "$port" "$1" "$2" "$3" <<'EOF'
import http.client, json, sys
port, first, last, prefix = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
c = http.client.HTTPConnection("127.0.0.1", port)
for i in range(first, last + 1):
    body = json.dumps({"alias": f"{prefix}{i:04d}", "url": f"local://{prefix}{i:04d}",
                       "labels": {"set": prefix.rstrip("-")}})
    c.request("POST", "/api/v1/pods/", body, {"Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    if r.status != 201:
        sys.exit(f"register {prefix}{i}: HTTP {r.status}")
EOF
}

server_cpu() {  # utime+stime of the server in seconds
  awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$spid/stat"
}

echo "== server: podwrangler serve on $base ($(echo "$db" | cut -d: -f1)); $(nproc) cores"
register 1 100 list-
echo
echo "== 1. wrk -t2 -c32 -d10s GET /api/v1/pods/ (100 pods)"
bytes=$(curl -fsS "$base/api/v1/pods/" | wc -c)
echo "response body: $bytes bytes"
wrk -t2 -c32 -d10s --latency "$base/api/v1/pods/"

echo
echo "== 2. sequential POST /api/v1/pods/list-0001/exec {\"command\":\"true\"} (warm pod)"
cat >"$work/exec.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"command":"true"}'
wrk.headers["Content-Type"] = "application/json"
EOF
curl -fsS -X POST -H 'Content-Type: application/json' -d '{"command":"true"}' \
  "$base/api/v1/pods/list-0001/exec" >/dev/null
wrk -t1 -c1 -d10s --latency -s "$work/exec.lua" "$base/api/v1/pods/list-0001/exec"

echo
echo "== 3. p99 at 32 vs 256 keep-alive clients (wrk -t2 -d10s GET /api/v1/pods/)"
p99() {  # wrk --latency output -> p99 in ms
  awk '$1=="99%"{v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; print v}'
}
out32=$(wrk -t2 -c32 -d10s --latency "$base/api/v1/pods/")
out256=$(wrk -t2 -c256 -d10s --latency "$base/api/v1/pods/")
r32=$(grep Requests/sec <<<"$out32" | awk '{print $2}')
r256=$(grep Requests/sec <<<"$out256" | awk '{print $2}')
p32=$(p99 <<<"$out32")
p256=$(p99 <<<"$out256")
printf 'c=32   p99 %8.2f ms  %s req/s\nc=256  p99 %8.2f ms  %s req/s\nratio  %.1fx\n' \
  "$p32" "$r32" "$p256" "$r256" "$(echo "$p256 / $p32" | bc -l)"
python3 - "$port" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
held = []
for i in range(1000):
    s = socket.socket()
    s.bind((f"127.0.0.{2 + i % 4}", 0))
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /health HTTP/1.1\r\nHost: b\r\n")  # headers never finished
    held.append(s)
lat = []
for _ in range(200):
    t0 = time.perf_counter()
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"GET /health HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        d = c.recv(65536)
        if not d:
            break
        data += d
    c.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:40]
    lat.append((time.perf_counter() - t0) * 1000)
lat.sort()
print(f"/health with 1,000 half-open connections held: p50 {lat[100]:.2f} ms  p99 {lat[197]:.2f} ms  max {lat[-1]:.2f} ms")
for s in held:
    s.close()
EOF

echo
echo "== 4. POST /api/v1/exec 'hostname' over $pods local pods (parallel 256)"
register 1 "$pods" fan-
req="{\"command\":\"hostname\",\"selector\":\"set=fan\",\"parallel\":256,\"timeout\":60}"
for run in cold warm warm warm; do
  cpu0=$(server_cpu)
  t0=$(date +%s.%N)
  out=$(curl -fsS -X POST -H 'Content-Type: application/json' -d "$req" "$base/api/v1/exec")
  t1=$(date +%s.%N)
  cpu1=$(server_cpu)
  summary=$(python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["summary"]))' <<<"$out")
  printf '%-5s wall %.3f s  server cpu %.2f s  %s\n' "$run" "$(echo "$t1 - $t0" | bc)" \
    "$(echo "$cpu1 - $cpu0" | bc)" "$summary"
done
grep -E 'VmHWM|VmRSS' "/proc/$spid/status"
echo "commands in history: $(curl -fsS "$base/api/v1/commands?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')"

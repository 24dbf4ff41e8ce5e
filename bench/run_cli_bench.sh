#!/usr/bin/env bash
# Start-up cost of the CLI (BENCHMARKS.md, "CLI"), with hyperfine:
#   podwrangler --version, pod list against a running server (10 pods), --local pod list
#   (the server started in-process on each run), and curl on the same endpoint for scale.
#   bench/run_cli_bench.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build/release}
pw=$build/apps/podwrangler
[[ -x $pw ]] || { echo "error: $pw not built (cmake --build --preset release)" >&2; exit 2; }
command -v hyperfine >/dev/null || { echo "error: hyperfine missing (scripts/install-deps.sh)" >&2; exit 2; }

work=$(mktemp -d /tmp/pw-cli-bench.XXXXXX)
spid=""
cleanup() {
  if [[ -n $spid ]] && kill -0 "$spid" 2>/dev/null; then
    kill -TERM "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
export HOME=$work XDG_DATA_HOME=$work/data PODWRANGLER_SECRET_KEY=bench-secret-key NO_COLOR=1
unset PODWRANGLER_API_KEY PODWRANGLER_API_URL PODWRANGLER_DATABASE_URL
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$pw" serve --port "$port" --database-url "sqlite:///$work/served.db" 2>"$work/serve.log" &
spid=$!
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.05; done
for i in $(seq 1 10); do
  "$pw" -u "http://127.0.0.1:$port" pod add --alias "p$i" --url "local://p$i" >/dev/null
  "$pw" -L pod add --alias "p$i" --url "local://p$i" >/dev/null
done
echo "== $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $(ldd "$pw" | wc -l) shared libraries"
hyperfine -N --warmup 10 --runs 100 \
  "$pw --version" \
  "$pw -u http://127.0.0.1:$port pod list" \
  "$pw --local pod list" \
  "curl -fsS http://127.0.0.1:$port/api/v1/pods/"

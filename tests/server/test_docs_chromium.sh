#!/usr/bin/env bash
# Swagger UI end to end: `podwrangler serve` on a temporary SQLite database, then headless
# Debian chromium renders /docs (assets from the binary, no network) and lists the API.
#   tests/server/test_docs_chromium.sh BUILD_DIR
set -uo pipefail
build=${1:?usage: $0 BUILD_DIR}
pw=$build/apps/podwrangler
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok: $1"; }
bad() { failed=$((failed + 1)); echo "FAIL: $1"; }
expect() { # expect NAME CONDITION...
  local name=$1; shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}

[[ -x $pw ]] || { echo "FAIL: $pw not built"; exit 1; }
command -v chromium >/dev/null || { echo "FAIL: chromium missing: run scripts/install-deps.sh"; exit 1; }

tmp=$(mktemp -d /tmp/pw-docs.XXXXXX)
server_pid=""
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# A free loopback port (the kernel picks it; the window until serve binds it is tiny).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port

mkdir -p "$tmp/xdg" "$tmp/home"
env -u PODWRANGLER_API_KEY -u PODWRANGLER_DATABASE_URL -u PODWRANGLER_API_HOST -u PODWRANGLER_API_PORT \
  XDG_DATA_HOME="$tmp/xdg" PODWRANGLER_SECRET_KEY="docs-test-$$-$RANDOM" \
  "$pw" serve --host 127.0.0.1 --port "$port" --database-url "sqlite:///$tmp/pods.db" \
  >"$tmp/server.log" 2>&1 &
server_pid=$!

# get PATH → "status content-type bytes" (python3: no extra client dependency).
get() {
  python3 - "$base$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        print(r.status, r.headers.get("Content-Type", "").split(";")[0], len(r.read()))
except urllib.error.HTTPError as e:
    print(e.code, e.headers.get("Content-Type", "").split(";")[0], len(e.read()))
except Exception:
    print(0, "-", 0)
PY
}

up=0
for _ in $(seq 100); do
  kill -0 "$server_pid" 2>/dev/null || break
  [[ $(get /health) == 200\ * ]] && { up=1; break; }
  sleep 0.1
done
if ((up == 0)); then
  echo "FAIL: server did not answer /health on $base"; cat "$tmp/server.log"; exit 1
fi
ok "server up on $base"

read -r st ct n < <(get /openapi.json)
expect "/openapi.json is JSON" test "$st $ct" = "200 application/json"
read -r st ct n < <(get /docs/swagger-ui-bundle.js)
expect "/docs/swagger-ui-bundle.js served ($n bytes)" test "$st $ct" = "200 text/javascript"
read -r st ct n < <(get /docs/swagger-ui.css)
expect "/docs/swagger-ui.css served" test "$st $ct" = "200 text/css"
read -r st ct n < <(get /docs/no-such-asset.js)
expect "unknown /docs asset is a JSON 404" test "$st $ct" = "404 application/json"

HOME="$tmp/home" timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic \
  --no-first-run --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$tmp/chromium" --virtual-time-budget=10000 --dump-dom "$base/docs" \
  >"$tmp/dom.html" 2>"$tmp/chromium.log"
rc=$?
expect "chromium exits 0" test "$rc" -eq 0
dom=$(<"$tmp/dom.html")
has() { grep -qF -- "$1" <<<"$dom"; }
lacks_match() { ! grep -qE -- "$1" <<<"$dom"; }
expect "page title rendered" has "podwrangler REST API"
expect "version rendered" has "0.1.0"
for path in /health /api/v1/pods/ "/api/v1/pods/{alias}" "/api/v1/pods/{alias}/exec" /api/v1/exec \
            /api/v1/exec/stream /api/v1/commands "/api/v1/commands/{id}"; do
  expect "DOM lists $path" has "data-path=\"$path\""
done
expect "DOM lists the schemas" has "FanOutRequest"
expect "no load error" lacks_match "Failed to load API definition|Resolver error"
if ((failed)); then
  echo "--- server log"; tail -20 "$tmp/server.log"
  echo "--- chromium log"; tail -20 "$tmp/chromium.log"
fi

echo "docs_chromium: $passed passed, $failed failed"
((failed == 0))

#!/usr/bin/env bash
# End-to-end: the built binary against servers that are not podwrangler (issue 11, item 10),
# credentials in the API URL (item 6), TLS failures named in one line, and --output raw
# writing the exact bytes of a result (fidelity).
#   tests/e2e/test_cli_protocol.sh BUILD_DIR
# shellcheck source=tests/e2e/cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"

# wait_port PORT PID: until something listens on 127.0.0.1:PORT (or PID died).
wait_port() {
  for _ in $(seq 1 200); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# 1. python3 -m http.server: directory listings (200 text/html), HTML 404s, 501 for POST.
root=$WORK/www
mkdir -p "$root/api/v1/pods"
port=$(free_port)
(cd "$root" && exec python3 -m http.server --bind 127.0.0.1 "$port") >"$WORK/http.log" 2>&1 &
PIDS+=($!)
wait_port "$port" "$!" || { echo "FAIL: python3 -m http.server did not start"; exit 1; }
H="http://127.0.0.1:$port"

err_case "exec history: not 'No commands' but a protocol error" 70 \
  "not a podwrangler API at $H (HTTP 404, text/html" "$PW" -u "$H" exec history
expect "exec history: nothing on stdout" test -z "$OUT"
err_case "pod list: a directory listing is not a pod list" 70 "(HTTP 200, text/html" "$PW" -u "$H" pod list
err_case "pod show: an HTML 404 is not 'pod not found'" 70 "(HTTP 404, text/html" "$PW" -u "$H" pod show web-1
err_case "pod remove: an HTML 501 for DELETE" 70 "(HTTP 501, text/html" "$PW" -u "$H" pod remove web-1
err_case "exec show: an HTML 404" 70 "(HTTP 404, text/html" "$PW" -u "$H" exec show 42
err_case "exec run: an HTML 501 for POST" 70 "(HTTP 501, text/html" "$PW" -u "$H" exec run web-1 true
err_case "exec run-many: an HTML 501 for POST" 70 "(HTTP 501, text/html" "$PW" -u "$H" exec run-many true --all
err_case "health: an HTML 404" 70 "(HTTP 404, text/html" "$PW" -u "$H" health
err_case "json output: still the protocol error" 70 "not a podwrangler API" "$PW" -u "$H" -o json exec history
expect "json output: nothing on stdout" test -z "$OUT"

# 2. Credentials in the API URL are never echoed.
err_case "-u with user:password" 78 "invalid API URL 'http://***@127.0.0.1:$port'" \
  "$PW" -u "http://user:Sup3rPw@127.0.0.1:$port" pod list
expect "-u with user:password: password not shown" lacks Sup3rPw "$OUT$ERR"
err_case "-u with a bare token" 78 "invalid API URL 'http://***@" "$PW" -u "http://T0kenXyz@127.0.0.1:$port" health
expect "-u with a bare token: token not shown" lacks T0kenXyz "$OUT$ERR"

# 3. TLS: https:// on a plain-HTTP port, an untrusted certificate, a closed port.
err_case "https:// on a plain-HTTP port" 69 "failed: the server does not speak TLS (a plain-HTTP port?)" \
  "$PW" -u "https://127.0.0.1:$port" health
expect "no 'Unknown error' nor enum names" lacks_match 'Unknown error|SSLConnection|[0-9]{3} *$' "$ERR"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1
tport=$(free_port)
openssl s_server -quiet -www -accept "127.0.0.1:$tport" -cert "$WORK/cert.pem" -key "$WORK/key.pem" \
  </dev/null >"$WORK/tls.log" 2>&1 &
PIDS+=($!)
wait_port "$tport" "$!" || { echo "FAIL: openssl s_server did not start"; exit 1; }
err_case "untrusted certificate" 69 "certificate of the API at https://127.0.0.1:$tport is not trusted: self" \
  "$PW" -u "https://127.0.0.1:$tport" health
err_case "closed port" 69 "connection refused" "$PW" -u "https://127.0.0.1:$(free_port)" health

# 4. --output raw: the exact bytes (all 256 values) from output_b64, nothing added.
aport=$(free_port)
cat >"$WORK/fake_api.py" <<'PY'
import base64, http.server, json, sys
data = bytes(range(256))
result = {"id": 1, "alias": "blob", "command": "cat blob", "status": "succeeded", "exit_code": 0,
          "output": data.decode("utf-8", "replace"), "output_b64": base64.b64encode(data).decode(),
          "error": None, "duration": 0.01, "truncated": False}
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        body = json.dumps(result).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer()
    do_GET = answer
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$WORK/fake_api.py" "$aport" >"$WORK/fake.log" 2>&1 &
PIDS+=($!)
wait_port "$aport" "$!" || { echo "FAIL: fake API did not start"; exit 1; }
A="http://127.0.0.1:$aport"
want=$(python3 -c 'import hashlib; print(hashlib.sha256(bytes(range(256))).hexdigest())')
got=$("$PW" -u "$A" -o raw exec run blob cat blob | sha256sum | cut -d' ' -f1)
expect "exec run -o raw: the 256 bytes exactly" test "$got" = "$want"
got=$("$PW" -u "$A" -o raw exec show 1 | sha256sum | cut -d' ' -f1)
expect "exec show -o raw: the 256 bytes exactly" test "$got" = "$want"
got=$("$PW" -u "$A" exec run blob cat blob | sha256sum | cut -d' ' -f1)
expect "default output: the text rendition, not the bytes" test "$got" != "$want"

finish

#!/usr/bin/env bash
# The capsule Docker backend against a real, private dockerd (tests/fixtures/dockerd.sh):
# busybox image imported from local files, a user bridge network for the port test, and
# the same daemon also listening on a loopback TCP port with TLS client certificates
# (--tlsverify), for the DOCKER_HOST=tcp:// case. Runs the "capsule_docker" doctest suite.
#   tests/integration/capsules/run_capsule_docker_tests.sh BUILD_DIR [doctest options…]
set -euo pipefail
build=${1:?usage: $0 BUILD_DIR [doctest options]}
shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/fixtures/dockerd.sh
source "$here/../../fixtures/dockerd.sh"
work=$(mktemp -d /tmp/pw-cdk.XXXXXX)
trap '{ [[ -z ${PW_DOCKER_HOST:-} ]] || pw_docker network rm pw-capsule-net >/dev/null 2>&1; } || true
  pw_dockerd_stop || true; rm -rf "$work"' EXIT

# The PKI, as the docker CLI expects it in DOCKER_CERT_PATH: ca.pem, cert.pem, key.pem
# (the client's); the daemon gets server-cert.pem/server-key.pem for 127.0.0.1.
pki=$work/pki
mkdir -p "$pki"
(
  cd "$pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj '/CN=podwrangler capsule test CA' -keyout ca-key.pem -out ca.pem 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj '/CN=localhost' -keyout server-key.pem -out server.csr 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >server.cnf
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
    -extfile server.cnf -out server-cert.pem 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj '/CN=podwrangler test client' -keyout key.pem -out client.csr 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' >client.cnf
  openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
    -extfile client.cnf -out cert.pem 2>/dev/null
  chmod 600 ./*key.pem
)

# The fixture starts `dockerd` from PATH: this wrapper adds the TLS listener (the unix
# socket stays plain: dockerd applies TLS to TCP listeners only) and execs the real one,
# so the fixture's PID and command-line checks see dockerd itself.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
real_dockerd=$(command -v dockerd)
mkdir -p "$work/bin"
cat >"$work/bin/dockerd" <<EOF
#!/bin/sh
exec "$real_dockerd" "\$@" --host "tcp://127.0.0.1:$port" --tlsverify \
  --tlscacert "$pki/ca.pem" --tlscert "$pki/server-cert.pem" --tlskey "$pki/server-key.pem"
EOF
chmod 755 "$work/bin/dockerd"
PATH="$work/bin:$PATH" pw_dockerd_start "$work/d"
pw_dockerd_image pw-test-busybox:1
pw_docker network create pw-capsule-net >/dev/null

export PW_DOCKER_HOST PW_DOCKER_IMAGE=pw-test-busybox:1 PW_CAPSULE_NETWORK=pw-capsule-net
export PW_DOCKER_TLS_HOST="tcp://127.0.0.1:$port" PW_DOCKER_CERT_PATH=$pki
out=$work/doctest.out
rc=0
"$build/tests/integration/pw_capsule_docker_tests" -ts=capsule_docker "$@" 2>&1 | tee "$out" || rc=$?
if grep -q 'test cases: *0 |' "$out"; then
  echo "error: the capsule_docker suite ran no test" >&2
  exit 1
fi
left=$(pw_docker ps -aq --filter label=podwrangler.capsule)
if [[ -n $left ]]; then
  echo "error: the tests left capsule containers behind: $left" >&2
  exit 1
fi
exit "$rc"

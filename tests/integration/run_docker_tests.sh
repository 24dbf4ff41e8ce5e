#!/usr/bin/env bash
# Starts a private dockerd (tests/fixtures/dockerd.sh), imports a busybox image from local
# files, runs the containers the "docker" test suite needs, runs it, and stops everything.
#   tests/integration/run_docker_tests.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: $0 BUILD_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/fixtures/dockerd.sh
source "$here/../fixtures/dockerd.sh"
work=$(mktemp -d /tmp/pw-dk.XXXXXX)
trap 'pw_dockerd_stop || true; rm -rf "$work"' EXIT
pw_dockerd_start "$work"
pw_dockerd_image pw-test-busybox:1
pw_docker run -d --name pw-main --network none --init --label pw-role=main pw-test-busybox:1 sleep 1000000 >/dev/null
pw_dockerd_run_container pw-stop pw-test-busybox:1 >/dev/null
pw_dockerd_run_container pw-rm pw-test-busybox:1 >/dev/null
export PW_DOCKER_HOST PW_DOCKER_CONTAINER=pw-main PW_DOCKER_STOP_CONTAINER=pw-stop PW_DOCKER_RM_CONTAINER=pw-rm
out=$work/doctest.out
rc=0
"$build/tests/integration/pw_integration_tests" -ts=docker 2>&1 | tee "$out" || rc=$?
if grep -q 'test cases: *0 |' "$out"; then
  echo "error: the docker suite ran no test" >&2
  exit 1
fi
exit "$rc"

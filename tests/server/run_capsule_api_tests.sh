#!/usr/bin/env bash
# The capsule API (tests/server/test_api_capsules.cpp) against a private dockerd
# (tests/fixtures/dockerd.sh) with a busybox image and a musl image (no glibc) imported from
# local files. Afterwards no capsule container may be left on that daemon. The suite stops and
# restarts that dockerd in place (tests/integration/capsules/dockerd_ctl.sh).
#   tests/server/run_capsule_api_tests.sh BUILD_DIR [doctest options…]
set -euo pipefail
build=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/fixtures/dockerd.sh
source "$here/../fixtures/dockerd.sh"
work=$(mktemp -d /tmp/pw-capi.XXXXXX)
# A dockerd restarted by the suite has a new pid: the one to end is the pidfile's.
trap 'if [[ -s ${PW_DOCKERD_DIR:-/nonexistent}/dockerd.pid ]]; then PW_DOCKERD_PID=$(<"$PW_DOCKERD_DIR/dockerd.pid"); fi
      pw_dockerd_stop || true; rm -rf "$work"' EXIT
pw_dockerd_start "$work/d"
pw_dockerd_image pw-test-busybox:1
pw_dockerd_musl_image pw-test-musl:1 "$here/../fixtures/musl_hello.c"
export PW_DOCKER_HOST PW_DOCKER_CLI PW_DOCKERD_DIR PW_CAPSULE_IMAGE=pw-test-busybox:1
export PW_CAPSULE_MUSL_IMAGE=pw-test-musl:1 PW_CAPSULE_DOCKERD_CTL=$here/../integration/capsules/dockerd_ctl.sh
# The in-capsule agent from this build tree, when it is built (else the manager falls back
# to the engine's exec, and says so in each capsule's exec_mode).
agent=$(find "$build" -name pw-agent -type f -perm -u+x 2>/dev/null | head -1)
if [[ -n $agent ]]; then
  export PODWRANGLER_AGENT_PATH=$agent
else
  unset PODWRANGLER_AGENT_PATH
  echo "note: no pw-agent under $build: capsules use the docker-exec fallback" >&2
fi
out=$work/doctest.out
rc=0
"$build/tests/server/pw_capsule_api_tests" "$@" 2>&1 | tee "$out" || rc=$?
if grep -q 'test cases: *0 |' "$out"; then
  echo "error: the capsule API suite ran no test" >&2
  exit 1
fi
left=$(pw_docker ps -aq --filter label=podwrangler.capsule </dev/null)
if [[ -n $left ]]; then
  echo "error: capsule containers left behind: $(tr '\n' ' ' <<<"$left")" >&2
  exit 1
fi
exit "$rc"

#!/usr/bin/env bash
# Starts a private dockerd (tests/fixtures/dockerd.sh), imports a busybox image from local
# files, and runs the "capsule_manager" suite against it once per mode: MODE/RECORDS with MODE
# "fallback" (no agent: docker exec) or "agent", RECORDS "memory" (MemoryCapsuleRecords) or
# "sqlite" (the server's store). Fails when a run ran no test or left a capsule container
# behind; stops everything it started.
#   tests/integration/capsules/run_capsule_manager_tests.sh BUILD_DIR [MODES [DOCTEST ARGS…]]
#   MODES: comma-separated, default "fallback/memory,agent/sqlite"
set -euo pipefail
build=${1:?usage: $0 BUILD_DIR [MODES]}
modes=${2:-fallback/memory,agent/sqlite}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/fixtures/dockerd.sh
source "$here/../../fixtures/dockerd.sh"
work=$(mktemp -d /tmp/pw-cm.XXXXXX)
# The suite restarts dockerd in place (dockerd_ctl.sh): the pid to end is the pidfile's.
trap 'if [[ -s ${PW_DOCKERD_DIR:-/nonexistent}/dockerd.pid ]]; then PW_DOCKERD_PID=$(<"$PW_DOCKERD_DIR/dockerd.pid"); fi
      pw_dockerd_stop || true; rm -rf "$work"' EXIT
pw_dockerd_start "$work/d"
pw_dockerd_image pw-test-busybox:1
export PW_DOCKER_HOST PW_DOCKER_CLI PW_DOCKERD_DIR
export PW_CAPSULE_IMAGE=pw-test-busybox:1 PW_CAPSULE_DOCKERD_CTL=$here/dockerd_ctl.sh
unset PODWRANGLER_AGENT_PATH
bin=$build/tests/integration/pw_capsule_manager_tests
rc=0
IFS=, read -r -a mode_list <<<"$modes"
for run in "${mode_list[@]}"; do
  mode=${run%/*} records=memory
  [[ $run == */* ]] && records=${run#*/}
  echo "=== capsule_manager suite, mode $mode, records $records" >&2
  out=$work/doctest-$mode-$records.out
  mode_rc=0
  PW_CAPSULE_MODE=$mode PW_CAPSULE_RECORDS=$records "$bin" -ts=capsule_manager "${@:3}" 2>&1 | tee "$out" || mode_rc=$?
  if grep -q 'test cases: *0 |' "$out"; then
    echo "error: the capsule_manager suite ran no test (mode $mode)" >&2
    mode_rc=1
  fi
  left=$(pw_docker ps -aq --filter label=podwrangler.capsule </dev/null)
  if [[ -n $left ]]; then
    echo "error: capsule containers left behind (mode $mode): $left" >&2
    # shellcheck disable=SC2086
    pw_docker rm -f $left >/dev/null 2>&1 </dev/null || true
    mode_rc=1
  fi
  ((mode_rc == 0)) || rc=$mode_rc
done
exit "$rc"

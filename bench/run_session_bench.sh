#!/usr/bin/env bash
# Runs the session benchmarks of BENCHMARKS.md: latency (with a `docker exec` comparison
# on a private dockerd started here, when this machine can run one) and idle memory.
#   bench/run_session_bench.sh [BUILD_DIR]      (default build/release)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build/release}
bin=$build/bench/pw_bench_session
[[ -x $bin ]] || { echo "error: $bin not built (cmake --build --preset release)" >&2; exit 2; }

docker_args=()
if [[ $(id -u) -eq 0 ]] && command -v dockerd >/dev/null; then
  # shellcheck source=tests/fixtures/dockerd.sh
  source "$root/tests/fixtures/dockerd.sh"
  work=$(mktemp -d /tmp/pw-bench.XXXXXX)
  trap 'pw_dockerd_stop || true; rm -rf "$work"' EXIT
  if pw_dockerd_start "$work" && pw_dockerd_image pw-bench-busybox:1; then
    pw_dockerd_run_container pw-bench-ctr pw-bench-busybox:1 >/dev/null
    docker_args=(--docker-container pw-bench-ctr --docker-host "$PW_DOCKER_HOST" --docker-runs 100)
  else
    echo "note: dockerd could not start; docker exec comparison skipped" >&2
  fi
fi

echo "== latency: 2000 x 'true' on one persistent session (after 100 warm-up runs)"
"$bin" latency --runs 2000 --k8s-fixture "$build/tests/fixtures/k8s_fixture/pw_k8s_fixture" "${docker_args[@]}"
echo "== idle memory: 1000 sessions to one local websocketd"
"$bin" memory --sessions 1000
"$bin" memory --sessions 1000 --tls

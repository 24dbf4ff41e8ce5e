#!/usr/bin/env bash
# Runs the capsule benchmarks of BENCHMARKS.md (issue 13) against a private dockerd started
# here (tests/fixtures/dockerd.sh) with a busybox image imported from local files: create ->
# first exec (cold, warm pool) vs `docker run --rm`, warm exec (library, REST) vs `docker exec`,
# concurrent creates vs `docker run -d`, memory per idle capsule.
#   bench/run_capsule_bench.sh BUILD_DIR [--smoke | PROGRAM ARGS…]
# --smoke: small counts (the ctest bench_capsules_smoke). Other arguments go to
# pw_bench_capsules (e.g. --only exec --exec-runs 4000). Prints the machine's load before and
# after. Stops everything it started, by PID; fails when a container is left behind.
# Exit 77 (skipped) when this machine cannot start a dockerd (not root, no docker.io).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:?usage: $0 BUILD_DIR [--smoke | PROGRAM ARGS...]}
shift
bin=$build/bench/pw_bench_capsules
[[ -x $bin ]] || { echo "error: $bin not built (cmake --build $build --target pw_bench_capsules)" >&2; exit 2; }
args=("$@")
if [[ ${1:-} == --smoke ]]; then
  args=(--create-runs 2 --exec-runs 40 --docker-exec-runs 4 --concurrency 3 --concurrent-rounds 1
    --idle 3 --plain-idle 2 --create-threads 3)
fi
if [[ $(id -u) -ne 0 ]] || ! command -v dockerd >/dev/null; then
  echo "skipped: the capsule benchmarks need root and dockerd (docker.io)" >&2
  exit 77
fi

# shellcheck source=tests/fixtures/dockerd.sh
source "$root/tests/fixtures/dockerd.sh"
work=$(mktemp -d)
bench_pid=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local rc=$? left
  if [[ -n $bench_pid ]] && kill -0 "$bench_pid" 2>/dev/null; then
    kill -TERM "$bench_pid" 2>/dev/null || true
    wait "$bench_pid" 2>/dev/null || true
  fi
  if [[ -n ${PW_DOCKER_HOST:-} ]]; then
    left=$(for label in podwrangler.capsule pw-bench-concurrent=1 pw-bench-idle=1; do
      pw_docker ps -aq --filter "label=$label" </dev/null 2>/dev/null || true
    done)
    if [[ -n $left ]]; then
      echo "error: containers left behind by the benchmark: $(tr '\n' ' ' <<<"$left")" >&2
      rc=1
    fi
  fi
  pw_dockerd_stop || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pw_dockerd_start "$work/d"
pw_dockerd_image pw-bench-busybox:1
export PW_DOCKER_HOST PW_DOCKER_CLI PW_DOCKERD_DIR PW_CAPSULE_IMAGE=pw-bench-busybox:1
unset PODWRANGLER_AGENT_PATH
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo);" \
  "dockerd $(dockerd --version | sed 's/^Docker version //'), docker CLI $(pw_docker version -f '{{.Client.Version}}' </dev/null)"
echo "load before: $(uptime)"
echo "command: pw_bench_capsules ${args[*]}"
"$bin" "${args[@]}" &
bench_pid=$!
rc=0
wait "$bench_pid" || rc=$?
bench_pid=""
echo "load after: $(uptime)"
exit "$rc"

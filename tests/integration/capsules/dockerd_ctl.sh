#!/usr/bin/env bash
# Takes the suite's private dockerd (tests/fixtures/dockerd.sh) away and brings it back in
# place: same arguments, same data root, containerd left running, so containers and images
# are kept (the daemon stops running containers when it exits, as a real one does).
#   dockerd_ctl.sh stop|start        needs PW_DOCKERD_DIR and PW_DOCKER_HOST
# Ends only the dockerd whose pid is in the fixture's pidfile and whose command line names
# the fixture's socket.
set -euo pipefail
dir=${PW_DOCKERD_DIR:?PW_DOCKERD_DIR not set}
what=${1:?usage: $0 stop|start}
cli=${PW_DOCKER_CLI:-$(command -v docker)}

alive() { # alive PID: running (not a zombie)
  local state
  [[ -r /proc/$1/stat ]] || return 1
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

case $what in
stop)
  pid=$(<"$dir/dockerd.pid")
  alive "$pid" || { echo "dockerd_ctl: dockerd (pid $pid) is not running" >&2; exit 1; }
  tr '\0' '\n' <"/proc/$pid/cmdline" >"$dir/dockerd.cmdline"
  grep -qF -- "unix://$dir/docker.sock" "$dir/dockerd.cmdline" ||
    { echo "dockerd_ctl: pid $pid is not this fixture's dockerd" >&2; exit 1; }
  kill -TERM "$pid"
  for ((i = 0; i < 1200; i++)); do
    alive "$pid" || break
    sleep 0.05
  done
  if alive "$pid"; then
    echo "dockerd_ctl: dockerd (pid $pid) did not stop within 60 s" >&2
    exit 1
  fi
  echo "dockerd_ctl: dockerd (pid $pid) stopped" >&2
  ;;
start)
  [[ -s $dir/dockerd.cmdline ]] || { echo "dockerd_ctl: no saved command line (stop first)" >&2; exit 1; }
  mapfile -t args <"$dir/dockerd.cmdline"
  rm -f "$dir/docker.sock"
  setsid "${args[@]}" </dev/null >>"$dir/dockerd.log" 2>&1 &
  for ((i = 0; i < 600; i++)); do
    if [[ -S $dir/docker.sock ]] && env -u DOCKER_HOST -u DOCKER_CONTEXT DOCKER_CONFIG="$dir/cli-config" \
      "$cli" -H "unix://$dir/docker.sock" version >/dev/null 2>&1 </dev/null; then
      echo "dockerd_ctl: dockerd back (pid $(<"$dir/dockerd.pid"))" >&2
      exit 0
    fi
    sleep 0.05
  done
  echo "dockerd_ctl: dockerd did not come back within 30 s" >&2
  tail -n 20 "$dir/dockerd.log" >&2
  exit 1
  ;;
*)
  echo "usage: $0 stop|start" >&2
  exit 2
  ;;
esac

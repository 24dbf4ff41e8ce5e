#!/usr/bin/env bash
# End-to-end: `podwrangler capsule …` as a user runs it, with --local (the embedded server in
# the CLI's process) against a private dockerd (tests/fixtures/dockerd.sh, busybox imported
# from local files): create, list, show, exec (exit codes, --stream, --stdin), background
# processes, upload/download (also to standard output), files, the lifecycle, run --rm,
# destroy; exit codes for unknown capsules, bad input, wrong state and an unreachable engine,
# each with one line on stderr. No capsule container is left behind.
#   tests/e2e/test_cli_capsule.sh BUILD_DIR
# shellcheck source=tests/e2e/cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"
# shellcheck source=tests/fixtures/dockerd.sh
source "$SRC/tests/fixtures/dockerd.sh"

if [[ $(id -u) -ne 0 ]]; then
  echo "FAIL: needs root (a private dockerd)"
  exit 1
fi
stop_daemon() { pw_dockerd_stop || true; }
CLEANUP_HOOKS+=(stop_daemon)
pw_dockerd_start "$WORK/d" || { echo "FAIL: dockerd did not start"; exit 1; }
pw_dockerd_image pw-test-busybox:1 || { echo "FAIL: image import"; exit 1; }
IMG=pw-test-busybox:1
export PODWRANGLER_DOCKER_HOST=$PW_DOCKER_HOST
agent=$(find "$build" -name pw-agent -type f -perm -u+x 2>/dev/null | head -1)
[[ -n $agent ]] && export PODWRANGLER_AGENT_PATH=$agent
L=("$PW" --local)

# --- help ------------------------------------------------------------------------------------
for cmd in create get-or-create list show destroy pause resume stop start ping set-timeout events exec run ps \
  kill upload download ls mkdir rm stat; do
  run "$PW" capsule "$cmd" --help
  expect "capsule $cmd --help has examples" test "$RC-$(grep -c '^Examples:\|^Example:' <<<"$OUT")" = "0-1"
done

# --- create, list, show ------------------------------------------------------------------------
run "${L[@]}" -o json capsule create --image "$IMG" --owner e2e --session s1 --label suite=cli -e GREETING=hello \
  --memory 128 --timeout 600
id=$(jq -r .id <<<"$OUT" 2>/dev/null)
expect "create: exit 0 and an id" test "$RC" = 0 -a "${id:0:4}" = cap-
expect "create: env values are not shown" lacks "hello" "$OUT"
run "${L[@]}" capsule list --owner e2e
expect "list: the capsule (table)" has "$id" "$OUT"
run "${L[@]}" -o plain capsule list --label suite=cli
expect "list -o plain: id first" test "$(cut -f1 <<<"$OUT")" = "$id"
run "${L[@]}" -o ndjson capsule list --state running --owner e2e
expect "list -o ndjson: one line" test "$(grep -c . <<<"$OUT")" = 1
run "${L[@]}" capsule show "$id"
expect "show: state running" has "running" "$OUT"
expect "show: the limits as the engine reports them" has "memory 128 MiB" "$OUT"

# --- exec ----------------------------------------------------------------------------------------
run "${L[@]}" capsule exec "$id" -- sh -c 'echo out; echo err >&2; exit 7'
expect "exec: exits with the command's code" test "$RC" = 7
expect "exec: stdout" test "$OUT" = out
expect "exec: stderr" test "$ERR" = err
# shellcheck disable=SC2016  # expanded by the capsule's shell
run "${L[@]}" capsule exec "$id" -- sh -c 'echo "$GREETING"'
expect "exec: the capsule's env" test "$RC-$OUT" = "0-hello"
# shellcheck disable=SC2016  # expanded by the capsule's shell
run "${L[@]}" capsule exec --cwd /tmp -e X=1 "$id" -- sh -c 'echo "$X $(pwd)"'
expect "exec --cwd --env" test "$OUT" = "1 /tmp"
run "${L[@]}" -o json capsule exec "$id" -- sh -c 'exit 3'
expect "exec -o json: the result, exit 3" test "$RC-$(jq -r .exit_code <<<"$OUT")" = "3-3"
run "${L[@]}" capsule exec --stream "$id" -- sh -c 'echo a; sleep 0.3; echo b >&2; exit 5'
expect "exec --stream: stdout and stderr, the command's code" test "$RC|$OUT|$ERR" = "5|a|b"
run "${L[@]}" -o ndjson capsule exec --stream "$id" -- echo hi
expect "exec --stream -o ndjson: the events" test "$(jq -r .event <<<"$OUT" | tr '\n' ' ')" = "start stdout exit "
OUT=$(printf 'from stdin' | "${L[@]}" capsule exec --stdin "$id" -- cat 2>"$WORK/.err")
expect "exec --stdin" test "$OUT" = "from stdin"
run "${L[@]}" capsule exec --timeout 0.5 "$id" -- sleep 10
expect "exec --timeout: exit 75, one line" test "$RC-$(grep -c . <<<"$ERR")" = "75-1"

# --- background processes ------------------------------------------------------------------------
run "${L[@]}" capsule exec --background "$id" -- sleep 300
pid=$OUT
expect "exec --background prints a pid" test "$RC" = 0 -a -n "$pid"
run "${L[@]}" -o plain capsule ps "$id"
expect "ps lists it" has "$pid" "$(cut -f1 <<<"$OUT")"
run "${L[@]}" capsule kill "$id" "$pid"
expect "kill" test "$RC" = 0
gone=no
for _ in $(seq 1 50); do
  run "${L[@]}" -o plain capsule ps "$id"
  grep -qx "$pid" <(cut -f1 <<<"$OUT") || { gone=yes; break; }
  sleep 0.1
done
expect "killed process leaves ps" test "$gone" = yes

# --- files ---------------------------------------------------------------------------------------
head -c $((5 * 1024 * 1024)) /dev/urandom >"$WORK/up.bin"
chmod 750 "$WORK/up.bin"
sum=$(sha256sum <"$WORK/up.bin" | cut -d' ' -f1)
run "${L[@]}" capsule upload "$id" "$WORK/up.bin" /data/in/
expect "upload (to a directory: the file's name kept)" test "$RC" = 0
run "${L[@]}" capsule exec "$id" -- sha256sum /data/in/up.bin
expect "upload: the bytes arrived" test "${OUT%% *}" = "$sum"
got=$("${L[@]}" capsule download "$id" /data/in/up.bin - 2>/dev/null | sha256sum | cut -d' ' -f1)
expect "download to - (standard output)" test "$got" = "$sum"
mkdir "$WORK/down"
run "${L[@]}" capsule download "$id" /data/in/up.bin "$WORK/down"
expect "download into a directory" test "$RC-$(sha256sum <"$WORK/down/up.bin" | cut -d' ' -f1)" = "0-$sum"
expect "download keeps the mode (less the umask)" test "$(stat -c %a "$WORK/down/up.bin")" = 750
expect "download leaves no temporary file" test "$(find "$WORK/down" -type f | wc -l)" = 1
printf 'piped' | "${L[@]}" capsule upload "$id" - /data/piped.txt >/dev/null 2>&1
run "${L[@]}" capsule exec "$id" -- cat /data/piped.txt
expect "upload from - (standard input)" test "$OUT" = piped
run "${L[@]}" capsule mkdir "$id" /data/made/deep
expect "mkdir (with parents)" test "$RC" = 0
run "${L[@]}" -o plain capsule ls --depth 2 "$id" /data
expect "ls --depth 2" has "/data/made/deep" "$OUT"
run "${L[@]}" -o json capsule stat "$id" /data/in/up.bin
expect "stat" test "$(jq -r '.type + " " + (.size|tostring)' <<<"$OUT")" = "file 5242880"
run "${L[@]}" capsule rm -r "$id" /data/made
expect "rm -r" test "$RC" = 0
# Directories travel as tar archives, both ways.
mkdir -p "$WORK/tree/sub/deeper"
printf 'alpha' >"$WORK/tree/a.txt"
head -c 300000 /dev/urandom >"$WORK/tree/sub/deeper/b.bin"
chmod 750 "$WORK/tree/a.txt"
run "${L[@]}" capsule upload "$id" "$WORK/tree" /data/tree
expect "upload a directory" test "$RC" = 0
run "${L[@]}" capsule exec "$id" -- cat /data/tree/a.txt
expect "upload a directory: its files arrived" test "$OUT" = alpha
run "${L[@]}" capsule download "$id" /data/tree "$WORK/back"
expect "download a directory" test "$RC" = 0
expect "download a directory: the same tree" diff -r "$WORK/tree" "$WORK/back"
expect "download a directory: modes kept" test "$(stat -c %a "$WORK/back/a.txt")" = 750
listing=$("${L[@]}" capsule download "$id" /data/tree - 2>/dev/null | tar tf - 2>/dev/null | sort | tr '\n' ' ')
expect "download a directory to -: a tar archive" test "$listing" = "a.txt sub/ sub/deeper/ sub/deeper/b.bin "
# A capsule cannot make the download write outside the destination.
run "${L[@]}" capsule exec "$id" -- sh -c 'ln -s ../../../../../../tmp /data/tree/escape && ln -s /etc /data/tree/abs'
err_case "download: a symbolic link out of the destination is refused" 65 "archive" \
  "${L[@]}" capsule download "$id" /data/tree "$WORK/evil"
expect "download: nothing written through it" test ! -e "$WORK/evil/escape" -a ! -e "$WORK/evil/abs"
err_case "stat of a removed path: not found" 68 "not found" "${L[@]}" capsule stat "$id" /data/made
err_case "download of a missing file" 68 "not found" "${L[@]}" capsule download "$id" /nope "$WORK/nope"
expect "a failed download leaves nothing" test ! -e "$WORK/nope"
err_case "upload of a missing local file" 64 "cannot open" "${L[@]}" capsule upload "$id" "$WORK/missing" /x
err_case "relative remote path" 64 "absolute" "${L[@]}" capsule stat "$id" data

# --- lifecycle -------------------------------------------------------------------------------------
run "${L[@]}" capsule pause "$id"
expect "pause" has "Paused capsule $id" "$OUT"
run "${L[@]}" capsule exec "$id" -- echo resumed
expect "exec on a paused capsule resumes it" test "$RC-$OUT" = "0-resumed"
run "${L[@]}" capsule stop "$id"
expect "stop" test "$RC" = 0
err_case "exec on a stopped capsule: conflict" 73 "" "${L[@]}" capsule exec "$id" -- true
run "${L[@]}" capsule start "$id"
expect "start" test "$RC" = 0
run "${L[@]}" capsule exec "$id" -- cat /data/piped.txt
expect "files survive stop/start" test "$OUT" = piped
run "${L[@]}" capsule ping "$id"
expect "ping" test "$RC" = 0
run "${L[@]}" -o json capsule set-timeout "$id" 1200
expect "set-timeout" test "$(jq -r .spec.timeout_sec <<<"$OUT")" = 1200
run "${L[@]}" -o plain capsule events "$id"
expect "events: the transitions" has "stopped" "$OUT"

# --- errors ----------------------------------------------------------------------------------------
err_case "show an unknown capsule" 68 "not found" "${L[@]}" capsule show cap-0000000000000000
err_case "show a malformed id" 68 "not found" "${L[@]}" capsule show nope
err_case "create without an image" 64 "--image" "${L[@]}" capsule create
err_case "create with a bad --memory" 64 "memory" "${L[@]}" capsule create --image "$IMG" --memory 1
err_case "create with host networking (422)" 65 "network" "${L[@]}" capsule create --image "$IMG" --network host
err_case "create with a bad --env" 64 "KEY=VALUE" "${L[@]}" capsule create --image "$IMG" -e NOEQUALS
err_case "create from a missing image" 68 "not found" "${L[@]}" capsule create --image pw-no-such-image:9
err_case "exec without a command" 64 "" "${L[@]}" capsule exec "$id"
err_case "destroy ids and --all" 64 "not both" "${L[@]}" capsule destroy --all --owner e2e "$id"
err_case "engine unreachable" 69 "engine" env PODWRANGLER_DOCKER_HOST=unix:///nonexistent/docker.sock "${L[@]}" \
  capsule list
err_case "capsules off" 69 "PODWRANGLER_CAPSULES=off" env PODWRANGLER_CAPSULES=off "${L[@]}" capsule list

# --- run --rm, destroy -------------------------------------------------------------------------------
run "${L[@]}" capsule run --rm --image "$IMG" --owner e2e-run -- sh -c 'echo once; exit 4'
expect "run --rm: output and the command's code" test "$RC-$OUT" = "4-once"
run "${L[@]}" -o plain capsule list --owner e2e-run
expect "run --rm leaves no capsule" test -z "$OUT"
run "${L[@]}" capsule destroy "$id"
expect "destroy" has "Destroyed capsule $id" "$OUT"
run "${L[@]}" capsule destroy "$id"
expect "destroy again: idempotent" test "$RC" = 0
run "${L[@]}" -o json capsule get-or-create --image "$IMG" --owner e2e --session s2
expect "get-or-create" test "$RC" = 0
run "${L[@]}" capsule destroy --all --owner e2e
expect "destroy --all --owner" test "$RC" = 0
left=$(pw_docker ps -aq --filter label=podwrangler.capsule </dev/null)
expect "no capsule container left behind" test -z "$left"

finish

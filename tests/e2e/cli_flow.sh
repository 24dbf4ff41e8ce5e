# shellcheck shell=bash
# The CLI flow: every command against one API (source after cli_lib.sh):
#   cli_flow NAME GLOBAL_ARGS...     e.g. cli_flow local -L   /   cli_flow serve -u "$SERVE_URL"
# Pods: web-1, web-2 (label app=web) and db-1 (app=db), local PTY shells whose working
# directories tell the command which pod it runs on.
cli_flow() {
  local tag=$1; shift
  local -a P=("$PW" "$@")
  local pods=$WORK/pods-$tag
  mkdir -p "$pods/web" "$pods/db"

  run "${P[@]}" health
  expect "$tag: health exits 0" test "$RC" -eq 0
  expect "$tag: health says ok" has "ok" "$OUT"
  run "${P[@]}" --json health
  expect "$tag: health --json" test "$(jq -r .status <<<"$OUT")" = ok

  run "${P[@]}" pod add --alias web-1 --url "local://web-1?cwd=$pods/web" --label app=web
  expect "$tag: pod add web-1" test "$RC" -eq 0
  expect "$tag: pod add says Added" has "Added pod web-1" "$OUT"
  run "${P[@]}" pod add -a web-2 --url "local://web-2?cwd=$pods/web" -l app=web -l tier=front
  expect "$tag: pod add web-2" test "$RC" -eq 0
  run "${P[@]}" -o json pod add --alias db-1 --url "local://db-1?cwd=$pods/db" --provider local --label app=db
  expect "$tag: pod add --output json prints the pod" test "$(jq -r .provider <<<"$OUT")" = local

  run "${P[@]}" pod list
  expect "$tag: pod list table header" has "ALIAS" "$(head -1 <<<"$OUT")"
  expect "$tag: pod list shows 3 pods" test "$(grep -cE '^(web-1|web-2|db-1) ' <<<"$OUT")" -eq 3
  run "${P[@]}" pod list -o plain
  expect "$tag: pod list plain: tab-separated, no header" test "$(cut -f1 <<<"$OUT" | tr '\n' ' ')" = "db-1 web-1 web-2 "
  run "${P[@]}" pod list --json
  expect "$tag: pod list --json is an array of 3" test "$(jq length <<<"$OUT")" -eq 3
  run "${P[@]}" pod list -o ndjson
  expect "$tag: pod list ndjson: one pod per line" test "$(jq -r .alias <<<"$OUT" | wc -l)" -eq 3
  run "${P[@]}" pod list --label app=web
  expect "$tag: pod list --label filters" test "$(grep -c '^web-' <<<"$OUT")" -eq 2
  expect "$tag: pod list --label hides others" lacks_match '^db-1' "$OUT"
  run "${P[@]}" pod list -l app=web -l tier=front -o plain
  expect "$tag: two labels are ANDed" test "$OUT" = "$(printf 'web-2\tlocal\tlocal://web-2?cwd=%s/web\tapp=web,tier=front' "$pods")"

  run "${P[@]}" pod show web-1
  expect "$tag: pod show" has "local://web-1" "$OUT"
  run "${P[@]}" pod show web-1 --json
  expect "$tag: pod show --json" test "$(jq -r .labels.app <<<"$OUT")" = web
  run "${P[@]}" pod update web-1 --label tier=back
  expect "$tag: pod update --label" test "$RC" -eq 0
  run "${P[@]}" pod show web-1 -o json
  expect "$tag: labels merged" test "$(jq -c .labels <<<"$OUT")" = '{"app":"web","tier":"back"}'
  run "${P[@]}" pod update web-1 --unlabel tier
  run "${P[@]}" pod show web-1 -o json
  expect "$tag: --unlabel removes" test "$(jq -c .labels <<<"$OUT")" = '{"app":"web"}'

  # shellcheck disable=SC2016  # expanded by the pod's shell
  run "${P[@]}" exec run web-1 'echo hello from $(basename $PWD)'
  expect "$tag: exec run exits 0" test "$RC" -eq 0
  expect "$tag: exec run prints the output as is" test "$OUT" = "hello from web"
  run "${P[@]}" exec run web-1 ls -d /
  expect "$tag: exec run passes dashed words to the command" test "$OUT" = "/"
  run "${P[@]}" exec run web-1 -- echo a b
  expect "$tag: exec run with --" test "$OUT" = "a b"
  run "${P[@]}" exec run web-1 'echo out; exit 3'
  expect "$tag: exec run returns the remote exit code" test "$RC" -eq 3
  expect "$tag: output of a failing command" test "$OUT" = "out"
  run "${P[@]}" -o json exec run web-1 'exit 3'
  expect "$tag: exec run json result + exit code" test "$RC-$(jq -r '.status + ":" + (.exit_code|tostring)' <<<"$OUT")" = "3-failed:3"
  run "${P[@]}" exec run --timeout 1 web-1 'echo partial; sleep 5'
  expect "$tag: exec run timeout exits 75" test "$RC" -eq 75
  expect "$tag: timeout keeps partial output" test "$OUT" = "partial"
  expect "$tag: timeout message" has "error: command timed out after 1.00 s on web-1" "$ERR"

  run "${P[@]}" exec run-many 'echo same' --label app=web --gather
  expect "$tag: run-many --gather exits 0" test "$RC" -eq 0
  expect "$tag: --gather folds identical outputs" has "web-[1-2] (2)" "$OUT"
  expect "$tag: --gather prints the output once" test "$(grep -c '^same$' <<<"$OUT")" -eq 1
  expect "$tag: run-many summary line" has "2 ok / 0 failed / 0 timed out / 0 unreachable" "$OUT"
  # shellcheck disable=SC2016  # expanded by the pod's shell
  run "${P[@]}" exec run-many --aliases web-1,db-1 'basename $PWD'  # options before the command
  expect "$tag: run-many prefixes lines with the alias" test "$(grep -E '^(web-1|db-1): ' <<<"$OUT" | sort | tr '\n' ' ')" = "db-1: db web-1: web "
  # shellcheck disable=SC2016  # expanded by the pod's shell
  run "${P[@]}" exec run-many '[ "$(basename $PWD)" = db ] && exit 4; echo fine' --all
  expect "$tag: run-many with a failure exits 1" test "$RC" -eq 1
  expect "$tag: run-many failure: summary" has "2 ok / 1 failed" "$OUT"
  expect "$tag: run-many failure: error line" test "$ERR" = "error: 1 of 3 pods did not succeed (1 failed, 0 timed out, 0 unreachable)"
  # shellcheck disable=SC2016  # expanded by the pod's shell
  run "${P[@]}" -o json exec run-many 'basename $PWD' --aliases db-1,web-2,nope --gather
  expect "$tag: run-many json: results in request order" test "$(jq -r '[.results[].alias]|join(",")' <<<"$OUT")" = "db-1,web-2,nope"
  expect "$tag: run-many json: summary" test "$(jq -c '.summary|[.total,.succeeded,.error]' <<<"$OUT")" = "[3,2,1]"
  expect "$tag: run-many json: groups" test "$(jq '.groups|length' <<<"$OUT")" -eq 3
  expect "$tag: unknown alias only: exit 69" test "$RC" -eq 69
  run "${P[@]}" -o ndjson exec run-many 'echo x' --all
  expect "$tag: ndjson: every line is JSON" test "$(jq -c . <<<"$OUT" | wc -l)" -eq 5
  expect "$tag: ndjson: start, 3 results, summary" test "$(jq -r .event <<<"$OUT" | tr '\n' ' ')" = "start result result result summary "
  run "${P[@]}" exec run-many --timeout 1 'sleep 3' --aliases web-1
  expect "$tag: run-many timeout exits 75" test "$RC" -eq 75
  run "${P[@]}" exec run-many 'true' --label app=none
  expect "$tag: run-many no match exits 68" test "$RC" -eq 68
  local t0=$SECONDS
  # shellcheck disable=SC2016  # expanded by the pod's shell
  run "${P[@]}" exec run-many '[ "$(basename $PWD)" = db ] && exit 4; sleep 3' --all --fail-fast
  expect "$tag: --fail-fast exits 1" test "$RC" -eq 1
  expect "$tag: --fail-fast says where it stopped" has "stopped at the first failure (--fail-fast): db-1 failed (exit 4)" "$ERR"
  expect "$tag: --fail-fast does not wait for the slow pods" test $((SECONDS - t0)) -lt 3

  run "${P[@]}" exec history
  expect "$tag: history table" has "COMMAND" "$(head -1 <<<"$OUT")"
  run "${P[@]}" exec history --alias web-1 --limit 2 -o json
  expect "$tag: history --alias --limit json" test "$(jq '.items|length' <<<"$OUT")-$(jq -r '[.items[].alias]|unique|join(",")' <<<"$OUT")" = "2-web-1"
  run "${P[@]}" exec history --status failed -o ndjson
  expect "$tag: history --status ndjson" test "$(jq -r .status <<<"$OUT" | sort -u)" = failed
  run "${P[@]}" exec history --since 2000-01-01T00:00:00Z --limit 1 -o json
  expect "$tag: history --since" test "$(jq '.items|length' <<<"$OUT")" -eq 1
  local id
  id=$(jq -r '.items[0].id' <<<"$OUT")
  run "${P[@]}" exec show "$id"
  expect "$tag: exec show" has "status" "$OUT"
  run "${P[@]}" exec show "$id" --json
  expect "$tag: exec show --json" test "$(jq -r .id <<<"$OUT")" = "$id"

  run "${P[@]}" pod remove web-2
  expect "$tag: pod remove" test "$RC-$OUT" = "0-Removed pod web-2"
  err_case "$tag: pod remove unknown" 68 "pod 'web-2' not found" "${P[@]}" pod remove web-2
  run "${P[@]}" pod remove --force web-2
  expect "$tag: pod remove --force is idempotent" test "$RC" -eq 0
  run "${P[@]}" pod list -o plain
  expect "$tag: state after remove" test "$(cut -f1 <<<"$OUT" | tr '\n' ' ')" = "db-1 web-1 "
}

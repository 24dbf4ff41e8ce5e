#!/usr/bin/env bash
# openapi.json: valid OpenAPI 3.0 (the npm validator from embedded_server/web) and complete
# against the README's endpoint list.
#   tests/server/test_openapi.sh BUILD_DIR [SPEC]   (SPEC defaults to the source tree's)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
spec=${2:-$root/embedded_server/openapi/openapi.json}
readme=$root/embedded_server/README.md
validator=$root/embedded_server/web/node_modules/.bin/swagger-cli
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok: $1"; }
bad() { failed=$((failed + 1)); echo "FAIL: $1"; }

# Every endpoint of embedded_server/README.md (method and path as in openapi.json).
ENDPOINTS=(
  "get /health"
  "get /api/v1/pods/"
  "post /api/v1/pods/"
  "get /api/v1/pods/{alias}"
  "patch /api/v1/pods/{alias}"
  "delete /api/v1/pods/{alias}"
  "post /api/v1/pods/{alias}/exec"
  "post /api/v1/exec"
  "post /api/v1/exec/stream"
  "get /api/v1/commands"
  "get /api/v1/commands/{id}"
  "get /api/v1/capsules"
  "post /api/v1/capsules"
  "delete /api/v1/capsules"
  "post /api/v1/capsules/get-or-create"
  "post /api/v1/capsules/run"
  "get /api/v1/capsules/{id}"
  "delete /api/v1/capsules/{id}"
  "get /api/v1/capsules/{id}/events"
  "post /api/v1/capsules/{id}/pause"
  "post /api/v1/capsules/{id}/resume"
  "post /api/v1/capsules/{id}/stop"
  "post /api/v1/capsules/{id}/start"
  "post /api/v1/capsules/{id}/ping"
  "put /api/v1/capsules/{id}/timeout"
  "post /api/v1/capsules/{id}/timeout"
  "post /api/v1/capsules/{id}/exec"
  "post /api/v1/capsules/{id}/exec/stream"
  "get /api/v1/capsules/{id}/processes"
  "post /api/v1/capsules/{id}/processes"
  "delete /api/v1/capsules/{id}/processes/{pid}"
  "put /api/v1/capsules/{id}/files"
  "get /api/v1/capsules/{id}/files"
  "delete /api/v1/capsules/{id}/files"
  "get /api/v1/capsules/{id}/files/stat"
  "get /api/v1/capsules/{id}/files/list"
  "post /api/v1/capsules/{id}/files/mkdir"
  "get /openapi.json"
  "get /docs"
)
SCHEMAS=(Pod PodCreate PodUpdate CommandResult ExecRequest FanOutRequest FanOutResponse
         Summary CommandPage Health Error
         Capsule CapsuleSpec CapsuleLimits CapsuleState CapsuleCreate CapsuleGetOrCreate CapsuleRunRequest
         CapsuleTimeout CapsuleExecRequest CapsuleExecResult CapsuleStreamEvent CapsuleProcessRequest
         CapsuleEvent CapsuleDestroyed CapsuleMkdir FileStat ProcessInfo ProcessStarted Mount PortSpec)

if [[ ! -x $validator ]]; then
  echo "FAIL: $validator missing: run scripts/install-deps.sh"; exit 1
fi
out=$("$validator" validate "$spec" 2>&1); rc=$?
echo "$out"
if ((rc == 0)); then ok "swagger-cli validate"; else bad "swagger-cli validate"; fi
jq -e . "$spec" >/dev/null || { echo "FAIL: $spec is not JSON"; exit 1; }

q() { jq -e "$@" "$spec" >/dev/null; }
norm() { local p=${1%%\?*}; p=${p%/}; echo "${p:-/}"; }

# The list above covers the README: each `METHOD /path` it names is in the list.
declare -A listed=()
for e in "${ENDPOINTS[@]}"; do listed["${e%% *} $(norm "${e#* }")"]=1; done
# shellcheck disable=SC2016  # literal backquotes of the Markdown
while read -r method path; do
  key="${method,,} $(norm "$path")"
  if [[ -n ${listed[$key]:-} ]]; then ok "README $method $path is listed"
  else bad "README names $method $path: add it to ENDPOINTS and openapi.json"; fi
done < <(grep -oE '`(GET|POST|PUT|PATCH|DELETE) /[^` ]*' "$readme" | tr -d '`' | sort -u)

for e in "${ENDPOINTS[@]}"; do
  m=${e%% *} p=${e#* }
  # shellcheck disable=SC2016  # $p and $m are jq's
  if q --arg p "$p" --arg m "$m" '.paths[$p][$m] | type == "object"'; then ok "$e"
  else bad "$e missing from openapi.json"; fi
done
for s in "${SCHEMAS[@]}"; do
  # shellcheck disable=SC2016  # $s is jq's
  if q --arg s "$s" '.components.schemas[$s] | type == "object"'; then ok "schema $s"
  else bad "schema $s missing"; fi
done

# Every error code of the README ("`code` 4xx") is in Error.code's enum.
# shellcheck disable=SC2016  # literal backquotes of the Markdown; $c is jq's
while read -r code; do
  if q --arg c "$code" '.components.schemas.Error.properties.code.enum | index($c)'; then
    ok "error code $code"
  else bad "error code $code (README) missing from Error.code"; fi
done < <(grep -oE '`[a-z_]+` [0-9]{3}' "$readme" | sed -E 's/`([a-z_]+)`.*/\1/' | sort -u)

expect_jq() { # expect_jq NAME FILTER (must print true)
  if q "$2"; then ok "$1"; else bad "$1"; fi
}
expect_jq "openapi is 3.0.3" '.openapi == "3.0.3"'
version=$(sed -nE 's/^project\(podwrangler VERSION ([0-9.]+).*/\1/p' "$root/CMakeLists.txt")
expect_jq "info.version is the project's ($version)" ".info.version == \"$version\""
expect_jq "bearer security scheme" '.components.securitySchemes.bearerAuth | .type == "http" and .scheme == "bearer"'
expect_jq "global security is bearer" '.security == [{"bearerAuth": []}]'
expect_jq "/health needs no key" '.paths["/health"].get.security == []'

# Per operation: path parameters declared, 401 unless /health, body errors where a JSON body is
# sent (a raw upload, application/octet-stream, has no JSON to be malformed or closed).
# shellcheck disable=SC2016  # a jq program: the $names are jq's
ops='.components.parameters as $comps | .paths | to_entries[] | .key as $p | .value as $item
     | $item | to_entries[] | select(.key | IN("get","post","put","patch","delete"))
     | {path: $p, method: .key, op: .value,
        params: [($item.parameters // [])[], (.value.parameters // [])[]
                 | if ."$ref" then $comps[."$ref" | split("/") | last] else . end]}'
rows=$(jq -r "$ops"' | . as $o | [$o.params[] | select(.in == "path") | .name] as $declared
  | [$o.path | scan("\\{([^}]+)\\}") | .[0] | select(. as $n | $declared | index($n) | not)]
  | [$o.path, $o.method, join(",")] | @tsv' "$spec") || { echo "FAIL: jq"; exit 1; }
while IFS=$'\t' read -r path method missing; do
  if [[ -z $missing ]]; then ok "$method $path path parameters declared"
  else bad "$method $path: path parameter(s) not declared: $missing"; fi
done <<<"$rows"
while IFS=$'\t' read -r path method codes; do
  if [[ $path != /health ]]; then
    if [[ ,$codes, == *,401,* ]]; then ok "$method $path documents 401"; else bad "$method $path lacks 401"; fi
  fi
done < <(jq -r "$ops"' | [.path, .method, (.op.responses | keys | join(","))] | @tsv' "$spec")
while IFS=$'\t' read -r path method codes schema; do
  for c in 400 413 415 422; do
    if [[ ,$codes, == *,$c,* ]]; then ok "$method $path documents $c"; else bad "$method $path lacks $c"; fi
  done
  # shellcheck disable=SC2016  # $s is jq's
  if q --arg s "${schema##*/}" '.components.schemas[$s].additionalProperties == false'; then
    ok "$method $path body ${schema##*/} has additionalProperties false"
  else bad "$method $path body ${schema##*/} allows additional properties"; fi
done < <(jq -r "$ops"' | select(.op.requestBody.content["application/json"]) | [.path, .method, (.op.responses | keys | join(",")),
         .op.requestBody.content["application/json"].schema["$ref"]] | @tsv' "$spec")

echo "openapi: $passed passed, $failed failed"
((failed == 0))

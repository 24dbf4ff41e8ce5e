#!/usr/bin/env bash
# End-to-end: configuration precedence (flag > PODWRANGLER_API_URL > ~/.podwrangler.toml
# profile > file > default), profiles, API key sources, malformed TOML, permission warning.
#   tests/e2e/test_cli_config.sh BUILD_DIR
# shellcheck source=tests/e2e/cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"

export PODWRANGLER_API_KEY=config-e2e-key-0123456789
start_serve "$WORK/a.log" --database-url "sqlite:///$WORK/a.db" || exit 1
A=$SERVE_URL
start_serve "$WORK/b.log" --database-url "sqlite:///$WORK/b.db" || exit 1
B=$SERVE_URL
"$PW" -u "$A" pod add --alias on-a --url local://a >/dev/null
"$PW" -u "$B" pod add --alias on-b --url local://b >/dev/null
which_api() { "$PW" "$@" pod list -o plain 2>/dev/null | cut -f1; }
dead="http://127.0.0.1:$(free_port)"

cfg=$HOME/.podwrangler.toml
cat >"$cfg" <<TOML
api_url = "$A"
output = "plain"
[profiles.b]
api_url = "$B"
[profiles.dead]
api_url = "$dead"
TOML
chmod 600 "$cfg"
expect "toml api_url" test "$(which_api)" = on-a
expect "toml output" test "$("$PW" pod list | cut -f1)" = on-a
expect "--profile" test "$(which_api --profile b)" = on-b
expect "PODWRANGLER_PROFILE" test "$(PODWRANGLER_PROFILE=b which_api)" = on-b
expect "--profile beats PODWRANGLER_PROFILE" test "$(PODWRANGLER_PROFILE=dead which_api --profile b)" = on-b
expect "PODWRANGLER_API_URL beats the file" test "$(PODWRANGLER_API_URL=$B which_api)" = on-b
expect "PODWRANGLER_API_URL beats a profile" test "$(PODWRANGLER_API_URL=$A which_api --profile b)" = on-a
expect "--api-url beats PODWRANGLER_API_URL" test "$(PODWRANGLER_API_URL=$dead which_api -u "$B")" = on-b
expect "--output beats the file" test "$("$PW" pod list -o json | jq -r '.[0].alias')" = on-a
expect "PODWRANGLER_OUTPUT beats the file" test "$(PODWRANGLER_OUTPUT=ndjson "$PW" pod list | jq -r .alias)" = on-a
expect "PODWRANGLER_CONFIG names another file" test "$(PODWRANGLER_CONFIG=/nonexistent which_api -u "$B")" = on-b
err_case "no file, no env: the default URL" 69 "http://127.0.0.1:8000" env PODWRANGLER_CONFIG=/nonexistent "$PW" pod list
err_case "unknown profile" 78 "unknown profile 'nope'" "$PW" --profile nope pod list

# API key: env beats the file; a key in a file others can read gets a warning
cat >"$cfg" <<TOML
api_url = "$A"
api_key = "$PODWRANGLER_API_KEY"
TOML
chmod 600 "$cfg"
run env -u PODWRANGLER_API_KEY "$PW" pod list -o plain
expect "api_key from the file" test "$RC-$OUT-$ERR" = "0-$(printf 'on-a\tlocal\tlocal://a\t')-"
err_case "PODWRANGLER_API_KEY beats the file" 77 "" env PODWRANGLER_API_KEY=wrong-wrong-wrong-wrong "$PW" pod list
chmod 644 "$cfg"
run env -u PODWRANGLER_API_KEY "$PW" pod list -o plain
expect "readable key file: still works" test "$RC" -eq 0
expect "readable key file: one warning" test "$ERR" = "warning: $cfg holds an api_key and is readable by other users (chmod 600 $cfg)"
expect "the warning never shows the key" lacks "$PODWRANGLER_API_KEY" "$ERR"

# malformed files: one line with file:line:col and the problem, exit 78
printf 'api_url = "%s"\noutput = json\n' "$A" >"$cfg"
err_case "malformed TOML names file:line:col" 78 "$cfg:2:" "$PW" pod list
printf 'api_url = 8000\n' >"$cfg"
err_case "wrong type" 78 "$cfg:1:11: api_url must be a string" "$PW" pod list
printf 'output = "yaml"\n' >"$cfg"
err_case "bad output value" 78 "output must be one of json, ndjson, table, plain" "$PW" pod list
printf 'api_url = "%s"\ncolour = 1\n' "$A" >"$cfg"
run "$PW" pod list -o plain
expect "unknown key: a warning, the command runs" test "$RC-$ERR" = "0-warning: $cfg:2:10: unknown key 'colour' (ignored)"
printf 'api_url = "localhost:8000"\n' >"$cfg"
err_case "bad api_url in the file" 78 "invalid API URL 'localhost:8000'" "$PW" pod list
run "$PW" --version
expect "--version does not read the config" test "$RC" -eq 0
run "$PW" completion bash
expect "completion does not read the config" test "$RC" -eq 0

finish

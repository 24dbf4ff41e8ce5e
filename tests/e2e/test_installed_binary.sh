#!/usr/bin/env bash
# End-to-end: install the build into a temporary prefix and use it as a user would.
#   tests/e2e/test_installed_binary.sh BUILD_DIR
set -uo pipefail
build=${1:?usage: $0 BUILD_DIR}
prefix=$(mktemp -d /tmp/pw-e2e.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok: $1"; }
bad() { failed=$((failed + 1)); echo "FAIL: $1"; }
lacks() { [[ $2 != *"$1"* ]]; }  # lacks NEEDLE TEXT
expect() { # expect NAME CONDITION...
  local name=$1; shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}

cmake --install "$build" --prefix "$prefix" >/dev/null || { echo "FAIL: cmake --install"; exit 1; }
pw=$prefix/bin/podwrangler

expect "binary installed" test -x "$pw"
expect "man page installed" test -s "$prefix/share/man/man1/podwrangler.1"
out=$("$pw" --version); rc=$?
expect "--version exits 0" test "$rc" -eq 0
expect "--version names the program" grep -q '^podwrangler [0-9]' <<<"$out"
"$pw" --help >/dev/null; expect "--help exits 0" test $? -eq 0
err=$("$pw" --no-such-flag 2>&1 >/dev/null); rc=$?
expect "unknown flag exits 64 (usage)" test "$rc" -eq 64
expect "usage error is one line on stderr" test "$(wc -l <<<"$err")" -eq 1
expect "usage error starts with error:" grep -q '^error: ' <<<"$err"

# The library example on local pods: the README's first command ends with it.
out=$("$build/apps/pw-example" 2>&1); rc=$?
expect "example runs on local pods" test "$rc" -eq 0
expect "example ran a command" grep -q 'hello from' <<<"$out"
expect "example check=true raised" grep -q 'PodCommandError: exit 2' <<<"$out"
expect "example stop_on_error stopped" lacks "not reached" "$out"
expect "example fan-out reached pod-2" grep -q '^pod-2 ' <<<"$out"
out=$("$build/apps/pw-example" 'ftp://nowhere' 2>&1); rc=$?
expect "example: bad URL exits 65" test "$rc" -eq 65
expect "example: bad URL names the part" grep -q 'invalid URL (scheme)' <<<"$out"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]

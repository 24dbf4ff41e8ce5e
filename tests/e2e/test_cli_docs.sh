#!/usr/bin/env bash
# End-to-end: the man page and completion scripts are generated from the CLI at build time;
# the checked-in copies (man/podwrangler.1, completions/*) must equal them; every command and
# option of every --help is in the man page; the page renders without groff warnings.
#   tests/e2e/test_cli_docs.sh BUILD_DIR
# shellcheck source=tests/e2e/cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"

gen_man=$build/man/podwrangler.1
expect "man page generated at build time" test -s "$gen_man"
expect "generated man page = podwrangler __man" cmp -s "$gen_man" <("$PW" __man)
expect "checked-in man/podwrangler.1 is the generated one (regenerate: podwrangler __man > man/podwrangler.1)" \
  cmp -s "$gen_man" "$SRC/man/podwrangler.1"
for f in podwrangler.bash:bash _podwrangler:zsh podwrangler.fish:fish; do
  file=${f%%:*} shell=${f##*:}
  expect "completions/$file generated" cmp -s "$build/completions/$file" <("$PW" completion "$shell")
  expect "checked-in completions/$file is the generated one" cmp -s "$build/completions/$file" "$SRC/completions/$file"
done

run groff -man -z "$gen_man"
expect "groff: no warnings" test "$RC-$ERR" = "0-"
page=$(MANWIDTH=200 man -l "$gen_man" 2>/dev/null | col -b)

# every command path and option of every --help appears in the rendered page
check_help() { # check_help WORDS...
  local help sub opt
  help=$("$PW" "$@" --help)
  if [[ $# -gt 0 ]]; then
    expect "man: section 'podwrangler $*'" grep -q "^   podwrangler $*\$" <<<"$page"
  fi
  for opt in $(grep -oE '(^|[ ,])--[a-z][a-z-]*' <<<"$help" | tr -d ' ,' | sort -u); do
    expect "man: option $opt (${*:-global})" grep -qe "$opt" <<<"$page"
  done
  while read -r sub <&3; do
    check_help "$@" "$sub"
  done 3< <(awk '/^Subcommands:/ {f=1; next} f && /^  [a-z]/ {print $1} f && /^$/ {f=0}' <<<"$help")
}
check_help
expect "man: EXIT STATUS lists 78" grep -qE '^ +78 +invalid configuration' <<<"$page"
expect "man: ENVIRONMENT" grep -q 'PODWRANGLER_API_URL' <<<"$page"

finish

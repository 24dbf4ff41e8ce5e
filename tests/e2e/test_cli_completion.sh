#!/usr/bin/env bash
# End-to-end: the zsh or fish completion script as `cmake --install` installs it
# (<build>/completions, equal to the checked-in completions/ by e2e_cli_docs), loaded the
# way the shell loads it and driven by a real shell: commands, subcommands, options, option
# values and pod aliases from a running server. (The bash script: test_cli_serve.sh.)
#   zsh:  an interactive zsh with a clean ZDOTDIR whose .zshrc puts the directory on $fpath
#         and runs compinit; TAB is typed through zsh/zpty, and a compadd wrapper prints
#         the matches the completion system was given.
#   fish: fish --no-config with the directory on $fish_complete_path (autoloaded by
#         command name), `complete -C LINE`.
#   tests/e2e/test_cli_completion.sh BUILD_DIR zsh|fish
# shellcheck source=tests/e2e/cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"
shell=${2:-}
[[ $shell == zsh || $shell == fish ]] || { echo "usage: $0 BUILD_DIR zsh|fish"; exit 2; }
command -v "$shell" >/dev/null ||
  { echo "FAIL: $shell missing: run scripts/install-deps.sh"; exit 1; }
completions=$build/completions
[[ -s $completions/_podwrangler && -s $completions/podwrangler.fish ]] ||
  { echo "FAIL: $completions: the completion scripts are not generated"; exit 1; }

start_serve "$WORK/serve.log" --database-url "sqlite:///$WORK/pods.db" || exit 1
for alias in web-1 ws-1 ws-2 db-1; do
  run "$PW" -u "$SERVE_URL" pod add --alias "$alias" --url "local://$alias"
  expect "pod $alias added" test "$RC" -eq 0
done
# An empty working directory: where the script falls back to file names there are none.
mkdir -p "$WORK/cwd"
cd "$WORK/cwd" || exit 1
export PATH="$build/apps:$PATH" PODWRANGLER_API_URL=$SERVE_URL

# complete_zsh LINE...: for each command line, the matches offered for its last word (one
# per line), then a line "--".
complete_zsh() {
  local zdot=$WORK/zdot
  mkdir -p "$zdot"
  cat >"$zdot/.zshrc" <<'ZSH'
PS1='' RPS1='' PS2=''
fpath=("$PW_COMPLETIONS" $fpath)
autoload -Uz compinit && compinit -u -d "$ZDOTDIR/.zcompdump"
# Matches added to the completion list are printed, one per line, instead; internal calls
# that only collect (-O, -A, -D) pass through.
compadd() {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi
  local -a __matches
  builtin compadd -A __matches "$@"
  (( ${#__matches} )) && print -rl -- "${__matches[@]/#/MATCH:}"
  return 0
}
__pw_capture() {
  print -r -- $'\n<<BEGIN>>'
  _main_complete
  print -r -- '<<END>>'
}
zle -C pw-capture complete-word __pw_capture
bindkey '^I' pw-capture
print -r -- '<<READY>>'
ZSH
  cat >"$WORK/drive.zsh" <<'ZSH'
zmodload zsh/zpty || exit 2
zpty pw env ZDOTDIR="$1" PW_COMPLETIONS="$2" zsh -d -i || exit 2
shift 2
local line query in
while zpty -r pw line; do [[ $line == *'<<READY>>'* ]] && break; done
for query in "$@"; do
  zpty -w -n pw "$query"$'\t'
  in=0
  while zpty -r pw line; do
    line=${line//$'\r'/}; line=${line%$'\n'}
    if [[ $line == *'<<BEGIN>>'* ]]; then in=1; continue; fi
    [[ $line == *'<<END>>'* ]] && break
    (( in )) && [[ $line == MATCH:* ]] && print -r -- "${line#MATCH:}"
  done
  print -r -- --
  zpty -w -n pw $'\C-u'  # the next query on an empty line
done
zpty -d pw
ZSH
  timeout 60 zsh -f "$WORK/drive.zsh" "$zdot" "$completions" "$@"
}

# complete_fish LINE...: the same through fish's `complete -C`.
complete_fish() {
  # shellcheck disable=SC2016  # the script of fish
  timeout 60 fish --no-config -c '
    set -p fish_complete_path $argv[1]
    for line in $argv[2..-1]
      complete -C "$line"
      echo -- --
    end' "$completions" "$@"
}

# Each case: a name, the command line (completion at its end), the expected matches in
# zsh's order (the completer's: commands as declared, aliases as listed) and in fish's
# (sorted).
names=() lines=() want_zsh=() want_fish=()
case_() { names+=("$1"); lines+=("$2"); want_zsh+=("$3"); want_fish+=("$4"); }
case_ "commands: po<TAB>" "podwrangler po" "pod" "pod"
case_ "commands: <TAB>" "podwrangler " \
  "health pod exec capsule serve completion" "capsule completion exec health pod serve"
case_ "capsule subcommands: ex<TAB>" "podwrangler capsule ex" "exec" "exec"
case_ "pod subcommands" "podwrangler pod " \
  "list show add update remove" "add list remove show update"
case_ "an option of exec run" "podwrangler exec run --t" "--timeout" "--timeout"
case_ "a global option's values" "podwrangler -o " \
  "json ndjson table plain raw" "json ndjson plain raw table"
case_ "aliases from the API: exec run w<TAB>" "podwrangler exec run w" \
  "web-1 ws-1 ws-2" "web-1 ws-1 ws-2"
case_ "aliases from the API: pod show d<TAB>" "podwrangler pod show d" "db-1" "db-1"

"complete_$shell" "${lines[@]}" >"$WORK/got" 2>"$WORK/got.err"
expect "$shell exits 0" test $? -eq 0
mapfile -t got < <(awk 'BEGIN { ORS = "" } $0 == "--" { print "\n"; sep = ""; next }
                        { print sep $0; sep = " " }' "$WORK/got")
for i in "${!names[@]}"; do
  if [[ $shell == zsh ]]; then want=${want_zsh[i]}; else want=${want_fish[i]}; fi
  expect "$shell: ${names[i]} → $want" test "${got[i]-<none>}" = "$want"
done
[[ $failed -eq 0 ]] || { echo "--- $shell output"; cat "$WORK/got" "$WORK/got.err"; }

finish

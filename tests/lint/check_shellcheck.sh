#!/usr/bin/env bash
# Runs shellcheck on every shell script of the repository: the tracked files named *.sh or
# *.bash and those whose first line starts a shell (.ci/run, scripts/*), sourced files
# followed (-x). Any finding fails; a finding where the code is right carries its own
# `# shellcheck disable=SCxxxx  # reason` next to the line.
#   tests/lint/check_shellcheck.sh [SOURCE_DIR]
set -euo pipefail
cd "${1:-$(dirname "${BASH_SOURCE[0]}")/..}"
command -v shellcheck >/dev/null ||
  { echo "FAIL: shellcheck missing: run scripts/install-deps.sh"; exit 1; }

# The tracked files; without git (a source archive), every file but build output.
list_files() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z
  else
    find . -path ./build -prune -o -name node_modules -prune -o -name .git -prune \
      -o -type f -print0 | sed -z 's|^\./||' | sort -z
  fi
}

scripts=()
while IFS= read -r -d '' f; do
  [[ -f $f ]] || continue
  case ${f##*/} in
    *.sh | *.bash) scripts+=("$f") ;;
    *.*) ;;
    *) head -n 1 "$f" | grep -Eq '^#!.*[/ ](ba|da)?sh( |$)' && scripts+=("$f") ;;
  esac
done < <(list_files)

((${#scripts[@]})) || { echo "FAIL: no shell scripts found"; exit 1; }
version=$(shellcheck --version | sed -n 's/^version: //p')
printf 'shellcheck %s: %d scripts\n' "$version" "${#scripts[@]}"
printf '  %s\n' "${scripts[@]}"
# The shell comes from each file's shebang or `# shellcheck shell=` line (*.bash: bash).
shellcheck -x "${scripts[@]}"
echo "shellcheck: no findings"

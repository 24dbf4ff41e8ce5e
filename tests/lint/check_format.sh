#!/usr/bin/env bash
# Fails, naming each file, when a tracked C++ source differs from what clang-format makes of
# it (.clang-format). Fix with: clang-format -i <file>
# Usage: check_format.sh CLANG_FORMAT SOURCE_DIR
set -euo pipefail
clang_format=$1
src=$2
cd "$src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files '*.cpp' '*.hpp')
else
  mapfile -t files < <(find apps bench cli embedded_server libpodwrangler tests -name '*.[ch]pp' | sort)
fi
bad=0
for f in "${files[@]}"; do
  if ! "$clang_format" --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "not formatted: $f" >&2
    bad=$((bad + 1))
  fi
done
echo "${#files[@]} files checked, $bad not formatted"
exit $((bad > 0))

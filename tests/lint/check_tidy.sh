#!/usr/bin/env bash
# clang-tidy (.clang-tidy) over every translation unit of the product in the build's
# compile_commands.json: libpodwrangler, embedded_server, cli, apps (not tests, not generated
# sources). Any finding fails (WarningsAsErrors in .clang-tidy).
# Usage: check_tidy.sh RUN_CLANG_TIDY SOURCE_DIR BUILD_DIR
set -euo pipefail
run_clang_tidy=$1
src=$(cd "$2" && pwd -P)
build=$3
log=$(mktemp)
db=$(mktemp -d)
trap 'rm -rf "$log" "$db"' EXIT
# The build's commands without GCC's precompiled header (clang cannot read a .gch: the sources
# include what they use, the PCH only makes that faster), and with the two macros Boost 1.74's
# config sets for GCC's C++20 coroutines but not for clang 14 with libstdc++.
python3 - "$build/compile_commands.json" "$db/compile_commands.json" <<'PY'
import json, re, sys
entries = json.load(open(sys.argv[1]))
for e in entries:
    cmd = re.sub(r"\s-include\s+\S*cmake_pch\.hxx|\s-Winvalid-pch", "", e["command"])
    e["command"] = cmd.replace(" -c ", " -DBOOST_ASIO_HAS_CO_AWAIT=1 -DBOOST_ASIO_HAS_STD_COROUTINE=1 -c ", 1)
json.dump(entries, open(sys.argv[2], "w"))
PY
status=0
"$run_clang_tidy" -quiet -p "$db" -j "$(nproc)" \
  "^$src/(libpodwrangler|embedded_server|cli|apps)/.*\\.cpp\$" >"$log" 2>&1 || status=$?
# run-clang-tidy prints every command and clang-tidy's counts; keep the findings.
grep -E '(warning|error): ' "$log" | grep -v '^Suppressed' | sort -u || true
if [[ $status -ne 0 ]]; then
  echo "clang-tidy found problems (exit $status)" >&2
  exit 1
fi
echo "clang-tidy: no findings in $(grep -c '^clang-tidy' "$log" || true) translation units"

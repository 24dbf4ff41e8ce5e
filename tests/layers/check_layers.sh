#!/usr/bin/env bash
# Builds each layer probe (tests/layers/CMakeLists.txt): allowed_* must compile, upward_* must
# fail because the header it names is not on that layer's include path.
# Usage: check_layers.sh BUILD_DIR PROBE...
set -euo pipefail
build=$1
shift
failures=0
for probe in "$@"; do
  log=$(mktemp)
  if cmake --build "$build" --target "pw_layer_probe_$probe" >"$log" 2>&1; then
    built=yes
  else
    built=no
  fi
  case $probe in
    allowed_*)
      if [[ $built == no ]]; then
        echo "FAIL $probe: an include of a lower layer did not build:" >&2
        tail -n 20 "$log" >&2
        failures=$((failures + 1))
      else
        echo "ok   $probe builds"
      fi
      ;;
    upward_*)
      if [[ $built == yes ]]; then
        echo "FAIL $probe: an include of a higher layer built" >&2
        failures=$((failures + 1))
      elif ! grep -q 'No such file or directory' "$log"; then
        echo "FAIL $probe: failed for another reason than a missing header:" >&2
        tail -n 20 "$log" >&2
        failures=$((failures + 1))
      else
        echo "ok   $probe is rejected: $(grep -m1 -o '[a-z_/]*\.hpp: No such file or directory' "$log")"
      fi
      ;;
  esac
  rm -f "$log"
done
exit $((failures > 0))

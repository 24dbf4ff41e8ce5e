#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of podwrangler from
# Debian bookworm packages. Idempotent: a second run installs nothing and
# does not touch the network when everything is already present.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config ccache git
  # libraries (design card + DESIGN.md §8)
  libboost1.74-dev libboost-system1.74-dev libssl-dev libcli11-dev libcpp-httplib-dev
  libtomlplusplus-dev nlohmann-json3-dev doctest-dev libsqlite3-dev libpq-dev
  libyaml-cpp-dev libarchive-dev uuid-dev
  # real components the tests start
  websocketd openssl util-linux procps iproute2 docker.io postgresql-15
  python3 python3-kubernetes jq tmux bsdextrautils busybox-static
  # benchmarks
  hyperfine wrk valgrind
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install-deps: all ${#PACKAGES[@]} packages present" >&2
fi

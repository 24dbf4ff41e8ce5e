#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of podwrangler from
# Debian bookworm packages. Idempotent: a second run installs nothing and
# does not touch the network when everything is already present.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config ccache git
  # libraries
  libboost1.74-dev libboost-system1.74-dev libssl-dev libcli11-dev libcpp-httplib-dev
  libtomlplusplus-dev nlohmann-json3-dev doctest-dev libsqlite3-dev libpq-dev
  libyaml-cpp-dev libarchive-dev uuid-dev
  # real components the tests start
  websocketd openssl util-linux procps iproute2 docker.io postgresql-15
  python3 python3-kubernetes python3-jsonschema jq tmux bsdextrautils busybox-static
  # the musl capsule image (no glibc): musl's loader and musl-gcc for its test program
  musl musl-tools
  # the Swagger UI page test (headless)
  chromium
  # benchmarks
  hyperfine wrk valgrind
  # the completion scripts in real shells (e2e_completion_zsh, e2e_completion_fish)
  zsh fish
  # lint tests: every shell script, the format and clang-tidy checks (tests/lint)
  shellcheck clang-format-14 clang-tidy-14
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

# npm packages of embedded_server/web (swagger-ui-dist, the OpenAPI validator), exactly as
# pinned by package-lock.json; skipped while node_modules is newer than the lock file.
WEB_DIR="$(cd "$(dirname "$0")/.." && pwd)/embedded_server/web"
if [[ ! -f "$WEB_DIR/node_modules/.package-lock.json" ||
      "$WEB_DIR/package-lock.json" -nt "$WEB_DIR/node_modules/.package-lock.json" ]]; then
  if ! command -v npm >/dev/null; then
    echo "install-deps: npm not found (needed for embedded_server/web)" >&2
    exit 1
  fi
  echo "install-deps: npm ci in embedded_server/web" >&2
  npm ci --prefix "$WEB_DIR" --ignore-scripts --no-audit --no-fund --loglevel=error >&2
else
  echo "install-deps: embedded_server/web/node_modules up to date" >&2
fi

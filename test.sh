#!/usr/bin/env bash
# Runs the test suite on a fresh Debian machine: installs what the tests need (real peers
# such as sipp, openssl, ffmpeg, kamailio, rtpengine; needs root or sudo for apt-get),
# then runs `cargo test --workspace` with any arguments given (e.g. `./test.sh --release`).
#   ./test.sh --deps-only   installs and stops
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages the tests drive. One list: CI installs from here too.
PKGS=(build-essential sip-tester sipsak sipvicious ffmpeg openssl libsrtp2-dev rtpengine-daemon kamailio
      shellcheck prometheus python3-pylibsrtp systemd tshark iproute2 valgrind procps curl
      clang libbpf-dev bpftool ethtool chromium dnsmasq-base redis-server keepalived)

install_deps() {
  local missing=() sudo=()
  for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    echo "installing: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends "${missing[@]}"
  fi
  # cargo-deb builds the .deb in the packaging test.
  if ! cargo deb --version >/dev/null 2>&1; then
    cargo install cargo-deb --locked
  fi
}

install_deps
if [ "${1:-}" = "--deps-only" ]; then
  exit 0
fi
exec cargo test --workspace "$@"

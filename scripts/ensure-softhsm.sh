#!/usr/bin/env bash
# Make sure SoftHSM2 (the test HSM for sealmark/crypto/pkcs11.py) is installed.
# Idempotent: does nothing when softhsm2-util and libsofthsm2.so are present. Otherwise installs
# Debian's softhsm2 with apt-get (running `apt-get update` only if the first install fails).
# Exits non-zero with a message saying what to do when it cannot.
set -euo pipefail

find_module() {
  local path
  for path in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*-linux-gnu/softhsm/libsofthsm2.so \
    /usr/lib64/softhsm/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so; do
    if [ -f "$path" ]; then
      echo "$path"
      return 0
    fi
  done
  return 1
}

report() {
  echo "ensure-softhsm: softhsm2 $(softhsm2-util --version) at $(command -v softhsm2-util)," \
    "module $(find_module)"
}

if command -v softhsm2-util >/dev/null 2>&1 && find_module >/dev/null; then
  report
  exit 0
fi

fail() {
  echo "ensure-softhsm: $*" >&2
  echo "ensure-softhsm: install it by hand: sudo apt-get install -y softhsm2" >&2
  exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "softhsm2 is missing and apt-get is not available"

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || fail "softhsm2 is missing and installing it needs root"
  SUDO=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
echo "ensure-softhsm: softhsm2 missing; running: ${SUDO[*]} apt-get install -y softhsm2"
if ! "${SUDO[@]}" apt-get install -y softhsm2; then
  echo "ensure-softhsm: install failed; running: ${SUDO[*]} apt-get update, then retrying"
  "${SUDO[@]}" apt-get update || fail "apt-get update failed"
  "${SUDO[@]}" apt-get install -y softhsm2 || fail "apt-get install softhsm2 failed"
fi

command -v softhsm2-util >/dev/null 2>&1 || fail "softhsm2 installed but softhsm2-util not on PATH"
find_module >/dev/null || fail "softhsm2 installed but libsofthsm2.so not found"
report

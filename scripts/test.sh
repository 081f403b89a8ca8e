#!/usr/bin/env bash
# Build sluice and run every test suite (unit, fuzz corpus replay, integration),
# first in a normal build with warnings as errors, then under AddressSanitizer
# and UndefinedBehaviorSanitizer.
#
#   scripts/test.sh              # everything
#   SUITES="unit" scripts/test.sh
#   BUILDS="normal" scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
suites=${SUITES:-"unit fuzz integration"}
builds=${BUILDS:-"normal asan"}

suite_args=()
for s in $suites; do suite_args+=(--suite "$s"); done

for b in $builds; do
  case "$b" in
    normal) dir=build-test; opts=(-Dwerror_own=true) ;;
    asan)   dir=build-asan; opts=(-Dwerror_own=true -Db_sanitize=address,undefined -Db_lundef=false) ;;
    *) echo "unknown build $b" >&2; exit 2 ;;
  esac
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "${opts[@]}" >/dev/null
  else
    meson configure "$dir" "${opts[@]}" >/dev/null
  fi
  ninja -C "$dir"
  echo "== $b build: ${suites}"
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    meson test -C "$dir" "${suite_args[@]}" --print-errorlogs --num-processes 2
done

#!/usr/bin/env bash
# Build sluice and run every test suite (unit, fuzz corpus replay, integration),
# first in a normal build with warnings as errors, then under AddressSanitizer
# and UndefinedBehaviorSanitizer, then the integration suite under
# ThreadSanitizer (the threads meet only there; the core is single-threaded).
#
#   scripts/test.sh              # everything
#   SUITES="unit" scripts/test.sh
#   BUILDS="normal" scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
suites=${SUITES:-"unit fuzz integration"}
builds=${BUILDS:-"normal asan tsan"}

suite_args=()
for s in $suites; do suite_args+=(--suite "$s"); done

for b in $builds; do
  case "$b" in
    normal) dir=build-test; opts=(-Dwerror_own=true) ;;
    asan)   dir=build-asan; opts=(-Dwerror_own=true -Db_sanitize=address,undefined -Db_lundef=false) ;;
    tsan)   dir=build-tsan; opts=(-Dwerror_own=true -Db_sanitize=thread -Db_lundef=false) ;;
    *) echo "unknown build $b" >&2; exit 2 ;;
  esac
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "${opts[@]}" >/dev/null
  else
    meson configure "$dir" "${opts[@]}" >/dev/null
  fi
  ninja -C "$dir"
  args=("${suite_args[@]}")
  sanitized=1
  [ "$b" = normal ] && sanitized=0
  if [ "$b" = tsan ]; then
    # sluice's threads meet in the integration suite; the bench programs' own
    # tests (suite tools) are timing-bound and single-threaded: not run here.
    args=(--suite integration --no-suite tools)
  fi
  echo "== $b build: ${args[*]}"
  SLUICE_SANITIZED=$sanitized \
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1} \
    meson test -C "$dir" "${args[@]}" --print-errorlogs --num-processes 2
done

#!/usr/bin/env bash
# Build sluice and run it on config/sluice.yaml in front of two demo backends,
# "blue" (127.0.0.1:9001) and "green" (127.0.0.1:9002). Ctrl-C stops everything.
#
#   scripts/demo.sh            # then: ws://127.0.0.1:8080/ says "hello blue"
#
# Environment: BUILD_DIR (default build), SLUICE_CONFIG (default config/sluice.yaml),
# DEMO_SECONDS (stop by itself after this many seconds; default: run until Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
build=${BUILD_DIR:-build}
[ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
ninja -C "$build" sluice bench/sluice-backend

config=${SLUICE_CONFIG:-config/sluice.yaml}
"$build/sluice" --check -c "$config"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$build/bench/sluice-backend" --listen 127.0.0.1:9001 --name blue & pids+=($!)
"$build/bench/sluice-backend" --listen 127.0.0.1:9002 --name green & pids+=($!)
"$build/sluice" -c "$config" & pids+=($!)
sluice_pid=$!

cat <<'MSG'

sluice is running on ws://127.0.0.1:8080/ in front of blue (:9001) and green (:9002).
Try:
  curl -s http://127.0.0.1:8080/hello
  /usr/bin/python3 -m websockets ws://127.0.0.1:8080/
Ctrl-C stops sluice (it drains its connections with close 1001) and the backends.

MSG

if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS"
  kill -TERM "$sluice_pid"
  wait "$sluice_pid"
else
  wait "$sluice_pid"
fi

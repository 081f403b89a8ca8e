#!/usr/bin/env bash
# Build sluice and run it on config/sluice.yaml in front of two demo backends,
# "blue" (127.0.0.1:9001) and "green" (127.0.0.1:9002). Ctrl-C stops everything.
#
#   scripts/demo.sh            # then: ws://127.0.0.1:8080/ says "hello blue"
#   SLUICE_CONFIG=config/sluice-tls.yaml scripts/demo.sh   # and wss://localhost:8443/
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

# A TLS example needs a certificate: make a self-signed ECDSA P-256 one for
# localhost into certs/ (git-ignored; no private key is ever committed), and
# make it again when it is missing or expires within a day (it lasts 30).
if grep -qE '^[^#]*certs/ecdsa.pem' "$config" &&
   ! openssl x509 -checkend 86400 -noout -in certs/ecdsa.pem >/dev/null 2>&1; then
  mkdir -p certs
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout certs/ecdsa.key -out certs/ecdsa.pem -days 30 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
  chmod 600 certs/ecdsa.key
  echo "made a self-signed certificate: certs/ecdsa.pem (trust it to connect with wss://)"
fi
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
if grep -qE '^[^#]*certs/ecdsa.pem' "$config"; then   # a commented example does not count
  echo "TLS on wss://localhost:8443/ :  curl --cacert certs/ecdsa.pem https://localhost:8443/hello"
fi

if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS"
  kill -TERM "$sluice_pid"
  wait "$sluice_pid"
else
  wait "$sluice_pid"
fi

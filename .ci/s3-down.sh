#!/usr/bin/env bash
# Stops the SeaweedFS server that .ci/s3-up.sh started, by the pid in its pid
# file (never by name, so nothing else on the machine is touched), and removes
# its data. Safe to run when nothing is up.
set -euo pipefail

state="${LRMC_S3_STATE:-${TMPDIR:-/tmp}/lrmc-s3}"
pidfile="$state/weed.pid"

if [ -s "$pidfile" ]; then
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" || true
    # weed mini drains its gateways, then the filer, volume and master.
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "s3-down: SeaweedFS ($pid) did not stop in 15s; killing it" >&2
      kill -9 "$pid" || true
    fi
    echo "s3-down: stopped SeaweedFS ($pid)"
  fi
  rm -f "$pidfile"
fi
rm -rf "$state/data" "$state/env" "$state/s3.json"

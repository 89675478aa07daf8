#!/usr/bin/env bash
# Alternates two or more storepulse binaries under the same wrk load, a fresh server and data
# directory per run, so that a change is judged against the machine's drift in the same minutes.
#
#   bench/ab-binaries.sh bench/wrk/batch_1000.lua 4 5s 3 /tmp/storepulse-before /tmp/storepulse-after
#   (script, connections, duration per run, rounds, binaries...)
set -euo pipefail
cd "$(dirname "$0")/.."
script=$1 connections=$2 duration=$3 rounds=$4
shift 4
addr=127.0.0.1:18095
for round in $(seq 1 "$rounds"); do
  for binary in "$@"; do
    data=$(mktemp -d /tmp/storepulse-ab.XXXXXX)
    STOREPULSE_RATE_LIMIT__ENABLED=false RUST_LOG=warn "$binary" serve --data-dir "$data" \
      --listen "$addr" --fsync always >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null && break; sleep 0.1; done
    rps=$(wrk -t1 -c"$connections" -d"$duration" -s "$script" "http://$addr/api/v1/events" \
      | awk '/Requests\/sec/ {print $2}')
    echo "round $round $binary $rps req/s"
    kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$data"
  done
done

#!/usr/bin/env bash
# A bulk import beside live traffic: batches of 1,000 (4 connections) in the background while
# 32 paced connections send single events (10 ms pause each), per binary, alternating, a
# fresh server and data directory per run. Prints the single events' rate, p50 and p99 and
# the batches' requests/s.
#
#   bench/mixed-load.sh ROUNDS BINARY...
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/fresh-server.sh
rounds=$1
shift
addr=127.0.0.1:18095
for round in $(seq 1 "$rounds"); do
  for binary in "$@"; do
    start_fresh_server "$binary" "$addr"
    batches=$(mktemp)
    wrk -t1 -c4 -d8s -s bench/wrk/batch_1000.lua "http://$addr/api/v1/events" >"$batches" &
    background=$!
    sleep 1
    single=$(DELAY_MS=10 wrk -t1 -c32 -d6s --latency -s bench/wrk/paced_single_event.lua \
      "http://$addr/api/v1/events" \
      | awk '/Requests\/sec/ {r=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} END {print r " req/s, p50 " p50 ", p99 " p99}')
    wait "$background"
    echo "round $round $binary single events: $single; batches: $(awk '/Requests\/sec/ {print $2}' "$batches") req/s"
    rm -f "$batches"
    stop_fresh_server
  done
done

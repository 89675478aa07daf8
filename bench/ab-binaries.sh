#!/usr/bin/env bash
# Alternates two or more storepulse binaries under the same wrk load, a fresh server and data
# directory per run, so that a change is judged against the machine's drift in the same minutes.
#
#   bench/ab-binaries.sh bench/wrk/batch_1000.lua 4 5s 3 /tmp/storepulse-before /tmp/storepulse-after
#   (script, connections, duration per run, rounds, binaries...)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/fresh-server.sh
script=$1 connections=$2 duration=$3 rounds=$4
shift 4
addr=127.0.0.1:18095
for round in $(seq 1 "$rounds"); do
  for binary in "$@"; do
    start_fresh_server "$binary" "$addr"
    rps=$(wrk -t1 -c"$connections" -d"$duration" -s "$script" "http://$addr/api/v1/events" \
      | awk '/Requests\/sec/ {print $2}')
    echo "round $round $binary $rps req/s"
    stop_fresh_server
  done
done

#!/usr/bin/env bash
# Alternates two or more storepulse binaries under the same wrk load, a fresh server and data
# directory per run, so that a change is judged against the machine's drift in the same minutes.
# Every other round runs the binaries in reverse order (ABBA): on this machine the first run
# of a round was often the fastest, which a fixed order credits to one binary. Prints each run,
# then each binary's total over all rounds.
#
#   bench/ab-binaries.sh bench/wrk/batch_1000.lua 16 10s 4 /tmp/storepulse-before /tmp/storepulse-after
#   (script, connections, duration per run, rounds, binaries...)
#
# Build an older commit with a target directory of its own:
#   git worktree add /tmp/before REV && cd /tmp/before &&
#   CARGO_TARGET_DIR=/tmp/before-target cargo build --release -p storepulse-server --bin storepulse
# Built into the shared one, its artifacts take the names this checkout's build uses (cargo
# hashes path dependencies relative to the workspace), and this checkout's sources edited
# before then look older than them: cargo keeps the old code.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/fresh-server.sh
script=$1 connections=$2 duration=$3 rounds=$4
shift 4
binaries=("$@")
addr=127.0.0.1:18095
declare -A total cpu_total
for round in $(seq 1 "$rounds"); do
  order=("${binaries[@]}")
  if (( round % 2 == 0 )); then
    order=()
    for (( i=${#binaries[@]}-1; i>=0; i-- )); do order+=("${binaries[i]}"); done
  fi
  for binary in "${order[@]}"; do
    start_fresh_server "$binary" "$addr"
    cpu_before=$(awk '{print $14 + $15}' "/proc/$server_pid/stat")
    rps=$(wrk -t1 -c"$connections" -d"$duration" -s "$script" "http://$addr/api/v1/events" \
      | awk '/Requests\/sec/ {print $2}')
    cpu_after=$(awk '{print $14 + $15}' "/proc/$server_pid/stat")
    # The server's CPU time (user + system, clock ticks) per request answered: steadier than
    # the request rate when other machines' load slows this one.
    cpu=$(awk -v ticks="$(getconf CLK_TCK)" -v used=$((cpu_after - cpu_before)) -v rps="$rps" \
      -v seconds="${duration%s}" 'BEGIN { printf "%.0f", used / ticks * 1e6 / (rps * seconds) }')
    echo "round $round $binary $rps req/s, $cpu us of server CPU per request"
    cpu_total[$binary]=$(( ${cpu_total[$binary]:-0} + cpu ))
    total[$binary]=$(awk -v a="${total[$binary]:-0}" -v b="$rps" 'BEGIN { print a + b }')
    stop_fresh_server
  done
done
for binary in "${binaries[@]}"; do
  echo "total $binary ${total[$binary]} req/s over $rounds runs," \
    "$(( cpu_total[$binary] / rounds )) us of server CPU per request on average"
done

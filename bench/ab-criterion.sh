#!/usr/bin/env bash
# Alternates two or more criterion bench binaries (copies of target/release/deps/apply-*, say,
# built before and after a change), so that a change is judged against the machine's drift in
# the same minutes. Prints each run's mean throughput.
#
#   cargo bench -p storepulse-engine --bench apply --no-run   # prints the binary's path; copy it
#   bench/ab-criterion.sh 3 /tmp/apply-before /tmp/apply-after
set -euo pipefail
rounds=$1
shift
for round in $(seq 1 "$rounds"); do
  for binary in "$@"; do
    mean=$("$binary" --bench --warm-up-time 1 --measurement-time 3 2>&1 | awk '/thrpt:/ {print $4, $5; exit}')
    echo "round $round $binary $mean"
  done
done

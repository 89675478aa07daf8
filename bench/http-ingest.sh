#!/usr/bin/env bash
# HTTP ingest benchmark: Storepulse beside a bare axum echo server, in the same run, on this
# machine. Needs wrk (`apt-get install -y wrk`). Prints the figures docs/performance.md records.
#
#   bench/http-ingest.sh            # 10 s per measurement
#   DURATION=30s bench/http-ingest.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/storepulse-target}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
# Batches: 16 connections (several order systems or SDK flushers at once). With 4, every
# connection waits on the same group commit at times and ~30 % of the CPU stayed idle
# (vmstat, 2026-12-02), so the figure measured the pipeline's latency, not its capacity.
BATCH_CONNECTIONS="${BATCH_CONNECTIONS:-16}"
FSYNC="${FSYNC:-always}"
ECHO_ADDR=127.0.0.1:18090
SP_ADDR=127.0.0.1:18091

command -v wrk >/dev/null || { echo "wrk is required: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -q -p storepulse-server --bin storepulse --example echo_server
BIN="$CARGO_TARGET_DIR/release/storepulse"
ECHO="$CARGO_TARGET_DIR/release/examples/echo_server"
DATA=$(mktemp -d /tmp/storepulse-bench.XXXXXX)
pids=()
# Waits for the servers to exit before removing the data: Storepulse writes its shutdown
# snapshot on the way out, which would otherwise land in a directory already removed.
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$DATA"
}
trap cleanup EXIT

wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1" >&2; exit 1; }
rps() { awk '/Requests\/sec/ {print $2}'; }

"$ECHO" "$ECHO_ADDR" >/dev/null & pids+=($!)
STOREPULSE_RATE_LIMIT__ENABLED=false RUST_LOG=warn "$BIN" serve --data-dir "$DATA" --listen "$SP_ADDR" --fsync "$FSYNC" & pids+=($!)
wait_port "$ECHO_ADDR"; wait_port "$SP_ADDR"

run() { # name url script connections
  echo "== $1: wrk -t1 -c$4 -d$DURATION --latency -s $3 $2" >&2
  wrk -t1 -c"$4" -d"$DURATION" --latency -s "$3" "$2" | tee >(cat >&2)
}

echo_single=$(run "echo, one event per request" "http://$ECHO_ADDR/api/v1/events" bench/wrk/single_event.lua "$CONNECTIONS" | rps)
sp_single_out=$(run "storepulse, one event per request, fsync=$FSYNC" "http://$SP_ADDR/api/v1/events" bench/wrk/single_event.lua "$CONNECTIONS")
sp_single=$(echo "$sp_single_out" | rps)
echo_batch=$(run "echo, 1000 events per request" "http://$ECHO_ADDR/api/v1/events" bench/wrk/batch_1000.lua "$BATCH_CONNECTIONS" | rps)
sp_batch=$(run "storepulse, 1000 events per request, fsync=$FSYNC" "http://$SP_ADDR/api/v1/events" bench/wrk/batch_1000.lua "$BATCH_CONNECTIONS" | rps)

# Latency at half of the measured maximum rate: 32 paced connections, each pausing between
# its requests. The pause is calibrated by three 2-second trial runs: each shows how long the
# answers themselves take at that rate, the pause becomes what remains of each connection's
# share of the period, averaged with the previous pause (one noisy trial must not swing it).
half=$(awk -v r="$sp_single" 'BEGIN { printf "%d", r / 2 }')
delay=$(awk -v h="$half" 'BEGIN { d = 32 * 1000 / h - 0.3; if (d < 0) d = 0; printf "%.2f", d }')
for _ in 1 2 3; do
  trial=$(DELAY_MS="$delay" wrk -t1 -c32 -d2s -s bench/wrk/paced_single_event.lua "http://$SP_ADDR/api/v1/events" | rps)
  delay=$(awk -v h="$half" -v a="$trial" -v d="$delay" 'BEGIN {
    answer = 32 * 1000 / a - d; n = 32 * 1000 / h - answer; if (n < 0) n = 0;
    printf "%.2f", (n + d) / 2 }')
  echo "pacing trial: ${trial} req/s for a target of ${half}; next pause ${delay} ms" >&2
done
paced=$(DELAY_MS="$delay" run "storepulse paced at ~$half req/s (32 connections, ${delay} ms pause)" "http://$SP_ADDR/api/v1/events" bench/wrk/paced_single_event.lua 32)
paced_rps=$(echo "$paced" | rps)
paced_p99=$(echo "$paced" | awk '$1 == "99%" {print $2}')
paced_p50=$(echo "$paced" | awk '$1 == "50%" {print $2}')

accepted=$(curl -s "http://$SP_ADDR/prometheus" | awk '/^storepulse_events_accepted_total/ {s += $2} END {print s}')
echo
echo "| measurement | echo req/s | storepulse req/s | ratio | events/s |"
echo "|---|---|---|---|---|"
awk -v c="$CONNECTIONS" -v e="$echo_single" -v s="$sp_single" 'BEGIN { printf "| one event per request (c=%s) | %.0f | %.0f | %.0f%% | %.0f |\n", c, e, s, 100*s/e, s }'
awk -v c="$BATCH_CONNECTIONS" -v e="$echo_batch" -v s="$sp_batch" 'BEGIN { printf "| 1,000 events per request (c=%s) | %.0f | %.0f | %.0f%% | %.0f |\n", c, e, s, 100*s/e, s*1000 }'
echo
echo "paced: ${paced_rps} req/s achieved (target ~${half}); p50 ${paced_p50}, p99 ${paced_p99}"
echo "events acknowledged by storepulse during the run: ${accepted}"

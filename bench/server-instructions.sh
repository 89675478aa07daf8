#!/usr/bin/env bash
# Instructions the whole server (every thread, user space) executes per event of the HTTP batch
# benchmark: a release server under callgrind takes 100 POSTs of the 1,000 page views of
# bench/wrk/batch_1000.lua, one at a time, and callgrind counts from the first of them to the
# last answer. With MODE=single it takes 2,000 POSTs of one page view each instead (those of
# bench/wrk/single_event.lua, unique event ids) on one kept-alive connection, and counts per
# request: each is then its own commit, as at low concurrency. Unlike wrk's requests per
# second, this count does not move with the machine's load, so it can judge a change of a few
# percent. Needs valgrind, curl and python3. One request at a time makes each group commit one
# 170 KB request, so the log zero-fills space ahead (~170 instructions an event), which wrk's
# bigger groups never do. Callgrind counts each byte a `rep movsb` copies as an instruction,
# so large copies weigh more here than in time.
#
#   bench/server-instructions.sh [BINARY]       # default: the release build of this checkout
#   MODE=single bench/server-instructions.sh [BINARY]
#   callgrind_annotate --inclusive=yes <the printed file>   # where the instructions go
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/storepulse-target}"
REQUESTS="${REQUESTS:-100}"
ADDR=127.0.0.1:18096
if [[ $# -ge 1 ]]; then
  BIN=$1
else
  cargo build --release -q -p storepulse-server --bin storepulse
  BIN="$CARGO_TARGET_DIR/release/storepulse"
fi
WORK=$(mktemp -d /tmp/storepulse-instructions.XXXXXX)
pid=""
cleanup() {
  [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$WORK/data" "$WORK/body.json"
}
trap cleanup EXIT

# The same events as bench/wrk/batch_1000.lua.
python3 - "$WORK/body.json" <<'EOF'
import sys
event = ('{"type":"page_view","user_id":"u-%d","session_id":"s-%d","page":{"url":'
         '"https://shop.example/p/sku-%05d","title":"Product"},"country":"US","device":{"type":"desktop"}}')
with open(sys.argv[1], "w") as body:
    body.write("[" + ",".join(event % (i % 700, i % 300, i) for i in range(1, 1001)) + "]")
EOF

STOREPULSE_RATE_LIMIT__ENABLED=false RUST_LOG=warn valgrind --tool=callgrind \
  --callgrind-out-file="$WORK/callgrind.out" "$BIN" serve --data-dir "$WORK/data" \
  --listen "$ADDR" --fsync always 2>"$WORK/valgrind.log" &
pid=$!
for _ in $(seq 1 600); do curl -sf -o /dev/null "http://$ADDR/health" && break; sleep 0.2; done
post() { curl -sf -o /dev/null -X POST -H 'content-type: application/json' \
  --data-binary @"$WORK/body.json" "http://$ADDR/api/v1/events"; }
# Single events: one connection kept alive, as wrk's.
post_single() { # FIRST COUNT
  python3 - "$ADDR" "$1" "$2" <<'EOF'
import http.client, sys
host, port = sys.argv[1].split(":")
first, count = int(sys.argv[2]), int(sys.argv[3])
connection = http.client.HTTPConnection(host, int(port))
template = ('{"event_id":"instr-%d","type":"page_view","user_id":"u-%d","session_id":"s-%d",'
            '"page":{"url":"https://shop.example/p/sku-00042","title":"Runner 42"},'
            '"country":"US","device":{"type":"mobile"}}')
for n in range(first, first + count):
    connection.request("POST", "/api/v1/events", template % (n, n % 700, n % 300),
                       {"content-type": "application/json"})
    response = connection.getresponse()
    response.read()
    assert response.status == 200, response.status
EOF
}
if [[ "${MODE:-batch}" == single ]]; then
  SINGLE_REQUESTS="${SINGLE_REQUESTS:-2000}"
  post_single 0 200 # warms the pools and tables; not counted
  callgrind_control --zero "$pid" >/dev/null 2>&1
  post_single 200 "$SINGLE_REQUESTS"
else
  post # the first request warms the pools and tables; not counted
  callgrind_control --zero "$pid" >/dev/null 2>&1
  for _ in $(seq 1 "$REQUESTS"); do post; done
fi
callgrind_control --dump=counted "$pid" >/dev/null 2>&1
sleep 1
dump=$(ls "$WORK"/callgrind.out.* | head -1)
total=$(awk '/^summary:/ {print $2}' "$dump")
if [[ "${MODE:-batch}" == single ]]; then
  echo "$total instructions for $SINGLE_REQUESTS requests of one event: $((total / SINGLE_REQUESTS)) per request"
else
  echo "$total instructions for $REQUESTS requests of 1,000 events: $((total / REQUESTS / 1000)) per event"
fi
echo "profile: $dump"

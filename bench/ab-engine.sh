#!/usr/bin/env bash
# Alternates two or more `engine_scale` binaries on shop traffic, so that an engine change is
# judged against the machine's drift in the same minutes. Each run applies the same events
# three times into fresh engines (ENGINE_SCALE_ROUNDS=3, fresh input); every other pass runs
# the binaries in reverse order (ABBA): on these machines the run in the second slot was
# ~5 % faster when the order was fixed (twenty-third session). Prints each binary's median
# of the apply rate and of the rate with housekeeping (pruning) counted too: a change that
# moves work into pruning gains only in the first (twenty-fourth session).
#
#   bench/ab-engine.sh 6 3000000 /tmp/engine_scale.before /tmp/engine_scale.after
#   (passes, events per run, binaries...)
#
# Build each binary with `cargo build --release -p storepulse-server --example engine_scale`
# and copy `$CARGO_TARGET_DIR/release/examples/engine_scale` aside before changing the code.
set -euo pipefail
passes=$1 events=$2
shift 2
binaries=("$@")
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for pass in $(seq 1 "$passes"); do
  order=("${binaries[@]}")
  if (( pass % 2 == 0 )); then
    order=()
    for (( i=${#binaries[@]}-1; i>=0; i-- )); do order+=("${binaries[i]}"); done
  fi
  for binary in "${order[@]}"; do
    ENGINE_SCALE_ROUNDS=3 ENGINE_SCALE_FRESH_INPUT=1 "$binary" "$events" |
      awk -v b="$binary" '/^round/ { sub(/^\(/, "", $6); print b, $3, $6 }' >>"$out"
  done
done
# (Builds before the twenty-fourth session print no rate with housekeeping: "n/a".)
median() {
  { grep -E '^[0-9.]+$' || true; } | sort -n |
    awk '{ v[NR] = $1 } END { print NR == 0 ? "n/a" : NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
for binary in "${binaries[@]}"; do
  apply=$(awk -v b="$binary" '$1 == b { print $2 }' "$out" | median)
  whole=$(awk -v b="$binary" '$1 == b { print $3 }' "$out" | median)
  rounds=$(awk -v b="$binary" '$1 == b' "$out" | wc -l)
  echo "$binary: median $apply M events/s applying, $whole M with housekeeping ($rounds rounds)"
done

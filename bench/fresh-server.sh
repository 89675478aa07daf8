# Sourced by the A/B scripts: a fresh Storepulse per run, as the benchmarks run it (fsync
# before every acknowledgement, rate limiting off).
#
#   start_fresh_server BINARY ADDR   # sets $server_pid and $server_data, returns once it listens
#   stop_fresh_server                # stops it and removes its data

start_fresh_server() {
  server_data=$(mktemp -d /tmp/storepulse-bench.XXXXXX)
  STOREPULSE_RATE_LIMIT__ENABLED=false RUST_LOG=warn "$1" serve --data-dir "$server_data" \
    --listen "$2" --fsync always >/dev/null 2>&1 &
  server_pid=$!
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/${2%:*}/${2#*:}") 2>/dev/null && break; sleep 0.1; done
}

stop_fresh_server() {
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; rm -rf "$server_data"
}

# Sourced by the load scripts (bench.sh, overload.sh): the server they run
# on 127.0.0.1:$PORT with its log in $CACHE/server.log, and its memory.
# Needs PORT and CACHE set; sets server_pid.

server_pid=""

# start_server runs bin/server and waits for /healthz; extra environment
# may be given as arguments (NAME=value).
start_server() {
  if curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then
    echo "$0: something already answers on port $PORT" >&2; exit 1
  fi
  env ADDR="127.0.0.1:$PORT" LOG_LEVEL=warn DATA_DIR="$CACHE/data" "$@" ./bin/server >"$CACHE/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && return; sleep 0.1; done
  echo "$0: the server did not start" >&2; exit 1
}

# stop_server sends SIGTERM and says how long the server took to exit (it
# must, within SHUTDOWN_TIMEOUT).
stop_server() {
  [ -n "${server_pid:-}" ] || return 0
  local t0=$SECONDS
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  echo "server exited $((SECONDS - t0)) s after SIGTERM"
  server_pid=""
}

# server_kib is the memory of the server with its image workers (separate
# processes: see internal/imageproc), in KiB: the sum of their proportional
# set sizes, so that the libraries they share count once.
server_kib() {
  local total=0 pid
  for pid in "$server_pid" $(pgrep -P "$server_pid" || true); do
    total=$((total + $(awk '$1 == "Pss:" {print $2}' /proc/$pid/smaps_rollup 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# metric prints the value of one series of the server's /metrics.
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

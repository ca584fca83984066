#!/usr/bin/env bash
# Hosted, interleaved and repeated: our memcached (`--cores N`) and the
# host's memcached 1.6 (`-t N`) take turns, REPS times, so that a noisy
# minute on a shared machine falls on one run of one server and not on all
# of a server's runs (docs/benchmarks.md, "memcached (issue 11)").
# Each turn starts a fresh server and runs loadgen twice, client on
# loopback, binary protocol, Facebook ETC workload:
#
#   search   the highest offered rate whose p99 <= SLA (default 500us);
#   fixed    QPS (default 80000) requests/s for FIXED (default 10s), with
#            the server's CPU time (utime+stime from /proc) and context
#            switches over that run: CPU microseconds per request, a
#            figure the host's noise moves much less than a p99.
#
#   loadgen/bench/memcached-reps.sh            # N = 1 and 2, REPS = 3
#   REPS=5 ONLY_CORES=1 QPS=160000 loadgen/bench/memcached-reps.sh
#
# Every JSON document stays in OUT (default /tmp/memcached-reps):
# <server>-<N>-<rep>-<search|fixed>.json; one line per turn on stdout and in
# OUT/summary.txt. Needs memcached on the host. Environment: OUT, REPS,
# ONLY_CORES ("1 2"), SLA, QPS, FIXED, DURATION (search step, 3s), CONNS (8),
# SERVERS ("memcached ebbrt"; also "ebbrt-unpinned": ours with
# EBBRT_ARGS=ebbrt.pin=0, its core threads not pinned to CPUs).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
OUT=${OUT:-/tmp/memcached-reps}
REPS=${REPS:-3}
ONLY_CORES=${ONLY_CORES:-1 2}
SLA=${SLA:-500us}
QPS=${QPS:-80000}
FIXED=${FIXED:-10s}
DURATION=${DURATION:-3s}
CONNS=${CONNS:-8}
SERVERS=${SERVERS:-memcached ebbrt}
mkdir -p "$OUT"
: >"$OUT/summary.txt"
cargo build -q --release -p ebbrt-loadgen -p memcached || exit 1
L=$CARGO_TARGET_DIR/release/loadgen
common=(--protocol binary --connections "$CONNS" --json)

# The CPU ticks (utime + stime) and context switches of process $1 so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }

wait_port() {
  for _ in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 1)" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

hz=$(getconf CLK_TCK)
for rep in $(seq 1 "$REPS"); do
  for n in $ONLY_CORES; do
    for server in $SERVERS; do
      case $server in
        memcached)
          memcached -u root -l 127.0.0.1 -p 21411 -U 0 -t "$n" -m 256 -c 4096 &
          port=21411 ;;
        ebbrt)
          "$CARGO_TARGET_DIR/release/memcached" --cores "$n" -- -p 21412 -l 127.0.0.1 -m 256 >/dev/null &
          port=21412 ;;
        ebbrt-unpinned)
          EBBRT_ARGS=ebbrt.pin=0 "$CARGO_TARGET_DIR/release/memcached" --cores "$n" -- -p 21413 -l 127.0.0.1 -m 256 >/dev/null 2>&1 &
          port=21413 ;;
        *) echo "unknown server $server (memcached, ebbrt, ebbrt-unpinned)" >&2; exit 2 ;;
      esac
      pid=$!
      if ! wait_port "$port"; then
        echo "$server -t $n did not start" >&2
        kill "$pid"; wait "$pid" 2>/dev/null
        continue
      fi
      name=$server-$n-$rep
      "$L" --server 127.0.0.1:$port "${common[@]}" --duration "$DURATION" --sla-p99 "$SLA" --search \
        --qps 5000 --search-steps 12 --search-retries 1 >"$OUT/$name-search.json" 2>"$OUT/$name-search.log"
      t0=$(ticks "$pid"); c0=$(switches "$pid")
      "$L" --server 127.0.0.1:$port "${common[@]}" --duration "$FIXED" --qps "$QPS" --no-preload \
        >"$OUT/$name-fixed.json" 2>"$OUT/$name-fixed.log"
      t1=$(ticks "$pid"); c1=$(switches "$pid")
      kill "$pid"; wait "$pid" 2>/dev/null
      python3 - "$OUT/$name-search.json" "$OUT/$name-fixed.json" "$((t1 - t0))" "$((c1 - c0))" "$hz" "$name" <<'EOF' | tee -a "$OUT/summary.txt"
import json, sys
search, fixed, ticks, switches, hz, name = sys.argv[1:]
best = json.load(open(search)).get("search", {}).get("best")
f = json.load(open(fixed))["steps"][0]
done = max(1, f["completed"])
l, lag = f["latency_us"], f["send_lag_us"]
sla = f"{best['offered_qps']:,.0f}/s (p99 {best['latency_us']['p99']:.0f} us)" if best else "none passed"
print(f"{name}: search {sla}; at {f['offered_qps']:,.0f}/s: {int(ticks) * 1e6 / int(hz) / done:.2f} CPU us/request, "
      f"{int(switches) / done:.3f} context switches/request, p50 {l['p50']:.0f} p99 {l['p99']:.0f} us, "
      f"generator lag99 {lag['p99']:.0f} us")
EOF
    done
  done
done

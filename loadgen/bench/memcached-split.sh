#!/usr/bin/env bash
# Hosted, two cores: how evenly each server's threads share the work, and
# the p99 that goes with it (docs/benchmarks.md, "Rounds 22–23"). Our
# memcached (`--cores 2`) and the host's memcached 1.6 (`-t 2`) take turns,
# REPS times; each turn starts a fresh server, warms it (2 s at 20,000/s,
# which also preloads the keys), then runs loadgen at a fixed QPS for
# FIXED, client on loopback, binary protocol, 8 connections, and reads
# every server thread's CPU ticks (utime + stime) over that run from
# /proc/PID/task/*/stat. One line per turn: the ticks of the threads that
# did any work, and p50 / p99 / p99.9 / max.
#
#   loadgen/bench/memcached-split.sh                 # REPS=4 QPS=200000
#
# Environment: REPS, QPS, FIXED (6s), CONNS (8), OUT (/tmp/memcached-split:
# the JSON of each turn).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
REPS=${REPS:-4}
QPS=${QPS:-200000}
FIXED=${FIXED:-6s}
CONNS=${CONNS:-8}
OUT=${OUT:-/tmp/memcached-split}
mkdir -p "$OUT"
cargo build -q --release -p ebbrt-loadgen -p memcached || exit 1
L=$CARGO_TARGET_DIR/release/loadgen
common=(--protocol binary --connections "$CONNS" --json)
ticks() { awk '{print $14 + $15}' "$1/stat" 2>/dev/null || echo 0; }
for rep in $(seq 1 "$REPS"); do
  for server in ebbrt memcached; do
    case $server in
      memcached) memcached -u root -l 127.0.0.1 -p 21411 -U 0 -t 2 -m 256 -c 4096 & port=21411 ;;
      ebbrt) "$CARGO_TARGET_DIR/release/memcached" --cores 2 -- -p 21412 -l 127.0.0.1 -m 256 >/dev/null & port=21412 ;;
    esac
    pid=$!
    sleep 1
    "$L" --server 127.0.0.1:$port "${common[@]}" --duration 2s --qps 20000 >/dev/null 2>&1
    declare -A t0=()
    for t in /proc/$pid/task/*; do t0[$t]=$(ticks "$t"); done
    "$L" --server 127.0.0.1:$port "${common[@]}" --duration "$FIXED" --qps "$QPS" --no-preload \
      >"$OUT/$server-$rep.json" 2>/dev/null
    threads=""
    for t in /proc/$pid/task/*; do
      d=$(( $(ticks "$t") - ${t0[$t]:-0} ))
      [ "$d" -gt 20 ] && threads="$threads $d"
    done
    kill "$pid"; wait "$pid" 2>/dev/null
    python3 - "$OUT/$server-$rep.json" "$server" "$rep" "$threads" <<'PY'
import json, sys
path, server, rep, threads = sys.argv[1:]
f = json.load(open(path))["steps"][0]
l = f["latency_us"]
print(f"{server} turn {rep}: thread CPU ticks{threads or ' ?'}; {f['completed']} requests at "
      f"{f['offered_qps']:,.0f}/s: p50 {l['p50']:.0f} p99 {l['p99']:.0f} p99.9 {l['p999']:.0f} max {l['max']:.0f} us")
PY
  done
done

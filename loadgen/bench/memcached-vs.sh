#!/usr/bin/env bash
# memcached on EbbRT against memcached 1.6 (docs/benchmarks.md, "memcached
# (issue 11)"): the same loadgen runs (binary protocol, Facebook ETC
# workload, Poisson arrivals, open loop) against
#
#   hosted   our memcached as a Linux process (`--cores N`) and the host's
#            memcached (`-t N`), N = 1 and 2, client on loopback;
#            SLA search at p99 <= 500 us, then a sweep of offered loads;
#   native   our memcached booted natively under QEMU (`--cores N`) and
#            Debian's Linux with memcached (`-t N`) in the same QEMU
#            (../shared/tools/linux-vm-memcached), N = 1 and 2 vCPUs, both
#            on the same virtio NIC on a tap in a network namespace, the
#            client inside the namespace; SLA search at p99 <= 5 ms, then a
#            sweep;
#   soak     the native server (2 cores) under SOAK_QPS for SOAK (default 600s)
#            with every value read back verified (and no read older than an
#            acknowledged write), then every key read back once
#            (--verify-final: each at its newest acknowledged version,
#            none lost); QEMU's resident memory and the server's `stats`
#            (bytes, items, connections) every 30 s;
#   plot     the figure from the sweeps (plot-p99.py): docs/memcached-p99.svg
#   table    the table of the results in OUT.
#
#   loadgen/bench/memcached-vs.sh [hosted] [native] [soak] [plot] [table]   (default: all five)
#
# Every JSON document loadgen wrote stays in OUT (default
# /tmp/memcached-vs), one per server and run: <env>-<server>-<N>-<search|sweep>.json.
# Needs root for the namespaces (native), memcached on the host, QEMU.
# Environment: OUT, DURATION (per step, default 3s), CONNS (8), STEPS
# (search steps, 12), RETRIES (a failed search step is run once more, 1:
# on a shared machine one stall of the generator should not end a search), LINUX_VM (the baseline script), SWEEP_HOSTED and
# SWEEP_NATIVE (comma-separated offered loads), ONLY_CORES ("1 2"),
# LG_PREFIX and SERVER_PREFIX (below), QUEUES (native: queue pairs of
# ours, default 1; with 2 its runs are named native-ebbrt2q-N and each
# core owns its queue pair and stack), LINUX (native: 0 skips the Linux
# guest), APPEND (native: more boot arguments of ours, e.g.
# memcached.listen=all) with LABEL_SUFFIX (appended to its runs' label,
# e.g. -all).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
OUT=${OUT:-/tmp/memcached-vs}
DURATION=${DURATION:-3s}
CONNS=${CONNS:-8}
STEPS=${STEPS:-12}
RETRIES=${RETRIES:-1}
LINUX_VM=${LINUX_VM:-$root/../shared/tools/linux-vm-memcached}
SWEEP_HOSTED=${SWEEP_HOSTED:-2000,5000,10000,20000,40000,60000,80000,120000,160000,240000}
SWEEP_NATIVE=${SWEEP_NATIVE:-250,500,1000,2000,3000,4000,6000,8000,12000,16000,24000,32000,48000,64000}
ONLY_CORES=${ONLY_CORES:-1 2}
# A prefix for every loadgen command, e.g. "chrt -f 20": the generator at
# a real-time priority, so that on a shared host its own wake-ups are not
# what the p99 measures (the servers and QEMU keep their priority).
LG_PREFIX=${LG_PREFIX:-}
# The same for the hosted servers (memcached and ours), e.g. "taskset -c 0"
# with LG_PREFIX="taskset -c 1 chrt -f 20": server and generator on CPUs
# of their own (one-core runs).
SERVER_PREFIX=${SERVER_PREFIX:-}
mkdir -p "$OUT"
L=$CARGO_TARGET_DIR/release/loadgen
common=(--protocol binary --connections "$CONNS" --duration "$DURATION" --json)

build() {
  cargo build -q --release -p ebbrt-loadgen -p memcached || exit 1
}

# run NAME PREFIX... -- SERVER SLA START SWEEP: an SLA search, then a sweep.
run() {
  local name=$1; shift
  local pre=()
  while [ "$1" != -- ]; do pre+=("$1"); shift; done
  shift
  local server=$1 sla=$2 start=$3 sweep=$4
  echo "== $name: search (p99 <= $sla) against $server" >&2
  "${pre[@]}" $LG_PREFIX "$L" --server "$server" "${common[@]}" --sla-p99 "$sla" --search \
    --qps "$start" --search-steps "$STEPS" --search-retries "$RETRIES" >"$OUT/$name-search.json" 2>"$OUT/$name-search.log"
  tail -3 "$OUT/$name-search.log" >&2
  # A search ends past what the server carries; a guest may stay
  # unreachable for a while working off that overload: the sweep waits
  # (up to 2 minutes) until it takes a connection again.
  local i
  for i in $(seq 1 120); do
    "${pre[@]}" python3 -c "import socket; h, p = '$server'.rsplit(':', 1); socket.create_connection((h, int(p)), 1).close()" \
      2>/dev/null && break
    [ "$i" = 1 ] && echo "== $name: waiting for $server to take connections again" >&2
    sleep 1
  done
  echo "== $name: sweep $sweep" >&2
  "${pre[@]}" $LG_PREFIX "$L" --server "$server" "${common[@]}" --sweep "$sweep" \
    >"$OUT/$name-sweep.json" 2>"$OUT/$name-sweep.log"
  grep -E '^ +[0-9]' "$OUT/$name-sweep.log" >&2
}

wait_port() { # wait_port HOST PORT [NETNS]
  for _ in $(seq 1 300); do
    if ${3:+ip netns exec "$3"} python3 -c "import socket,sys; socket.create_connection(('$1', $2), 1)" 2>/dev/null; then return 0; fi
    sleep 1
  done
  return 1
}

hosted() {
  build
  for n in $ONLY_CORES; do
    # The host's memcached 1.6, n worker threads.
    $SERVER_PREFIX memcached -u root -l 127.0.0.1 -p 21411 -U 0 -t "$n" -m 256 -c 4096 &
    local mc=$!
    wait_port 127.0.0.1 21411
    run "hosted-memcached-$n" -- 127.0.0.1:21411 500us 5000 "$SWEEP_HOSTED"
    kill "$mc"; wait "$mc" 2>/dev/null
    # Ours, hosted: n cores (pinned only if the host has more CPUs: ebbrt.pin=auto).
    $SERVER_PREFIX "$CARGO_TARGET_DIR/release/memcached" --cores "$n" -- -p 21412 -l 127.0.0.1 -m 256 &
    local eb=$!
    wait_port 127.0.0.1 21412
    run "hosted-ebbrt-$n" -- 127.0.0.1:21412 500us 5000 "$SWEEP_HOSTED"
    kill "$eb"; wait "$eb" 2>/dev/null
  done
}

kill_qemu_below() { # kill the QEMU processes descended from pid $1
  local k
  for k in $(pgrep -P "$1"); do
    case $(ps -o comm= -p "$k") in qemu-system-x86*) kill "$k" ;; *) kill_qemu_below "$k" ;; esac
  done
}

native() {
  build
  for n in $ONLY_CORES; do
    # Ours, natively: n vCPUs, QUEUES queue pairs (with one, core 0's
    # stack; the other cores' connections reach it across cores), a netns
    # tap.
    local log; log=$(mktemp)
    local q=${QUEUES:-1} label=ebbrt
    [ "$q" -gt 1 ] && label=ebbrt${q}q
    label=$label${LABEL_SUFFIX:-}
    cargo ebbrt run memcached --release --net tap --queues "$q" --cores "$n" --mem 512M --timeout 1800 \
      --append "memcached.m=256 memcached.epoch=$(date +%s) ${APPEND:-}" >"$log" 2>&1 &
    local tool=$!
    for _ in $(seq 1 600); do grep -q "listening on" "$log" && break; sleep 1; done
    local ns; ns=$(sed -n 's/.*network namespace \(ebbrt-net-[0-9]*\).*/\1/p' "$log" | head -1)
    if [ -z "$ns" ] || ! grep -q "listening on" "$log"; then
      echo "native memcached did not start:" >&2; tail -20 "$log" >&2
    else
      run "native-$label-$n" ip netns exec "$ns" -- 10.79.0.2:11211 5ms 500 "$SWEEP_NATIVE"
      grep -E "starved|panic|error" "$log" >&2
    fi
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p"; done
    kill_qemu_below "$tool"
    wait "$tool"; rm -f "$log"
    [ "${LINUX:-1}" = 0 ] && continue
    # Linux 6.1 in the same QEMU: n vCPUs, memcached -t n.
    export NETNS=ebbrt-mcvs-linux WORK=${TMPDIR:-/tmp}/ebbrt-mcvs-linuxvm
    if "$LINUX_VM" start --smp "$n" --threads "$n" >&2; then
      sleep 2
      run "native-linux-$n" ip netns exec "$NETNS" -- 10.77.0.2:11211 5ms 500 "$SWEEP_NATIVE"
    fi
    "$LINUX_VM" stop
  done
}

soak() {
  build
  local log; log=$(mktemp)
  cargo ebbrt run memcached --release --net tap --cores 2 --mem 512M --timeout 7200 \
    --append "memcached.m=256 memcached.epoch=$(date +%s)" >"$log" 2>&1 &
  local tool=$!
  for _ in $(seq 1 600); do grep -q "listening on" "$log" && break; sleep 1; done
  local ns; ns=$(sed -n 's/.*network namespace \(ebbrt-net-[0-9]*\).*/\1/p' "$log" | head -1)
  local qemu; qemu=$(ip netns pids "$ns" | head -1)
  ip netns exec "$ns" $LG_PREFIX "$L" --server 10.79.0.2:11211 --protocol binary --connections "$CONNS" \
    --qps "${SOAK_QPS:-2000}" --duration "${SOAK:-600s}" --verify-final --json >"$OUT/soak.json" 2>"$OUT/soak.log" &
  local lg=$!
  : >"$OUT/soak-memory.txt"
  while kill -0 "$lg" 2>/dev/null; do
    local rss bytes
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$qemu/status" 2>/dev/null)
    bytes=$(ip netns exec "$ns" python3 -c "
import socket; s = socket.create_connection(('10.79.0.2', 11211), 5); s.sendall(b'stats\r\n'); b = b''
while not b.endswith(b'END\r\n'): b += s.recv(65536)
d = dict(l.split()[1:3] for l in b.decode().splitlines() if l.startswith('STAT'))
print(d.get('bytes'), d.get('curr_items'), d.get('curr_connections'), d.get('total_items'))" 2>/dev/null)
    echo "$(date -u +%T) qemu_rss_kib=$rss bytes,curr_items,curr_connections,total_items=$bytes" | tee -a "$OUT/soak-memory.txt" >&2
    sleep 30
  done
  wait "$lg"; echo "loadgen exit status $?" >&2
  grep -E '^ +[0-9]' "$OUT/soak.log" >&2
  python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
f = d.get('final_check') or {}
print('final check:', ', '.join(f'{k} {f.get(k)}' for k in
      ('keys', 'checked', 'hits', 'misses', 'lost', 'stale', 'mismatches', 'errors', 'evictions', 'ok')))
print('stale reads during the run:', sum(s['stale'] for s in d['steps']), '; run ok:', d['ok'])
for m in f.get('messages', [])[:8]: print('  ' + m)" "$OUT/soak.json" >&2
  grep -E "panic|error" "$log" >&2
  for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p"; done
  wait "$tool"; rm -f "$log"
}

plot() {
  python3 "$root/loadgen/bench/plot-p99.py" "$OUT" "$root/docs/memcached-p99.svg"
}

table() {
  python3 "$root/loadgen/bench/plot-p99.py" --table "$OUT"
}

for step in ${*:-hosted native soak plot table}; do
  case $step in
    hosted) hosted ;;
    native) native ;;
    soak) soak ;;
    plot) plot ;;
    table) table ;;
    *) sed -n '2,25p' "$0"; exit 2 ;;
  esac
done

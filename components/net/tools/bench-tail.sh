#!/usr/bin/env bash
# The 64-byte round trip of the native echo and its tail (p50, p99, p99.9),
# several configurations side by side in one run: trials interleaved
# (A B A B ...), each trial a fresh guest on a netns tap (1 queue pair,
# 2 cores) measured by netbench.py with two connections one after the
# other. In a fresh guest the first connection goes to core 0's listener
# (core 0 owns the one stack) and the second to core 1's (every read and
# write of it crosses to core 0 and back); they are reported apart.
#
#   bench-tail.sh NAME=SRC[,APPEND[,FEATURES]] ...
#
# SRC is a checkout to build the echo from (`.`: this one; another, e.g.
# `git archive <commit> | tar -x -C /tmp/before`, to compare with an older
# commit; give each its own CARGO_TARGET_DIR with TARGET_<NAME>=dir).
# APPEND is the kernel command line (e.g. virtio.poll=never), FEATURES
# cargo features (e.g. ebbrt/idle-poll). Environment: TRIALS (3), ROUNDS
# (5000), OUT (a directory for the raw latencies, one file per trial and
# connection). Each guest's echo counters (UDP `ebbrt-echo:stats`) are
# printed after its trial. Needs root (the namespaces).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
TRIALS=${TRIALS:-3} ROUNDS=${ROUNDS:-5000}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
[ $# -gt 0 ] || { sed -n '2,21p' "$0"; exit 2; }

one() { # one NAME SRC APPEND FEATURES TRIAL
  local name=$1 src=$2 app=$3 feat=$4 t=$5 log extra=() tool ns
  log=$(mktemp)
  [ -n "$app" ] && extra+=(--append "$app")
  [ -n "$feat" ] && extra+=(--features "$feat")
  local tvar="TARGET_${name//[^A-Za-z0-9_]/_}"
  (cd "$src" && CARGO_TARGET_DIR=${!tvar:-${CARGO_TARGET_DIR:-target}} \
    exec cargo ebbrt run echo --release --net tap --queues 1 --cores 2 --timeout 900 "${extra[@]}") >"$log" 2>&1 &
  tool=$!
  for _ in $(seq 1 600); do grep -q "listening on" "$log" && break; sleep 1; done
  ns=$(sed -n 's/.*network namespace \(ebbrt-net-[0-9]*\).*/\1/p' "$log" | head -1)
  for conn in 1 2; do
    printf '%-12s trial %s conn %s: ' "$name" "$t" "$conn"
    ip netns exec "$ns" python3 "$here/netbench.py" 10.79.0.2 7777 --rounds "$ROUNDS" --bulk 0 \
      --dump "$OUT/$name-t$t-c$conn.txt"
  done
  ip netns exec "$ns" python3 -c "
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(b'ebbrt-echo:stats', ('10.79.0.2', 7777)); w = s.recv(4096).decode().split()
print('   ', ' '.join(x for x in w if x.split('=')[0] in ('rx_frames', 'tx_frames', 'poll_episodes', 'poll_starved', 'poll_held_back')))" || true
  # Only this run's guest: every process in its namespace (QEMU).
  for p in $(ip netns pids "$ns"); do kill "$p"; done
  wait "$tool"
  rm -f "$log"
}

for t in $(seq 1 "$TRIALS"); do
  for spec in "$@"; do
    name=${spec%%=*} rest=${spec#*=}
    IFS=, read -r src app feat <<<"$rest"
    one "$name" "$src" "${app:-}" "${feat:-}" "$t"
  done
done
echo "raw latencies (us, one per round trip): $OUT"
python3 - "$OUT" "$@" <<'EOF'
import glob, sys
out, specs = sys.argv[1], sys.argv[2:]
def q(s, p): return s[min(len(s) - 1, int(p * len(s)))]
print(f"{'config':12} {'conn':4} {'trials':>6} {'p50 us':>14} {'p99 us':>14} {'p99.9 us':>16}")
for spec in specs:
    name = spec.split("=")[0]
    for c in (1, 2):
        rows = []
        for f in sorted(glob.glob(f"{out}/{name}-t*-c{c}.txt")):
            s = sorted(float(x.split()[0]) for x in open(f))
            rows.append((q(s, .5), q(s, .99), q(s, .999)))
        if rows:
            rng = lambda i: f"{min(r[i] for r in rows):.0f}-{max(r[i] for r in rows):.0f}"
            print(f"{name:12} {c:4} {len(rows):6} {rng(0):>14} {rng(1):>14} {rng(2):>16}")
EOF

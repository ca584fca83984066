#!/usr/bin/env bash
# Instructions per allocation+free pair of each allocator in threadtest I
# and II, counted by callgrind (CPU-independent: the same on any x86_64).
#
# Usage (from the workspace root):
#   components/gp-alloc/benches/callgrind-per-op.sh [BENCH_BINARY]
# Without an argument it builds the benchmark (`cargo bench --no-run`) and
# uses the binary cargo names. Needs valgrind.
#
# For each allocator and test, callgrind counts only inside the benchmark's
# never-inlined `Shim<A>::alloc`/`dealloc` (`--toggle-collect`): the
# allocator's own instructions, including everything it calls, not the
# harness loop. Each configuration runs twice, at scale s and 2s, without
# warm-up; the difference of the two counts divided by the difference of
# the pairs run is the steady-state cost per pair (the one-time costs:
# first-touch initialisation, arenas, the first slabs, cancel out).
set -euo pipefail

bin=${1:-}
if [[ -z $bin ]]; then
    bin=$(cargo bench -p ebbrt-gp-alloc --bench allocators --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "allocators" and m.get("executable"):
        print(m["executable"])')
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# name | --only filter | scale s
tests=("I|N=100000|0.02" "II|N=100,|0.005")
declare -A shim=([ebbrt]=ebbrt_gp_alloc::Global [jemalloc]=tikv_jemallocator::Jemalloc
    [mimalloc]=mimalloc::MiMalloc [glibc]=std::alloc::System)

count() { # allocator test-filter scale threads -> instructions collected
    local f="$out/cg.out"
    valgrind --tool=callgrind --callgrind-out-file="$f" --collect-atstart=no \
        --toggle-collect="<allocators::Shim<${shim[$1]}> as core::alloc::global::GlobalAlloc>::*" \
        "$bin" --reps 1 --scale "$3" --only "$2" --threads "$4" --alloc "$1" --no-warmup \
        >/dev/null 2>&1
    grep -E '^totals:' "$f" | awk '{print $2}'
}

allocators=${ALLOCATORS:-ebbrt mimalloc jemalloc}
printf '| test | threads | allocator | instructions per pair |\n|---|---|---|---|\n'
for t in "${tests[@]}"; do
    IFS='|' read -r name only scale <<<"$t"
    for threads in 1 2; do
        for a in $allocators; do
            one=$(count "$a" "$only" "$scale" "$threads")
            two=$(count "$a" "$only" "$(python3 -c "print(2 * $scale)")" "$threads")
            printf '| threadtest %s | %s | %s | %.1f |\n' "$name" "$threads" "$a" \
                "$(python3 -c "print(($two - $one) / (1e8 * $scale))")"
        done
    done
done

#!/usr/bin/env python3
"""How much of each slow round trip the host's scheduler explains.

    sched-blame.py PERF_DATA DUMP [--slow US] [--comm REGEX]

PERF_DATA: `perf sched record -k mono -a` taken while netbench.py ran
with `--dump DUMP` (each line: latency in µs, start on CLOCK_MONOTONIC).
From `perf sched timehist` it takes, for every thread whose name matches
--comm (default: QEMU's threads and the python3 client), the intervals in
which the thread was runnable but not running (its scheduling delay: woken
or preempted, waiting for a host CPU). For each round trip slower than
--slow (default 1000 µs) it prints how much of the round trip overlapped
such a wait of any of those threads, and sums it up against the same
figure for the fast round trips.
"""
import argparse, bisect, re, subprocess, sys


def waits(perf_data, comm, by_task=None):
    out = subprocess.run(["perf", "sched", "timehist", "-i", perf_data],
                         capture_output=True, text=True).stdout
    iv = []
    pat = re.compile(comm)
    for line in out.splitlines():
        f = line.split()
        # time cpu task wait sch-delay run-time
        if len(f) < 6 or not re.match(r"^\d+\.\d+$", f[0]):
            continue
        task = " ".join(f[2:-3])
        if not pat.search(task):
            continue
        try:
            t, delay, run = float(f[0]), float(f[-2]) / 1e3, float(f[-1]) / 1e3
        except ValueError:
            continue
        if delay > 0:
            start_run = t - run
            iv.append((start_run - delay, start_run))
            if by_task is not None:
                by_task.setdefault(task, []).append((start_run - delay, start_run))
    iv.sort()
    merged = []
    for a, b in iv:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return merged


def overlap(merged, starts, a, b):
    i = max(0, bisect.bisect_right(starts, a) - 1)
    tot = 0.0
    while i < len(merged) and merged[i][0] < b:
        tot += max(0.0, min(b, merged[i][1]) - max(a, merged[i][0]))
        i += 1
    return tot


def main():
    p = argparse.ArgumentParser()
    p.add_argument("perf_data"); p.add_argument("dump")
    p.add_argument("--slow", type=float, default=1000)
    p.add_argument("--comm", default=r"qemu|CPU \d+/TCG|python3")
    a = p.parse_args()
    tasks = {}
    merged = waits(a.perf_data, a.comm, tasks)
    starts = [m[0] for m in merged]
    rts = [tuple(map(float, l.split()[:2])) for l in open(a.dump)]
    lo, hi = merged[0][0] if merged else 0, merged[-1][1] if merged else 0
    rts = [(lat, t) for lat, t in rts if lo <= t <= hi]
    if not rts:
        sys.exit("no round trip inside the perf recording (was it taken with -k mono?)")
    slow = [(lat, t) for lat, t in rts if lat > a.slow]
    fast = [(lat, t) for lat, t in rts if lat <= a.slow]
    def share(sel):
        tot = sum(lat for lat, _ in sel) / 1e6
        w = sum(overlap(merged, starts, t, t + lat / 1e6) for lat, t in sel)
        return w, tot
    ws, ts = share(slow)
    wf, tf = share(fast)
    covered = sum(1 for lat, t in slow
                  if overlap(merged, starts, t, t + lat / 1e6) >= 0.5 * lat / 1e6)
    print(f"{len(rts)} round trips inside the recording; {len(slow)} slower than {a.slow:.0f} us")
    if slow:
        print(f"slow ones: {100 * ws / ts:.0f}% of their time overlaps a wait for a host CPU "
              f"of a matching thread; {covered} of {len(slow)} are at least half covered")
    if fast:
        print(f"fast ones: {100 * wf / tf:.0f}% of their time overlaps such a wait")
    for task, iv in sorted(tasks.items()):
        iv.sort()
        st = [x[0] for x in iv]
        w = sum(overlap(iv, st, t, t + lat / 1e6) for lat, t in slow)
        if slow and w > 0.01 * ts:
            print(f"  {task}: waiting for a CPU during {100 * w / ts:.0f}% of the slow round trips' time")


if __name__ == "__main__":
    main()

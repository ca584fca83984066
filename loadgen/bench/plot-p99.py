#!/usr/bin/env python3
"""p99 latency against offered load, from loadgen's JSON (memcached-vs.sh).

    plot-p99.py OUT_DIR... FIGURE.svg  the figure: one panel per environment
                                       (hosted, native), a curve per server
    plot-p99.py --table OUT_DIR...     the results as a Markdown table

    --machine ENV=TEXT (before the OUT_DIRs, repeatable) names under a
    panel's title the machine its runs came from, e.g.
    --machine "hosted=Intel Xeon, 2 vCPUs" when the panels were measured
    on different machines.

A run found in several OUT_DIRs is taken from the last. OUT_DIR holds <env>-<server>-<cores>-sweep.json and -search.json as
memcached-vs.sh writes them. The figure is plain SVG written here (no
plotting library needed): log-log axes, the SLA of each panel as a dashed
line, a point per sweep step that answered at least 95 % of its schedule
(steps the server could not carry are drawn hollow at their p99).
"""
import glob, json, math, os, sys

ENVS = [("hosted", "hosted: Linux process, loopback client", 500.0),
        ("native", "QEMU (TCG), virtio-net on a netns tap", 5000.0)]
STYLE = {("ebbrt", "1"): ("#d62728", "EbbRT 1 core"),
         ("ebbrt", "2"): ("#ff7f0e", "EbbRT 2 cores"),
         ("ebbrt2q", "2"): ("#8c564b", "EbbRT 2 cores, 2 queue pairs"),
         ("memcached", "1"): ("#1f77b4", "memcached 1.6, -t 1"),
         ("memcached", "2"): ("#17becf", "memcached 1.6, -t 2"),
         ("linux", "1"): ("#1f77b4", "Linux guest, memcached -t 1, 1 vCPU"),
         ("linux", "2"): ("#17becf", "Linux guest, memcached -t 2, 2 vCPUs")}
ORDER = ["ebbrt", "ebbrt2q", "memcached", "linux"]


def load(outs):
    runs = {}
    files = [f for out in outs for f in sorted(glob.glob(os.path.join(out, "*-*-*-*.json")))]
    for f in files:
        env, server, cores, kind = os.path.basename(f)[:-5].split("-")
        try:
            d = json.load(open(f))
        except (json.JSONDecodeError, OSError):
            continue
        runs.setdefault((env, server, cores), {})[kind] = d  # the last wins
    return runs


def carried(step):
    # loadgen's own criterion (its search): replies per second against what
    # the schedule held.
    return step["achieved_qps"] >= 0.95 * max(1e-9, step["scheduled_qps"]) and step["errors"] == 0


def table(out):
    runs = load(out)
    print("| environment | server | cores | best offered/s within SLA (achieved/s, p50 / p99 / p99.9 µs) | search steps |")
    print("|---|---|---|---|---|")
    for env, _, sla in ENVS:
        for server in ORDER:
            for cores in ("1", "2"):
                r = runs.get((env, server, cores), {}).get("search")
                if not r:
                    continue
                s = r.get("search") or {}
                best = s.get("best")
                n = len(r.get("steps", []))
                if best:
                    l = best["latency_us"]
                    cell = (f"**{best['offered_qps']:,.0f}** ({best['achieved_qps']:,.0f}; "
                            f"{l['p50']:.0f} / {l['p99']:.0f} / {l['p999']:.0f})")
                else:
                    cell = "none passed"
                print(f"| {env} (p99 ≤ {sla:.0f} µs) | {server} | {cores} | {cell} | {n} |")
    print()
    print("Sweeps: the highest offered rate carried (achieved ≥ 95 % of the schedule), then")
    print("each step as offered/s: p50 / p99 µs (`*`: not carried):")
    print()
    for (env, server, cores), r in sorted(runs.items()):
        sw = r.get("sweep")
        if not sw:
            continue
        ok = [s["offered_qps"] for s in sw["steps"] if carried(s)]
        pts = ", ".join(f"{s['offered_qps']:,.0f}: {s['latency_us']['p50']:,.0f} / "
                        f"{s['latency_us']['p99']:,.0f}{'' if carried(s) else '*'}"
                        for s in sw["steps"])
        print(f"- {env} {server} {cores}: carried up to {max(ok) if ok else 0:,.0f}/s; {pts}")


def svg(out, path, machines=None):
    machines = machines or {}
    runs = load(out)
    W, H, PW, PH, ML, MT = 1000, 450, 390, 320, 80, 50
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
             f'font-family="sans-serif" font-size="12">',
             f'<rect width="{W}" height="{H}" fill="white"/>']
    for pi, (env, title, sla) in enumerate(ENVS):
        curves = [(k, r["sweep"]) for k, r in runs.items() if k[0] == env and "sweep" in r]
        if not curves:
            continue
        xs = [s["offered_qps"] for _, sw in curves for s in sw["steps"]]
        ys = [max(1.0, s["latency_us"]["p99"]) for _, sw in curves for s in sw["steps"]] + [sla]
        x0 = 10 ** math.floor(math.log10(min(xs)))
        x1 = min(m * 10 ** e for e in range(0, 9) for m in (1, 2, 5) if m * 10 ** e >= max(xs) * 1.2)
        y0, y1 = 10 ** math.floor(math.log10(min(ys))), 10 ** math.ceil(math.log10(max(ys)))
        ox = ML + pi * (PW + 110)
        fx = lambda x: ox + PW * (math.log10(x) - math.log10(x0)) / (math.log10(x1) - math.log10(x0))
        fy = lambda y: MT + PH - PH * (math.log10(y) - math.log10(y0)) / (math.log10(y1) - math.log10(y0))
        parts.append(f'<text x="{ox + PW / 2}" y="{MT - 22}" text-anchor="middle" font-weight="bold">{title}</text>')
        if env in machines:
            parts.append(f'<text x="{ox + PW / 2}" y="{MT - 7}" text-anchor="middle">({machines[env]})</text>')
        parts.append(f'<rect x="{ox}" y="{MT}" width="{PW}" height="{PH}" fill="none" stroke="black"/>')
        d = x0
        while d <= x1 * 1.001:
            for m in range(1, 10):
                v = d * m
                if v > x1 * 1.001:
                    break
                X = fx(v)
                parts.append(f'<line x1="{X:.1f}" y1="{MT}" x2="{X:.1f}" y2="{MT + PH}" stroke="#ddd" stroke-width="{1 if m == 1 else 0.5}"/>')
                if m in (1, 2, 5):
                    lab = f"{v / 1000:g}k" if v >= 1000 else f"{v:g}"
                    parts.append(f'<text x="{X:.1f}" y="{MT + PH + 15}" text-anchor="middle">{lab}</text>')
            d *= 10
        d = y0
        while d <= y1 * 1.001:
            Y = fy(d)
            parts.append(f'<line x1="{ox}" y1="{Y:.1f}" x2="{ox + PW}" y2="{Y:.1f}" stroke="#ddd"/>')
            lab = f"{d / 1000:g} ms" if d >= 1000 else f"{d:g} µs"
            parts.append(f'<text x="{ox - 5}" y="{Y + 4:.1f}" text-anchor="end">{lab}</text>')
            d *= 10
        Y = fy(sla)
        parts.append(f'<line x1="{ox}" y1="{Y:.1f}" x2="{ox + PW}" y2="{Y:.1f}" stroke="black" stroke-dasharray="6,4"/>')
        parts.append(f'<text x="{ox + PW - 4}" y="{Y - 4:.1f}" text-anchor="end">SLA p99 {sla / 1000:g} ms</text>')
        parts.append(f'<text x="{ox + PW / 2}" y="{MT + PH + 35}" text-anchor="middle">offered load (requests/s, log)</text>')
        parts.append(f'<text transform="translate({ox - 62},{MT + PH / 2}) rotate(-90)" text-anchor="middle">p99 latency (log)</text>')
        legend = []
        for (e, server, cores), sw in sorted(curves, key=lambda c: (ORDER.index(c[0][1]), c[0][2])):
            color, label = STYLE.get((server, cores), ("gray", f"{server} {cores}"))
            dash = "" if cores == "1" else ' stroke-dasharray="5,3"'
            pts = [(fx(s["offered_qps"]), fy(max(1.0, s["latency_us"]["p99"])), carried(s)) for s in sw["steps"]]
            good = [p for p in pts if p[2]]
            if len(good) > 1:
                parts.append('<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>'
                             % (color, dash, " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in good)))
            for x, y, ok in pts:
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color if ok else "white"}" stroke="{color}"/>')
            legend.append((color, dash, label))
        if legend:
            parts.append(f'<rect x="{ox + 4}" y="{MT + 5}" width="250" height="{16 * len(legend) + 4}" fill="white" fill-opacity="0.85"/>')
        for i, (color, dash, label) in enumerate(legend):
            ly = MT + 15 + 16 * i
            parts.append(f'<line x1="{ox + 8}" y1="{ly}" x2="{ox + 30}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/>')
            parts.append(f'<text x="{ox + 35}" y="{ly + 4}">{label}</text>')
    parts.append(f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle" fill="#555">memcached, binary protocol, '
                 f'ETC workload, open loop (Poisson); hollow: the server answered fewer than 95 % of the scheduled requests per second</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    args, machines = sys.argv[1:], {}
    while len(args) >= 2 and args[0] == "--machine" and "=" in args[1]:
        env, text = args[1].split("=", 1)
        machines[env] = text
        args = args[2:]
    if len(args) >= 2 and args[0] == "--table":
        table(args[1:])
    elif len(args) >= 2:
        svg(args[:-1], args[-1], machines)
    else:
        sys.exit(__doc__)

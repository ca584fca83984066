#!/usr/bin/env python3
"""TCP echo benchmark: 64-byte round-trip latency (p50/p99/p99.9) and bulk
throughput with a checksum, against any TCP echo server.

    netbench.py HOST PORT [--rounds N] [--bulk MiB] [--conns N] [--seq N] [--parallel N]
                [--gap US] [--dump FILE]

Every round trip sends 64 bytes and waits for all 64 back (TCP_NODELAY).
The bulk test streams MiB of random data while a reader thread collects
the echo, then compares SHA-256 digests. --seq opens and closes N
connections one after another (each echoes 4 bytes); --conns opens N at
once. --gap waits that many microseconds (busy-waiting) between round
trips; --dump writes every round trip to FILE, one a line, in the order
they were measured: its latency in µs and its start (CLOCK_MONOTONIC, s:
`perf record -k mono` timestamps are on the same clock). Exit status 0 only if every echoed
byte matched.
"""
import argparse, hashlib, os, socket, sys, threading, time


def connect(host, port):
    s = socket.create_connection((host, port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s, n):
    got = bytearray()
    while len(got) < n:
        b = s.recv(n - len(got))
        if not b:
            raise EOFError("the server closed the connection")
        got.extend(b)
    return bytes(got)


def latency(host, port, rounds, gap_us=0, dump=None):
    s = connect(host, port)
    msg = b"x" * 64
    for _ in range(min(50, rounds)):  # warm up
        s.sendall(msg); recv_exact(s, 64)
    lat, starts = [], []
    for _ in range(rounds):
        if gap_us:
            until = time.perf_counter() + gap_us / 1e6
            while time.perf_counter() < until:
                pass
        t = time.perf_counter()
        s.sendall(msg)
        if recv_exact(s, 64) != msg:
            raise ValueError("echo mismatch")
        lat.append(time.perf_counter() - t)
        starts.append(t)
    s.close()
    if dump:
        with open(dump, "w") as f:
            f.writelines(f"{x * 1e6:.1f} {t:.6f}\n" for x, t in zip(lat, starts))
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e6
    return pick(0.5), pick(0.99), pick(0.999)


def bulk(host, port, mib):
    s = connect(host, port)
    total = mib << 20
    out, back = hashlib.sha256(), hashlib.sha256()
    got = [0]

    def reader():
        while got[0] < total:
            b = s.recv(1 << 16)
            if not b:
                break
            back.update(b)
            got[0] += len(b)

    th = threading.Thread(target=reader)
    t = time.perf_counter()
    th.start()
    chunk = os.urandom(1 << 16)
    sent = 0
    while sent < total:
        c = chunk[: min(len(chunk), total - sent)]
        out.update(c)
        s.sendall(c)
        sent += len(c)
    th.join()
    dt = time.perf_counter() - t
    s.close()
    return total / dt / 1e6, got[0] == total and out.digest() == back.digest()


def sequential(host, port, n):
    ok = 0
    for i in range(n):
        s = connect(host, port)
        m = i.to_bytes(4, "big")
        s.sendall(m)
        ok += recv_exact(s, 4) == m
        s.close()
    return ok


def concurrent(host, port, n):
    socks = [connect(host, port) for _ in range(n)]
    for i, s in enumerate(socks):
        s.sendall(i.to_bytes(4, "big") * 16)
    ok = sum(recv_exact(s, 64) == i.to_bytes(4, "big") * 16 for i, s in enumerate(socks))
    for s in socks:
        s.close()
    return ok


def parallel(host, port, n, rounds):
    """n clients in separate processes, each doing `rounds` 64-byte round
    trips on its own connection: aggregate round trips per second."""
    import multiprocessing as mp
    with mp.Pool(n) as pool:
        t = time.perf_counter()
        res = pool.starmap(latency, [(host, port, rounds)] * n)
        dt = time.perf_counter() - t
    return n * rounds / dt, max(r[0] for r in res), max(r[1] for r in res), max(r[2] for r in res)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host"); p.add_argument("port", type=int)
    p.add_argument("--rounds", type=int, default=2000)
    p.add_argument("--bulk", type=int, default=16, help="MiB (0: skip)")
    p.add_argument("--seq", type=int, default=0)
    p.add_argument("--conns", type=int, default=0)
    p.add_argument("--parallel", type=int, default=0, help="N clients at once (round trips/s)")
    p.add_argument("--gap", type=float, default=0, help="microseconds between round trips")
    p.add_argument("--dump", help="write each round trip's latency (us) to this file")
    a = p.parse_args()
    good = True
    if a.parallel:
        rate, p50, p99, p999 = parallel(a.host, a.port, a.parallel, a.rounds)
        print(f"{a.parallel} parallel clients: {rate:.0f} round trips/s; worst client p50 {p50:.0f} us, p99 {p99:.0f} us, p99.9 {p999:.0f} us")
    elif a.rounds:
        p50, p99, p999 = latency(a.host, a.port, a.rounds, a.gap, a.dump)
        print(f"latency 64 B round trip: p50 {p50:.0f} us, p99 {p99:.0f} us, p99.9 {p999:.0f} us ({a.rounds} rounds)")
    if a.bulk:
        mbs, ok = bulk(a.host, a.port, a.bulk)
        good &= ok
        print(f"bulk echo {a.bulk} MiB: {mbs:.2f} MB/s each way, checksum {'ok' if ok else 'MISMATCH'}")
    if a.seq:
        n = sequential(a.host, a.port, a.seq)
        good &= n == a.seq
        print(f"sequential connections: {n}/{a.seq} echoed")
    if a.conns:
        n = concurrent(a.host, a.port, a.conns)
        good &= n == a.conns
        print(f"concurrent connections: {n}/{a.conns} echoed")
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()

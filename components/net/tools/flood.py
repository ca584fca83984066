#!/usr/bin/env python3
"""Connection flood against a TCP echo server: how many mostly idle
connections it holds, and whether it keeps serving them.

    flood.py HOST PORT N [BYTES]

Opens N connections one after another and keeps open each one the server
admits (it must echo one byte); a connection reset or refused at once is
counted as refused, anything else (a time-out) as other. Prints progress
every 1,000, then checks the first and last open connections still echo,
and asks the echo example's counters (`ebbrt-echo:stats` over UDP). With
BYTES, sends that many bytes on every open connection at once and reads
them all back. The client's own descriptor limit bounds N (`ulimit -n`).
"""
import socket, sys, time


def open_all(host, port, n, admit, timeout):
    """Opens `n` connections one after another and keeps those `admit(s)`
    accepts (True); `admit` returns False for a refusal, raises OSError for
    anything else. A reset or refusal at connect time is a refusal too.
    Prints progress every 1,000; returns (open sockets, refused, {other
    error: count}). Also used by examples/memcached/tools/conns.py."""
    socks, refused, other = [], 0, {}
    t0 = time.time()
    for i in range(n):
        s = socket.socket()
        s.settimeout(timeout)
        try:
            s.connect((host, port))
            if admit(s):
                socks.append(s)
            else:
                refused += 1
                s.close()
        except (ConnectionRefusedError, ConnectionResetError):
            refused += 1
            s.close()
        except OSError as e:
            other[str(e)] = other.get(str(e), 0) + 1
            s.close()
        if (i + 1) % 1000 == 0:
            print(f"{i+1} tried: {len(socks)} open, {refused} refused, other {other}, "
                  f"{time.time()-t0:.0f}s", flush=True)
    print(f"done: {len(socks)} open, {refused} refused, other {other}, {time.time()-t0:.0f}s",
          flush=True)
    return socks, refused, other


def echoes_one_byte(s):
    s.sendall(b"x")
    if s.recv(1) != b"x":
        raise OSError("bad echo")
    return True


def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    socks, _, _ = open_all(host, port, n, echoes_one_byte, 10)
    ok = 0
    for s in socks[:1] + socks[-1:]:
        s.sendall(b"still")
        ok += s.recv(5) == b"still"
    print("first/last still echo:", ok, flush=True)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(5)
    u.sendto(b"ebbrt-echo:stats", (host, port))
    print(u.recv(2000).decode(), flush=True)
    if len(sys.argv) > 4:
        size, bad, t1 = int(sys.argv[4]), 0, time.time()
        for s in socks:
            s.sendall(bytes([7]) * size)
        for s in socks:
            got = 0
            while got < size:
                d = s.recv(size - got)
                if not d:
                    bad += 1
                    break
                got += len(d)
        print(f"traffic: {size} bytes on each of {len(socks)} connections, {bad} short, "
              f"{time.time()-t1:.1f}s", flush=True)
        u.sendto(b"ebbrt-echo:stats", (host, port))
        print(u.recv(2000).decode(), flush=True)


if __name__ == "__main__":
    main()

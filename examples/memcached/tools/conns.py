#!/usr/bin/env python3
"""Connection flood against a memcached server: how many mostly idle
connections it holds, and whether it keeps answering them.

    conns.py HOST PORT N

Opens N connections one after another; each sends `version` and keeps the
connection open if the server answers `VERSION ...`. A connection the
server refuses with memcached's `ERROR Too many open connections` (over
`-c`), or resets, is counted as refused; anything else (a time-out, ...)
as other. Prints progress every 1,000, then checks the first and last
open connections still answer a set and a get, and prints the server's
`curr_connections`, `rejected_connections` and `total_connections`. The
client's own descriptor limit bounds N (`ulimit -n`).
"""
import socket, sys, time


def request(s, data, end):
    s.sendall(data)
    got = b""
    while not got.endswith(end):
        d = s.recv(4096)
        if not d:
            break
        got += d
    return got


host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks, refused, other = [], 0, {}
t0 = time.time()
for i in range(n):
    s = socket.socket()
    s.settimeout(30)
    try:
        s.connect((host, port))
        got = request(s, b"version\r\n", b"\r\n")
        if got.startswith(b"VERSION "):
            socks.append(s)
        elif got.startswith(b"ERROR Too many open connections"):
            refused += 1
            s.close()
        else:
            raise OSError(f"unexpected reply {got[:40]!r}")
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
ok = 0
for k, s in enumerate(socks[:1] + socks[-1:]):
    key = f"flood{k}".encode()
    ok += request(s, b"set " + key + b" 0 0 5\r\nhello\r\n", b"\r\n") == b"STORED\r\n"
    want = b"VALUE " + key + b" 0 5\r\nhello\r\nEND\r\n"
    ok += request(s, b"get " + key + b"\r\n", b"END\r\n") == want
print("first/last still answer (of 4):", ok, flush=True)
if socks:
    stats = request(socks[0], b"stats\r\n", b"END\r\n").decode()
    for line in stats.splitlines():
        if line.split(" ")[1:2] in (["curr_connections"], ["rejected_connections"],
                                     ["total_connections"]):
            print(line, flush=True)

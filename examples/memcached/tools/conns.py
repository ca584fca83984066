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
import os, socket, sys

# The flood loop is the network tools' (components/net/tools/flood.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "../../../components/net/tools"))
from flood import open_all  # noqa: E402


def request(s, data, end):
    s.sendall(data)
    got = b""
    while not got.endswith(end):
        d = s.recv(4096)
        if not d:
            break
        got += d
    return got




def answers_version(s):
    """Admitted if the server answers `version`; refused with memcached's
    over-limit error."""
    got = request(s, b"version\r\n", b"\r\n")
    if got.startswith(b"VERSION "):
        return True
    if got.startswith(b"ERROR Too many open connections"):
        return False
    raise OSError(f"unexpected reply {got[:40]!r}")


host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks, refused, other = open_all(host, port, n, answers_version, 30)
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

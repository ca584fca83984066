#!/usr/bin/env bash
# In-QEMU checks of the native network, from the host side of a tap in a
# network namespace that `cargo ebbrt run --net tap` creates and deletes:
# ARP and ping, a 64 MiB TCP echo with a checksum, 1,000 sequential and 100
# concurrent connections, then malformed frames (truncated headers, bad
# checksums, oversized frames, garbage) sent at the guest, after which the
# guest must still answer ping and echo. Needs root (network namespaces).
#
#   components/net/tools/qemu-net-check.sh [--queues N] [--release]
set -euo pipefail
cd "$(dirname "$0")/../../.."
queues=1 profile=""
while [ $# -gt 0 ]; do
  case $1 in
    --queues) queues=$2; shift 2 ;;
    --release) profile=--release; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
log=$(mktemp)
cargo ebbrt run echo $profile --net tap --queues "$queues" --cores 2 --timeout 600 >"$log" 2>&1 &
tool=$!
ns=""
# Stop QEMU (the namespace's processes): the tool then exits by itself and
# deletes the namespace; killing the tool would leave it behind.
stop() {
  if [ -n "$ns" ]; then for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done; fi
  wait $tool 2>/dev/null || true
  rm -f "$log"
}
trap stop EXIT
for _ in $(seq 1 300); do grep -q "listening on" "$log" && break; sleep 1; done
grep -q "listening on" "$log" || { cat "$log"; echo "FAIL: the guest did not come up"; exit 1; }
ns=$(sed -n 's/.*network namespace \(ebbrt-net-[0-9]*\).*/\1/p' "$log" | head -1)
guest=10.79.0.2
in_ns() { ip netns exec "$ns" "$@"; }
passes=0 fails=0
check() { if "$@"; then echo "ok: $*"; passes=$((passes + 1)); else echo "FAILED: $*"; fails=$((fails + 1)); fi; }
check in_ns ping -c 3 -i 0.2 -W 2 $guest
check in_ns sh -c "ip neigh show $guest | grep -q lladdr"
check in_ns python3 components/net/tools/netbench.py $guest 7777 --rounds 500 --bulk 64 --seq 1000 --conns 100
check in_ns python3 - <<'PY'
import socket, struct, os
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("tap0", 0))
mac_dst = bytes.fromhex("525400123456")
mac_src = s.getsockname()[4][:6]
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return (~t) & 0xffff
def ip(proto, payload, src=bytes([10,79,0,1]), dst=bytes([10,79,0,2]), bad=False):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0, src, dst)
    c = csum(h) ^ (0xffff if bad else 0)
    return h[:10] + struct.pack("!H", c) + h[12:] + payload
eth = lambda p, t=0x0800: mac_dst + mac_src + struct.pack("!H", t) + p
icmp = b"\x08\x00\x00\x00\x00\x01\x00\x01" + b"x" * 32
frames = [
    eth(b"")[:10],                                   # truncated Ethernet
    eth(ip(1, icmp))[:25],                           # truncated IPv4 header
    eth(ip(1, icmp, bad=True)),                      # bad IP checksum
    eth(ip(1, icmp)),                                # bad ICMP checksum (zero)
    eth(ip(6, b"\x00" * 8)),                         # truncated TCP header
    eth(ip(6, b"\x1e\x61\x1e\x61" + b"\0" * 8 + b"\x50\x02\xff\xff\x12\x34\0\0")),  # bad TCP checksum
    eth(ip(17, b"\x00\x44\x1e\x61\x00\x0c\x12\x34abcd")),  # bad UDP checksum
    eth(b"\x45" + b"\0" * 1600),                     # oversized
    eth(b"\x65" + b"\0" * 40),                       # not IPv4
    eth(b"\x00\x01\x08\x00\x06\x04", 0x0806),        # truncated ARP
] + [os.urandom(n) for n in range(0, 200, 3)]
for f in frames * 20:
    try:
        s.send(f)
    except OSError:
        pass  # the kernel refuses some (too short for a tap)
PY
check in_ns ping -c 3 -i 0.2 -W 2 $guest
check in_ns python3 components/net/tools/netbench.py $guest 7777 --rounds 200 --bulk 4
echo "$passes passed, $fails failed"
[ $fails -eq 0 ]

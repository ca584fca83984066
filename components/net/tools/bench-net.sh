#!/usr/bin/env bash
# The network benchmarks of docs/benchmarks.md (issue 5): a TCP echo server
# measured with netbench.py (64-byte round trips, a 64 MiB bulk echo, four
# parallel clients), TRIALS times per configuration:
#   native-tap-1q   native echo, tap in a netns, one queue pair (2 cores)
#   native-tap-2q   native echo, tap, two queue pairs (one stack per core)
#   native-user     native echo, QEMU user networking (127.0.0.1 forward)
#   native-tap-1q-irq, native-tap-2q-irq: the same, interrupts only
#                   (virtio.poll=never: the driver never polls)
#   native-tap-1q-idlepoll, native-tap-2q-idlepoll: the same as 1q/2q with
#                   the facade's `idle-poll` idle policy (cores never halt)
#   linux-vm        Debian's kernel in the same QEMU, same NIC, netns tap
#                   (../shared/tools/linux-vm-memcached; socat echo)
#   hosted          the same echo source as a Linux process, loopback
# Needs root for the namespaces. Usage: bench-net.sh [CONFIG...]
set -uo pipefail
cd "$(dirname "$0")/../../.."
TRIALS=${TRIALS:-3}
bench=components/net/tools/netbench.py
configs=${*:-native-tap-1q native-tap-2q native-tap-1q-irq native-tap-2q-irq native-tap-1q-idlepoll native-tap-2q-idlepoll native-user linux-vm hosted}

trials() { # run netbench TRIALS times against $@ (a command prefix + host port)
  for t in $(seq 1 "$TRIALS"); do
    "$@" --rounds 5000 --bulk 64
    "$@" --rounds 1000 --parallel 4 --bulk 0
  done
}

kill_qemu_below() { # kill the QEMU processes descended from pid $1
  local kids; kids=$(pgrep -P "$1")
  for k in $kids; do
    case $(ps -o comm= -p "$k") in qemu-system-x86*) kill "$k" ;; *) kill_qemu_below "$k" ;; esac
  done
}

native() { # native QUEUES NET [BOOT ARGS] [CARGO FEATURES]
  local log; log=$(mktemp)
  local q=$1 net=$2 extra=()
  [ "$net" = tap ] && extra=(--queues "$q")
  [ -n "${3:-}" ] && extra+=(--append "$3")
  [ -n "${4:-}" ] && extra+=(--features "$4")
  cargo ebbrt run echo --release --net "$net" "${extra[@]}" --cores 2 --timeout 900 >"$log" 2>&1 &
  local tool=$!
  for _ in $(seq 1 300); do grep -q "listening on" "$log" && break; sleep 1; done
  if [ "$net" = tap ]; then
    local ns; ns=$(sed -n 's/.*network namespace \(ebbrt-net-[0-9]*\).*/\1/p' "$log" | head -1)
    trials ip netns exec "$ns" python3 $bench 10.79.0.2 7777
    for p in $(ip netns pids "$ns"); do kill "$p"; done
  else
    trials python3 $bench 127.0.0.1 7777
    # Only this run's QEMU: the descendant of the tool started above.
    kill_qemu_below "$tool"
  fi
  wait "$tool"; rm -f "$log"
}

for c in $configs; do
  echo "== $c"
  case $c in
    native-tap-1q) native 1 tap ;;
    native-tap-2q) native 2 tap ;;
    native-user) native 1 user ;;
    native-tap-1q-irq) native 1 tap virtio.poll=never ;;
    native-tap-2q-irq) native 2 tap virtio.poll=never ;;
    native-tap-1q-idlepoll) native 1 tap "" ebbrt/idle-poll ;;
    native-tap-2q-idlepoll) native 2 tap "" ebbrt/idle-poll ;;
    linux-vm)
      export NETNS=ebbrt-bench-linux WORK=${TMPDIR:-/tmp}/ebbrt-bench-linuxvm
      ../shared/tools/linux-vm-memcached start --smp 2 >/dev/null
      sleep 3
      trials ip netns exec "$NETNS" python3 $bench 10.77.0.2 7
      ../shared/tools/linux-vm-memcached stop ;;
    hosted)
      cargo build -q --release -p echo
      target=${CARGO_TARGET_DIR:-target}
      "$target/release/echo" --cores 2 --port 7790 >/dev/null 2>&1 &
      pid=$!; sleep 1
      trials python3 $bench 127.0.0.1 7790
      kill $pid ;;
  esac
done

#!/usr/bin/env bash
# The media paths side by side (docs/PERFORMANCE.md, "Media paths: io_uring, AF_XDP, XDP"):
# the same fixed-rate load relayed by one appliance core through, in turn, the io_uring
# workers, the AF_XDP workers (backend = "af_xdp") and the XDP fast path (fast_path = "xdp"),
# plus the SRTP->RTP bridge through io_uring and through AF_XDP.
#
# Topology: namespace `peers` (portcullis-loadtest, UAC 192.0.2.1 and UAS 192.0.2.3, pinned
# to core 0) and namespace `sbc` (the appliance on 192.0.2.2, pinned to core 1), joined by
# veth pairs to a bridge in namespace `lan`. The appliance's veth runs its NAPI in a kernel
# thread (threaded NAPI), pinned to core 1 too, so its receive path (the XDP program, the UDP
# stack) is accounted to a thread we can read. The generator, the appliance and that thread run
# SCHED_FIFO 10 (`chrt`), so other users' processes on a shared machine do not stall them.
#
# CPU per relayed packet = (utime + stime of the data plane worker thread + the appliance
# veth's NAPI thread + ksoftirqd/1) over a window of steady media, divided by the packets
# relayed in that window (the worker's tx counter plus the program's tx/redirect verdicts,
# both read from /metrics). Times are tick-sampled (/proc/<pid>/task/<tid>/stat); a softirq
# that runs in one of those threads' context is charged to it.
#
# Usage (root):  benches/netns/media-paths.sh [BIN_DIR]
#   BIN_DIR holds portcullis and portcullis-loadtest (default target/release).
# Environment (defaults in brackets): CALLS [500] (100 packets/s relayed per call at 20 ms),
#   WINDOW [10] (seconds measured), MODES ["uring afxdp xdp uring-srtp afxdp-srtp"],
#   ROUNDS [3] (the modes alternate round by round; the summary gives each mode's median).
# Every run is bounded (loadtest --duration, --max-calls); namespaces and processes are removed
# on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN_DIR=$(cd "${1:-$ROOT/target/release}" && pwd)
APP_BIN=$BIN_DIR/portcullis
LT_BIN=$BIN_DIR/portcullis-loadtest
CALLS=${CALLS:-500}
WINDOW=${WINDOW:-10}
MODES=${MODES:-"uring afxdp xdp uring-srtp afxdp-srtp"}
ROUNDS=${ROUNDS:-3}

for tool in ip ethtool clang taskset chrt curl python3 "$APP_BIN" "$LT_BIN"; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "root needed (network namespaces, XDP)" >&2; exit 1; }

TAG=pmp$$
# shellcheck source=benches/netns/topology.sh
source "$ROOT/benches/netns/topology.sh"

# utime + stime (ticks) of task $2 of process $1.
task_ticks() {
  awk '{ print $14 + $15 }' "/proc/$1/task/$2/stat" 2>/dev/null || echo 0
}

# Ticks of the measured threads: the worker, mpa0's NAPI thread(s), ksoftirqd/1.
measured_ticks() { # $1 appliance pid
  local total=0 tid pid
  for tid in $(ls "/proc/$1/task"); do
    if grep -q '^dp-worker' "/proc/$1/task/$tid/comm" 2>/dev/null; then
      total=$((total + $(task_ticks "$1" "$tid")))
    fi
  done
  for pid in $(pgrep '^napi/mpa0-' || true) $(pgrep -x ksoftirqd/1 || true); do
    total=$((total + $(task_ticks "$pid" "$pid")))
  done
  echo "$total"
}

# Packets relayed so far: the workers' sends and the XDP program's forwards.
relayed() {
  ip netns exec "$SBC" curl -s http://127.0.0.1:9100/metrics | awk '
    /^portcullis_dataplane_packets_total\{.*direction="tx"/ { n += $NF }
    /^portcullis_fastpath_program_packets_total\{verdict="(tx|redirect)"\}/ { n += $NF }
    END { printf "%d\n", n }'
}

HZ=$(getconf CLK_TCK)
printf '%-12s %6s %10s %10s %12s %10s %8s\n' mode round calls pkt/s "cpu µs/pkt" loss% srtp_err
for round in $(seq "$ROUNDS"); do
for mode in $MODES; do
  case $mode in
    uring) cfg=$(config io_uring off rtp); srtp=none ;;
    afxdp) cfg=$(config af_xdp off rtp); srtp=none ;;
    xdp) cfg=$(config io_uring xdp rtp); srtp=none ;;
    uring-srtp) cfg=$(config io_uring off srtp); srtp=caller ;;
    afxdp-srtp) cfg=$(config af_xdp off srtp); srtp=caller ;;
    *) echo "unknown mode $mode" >&2; exit 1 ;;
  esac
  echo "$cfg" >"$WORK/$mode.toml"
  ip netns exec "$SBC" chrt -f 10 taskset -c 1 "$APP_BIN" run --config "$WORK/$mode.toml" \
    >"$WORK/$mode.log" 2>&1 &
  app=$!
  for _ in $(seq 100); do grep -qs 'portcullis ready' "$WORK/$mode.log" && break; sleep 0.1; done
  grep -q 'portcullis ready' "$WORK/$mode.log" || { cat "$WORK/$mode.log" >&2; exit 1; }
  for pid in $(pgrep '^napi/mpa0-' || true); do
    taskset -pc 1 "$pid" >/dev/null
    chrt -p -f 10 "$pid"
  done
  hold=$((WINDOW + 12))
  ip netns exec "$PEERS" chrt -f 10 taskset -c 0 "$LT_BIN" --target "$APP:5060" --uac "$UAC:5070" \
    --uas "$UAS:5080" --calls "$CALLS" --max-calls "$CALLS" --cps 200 --hold "$hold" \
    --duration "$((hold + 8))" --ptime 20 --cores 0 --srtp "$srtp" --quiet \
    --report "$WORK/$mode.json" >"$WORK/$mode.lt.log" 2>&1 &
  lt=$!
  # Ramp (CALLS / 200 s) and promotion settle, then the window.
  sleep $((CALLS / 200 + 6))
  t0=$(measured_ticks "$app"); p0=$(relayed)
  sleep "$WINDOW"
  t1=$(measured_ticks "$app"); p1=$(relayed)
  wait "$lt" || { cat "$WORK/$mode.lt.log" >&2; exit 1; }
  # Interface counters and the appliance's metrics, kept beside the reports (KEEP=1).
  { ip -n "$SBC" -s -s link show mpa0; ip -n "$LAN" -s -s link show l1
    ip netns exec "$SBC" ethtool -S mpa0 || true
    ip netns exec "$SBC" curl -s http://127.0.0.1:9100/metrics; } >"$WORK/$mode.stats" 2>&1
  kill -TERM "$app"; wait "$app" || true
  python3 - "$WORK/$mode.json" "$mode" "$CALLS" "$((t1 - t0))" "$((p1 - p0))" "$HZ" "$WINDOW" \
    "$round" <<'PY' | tee -a "$WORK/results.txt"
import json, sys
r = json.load(open(sys.argv[1]))
mode, calls, ticks, pkts, hz, window = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
m = r["media"]
loss = 100.0 * m["lost"] / max(m["sent"], 1)
cpu_us = ticks * 1e6 / hz / max(pkts, 1)
print(f"{mode:<12} {sys.argv[8]:>6} {calls:>10} {pkts / window:>10.0f} {cpu_us:>12.2f} {loss:>10.3f} {r['srtp_errors']:>8}")
PY
done
done
echo "median cpu µs/pkt per mode over $ROUNDS round(s), and its ratio to io_uring's (same media):"
python3 - "$WORK/results.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault(r[0], []).append(float(r[4]))
for mode, v in by.items():
    ref = by.get("uring-srtp" if mode.endswith("-srtp") else "uring")
    med = statistics.median(v)
    ratio = f"{med / statistics.median(ref):.2f}" if ref else "-"
    print(f"{mode:<12} {med:8.2f}  {ratio}")
PY

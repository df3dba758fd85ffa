#!/usr/bin/env bash
# The media paths side by side (docs/PERFORMANCE.md, "Media paths: io_uring, AF_XDP, XDP"):
# the same fixed-rate load relayed by one appliance core through, in turn, the io_uring
# workers, the AF_XDP workers (backend = "af_xdp") and the XDP fast path (fast_path = "xdp"),
# plus the SRTP->RTP bridge through io_uring and through AF_XDP; and, driven over ng instead
# of SIP (portcullis-loadtest --against ... --relay-addr), rtpengine's userspace relay
# (--num-threads=1, no kernel module: --table=-1) and the Portcullis media node
# (`portcullis media-node`, io_uring workers) in the appliance's place.
#
# Topology: namespace `peers` (portcullis-loadtest, UAC 192.0.2.1 and UAS 192.0.2.3, pinned
# to core 0) and namespace `sbc` (the appliance on 192.0.2.2, pinned to core 1), joined by
# veth pairs through namespace `lan`: an XDP cable by default, a bridge with WIRE=bridge (see
# topology.sh; rtpengine and the media node run where the appliance does, on the same address
# and core). The appliance's veth runs its NAPI in a kernel
# thread (threaded NAPI), pinned to core 1 too, so its receive path (the XDP program, the UDP
# stack) is accounted to a thread we can read. The generator, the appliance and that thread run
# SCHED_FIFO 10 (`chrt`), so other users' processes on a shared machine do not stall them.
#
# CPU per relayed packet = (utime + stime of the data plane worker thread + the appliance
# veth's NAPI thread + ksoftirqd/1) over a window of steady media, divided by the packets
# relayed in that window (the worker's tx counter plus the program's tx/redirect verdicts,
# both read from /metrics). The ng relays (modes rtpengine, portcullis-ng) count every
# thread of the process instead of the worker alone (rtpengine's relay work is not in one
# thread of its own; the media node is counted the same way so the two compare), plus the
# same NAPI thread and ksoftirqd/1; their relayed packets come from their own counters:
# rtpengine's `relayedpackets_user` (ng `statistics`, totalstatistics) and the media node's
# /metrics as above. Times are the scheduler's run time of each thread
# (/proc/<pid>/task/<tid>/stat); a softirq that runs in one of those threads' context is
# charged to it. For the modes with an XDP program on mpa0, the program's own run time per
# packet (bpf_stats, enabled over the window only) is printed too.
#
# Usage (root):  benches/netns/media-paths.sh [BIN_DIR]
#   BIN_DIR holds portcullis and portcullis-loadtest (default target/release); rtpengine is
#   Debian's (rtpengine-daemon), from PATH.
# Environment (defaults in brackets): WIRE [xdp] (or bridge: topology.sh),
#   CALLS [500] (100 packets/s relayed per call at 20 ms), WINDOW [10] (seconds measured),
#   MODES ["uring afxdp xdp uring-srtp afxdp-srtp rtpengine portcullis-ng"],
#   ROUNDS [3] (the modes alternate round by round; the summary gives each mode's median and
#   its ratios to the io_uring path carrying the same media and to rtpengine).
# Every run is bounded (loadtest --duration, --max-calls); namespaces and processes are removed
# on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN_DIR=$(cd "${1:-$ROOT/target/release}" && pwd)
APP_BIN=$BIN_DIR/portcullis
LT_BIN=$BIN_DIR/portcullis-loadtest
CALLS=${CALLS:-500}
WINDOW=${WINDOW:-10}
MODES=${MODES:-"uring afxdp xdp uring-srtp afxdp-srtp rtpengine portcullis-ng"}
ROUNDS=${ROUNDS:-3}

tools=(ip ethtool clang bpftool sysctl taskset chrt curl python3 "$APP_BIN" "$LT_BIN")
case " $MODES " in *" rtpengine "*) tools+=(rtpengine) ;; esac
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "root needed (network namespaces, XDP)" >&2; exit 1; }

TAG=pmp$$
# shellcheck source=benches/netns/topology.sh
source "$ROOT/benches/netns/topology.sh"
NG=$APP:2223

# The media node driven over ng (mode portcullis-ng): io_uring workers on core 1, as `uring`.
node_config() {
  cat <<EOF
[node]
name = "media-paths-ng"

[media]
bind_ip = "$APP"
advertised_ip = "$APP"
port_min = 20000
port_max = 29999
cores = [1]
inactivity_timeout = "1h"

[admin]
listen = "127.0.0.1:9100"

[ng]
listen = "$NG"
max_sessions = $((CALLS + 100))
timeout = "1h"
EOF
}

# Sends ng command $1 to the relay from inside `sbc`; prints the raw reply.
ng() {
  ip netns exec "$SBC" python3 - "$NG" "$1" <<'PY'
import os, socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
cmd = sys.argv[2].encode()
# rtpengine answers a cookie it has seen with the cached reply: one cookie per request.
cookie = b"mp%d-%d" % (os.getpid(), time.time_ns())
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
for _ in range(5):
    s.sendto(b"%s d7:command%d:%se" % (cookie, len(cmd), cmd), (host, int(port)))
    try:
        print(s.recv(65536).decode(errors="replace"))
        break
    except socket.timeout:
        pass
PY
}

# utime + stime (ticks) of task $2 of process $1.
task_ticks() {
  awk '{ print $14 + $15 }' "/proc/$1/task/$2/stat" 2>/dev/null || echo 0
}

# Ticks of the measured threads: the worker (every thread of an ng relay), mpa0's NAPI
# thread(s), ksoftirqd/1.
measured_ticks() { # $1 relay pid, $2 pattern of the counted threads' names
  local total=0 task tid pid
  for task in "/proc/$1/task"/*; do
    tid=${task##*/}
    if grep -q "$2" "$task/comm" 2>/dev/null; then
      total=$((total + $(task_ticks "$1" "$tid")))
    fi
  done
  for pid in $(pgrep '^napi/mpa0-' || true) $(pgrep -x ksoftirqd/1 || true); do
    total=$((total + $(task_ticks "$pid" "$pid")))
  done
  echo "$total"
}

# Packets relayed so far: the workers' sends and the XDP program's forwards; for rtpengine,
# its own count of the packets it relayed in userspace.
relayed() { # $1 relay kind
  if [ "$1" = rtpengine ]; then
    ng statistics | python3 -c 'import re, sys
print(re.search(r"19:relayedpackets_useri(\d+)e", sys.stdin.read()).group(1))'
    return
  fi
  ip netns exec "$SBC" curl -s http://127.0.0.1:9100/metrics | awk '
    /^portcullis_dataplane_packets_total\{.*direction="tx"/ { n += $NF }
    /^portcullis_fastpath_program_packets_total\{verdict="(tx|redirect)"\}/ { n += $NF }
    END { printf "%d\n", n }'
}

# Run time and runs of the XDP program on mpa0 (bpf_stats; "0 0" without one): "ns count".
prog_stats() {
  local id
  id=$(ip -n "$SBC" -j -d link show mpa0 | python3 -c 'import json, sys
x = json.load(sys.stdin)[0].get("xdp", {}).get("prog", {})
print(x.get("id", ""))')
  if [ -z "$id" ]; then echo "0 0"; return; fi
  bpftool -j prog show id "$id" | python3 -c 'import json, sys
p = json.load(sys.stdin)
print(p.get("run_time_ns", 0), p.get("run_cnt", 0))'
}

HZ=$(getconf CLK_TCK)
STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled)
trap 'sysctl -qw kernel.bpf_stats_enabled="$STATS_WAS"; cleanup' EXIT
printf '%-13s %6s %10s %10s %12s %10s %8s %8s\n' mode round calls pkt/s "cpu µs/pkt" loss% srtp_err \
  "prog ns"
for round in $(seq "$ROUNDS"); do
for mode in $MODES; do
  # relay: what runs in `sbc` (the appliance, the media node, rtpengine); threads: the names
  # of its counted threads; drive: how the loadtest sets calls up (SIP or ng).
  relay=appliance threads='^dp-worker' drive=(--target "$APP:5060")
  case $mode in
    uring) cfg=$(config io_uring off rtp); srtp=none ;;
    afxdp) cfg=$(config af_xdp off rtp); srtp=none ;;
    xdp) cfg=$(config io_uring xdp rtp); srtp=none ;;
    uring-srtp) cfg=$(config io_uring off srtp); srtp=caller ;;
    afxdp-srtp) cfg=$(config af_xdp off srtp); srtp=caller ;;
    rtpengine) relay=rtpengine threads=. drive=(--against rtpengine --relay-addr "$NG"); srtp=none ;;
    portcullis-ng)
      cfg=$(node_config); srtp=none
      relay=node threads=. drive=(--against portcullis-ng --relay-addr "$NG") ;;
    *) echo "unknown mode $mode" >&2; exit 1 ;;
  esac
  case $relay in
    appliance | node)
      echo "$cfg" >"$WORK/$mode.toml"
      cmd=(run); [ "$relay" = node ] && cmd=(media-node)
      ip netns exec "$SBC" chrt -f 10 taskset -c 1 "$APP_BIN" "${cmd[@]}" \
        --config "$WORK/$mode.toml" >"$WORK/$mode.log" 2>&1 &
      app=$!
      ready() { grep -Eqs 'portcullis (media node )?ready' "$WORK/$mode.log"; } ;;
    rtpengine)
      ip netns exec "$SBC" chrt -f 10 taskset -c 1 rtpengine --interface="$APP" --listen-ng="$NG" \
        --foreground --log-stderr --log-level=4 --num-threads=1 --table=-1 \
        --port-min=20000 --port-max=29999 >"$WORK/$mode.log" 2>&1 &
      app=$!
      ready() { ng ping | grep -q pong; } ;;
  esac
  for _ in $(seq 100); do ready && break; sleep 0.1; done
  ready || { cat "$WORK/$mode.log" >&2; exit 1; }
  for pid in $(pgrep '^napi/mpa0-' || true); do
    taskset -pc 1 "$pid" >/dev/null
    chrt -p -f 10 "$pid"
  done
  hold=$((WINDOW + 12))
  ip netns exec "$PEERS" chrt -f 10 taskset -c 0 "$LT_BIN" "${drive[@]}" --uac "$UAC:5070" \
    --uas "$UAS:5080" --calls "$CALLS" --max-calls "$CALLS" --cps 200 --hold "$hold" \
    --duration "$((hold + 8))" --ptime 20 --cores 0 --srtp "$srtp" --quiet \
    --report "$WORK/$mode.json" >"$WORK/$mode.lt.log" 2>&1 &
  lt=$!
  # Ramp (CALLS / 200 s) and promotion settle, then the window.
  sleep $((CALLS / 200 + 6))
  # pkt/s over the time between the two counter reads (an ng read takes longer than curl).
  # bpf_stats (two clock reads per program run) only over the window.
  sysctl -qw kernel.bpf_stats_enabled=1
  read -r b0 n0 < <(prog_stats)
  t0=$(measured_ticks "$app" "$threads"); p0=$(relayed "$relay")
  w0=$(date +%s%N)
  sleep "$WINDOW"
  t1=$(measured_ticks "$app" "$threads"); p1=$(relayed "$relay")
  w1=$(date +%s%N)
  read -r b1 n1 < <(prog_stats)
  sysctl -qw kernel.bpf_stats_enabled="$STATS_WAS"
  prog_ns=-; [ "$n1" -gt "$n0" ] && prog_ns=$(((b1 - b0) / (n1 - n0)))
  wait "$lt" || { cat "$WORK/$mode.lt.log" >&2; exit 1; }
  # Interface counters and the relay's metrics, kept beside the reports (KEEP=1).
  { ip -n "$SBC" -s -s link show mpa0; ip -n "$LAN" -s -s link show l1
    ip netns exec "$SBC" ethtool -S mpa0 || true
    if [ "$relay" = rtpengine ]; then ng statistics
    else ip netns exec "$SBC" curl -s http://127.0.0.1:9100/metrics; fi; } >"$WORK/$mode.stats" 2>&1
  kill -TERM "$app"; wait "$app" || true
  python3 - "$WORK/$mode.json" "$mode" "$CALLS" "$((t1 - t0))" "$((p1 - p0))" "$HZ" \
    "$(((w1 - w0) / 1000000))" \
    "$round" "$prog_ns" <<'PY' | tee -a "$WORK/results.txt"
import json, sys
r = json.load(open(sys.argv[1]))
mode, calls, ticks, pkts, hz, window = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]) / 1000
m = r["media"]
loss = 100.0 * m["lost"] / max(m["sent"], 1)
cpu_us = ticks * 1e6 / hz / max(pkts, 1)
print(f"{mode:<13} {sys.argv[8]:>6} {calls:>10} {pkts / window:>10.0f} {cpu_us:>12.2f} {loss:>10.3f} {r['srtp_errors']:>8} {sys.argv[9]:>8}")
PY
done
done
echo "median cpu µs/pkt per mode over $ROUNDS round(s), its ratio to io_uring's (same media)"
echo "and to rtpengine's (plain RTP; rtpengine bridges no SRTP here):"
python3 - "$WORK/results.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
by, prog = {}, {}
for r in rows:
    by.setdefault(r[0], []).append(float(r[4]))
    if r[7] != "-":
        prog.setdefault(r[0], []).append(float(r[7]))
def ratio(med, ref):
    return f"{med / statistics.median(ref):.2f}" if ref and statistics.median(ref) > 0 else "-"
print(f"{'mode':<13} {'median':>8} {'÷ io_uring':>10} {'÷ rtpengine':>11}")
for mode, v in by.items():
    srtp = mode.endswith("-srtp")
    med = statistics.median(v)
    ref = by.get("uring-srtp" if srtp else "uring")
    rtpe = None if srtp else by.get("rtpengine")
    print(f"{mode:<13} {med:8.2f} {ratio(med, ref):>10} {ratio(med, rtpe):>11}")
for mode, v in prog.items():
    print(f"{mode}: the XDP program on mpa0 runs {statistics.median(v):.0f} ns per packet (bpf_stats, median)")
PY

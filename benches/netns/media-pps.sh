#!/usr/bin/env bash
# Packets per second one appliance core relays without loss, io_uring workers against the XDP
# fast path (docs/PERFORMANCE.md, "Media paths: io_uring, AF_XDP, XDP").
#
# Topology: topology.sh (namespace `peers` with the generator, `sbc` with the appliance pinned
# to core 1, an XDP cable between, or a bridge with WIRE=bridge). The generator is portcullis-loadtest's AF_XDP mode
# (`--generator af_xdp --ifname p0`, pinned to core 0): it builds the frames itself and sends
# and receives them through an AF_XDP socket on p0, whose NAPI runs threaded on core 0 too,
# so nothing of the generator's receive path lands on the appliance's core.
#
# A step is CALLS calls (2 × CALLS streams) at one ptime: 2 × CALLS × 1000 / ptime packets/s
# into the appliance, held HOLD seconds after the ramp, the appliance started afresh. A step
# passes when no call fails, the loss (lost / sent, the whole run) is below LOSS percent and
# the generator sent at least 97 % of the packets due (else it, not the appliance, was the
# limit, and the step is marked `gen`). The rate steps up through PTIMES until a step fails;
# a mode's figure in a round is its last passing rate. The modes alternate round by round (the
# first mode of a round is the last of the one before); the summary gives each mode's median
# and the ratio XDP ÷ io_uring.
#
# Usage (root):  benches/netns/media-pps.sh [BIN_DIR]
#   BIN_DIR holds portcullis and portcullis-loadtest (default target/release).
# Environment (defaults in brackets): CALLS [1000], PTIMES ["20 10 5 4 3 2 1"] (ms, in rising
#   rate order), HOLD [10] (s), LOSS [0.01] (%), MODES ["uring xdp"], ROUNDS [3].
# Every run is bounded (loadtest --duration, --max-calls); namespaces and processes are removed
# on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN_DIR=$(cd "${1:-$ROOT/target/release}" && pwd)
APP_BIN=$BIN_DIR/portcullis
LT_BIN=$BIN_DIR/portcullis-loadtest
CALLS=${CALLS:-1000}
PTIMES=${PTIMES:-"20 10 5 4 3 2 1"}
HOLD=${HOLD:-10}
LOSS=${LOSS:-0.01}
MODES=${MODES:-"uring xdp"}
ROUNDS=${ROUNDS:-3}
CPS=500

for tool in ip ethtool clang taskset chrt python3 "$APP_BIN" "$LT_BIN"; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "root needed (network namespaces, XDP, AF_XDP)" >&2; exit 1; }

TAG=pps$$
# shellcheck source=benches/netns/topology.sh
source "$ROOT/benches/netns/topology.sh"
# The generator's veth (GRO on, from topology.sh): its NAPI in a thread, so its receive path
# (the generator's XDP program, the copy into the AF_XDP socket) can be pinned to the
# generator's core.
ip netns exec "$PEERS" sh -c 'echo 1 > /sys/class/net/p0/threaded'

# Pins the NAPI threads named $1 to core $2, SCHED_FIFO 10.
pin_napi() {
  local pid
  for pid in $(pgrep "^napi/$1-" || true); do
    taskset -pc "$2" "$pid" >/dev/null
    chrt -p -f 10 "$pid"
  done
}

# One step: mode $1, ptime $2, round $3; prints the result line.
step() {
  local mode=$1 ptime=$2 round=$3 fast name app lt ramp hold
  case $mode in
    uring) fast=off ;;
    xdp) fast=xdp ;;
    *) echo "unknown mode $mode" >&2; exit 1 ;;
  esac
  name=$mode-$ptime-$round
  config io_uring "$fast" rtp >"$WORK/$name.toml"
  ip netns exec "$SBC" chrt -f 10 taskset -c 1 "$APP_BIN" run --config "$WORK/$name.toml" \
    >"$WORK/$name.log" 2>&1 &
  app=$!
  for _ in $(seq 100); do grep -qs 'portcullis ready' "$WORK/$name.log" && break; sleep 0.1; done
  grep -q 'portcullis ready' "$WORK/$name.log" || { cat "$WORK/$name.log" >&2; exit 1; }
  pin_napi mpa0 1
  ramp=$(( (CALLS + CPS - 1) / CPS + 1 ))
  hold=$((HOLD + ramp))
  ip netns exec "$PEERS" chrt -f 10 taskset -c 0 "$LT_BIN" --target "$APP:5060" \
    --uac "$UAC:5070" --uas "$UAS:5080" --generator af_xdp --ifname p0 --calls "$CALLS" \
    --max-calls "$CALLS" --cps "$CPS" --hold "$hold" --duration "$((hold + 3))" \
    --ptime "$ptime" --cores 0 --quiet --report "$WORK/$name.json" >"$WORK/$name.lt.log" 2>&1 &
  lt=$!
  sleep 1
  pin_napi p0 0
  local rc=0
  wait "$lt" || rc=$?
  kill -TERM "$app"; wait "$app" || true
  if [ ! -s "$WORK/$name.json" ]; then
    echo "loadtest failed (exit $rc):" >&2; cat "$WORK/$name.lt.log" >&2; exit 1
  fi
  python3 - "$WORK/$name.json" "$mode" "$round" "$ptime" "$CALLS" "$HOLD" "$LOSS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
mode, rnd, ptime, calls, hold, limit = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
m = r["media"]
rate = 2 * calls * 1000 // ptime
loss = 100.0 * m["lost"] / max(m["sent"], 1)
# Packets due: every stream for the hold after its ramp, at least.
due = 2 * calls * hold * 1000 / ptime
failed = sum(r["failures"].values())
verdict = "pass"
if failed or m["streams"] < 2 * calls:
    verdict = "calls"
elif m["sent"] < 0.97 * due:
    verdict = "gen"
elif loss >= limit:
    verdict = "loss"
print(f"{mode:<6} {rnd:>5} {ptime:>5} {rate:>9} {m['sent']:>10} {m['received']:>10} {loss:>9.4f} "
      f"{r['generator_rx_dropped']:>8} {r['latency_us']['p50']:>7} {r['latency_us']['p99']:>7} {verdict:>7}")
PY
}

printf '%-6s %5s %5s %9s %10s %10s %9s %8s %7s %7s %7s\n' mode round ptime 'pkt/s' sent \
  received loss% gen_drop 'p50 us' 'p99 us' verdict
read -r -a modes <<<"$MODES"
for round in $(seq "$ROUNDS"); do
  # Alternate the order: the mode that ran last in a round runs first in the next.
  if [ $((round % 2)) -eq 0 ]; then
    order=()
    for ((i = ${#modes[@]} - 1; i >= 0; i--)); do order+=("${modes[i]}"); done
  else
    order=("${modes[@]}")
  fi
  for mode in "${order[@]}"; do
    best=0
    for ptime in $PTIMES; do
      line=$(step "$mode" "$ptime" "$round")
      echo "$line" | tee -a "$WORK/steps.txt"
      read -r -a f <<<"$line"
      [ "${f[10]}" = pass ] || break
      best=${f[3]}
    done
    echo "$mode $round $best" >>"$WORK/best.txt"
  done
done
echo "highest packets/s relayed with loss < $LOSS % per mode, median over $ROUNDS round(s):"
python3 - "$WORK/best.txt" <<'PY'
import statistics, sys
by = {}
for line in open(sys.argv[1]):
    mode, _, best = line.split()
    by.setdefault(mode, []).append(int(best))
print(f"{'mode':<6} {'pkt/s':>10} {'÷ io_uring':>10}  rounds")
ref = statistics.median(by["uring"]) if "uring" in by else 0
for mode, v in by.items():
    med = statistics.median(v)
    ratio = f"{med / ref:.2f}" if ref else "-"
    print(f"{mode:<6} {med:>10.0f} {ratio:>10}  {' '.join(str(x) for x in v)}")
PY

#!/usr/bin/env bash
# Scale-out of the signalling farm (docs/scale-out.md, signalling farm, docs/PERFORMANCE.md):
# 1, 2 and 3 Portcullis appliances behind Kamailio's dispatcher
# (deploy/kamailio/dispatcher.cfg), each in its own network namespace, driven by
# portcullis-loadtest through Kamailio's address. For each farm size it finds the
# highest call rate (calls/s, held HOLD_SECS each) and the most concurrent calls with
# 0 failures, and the CPU each node spent per call (utime + stime from /proc).
#
# Usage (root):  benches/farm/scale-out.sh [BIN_DIR]
#   BIN_DIR holds portcullis and portcullis-loadtest (default target/release).
# Environment (defaults in brackets):
#   FARM_SIZES ["1 2 3"]  CPS_STEPS ["50 100 200 400 800 1600"]  STEP_SECS [6]
#   HOLD_SECS [2]  HELD_STEPS ["500 1000 2000"]  HELD_CPS [200]  PING_INTERVAL [2]
# Each appliance has 12,000 media ports (3,000 calls: the descriptors fit the default
# RLIMIT_NOFILE). Every run is bounded (loadtest --duration, --max-calls); the namespaces and the
# processes in them are removed on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN_DIR=$(cd "${1:-$ROOT/target/release}" && pwd)
APP_BIN=$BIN_DIR/portcullis
LT_BIN=$BIN_DIR/portcullis-loadtest
FARM_SIZES=${FARM_SIZES:-"1 2 3"}
CPS_STEPS=${CPS_STEPS:-"50 100 200 400 800 1600"}
STEP_SECS=${STEP_SECS:-6}
HOLD_SECS=${HOLD_SECS:-2}
HELD_STEPS=${HELD_STEPS:-"500 1000 2000"}
HELD_CPS=${HELD_CPS:-200}
PING_INTERVAL=${PING_INTERVAL:-2}
CFG=$ROOT/deploy/kamailio/dispatcher.cfg

for tool in ip kamailio python3 "$APP_BIN" "$LT_BIN"; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "root needed (network namespaces)" >&2; exit 1; }

TAG=pcs$$
WORK=$(mktemp -d)
NSS=()

cleanup() {
  for ns in "${NSS[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  done
  for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

addns() {
  ip netns add "$1"
  NSS+=("$1")
  ip -n "$1" link set lo up
}

# CPU time (µs, utime + stime) of every process in namespace $1.
ns_cpu_us() {
  local total=0 hz pid
  hz=$(getconf CLK_TCK)
  for pid in $(ip netns pids "$1"); do
    [ -r "/proc/$pid/stat" ] || continue
    # Fields 14 and 15 (utime, stime) counted after the ")" closing the command name.
    total=$((total + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat")))
  done
  echo $((total * 1000000 / hz))
}

# RSS (KiB) of every process in namespace $1.
ns_rss_kib() {
  local total=0 pid
  for pid in $(ip netns pids "$1"); do
    total=$((total + $(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# Builds the namespaces of a farm of $1 appliances and starts everything.
start_farm() {
  local n=$1 i ip k=0
  addns "$TAG-hub"
  ip -n "$TAG-hub" link add br0 type bridge
  ip -n "$TAG-hub" link set br0 up
  local nodes=("kam:10.77.0.1" "load:10.77.0.21,10.77.0.22")
  for i in $(seq 1 "$n"); do nodes+=("app$i:10.77.0.$((10 + i))"); done
  for node in "${nodes[@]}"; do
    local name=${node%%:*} addrs=${node#*:}
    addns "$TAG-$name"
    ip link add "v$k" netns "$TAG-hub" type veth peer name eth0 netns "$TAG-$name"
    ip -n "$TAG-hub" link set "v$k" master br0 up
    ip -n "$TAG-$name" link set eth0 up
    for a in ${addrs//,/ }; do ip -n "$TAG-$name" addr add "$a/24" dev eth0; done
    k=$((k + 1))
  done
  : > "$WORK/dispatcher.list"
  for i in $(seq 1 "$n"); do
    ip=10.77.0.$((10 + i))
    mkdir -p "$WORK/app$i"
    cat > "$WORK/app$i/portcullis.toml" <<TOML
[node]
name = "app$i"

[[sip.listener]]
transport = "udp"
address = "$ip:5060"

[sip]
drain_timeout = "5s"

[media]
advertised_ip = "$ip"
bind_ip = "$ip"
port_min = 20000
port_max = 31999
cores = "auto:1"
inactivity_timeout = "300s"

[cdr]
path = "cdr.jsonl"
fsync = "never"

[log]
level = "warn"

[policy]
unknown_source = "reject"
rate_limit = 1000000

[[trunk]]
name = "kamailio"
address = "10.77.0.1:5060"

[[trunk]]
name = "callee"
address = "10.77.0.22:5080"

[[route]]
name = "farm-in"
from = ["kamailio"]
targets = ["callee"]
TOML
    (cd "$WORK/app$i" && ip netns exec "$TAG-app$i" "$APP_BIN" run --config portcullis.toml \
      > /dev/null 2> portcullis.log &)
    echo "1 sip:$ip:5060 0 0 weight=10;duid=app$i" >> "$WORK/dispatcher.list"
  done
  mkdir -p "$WORK/kam"
  (cd "$WORK/kam" && ip netns exec "$TAG-kam" kamailio -f "$CFG" -DD -E -m 256 -M 16 -Y "$WORK/kam" \
    -A "DS_LIST=\"$WORK/dispatcher.list\"" -A LISTEN_IP=10.77.0.1 \
    -A PING_INTERVAL="$PING_INTERVAL" -A CHILDREN=4 ${FARM_LOG:+-A WITH_FARM_LOG} 2> kamailio.log &)
  for i in $(seq 1 "$n"); do
    # Up once its SIP socket is bound (the log level is warn: no "ready" line).
    for _ in $(seq 1 120); do
      [ -n "$(ip netns exec "$TAG-app$i" ss -Hlun 'sport = :5060')" ] && break
      sleep 0.5
    done
    [ -n "$(ip netns exec "$TAG-app$i" ss -Hlun 'sport = :5060')" ] ||
      { cat "$WORK/app$i/portcullis.log" >&2; exit 1; }
  done
  sleep $((PING_INTERVAL + 1))
}

stop_farm() {
  cleanup_ns=("${NSS[@]}")
  for ns in "${cleanup_ns[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  done
  sleep 0.5
  for ns in "${cleanup_ns[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  NSS=()
}

# One loadtest run; prints "failed completed peak retransmissions app_cpu_us kam_cpu_us
# app_rss_growth_kib" (CPU and RSS growth of the run, all appliances together).
run_load() {
  local n=$1; shift
  local a0 k0 a1 k1 i rss=0
  a0=0; for i in $(seq 1 "$n"); do
    a0=$((a0 + $(ns_cpu_us "$TAG-app$i")))
    rss=$((rss - $(ns_rss_kib "$TAG-app$i")))
  done
  k0=$(ns_cpu_us "$TAG-kam")
  ip netns exec "$TAG-load" "$LT_BIN" --target 10.77.0.1:5060 --uac 10.77.0.21:5070 \
    --uas 10.77.0.22:5080 --no-media --quiet --report "$WORK/report.json" "$@" \
    > "$WORK/loadtest.out" 2>&1 || true
  [ -s "$WORK/report.json" ] || { cat "$WORK/loadtest.out" >&2; exit 1; }
  a1=0; for i in $(seq 1 "$n"); do
    a1=$((a1 + $(ns_cpu_us "$TAG-app$i")))
    rss=$((rss + $(ns_rss_kib "$TAG-app$i")))
  done
  k1=$(ns_cpu_us "$TAG-kam")
  python3 - "$WORK/report.json" $((a1 - a0)) $((k1 - k0)) "$rss" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
if r["failures"]:
    print("  failures:", r["failures"], file=sys.stderr)
print(sum(r["failures"].values()), r["calls_completed"], r["peak_calls"], r["retransmissions"],
      sys.argv[2], sys.argv[3], sys.argv[4])
PY
}

printf '%-5s %-10s %8s %8s %8s %6s %12s %12s\n' size run offered failed completed retx "app us/call" "kam us/call" >&2
RESULTS=()
for n in $FARM_SIZES; do
  start_farm "$n"
  best_cps=0; app_cost=-; kam_cost=-
  for cps in $CPS_STEPS; do
    read -r failed completed peak retx app kam _ < <(run_load "$n" --calls 100000 \
      --max-calls $((cps * STEP_SECS)) --cps "$cps" --hold "$HOLD_SECS" --duration "$STEP_SECS")
    printf '%-5s %-10s %8s %8s %8s %6s %12s %12s\n' "$n" "cps" "$cps" "$failed" "$completed" "$retx" \
      $((app / (completed > 0 ? completed : 1))) $((kam / (completed > 0 ? completed : 1))) >&2
    [ "$failed" -eq 0 ] || break
    best_cps=$cps; app_cost=$((app / completed)); kam_cost=$((kam / completed))
    sleep 1
  done
  best_held=0; rss_call=-
  for held in $HELD_STEPS; do
    secs=$((held / HELD_CPS + 4))
    read -r failed completed peak retx app kam rss < <(run_load "$n" --calls "$held" --max-calls "$held" \
      --cps "$HELD_CPS" --hold $((secs - 2)) --duration "$secs")
    printf '%-5s %-10s %8s %8s %8s %6s %12s %12s\n' "$n" "held" "$held" "$failed" "$completed" "$retx" - - >&2
    if [ "$failed" -ne 0 ] || [ "$peak" -lt "$held" ]; then break; fi
    best_held=$held; rss_call=$((rss * 1024 / held))
    sleep 1
  done
  RESULTS+=("$n $best_cps $best_held $app_cost $kam_cost $rss_call")
  stop_farm
done

echo
printf '| appliances | calls/s, 0 failures | ratio | concurrent calls, 0 failures | ratio | appliance CPU per call | Kamailio CPU per call | appliance RSS per held call |\n'
printf '|---:|---:|---:|---:|---:|---:|---:|---:|\n'
base_cps=; base_held=
for r in "${RESULTS[@]}"; do
  read -r n cps held app kam rss <<< "$r"
  base_cps=${base_cps:-$cps}; base_held=${base_held:-$held}
  printf '| %s | %s | %s | %s | %s | %s µs | %s µs | %s B |\n' "$n" "$cps" \
    "$(python3 -c "print(f'{$cps / max($base_cps, 1):.2f}')")" "$held" \
    "$(python3 -c "print(f'{$held / max($base_held, 1):.2f}')")" "$app" "$kam" "$rss"
done

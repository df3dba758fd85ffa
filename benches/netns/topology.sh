# shellcheck shell=bash
# The media-path benchmarks' network namespaces (sourced by media-paths.sh and
# media-pps.sh, after `set -euo pipefail`; TAG names the namespaces):
#
# `peers` (the load generator: UAC 192.0.2.1 and UAS 192.0.2.3 on veth p0) and `sbc` (the
# appliance on 192.0.2.2, veth mpa0), each joined by a veth pair to namespace `lan` (l0
# toward p0, l1 toward mpa0). mpa0 has GRO on and threaded NAPI (its receive path runs in a
# kernel thread that can be pinned and read). p0 sends complete UDP checksums, as a NIC
# delivers them. What joins l0 and l1 is WIRE:
#   xdp (default): an XDP program on each end forwards every frame out of the other (a
#     cable). Frames reach mpa0 as XDP frames, not socket buffers, as from a NIC's receive
#     ring; what mpa0 sends is queued to l1, whose NAPI thread runs on core 0 with l0's: the
#     appliance's core does its own work and hands each frame on, as to a NIC's send ring.
#   bridge: bridge br0 in `lan`; l1 runs an XDP program that passes everything (a veth takes
#     the frames its peer sends with XDP_TX only when it runs XDP itself). A frame reaches
#     mpa0 as a socket buffer, which mpa0's XDP first copies into a page (its headroom is
#     short of XDP's), and the bridge's forwarding of what mpa0 sends, through to the
#     generator's socket, runs on the core that sent it.
#
# Sets APP, UAC, UAS, LAN, PEERS, SBC and WORK (a temporary directory) and defines
# `config` (the appliance's configuration for this topology); on exit kills every process
# left in the namespaces, deletes them and WORK (kept with KEEP=1).

APP=192.0.2.2
UAC=192.0.2.1
UAS=192.0.2.3
WIRE=${WIRE:-xdp}
case $WIRE in xdp | bridge) ;; *) echo "WIRE is xdp or bridge, not $WIRE" >&2; exit 1 ;; esac
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

LAN=$TAG-lan PEERS=$TAG-peers SBC=$TAG-sbc
addns "$LAN"; addns "$PEERS"; addns "$SBC"
ip -n "$LAN" link add l0 type veth peer name p0 netns "$PEERS"
ip -n "$LAN" link add l1 type veth peer name mpa0 netns "$SBC"
if [ "$WIRE" = bridge ]; then
  ip -n "$LAN" link add br0 type bridge
  ip -n "$LAN" link set br0 up
  for l in l0 l1; do ip -n "$LAN" link set "$l" master br0; done
fi
for l in l0 l1; do ip -n "$LAN" link set "$l" up; done
ip -n "$PEERS" addr add $UAC/24 dev p0
ip -n "$PEERS" addr add $UAS/24 dev p0
ip -n "$SBC" addr add $APP/24 dev mpa0
ip -n "$PEERS" link set p0 up
ip -n "$SBC" link set mpa0 up
# Complete UDP checksums from the generator, as a NIC delivers them.
ip netns exec "$PEERS" ethtool -K p0 tx off >/dev/null
# NAPI on the appliance's veth (GRO on): its receive path runs in mpa0's NAPI whatever the
# mode, and it takes the XDP frames l1 hands it. p0 likewise, for l0's.
ip netns exec "$SBC" ethtool -K mpa0 gro on >/dev/null
ip netns exec "$PEERS" ethtool -K p0 gro on >/dev/null
multiarch=$(find /usr/include -maxdepth 1 -name '*-linux-gnu' | head -1)
if [ "$WIRE" = bridge ]; then
  cat >"$WORK/pass.c" <<'EOF'
#include <linux/bpf.h>
__attribute__((section("xdp"), used)) int pass(struct xdp_md *ctx) { return XDP_PASS; }
char LICENSE[] __attribute__((section("license"), used)) = "Apache-2.0";
EOF
  clang -O2 -target bpf ${multiarch:+-I "$multiarch"} -c "$WORK/pass.c" -o "$WORK/pass.o"
  ip -n "$LAN" link set dev l1 xdpdrv obj "$WORK/pass.o" sec xdp
else
  cat >"$WORK/wire.c" <<'EOF'
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp") int wire(struct xdp_md *ctx) {
  return bpf_redirect(ctx->ingress_ifindex == L0 ? L1 : L0, 0);
}
char LICENSE[] SEC("license") = "Apache-2.0";
EOF
  l0=$(ip netns exec "$LAN" cat /sys/class/net/l0/ifindex)
  l1=$(ip netns exec "$LAN" cat /sys/class/net/l1/ifindex)
  clang -O2 -target bpf ${multiarch:+-I "$multiarch"} -DL0="$l0" -DL1="$l1" \
    -c "$WORK/wire.c" -o "$WORK/wire.o"
  # NAPI threads named like ours may belong to other namespaces: ours are the new ones.
  others=" $(pgrep -d ' ' '^napi/l[01]-' || true) "
  for l in l0 l1; do
    ip -n "$LAN" link set dev "$l" xdpdrv obj "$WORK/wire.o" sec xdp
    ip netns exec "$LAN" sh -c "echo 1 > /sys/class/net/$l/threaded"
  done
  # A frame crosses the cable as bytes: what the appliance sends carries its UDP checksum
  # complete (the kernel folds it into the copy from user space), as a NIC would compute it.
  ip netns exec "$SBC" ethtool -K mpa0 tx off >/dev/null
  # Both ends' NAPI threads on the generator's core (names napi/l0-N, napi/l1-N), in the
  # normal scheduling class: the generator (SCHED_FIFO) preempts them, which keeps what they
  # pass on in small batches (a veth's receive ring holds 256 frames; a NIC's, thousands).
  for pid in $(pgrep '^napi/l[01]-' || true); do
    case $others in *" $pid "*) ;; *) taskset -pc 0 "$pid" >/dev/null ;; esac
  done
fi
ip netns exec "$SBC" sh -c 'echo 1 > /sys/class/net/mpa0/threaded'

# The appliance's configuration: one media core (1), trunks toward UAC and UAS.
config() { # $1 backend, $2 fast_path, $3 media of the caller's trunk
  cat <<EOF
[node]
name = "media-paths"

[[sip.listener]]
transport = "udp"
address = "$APP:5060"

[media]
bind_ip = "$APP"
port_min = 20000
port_max = 23999
cores = [1]
backend = "$1"
fast_path = "$2"
learning_window = "500ms"

[admin]
listen = "127.0.0.1:9100"

[cdr]
path = "$WORK/cdr.jsonl"
fsync = "never"

[policy]
rate_limit = 1000000

[[trunk]]
name = "left"
address = "$UAC:5070"
media = "$3"

[[trunk]]
name = "right"
address = "$UAS:5080"

[[route]]
name = "out"
from = ["left"]
targets = ["right"]
EOF
}

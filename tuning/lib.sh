# shellcheck shell=bash
# Common helpers for the Portcullis tuning scripts. Sourced, never run.
#
# Conventions every script follows:
# - `--dry-run` prints each change as "would write VALUE to FILE (now CUR)" or
#   "would run: CMD" and changes nothing;
# - a value already in place prints "unchanged FILE = VALUE" and is not
#   rewritten, so a second run reports "0 change(s)";
# - the dataplane cores come from `--cores LIST`, else `[media] cores` of
#   `--config FILE`, else /etc/portcullis/portcullis.toml when it exists, else
#   the appliance's embedded default (`cores = "auto:2"`: the first two CPUs
#   this process may run on).
# PORTCULLIS_PROC and PORTCULLIS_SYS relocate /proc and /sys (tests use fake
# trees); they default to the real ones.

set -euo pipefail

PROC=${PORTCULLIS_PROC:-/proc}
SYS=${PORTCULLIS_SYS:-/sys}
DEFAULT_CONFIG=/etc/portcullis/portcullis.toml
# Mirrors `cores` in appliance/src/default.toml (the embedded default).
EMBEDDED_CORES='"auto:2"'

DRY_RUN=0
CONFIG=""
CORES_ARG=""
PROFILE=""
IFACES=()
CHANGES=0
SCRIPT_NAME=${0##*/}

log() { printf '%s\n' "$*"; }
warn() { printf '%s: warning: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
    exit 1
}

# Parses the options shared by all scripts. Unknown options are fatal.
# Sets DRY_RUN, CONFIG, CORES_ARG, PROFILE, IFACES. $1 is the usage text.
parse_common_args() {
    local usage=$1
    shift
    while [ $# -gt 0 ]; do
        case $1 in
        --dry-run | -n) DRY_RUN=1 ;;
        --config)
            [ $# -ge 2 ] || die "--config needs a file"
            CONFIG=$2
            shift
            ;;
        --cores)
            [ $# -ge 2 ] || die "--cores needs a CPU list (e.g. 2,3 or 2-5)"
            CORES_ARG=$2
            shift
            ;;
        --profile)
            [ $# -ge 2 ] || die "--profile needs a sysctl.d file"
            PROFILE=$2
            shift
            ;;
        --iface)
            [ $# -ge 2 ] || die "--iface needs an interface name"
            IFACES+=("$2")
            shift
            ;;
        -h | --help)
            printf '%s\n' "$usage"
            exit 0
            ;;
        *) die "unknown option '$1' (try --help)" ;;
        esac
        shift
    done
    if [ -n "$CONFIG" ] && [ ! -r "$CONFIG" ]; then
        die "cannot read config file $CONFIG"
    fi
}

# The sysctl profile: --profile, else systemd/99-portcullis.conf next to
# this directory (source tree), else the packaged /usr/lib/sysctl.d copy.
sysctl_profile() {
    local here
    here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
    if [ -n "$PROFILE" ]; then
        printf '%s\n' "$PROFILE"
    elif [ -r "$here/../systemd/99-portcullis.conf" ]; then
        readlink -f "$here/../systemd/99-portcullis.conf"
    elif [ -r /usr/lib/sysctl.d/99-portcullis.conf ]; then
        printf '%s\n' /usr/lib/sysctl.d/99-portcullis.conf
    else
        die "no sysctl profile found (pass --profile FILE)"
    fi
}

# "key value" lines of a sysctl.d file (comments and blanks dropped).
sysctl_entries() {
    awk -F= '
        /^[[:space:]]*([#;]|$)/ { next }
        NF >= 2 {
            key = $1; val = substr($0, index($0, "=") + 1)
            gsub(/[[:space:]]/, "", key); sub(/^-/, "", key)
            gsub(/^[[:space:]]+|[[:space:]]+$/, "", val)
            print key " " val
        }' "$1"
}

# /proc/sys path of a dotted sysctl key.
sysctl_path() { printf '%s/sys/%s\n' "$PROC" "${1//.//}"; }

# Expands a kernel cpulist ("0-3,8") to space-separated ids ("0 1 2 3 8").
expand_cpulist() {
    local list=${1//[[:space:]]/} part lo hi out=() parts=()
    [ -n "$list" ] || return 0
    IFS=, read -r -a parts <<<"$list"
    for part in "${parts[@]}"; do
        [ -n "$part" ] || continue
        if [[ $part =~ ^([0-9]+)-([0-9]+)$ ]]; then
            lo=${BASH_REMATCH[1]}
            hi=${BASH_REMATCH[2]}
            [ "$lo" -le "$hi" ] || die "bad CPU range '$part'"
            while [ "$lo" -le "$hi" ]; do
                out+=("$lo")
                lo=$((lo + 1))
            done
        elif [[ $part =~ ^[0-9]+$ ]]; then
            out+=("$part")
        else
            die "bad CPU list element '$part' in '$1'"
        fi
    done
    printf '%s\n' "${out[*]}"
}

# Prints the raw value of KEY in [SECTION] of a TOML file (first match,
# trailing comment removed). Good enough for the flat keys used here.
toml_get() {
    local file=$1 section=$2 key=$3
    awk -v section="[$section]" -v key="$key" '
        /^[[:space:]]*\[/ {
            line = $0
            sub(/[[:space:]]*#.*/, "", line)
            gsub(/[[:space:]]/, "", line)
            insec = (line == section)
            next
        }
        insec {
            line = $0
            sub(/^[[:space:]]*/, "", line)
            if (index(line, key) != 1) next
            rest = substr(line, length(key) + 1)
            if (rest !~ /^[[:space:]]*=/) next
            sub(/^[[:space:]]*=[[:space:]]*/, "", rest)
            sub(/[[:space:]]*#.*$/, "", rest)
            print rest
            exit
        }' "$file"
}

# CPUs this process may run on (as `cores = "auto"` does in the appliance).
allowed_cpus() {
    local list
    list=$(awk '/^Cpus_allowed_list:/ { print $2 }' /proc/self/status 2>/dev/null || true)
    if [ -z "$list" ] && [ -r "$SYS/devices/system/cpu/online" ]; then
        list=$(cat "$SYS/devices/system/cpu/online")
    fi
    [ -n "$list" ] || list="0-$(($(nproc) - 1))"
    expand_cpulist "$list"
}

# Turns a `cores` TOML value ([0, 1] | "2-5,8" | "auto" | "auto:N") into ids.
cores_from_value() {
    local value=$1 inner n all
    case $value in
    \[*\])
        inner=${value#[}
        inner=${inner%]}
        expand_cpulist "${inner//[[:space:]]/}"
        ;;
    \"auto\") allowed_cpus ;;
    \"auto:*\")
        n=${value#\"auto:}
        n=${n%\"}
        [[ $n =~ ^[1-9][0-9]*$ ]] || die "bad cores value $value"
        read -r -a all <<<"$(allowed_cpus)"
        printf '%s\n' "${all[*]:0:n}"
        ;;
    \"*\")
        inner=${value#\"}
        expand_cpulist "${inner%\"}"
        ;;
    *) die "cannot parse cores value '$value' (want [0, 1], \"2-5\", \"auto\" or \"auto:N\")" ;;
    esac
}

# The config file in effect: --config, else the installed one, else none.
config_file() {
    if [ -n "$CONFIG" ]; then
        printf '%s\n' "$CONFIG"
    elif [ -r "$DEFAULT_CONFIG" ]; then
        printf '%s\n' "$DEFAULT_CONFIG"
    fi
}

# Prints the dataplane cores, space-separated.
dataplane_cores() {
    local file value
    if [ -n "$CORES_ARG" ]; then
        expand_cpulist "$CORES_ARG"
        return
    fi
    file=$(config_file)
    value=""
    if [ -n "$file" ]; then
        value=$(toml_get "$file" media cores)
    fi
    cores_from_value "${value:-$EMBEDDED_CORES}"
}

describe_core_source() {
    local file
    if [ -n "$CORES_ARG" ]; then
        printf -- '--cores %s\n' "$CORES_ARG"
    else
        file=$(config_file)
        if [ -n "$file" ] && [ -n "$(toml_get "$file" media cores)" ]; then
            printf '[media] cores in %s\n' "$file"
        else
            printf 'embedded default cores = %s\n' "$EMBEDDED_CORES"
        fi
    fi
}

# Hex CPU mask in the kernel's format (32-bit words, comma-separated, most
# significant first) for a space-separated id list.
cpu_mask() {
    local -a words=()
    local cpu w i hex=""
    local max=0
    for cpu in $1; do
        w=$((cpu / 32))
        [ "$w" -le "$max" ] || max=$w
        words[w]=$((${words[w]:-0} | (1 << (cpu % 32))))
    done
    for ((i = max; i >= 0; i--)); do
        if [ -z "$hex" ]; then
            hex=$(printf '%x' "${words[i]:-0}")
        else
            hex+=$(printf ',%08x' "${words[i]:-0}")
        fi
    done
    printf '%s\n' "$hex"
}

# Canonical form of a mask for comparison: no commas, no leading zeros.
norm_mask() {
    local m=${1//,/}
    m=${m,,}
    while [ "${m#0}" != "$m" ]; do m=${m#0}; done
    printf '%s\n' "${m:-0}"
}

# Writes VALUE to FILE unless it already holds it. $3 (optional) names a
# normalizer applied to both sides before comparing (norm_mask, norm_ws,
# norm_cpulist). Write failures are warnings: some files are read-only on
# some devices (XPS on single-queue NICs, sysctls in containers).
set_value() {
    local file=$1 value=$2 norm=${3:-} cur cmp_cur cmp_new
    if [ ! -e "$file" ]; then
        warn "$file does not exist; skipped"
        return 0
    fi
    if ! cur=$(cat "$file" 2>/dev/null); then
        # e.g. xps_cpus of a single-queue virtio NIC: ENOENT on read.
        warn "$file is not readable (not supported by this device); skipped"
        return 0
    fi
    cmp_cur=$cur
    cmp_new=$value
    if [ -n "$norm" ]; then
        cmp_cur=$("$norm" "$cur")
        cmp_new=$("$norm" "$value")
    fi
    if [ "$cmp_cur" = "$cmp_new" ]; then
        log "unchanged $file = $cur"
        return 0
    fi
    CHANGES=$((CHANGES + 1))
    if [ "$DRY_RUN" = 1 ]; then
        log "would write '$value' to $file (now '$cur')"
        return 0
    fi
    if printf '%s\n' "$value" >"$file" 2>/dev/null; then
        log "wrote '$value' to $file (was '$cur')"
    else
        warn "could not write '$value' to $file (kept '$cur')"
    fi
}

# Runs a command, or prints it under --dry-run. Counts as a change.
run_cmd() {
    CHANGES=$((CHANGES + 1))
    if [ "$DRY_RUN" = 1 ]; then
        log "would run: $*"
    else
        log "running: $*"
        "$@"
    fi
}

norm_ws() {
    local v
    # shellcheck disable=SC2086 # word splitting collapses the whitespace
    v=$(printf '%s ' $1)
    printf '%s\n' "${v% }"
}

norm_cpulist() { expand_cpulist "$1"; }

# Network interfaces backed by a device (skips lo, bridges, veth, ifb...),
# or the --iface list.
nic_list() {
    local dev
    if [ ${#IFACES[@]} -gt 0 ]; then
        printf '%s\n' "${IFACES[@]}"
        return
    fi
    for dev in "$SYS"/class/net/*; do
        [ -e "$dev/device" ] || continue
        printf '%s\n' "${dev##*/}"
    done
}

# "IRQ NAME" lines for the queue interrupts of interface $1: MSI vectors of
# its device (or of the PCI parent, for virtio), minus the non-queue vectors
# (config, async events, mailbox), named as in /proc/interrupts.
nic_queue_irqs() {
    local ifc=$1 dir irq name
    local -a irqs=()
    for dir in "$SYS/class/net/$ifc/device/msi_irqs" "$SYS/class/net/$ifc/device/../msi_irqs"; do
        if [ -d "$dir" ]; then
            for irq in "$dir"/*; do
                [ -e "$irq" ] && irqs+=("${irq##*/}")
            done
            [ ${#irqs[@]} -eq 0 ] || break
        fi
    done
    if [ ${#irqs[@]} -eq 0 ] && [ -r "$PROC/interrupts" ]; then
        # Legacy: vectors named after the interface ("eth0-TxRx-0").
        while read -r irq; do irqs+=("$irq"); done < <(
            awk -v ifc="$ifc" '$NF ~ "^" ifc "[-_]" { sub(":", "", $1); print $1 }' "$PROC/interrupts"
        )
    fi
    [ ${#irqs[@]} -gt 0 ] || return 0
    for irq in $(printf '%s\n' "${irqs[@]}" | sort -n); do
        name=$(awk -v irq="$irq:" '$1 == irq { print $NF }' "$PROC/interrupts" 2>/dev/null || true)
        case ${name,,} in
        "" | *config* | *async* | *mbx* | *misc* | *ctrl* | *event* | *lsc*) continue ;;
        esac
        printf '%s %s\n' "$irq" "$name"
    done
}

# Queue index encoded at the end of an IRQ name ("eth0-TxRx-3" -> 3,
# "virtio2-input.0" -> 0, "mlx5_comp7@pci:..." -> 7); empty when none.
queue_index() {
    local name=${1%%@*}
    if [[ $name =~ ([0-9]+)$ ]]; then
        printf '%s\n' "$((10#${BASH_REMATCH[1]}))"
    fi
}

# Drivers with native XDP (ndo_bpf): the program runs in the driver, before
# the kernel builds an skb. Any other interface runs it in generic mode.
XDP_NATIVE_DRIVERS="mlx4_en mlx5_core i40e ice igb igc ixgbe ixgbevf idpf bnxt_en
nfp qede ena gve mana virtio_net veth tun netsec mvneta mvpp2 stmmac cpsw
dpaa_eth dpaa2-eth fsl-enetc fec sfc sfc_ef100 nicvf hv_netvsc xen-netfront
atlantic tsnep rvu_nicpf rvu_nicvf lan966x-switch bonding"

# Whether driver $1 has native XDP.
xdp_native_driver() {
    local drivers=" ${XDP_NATIVE_DRIVERS//$'\n'/ } "
    [[ $drivers == *" $1 "* ]]
}

# Driver of interface $1: the sysfs device's driver, else `ethtool -i`, else
# "unknown".
net_driver() {
    local ifc=$1 link
    link=$(readlink "$SYS/class/net/$ifc/device/driver" 2>/dev/null || true)
    if [ -n "$link" ]; then
        printf '%s\n' "${link##*/}"
        return
    fi
    link=$(ethtool -i "$ifc" 2>/dev/null | awk '$1 == "driver:" { print $2 }' || true)
    printf '%s\n' "${link:-unknown}"
}

# XDP program attached to interface $1 now: "native", "generic", "offload"
# or empty.
xdp_attached() {
    local out
    out=$(ip -d link show dev "$1" 2>/dev/null || true)
    case $out in
    *xdpgeneric*) echo generic ;;
    *xdpoffload*) echo offload ;;
    *" xdp "* | *xdpdrv* | *"prog/xdp "*) echo native ;;
    esac
}

# Interfaces holding address $1 (`ip -o addr`).
ifaces_with_addr() {
    ip -o addr show 2>/dev/null | awk -v a="$1" '{ split($4, p, "/"); if (p[1] == a) print $2 }' | sort -u
}

# Final line of every changing script.
summary() {
    if [ "$DRY_RUN" = 1 ]; then
        log "dry run: $CHANGES change(s) would be made"
    else
        log "$CHANGES change(s) made"
    fi
}

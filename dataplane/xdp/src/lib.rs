//! XDP fast path for plain RTP/RTCP: forwards the packets of locked legs in the driver.
//!
//! The program (`bpf/fastpath.c`, built by `build.rs` with clang) looks up the UDP
//! destination port in a map of promoted legs, checks the source against the locked peer,
//! rewrites addresses and ports (our address on the other leg → that leg's peer) and the
//! MACs (ours on the egress interface; the next hop toward the peer, learned from that
//! peer's own packets), updates the checksums (RFC 1624) and sends the packet out with
//! `XDP_TX` or `XDP_REDIRECT`. Everything else goes up to the
//! io_uring workers unchanged: first packets and learning, STUN, SRTP, the user payload
//! type (DTMF), packets from anyone but the locked peer, unknown ports.
//!
//! The worker drives it through [`FastPath`]:
//! [`promote`](FastPath::promote) a leg once it is locked, [`demote`](FastPath::demote) it
//! on re-INVITE, peer change, hold or teardown (the final counters come back),
//! [`read_counters`](FastPath::read_counters) in between for statistics and inactivity.
//! Dropping the [`FastPath`] detaches the program.
//!
//! The same program feeds the AF_XDP worker backend: a packet it passes up for an address
//! and port a worker claimed goes to that worker's AF_XDP socket instead of the kernel's
//! stack ([`XskRegistry`], module `xsk`). Loaded without promoted legs it does only that.
//!
//! `unsafe` is limited to the `aya::Pod` markers of the map layouts (`maps.rs`, `xsk.rs`).

mod iface;
mod maps;
mod table;
mod xsk;

use std::net::{IpAddr, SocketAddr};

use aya::maps::{DevMapHash, MapData};
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;

pub use iface::interfaces_holding;
pub use maps::{FastPathStats, LegCounters, LegKey, Stat, STATS};
pub use table::LegTable;
pub use xsk::{XskRegistry, XskTarget, MAX_SOCKETS as MAX_XSK_SOCKETS};

/// Name of the program in the object.
const PROGRAM: &str = "portcullis_fastpath";

/// The compiled object, when the build had clang and the libbpf headers.
#[cfg(portcullis_xdp_object)]
const OBJECT: Option<&[u8]> = Some(aya::include_bytes_aligned!(env!("PORTCULLIS_XDP_OBJECT")));
#[cfg(not(portcullis_xdp_object))]
const OBJECT: Option<&[u8]> = None;

/// Why the object is missing (set by `build.rs`).
#[cfg(not(portcullis_xdp_object))]
const MISSING: &str = env!("PORTCULLIS_XDP_MISSING");
#[cfg(portcullis_xdp_object)]
const MISSING: &str = "";

/// Errors of the fast path. `Unavailable` and `Attach` are the start-up answers; the rest
/// come from promoting or reading a leg.
#[derive(Debug, thiserror::Error)]
pub enum FastPathError {
    /// This build has no XDP object (clang or libbpf-dev missing at build time).
    #[error("XDP fast path not built into this binary: {0}")]
    Unavailable(&'static str),
    /// The kernel refused the object (no CAP_BPF / CAP_NET_ADMIN, or the verifier said no).
    #[error("cannot load the XDP program: {0}")]
    Load(String),
    /// The program could not be attached to the interface.
    #[error("cannot attach XDP to {ifname}: {reason}")]
    Attach {
        /// Interface name.
        ifname: String,
        /// What the kernel said.
        reason: String,
    },
    /// The interface does not exist.
    #[error("no interface named {0}")]
    UnknownInterface(String),
    /// A leg's addresses are not all of one family.
    #[error("fast-path leg mixes IPv4 and IPv6 addresses")]
    FamilyMismatch,
    /// None of the attached interfaces holds our address on the outgoing leg.
    #[error("no attached interface holds {0}")]
    NoEgress(IpAddr),
    /// A map operation failed.
    #[error("XDP map {map}: {reason}")]
    Map {
        /// Map name.
        map: &'static str,
        /// What the kernel said.
        reason: String,
    },
}

fn map_err<E: std::fmt::Display>(map: &'static str) -> impl FnOnce(E) -> FastPathError {
    move |e| FastPathError::Map {
        map,
        reason: e.to_string(),
    }
}

/// How to attach the program to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AttachMode {
    /// Native (in the driver) where the driver supports it, generic otherwise.
    #[default]
    Auto,
    /// Native only: fail when the driver has no XDP support.
    Native,
    /// Generic (in the stack, after the skb is built): works on any interface.
    Generic,
}

/// The mode an interface ended up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode {
    /// In the driver.
    Native,
    /// In the stack.
    Generic,
}

/// An interface the program is attached to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Name.
    pub name: String,
    /// Interface index.
    pub ifindex: u32,
    /// Native or generic.
    pub mode: AttachedMode,
}

/// What a port carries: RTP ports track RFC 3550 sequence and jitter, RTCP ports only count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortKind {
    /// RTP (or RTP and RTCP multiplexed, RFC 5761: RTCP packets are told apart and only counted).
    Rtp,
    /// RTCP.
    Rtcp,
}

/// One promoted port of a locked leg: packets arriving on `local` from `peer` leave from
/// `out_local` to `out_peer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FastLeg {
    /// Our address and port the leg's packets arrive on (the key is its port and family).
    pub local: SocketAddr,
    /// The locked peer: only its packets are forwarded; anyone else's go up to the worker.
    pub peer: SocketAddr,
    /// Our address and port on the other leg: the source of the forwarded packet.
    pub out_local: SocketAddr,
    /// The other leg's locked peer: the destination of the forwarded packet.
    pub out_peer: SocketAddr,
    /// RTP or RTCP port.
    pub kind: PortKind,
    /// RTP clock rate of the stream (for the A.8 jitter).
    pub clock_rate: u32,
    /// A payload type that always goes up to the worker (telephone-event, so the worker
    /// sees DTMF); `None` forwards every payload type.
    pub user_payload_type: Option<u8>,
}

/// The `media.fast_path` choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FastPathSetting {
    /// XDP when this build has it and the interfaces and privileges allow it; otherwise
    /// off, with a log line saying why.
    #[default]
    Auto,
    /// XDP or a start-up error.
    Xdp,
    /// No fast path: the workers forward everything.
    Off,
}

/// Starts the fast path on `interfaces` as `setting` asks: `Ok(None)` when it is off
/// (asked, or `Auto` and unavailable), the error when `Xdp` cannot be had.
pub fn start(
    setting: FastPathSetting,
    interfaces: &[&str],
) -> Result<Option<FastPath>, FastPathError> {
    if setting == FastPathSetting::Off {
        return Ok(None);
    }
    let attempt = || -> Result<FastPath, FastPathError> {
        let (first, rest) = interfaces
            .split_first()
            .ok_or_else(|| FastPathError::UnknownInterface(String::new()))?;
        let mut fp = FastPath::attach(first, AttachMode::Auto)?;
        for name in rest {
            fp.attach_also(name, AttachMode::Auto)?;
        }
        Ok(fp)
    };
    match (attempt(), setting) {
        (Ok(fp), _) => Ok(Some(fp)),
        (Err(e), FastPathSetting::Auto) => {
            tracing::warn!(error = %e, "media fast path off: XDP unavailable");
            Ok(None)
        }
        (Err(e), _) => Err(e),
    }
}

/// `CLOCK_MONOTONIC` now in ns: the clock of [`LegCounters::last_seen_ns`].
#[must_use]
pub fn monotonic_now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| {
            u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
                + u64::try_from(t.tv_nsec()).unwrap_or(0)
        })
        .unwrap_or(0)
}

/// The XDP program, attached to one or more media interfaces, and its maps.
pub struct FastPath {
    /// Owns the program and its links: dropping it detaches from every interface.
    ebpf: Ebpf,
    table: LegTable,
    tx_ports: DevMapHash<MapData>,
    xsk: XskRegistry,
    interfaces: Vec<Interface>,
}

impl std::fmt::Debug for FastPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastPath")
            .field("interfaces", &self.interfaces)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl FastPath {
    /// Whether this build carries the XDP object; the error says why not.
    pub fn built() -> Result<(), FastPathError> {
        match OBJECT {
            Some(_) => Ok(()),
            None => Err(FastPathError::Unavailable(MISSING)),
        }
    }

    /// Loads the program and attaches it to `ifname`.
    pub fn attach(ifname: &str, mode: AttachMode) -> Result<FastPath, FastPathError> {
        let object = OBJECT.ok_or(FastPathError::Unavailable(MISSING))?;
        let mut ebpf = Ebpf::load(object).map_err(|e| FastPathError::Load(chain(&e)))?;
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| FastPathError::Load(format!("no program {PROGRAM} in the object")))?
            .try_into()
            .map_err(|e| FastPathError::Load(chain(&e)))?;
        program.load().map_err(|e| FastPathError::Load(chain(&e)))?;
        let legs = take(&mut ebpf, "legs")?;
        let counters = take(&mut ebpf, "counters")?;
        let stats = take(&mut ebpf, "stats")?;
        let tx_ports = take(&mut ebpf, "tx_ports")?;
        let xsk_ports = take(&mut ebpf, "xsk_ports")?;
        let xsks = take(&mut ebpf, "xsks")?;
        let mut fp = FastPath {
            table: LegTable::new(legs, counters, stats)?,
            tx_ports: DevMapHash::try_from(tx_ports).map_err(map_err("tx_ports"))?,
            xsk: XskRegistry::new(xsk_ports, xsks)?,
            ebpf,
            interfaces: Vec::new(),
        };
        fp.attach_also(ifname, mode)?;
        Ok(fp)
    }

    /// Attaches the same program (same maps) to one more interface, so legs can be
    /// forwarded between interfaces (`XDP_REDIRECT`).
    pub fn attach_also(
        &mut self,
        ifname: &str,
        mode: AttachMode,
    ) -> Result<AttachedMode, FastPathError> {
        let ifindex = nix::net::if_::if_nametoindex(ifname)
            .map_err(|_| FastPathError::UnknownInterface(ifname.to_owned()))?;
        let program: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| FastPathError::Load(format!("no program {PROGRAM}")))?
            .try_into()
            .map_err(|e| FastPathError::Load(chain(&e)))?;
        let attach_err = |e: &dyn std::error::Error| FastPathError::Attach {
            ifname: ifname.to_owned(),
            reason: chain(e),
        };
        let attached = match mode {
            AttachMode::Native => program
                .attach_to_if_index(ifindex, XdpMode::Driver)
                .map(|_| AttachedMode::Native)
                .map_err(|e| attach_err(&e))?,
            AttachMode::Generic => program
                .attach_to_if_index(ifindex, XdpMode::Skb)
                .map(|_| AttachedMode::Generic)
                .map_err(|e| attach_err(&e))?,
            AttachMode::Auto => match program.attach_to_if_index(ifindex, XdpMode::Driver) {
                Ok(_) => AttachedMode::Native,
                Err(native) => {
                    tracing::info!(ifname, error = %chain(&native), "native XDP refused, trying generic");
                    program
                        .attach_to_if_index(ifindex, XdpMode::Skb)
                        .map(|_| AttachedMode::Generic)
                        .map_err(|e| attach_err(&e))?
                }
            },
        };
        self.tx_ports
            .insert(ifindex, ifindex, None, 0)
            .map_err(map_err("tx_ports"))?;
        self.interfaces.push(Interface {
            name: ifname.to_owned(),
            ifindex,
            mode: attached,
        });
        self.table.add_interface(ifname, ifindex);
        tracing::info!(ifname, ifindex, mode = ?attached, "XDP fast path attached");
        Ok(attached)
    }

    /// The interfaces the program is attached to.
    #[must_use]
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    /// Another handle on the program's leg table (for a worker, or a reader of counters).
    pub fn table(&self) -> Result<LegTable, FastPathError> {
        self.table.try_clone()
    }

    /// Another handle on the program's AF_XDP maps (for a worker of the AF_XDP backend).
    pub fn xsk(&self) -> Result<XskRegistry, FastPathError> {
        self.xsk.try_clone()
    }

    /// The attached interface that holds `ip`: its index and MAC (read now).
    #[must_use]
    pub fn holder(&self, ip: IpAddr) -> Option<(u32, [u8; 6])> {
        let attached: Vec<(&str, u32)> = self
            .interfaces
            .iter()
            .map(|i| (i.name.as_str(), i.ifindex))
            .collect();
        let mut a = iface::Addresses::default();
        a.refresh(&attached);
        a.holder(ip)
    }

    /// Starts forwarding one port of a locked leg in the kernel (see [`LegTable::promote`]).
    pub fn promote(&mut self, leg: &FastLeg) -> Result<(), FastPathError> {
        self.table.promote(leg)
    }

    /// Stops forwarding a port in the kernel (see [`LegTable::demote`]).
    pub fn demote(&mut self, key: LegKey) -> Result<Option<LegCounters>, FastPathError> {
        self.table.demote(key)
    }

    /// A promoted port's counters, all CPUs merged (`None` when it is not promoted).
    pub fn read_counters(&self, key: LegKey) -> Result<Option<LegCounters>, FastPathError> {
        self.table.read_counters(key)
    }

    /// Whether a port is promoted.
    #[must_use]
    pub fn is_promoted(&self, key: LegKey) -> bool {
        self.table.is_promoted(key)
    }

    /// The program-wide counters, all CPUs merged.
    pub fn stats(&self) -> Result<FastPathStats, FastPathError> {
        self.table.stats()
    }
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, FastPathError> {
    ebpf.take_map(name).ok_or(FastPathError::Map {
        map: name,
        reason: "missing from the object".to_owned(),
    })
}

/// An error and its sources on one line (aya nests the kernel's answer).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

//! Plain data crossing the rings: handles, per-side parameters, commands and events.
//!
//! Everything here is `Copy` and fixed-size so a command or an event is one slot of an
//! `ArrayQueue` and never allocates.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use portcullis_rtp::srtp::{SrtpKeys, SrtpResume};

/// Index of a data-plane worker (one pinned thread).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub u16);

/// Index of a media realm: 0 is the realm of [`DataplaneConfig::bind_ip`] and its port
/// range, `n` the `n`-th entry of [`DataplaneConfig::realms`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RealmId(pub u16);

/// A media realm beyond the first: the local address its sockets bind to and its port
/// range (see [`DataplaneConfig::realms`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RealmConfig {
    /// Local address every socket of the realm binds to.
    pub bind_ip: IpAddr,
    /// First port of the realm's range (rounded up to even).
    pub port_min: u16,
    /// Last port of the realm's range (inclusive).
    pub port_max: u16,
}

/// One leg of a relayed call. A pair always has `A` and `B`; packets from A's peer go out
/// to B's peer and the other way round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// Leg A (conventionally the inbound call leg).
    A,
    /// Leg B (conventionally the outbound call leg).
    B,
}

impl Side {
    /// The other leg.
    #[must_use]
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// A reserved stream pair: two legs on one worker, each with its own RTP port (even) and
/// RTCP port (RTP + 1), each in the realm it was allocated in.
///
/// Invariant: `generation` is the pair slot's generation when it was allocated; commands
/// and events for an older generation of the same slot are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamPairHandle {
    /// Worker that owns both legs.
    pub worker: WorkerId,
    /// Pair slot within that worker's port slice.
    pub pair: u32,
    /// Slot generation at allocation time.
    pub generation: u32,
    /// Local RTP port of leg A (RTCP is `+1`).
    pub port_a: u16,
    /// Local RTP port of leg B (RTCP is `+1`).
    pub port_b: u16,
}

impl StreamPairHandle {
    /// Local RTP port of one side.
    #[must_use]
    pub fn port(&self, side: Side) -> u16 {
        match side {
            Side::A => self.port_a,
            Side::B => self.port_b,
        }
    }
}

/// Which I/O engine the workers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// io_uring when the kernel supports every opcode the worker needs, else mmsg.
    #[default]
    Auto,
    /// io_uring multishot `recvmsg` with a provided-buffer ring (kernel ≥ 6.0).
    IoUring,
    /// epoll + `recvmmsg`/`sendmmsg`.
    Mmsg,
    /// AF_XDP sockets (one per worker and interface, on the queue of the worker's index)
    /// fed by the XDP program ([`DataplaneConfig::af_xdp`]), beside the UDP sockets of the
    /// mmsg backend for what goes through the kernel. Never chosen by `Auto`.
    AfXdp,
}

/// Longest ICE username fragment carried in a command (RFC 8445 §5.3 allows up to 256;
/// real peers use far shorter ones).
pub const ICE_UFRAG_MAX: usize = 32;
/// Longest ICE password carried in a command.
pub const ICE_PWD_MAX: usize = 64;

/// ICE-lite credentials of our side of a leg, fixed-size so the command stays `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IceLite {
    ufrag: [u8; ICE_UFRAG_MAX],
    ufrag_len: u8,
    pwd: [u8; ICE_PWD_MAX],
    pwd_len: u8,
}

impl IceLite {
    /// Checked constructor: `None` when either string is empty or longer than the limits.
    #[must_use]
    pub fn new(ufrag: &str, pwd: &str) -> Option<IceLite> {
        let (u, p) = (ufrag.as_bytes(), pwd.as_bytes());
        if u.is_empty() || p.is_empty() || u.len() > ICE_UFRAG_MAX || p.len() > ICE_PWD_MAX {
            return None;
        }
        let mut out = IceLite {
            ufrag: [0; ICE_UFRAG_MAX],
            ufrag_len: u8::try_from(u.len()).ok()?,
            pwd: [0; ICE_PWD_MAX],
            pwd_len: u8::try_from(p.len()).ok()?,
        };
        out.ufrag.get_mut(..u.len())?.copy_from_slice(u);
        out.pwd.get_mut(..p.len())?.copy_from_slice(p);
        Some(out)
    }

    /// Local username fragment.
    #[must_use]
    pub fn ufrag(&self) -> &str {
        let b = self.ufrag.get(..usize::from(self.ufrag_len)).unwrap_or(&[]);
        std::str::from_utf8(b).unwrap_or("")
    }

    /// Local password.
    #[must_use]
    pub fn pwd(&self) -> &str {
        let b = self.pwd.get(..usize::from(self.pwd_len)).unwrap_or(&[]);
        std::str::from_utf8(b).unwrap_or("")
    }
}

/// How a leg learns its peer's address from received media (rtpengine's
/// `--endpoint-learning`, per trunk). The signalled address (SDP `c=`/`m=`) is where a
/// leg sends until media says otherwise; learning exists only for NAT.
///
/// Learning happens inside a window that opens when the leg's signalled address is set
/// or changes (and again at each offer/answer step while the leg has not heard from its
/// peer); after it the leg is locked ([`LegState::Locked`]). A source other than the
/// signalled address must prove itself: several in-sequence RTP packets of one SSRC, the
/// last of which authenticates on an SRTP leg. An SSRC change never moves a leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum EndpointLearning {
    /// Learn at once inside the window, ranking sources: the signalled address and port,
    /// then the same address, then the same port, then any; a better source replaces an
    /// earlier guess until the window ends.
    #[default]
    Heuristic,
    /// Never learn: accept media only from the signalled address and port.
    Strict,
    /// Like `Heuristic`, but send to the signalled address during the window and adopt
    /// the best source seen only when it ends (the signalled one when it sent).
    Delayed,
    /// Never learn and never check: send to the signalled address, accept media from any
    /// source (peers that send from another port than they receive on).
    Off,
}

/// Where a leg stands in endpoint learning. Only a `Locked` leg has a final peer
/// (the state a kernel fast path may take over).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegState {
    /// Inside the learning window, opened at `since_us` (the worker's clock).
    Learning {
        /// When the window opened (µs, the worker's clock).
        since_us: u64,
    },
    /// The peer moves only by signalling (or, where the trunk allows it, by NAT
    /// rebinding after silence).
    Locked,
}

/// Behaviour flags of one leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StreamFlags {
    /// Endpoint learning of the trunk the leg faces.
    pub learning: EndpointLearning,
    /// RTCP multiplexed on the RTP port (RFC 5761). When off, RTCP uses RTP port + 1.
    pub rtcp_mux: bool,
    /// The stream is on hold (the last offer/answer with this leg's peer left it
    /// `sendonly`, `recvonly` or `inactive`): relayed by the worker, never by the kernel
    /// fast path.
    pub held: bool,
    /// The leg carries opaque UDP datagrams (T.38 over UDPTL), not RTP: relayed as they
    /// come under the same endpoint-learning rules (see `opaque`).
    pub udptl: bool,
    /// DTMF detection and playing on this leg (all off: no per-packet cost).
    pub dtmf: DtmfFlags,
}

/// RFC 4733 DTMF handling of one leg (see the `dtmf` module).
///
/// A kernel fast path must hand the worker every packet of payload type `detect` from a
/// leg with detection, and must not forward the stream toward a leg with `generate`
/// set while events are queued for it (the worker rewrites that stream's packets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DtmfFlags {
    /// Report the RFC 4733 events the peer sends in this payload type
    /// ([`Event::Dtmf`]).
    pub detect: Option<u8>,
    /// Do not relay those event packets to the other leg.
    pub drop_events: bool,
    /// Payload type of events played toward this leg's peer
    /// ([`crate::Dataplane::dtmf`]); `None`: events for it are refused.
    pub generate: Option<u8>,
}

/// Everything the worker needs to know about one leg.
///
/// `srtp_in` unprotects what this leg's peer sends us; `srtp_out` protects what we send to
/// this leg's peer. `None` means plain RTP in that direction, so the four combinations give
/// pass-through, RTP→SRTP, SRTP→RTP and SRTP→SRTP re-keying.
#[derive(Clone, Copy, Debug)]
pub struct StreamParams {
    /// Signalled peer address (from SDP); `None` until known (learning may then find it).
    pub peer: Option<SocketAddr>,
    /// Keys for packets received from this leg's peer.
    pub srtp_in: Option<SrtpKeys>,
    /// Keys for packets sent to this leg's peer.
    pub srtp_out: Option<SrtpKeys>,
    /// Endpoint learning, RTCP mux.
    pub flags: StreamFlags,
    /// NAT rebinding: once the leg is locked and its peer has sent nothing for this
    /// long, a new source sending a valid stream takes over. `None`: never.
    pub relearn_after: Option<Duration>,
    /// Our ICE-lite credentials on this leg: STUN binding requests are answered when set.
    pub ice: Option<IceLite>,
    /// RTP clock rate of the negotiated audio codec, for jitter (RFC 3550 §6.4.1).
    pub clock_rate: u32,
}

impl Default for StreamParams {
    fn default() -> Self {
        StreamParams {
            peer: None,
            srtp_in: None,
            srtp_out: None,
            flags: StreamFlags::default(),
            relearn_after: None,
            ice: None,
            clock_rate: 8000,
        }
    }
}

/// What one leg carries over a takeover of an active/standby pair: the SRTP state
/// of each direction ([`Dataplane::resume_state`](crate::Dataplane::resume_state)
/// publishes it about once a second) and the peer media was latched to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LegResume {
    /// What this leg's peer sends us (our unprotect context).
    pub srtp_in: Option<SrtpResume>,
    /// What we send this leg's peer (our protect context).
    pub srtp_out: Option<SrtpResume>,
    /// The peer the leg sent to, locked (endpoint learning over); `None`: learn again
    /// from the signalled address.
    pub latched: Option<SocketAddr>,
}

/// A control-plane command on a worker's ring.
// Commands are deliberately fixed-size `Copy` values (one ring slot each, no heap); the
// large `Update` is the common case, so boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug)]
pub(crate) enum Command {
    /// Arm (or re-arm) a pair with parameters for both legs.
    Update {
        pair: u32,
        generation: u32,
        params: [StreamParams; 2],
        /// Leg slots of sides A and B (`socket / 2`, see [`crate::realm`]).
        legs: [u32; 2],
    },
    /// Arm a pair as `Update` does, then carry on the state another node published
    /// for it (SRTP indexes, the latched peers): a takeover.
    Restore {
        pair: u32,
        generation: u32,
        params: [StreamParams; 2],
        /// Leg slots of sides A and B, as in `Update`.
        legs: [u32; 2],
        resume: [LegResume; 2],
    },
    /// Stop relaying on a pair; its ports drop everything afterwards.
    Remove { pair: u32, generation: u32 },
    /// Play an RFC 4733 event toward leg `side`'s peer (see the `dtmf` module).
    Dtmf {
        pair: u32,
        generation: u32,
        side: Side,
        event: u8,
        duration: u16,
    },
    /// Pause the loop for a bounded time (maintenance hand-over; tests use it to hold a
    /// worker still). Capped at one second.
    Quiesce { micros: u32 },
    /// Leave the loop.
    Shutdown,
}

impl Command {
    /// [`Command::Update`] of the pair `handle` names, on leg slots `legs`.
    pub(crate) fn update(
        handle: &StreamPairHandle,
        legs: [u32; 2],
        params: [StreamParams; 2],
    ) -> Command {
        Command::Update {
            pair: handle.pair,
            generation: handle.generation,
            params,
            legs,
        }
    }
}

/// Something a worker reports to the control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A leg's peer sent its first packet, or the leg learnt a new peer from received
    /// media (endpoint learning, NAT rebinding) or from an ICE nomination.
    Latched {
        /// The pair (with its generation).
        handle: StreamPairHandle,
        /// Which leg.
        side: Side,
        /// The source now used as destination for that leg.
        addr: SocketAddr,
    },
    /// No packet on either leg for the configured inactivity timeout.
    Inactive {
        /// The pair (with its generation).
        handle: StreamPairHandle,
    },
    /// SRTP/SRTCP authentication failures on a leg reached the configured threshold.
    SrtpAuthFailures {
        /// The pair (with its generation).
        handle: StreamPairHandle,
        /// Which leg received the failing packets.
        side: Side,
        /// Total failures on that leg so far.
        count: u64,
    },
    /// An RFC 4733 event ended on a leg flagged for detection (reported once, however
    /// many times its end packet came).
    Dtmf {
        /// The pair (with its generation).
        handle: StreamPairHandle,
        /// Which leg's peer sent it.
        side: Side,
        /// Event code (RFC 4733 §3.2: 0-9, 10 `*`, 11 `#`, 12-15 `A`-`D`).
        event: u8,
        /// Duration in timestamp units.
        duration: u16,
    },
    /// A worker could not post events because its event ring was full; some were lost.
    RingOverflow {
        /// The worker whose event ring overflowed.
        worker: WorkerId,
        /// Events lost since the previous report.
        lost: u64,
    },
}

/// Data-plane configuration (from `[media]`).
///
/// `bind_ip`, `port_min` and `port_max` are the first media realm ([`RealmId`]`(0)`), the
/// only one when `realms` is empty; `realms` adds the others (`[[media.realm]]`).
#[derive(Clone, Debug)]
pub struct DataplaneConfig {
    /// CPU ids to pin one worker each on; an empty list means one unpinned worker.
    pub cores: Vec<usize>,
    /// First port of the media range (rounded up to even).
    pub port_min: u16,
    /// Last port of the media range (inclusive).
    pub port_max: u16,
    /// Local address every media socket of realm 0 binds to.
    pub bind_ip: IpAddr,
    /// Realms 1.. (each with its own address and port range); ranges on one address must
    /// not overlap.
    pub realms: Vec<RealmConfig>,
    /// I/O engine choice.
    pub backend: Backend,
    /// A pair with no packet on either leg for this long raises [`Event::Inactive`].
    pub inactivity_timeout: Duration,
    /// Capacity of each worker's command ring and event ring.
    pub ring_capacity: usize,
    /// SRTP auth failures on a leg before [`Event::SrtpAuthFailures`] is raised.
    pub srtp_fail_threshold: u64,
    /// Endpoint learning window (see [`EndpointLearning`]).
    pub learning_window: Duration,
    /// Provided receive buffers per io_uring worker (power of two ≤ 32768; 2 KB each).
    pub uring_buffers: u16,
    /// Called on each worker thread after pinning, before the loop (instrumentation hook,
    /// used by the allocation-counting test).
    pub on_worker_start: Option<fn(WorkerId)>,
    /// The XDP fast path the workers promote locked plain-RTP pairs to (`None`: off).
    pub fast_path: Option<FastPathConfig>,
    /// The XDP program (attached to the media interfaces) whose AF_XDP redirect the
    /// [`Backend::AfXdp`] workers receive from, and each realm's address on them; required
    /// by that backend, ignored by the others. It may be the fast path's own program.
    pub af_xdp: Option<FastPathConfig>,
}

/// The XDP fast path handed to the data plane (see `crate::fastpath`).
#[derive(Clone, Debug)]
pub struct FastPathConfig {
    /// The attached program; the data plane keeps it (and so the attachment) alive.
    pub program: std::sync::Arc<portcullis_xdp::FastPath>,
    /// Our media address of each realm on the attached interfaces, by [`RealmId`]: the
    /// destination of the packets the program takes, the source of those it sends (the
    /// realm's sockets' address when its `bind_ip` is a specific one). `None` (or no
    /// entry): that realm's legs stay with the workers.
    pub local_ips: Vec<Option<IpAddr>>,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            cores: Vec::new(),
            port_min: 20000,
            port_max: 20999,
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            realms: Vec::new(),
            backend: Backend::Auto,
            inactivity_timeout: Duration::from_secs(60),
            ring_capacity: 1024,
            srtp_fail_threshold: 10,
            learning_window: Duration::from_secs(3),
            uring_buffers: 4096,
            on_worker_start: None,
            fast_path: None,
            af_xdp: None,
        }
    }
}

impl DataplaneConfig {
    /// Every realm, realm 0 first.
    #[must_use]
    pub fn realm_list(&self) -> Vec<RealmConfig> {
        let first = RealmConfig {
            bind_ip: self.bind_ip,
            port_min: self.port_min,
            port_max: self.port_max,
        };
        std::iter::once(first)
            .chain(self.realms.iter().copied())
            .collect()
    }
}

/// Errors of the data-plane control API.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// Misconfiguration (empty or odd port range, zero ring capacity…).
    #[error("invalid data-plane configuration: {0}")]
    Config(&'static str),
    /// The kernel refused a socket, ring or thread operation.
    #[error("{what}: {source}")]
    Io {
        /// Which operation.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// io_uring was requested but the kernel does not allow it.
    #[error("io_uring unavailable: {0}")]
    IoUringUnavailable(String),
    /// The AF_XDP backend cannot run here (no program, no queue, the kernel refused).
    #[error("af_xdp backend: {0}")]
    AfXdp(String),
    /// A worker thread failed to set up its backend.
    #[error("worker start-up failed: {0}")]
    WorkerStart(String),
    /// No free port pair on any worker (in the realms asked for).
    #[error("no free media port pair")]
    Exhausted,
    /// A pair was asked for in a realm the data plane does not have.
    #[error("unknown media realm {0}")]
    UnknownRealm(u16),
    /// The worker's command ring is full; the caller should refuse the call (503).
    #[error("worker {0:?} command ring full")]
    RingFull(WorkerId),
    /// The handle's generation no longer matches the slot (already removed).
    #[error("stale stream handle")]
    Stale,
    /// The data plane is shut down.
    #[error("data plane stopped")]
    Stopped,
    /// The XDP fast path could not be shared with a worker.
    #[error("XDP fast path: {0}")]
    FastPath(#[from] portcullis_xdp::FastPathError),
    /// A pair asked for by its port (a takeover) is not a pair's first port in any
    /// worker's slice, or is in use.
    #[error("media port {0} is not a free pair of this data plane")]
    PortUnavailable(u16),
    /// A media port cannot be bound (in use by another program, address not local…).
    #[error("bind media port {addr}: {source}")]
    Bind {
        /// The address and port.
        addr: std::net::SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The media port range needs more sockets than the process may open.
    #[error(
        "the media port range needs {needed} file descriptors ({counted}, plus {open} \
         already open) but RLIMIT_NOFILE is {limit}: raise LimitNOFILE (the packaged unit \
         sets 1048576){remedy} or narrow media.port_min..port_max"
    )]
    TooFewDescriptors {
        /// Descriptors the range needs plus descriptors already open and a reserve.
        needed: u64,
        /// Descriptors open before binding.
        open: u64,
        /// The soft limit after raising it to the hard limit.
        limit: u64,
        /// Which sockets take a descriptor with this backend.
        counted: &'static str,
        /// Backend-specific advice, empty or starting with ", ".
        remedy: &'static str,
    },
}

impl DataplaneError {
    /// An I/O error of the named operation.
    pub fn io(what: &'static str, source: std::io::Error) -> Self {
        DataplaneError::Io { what, source }
    }
}

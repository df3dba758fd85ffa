//! Deterministic multi-endpoint simulation (quinn-style): an in-memory network
//! with virtual time and a seeded RNG that drops, duplicates and delays
//! (hence reorders) datagrams, driving any number of sans-IO nodes.
//!
//! Not part of the stable API: it exists so transaction, dialog and B2BUA tests
//! can share one harness. A node implements [`SimNode`]; [`Sim::run`] advances
//! virtual time from event to event (packet delivery or node timer) until every
//! node is idle and the network is empty, or a time/step bound is hit.
//!
//! Invariants: the same seed, config and node behaviour give the same run
//! (no wall clock, no hash-order dependence in the harness); every loop is
//! bounded by `max_steps`.

pub mod ua;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::time::Timestamp;
use crate::transaction::{Transmit, Transport};

/// splitmix64: tiny, seedable, good enough for fault injection.
#[derive(Clone, Debug)]
pub struct SimRng(u64);

impl SimRng {
    /// A generator seeded with `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p` (clamped to 0..=1).
    pub fn chance(&mut self, p: f64) -> bool {
        // 53 random mantissa bits → uniform in [0, 1).
        let x = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        x < p.clamp(0.0, 1.0)
    }

    /// Uniform in `lo..=hi` (returns `lo` when `hi <= lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// Impairments applied to every datagram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetConfig {
    /// Probability a datagram is dropped.
    pub loss: f64,
    /// Probability a delivered datagram is delivered twice (independent delays).
    pub duplicate: f64,
    /// One-way delay bounds; a random delay per copy reorders datagrams.
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl NetConfig {
    /// A perfect network with a fixed 10 ms delay.
    #[must_use]
    pub fn perfect() -> Self {
        Self {
            loss: 0.0,
            duplicate: 0.0,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
        }
    }

    /// 20% loss, 20% duplication, 10–400 ms delay (reordering).
    #[must_use]
    pub fn hostile() -> Self {
        Self {
            loss: 0.2,
            duplicate: 0.2,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(400),
        }
    }
}

/// A datagram in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub transport: Transport,
    pub bytes: Vec<u8>,
}

/// Network counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    pub sent: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub delivered: u64,
    /// Datagrams to an address no node owns.
    pub unroutable: u64,
}

/// The in-memory network.
#[derive(Debug)]
pub struct Network {
    pub cfg: NetConfig,
    rng: SimRng,
    in_flight: BTreeMap<(Timestamp, u64), Datagram>,
    seq: u64,
    pub stats: NetStats,
}

impl Network {
    /// A network with impairments `cfg` driven by `seed`.
    #[must_use]
    pub fn new(cfg: NetConfig, seed: u64) -> Self {
        Self {
            cfg,
            rng: SimRng::new(seed),
            in_flight: BTreeMap::new(),
            seq: 0,
            stats: NetStats::default(),
        }
    }

    /// Queues one datagram, applying loss, duplication and delay.
    pub fn send(&mut self, now: Timestamp, d: Datagram) {
        self.stats.sent += 1;
        if self.rng.chance(self.cfg.loss) {
            self.stats.dropped += 1;
            return;
        }
        let lo = u64::try_from(self.cfg.min_delay.as_millis()).unwrap_or(u64::MAX);
        let hi = u64::try_from(self.cfg.max_delay.as_millis()).unwrap_or(u64::MAX);
        if self.rng.chance(self.cfg.duplicate) {
            self.stats.duplicated += 1;
            let at = now + Duration::from_millis(self.rng.range(lo, hi));
            self.seq += 1;
            self.in_flight.insert((at, self.seq), d.clone());
        }
        let at = now + Duration::from_millis(self.rng.range(lo, hi));
        self.seq += 1;
        self.in_flight.insert((at, self.seq), d);
    }

    /// Earliest delivery time.
    #[must_use]
    pub fn next_delivery(&self) -> Option<Timestamp> {
        self.in_flight.keys().next().map(|(at, _)| *at)
    }

    /// Removes the next datagram due at `now`.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<Datagram> {
        let (&key, _) = self
            .in_flight
            .iter()
            .next()
            .filter(|((at, _), _)| *at <= now)?;
        self.in_flight.remove(&key)
    }

    /// Datagrams in flight.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

/// A sans-IO endpoint the simulation can drive.
pub trait SimNode {
    /// The address datagrams to this node are delivered to.
    fn addr(&self) -> SocketAddr;
    /// A datagram arrived.
    fn handle_datagram(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        transport: Transport,
        bytes: &[u8],
    );
    /// `poll_timeout` was reached.
    fn handle_timeout(&mut self, now: Timestamp);
    /// Next datagram to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// Next time the node must be woken.
    fn poll_timeout(&self) -> Option<Timestamp>;
}

/// Boxed nodes, so one simulation can mix node types (`Sim<Box<dyn SimNode>>`).
impl<T: SimNode + ?Sized> SimNode for Box<T> {
    fn addr(&self) -> SocketAddr {
        (**self).addr()
    }
    fn handle_datagram(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        transport: Transport,
        bytes: &[u8],
    ) {
        (**self).handle_datagram(now, from, transport, bytes);
    }
    fn handle_timeout(&mut self, now: Timestamp) {
        (**self).handle_timeout(now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        (**self).poll_transmit()
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        (**self).poll_timeout()
    }
}

/// Why [`Sim::run`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// No timers anywhere and nothing in flight.
    Idle,
    /// The time bound was reached with work left.
    TimeLimit,
    /// The step budget ran out (a livelock).
    StepLimit,
}

/// Nodes plus network plus virtual clock.
#[derive(Debug)]
pub struct Sim<N> {
    pub now: Timestamp,
    pub net: Network,
    pub nodes: Vec<N>,
}

impl<N: SimNode> Sim<N> {
    /// A simulation starting at time zero.
    #[must_use]
    pub fn new(net: Network, nodes: Vec<N>) -> Self {
        Self {
            now: Timestamp::ZERO,
            net,
            nodes,
        }
    }

    /// Moves every node's pending transmits into the network.
    fn flush(&mut self) {
        for node in &mut self.nodes {
            let from = node.addr();
            // Work budget per node per step.
            for _ in 0..10_000 {
                let Some(t) = node.poll_transmit() else { break };
                self.net.send(
                    self.now,
                    Datagram {
                        from,
                        to: t.dest,
                        transport: t.transport,
                        bytes: t.bytes,
                    },
                );
            }
        }
    }

    /// Earliest pending event (delivery or node timer).
    fn next_event(&self) -> Option<Timestamp> {
        let timers = self.nodes.iter().filter_map(SimNode::poll_timeout).min();
        match (timers, self.net.next_delivery()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Processes one instant: advances to the next event, delivers what is due,
    /// fires due timers. Returns `false` when there is nothing left to do.
    pub fn step(&mut self) -> bool {
        self.flush();
        let Some(next) = self.next_event() else {
            return false;
        };
        self.now = self.now.max(next);
        while let Some(d) = self.net.pop_due(self.now) {
            match self.nodes.iter_mut().find(|n| n.addr() == d.to) {
                Some(node) => {
                    self.net.stats.delivered += 1;
                    node.handle_datagram(self.now, d.from, d.transport, &d.bytes);
                }
                None => self.net.stats.unroutable += 1,
            }
        }
        for node in &mut self.nodes {
            if node.poll_timeout().is_some_and(|at| at <= self.now) {
                node.handle_timeout(self.now);
            }
        }
        self.flush();
        true
    }

    /// Runs until idle, until virtual time passes `until`, or `max_steps` steps.
    pub fn run(&mut self, until: Timestamp, max_steps: usize) -> RunEnd {
        for _ in 0..max_steps {
            match self.next_event() {
                None => {
                    self.flush();
                    if self.next_event().is_none() {
                        return RunEnd::Idle;
                    }
                }
                Some(at) if at > until => return RunEnd::TimeLimit,
                Some(_) => {}
            }
            if !self.step() {
                return RunEnd::Idle;
            }
        }
        RunEnd::StepLimit
    }
}

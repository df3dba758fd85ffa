//! The worker's side of the XDP fast path (`portcullis-xdp`): which ports of a pair the
//! kernel forwards, and how its counters come back.
//!
//! A pair is promoted when, and only when, both legs are locked ([`LegState::Locked`]),
//! have heard their peer, carry plain RTP both ways (no SRTP context, no ICE), are not on
//! hold, cannot move by NAT rebinding (`relearn_after`: the worker must see the peer's
//! silence itself), and agree on RTCP multiplexing; and when both legs' realms are
//! forwarded in the kernel and are of one family (the program rewrites within IPv4 or
//! within IPv6: a pair bridging the two stays with the worker). Then the RTP port of each leg is
//! promoted (its packets from the locked peer leave from the other leg's RTP port to that
//! leg's peer), and without rtcp-mux the RTCP ports too. Anything else the program passes
//! up: packets from other sources, STUN, non-RTP, ports not promoted.
//!
//! The promoted routes are recomputed from the legs after every command for the pair and
//! at every housekeeping visit ([`FastSync::sync`]): a leg that starts learning again (new
//! signalled address), goes on hold, gains SRTP or ICE, or latches a new RTCP source is
//! demoted, or its route replaced, there; `Remove` demotes the whole pair
//! ([`FastSync::clear`]). No syscall is made on the packet path.
//!
//! Counters: a demoted port's final figures are banked in the leg's counters
//! ([`crate::counters::FastBank`]); a promoted port's live ones are read by whoever reads
//! the pair's statistics ([`crate::Dataplane::stats`]). Every promotion and demotion of a
//! leg's RTP port also closes the worker's own RTP measurement period (banked, then
//! restarted), so the RFC 3550 figures of a call add up periods that never overlap.
//! Housekeeping reads the live figures of each promoted port once per visit: the
//! worker's packet totals and the leg's last-media time (inactivity) follow the kernel.
//!
//! Addresses: a leg's ports are those of its leg slot in the worker's [`SocketPlan`],
//! on its realm's address on the attached interfaces ([`FastPathConfig::local_ips`]).
//! The program's map is keyed by port and family, so a realm whose port range meets that
//! of another realm of the same family is left to the workers ([`kernel_ips`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use portcullis_rtp::stats::RtpStats;
use portcullis_xdp::{FastLeg, FastPath, FastPathStats, LegCounters, LegKey, LegTable, PortKind};

use crate::counters::{
    FastLive, PairStats, StreamCounters, WorkerCounters, WorkerShared, FAST_RTCP, FAST_RTP,
};
use crate::leg::Leg;
use crate::realm::SocketPlan;
use crate::types::{FastPathConfig, LegState, RealmConfig};

/// What a worker needs of the program's leg table; a trait so unit tests can stand in
/// for the kernel.
pub(crate) trait KernelTable: Send {
    /// Start forwarding `leg` in the kernel.
    fn promote(&mut self, leg: &FastLeg) -> Result<(), String>;
    /// Stop; the port's final counters.
    fn demote(&mut self, key: LegKey) -> Option<LegCounters>;
    /// A promoted port's live counters.
    fn read(&self, key: LegKey) -> Option<LegCounters>;
}

impl KernelTable for LegTable {
    fn promote(&mut self, leg: &FastLeg) -> Result<(), String> {
        LegTable::promote(self, leg).map_err(|e| e.to_string())
    }

    fn demote(&mut self, key: LegKey) -> Option<LegCounters> {
        LegTable::demote(self, key).ok().flatten()
    }

    fn read(&self, key: LegKey) -> Option<LegCounters> {
        self.read_counters(key).ok().flatten()
    }
}

/// A promoted port: its route, and how much of its live figures the worker's totals
/// already hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Promoted {
    leg: FastLeg,
    seen_packets: u64,
    seen_bytes: u64,
}

/// Port index within a pair (`side * 2 + rtcp`): A RTP, A RTCP, B RTP, B RTCP.
const PORTS: usize = 4;

/// The address the program knows the RTP (or, with `rtcp`, the RTCP) port of leg slot
/// `slot` by: its port in `plan` on its realm's address in `ips`. `None` when the realm
/// is not forwarded in the kernel.
fn local_addr(
    plan: &SocketPlan,
    ips: &[Option<IpAddr>],
    slot: u32,
    rtcp: bool,
) -> Option<SocketAddr> {
    let realm = plan.realm_of_leg(slot)?;
    let ip = (*ips.get(usize::from(realm.0))?)?;
    let port = plan.port_of_leg(slot).checked_add(u16::from(rtcp))?;
    Some(SocketAddr::new(ip, port))
}

/// The address of each realm the program forwards for (`local_ips`, by realm), less the
/// realms it cannot tell apart: its map is keyed by port and family, so two realms of one
/// family whose port ranges meet (on two addresses) both stay with the workers.
pub(crate) fn kernel_ips(
    local_ips: &[Option<IpAddr>],
    realms: &[RealmConfig],
) -> Vec<Option<IpAddr>> {
    let ip = |r: usize| local_ips.get(r).copied().flatten();
    (0..realms.len())
        .map(|r| {
            let mine = ip(r)?;
            let shared = realms.iter().enumerate().any(|(o, other)| {
                let me = &realms[r];
                o != r
                    && ip(o).is_some_and(|x| x.is_ipv4() == mine.is_ipv4())
                    && me.port_min <= other.port_max
                    && other.port_min <= me.port_max
            });
            if shared {
                tracing::warn!(
                    realm = r,
                    "media realm shares port numbers with another realm of its family: \
                     its legs stay off the fast path"
                );
                return None;
            }
            Some(mine)
        })
        .collect()
}

/// One worker's promoted ports.
pub(crate) struct FastSync {
    table: Box<dyn KernelTable>,
    /// Where every socket of the slice is (a leg's ports are its leg slot's).
    plan: Arc<SocketPlan>,
    /// Our address of each realm for the program ([`kernel_ips`]), by realm.
    ips: Vec<Option<IpAddr>>,
    ports: Vec<[Option<Promoted>; PORTS]>,
}

impl FastSync {
    pub(crate) fn new(
        table: Box<dyn KernelTable>,
        plan: Arc<SocketPlan>,
        ips: Vec<Option<IpAddr>>,
    ) -> FastSync {
        let pairs = plan.pairs() as usize;
        FastSync {
            table,
            plan,
            ips,
            ports: vec![[None; PORTS]; pairs],
        }
    }

    fn local(&self, slot: u32, rtcp: bool) -> Option<SocketAddr> {
        local_addr(&self.plan, &self.ips, slot, rtcp)
    }

    /// Whether any port of `pair` is promoted.
    pub(crate) fn promoted(&self, pair: usize) -> bool {
        self.ports
            .get(pair)
            .is_some_and(|p| p.iter().any(Option::is_some))
    }

    /// The routes `legs` (on leg slots `slots`) call for (see the module documentation).
    fn desired(&self, slots: [u32; 2], legs: &[Leg; 2]) -> [Option<FastLeg>; PORTS] {
        let mut out = [None; PORTS];
        let (Some(la), Some(lb)) = (self.local(slots[0], false), self.local(slots[1], false))
        else {
            return out;
        };
        // The program rewrites within one family: IPv4/IPv6 interworking is the worker's.
        let v4 = la.is_ipv4();
        if lb.is_ipv4() != v4 {
            return out;
        }
        let locals = [la, lb];
        let ok = |l: &Leg| {
            l.armed
                && l.state() == LegState::Locked
                && l.heard
                && l.peer.is_some_and(|p| p.is_ipv4() == v4)
                && l.srtp_in.is_none()
                && l.srtp_out.is_none()
                && l.ice.is_none()
                && !l.flags.held
                && !l.learn.rebinds()
                // UDPTL is not RTP; a leg the worker plays DTMF into keeps its stream.
                && !l.flags.udptl
                && l.flags.dtmf.generate.is_none()
        };
        if !(ok(&legs[0]) && ok(&legs[1])) || legs[0].flags.rtcp_mux != legs[1].flags.rtcp_mux {
            return out;
        }
        let mux = legs[0].flags.rtcp_mux;
        for s in 0..2 {
            let (leg, other) = (&legs[s], &legs[1 - s]);
            let (Some(peer), Some(out_peer)) = (leg.peer, other.peer) else {
                return [None; PORTS];
            };
            out[s * 2] = Some(FastLeg {
                local: locals[s],
                peer,
                out_local: locals[1 - s],
                out_peer,
                kind: PortKind::Rtp,
                clock_rate: leg.clock_rate,
                // Telephone-events the worker detects always go up to it.
                user_payload_type: leg.flags.dtmf.detect,
            });
            if !mux {
                let rtcp = (self.local(slots[s], true), self.local(slots[1 - s], true));
                if let (Some(peer), Some(out_peer), (Some(local), Some(out_local))) =
                    (leg.rtcp_peer, other.rtcp_peer, rtcp)
                {
                    if peer.is_ipv4() == v4 && out_peer.is_ipv4() == v4 {
                        out[s * 2 + 1] = Some(FastLeg {
                            local,
                            peer,
                            out_local,
                            out_peer,
                            kind: PortKind::Rtcp,
                            clock_rate: leg.clock_rate,
                            user_payload_type: None,
                        });
                    }
                }
            }
        }
        out
    }

    /// Brings the promoted ports of `pair` (on leg slots `slots`) in line with its legs.
    pub(crate) fn sync(
        &mut self,
        pair: usize,
        slots: [u32; 2],
        legs: &mut [Leg; 2],
        lc: [&StreamCounters; 2],
        w: &WorkerCounters,
    ) {
        let want = self.desired(slots, legs);
        self.apply(pair, want, legs, lc, w);
    }

    /// Demotes every port of `pair` (the pair is removed or re-armed from scratch).
    pub(crate) fn clear(
        &mut self,
        pair: usize,
        legs: &mut [Leg; 2],
        lc: [&StreamCounters; 2],
        w: &WorkerCounters,
    ) {
        if self.promoted(pair) {
            self.apply(pair, [None; PORTS], legs, lc, w);
        }
    }

    fn apply(
        &mut self,
        pair: usize,
        want: [Option<FastLeg>; PORTS],
        legs: &mut [Leg; 2],
        lc: [&StreamCounters; 2],
        w: &WorkerCounters,
    ) {
        let FastSync { table, ports, .. } = self;
        let Some(have) = ports.get_mut(pair) else {
            return;
        };
        for (s, (leg, c)) in legs.iter_mut().zip(lc).enumerate() {
            let changed =
                |have: &[Option<Promoted>; PORTS], i: usize| have[i].map(|p| p.leg) != want[i];
            if !(changed(have, s * 2) || changed(have, s * 2 + 1)) {
                continue;
            }
            c.fast_write(|c| {
                for (k, bit) in [FAST_RTP, FAST_RTCP].into_iter().enumerate() {
                    let i = s * 2 + k;
                    if !changed(have, i) {
                        continue;
                    }
                    if let Some(old) = have[i].take() {
                        if let Some(f) = table.demote(LegKey::new(old.leg.local)) {
                            bank(c, &f, k == 0);
                            w.fast_packets.add(f.packets.saturating_sub(old.seen_packets));
                            w.fast_bytes.add(f.bytes.saturating_sub(old.seen_bytes));
                        }
                        c.fast.ports.set(c.fast.ports.get() & !bit);
                        w.fast_ports.set(w.fast_ports.get().saturating_sub(1));
                    }
                    if k == 0 {
                        close_worker_period(c, leg);
                    }
                    if let Some(new) = want[i] {
                        match table.promote(&new) {
                            Ok(()) => {
                                have[i] = Some(Promoted {
                                    leg: new,
                                    seen_packets: 0,
                                    seen_bytes: 0,
                                });
                                c.fast.ports.set(c.fast.ports.get() | bit);
                                w.fast_ports.add(1);
                            }
                            Err(e) => {
                                w.fast_errors.add(1);
                                tracing::warn!(port = new.local.port(), error = %e, "fast path promotion refused");
                            }
                        }
                    }
                }
            });
        }
    }

    /// Reads the live figures of the promoted ports of `pair`: the worker's totals take
    /// what was forwarded since the last read, each leg's last-media time the kernel's
    /// (`now_us` on the worker's clock and `mono_ns` on `CLOCK_MONOTONIC`, read together).
    pub(crate) fn poll(
        &mut self,
        pair: usize,
        legs: &mut [Leg; 2],
        w: &WorkerCounters,
        now_us: u64,
        mono_ns: u64,
    ) {
        let FastSync { table, ports, .. } = self;
        let Some(have) = ports.get_mut(pair) else {
            return;
        };
        for (i, slot) in have.iter_mut().enumerate() {
            let Some(p) = slot.as_mut() else { continue };
            let Some(c) = table.read(LegKey::new(p.leg.local)) else {
                continue;
            };
            w.fast_packets.add(c.packets.saturating_sub(p.seen_packets));
            w.fast_bytes.add(c.bytes.saturating_sub(p.seen_bytes));
            p.seen_packets = p.seen_packets.max(c.packets);
            p.seen_bytes = p.seen_bytes.max(c.bytes);
            if c.last_seen_ns > 0 {
                let age_us = mono_ns.saturating_sub(c.last_seen_ns) / 1000;
                if let Some(leg) = legs.get_mut(i / 2) {
                    leg.last_rx_us = leg.last_rx_us.max(now_us.saturating_sub(age_us));
                }
            }
        }
    }
}

/// Adds a demoted port's final figures to the leg's bank.
fn bank(c: &StreamCounters, f: &LegCounters, rtp: bool) {
    c.fast.packets.add(f.packets);
    c.fast.bytes.add(f.bytes);
    if rtp {
        c.fast.rtp_expected.add(f.rtp_expected);
        c.fast.rtp_received.add(f.rtp_received);
        if f.rtp_received > 0 {
            c.fast.rtp_jitter.set(u64::from(f.rtp_jitter));
        }
    }
}

/// Banks the worker's RTP measurement of the leg and starts a new one.
fn close_worker_period(c: &StreamCounters, leg: &mut Leg) {
    let (expected, received) = (c.rtp_expected.get(), c.rtp_received.get());
    c.fast.rtp_expected.add(expected);
    c.fast.rtp_received.add(received);
    if received > 0 {
        c.fast.rtp_jitter.set(c.rtp_jitter.get());
    }
    c.rtp_expected.set(0);
    c.rtp_received.set(0);
    c.rtp_jitter.set(0);
    leg.stats = RtpStats::new();
}

/// The data plane's handle on the fast path: keeps the program attached, reads live
/// counters for [`crate::Dataplane::stats`] and the program's own counters for metrics.
#[derive(Debug)]
pub(crate) struct FastReader {
    program: Arc<FastPath>,
    table: LegTable,
    /// Our address of each realm for the program ([`kernel_ips`]), by realm.
    ips: Vec<Option<IpAddr>>,
}

impl FastReader {
    pub(crate) fn new(
        cfg: &FastPathConfig,
        realms: &[RealmConfig],
    ) -> Result<FastReader, portcullis_xdp::FastPathError> {
        Ok(FastReader {
            program: cfg.program.clone(),
            table: cfg.program.table()?,
            ips: kernel_ips(&cfg.local_ips, realms),
        })
    }

    /// A worker's [`FastSync`] over its own table, for the sockets of `plan`.
    pub(crate) fn for_worker(
        &self,
        plan: Arc<SocketPlan>,
    ) -> Result<FastSync, portcullis_xdp::FastPathError> {
        Ok(FastSync::new(
            Box::new(self.program.table()?),
            plan,
            self.ips.clone(),
        ))
    }

    /// Both legs' counters of a pair on leg slots `slots` of `plan`, with the fast path's
    /// share.
    pub(crate) fn pair_stats(
        &self,
        plan: &SocketPlan,
        slots: [u32; 2],
        a: &StreamCounters,
        b: &StreamCounters,
    ) -> PairStats {
        let live = |side: usize, ports: u64| {
            live_of(ports, |rtcp| {
                slots
                    .get(side)
                    .and_then(|&slot| local_addr(plan, &self.ips, slot, rtcp))
                    .and_then(|local| self.table.read_counters(LegKey::new(local)).ok().flatten())
                    .unwrap_or_default()
            })
        };
        PairStats::read_fast(a, b, &live)
    }

    /// The program's counters (forwarded, passed up and why).
    pub(crate) fn program_stats(&self) -> Option<FastPathStats> {
        self.table.stats().ok()
    }
}

/// The two leg counter blocks of `pair`.
pub(crate) fn pair_counters(shared: &WorkerShared, pair: usize) -> Option<[&StreamCounters; 2]> {
    let a = shared.legs.get(pair * 2)?;
    let b = shared.legs.get(pair * 2 + 1)?;
    Some([&**a, &**b])
}

impl crate::Dataplane {
    /// Whether the XDP fast path is on.
    #[must_use]
    pub fn fast_path(&self) -> bool {
        self.fast.is_some()
    }

    /// The XDP program's counters (packets forwarded, and why others went up to the
    /// workers); `None` when the fast path is off or its map cannot be read.
    #[must_use]
    pub fn fast_path_stats(&self) -> Option<FastPathStats> {
        self.fast.as_ref()?.program_stats()
    }
}

/// What the program forwarded on a leg's ports so far: the RTP port's packets, bytes and
/// RTP figures, and the RTCP port's packets and bytes, each where `ports` has its flag
/// ([`FAST_RTP`], [`FAST_RTCP`]). `read(rtcp)` reads one port's counters.
fn live_of(ports: u64, read: impl Fn(bool) -> LegCounters) -> FastLive {
    let mut out = FastLive::default();
    if ports & FAST_RTP != 0 {
        let c = read(false);
        out.packets += c.packets;
        out.bytes += c.bytes;
        out.rtp_expected = c.rtp_expected;
        out.rtp_received = c.rtp_received;
        out.rtp_jitter = u64::from(c.rtp_jitter);
    }
    if ports & FAST_RTCP != 0 {
        let c = read(true);
        out.packets += c.packets;
        out.bytes += c.bytes;
    }
    out
}

#[cfg(test)]
#[path = "fastpath_tests.rs"]
mod tests;

//! [`DataplaneMedia`]: the engine's [`MediaControl`] over the running
//! [`Dataplane`] (commands on the worker rings, never a wait).
//!
//! Invariants: a [`MediaId`] is never reused; a full command ring on
//! `allocate`/`update` is reported as [`MediaError::RingFull`] so the engine
//! refuses the call (`503`); a `remove` that finds the ring full keeps the slot
//! reserved and is retried on the next [`DataplaneMedia::poll_events`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use portcullis_dataplane::{
    Dataplane, DataplaneError, DtmfFlags, EndpointLearning as DpLearning, Event, IceLite,
    LegResume, RealmId as DpRealm, Side as DpSide, StreamFlags, StreamPairHandle, StreamParams,
};
use portcullis_engine::config::EndpointLearning;
use portcullis_engine::media::{
    DtmfEvent, LegMediaStats, MediaAllocation, MediaControl, MediaError, MediaEvent, MediaId,
    MediaLegParams, MediaStats, RealmId, Side, SrtpKeyMaterial, SrtpSuite, StreamKind,
};
use portcullis_rtp::srtp::{SrtpKeys, SrtpProfile};

/// A data plane event for the engine task: the engine's event, and for a latch the
/// source latched (the task logs both in the call's span, then hands the event on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaNote {
    /// What the engine is told.
    pub event: MediaEvent,
    /// `Latched`: the address the leg now sends to.
    pub latched: Option<SocketAddr>,
}

impl MediaNote {
    /// The media allocation the event is about.
    pub fn media(&self) -> MediaId {
        match self.event {
            MediaEvent::Inactive(id)
            | MediaEvent::Latched(id, _)
            | MediaEvent::SrtpFailures(id, _, _)
            | MediaEvent::Dtmf(id, _, _) => id,
        }
    }

    /// One log line for the event (the caller enters the call's span first).
    pub fn log(&self) {
        let media = self.media().0;
        match self.event {
            MediaEvent::Latched(_, side) => match self.latched {
                Some(addr) => tracing::debug!(media, ?side, %addr, "media source latched"),
                None => tracing::debug!(media, ?side, "media source latched"),
            },
            MediaEvent::Inactive(_) => {
                tracing::info!(media, "no media on either leg for the inactivity timeout");
            }
            MediaEvent::SrtpFailures(_, side, count) => {
                tracing::warn!(media, ?side, count, "SRTP authentication failures");
            }
            MediaEvent::Dtmf(_, side, ev) => {
                tracing::debug!(
                    media,
                    ?side,
                    event = ev.event,
                    duration = ev.duration,
                    "DTMF event"
                );
            }
        }
    }
}

/// Removals retried per poll (work budget).
const REMOVE_RETRY_BUDGET: usize = 256;

/// The engine's media controller over the data plane.
#[derive(Debug)]
pub struct DataplaneMedia {
    dp: Arc<Dataplane>,
    /// Advertised address of each media realm, by realm id.
    realm_ips: Vec<IpAddr>,
    next: u64,
    pairs: HashMap<MediaId, StreamPairHandle>,
    by_handle: HashMap<StreamPairHandle, MediaId>,
    /// Released pairs whose `Remove` met a full ring.
    pending_remove: Vec<StreamPairHandle>,
    /// Events the data plane lost to full event rings.
    pub events_lost: u64,
    /// Where each pair's legs latched (an active/standby pair carries it over).
    latched: HashMap<MediaId, [Option<SocketAddr>; 2]>,
    /// State to carry on for the pair restored on the port (leg A) next.
    staged: HashMap<u16, [LegResume; 2]>,
    /// A standby's pairs armed ahead of a takeover, by (leg A realm, leg A port).
    prearmed: HashMap<(u16, u16), Prearmed>,
}

/// A pair a standby armed from a replicated call ([`DataplaneMedia::prearm`]): it relays
/// as soon as the service address moves here, before the takeover restores the call.
#[derive(Debug)]
struct Prearmed {
    /// The call's durable key.
    key: String,
    handle: StreamPairHandle,
    realms: [RealmId; 2],
    ports: [u16; 2],
    params: [MediaLegParams; 2],
    resume: [LegResume; 2],
}

/// One stream of a call to arm ahead: its ports, how its legs are programmed, what the
/// data plane carries over.
pub type PrearmStream = ([u16; 2], [MediaLegParams; 2], [LegResume; 2]);

impl DataplaneMedia {
    /// A controller writing `realm_ips[r]` into the SDP toward a leg in realm `r` (the
    /// data plane's realms, in the same order).
    pub fn new(dp: Arc<Dataplane>, realm_ips: Vec<IpAddr>) -> Self {
        Self {
            dp,
            realm_ips,
            next: 1,
            pairs: HashMap::new(),
            by_handle: HashMap::new(),
            pending_remove: Vec::new(),
            events_lost: 0,
            latched: HashMap::new(),
            staged: HashMap::new(),
            prearmed: HashMap::new(),
        }
    }

    /// Arms, on a standby, the pairs of replicated call `key` (its streams in `realms`)
    /// as a takeover would, so that media flows as soon as the service address moves
    /// here; the takeover's restore then adopts them ([`MediaControl::restore`]). Arming
    /// again re-programs only what changed; a stream whose ports cannot be had here is
    /// left to the takeover. Returns whether a stream met a full command ring (worth
    /// another try).
    pub fn prearm(&mut self, key: &str, realms: [RealmId; 2], streams: &[PrearmStream]) -> bool {
        let wanted: Vec<(u16, u16)> = streams.iter().map(|s| (realms[0].0, s.0[0])).collect();
        let stale: Vec<(u16, u16)> = self
            .prearmed
            .iter()
            .filter(|(at, p)| p.key == key && !wanted.contains(at))
            .map(|(at, _)| *at)
            .collect();
        for at in stale {
            self.drop_prearmed(at);
        }
        let mut ring_full = false;
        for (ports, legs, resume) in streams {
            let at = (realms[0].0, ports[0]);
            if let Some(p) = self.prearmed.get_mut(&at) {
                if p.key == key && p.ports == *ports && p.realms == realms {
                    if p.params != *legs || p.resume != *resume {
                        let dp = [params(&legs[0]), params(&legs[1])];
                        if let Err(e) = self.dp.restore(&p.handle, dp, *resume) {
                            ring_full |= matches!(e, DataplaneError::RingFull(_));
                            self.drop_prearmed(at);
                            continue;
                        }
                        p.params = legs.clone();
                        p.resume = *resume;
                    }
                    continue;
                }
                self.drop_prearmed(at);
            }
            let Ok(h) = self.dp.allocate_at(realms.map(|r| DpRealm(r.0)), *ports) else {
                continue;
            };
            if let Err(e) = self
                .dp
                .restore(&h, [params(&legs[0]), params(&legs[1])], *resume)
            {
                ring_full |= matches!(e, DataplaneError::RingFull(_));
                self.remove_handle(h);
                continue;
            }
            self.prearmed.insert(
                at,
                Prearmed {
                    key: key.to_owned(),
                    handle: h,
                    realms,
                    ports: *ports,
                    params: legs.clone(),
                    resume: *resume,
                },
            );
        }
        ring_full
    }

    /// Releases the pairs armed ahead for call `key` (it ended on the active node).
    pub fn unprearm(&mut self, key: &str) {
        let ats: Vec<(u16, u16)> = self
            .prearmed
            .iter()
            .filter(|(_, p)| p.key == key)
            .map(|(at, _)| *at)
            .collect();
        for at in ats {
            self.drop_prearmed(at);
        }
    }

    /// Releases every pair armed ahead and not adopted (after a takeover).
    pub fn release_prearmed(&mut self) {
        let ats: Vec<(u16, u16)> = self.prearmed.keys().copied().collect();
        for at in ats {
            self.drop_prearmed(at);
        }
    }

    /// Pairs armed ahead now.
    pub fn prearmed(&self) -> usize {
        self.prearmed.len()
    }

    fn drop_prearmed(&mut self, at: (u16, u16)) {
        if let Some(p) = self.prearmed.remove(&at) {
            self.remove_handle(p.handle);
        }
    }

    fn remove_handle(&mut self, h: StreamPairHandle) {
        if let Err(DataplaneError::RingFull(_)) = self.dp.remove(&h) {
            self.pending_remove.push(h);
        }
    }

    /// What pair `id` carries over a takeover: the SRTP state its legs published and
    /// the peers they latched (`None`: unknown pair).
    pub fn ha_resume(&self, id: MediaId) -> Option<[LegResume; 2]> {
        let h = self.pairs.get(&id)?;
        let mut r = self.dp.resume_state(h)?;
        if let Some(l) = self.latched.get(&id) {
            r[0].latched = l[0];
            r[1].latched = l[1];
        }
        Some(r)
    }

    /// The state the next [`MediaControl::restore`] on `port_a` carries on (a call's
    /// streams each have their own leg A port: stage them all, restore the call, then
    /// [`Self::clear_staged`]).
    pub fn stage_resume(&mut self, port_a: u16, r: [LegResume; 2]) {
        self.staged.insert(port_a, r);
    }

    /// Forgets what was staged and not restored (a call refused).
    pub fn clear_staged(&mut self) {
        self.staged.clear();
    }

    /// The advertised addresses of `realms` (A's, B's).
    fn realm_addresses(&self, realms: [RealmId; 2]) -> Result<(IpAddr, IpAddr), MediaError> {
        let ip = |r: RealmId| {
            self.realm_ips
                .get(usize::from(r.0))
                .copied()
                .ok_or_else(|| MediaError::Other(format!("unknown media realm {}", r.0)))
        };
        Ok((ip(realms[0])?, ip(realms[1])?))
    }

    /// Pairs currently reserved by calls.
    pub fn active(&self) -> usize {
        self.pairs.len()
    }

    /// Retries pending removals, then drains the workers' event rings into engine events.
    pub fn poll_events(&mut self, out: &mut Vec<MediaNote>) {
        self.retry_removals();
        self.drain_events(out);
    }

    /// Retries the removals that met a full command ring (bounded per call). A second
    /// controller over the same data plane (the ng server beside the engine) calls this
    /// instead of [`Self::poll_events`], leaving the events to the engine.
    pub fn retry_removals(&mut self) {
        let pending = std::mem::take(&mut self.pending_remove);
        for (i, h) in pending.iter().enumerate() {
            if i >= REMOVE_RETRY_BUDGET {
                self.pending_remove.push(*h);
                continue;
            }
            if let Err(DataplaneError::RingFull(_)) = self.dp.remove(h) {
                self.pending_remove.push(*h);
            }
        }
    }

    /// Drains the workers' event rings into engine events (events about pairs this
    /// controller does not hold are dropped).
    fn drain_events(&mut self, out: &mut Vec<MediaNote>) {
        for ev in self.dp.poll_events() {
            match ev {
                Event::Latched { handle, side, addr } => {
                    if let Some(&id) = self.by_handle.get(&handle) {
                        let i = usize::from(side == DpSide::B);
                        if let Some(slot) = self.latched.entry(id).or_default().get_mut(i) {
                            *slot = Some(addr);
                        }
                        out.push(MediaNote {
                            event: MediaEvent::Latched(id, engine_side(side)),
                            latched: Some(addr),
                        });
                    }
                }
                Event::Inactive { handle } => {
                    if let Some(&id) = self.by_handle.get(&handle) {
                        out.push(MediaNote {
                            event: MediaEvent::Inactive(id),
                            latched: None,
                        });
                    }
                }
                Event::SrtpAuthFailures {
                    handle,
                    side,
                    count,
                } => {
                    if let Some(&id) = self.by_handle.get(&handle) {
                        out.push(MediaNote {
                            event: MediaEvent::SrtpFailures(id, engine_side(side), count),
                            latched: None,
                        });
                    }
                }
                Event::Dtmf {
                    handle,
                    side,
                    event,
                    duration,
                } => {
                    if let Some(&id) = self.by_handle.get(&handle) {
                        out.push(MediaNote {
                            event: MediaEvent::Dtmf(
                                id,
                                engine_side(side),
                                DtmfEvent { event, duration },
                            ),
                            latched: None,
                        });
                    }
                }
                Event::RingOverflow { worker, lost } => {
                    self.events_lost += lost;
                    tracing::warn!(worker = worker.0, lost, "data plane event ring overflowed");
                }
            }
        }
    }
}

fn engine_side(s: DpSide) -> Side {
    match s {
        DpSide::A => Side::A,
        DpSide::B => Side::B,
    }
}

fn keys(k: &SrtpKeyMaterial) -> SrtpKeys {
    SrtpKeys {
        profile: match k.suite {
            SrtpSuite::Aes128Sha1_80 => SrtpProfile::AesCm128HmacSha1_80,
            SrtpSuite::Aes128Sha1_32 => SrtpProfile::AesCm128HmacSha1_32,
        },
        master_key: k.key,
        master_salt: k.salt,
    }
}

/// One leg's worker parameters. RTCP goes to RTP port + 1 in the data plane (or is
/// multiplexed), so `peer_rtcp` needs no field of its own.
fn params(p: &MediaLegParams) -> StreamParams {
    StreamParams {
        peer: p.peer_rtp,
        srtp_in: p.srtp_in.as_ref().map(keys),
        srtp_out: p.srtp_out.as_ref().map(keys),
        flags: StreamFlags {
            learning: match p.learning.endpoint_learning {
                EndpointLearning::Heuristic => DpLearning::Heuristic,
                EndpointLearning::Strict => DpLearning::Strict,
                EndpointLearning::Delayed => DpLearning::Delayed,
                EndpointLearning::Off => DpLearning::Off,
            },
            rtcp_mux: p.rtcp_mux,
            held: p.held,
            udptl: p.kind == StreamKind::Udptl,
            dtmf: DtmfFlags {
                detect: p.dtmf.detect,
                drop_events: p.dtmf.drop_events,
                generate: p.dtmf.generate,
            },
        },
        relearn_after: p.learning.relearn_after,
        ice: p
            .ice_lite
            .as_ref()
            .and_then(|(ufrag, pwd)| IceLite::new(ufrag, pwd)),
        clock_rate: 8000,
    }
}

fn media_error(e: DataplaneError) -> MediaError {
    match e {
        DataplaneError::Exhausted => MediaError::NoCapacity,
        DataplaneError::RingFull(_) => MediaError::RingFull,
        other => MediaError::Other(other.to_string()),
    }
}

/// A leg's counters for the engine. RTP loss and jitter only once an RTP packet from the
/// leg's peer was measured (`None` before that).
fn leg(s: &portcullis_dataplane::LegStats) -> LegMediaStats {
    let measured = s.rtp_received > 0;
    LegMediaStats {
        rx_packets: s.rx_packets,
        rx_bytes: s.rx_bytes,
        tx_packets: s.tx_packets,
        tx_bytes: s.tx_bytes,
        rtp_lost: measured.then_some(s.rtp_lost),
        rtp_jitter_us: measured.then(|| u32::try_from(s.rtp_jitter_us).unwrap_or(u32::MAX)),
        rtp_source_rejected: s.rtp_source_rejected(),
    }
}

impl MediaControl for DataplaneMedia {
    fn allocate(&mut self, realms: [RealmId; 2]) -> Result<MediaAllocation, MediaError> {
        let (a_ip, b_ip) = self.realm_addresses(realms)?;
        let h = self
            .dp
            .allocate_pair_in(DpRealm(realms[0].0), DpRealm(realms[1].0))
            .map_err(media_error)?;
        let id = MediaId(self.next);
        self.next += 1;
        self.pairs.insert(id, h);
        self.by_handle.insert(h, id);
        Ok(MediaAllocation {
            id,
            a_port: h.port_a,
            b_port: h.port_b,
            a_ip,
            b_ip,
        })
    }

    fn update(
        &mut self,
        id: MediaId,
        a: &MediaLegParams,
        b: &MediaLegParams,
    ) -> Result<(), MediaError> {
        let h = self
            .pairs
            .get(&id)
            .ok_or_else(|| MediaError::Other(format!("unknown media id {}", id.0)))?;
        self.dp.update(h, params(a), params(b)).map_err(media_error)
    }

    fn release(&mut self, id: MediaId) {
        let Some(h) = self.pairs.remove(&id) else {
            return;
        };
        self.latched.remove(&id);
        self.by_handle.remove(&h);
        if let Err(DataplaneError::RingFull(_)) = self.dp.remove(&h) {
            self.pending_remove.push(h);
        }
    }

    fn dtmf(&mut self, id: MediaId, to: Side, event: DtmfEvent) -> Result<(), MediaError> {
        let h = self
            .pairs
            .get(&id)
            .ok_or_else(|| MediaError::Other(format!("unknown media id {}", id.0)))?;
        let side = match to {
            Side::A => DpSide::A,
            Side::B => DpSide::B,
        };
        self.dp
            .dtmf(h, side, event.event, event.duration)
            .map_err(media_error)
    }

    fn stats(&self, id: MediaId) -> Option<MediaStats> {
        let h = self.pairs.get(&id)?;
        let s = self.dp.stats(h)?;
        Some(MediaStats {
            a: leg(&s.a),
            b: leg(&s.b),
        })
    }

    fn restore(
        &mut self,
        realms: [RealmId; 2],
        ports: [u16; 2],
        a: &MediaLegParams,
        b: &MediaLegParams,
    ) -> Result<MediaAllocation, MediaError> {
        let (a_ip, b_ip) = self.realm_addresses(realms)?;
        let resume = self.staged.remove(&ports[0]).unwrap_or_default();
        let ahead = match self.prearmed.remove(&(realms[0].0, ports[0])) {
            Some(p) if p.ports == ports && p.realms == realms => Some(p),
            Some(p) => {
                self.remove_handle(p.handle);
                None
            }
            None => None,
        };
        let h = match ahead {
            // Armed ahead and relaying since the address moved: restored once more on the
            // same pair (the latest state, and the inactivity clock starts now).
            Some(p) => {
                if let Err(e) = self.dp.restore(&p.handle, [params(a), params(b)], resume) {
                    self.remove_handle(p.handle);
                    return Err(media_error(e));
                }
                p.handle
            }
            None => {
                let h = self
                    .dp
                    .allocate_at(realms.map(|r| DpRealm(r.0)), ports)
                    .map_err(media_error)?;
                if let Err(e) = self.dp.restore(&h, [params(a), params(b)], resume) {
                    self.remove_handle(h);
                    return Err(media_error(e));
                }
                h
            }
        };
        let id = MediaId(self.next);
        self.next += 1;
        self.pairs.insert(id, h);
        self.by_handle.insert(h, id);
        self.latched
            .insert(id, [resume[0].latched, resume[1].latched]);
        Ok(MediaAllocation {
            id,
            a_port: h.port_a,
            b_port: h.port_b,
            a_ip,
            b_ip,
        })
    }
}

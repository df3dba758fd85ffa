//! Export and restore of answered calls for an active/standby pair ([`crate::ha`]).
//!
//! The active node marks a call dirty on every change an established call depends
//! on (an in-dialog request received, a request sent on a leg, media reprogrammed
//! after an offer/answer, a session timer re-armed); its driver drains
//! [`B2bua::poll_ha_dirty`], exports each call with [`B2bua::export_call`] and
//! writes the snapshot out of the engine task. The standby restores each snapshot
//! with [`B2bua::restore_call`]: the call comes back `Answered`, indexed by both
//! dialogs, the pair of every stream (every anchored `m=` line) re-created on the
//! same ports in the same media realms, its session timers re-armed at their stored
//! deadlines (at once when already past), its local CSeqs moved [`CSEQ_JUMP`] ahead.
//!
//! What is not carried: transactions in flight at the crash (a peer retransmits a
//! request, which the new node answers; a response the dead node owed is lost, and
//! the peer's own timers end that transaction), calls not yet answered, and a
//! transfer, join or re-INVITE in progress (the snapshot before it stands).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::call::{ALeg, BLeg, Call, CallState, CallTimer, SessionLeg};
use super::route::Target;
use super::sdp_rewrite::{ix, MediaState};
use super::B2bua;
use crate::config::RedirectMode;
use crate::ha::{
    call_key, ALegSnapshot, BLegSnapshot, Blob, CallSnapshot, MediaSnapshot, PeerSnapshot,
    RestoreError, SessionSnapshot, TakeoverSnapshot, TimerSnapshot, CSEQ_JUMP, MAX_STREAMS,
    SNAPSHOT_FORMAT,
};
use crate::media::{MediaAllocation, MediaControl, MediaId, MediaLegParams, RealmId, Side};
use crate::time::Timestamp;
use crate::transaction::{parse_message, PeerAddr, TxId};

/// The engine's HA bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct HaTable {
    /// Dirty marking is on (`[ha]` configured).
    enabled: bool,
    /// Durable key → call, for every call exported or restored.
    keys: HashMap<String, u64>,
    /// Answered calls changed since the driver last looked.
    dirty: BTreeSet<u64>,
}

/// HA identity of one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HaCall {
    pub key: String,
    pub takeover: Option<TakeoverSnapshot>,
}

/// A server transaction id no real transaction has (the restored INVITE's was on
/// the dead node).
const NO_TX: TxId = TxId(u64::MAX);

impl<M: MediaControl> B2bua<M> {
    /// Turns dirty marking on or off (`[ha]` configured).
    pub fn set_ha(&mut self, enabled: bool) {
        self.ha.enabled = enabled;
        if !enabled {
            self.ha.dirty.clear();
        }
    }

    /// Next answered call whose durable state changed (export it).
    pub fn poll_ha_dirty(&mut self) -> Option<u64> {
        self.ha.dirty.pop_first()
    }

    /// Marks `call` dirty when HA is on and the call is answered.
    pub(super) fn ha_touch(&mut self, call: u64) {
        if self.ha.enabled
            && self
                .calls
                .get(&call)
                .is_some_and(|c| c.state == CallState::Answered)
        {
            self.ha.dirty.insert(call);
        }
    }

    /// The media pair of `call`'s first stream (`None`: bypassed, or no such call).
    #[must_use]
    pub fn media_of(&self, call: u64) -> Option<MediaId> {
        self.media_streams_of(call).first().copied()
    }

    /// The media pair of every stream of `call`, in `m=` line order (empty: bypassed,
    /// or no such call).
    #[must_use]
    pub fn media_streams_of(&self, call: u64) -> Vec<MediaId> {
        self.calls
            .get(&call)
            .and_then(|c| c.media.as_ref())
            .map(|m| m.ids().collect())
            .unwrap_or_default()
    }

    /// The durable key of `call` (exported or restored before), if any.
    #[must_use]
    pub fn ha_key(&self, call: u64) -> Option<&str> {
        self.calls.get(&call)?.ha.as_ref().map(|h| h.key.as_str())
    }

    /// The snapshot of answered `call`; `None` when it is not answered, has ended, or a
    /// transfer, join or re-INVITE is in progress (the previous snapshot stands; the
    /// call is dirty again when that settles). The call's durable key is fixed at its
    /// first export ([`call_key`] of its legs' Call-IDs then).
    pub fn export_call(&mut self, call: u64) -> Option<CallSnapshot> {
        let c = self.calls.get(&call)?;
        if c.state != CallState::Answered || c.busy() {
            return None;
        }
        if c.ha.is_none() {
            let key = call_key(c.a.invite.call_id().unwrap_or(""), &c.b.as_ref()?.call_id);
            self.ha.keys.insert(key.clone(), call);
            if let Some(c) = self.calls.get_mut(&call) {
                c.ha = Some(HaCall {
                    key,
                    takeover: None,
                });
            }
        }
        let c = self.calls.get(&call)?;
        let ha = c.ha.as_ref()?;
        let b = c.b.as_ref()?;
        let cfg = &c.cfg;
        let off = self.epoch_offset_ms;
        let wall = |t: Timestamp| t.as_millis() + off;
        let timers = c
            .timers
            .iter()
            .filter_map(|(k, at)| match k {
                CallTimer::Refresh(Side::A) => Some(TimerSnapshot::RefreshA { at_ms: wall(*at) }),
                CallTimer::Refresh(Side::B) => Some(TimerSnapshot::RefreshB { at_ms: wall(*at) }),
                CallTimer::SessionExpiry => Some(TimerSnapshot::SessionExpiry { at_ms: wall(*at) }),
                _ => None,
            })
            .collect();
        Some(CallSnapshot {
            format: SNAPSHOT_FORMAT,
            key: ha.key.clone(),
            call_id: call,
            route: c.route.clone(),
            a_calling: c.a_calling.clone(),
            calling: c.calling.clone(),
            called: c.called.clone(),
            a: ALegSnapshot {
                peer: peer(c.a.peer),
                trunk: Self::trunk_name(cfg, c.a.trunk),
                invite: Blob(c.a.invite.to_bytes()),
                tag: c.a.tag.clone(),
                contact: c.a.contact.clone(),
                dialog: c.a.dialog.clone()?,
            },
            b: BLegSnapshot {
                trunk: Self::trunk_name(cfg, b.target.trunk),
                called: b.target.called.clone(),
                redirect: b.target.redirect,
                target: b.target.addr,
                dest: peer(b.dest),
                call_id: b.call_id.clone(),
                tag: b.tag.clone(),
                contact: b.contact.clone(),
                invite: Blob(b.invite.to_bytes()),
                dialog: b.dialog.clone()?,
            },
            media: c.media.as_ref().map(MediaState::to_snapshot),
            session: c.session.map(|s| {
                s.map(|s| SessionSnapshot {
                    interval_ms: u64::try_from(s.interval.as_millis()).unwrap_or(u64::MAX),
                    we_refresh: s.we_refresh,
                })
            }),
            timers,
            setup_at_ms: wall(c.setup_at),
            answer_at_ms: wall(c.answer_at?),
            bound: c.bound.clone(),
            takeover: ha.takeover.clone(),
        })
    }

    /// Takes an answered call over from `s` (see the module docs); returns the new
    /// call id. The call's CDR will carry the takeover ([`crate::cdr::TakeoverRecord`]).
    ///
    /// # Errors
    /// The snapshot is of another format, already live here, names a trunk this
    /// node lacks, does not parse, or its media cannot be re-created.
    pub fn restore_call(&mut self, now: Timestamp, s: &CallSnapshot) -> Result<u64, RestoreError> {
        if s.format != SNAPSHOT_FORMAT {
            return Err(RestoreError::Format(s.format));
        }
        if self.ha.keys.contains_key(&s.key) {
            return Err(RestoreError::Duplicate(s.key.clone()));
        }
        let cfg = self.cfg.clone();
        let trunk = |name: &str| {
            cfg.trunk_by_name(name)
                .ok_or_else(|| RestoreError::UnknownTrunk(name.to_owned()))
        };
        let (a_trunk, b_trunk) = (trunk(&s.a.trunk)?, trunk(&s.b.trunk)?);
        let a_invite =
            parse_message(&s.a.invite.0).map_err(|_| RestoreError::Corrupt("A-leg INVITE"))?;
        let b_invite =
            parse_message(&s.b.invite.0).map_err(|_| RestoreError::Corrupt("B-leg INVITE"))?;
        let a_offer = match &s.media {
            Some(m) => m.last_from[0]
                .as_ref()
                .map(|b| portcullis_sip::sdp::SessionDescription::parse(&b.0))
                .transpose()
                .map_err(|_| RestoreError::Corrupt("SDP"))?,
            None => None,
        };
        // Media first: nothing is indexed until every stream's pair exists.
        let media = match &s.media {
            None => None,
            Some(m) => {
                // Each side's ports are in the realm its leg was in on the node that set
                // the call up (stored; the realm of its trunk in an older record).
                let realms = m
                    .leg_realms()
                    .unwrap_or([cfg.trunk_realm(a_trunk), cfg.trunk_realm(b_trunk)]);
                Some(self.restore_streams(realms, m)?)
            }
        };
        let id = self.next_call;
        self.next_call += 1;
        let off = self.epoch_offset_ms;
        let local = |ms: u64| Timestamp::from_millis(ms.saturating_sub(off));
        let jump = |mut d: crate::dialog::Dialog| {
            d.local_cseq = d.local_cseq.map(|c| c.saturating_add(CSEQ_JUMP));
            d
        };
        let a_key = (
            s.a.dialog.id.call_id.clone(),
            s.a.dialog.id.local_tag.clone(),
        );
        let b_key = (
            s.b.dialog.id.call_id.clone(),
            s.b.dialog.id.local_tag.clone(),
        );
        let takeover = TakeoverSnapshot {
            origin_call_id: s.takeover.as_ref().map_or(s.call_id, |t| t.origin_call_id),
            count: s.takeover.as_ref().map_or(0, |t| t.count).saturating_add(1),
            at_ms: now.as_millis() + off,
        };
        let session = s.session.map(|l| {
            l.map(|l| SessionLeg {
                interval: std::time::Duration::from_millis(l.interval_ms),
                we_refresh: l.we_refresh,
            })
        });
        let call = Call {
            id,
            cfg: cfg.clone(),
            state: CallState::Answered,
            a: ALeg {
                peer: peer_addr(s.a.peer),
                trunk: a_trunk,
                invite_tx: NO_TX,
                invite: a_invite,
                tag: s.a.tag.clone(),
                contact: s.a.contact.clone(),
                dialog: Some(jump(s.a.dialog.clone())),
                final_sent: true,
            },
            b: Some(
                BLeg::new(
                    Target {
                        trunk: b_trunk,
                        called: s.b.called.clone(),
                        redirect: s.b.redirect,
                        addr: s.b.target,
                    },
                    peer_addr(s.b.dest),
                    s.b.call_id.clone(),
                    s.b.tag.clone(),
                    s.b.contact.clone(),
                    b_invite,
                )
                .established(Some(jump(s.b.dialog.clone()))),
            ),
            route: s.route.clone(),
            numbers: self.router.translations(&s.route),
            targets: VecDeque::new(),
            redirect: RedirectMode::Follow,
            a_calling: s.a_calling.clone(),
            calling: s.calling.clone(),
            called: s.called.clone(),
            media,
            a_offer,
            offer_from: None,
            reinvite_pending: false,
            deferred_ack: None,
            answer_in_ack: None,
            timers: BTreeMap::new(),
            session,
            setup_at: local(s.setup_at_ms),
            answer_at: Some(local(s.answer_at_ms)),
            end_reason: None,
            final_status: Some(200),
            dialog_keys: vec![a_key.clone(), b_key.clone()],
            held_trunks: Vec::new(),
            tried: Vec::new(),
            bound: Vec::new(),
            last_failure: None,
            codec_refusal: None,
            client_txs: Vec::new(),
            server_txs: Vec::new(),
            redirects: 0,
            a_rseq: 0,
            prack_map: Vec::new(),
            rel1xx: None,
            transfer: None,
            join: None,
            ha: Some(HaCall {
                key: s.key.clone(),
                takeover: Some(takeover),
            }),
        };
        if let Some(ms) = &call.media {
            for st in &ms.streams {
                self.by_media.insert(st.alloc.id, id);
            }
        }
        self.calls.insert(id, call);
        self.live_calls += 1;
        self.by_dialog.insert(a_key, (id, Side::A));
        self.by_dialog.insert(b_key, (id, Side::B));
        self.ha.keys.insert(s.key.clone(), id);
        // Trunk slots and target bindings as the exporting node held them (a trunk
        // at its limit here still carries the call: it is established).
        for t in [a_trunk, b_trunk] {
            self.acquire_trunk(id, t);
        }
        for (name, addr) in &s.bound {
            self.targets.call_bound(name, *addr);
            if let Some(c) = self.calls.get_mut(&id) {
                c.bound.push((name.clone(), *addr));
            }
        }
        // Teams flags, codec policy and DTMF mode from this node's trunks, ICE as stored.
        if let Some(c) = self.calls.get_mut(&id) {
            let teams = [a_trunk, b_trunk].map(|t| c.cfg.is_teams_trunk(t));
            let policy = [a_trunk, b_trunk]
                .map(|t| c.cfg.trunk(t).map(|t| t.policy.clone()).unwrap_or_default());
            if let Some(ms) = c.media.as_mut() {
                for side in [Side::A, Side::B] {
                    ms.teams[ix(side)] = teams[ix(side)];
                    ms.codecs[ix(side)] = policy[ix(side)].codecs.clone();
                    ms.dtmf[ix(side)] = policy[ix(side)].dtmf;
                }
            }
        }
        for t in &s.timers {
            let (kind, at) = match *t {
                TimerSnapshot::RefreshA { at_ms } => (CallTimer::Refresh(Side::A), at_ms),
                TimerSnapshot::RefreshB { at_ms } => (CallTimer::Refresh(Side::B), at_ms),
                TimerSnapshot::SessionExpiry { at_ms } => (CallTimer::SessionExpiry, at_ms),
            };
            self.set_timer(id, kind, local(at).max(now));
        }
        // The trunk's endpoint learning, and the pair programmed once more with it.
        self.update_media(id);
        self.ha.dirty.insert(id);
        Ok(id)
    }

    /// Re-creates every stream of `m` on its stored ports in `realms`, in line order;
    /// on any failure releases what it re-created (a call is never carried on with a
    /// stream missing).
    fn restore_streams(
        &mut self,
        realms: [RealmId; 2],
        m: &MediaSnapshot,
    ) -> Result<MediaState, RestoreError> {
        if m.streams.is_empty() || m.streams.len() > MAX_STREAMS {
            return Err(RestoreError::Streams(m.streams.len()));
        }
        let mut params = Vec::with_capacity(m.streams.len());
        for (i, st) in m.streams.iter().enumerate() {
            if usize::try_from(st.mline).ok() != Some(i) {
                return Err(RestoreError::Corrupt("media line order"));
            }
            let [Some(pa), Some(pb)] = [st.legs[0].params(), st.legs[1].params()] else {
                return Err(RestoreError::Corrupt("SRTP key"));
            };
            params.push([pa, pb]);
        }
        let mut made: Vec<(MediaAllocation, [MediaLegParams; 2])> = Vec::new();
        for (st, [pa, pb]) in m.streams.iter().zip(params) {
            match self.media.restore(realms, st.ports, &pa, &pb) {
                Ok(mut alloc) => {
                    // The addresses the peers were told keep theirs.
                    alloc.a_ip = m.advertised_ip;
                    alloc.b_ip = m.advertised_ip_b.unwrap_or(m.advertised_ip);
                    made.push((alloc, [pa, pb]));
                }
                Err(e) => {
                    for (a, _) in &made {
                        self.media.release(a.id);
                    }
                    return Err(e.into());
                }
            }
        }
        let ids: Vec<MediaId> = made.iter().map(|(a, _)| a.id).collect();
        MediaState::from_snapshot(made, realms, m).ok_or_else(|| {
            for id in ids {
                self.media.release(id);
            }
            RestoreError::Corrupt("SDP")
        })
    }

    /// Forgets the durable key of a call that is being removed.
    pub(super) fn ha_forget(&mut self, call: u64) {
        self.ha.dirty.remove(&call);
        if let Some(key) = self
            .calls
            .get(&call)
            .and_then(|c| c.ha.as_ref())
            .map(|h| h.key.clone())
        {
            self.ha.keys.remove(&key);
        }
    }
}

fn peer(p: PeerAddr) -> PeerSnapshot {
    PeerSnapshot {
        transport: p.transport.into(),
        addr: p.addr,
    }
}

fn peer_addr(p: PeerSnapshot) -> PeerAddr {
    PeerAddr {
        transport: p.transport.into(),
        addr: p.addr,
        conn: None,
    }
}

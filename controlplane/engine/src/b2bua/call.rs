//! Call state: one A leg (we are UAS), at most one live B leg (we are UAC).
//!
//! Invariants: the A and B legs share nothing on the wire (own Call-ID, tags,
//! CSeq, Via, Contact); `state` only moves forward
//! (`Proceeding → Answered → Ended`, or `Proceeding → Ended`); an `Ended`
//! call has emitted its CDR, released its media and trunk slots, and only
//! lingers (64·T1) to ACK and BYE a late 2xx of a cancelled INVITE.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use portcullis_sip::sdp::SessionDescription;

use super::route::Target;
use super::sdp_rewrite::{MediaState, SideSnapshot};
use crate::cdr::EndReason;
use crate::config::{EngineConfig, RedirectMode, TrunkId};
use crate::dialog::Dialog;
use crate::media::Side;
use crate::time::Timestamp;
use crate::transaction::{PeerAddr, SipMsg, TxId};

/// Call-level timers (transaction timers live in the transaction layer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum CallTimer {
    /// Ringing too long: CANCEL B, answer A 480 (configurable).
    NoAnswer,
    /// RFC 4028 §10: the refresher sends a refresh at half the interval.
    Refresh(Side),
    /// RFC 4028 §10: no refresh before the interval ended.
    SessionExpiry,
    /// Retransmission of a reliable provisional toward A (RFC 3262 §3).
    Rel1xx,
    /// An ended call is removed.
    Linger,
}

/// Lifecycle of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallState {
    /// INVITE received, B leg being tried.
    Proceeding,
    /// A 2xx was relayed to the caller.
    Answered,
    /// Torn down; CDR emitted.
    Ended,
}

/// The caller's leg.
#[derive(Debug)]
pub(crate) struct ALeg {
    pub peer: PeerAddr,
    pub trunk: TrunkId,
    pub invite_tx: TxId,
    /// The INVITE as received (Via stamped).
    pub invite: SipMsg,
    /// Our To tag.
    pub tag: String,
    pub contact: String,
    pub dialog: Option<Dialog>,
    /// A final response was sent to the initial INVITE.
    pub final_sent: bool,
}

/// The callee's leg (one per attempt; failover replaces it).
#[derive(Debug)]
pub(crate) struct BLeg {
    pub target: Target,
    pub dest: PeerAddr,
    pub call_id: String,
    /// Our From tag.
    pub tag: String,
    pub contact: String,
    pub invite_tx: Option<TxId>,
    /// The INVITE as sent (dialog creation, auth retries).
    pub invite: SipMsg,
    pub dialog: Option<Dialog>,
    /// A provisional arrived: CANCEL is allowed (RFC 3261 §9.1).
    pub provisional: bool,
    /// CANCEL wanted before any provisional: send it on the first 1xx.
    pub cancel_pending: bool,
    /// CANCEL sent (or pending): a 2xx must be ACKed and BYE'd.
    pub cancelled: bool,
    /// Final response received for the INVITE.
    pub final_received: bool,
    /// A 401/407 was already answered on this attempt (§22.2: once).
    pub auth_tried: bool,
    /// A 422 was already answered on this attempt (RFC 4028 §6: retry once).
    pub retried_422: bool,
}

impl BLeg {
    /// A leg toward `target` at `dest` with no transaction, no dialog and every flag clear:
    /// finish it with [`BLeg::calling`] or [`BLeg::established`].
    pub fn new(
        target: Target,
        dest: PeerAddr,
        call_id: String,
        tag: String,
        contact: String,
        invite: SipMsg,
    ) -> Self {
        Self {
            target,
            dest,
            call_id,
            tag,
            contact,
            invite_tx: None,
            invite,
            dialog: None,
            provisional: false,
            cancel_pending: false,
            cancelled: false,
            final_received: false,
            auth_tried: false,
            retried_422: false,
        }
    }

    /// The leg whose INVITE has just gone out on client transaction `tx`.
    pub fn calling(self, tx: TxId) -> Self {
        Self {
            invite_tx: Some(tx),
            ..self
        }
    }

    /// The leg taken over with its established `dialog` (transfers and joins).
    pub fn established(self, dialog: Option<Dialog>) -> Self {
        Self {
            dialog,
            provisional: true,
            final_received: true,
            ..self
        }
    }
}

/// A relayed in-dialog request waiting for its response.
#[derive(Clone, Debug)]
pub(crate) struct Relay {
    /// Server transaction on the originating leg.
    pub server_tx: TxId,
    /// Leg the request came from.
    pub from: Side,
    /// The request as received.
    pub request: SipMsg,
    /// The request carried SDP (an offer).
    pub had_sdp: bool,
    /// It had none and we put our own offer in (never a delayed offer toward
    /// Teams): the answer is ours to ACK, the originator answers our offer in
    /// its ACK.
    pub offered: bool,
}

/// What a client transaction of ours is for.
#[derive(Clone, Debug)]
pub(crate) enum ClientRole {
    /// Initial INVITE toward the B leg at `dest`.
    Invite { dest: PeerAddr },
    /// In-dialog request relayed from the other leg.
    Relay(Relay),
    /// BYE, CANCEL or a session refresh we originate: responses only logged.
    Own,
    /// UPDATE session refresh we originate on `Side` (RFC 4028 §9).
    Refresh(Side),
    /// INVITE of the new leg of a transfer (RFC 3515), see `refer`.
    Transfer { dest: PeerAddr },
    /// re-INVITE that moves a party onto this call (Replaces, RFC 3891), see `refer`.
    Join { dest: PeerAddr },
    /// re-INVITE with a new offer we originate on `Side` (after a join);
    /// the answer is learned, nothing is relayed.
    Reoffer(Side),
}

/// A blind transfer in progress (RFC 3515): the referrer's leg stays up until
/// the new leg toward the Refer-To target answers.
#[derive(Debug)]
pub(crate) struct Transfer {
    /// Leg that sent the REFER (its dialog carries the NOTIFYs).
    pub referrer: Side,
    /// CSeq of the REFER (`Event: refer;id=`, RFC 3515 §2.4.6).
    pub refer_cseq: u32,
    /// The new leg toward the target (replaces the referrer's leg on 2xx).
    pub leg: BLeg,
    /// Media state of the referrer's side before the attempt (restored on failure).
    pub saved: SideSnapshot,
    /// Further routing targets of the Refer-To number (failover on 408/5xx).
    pub targets: VecDeque<Target>,
    /// What the leg's INVITE carries beyond the routed call (kept for failover).
    pub extra: NewLeg,
}

/// What a transfer leg's INVITE carries beyond the routed call.
#[derive(Clone, Debug, Default)]
pub(crate) struct NewLeg {
    /// Calling user when the referrer is A (the B party calls the target).
    pub caller: Option<String>,
    /// A Replaces value for the target (a dialog that is not ours).
    pub replaces: Option<String>,
    /// History-Info of the REFER.
    pub history: Vec<String>,
}

/// A party of another dialog moving onto side `side` of this call (RFC 3891
/// Replaces handled locally): we re-INVITE (`tx`) the party whose media must
/// move, the leg on `side` is released when it answers.
#[derive(Debug)]
pub(crate) struct Join {
    pub side: Side,
    pub tx: TxId,
    /// Media state of `side` before the attempt (restored on failure).
    pub saved: SideSnapshot,
    pub kind: JoinKind,
}

/// Where the joining party comes from.
#[derive(Debug)]
pub(crate) enum JoinKind {
    /// REFER on `side` whose Refer-To Replaces names leg `replaced` of call
    /// `other`: the party left on `other` (re-INVITEd toward our port on
    /// `side`) takes the referrer's place; `other` ends.
    Refer {
        refer_cseq: u32,
        other: u64,
        replaced: Side,
    },
    /// INVITE with Replaces naming the leg on `side`: its sender takes that
    /// leg's place; the party on the other side is re-INVITEd with its offer.
    Invite {
        server_tx: TxId,
        invite: Box<SipMsg>,
        peer: PeerAddr,
        trunk: TrunkId,
        tag: String,
        contact: String,
    },
}

/// One call.
#[derive(Debug)]
pub(crate) struct Call {
    pub id: u64,
    pub cfg: Arc<EngineConfig>,
    pub state: CallState,
    pub a: ALeg,
    pub b: Option<BLeg>,
    pub route: String,
    /// The route's number translations, for the numbers a call carries besides
    /// its own (Diversion, History-Info, asserted identities).
    pub numbers: Option<crate::routing::Translations>,
    pub targets: VecDeque<Target>,
    pub redirect: RedirectMode,
    /// Calling number as received, and as sent (after routing translation).
    pub a_calling: String,
    pub calling: String,
    /// Called number as received.
    pub called: String,
    /// The anchored media; `None` for a bypassed call (trunks in media
    /// `bypass`, see [`Call::bypassed`]): SDP then crosses unchanged.
    pub media: Option<MediaState>,
    /// The caller's SDP offer (replayed to each failover target).
    pub a_offer: Option<SessionDescription>,
    /// The side whose SDP offer awaits an answer.
    pub offer_from: Option<Side>,
    /// A relayed re-INVITE in progress (RFC 3261 §14.1 glare: 491).
    pub reinvite_pending: bool,
    /// Re-INVITE without SDP relayed to `Side`: its 2xx offer is answered in the
    /// ACK of the other leg, so that leg's ACK waits (invite CSeq on `Side`).
    pub deferred_ack: Option<(Side, u32)>,
    /// The ACK from `Side` carries the answer to the offer our 2xx made it
    /// (see `Relay::offered`).
    pub answer_in_ack: Option<Side>,
    pub timers: BTreeMap<CallTimer, Timestamp>,
    /// Session timer per leg (RFC 4028), indexed A, B.
    pub session: [Option<SessionLeg>; 2],
    pub setup_at: Timestamp,
    pub answer_at: Option<Timestamp>,
    pub end_reason: Option<EndReason>,
    pub final_status: Option<u16>,
    /// Keys in the dialog index owned by this call.
    pub dialog_keys: Vec<(String, String)>,
    /// B leg trunks whose call slot this call holds.
    pub held_trunks: Vec<TrunkId>,
    /// Trunk targets this call's attempts went to (never tried twice).
    pub tried: Vec<std::net::SocketAddr>,
    /// (trunk name, target) of attempts counted in the target's calls in progress.
    pub bound: Vec<(String, std::net::SocketAddr)>,
    /// Last status seen from a failed target (relayed when targets run out).
    pub last_failure: Option<(u16, String)>,
    /// Why the last target skipped refused the caller's codecs (its `488`'s warning).
    pub codec_refusal: Option<String>,
    /// Client transactions started for this call (index cleanup at removal).
    pub client_txs: Vec<TxId>,
    /// INVITE server transactions of this call (index cleanup at removal).
    pub server_txs: Vec<TxId>,
    /// 3xx redirects followed so far.
    pub redirects: usize,
    /// Last RSeq we used toward A (RFC 3262 §7.1).
    pub a_rseq: u32,
    /// (our RSeq toward A, B's RSeq, B's INVITE CSeq) of relayed reliable 18x.
    pub prack_map: Vec<(u32, u32, u32)>,
    /// Reliable 18x awaiting A's PRACK: (response, next interval, first sent).
    pub rel1xx: Option<(SipMsg, std::time::Duration, Timestamp)>,
    /// A blind transfer in progress (REFER from either leg).
    pub transfer: Option<Transfer>,
    /// A Replaces join in progress.
    pub join: Option<Join>,
    /// Durable identity in an active/standby pair (first export or restore).
    pub ha: Option<super::ha::HaCall>,
}

/// RFC 4028 state of one leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SessionLeg {
    pub interval: std::time::Duration,
    /// We send the refreshes on this leg (else the peer does and we watch expiry).
    pub we_refresh: bool,
}

impl Call {
    /// Dialog of a side.
    pub fn dialog(&self, side: Side) -> Option<&Dialog> {
        match side {
            Side::A => self.a.dialog.as_ref(),
            Side::B => self.b.as_ref().and_then(|b| b.dialog.as_ref()),
        }
    }

    /// Dialog of a side, mutable.
    pub fn dialog_mut(&mut self, side: Side) -> Option<&mut Dialog> {
        match side {
            Side::A => self.a.dialog.as_mut(),
            Side::B => self.b.as_mut().and_then(|b| b.dialog.as_mut()),
        }
    }

    /// Media bypass: no data-plane pair was allocated (the call was set up
    /// between `bypass` trunks with an SDP offer), so SDP is relayed as is.
    /// Only meaningful once setup went past routing (the allocation).
    pub fn bypassed(&self) -> bool {
        self.media.is_none()
    }

    /// A transfer or join is in progress.
    pub fn busy(&self) -> bool {
        self.transfer.is_some() || self.join.is_some() || self.reinvite_pending
    }

    /// Where requests on a side go.
    pub fn dest(&self, side: Side) -> Option<PeerAddr> {
        match side {
            Side::A => Some(self.a.peer),
            Side::B => self.b.as_ref().map(|b| b.dest),
        }
    }
}

//! The response path shared by every INVITE we originate: the B leg of a call
//! (`invite`), the new leg of a blind transfer (`refer::blind`), the
//! re-INVITEs of joins and re-offers (`refer::join`, `refer::legs`).
//!
//! - A 2xx to an initial INVITE confirms the leg's dialog (the early one its
//!   18x made when the tags match, else a new one) and is ACKed on it at once
//!   (RFC 3261 §13.2.2.4: one ACK per 2xx, CSeq of the INVITE).
//! - A 2xx to a re-INVITE of ours refreshes the dialog's target and is ACKed
//!   on it ([`crate::dialog::Dialog::ack_answer`]).
//! - A 2xx nobody wants any more (a call ended, a second fork, a superseded
//!   transfer attempt) is ACKed on a dialog built from it and, unless it was a
//!   re-INVITE of a dialog already gone, hung up with a BYE.
//! - The SDP of an answer is learned as the peer's on that side, in the media
//!   mode of that side's trunk.

use portcullis_sip::sdp::SessionDescription;

use super::call::{BLeg, Call, ClientRole};
use super::headers::has_sdp;
use super::B2bua;
use crate::config::MediaMode;
use crate::dialog::Dialog;
use crate::media::{MediaControl, Side};
use crate::time::Timestamp;
use crate::transaction::{Method, PeerAddr, SipMsg, TxId, Via};

/// What to do with the dialog of an unwanted 2xx after its ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Unwanted {
    /// ACK it and send BYE. `remember`: the transaction re-sends this ACK on
    /// 2xx retransmissions (RFC 6026 §7.2); false for a second fork, so the
    /// winning dialog's ACK stays the one remembered.
    Bye { remember: bool },
    /// ACK only (a re-INVITE whose dialog is ended elsewhere).
    AckOnly,
}

/// The 2xx `resp` to `leg`'s initial INVITE: the leg's dialog is confirmed
/// (or created) and the ACK for it returned (`via`: a fresh branch).
pub(super) fn confirm_leg(leg: &mut BLeg, resp: &SipMsg, via: &Via) -> Option<SipMsg> {
    leg.final_received = true;
    let tag = resp.to_tag().ok().flatten();
    match leg.dialog.as_mut() {
        Some(d) if Some(d.id.remote_tag.as_str()) == tag => d.on_response(&Method::Invite, resp),
        _ => leg.dialog = Dialog::from_uac(&leg.invite, resp).ok(),
    }
    let d = leg.dialog.as_ref()?;
    Some(d.ack(d.invite_cseq.unwrap_or(1), via))
}

impl<M: MediaControl> B2bua<M> {
    /// The media mode the SDP rewrite uses toward `side` of `c` (its trunk's).
    pub(super) fn leg_mode(c: &Call, side: Side) -> MediaMode {
        Self::leg_trunk(c, side)
            .and_then(|t| c.cfg.trunk(t))
            .map_or(MediaMode::Rtp, |t| t.media)
    }

    /// ACKs the 2xx `resp` to the initial INVITE of `call`'s B leg (client
    /// transaction `tx`, toward `dest`), confirming its dialog.
    pub(super) fn ack_b_answer(&mut self, call: u64, tx: TxId, dest: PeerAddr, resp: &SipMsg) {
        let via = self.via_to(call, dest);
        let ack = self
            .calls
            .get_mut(&call)
            .and_then(|c| c.b.as_mut())
            .and_then(|b| confirm_leg(b, resp, &via));
        if let Some(ack) = ack {
            self.txn.send_ack(Some(tx), dest, &ack);
        }
    }

    /// ACKs the 2xx `resp` to a re-INVITE of ours on `side` of `call`
    /// (the dialog takes the target refresh in).
    pub(super) fn ack_reinvite(
        &mut self,
        call: u64,
        side: Side,
        tx: TxId,
        dest: PeerAddr,
        resp: &SipMsg,
    ) {
        let via = self.via_to(call, dest);
        let ack = self
            .calls
            .get_mut(&call)
            .and_then(|c| c.dialog_mut(side))
            .map(|d| d.ack_answer(resp, &via));
        if let Some(ack) = ack {
            self.txn.send_ack(Some(tx), dest, &ack);
        }
    }

    /// ACKs a 2xx nobody wants (see [`Unwanted`]) on a dialog built from it.
    pub(super) fn ack_unwanted(
        &mut self,
        now: Timestamp,
        call: u64,
        tx: TxId,
        dest: PeerAddr,
        resp: &SipMsg,
        what: Unwanted,
    ) {
        let Some(invite) = self.txn.request(tx).cloned() else {
            return;
        };
        let Ok(mut d) = Dialog::from_uac(&invite, resp) else {
            return;
        };
        let via = self.via_to(call, dest);
        let ack = d.ack(d.invite_cseq.unwrap_or(1), &via);
        let remember = match what {
            Unwanted::Bye { remember } => remember,
            Unwanted::AckOnly => true,
        };
        self.txn.send_ack(remember.then_some(tx), dest, &ack);
        if let Unwanted::Bye { .. } = what {
            let via = self.via_to(call, dest);
            if let Ok(bye) = d.request(Method::Bye, &via) {
                self.send_on(now, call, dest, bye, ClientRole::Own);
            }
        }
    }

    /// Learns the SDP of `msg` (an answer or offer from `side`) as that
    /// side's peer, in the media mode `mode` (`None`: the mode of `side`'s
    /// trunk). Nothing when `msg` has no readable SDP or media is bypassed.
    pub(super) fn learn_sdp(
        &mut self,
        call: u64,
        side: Side,
        msg: &SipMsg,
        mode: Option<MediaMode>,
    ) {
        if !has_sdp(msg) {
            return;
        }
        let Ok(sdp) = SessionDescription::parse(msg.body()) else {
            return;
        };
        self.anchor_streams(call, &sdp);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let mode = mode.unwrap_or_else(|| Self::leg_mode(c, side));
        if let Some(ms) = c.media.as_mut() {
            ms.learn(side, &sdp, mode);
        }
    }
}

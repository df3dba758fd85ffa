//! Offers we originate inside a dialog (re-INVITE with our SDP), and the
//! delayed-offer case that needs one.
//!
//! Delayed offer end to end (RFC 3261 §13.2.1, RFC 3264 §4): when a party
//! sends an INVITE or re-INVITE without SDP and the other side cannot take a
//! delayed offer (the initial INVITE toward any trunk, a re-INVITE toward
//! Teams), that side gets *our* offer (built from the party's last SDP, or
//! our own codec list) and answers it in its 2xx; its answer goes to the
//! party as the offer of our 2xx, and the party answers in its ACK. Both
//! exchanges are complete, but the far side answered an offer that was not
//! the party's final word: when the party's answer narrows the codecs or
//! changes the direction of what the far side answered (so the far side
//! could send what the party refuses), the far side gets the party's answer
//! as a new offer in a re-INVITE. The ACK toward the far side never carries
//! it: its 2xx held an answer, not an offer, so an SDP in the ACK would be
//! out of any offer/answer exchange (§13.2.1, RFC 6337 §3.1).

use std::collections::BTreeSet;

use portcullis_sip::sdp::{Direction, SessionDescription};

use super::call::{CallState, ClientRole};
use super::sdp_rewrite::{audio_index, codec_name, sendrecv};
use super::B2bua;
use crate::media::{MediaControl, Side};
use crate::time::Timestamp;
use crate::transaction::{Method, SipMsg, TxId};

/// What an SDP settles for its first audio stream: rejected (port 0), the
/// direction, and the codecs (`NAME/rate`, upper-case).
#[derive(Debug, PartialEq, Eq)]
struct Terms {
    rejected: bool,
    direction: Direction,
    codecs: BTreeSet<String>,
}

fn terms(sdp: &SessionDescription) -> Option<Terms> {
    let i = audio_index(sdp)?;
    let m = sdp.media.get(i)?;
    Some(Terms {
        rejected: m.is_rejected(),
        direction: sdp.media_direction(i).unwrap_or_default(),
        codecs: m
            .payload_types()
            .map(|pt| codec_name(m, pt).map_or_else(|| format!("PT {pt}"), |n| n.to_uppercase()))
            .collect(),
    })
}

/// Whether `party`'s answer (to an offer made of `far`'s answer) leaves the
/// far side with terms the party did not accept.
fn answer_differs(party: &SessionDescription, far: &SessionDescription) -> bool {
    let (Some(p), Some(f)) = (terms(party), terms(far)) else {
        return false;
    };
    p.rejected != f.rejected
        || p.direction != f.direction.reversed()
        || (!p.rejected && p.codecs != f.codecs)
}

impl<M: MediaControl> B2bua<M> {
    /// `side` answered, in its ACK, the offer our 2xx made it from the other
    /// side's answer to our own offer (see the module docs): when the answers
    /// differ, the other side gets `side`'s answer as a new offer.
    pub(super) fn follow_answer_in_ack(&mut self, now: Timestamp, call: u64, side: Side) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.state != CallState::Answered || c.busy() {
            return;
        }
        let Some(ms) = c.media.as_ref() else {
            return;
        };
        let differs = match (ms.last_from(side), ms.last_from(side.other())) {
            (Some(party), Some(far)) => answer_differs(party, far),
            _ => false,
        };
        if differs {
            self.stats.delayed_offer_reoffers += 1;
            self.reoffer(now, call, side.other(), false);
        }
    }

    /// Sends our own offer on `side`: the other side's last SDP (made
    /// `sendrecv` when `unhold`) rewritten for `side`.
    pub(super) fn reoffer(&mut self, now: Timestamp, call: u64, side: Side, unhold: bool) {
        let Some((mut req, dest)) = self.dialog_request(call, side, Method::Invite) else {
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let mode = Self::leg_mode(c, side);
        let Some(ms) = c.media.as_mut() else {
            return;
        };
        let Some(sdp) = ms.last_from(side.other()) else {
            return;
        };
        let sdp = if unhold { sendrecv(sdp) } else { sdp.clone() };
        let entropy = self.txn.entropy();
        let mut nk = || Self::new_key(&mut *entropy);
        let body = ms.rewrite_for(side, &sdp, mode, false, &mut nk);
        c.reinvite_pending = true;
        req.push_header("Content-Type", "application/sdp");
        req.set_body(body);
        self.send_on(now, call, dest, req, ClientRole::Reoffer(side));
    }

    /// A response to [`Self::reoffer`]'s re-INVITE: a 2xx is ACKed and its
    /// answer learned; a failure leaves the media as it was.
    pub(super) fn on_reoffer_response(&mut self, call: u64, tx: TxId, side: Side, resp: &SipMsg) {
        let status = resp.status().unwrap_or(0);
        if status < 200 {
            return;
        }
        let Some(dest) = self.calls.get(&call).and_then(|c| c.dest(side)) else {
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.reinvite_pending = false;
        if !(200..300).contains(&status) || c.state != CallState::Answered {
            return;
        }
        self.ack_reinvite(call, side, tx, dest, resp);
        self.learn_sdp(call, side, resp, None);
        self.update_media(call);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdp(formats: &str, maps: &str, extra: &str) -> SessionDescription {
        let text = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP {formats}\r\n{maps}{extra}"
        );
        SessionDescription::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn answers_compared_by_codec_name_and_mirrored_direction() {
        let far = sdp("0 8 101", "a=rtpmap:101 telephone-event/8000\r\n", "");
        // Same codecs under other payload numbers and another case: no difference.
        let same = sdp("0 8 96", "a=rtpmap:96 TELEPHONE-EVENT/8000\r\n", "");
        assert!(!answer_differs(&same, &far));
        // Narrowed to PCMA.
        let narrowed = sdp("8 101", "a=rtpmap:101 telephone-event/8000\r\n", "");
        assert!(answer_differs(&narrowed, &far));
        // The far side holds (sendonly), the party answers recvonly: consistent.
        let far_hold = sdp(
            "0 8 101",
            "a=rtpmap:101 telephone-event/8000\r\n",
            "a=sendonly\r\n",
        );
        let party = sdp(
            "0 8 101",
            "a=rtpmap:101 telephone-event/8000\r\n",
            "a=recvonly\r\n",
        );
        assert!(!answer_differs(&party, &far_hold));
        // The party goes inactive: the far side must hear of it.
        let inactive = sdp(
            "0 8 101",
            "a=rtpmap:101 telephone-event/8000\r\n",
            "a=inactive\r\n",
        );
        assert!(answer_differs(&inactive, &far));
    }
}

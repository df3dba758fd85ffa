//! Blind call transfer (RFC 3515 REFER, RFC 3420 message/sipfrag NOTIFYs).
//!
//! A REFER on the B leg of an answered call (Teams Direct Routing transfers
//! this way) is answered `202 Accepted`; the user part of the Refer-To URI is
//! routed as a new call from the referring leg's trunk, and a new leg is
//! INVITEd with the remaining party's (A's) last SDP rewritten for our B-side
//! port. The same media allocation is kept: when the target answers, its SDP
//! is learned as the B peer and the data plane reprogrammed, so A now talks to
//! the target without a re-INVITE toward A (A's view of our address and port
//! does not change). Progress goes to the referrer as NOTIFY (`Event: refer`,
//! `SIP/2.0 100 Trying`, then the final status line, RFC 3515 §2.4.4–2.4.5);
//! on a 2xx the referrer's leg is BYE'd after the final NOTIFY and the new leg
//! becomes the call's B leg; on a failure the original call stays up.
//!
//! CDRs: a completed transfer emits a [`crate::cdr::CdrRecord`] for the
//! segment before the transfer (same call number, old B leg, end reason
//! `Transferred`, no media stats); the continuing call (A ↔ target) emits its
//! own record when it ends. Invariants: at most one transfer per call; only
//! the B leg may refer (a REFER on the A leg gets `501`); Refer-To with
//! `Replaces` (attended transfer) is refused with `501` (not implemented).

use portcullis_sip::sdp::SessionDescription;

use super::call::{BLeg, CallState, ClientRole, Transfer};
use super::headers::{has_sdp, user_of};
use super::route::Target;
use super::B2bua;
use crate::cdr::{CdrRecord, EndReason, LegRecord, NumberRecord};
use crate::config::MediaMode;
use crate::dialog::Dialog;
use crate::media::{MediaControl, Side};
use crate::time::Timestamp;
use crate::transaction::{Method, PeerAddr, SipMsg, TxId};

use super::CallEvent;

/// The URI inside a Refer-To value (`<sip:...>` or a bare URI), headers kept.
fn refer_uri(value: &str) -> &str {
    match value.split_once('<') {
        Some((_, rest)) => rest.split('>').next().unwrap_or(""),
        None => value.split(';').next().unwrap_or("").trim(),
    }
}

impl<M: MediaControl> B2bua<M> {
    /// REFER inside the dialog of `side` (RFC 3515 §2.4.2).
    pub(super) fn on_refer(
        &mut self,
        now: Timestamp,
        call: u64,
        side: Side,
        tx: TxId,
        req: &SipMsg,
    ) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if side != Side::B {
            self.reply(now, tx, req, 501, "Not Implemented", None);
            return;
        }
        if c.state != CallState::Answered || c.transfer.is_some() || c.reinvite_pending {
            self.reply(now, tx, req, 491, "Request Pending", None);
            return;
        }
        let value = req
            .header("Refer-To")
            .or_else(|| req.header("r"))
            .unwrap_or("")
            .to_owned();
        let uri = refer_uri(&value);
        if uri.to_ascii_lowercase().contains("replaces") {
            self.reply(now, tx, req, 501, "Not Implemented", None);
            return;
        }
        let called = user_of(uri).to_owned();
        if called.is_empty() {
            self.reply(now, tx, req, 400, "Bad Request", None);
            return;
        }
        let Some(inbound) = c.b.as_ref().map(|b| b.target.trunk) else {
            return;
        };
        let calling = c.a_calling.clone();
        let refer_cseq = req.cseq().map(|s| s.seq).unwrap_or(1);
        self.reply(now, tx, req, 202, "Accepted", None);
        self.notify(now, call, side, refer_cseq, "SIP/2.0 100 Trying", false);
        let target = match self.router.route(inbound, &called, &calling) {
            Ok(d) => d.targets.into_iter().next().map(|t| Target {
                trunk: t.trunk,
                called: t.called,
                redirect: None,
            }),
            Err(_) => None,
        };
        let Some(target) = target else {
            self.notify(now, call, side, refer_cseq, "SIP/2.0 404 Not Found", true);
            return;
        };
        if !self.start_transfer(now, call, side, refer_cseq, target) {
            self.notify(
                now,
                call,
                side,
                refer_cseq,
                "SIP/2.0 503 Service Unavailable",
                true,
            );
        }
    }

    /// Sends the INVITE of the transfer leg. False when it could not be sent.
    fn start_transfer(
        &mut self,
        now: Timestamp,
        call: u64,
        referrer: Side,
        refer_cseq: u32,
        target: Target,
    ) -> bool {
        let Some((mut inv, dest, call_id, tag, contact)) = self.build_b_invite(call, &target)
        else {
            return false;
        };
        let teams = self
            .calls
            .get(&call)
            .is_some_and(|c| c.cfg.is_teams_trunk(target.trunk));
        let creds = teams.then(|| {
            let ufrag = self.random_hex().chars().take(8).collect::<String>();
            (ufrag, format!("{}{}", self.random_hex(), self.random_hex()))
        });
        let seed = self.seed;
        let mut counter = self.key_counter;
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        if let Some(ms) = c.media.as_mut() {
            ms.ice[1] = creds;
            ms.params[1].ice_lite = None;
        }
        let mode = c
            .cfg
            .trunk(target.trunk)
            .map_or(MediaMode::Rtp, |t| t.media);
        let Some(ms) = c.media.as_mut() else {
            return false;
        };
        // A fresh SDES key toward the new peer (RFC 4568 §6.1: keys are per sender).
        ms.params[1].srtp_out = None;
        let mut nk = || Self::new_key(seed, &mut counter);
        let body = match ms.last_from(Side::A).cloned() {
            Some(a_sdp) => ms.rewrite_for(Side::B, &a_sdp, mode, false, &mut nk),
            None => ms.own_offer(Side::B, mode, &mut nk),
        };
        self.key_counter = counter;
        inv.push_header("Content-Type", "application/sdp");
        inv.set_body(body);
        let Some(tx) = self.send_on(now, call, dest, inv.clone(), ClientRole::Transfer { dest })
        else {
            return false;
        };
        if let Some(c) = self.calls.get_mut(&call) {
            c.transfer = Some(Transfer {
                referrer,
                refer_cseq,
                leg: BLeg {
                    target,
                    dest,
                    call_id,
                    tag,
                    contact,
                    invite_tx: Some(tx),
                    invite: inv,
                    dialog: None,
                    provisional: false,
                    cancel_pending: false,
                    cancelled: false,
                    final_received: false,
                    auth_tried: false,
                    retried_422: false,
                },
            });
        }
        true
    }

    /// A response to the transfer leg's INVITE.
    pub(super) fn on_transfer_response(
        &mut self,
        now: Timestamp,
        call: u64,
        tx: TxId,
        dest: PeerAddr,
        resp: &SipMsg,
    ) {
        let status = resp.status().unwrap_or(0);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let current = c.state == CallState::Answered
            && c.transfer
                .as_ref()
                .is_some_and(|t| t.leg.invite_tx == Some(tx));
        if !current {
            if (200..300).contains(&status) {
                // The call ended meanwhile: ACK and BYE the orphan leg.
                if let Some(invite) = self.txn.request(tx).cloned() {
                    if let Ok(mut d) = Dialog::from_uac(&invite, resp) {
                        let via = self.via(dest.transport);
                        let ack = d.ack(d.invite_cseq.unwrap_or(1), &via);
                        self.txn.send_ack(Some(tx), dest, &ack);
                        let via = self.via(dest.transport);
                        if let Ok(bye) = d.request(Method::Bye, &via) {
                            self.send_on(now, call, dest, bye, ClientRole::Own);
                        }
                    }
                }
            }
            return;
        }
        match status {
            0..=199 => {}
            200..=299 => self.transfer_answered(now, call, tx, dest, resp),
            _ => self.transfer_failed(now, call, status),
        }
    }

    /// The transfer target refused (or timed out): NOTIFY the failure, keep the call.
    pub(super) fn transfer_failed(&mut self, now: Timestamp, call: u64, status: u16) {
        let Some(t) = self.calls.get_mut(&call).and_then(|c| c.transfer.take()) else {
            return;
        };
        let frag = format!(
            "SIP/2.0 {status} {}",
            super::failover::default_reason(status)
        );
        self.notify(now, call, t.referrer, t.refer_cseq, &frag, true);
    }

    /// The target answered: ACK, reprogram media, NOTIFY 200, BYE the referrer,
    /// swap the legs and write the segment CDR.
    fn transfer_answered(
        &mut self,
        now: Timestamp,
        call: u64,
        tx: TxId,
        dest: PeerAddr,
        resp: &SipMsg,
    ) {
        let via = self.via(dest.transport);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(mut t) = c.transfer.take() else {
            return;
        };
        t.leg.final_received = true;
        t.leg.dialog = Dialog::from_uac(&t.leg.invite, resp).ok();
        if let Some(d) = t.leg.dialog.as_ref() {
            let ack = d.ack(d.invite_cseq.unwrap_or(1), &via);
            self.txn.send_ack(Some(tx), dest, &ack);
        }
        // The target's answer is the new B peer (same allocation, A untouched).
        let mode = c
            .cfg
            .trunk(t.leg.target.trunk)
            .map_or(MediaMode::Rtp, |t| t.media);
        if has_sdp(resp) {
            if let (Ok(sdp), Some(ms)) = (SessionDescription::parse(resp.body()), c.media.as_mut())
            {
                ms.learn(Side::B, &sdp, mode);
            }
        }
        self.update_media(call);
        self.notify(now, call, t.referrer, t.refer_cseq, "SIP/2.0 200 OK", true);
        // BYE the referrer's leg after the final NOTIFY (RFC 5589 §6).
        if let Some((bye, bdest)) = self.dialog_request(call, Side::B, Method::Bye) {
            self.send_on(now, call, bdest, bye, ClientRole::Own);
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let new_key = (t.leg.call_id.clone(), t.leg.tag.clone());
        let old = c.b.replace(t.leg);
        c.dialog_keys.push(new_key.clone());
        if let Some(old) = old.as_ref() {
            let k = (old.call_id.clone(), old.tag.clone());
            c.dialog_keys.retain(|x| *x != k);
            self.by_dialog.remove(&k);
        }
        self.by_dialog.insert(new_key, (call, Side::B));
        // RFC 4028 state of the old B leg no longer applies.
        self.stop_timer(call, super::call::CallTimer::Refresh(Side::B));
        if let Some(c) = self.calls.get_mut(&call) {
            c.session[1] = None;
        }
        self.segment_cdr(now, call, old.as_ref());
    }

    /// The record of the segment that ended with the transfer.
    fn segment_cdr(&mut self, now: Timestamp, call: u64, old_b: Option<&BLeg>) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let off = self.epoch_offset_ms;
        let cfg = c.cfg.clone();
        let cdr = CdrRecord {
            call_id: call,
            a_leg: LegRecord {
                call_id: c.a.invite.call_id().unwrap_or("").to_owned(),
                from: c.a.invite.header("From").unwrap_or("").to_owned(),
                to: c.a.invite.header("To").unwrap_or("").to_owned(),
                trunk: Self::trunk_name(&cfg, c.a.trunk),
                remote: c.a.peer.addr,
            },
            b_leg: old_b.map(|b| LegRecord {
                call_id: b.call_id.clone(),
                from: b.invite.header("From").unwrap_or("").to_owned(),
                to: b.invite.header("To").unwrap_or("").to_owned(),
                trunk: Self::trunk_name(&cfg, b.target.trunk),
                remote: b.dest.addr,
            }),
            calling: NumberRecord::new(c.a_calling.clone(), c.calling.clone()),
            called: NumberRecord::new(
                c.called.clone(),
                old_b.map_or_else(|| c.called.clone(), |b| b.target.called.clone()),
            ),
            route: (!c.route.is_empty()).then(|| c.route.clone()),
            setup_at_ms: c.setup_at.as_millis() + off,
            answer_at_ms: c.answer_at.map(|t| t.as_millis() + off),
            end_at_ms: now.as_millis() + off,
            end_reason: EndReason::Transferred,
            final_status: Some(200),
            media: None,
        };
        self.events
            .push_back(CallEvent::CallEnded { cdr: Box::new(cdr) });
    }

    /// NOTIFY with a message/sipfrag body on `side` (RFC 3515 §2.4.4, RFC 3420).
    fn notify(
        &mut self,
        now: Timestamp,
        call: u64,
        side: Side,
        refer_cseq: u32,
        frag: &str,
        last: bool,
    ) {
        let Some((mut req, dest)) = self.dialog_request(call, side, Method::Notify) else {
            return;
        };
        req.push_header("Event", format!("refer;id={refer_cseq}"));
        req.push_header(
            "Subscription-State",
            if last {
                "terminated;reason=noresource"
            } else {
                "active;expires=60"
            },
        );
        req.push_header("Content-Type", "message/sipfrag;version=2.0");
        req.set_body(format!("{frag}\r\n").into_bytes());
        self.send_on(now, call, dest, req, ClientRole::Own);
    }
}

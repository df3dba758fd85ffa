//! Joins (RFC 3891 Replaces handled locally): a party of another dialog moves
//! onto a side of a call of ours.
//!
//! - Attended transfer, both calls through us: a REFER whose Refer-To
//!   Replaces names a leg of *another* call. The party left on that call is
//!   re-INVITEd toward our port on the referrer's side (same `o=` session
//!   continued); on its 2xx its leg moves onto that side and the other call
//!   ends.
//! - An INVITE with Replaces naming a leg of ours: its offer goes to the
//!   party on the other side in a re-INVITE, whose answer is ours to the new
//!   party; the new dialog takes the replaced leg's place.
//!
//! A failed join leaves everything as it was (media state restored).

use portcullis_sip::sdp::SessionDescription;

use super::legs::Leg;
use super::{parse_replaces, BYPASS_NO_TRANSFER};
use crate::b2bua::answer::Unwanted;
use crate::b2bua::call::{ALeg, BLeg, CallState, ClientRole, Join, JoinKind};
use crate::b2bua::headers::{has_sdp, user_of};
use crate::b2bua::route::Target;
use crate::b2bua::sdp_rewrite::{ix, sendrecv};
use crate::b2bua::B2bua;
use crate::cdr::EndReason;
use crate::config::{MediaMode, TrunkId};
use crate::dialog::Dialog;
use crate::media::{MediaControl, Side};
use crate::time::Timestamp;
use crate::transaction::{Method, PeerAddr, SipMsg, TxId};

impl<M: MediaControl> B2bua<M> {
    /// A REFER on `side` of `call` whose Replaces names leg `replaced` of
    /// call `other` (an attended transfer through us).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn refer_join(
        &mut self,
        now: Timestamp,
        call: u64,
        side: Side,
        tx: TxId,
        req: &SipMsg,
        other: u64,
        replaced: Side,
    ) {
        if other == call {
            self.reply(now, tx, req, 400, "Replaces Names This Call", None);
            return;
        }
        if self
            .calls
            .get(&other)
            .is_some_and(crate::b2bua::call::Call::bypassed)
        {
            self.reply(now, tx, req, 403, BYPASS_NO_TRANSFER, None);
            return;
        }
        // The party left on `other` moves onto `side` of this call: its trunk's realm
        // must be that side's.
        let moving = self
            .calls
            .get(&other)
            .and_then(|o| Self::leg_trunk(o, replaced.other()));
        if moving.is_some_and(|t| !self.realm_fits(call, side, t)) {
            self.reply(
                now,
                tx,
                req,
                403,
                crate::b2bua::invite::REALM_MISMATCH,
                None,
            );
            return;
        }
        let ready = self
            .calls
            .get(&other)
            .is_some_and(|o| o.state == CallState::Answered && !o.busy());
        if !ready {
            self.reply(now, tx, req, 491, "Request Pending", None);
            return;
        }
        let refer_cseq = req.cseq().map(|s| s.seq).unwrap_or(1);
        self.reply(now, tx, req, 202, "Accepted", None);
        self.notify(now, call, side, refer_cseq, "SIP/2.0 100 Trying", false);
        if !self.start_join_refer(now, call, side, refer_cseq, other, replaced) {
            let frag = "SIP/2.0 503 Service Unavailable";
            self.notify(now, call, side, refer_cseq, frag, true);
        }
    }

    /// Re-INVITEs the party left on `other` (opposite `replaced`) toward our
    /// port on `side` of `call`.
    fn start_join_refer(
        &mut self,
        now: Timestamp,
        call: u64,
        side: Side,
        refer_cseq: u32,
        other: u64,
        replaced: Side,
    ) -> bool {
        let mover = replaced.other();
        let Some(o) = self.calls.get(&other) else {
            return false;
        };
        let Some(trunk) = Self::leg_trunk(o, mover) else {
            return false;
        };
        let mode = o.cfg.trunk(trunk).map_or(MediaMode::Rtp, |t| t.media);
        let Some(origin) = o.media.as_ref().map(|m| m.snapshot(mover)) else {
            return false;
        };
        let Some(saved) = self
            .calls
            .get(&call)
            .and_then(|c| c.media.as_ref())
            .map(|m| m.snapshot(side))
        else {
            return false;
        };
        let Some((mut req, dest)) = self.dialog_request(other, mover, Method::Invite) else {
            return false;
        };
        self.set_leg_teams(call, side, trunk);
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        let Some(ms) = c.media.as_mut() else {
            return false;
        };
        ms.adopt_origin(side, &origin);
        ms.forget_keys(side);
        let entropy = self.txn.entropy();
        let mut nk = || Self::new_key(&mut *entropy);
        let body = match ms.last_from(side.other()).map(sendrecv) {
            Some(sdp) => ms.rewrite_for(side, &sdp, mode, false, &mut nk),
            None => ms.own_offer(side, mode, &mut nk),
        };
        req.push_header("Content-Type", "application/sdp");
        req.set_body(body);
        let Some(tx) = self.send_on(now, call, dest, req, ClientRole::Join { dest }) else {
            if let Some(ms) = self.calls.get_mut(&call).and_then(|c| c.media.as_mut()) {
                ms.restore(side, saved);
            }
            return false;
        };
        if let Some(o) = self.calls.get_mut(&other) {
            o.reinvite_pending = true;
        }
        if let Some(c) = self.calls.get_mut(&call) {
            c.join = Some(Join {
                side,
                tx,
                saved,
                kind: JoinKind::Refer {
                    refer_cseq,
                    other,
                    replaced,
                },
            });
        }
        true
    }

    /// An INVITE with Replaces (RFC 3891 §3) from `from` on `trunk`.
    pub(in crate::b2bua) fn on_invite_replaces(
        &mut self,
        now: Timestamp,
        tx: TxId,
        from: PeerAddr,
        trunk: TrunkId,
        req: &SipMsg,
        value: &str,
    ) {
        let Some(r) = parse_replaces(value) else {
            self.reject(now, tx, req, from, 400, "Bad Replaces");
            return;
        };
        let Some((call, side)) = self.find_replaced(&r) else {
            self.reject(now, tx, req, from, 481, "Call/Transaction Does Not Exist");
            return;
        };
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.state != CallState::Answered {
            // An early dialog we did not initiate (§3).
            self.reject(now, tx, req, from, 481, "Call/Transaction Does Not Exist");
            return;
        }
        if r.early_only {
            self.reject(now, tx, req, from, 486, "Busy Here");
            return;
        }
        if c.busy() {
            self.reject(now, tx, req, from, 491, "Request Pending");
            return;
        }
        if c.bypassed() {
            self.reject(now, tx, req, from, 403, BYPASS_NO_TRANSFER);
            return;
        }
        if !self.realm_fits(call, side, trunk) {
            let why = crate::b2bua::invite::REALM_MISMATCH;
            self.reject(now, tx, req, from, 403, why);
            return;
        }
        let offer = has_sdp(req)
            .then(|| SessionDescription::parse(req.body()).ok())
            .flatten();
        let Some(offer) = offer else {
            let mut r = self.response(req, 488, "Not Acceptable Here", Some("rp"));
            r.push_header(
                "Warning",
                "399 - \"INVITE with Replaces needs an SDP offer\"",
            );
            self.send_response(now, tx, &r);
            return;
        };
        let other = side.other();
        let Some(saved) = c.media.as_ref().map(|m| m.snapshot(side)) else {
            return;
        };
        let p_mode = c.cfg.trunk(trunk).map_or(MediaMode::Rtp, |t| t.media);
        if !self.acquire_trunk(call, trunk) {
            // The new party's trunk is at its `max_calls`.
            self.stats.trunk_limit_rejects += 1;
            self.reject(now, tx, req, from, 503, "Service Unavailable");
            return;
        }
        let Some((mut reinv, dest)) = self.dialog_request(call, other, Method::Invite) else {
            self.release_trunk(call, trunk);
            self.reject(now, tx, req, from, 481, "Call/Transaction Does Not Exist");
            return;
        };
        self.set_leg_teams(call, side, trunk);
        self.anchor_streams(call, &offer);
        let tag = self.random_hex();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let o_mode = Self::leg_mode(c, other);
        let contact = super::super::identity::leg_contact(&c.cfg.clone(), trunk, from.transport);
        let Some(ms) = c.media.as_mut() else {
            return;
        };
        ms.forget_keys(side);
        ms.learn(side, &offer, p_mode);
        let entropy = self.txn.entropy();
        let mut nk = || Self::new_key(&mut *entropy);
        let body = ms.rewrite_for(other, &offer, o_mode, false, &mut nk);
        reinv.push_header("Content-Type", "application/sdp");
        reinv.set_body(body);
        let Some(ctx) = self.send_on(now, call, dest, reinv, ClientRole::Join { dest }) else {
            if let Some(ms) = self.calls.get_mut(&call).and_then(|c| c.media.as_mut()) {
                ms.restore(side, saved);
            }
            self.release_trunk(call, trunk);
            self.reject(now, tx, req, from, 500, "Server Internal Error");
            return;
        };
        self.by_invite_tx.insert(tx, (call, side));
        if let Some(c) = self.calls.get_mut(&call) {
            c.server_txs.push(tx);
            c.reinvite_pending = true;
            c.join = Some(Join {
                side,
                tx: ctx,
                saved,
                kind: JoinKind::Invite {
                    server_tx: tx,
                    invite: Box::new(req.clone()),
                    peer: from,
                    trunk,
                    tag,
                    contact,
                },
            });
        }
    }

    /// A response to a join re-INVITE.
    pub(in crate::b2bua) fn on_join_response(
        &mut self,
        now: Timestamp,
        call: u64,
        tx: TxId,
        dest: PeerAddr,
        resp: &SipMsg,
    ) {
        let status = resp.status().unwrap_or(0);
        if status < 200 {
            return;
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.join.as_ref().is_none_or(|j| j.tx != tx) {
            return;
        }
        let Some(join) = c.join.take() else {
            return;
        };
        if c.state != CallState::Answered {
            // The call ended meanwhile.
            self.join_stale(now, call, tx, dest, resp, join);
            return;
        }
        if (200..300).contains(&status) {
            match join.kind {
                JoinKind::Refer {
                    refer_cseq,
                    other,
                    replaced,
                } => {
                    let moved = Moved {
                        other,
                        mover: replaced.other(),
                    };
                    self.join_refer_answered(
                        now, call, join.side, refer_cseq, moved, tx, dest, resp,
                    );
                }
                JoinKind::Invite { .. } => {
                    self.join_invite_answered(now, call, tx, dest, resp, join)
                }
            }
        } else {
            self.join_failed(now, call, join, status, resp.as_owned().reason());
        }
    }

    /// A join whose call ended before the re-INVITE was answered: a 2xx is
    /// ACKed and the other call (REFER) ends too; the new party (INVITE)
    /// gets `481`.
    fn join_stale(
        &mut self,
        now: Timestamp,
        call: u64,
        tx: TxId,
        dest: PeerAddr,
        resp: &SipMsg,
        join: Join,
    ) {
        let status = resp.status().unwrap_or(0);
        if (200..300).contains(&status) {
            self.ack_unwanted(now, call, tx, dest, resp, Unwanted::AckOnly);
        }
        match join.kind {
            JoinKind::Refer { other, .. } => {
                if let Some(o) = self.calls.get_mut(&other) {
                    o.reinvite_pending = false;
                }
                if (200..300).contains(&status) {
                    // Its party was moved toward a port that is gone.
                    self.end_call(now, other, EndReason::Terminated, None);
                }
            }
            JoinKind::Invite {
                server_tx, invite, ..
            } => {
                self.by_invite_tx.remove(&server_tx);
                let r = self.response(&invite, 481, "Call/Transaction Does Not Exist", Some("rp"));
                self.send_response(now, server_tx, &r);
            }
        }
    }

    /// The join re-INVITE failed: everything stays as it was.
    pub(in crate::b2bua) fn join_failed(
        &mut self,
        now: Timestamp,
        call: u64,
        join: Join,
        status: u16,
        reason: Option<&str>,
    ) {
        let reason = reason
            .map(str::to_owned)
            .unwrap_or_else(|| crate::b2bua::failover::default_reason(status).to_owned());
        if let Some(c) = self.calls.get_mut(&call) {
            if let Some(ms) = c.media.as_mut() {
                ms.restore(join.side, join.saved);
            }
            if matches!(join.kind, JoinKind::Invite { .. }) {
                c.reinvite_pending = false;
            }
        }
        match join.kind {
            JoinKind::Refer {
                refer_cseq, other, ..
            } => {
                if let Some(o) = self.calls.get_mut(&other) {
                    o.reinvite_pending = false;
                }
                let frag = format!("SIP/2.0 {status} {reason}");
                self.notify(now, call, join.side, refer_cseq, &frag, true);
            }
            JoinKind::Invite {
                server_tx,
                invite,
                trunk,
                ..
            } => {
                self.release_trunk(call, trunk);
                self.by_invite_tx.remove(&server_tx);
                let r = self.response(&invite, status, &reason, Some("rp"));
                self.send_response(now, server_tx, &r);
            }
        }
    }

    /// The party re-INVITEd for a REFER join answered: its leg leaves call
    /// `moved.other` and takes `side` of `call`; the referrer is BYE'd and
    /// the other call ends.
    #[allow(clippy::too_many_arguments)]
    fn join_refer_answered(
        &mut self,
        now: Timestamp,
        call: u64,
        side: Side,
        refer_cseq: u32,
        moved: Moved,
        tx: TxId,
        dest: PeerAddr,
        resp: &SipMsg,
    ) {
        let Moved { other, mover } = moved;
        let Some(o) = self.calls.get_mut(&other) else {
            return;
        };
        o.reinvite_pending = false;
        let mode = Self::leg_mode(o, mover);
        let number = match mover {
            Side::A => o.a_calling.clone(),
            Side::B => {
                o.b.as_ref()
                    .map(|b| b.target.called.clone())
                    .unwrap_or_default()
            }
        };
        let session = o.session[ix(mover)];
        let mover_trunk = Self::leg_trunk(o, mover);
        self.ack_reinvite(other, mover, tx, dest, resp);
        // The mover leaves `other` (its dialog goes with it: no BYE there).
        let Some(leg) = self.take_leg(other, mover, &number) else {
            return;
        };
        self.learn_sdp(call, side, resp, Some(mode));
        self.update_media(call);
        self.notify(now, call, side, refer_cseq, "SIP/2.0 200 OK", true);
        self.release_leg(now, call, side);
        let leg = match side {
            Side::A => leg,
            Side::B => Leg::B(leg.into_b(number)),
        };
        self.replace_leg(now, call, side, leg);
        if let Some(c) = self.calls.get_mut(&call) {
            c.session[ix(side)] = session;
        }
        self.arm_session(now, call, side);
        // The other call is over: its replaced leg gets a BYE.
        self.end_call(now, other, EndReason::Transferred, None);
        // Its slot on the mover's trunk passes to this call.
        if let Some(t) = mover_trunk {
            let _ = self.acquire_trunk(call, t);
        }
        self.unhold(now, call, side.other());
    }

    /// Takes the leg on `side` of call `other` out of it (its dialog goes
    /// along; `number`: the party's number for a B slot).
    fn take_leg(&mut self, other: u64, side: Side, number: &str) -> Option<Leg> {
        let o = self.calls.get_mut(&other)?;
        let leg = match side {
            Side::A => Leg::A(ALeg {
                peer: o.a.peer,
                trunk: o.a.trunk,
                invite_tx: o.a.invite_tx,
                invite: o.a.invite.clone(),
                tag: o.a.tag.clone(),
                contact: o.a.contact.clone(),
                dialog: o.a.dialog.take(),
                final_sent: true,
            }),
            Side::B => {
                let b = o.b.as_mut()?;
                Leg::B(
                    BLeg::new(
                        Target {
                            trunk: b.target.trunk,
                            called: number.to_owned(),
                            redirect: None,
                            addr: None,
                        },
                        b.dest,
                        b.call_id.clone(),
                        b.tag.clone(),
                        b.contact.clone(),
                        b.invite.clone(),
                    )
                    .established(b.dialog.take()),
                )
            }
        };
        let key = leg.key();
        o.dialog_keys.retain(|k| *k != key);
        Some(leg)
    }

    /// The party re-INVITEd for an INVITE-with-Replaces join answered: its
    /// answer is ours to the new party, whose dialog takes `join.side`.
    fn join_invite_answered(
        &mut self,
        now: Timestamp,
        call: u64,
        tx: TxId,
        dest: PeerAddr,
        resp: &SipMsg,
        join: Join,
    ) {
        let JoinKind::Invite {
            server_tx,
            invite,
            peer,
            trunk,
            tag,
            contact,
        } = join.kind
        else {
            return;
        };
        let side = join.side;
        let other = side.other();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.reinvite_pending = false;
        self.ack_reinvite(call, other, tx, dest, resp);
        // Our answer to the new party: the re-INVITEd party's answer.
        let mut r = self.response(&invite, 200, "OK", Some(&tag));
        r.push_header("Contact", &contact);
        let teams = self
            .calls
            .get(&call)
            .is_some_and(|c| c.cfg.is_teams_trunk(trunk));
        if teams {
            r.push_header("X-MS-SBC", crate::b2bua::x_ms_sbc());
        }
        if let Some(body) = self.join_answer_sdp(call, side, trunk, resp) {
            r.push_header("Content-Type", "application/sdp");
            r.set_body(body);
        }
        self.update_media(call);
        self.send_response(now, server_tx, &r);
        self.release_leg(now, call, side);
        let dialog = Dialog::from_uas(&invite, &tag, &contact, true).ok();
        let called = user_of(invite.header("From").unwrap_or("")).to_owned();
        let leg = Leg::A(ALeg {
            peer,
            trunk,
            invite_tx: server_tx,
            invite: *invite,
            tag,
            contact,
            dialog,
            final_sent: true,
        });
        let leg = match side {
            Side::A => leg,
            Side::B => Leg::B(leg.into_b(called)),
        };
        self.replace_leg(now, call, side, leg);
        if side == Side::A {
            // The A slot's INVITE transaction is now the new party's.
            if let Some(c) = self.calls.get_mut(&call) {
                c.a.invite_tx = server_tx;
            }
        }
    }

    /// Learns the re-INVITEd party's answer (on `side.other()`) and rewrites
    /// it as our answer to the new party on `side` (trunk `trunk`).
    fn join_answer_sdp(
        &mut self,
        call: u64,
        side: Side,
        trunk: TrunkId,
        resp: &SipMsg,
    ) -> Option<Vec<u8>> {
        if !has_sdp(resp) {
            return None;
        }
        let sdp = SessionDescription::parse(resp.body()).ok()?;
        self.anchor_streams(call, &sdp);
        let c = self.calls.get_mut(&call)?;
        let other = side.other();
        let o_mode = Self::leg_mode(c, other);
        let p_mode = c.cfg.trunk(trunk).map_or(MediaMode::Rtp, |t| t.media);
        let ms = c.media.as_mut()?;
        ms.learn(other, &sdp, o_mode);
        let entropy = self.txn.entropy();
        let mut nk = || Self::new_key(&mut *entropy);
        let out = ms.rewrite_for(side, &sdp, p_mode, true, &mut nk);
        Some(out)
    }
}

/// The party of call `other` on side `mover` that a REFER join moves.
#[derive(Clone, Copy)]
struct Moved {
    other: u64,
    mover: Side,
}

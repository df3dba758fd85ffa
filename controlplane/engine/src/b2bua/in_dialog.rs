//! In-dialog requests and the responses to what we relay (RFC 3261 §12.2, §14).
//!
//! BYE is answered locally (200) and a BYE is sent on the other leg. re-INVITE,
//! UPDATE (RFC 3311), INFO (RFC 6086), MESSAGE (RFC 3428) and other in-dialog
//! methods are relayed on the other leg's dialog with its own CSeq; the
//! response comes back on the originating server transaction. SDP in either
//! direction is rewritten and the media reprogrammed. A 2xx to a relayed
//! re-INVITE is ACKed on its leg at once (ACKs are per leg), except when the
//! re-INVITE had no SDP: then the 2xx carries an offer whose answer comes in
//! the originator's ACK, so that leg's ACK waits for it (§13.2.1, §14.1). Toward
//! Teams a re-INVITE without SDP carries our offer instead; the originator's
//! answer in its ACK is then followed up as `reoffer` describes.
//! Glare: a re-INVITE while one is in progress gets 491 (§14.2).

use portcullis_sip::sdp::SessionDescription;

use super::call::{CallState, ClientRole, Relay};
use super::headers::{copy_safe, has_sdp};
use super::B2bua;
use crate::cdr::EndReason;
use crate::config::MediaMode;
use crate::media::{MediaControl, Side};
use crate::time::Timestamp;
use crate::transaction::{Method, SipMsg, TxId};

impl<M: MediaControl> B2bua<M> {
    /// Routes a response to whoever started the client transaction.
    pub(super) fn on_response(&mut self, now: Timestamp, tx: TxId, resp: &SipMsg) {
        if self.on_ping_response(now, tx, resp) {
            return;
        }
        let Some((call, role)) = self.by_client_tx.get(&tx).cloned() else {
            return;
        };
        let status = resp.status().unwrap_or(0);
        match role {
            ClientRole::Invite { dest } => self.on_b_invite_response(now, call, tx, dest, resp),
            ClientRole::Relay(relay) => {
                if status >= 200 {
                    self.by_client_tx.remove(&tx);
                }
                self.on_relay_response(now, call, &relay, resp);
            }
            ClientRole::Own => {
                if status >= 200 {
                    self.by_client_tx.remove(&tx);
                }
            }
            ClientRole::Transfer { dest } => {
                if status >= 200 {
                    self.by_client_tx.remove(&tx);
                }
                self.on_transfer_response(now, call, tx, dest, resp);
            }
            ClientRole::Refresh(side) => {
                if status >= 200 {
                    self.by_client_tx.remove(&tx);
                    self.on_refresh_response(now, call, side, status);
                }
            }
            ClientRole::Join { dest } => {
                if status >= 200 {
                    self.by_client_tx.remove(&tx);
                }
                self.on_join_response(now, call, tx, dest, resp);
            }
            ClientRole::Reoffer(side) => {
                if status >= 200 {
                    self.by_client_tx.remove(&tx);
                }
                self.on_reoffer_response(call, tx, side, resp);
            }
        }
    }

    /// A client transaction timed out / failed to send, or a server transaction
    /// never got the ACK of its 2xx (`timer_l`).
    pub(super) fn on_tx_failure(&mut self, now: Timestamp, tx: TxId, timer_l: bool, status: u16) {
        if self.on_ping_failure(tx) {
            return;
        }
        if let Some((call, _)) = self.by_invite_tx.get(&tx).copied() {
            if timer_l || self.calls.get(&call).is_some_and(|c| c.a.invite_tx == tx) {
                // §13.3.1.4: no ACK for our 2xx: the session is not established.
                self.by_invite_tx.remove(&tx);
                let live = self
                    .calls
                    .get(&call)
                    .is_some_and(|c| c.state != CallState::Ended);
                if live {
                    self.end_call(now, call, EndReason::Timeout, None);
                }
            }
            return;
        }
        let Some((call, role)) = self.by_client_tx.remove(&tx) else {
            return;
        };
        match role {
            ClientRole::Invite { .. } => {
                let current = self.calls.get(&call).is_some_and(|c| {
                    c.state == CallState::Proceeding
                        && c.b
                            .as_ref()
                            .is_some_and(|b| b.invite_tx == Some(tx) && !b.cancelled)
                });
                if current {
                    self.on_b_failure(now, call, status, None);
                }
            }
            ClientRole::Relay(relay) => {
                let r = self.response(&relay.request, 408, "Request Timeout", None);
                self.send_response(now, relay.server_tx, &r);
                if let Some(c) = self.calls.get_mut(&call) {
                    if relay.request.method() == Some(&Method::Invite) {
                        c.reinvite_pending = false;
                    }
                }
                if matches!(
                    relay.request.method(),
                    Some(Method::Invite | Method::Update)
                ) {
                    // RFC 5057 §5.1: a timed-out target refresh ends the dialog usage.
                    self.end_call(now, call, EndReason::Timeout, None);
                }
            }
            ClientRole::Own => {}
            ClientRole::Transfer { .. } => self.transfer_failed(now, call, status, None),
            ClientRole::Join { .. } => {
                let join = self.calls.get_mut(&call).and_then(|c| {
                    c.join
                        .as_ref()
                        .is_some_and(|j| j.tx == tx)
                        .then(|| c.join.take())
                        .flatten()
                });
                if let Some(join) = join {
                    self.join_failed(now, call, join, status, None);
                }
            }
            ClientRole::Reoffer(_) => {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.reinvite_pending = false;
                }
            }
            ClientRole::Refresh(side) => self.on_refresh_response(now, call, side, 408),
        }
    }

    /// A request inside the dialog of `side`.
    pub(super) fn on_in_dialog(
        &mut self,
        now: Timestamp,
        call: u64,
        side: Side,
        tx: TxId,
        req: SipMsg,
    ) {
        // The remote CSeq (and maybe the target) moves: the call's snapshot with it.
        self.ha_touch(call);
        let Some(c) = self.calls.get_mut(&call) else {
            self.reply(now, tx, &req, 481, "Call/Transaction Does Not Exist", None);
            return;
        };
        let from_tag = req.from_tag().ok().flatten().unwrap_or("").to_owned();
        let check = match c.dialog_mut(side) {
            Some(d) if d.id.remote_tag == from_tag => d.on_request(&req).map_err(|e| e.status()),
            _ => Err(481),
        };
        if c.state == CallState::Ended {
            self.reply(now, tx, &req, 481, "Call/Transaction Does Not Exist", None);
            return;
        }
        if let Err(status) = check {
            let reason = if status == 481 {
                "Call/Transaction Does Not Exist"
            } else {
                "Server Internal Error"
            };
            self.reply(now, tx, &req, status, reason, None);
            return;
        }
        let method = req.method().cloned().unwrap_or(Method::Ack);
        match method {
            Method::Bye => {
                self.reply(now, tx, &req, 200, "OK", None);
                let reason = EndReason::NormalClearing {
                    by: super::party(side),
                };
                self.end_call(now, call, reason, Some((487, "Request Terminated")));
            }
            Method::Invite | Method::Update => {
                let glare = method == Method::Invite && c.reinvite_pending;
                let other_ready = c.state == CallState::Answered
                    || (method == Method::Update && c.dialog_mut(side.other()).is_some());
                if glare {
                    self.reply(now, tx, &req, 491, "Request Pending", None);
                } else if !other_ready {
                    let mut r = self.response(&req, 500, "Server Internal Error", None);
                    r.push_header("Retry-After", "1");
                    self.send_response(now, tx, &r);
                } else {
                    self.relay(now, call, side, tx, req);
                }
            }
            Method::Prack if side == Side::A => self.on_prack(now, call, tx, req),
            Method::Refer => self.on_refer(now, call, side, tx, &req),
            Method::Prack => {
                self.reply(now, tx, &req, 501, "Not Implemented", None);
            }
            _ => {
                let other_ready = c.dialog_mut(side.other()).is_some();
                if method == Method::Info && self.info_to_events(now, call, side, tx, &req) {
                    // Answered here: played as RFC 4733 events (`dtmf`).
                } else if other_ready {
                    self.relay(now, call, side, tx, req);
                } else {
                    self.reply(now, tx, &req, 481, "Call/Transaction Does Not Exist", None);
                }
            }
        }
    }

    /// Relays an in-dialog request from `from` to the other leg.
    fn relay(&mut self, now: Timestamp, call: u64, from: Side, tx: TxId, req: SipMsg) {
        self.relay_with(now, call, from, tx, req, None);
    }

    /// [`Self::relay`] with an RAck for a PRACK (RFC 3262 §7.2).
    pub(super) fn relay_with(
        &mut self,
        now: Timestamp,
        call: u64,
        from: Side,
        tx: TxId,
        req: SipMsg,
        rack: Option<String>,
    ) {
        let to = from.other();
        let method = req.method().cloned().unwrap_or(Method::Info);
        // An anchored call must read an offer to rewrite it: one it cannot read is refused
        // as the initial INVITE's would be (a bypassed call relays it as it is).
        let anchored = self.calls.get(&call).is_some_and(|c| c.media.is_some());
        if anchored && has_sdp(&req) && SessionDescription::parse(req.body()).is_err() {
            self.reply(
                now,
                tx,
                &req,
                488,
                "Not Acceptable Here (unreadable SDP)",
                None,
            );
            return;
        }
        let offer = self
            .calls
            .get(&call)
            .is_some_and(|c| c.offer_from != Some(to));
        if offer {
            if let Err(why) = self.offer_codecs(call, from, &req) {
                self.refuse_offer(now, tx, &req, &why.to_string());
                return;
            }
        }
        let Some((mut out, dest)) = self.dialog_request(call, to, method.clone()) else {
            self.reply(now, tx, &req, 481, "Call/Transaction Does Not Exist", None);
            return;
        };
        if let Some(r) = rack {
            out.push_header("RAck", r);
        }
        let had_sdp = has_sdp(&req);
        let body = if had_sdp {
            self.relay_sdp(call, from, &req, true)
        } else if method == Method::Invite {
            self.offer_toward_teams(call, from)
        } else {
            None
        };
        let offered = !had_sdp && body.is_some();
        let plain_body = !had_sdp && !req.body().is_empty();
        copy_safe(&req, &mut out, body.is_some() || plain_body);
        self.cross_headers(call, to, &req, &mut out);
        if let Some(b) = body {
            if out.header("Content-Type").is_none() {
                out.push_header("Content-Type", "application/sdp");
            }
            out.set_body(b);
        } else if plain_body {
            out.set_body(req.body().to_vec());
        }
        self.update_media(call);
        if method == Method::Invite {
            if let Some(c) = self.calls.get_mut(&call) {
                c.reinvite_pending = true;
            }
            self.by_invite_tx.insert(tx, (call, from));
            if let Some(c) = self.calls.get_mut(&call) {
                c.server_txs.push(tx);
            }
        }
        let relay = Relay {
            server_tx: tx,
            from,
            request: req,
            had_sdp,
            offered,
        };
        if self
            .send_on(now, call, dest, out, ClientRole::Relay(relay.clone()))
            .is_none()
        {
            let r = self.response(&relay.request, 500, "Server Internal Error", None);
            self.send_response(now, tx, &r);
        }
    }

    /// A response to a relayed in-dialog request: relay it back.
    fn on_relay_response(&mut self, now: Timestamp, call: u64, relay: &Relay, resp: &SipMsg) {
        let status = resp.status().unwrap_or(0);
        if status == 100 {
            return;
        }
        let to = relay.from.other();
        let method = relay.request.method().cloned().unwrap_or(Method::Info);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.state == CallState::Ended {
            return;
        }
        if let Some(d) = c.dialog_mut(to) {
            d.on_response(&method, resp);
        }
        let reason = resp.as_owned().reason().unwrap_or("").to_owned();
        let mut r = self.response(&relay.request, status, &reason, None);
        let body = if has_sdp(resp) {
            self.relay_sdp(call, to, resp, status >= 200)
        } else {
            None
        };
        copy_safe(resp, &mut r, body.is_some());
        self.cross_headers(call, relay.from, resp, &mut r);
        if let Some(b) = body {
            if r.header("Content-Type").is_none() {
                r.push_header("Content-Type", "application/sdp");
            }
            r.set_body(b);
            self.update_media(call);
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if (200..300).contains(&status) && matches!(method, Method::Invite | Method::Update) {
            let contact = match relay.from {
                Side::A => c.a.contact.clone(),
                Side::B => c.b.as_ref().map(|b| b.contact.clone()).unwrap_or_default(),
            };
            r.push_header("Contact", contact);
        }
        if method == Method::Invite && status >= 200 {
            c.reinvite_pending = false;
        }
        if method == Method::Invite && (200..300).contains(&status) {
            let cseq = resp.cseq().map(|c| c.seq).unwrap_or(1);
            if relay.offered {
                // Teams answered our offer; the originator answers ours in its ACK.
                c.answer_in_ack = Some(relay.from);
                self.send_dialog_ack(call, to, cseq, None);
            } else if !relay.had_sdp && has_sdp(resp) {
                // The originator answers in its ACK: forward it then.
                c.deferred_ack = Some((to, cseq));
            } else {
                self.send_dialog_ack(call, to, cseq, None);
            }
        }
        if (200..300).contains(&status) && matches!(method, Method::Invite | Method::Update) {
            self.session_refreshed(now, call, relay.from);
        }
        self.send_response(now, relay.server_tx, &r);
        if status == 481 || (status == 408 && matches!(method, Method::Invite | Method::Update)) {
            self.end_call(
                now,
                call,
                EndReason::NormalClearing {
                    by: super::party(to),
                },
                None,
            );
        }
    }

    /// ACK for a 2xx of a server INVITE transaction of ours.
    pub(super) fn on_ack(&mut self, now: Timestamp, tx: TxId, ack: &SipMsg) {
        let Some((call, side)) = self.by_invite_tx.remove(&tx) else {
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.state == CallState::Ended {
            return;
        }
        let initial = c.a.invite_tx == tx;
        // The answer to the offer our 2xx made from the far side's answer to our own offer
        // (a delayed offer, see `reoffer`): learned, and followed up toward the far side.
        let answers_ours = if initial {
            c.offer_from == Some(Side::B)
        } else {
            c.answer_in_ack == Some(side)
        };
        if initial || answers_ours {
            if answers_ours && has_sdp(ack) {
                c.answer_in_ack = None;
                c.offer_from = None;
                self.learn_sdp(call, side, ack, None);
                self.update_media(call);
                self.follow_answer_in_ack(now, call, side);
            }
            return;
        }
        if let Some((to, cseq)) = c.deferred_ack.take() {
            let body = if has_sdp(ack) {
                self.relay_sdp(call, side, ack, true)
            } else {
                None
            };
            self.send_dialog_ack(call, to, cseq, body);
            self.update_media(call);
        }
    }

    /// Sends the ACK for a 2xx to our re-INVITE on `side` (optionally with SDP).
    fn send_dialog_ack(&mut self, call: u64, side: Side, cseq: u32, body: Option<Vec<u8>>) {
        let Some(dest) = self.calls.get(&call).and_then(|c| c.dest(side)) else {
            return;
        };
        let via = self.via_to(call, dest);
        let Some(d) = self.calls.get_mut(&call).and_then(|c| c.dialog_mut(side)) else {
            return;
        };
        let mut ack = d.ack(cseq, &via);
        if let Some(b) = body {
            ack.push_header("Content-Type", "application/sdp");
            ack.set_body(b);
        }
        self.txn.send_ack(None, dest, &ack);
    }

    /// Learns the SDP in `msg` (from `from`) and rewrites it for the other leg
    /// (a bypassed call: the body as received, byte for byte).
    /// `completes`: a final answer (2xx/ACK) ends the offer/answer exchange; an
    /// 18x answer does not (the 2xx repeats it, RFC 3261 §13.2.1).
    pub(super) fn relay_sdp(
        &mut self,
        call: u64,
        from: Side,
        msg: &SipMsg,
        completes: bool,
    ) -> Option<Vec<u8>> {
        if !has_sdp(msg) {
            return None;
        }
        // Anchored calls need to read it; a bypassed one relays it whatever it says.
        let parsed = SessionDescription::parse(msg.body()).ok();
        if let Some(sdp) = &parsed {
            self.anchor_streams(call, sdp);
        }
        let c = self.calls.get_mut(&call)?;
        let to = from.other();
        let mode_of = |side: Side| {
            let trunk = match side {
                Side::A => Some(c.a.trunk),
                Side::B => c.b.as_ref().map(|b| b.target.trunk),
            };
            trunk
                .and_then(|t| c.cfg.trunk(t))
                .map_or(MediaMode::Rtp, |t| t.media)
        };
        let (from_mode, to_mode) = (mode_of(from), mode_of(to));
        let answer = c.offer_from == Some(to);
        let out = match c.media.as_mut() {
            Some(ms) => {
                let sdp = parsed?;
                ms.learn(from, &sdp, from_mode);
                let entropy = self.txn.entropy();
                let mut nk = || Self::new_key(&mut *entropy);
                ms.rewrite_for(to, &sdp, to_mode, answer, &mut nk)
            }
            None => msg.body().to_vec(),
        };
        if answer {
            if completes {
                c.offer_from = None;
            }
        } else {
            c.offer_from = Some(from);
        }
        Some(out)
    }

    /// Our offer for a re-INVITE without SDP from `from` relayed toward a
    /// Teams side (Teams takes no delayed offer): `from`'s last SDP rewritten.
    fn offer_toward_teams(&mut self, call: u64, from: Side) -> Option<Vec<u8>> {
        let to = from.other();
        let c = self.calls.get_mut(&call)?;
        let trunk = Self::leg_trunk(c, to)?;
        if !c.cfg.is_teams_trunk(trunk) {
            return None;
        }
        let mode = c.cfg.trunk(trunk).map_or(MediaMode::Rtp, |t| t.media);
        let ms = c.media.as_mut()?;
        let sdp = ms.last_from(from)?.clone();
        let entropy = self.txn.entropy();
        let mut nk = || Self::new_key(&mut *entropy);
        let out = ms.rewrite_for(to, &sdp, mode, false, &mut nk);
        // Teams' answer is relayed to `from` as the offer of our 2xx.
        c.offer_from = Some(from);
        Some(out)
    }

    /// Pushes the current per-leg parameters to the data plane, each leg with
    /// the endpoint learning of the trunk it faces.
    pub(super) fn update_media(&mut self, call: u64) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let learning = [Side::A, Side::B].map(|side| {
            Self::leg_trunk(c, side)
                .and_then(|t| c.cfg.trunk(t))
                .map(|t| t.learning)
                .unwrap_or_default()
        });
        let Some(ms) = c.media.as_mut() else {
            self.ha_touch(call);
            return;
        };
        super::dtmf::program(ms);
        for st in &mut ms.streams {
            for (p, l) in st.params.iter_mut().zip(learning) {
                p.learning = l;
            }
            if self
                .media
                .update(st.alloc.id, &st.params[0], &st.params[1])
                .is_err()
            {
                self.stats.media_errors += 1;
            }
        }
        self.ha_touch(call);
    }
}

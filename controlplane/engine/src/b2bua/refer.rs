//! Call transfer: REFER (RFC 3515) with message/sipfrag NOTIFYs (RFC 3420),
//! Replaces (RFC 3891) in a Refer-To or on an INVITE.
//!
//! Blind transfer. A REFER on either leg of an answered call (Teams Direct
//! Routing transfers this way) is answered `202 Accepted`; the user part of
//! the Refer-To URI is routed as a new call from the referring leg's trunk
//! (408/5xx from a target: the next target, as for calls), and a new leg is
//! INVITEd with the remaining party's last SDP (made
//! `sendrecv`) rewritten for our port on the referrer's side. The same media
//! allocation is kept: when the target answers, its SDP is learned as the
//! referrer side's peer and the data plane reprogrammed, so the remaining
//! party talks to the target without a re-INVITE (its view of our address
//! and port does not change) unless it was left on hold, which one re-INVITE
//! with the target's SDP undoes. Progress goes to the referrer as NOTIFY
//! (`Event: refer`, `SIP/2.0 100 Trying`, then the final status line, RFC
//! 3515 §2.4.4–2.4.5); on a 2xx the referrer's leg is BYE'd after the final
//! NOTIFY and the new leg takes its place (a new leg on side A is held as the
//! A leg); on a failure the call stays as it was (media state restored).
//! A Refer-To Replaces naming a dialog that is not ours is passed to the
//! target as a `Replaces` header (with `Require: replaces`).
//!
//! Attended transfer, both calls through us (the Teams consult transfer):
//! the REFER's Refer-To Replaces names a leg of *another* call of ours. The
//! party left on that call is re-INVITEd toward our port on the referrer's
//! side of the REFER's call (same `o=` session continued); on its 2xx its
//! leg moves onto that side, the referrer and the replaced leg are BYE'd and
//! the other call ends (CDR `Transferred`). An INVITE carrying Replaces that
//! names a leg of ours: its offer is sent to the party on the other side in
//! a re-INVITE, that party's answer goes back in our 2xx and the new dialog
//! takes the replaced leg's place (which is BYE'd). Replaces naming no dialog
//! of ours gets `481` on an INVITE, and on a REFER whose Call-ID is ours.
//!
//! Media bypass: transfers work on the anchored media (the remaining party
//! keeps talking to our port), so a REFER on a bypassed call, a REFER whose
//! Replaces names one, and an INVITE with Replaces naming one are refused
//! `403` ([`BYPASS_NO_TRANSFER`]); the call goes on unchanged.
//!
//! CDRs: a completed transfer emits a [`crate::cdr::CdrRecord`] for the
//! segment before the transfer (same call number, the leg that left, end
//! reason `Transferred`, no media stats); the continuing call emits its own
//! record when it ends. Invariants: at most one transfer or join per call, and
//! none while a re-INVITE is pending (`491`).

use portcullis_sip::percent_decode;
use portcullis_sip::sdp::SessionDescription;

use super::call::{ALeg, BLeg, CallState, CallTimer, ClientRole, Join, JoinKind, NewLeg, Transfer};
use super::headers::{has_sdp, retry_after, user_of};
use super::route::Target;
use super::sdp_rewrite::{ix, sendrecv};
use super::B2bua;
use crate::cdr::{CdrRecord, EndReason, LegRecord, NumberRecord};
use crate::config::{EngineConfig, MediaMode, TrunkId};
use crate::dialog::Dialog;
use crate::media::{MediaControl, Side};
use crate::time::Timestamp;
use crate::transaction::{Method, PeerAddr, SipMsg, TxId};

use super::CallEvent;

/// Reason phrase of the `403` refusing a transfer involving a bypassed call.
pub(crate) const BYPASS_NO_TRANSFER: &str = "Transfer Not Possible With Media Bypass";

/// The URI inside a Refer-To value (`<sip:...>` or a bare URI), headers kept.
fn refer_uri(value: &str) -> &str {
    match value.split_once('<') {
        Some((_, rest)) => rest.split('>').next().unwrap_or(""),
        None => value.split(';').next().unwrap_or("").trim(),
    }
}

/// A Replaces value (RFC 3891 §6.1): the dialog as seen by the recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Replaces {
    pub call_id: String,
    pub to_tag: String,
    pub from_tag: String,
    pub early_only: bool,
}

/// Parses `callid;to-tag=x;from-tag=y[;early-only]`.
pub(crate) fn parse_replaces(v: &str) -> Option<Replaces> {
    let mut parts = v.split(';');
    let call_id = parts.next()?.trim().to_owned();
    if call_id.is_empty() {
        return None;
    }
    let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
    for p in parts {
        let (k, val) = p
            .split_once('=')
            .map_or((p.trim(), ""), |(k, v)| (k.trim(), v.trim()));
        if k.eq_ignore_ascii_case("to-tag") {
            to_tag = Some(val.to_owned());
        } else if k.eq_ignore_ascii_case("from-tag") {
            from_tag = Some(val.to_owned());
        } else if k.eq_ignore_ascii_case("early-only") {
            early_only = true;
        }
    }
    Some(Replaces {
        call_id,
        to_tag: to_tag.filter(|t| !t.is_empty())?,
        from_tag: from_tag.filter(|t| !t.is_empty())?,
        early_only,
    })
}

/// Splits a Refer-To URI from its `?` headers: (URI, raw Replaces value
/// percent-decoded when the URI carries one).
fn split_refer_to(uri: &str) -> (&str, Option<String>) {
    let Some((base, headers)) = uri.split_once('?') else {
        return (uri, None);
    };
    let replaces = headers.split('&').find_map(|h| {
        let (k, v) = h.split_once('=').unwrap_or((h, ""));
        k.trim()
            .eq_ignore_ascii_case("replaces")
            .then(|| String::from_utf8_lossy(&percent_decode(v)).into_owned())
    });
    (base, replaces)
}

/// A leg moving between slots or calls.
enum Leg {
    A(ALeg),
    B(BLeg),
}

impl Leg {
    /// As the A slot of a call (`invite_tx`: the slot's INVITE transaction).
    fn into_a(self, invite_tx: TxId) -> ALeg {
        match self {
            Self::A(mut a) => {
                a.invite_tx = invite_tx;
                a
            }
            Self::B(b) => ALeg {
                peer: b.dest,
                trunk: b.target.trunk,
                invite_tx,
                invite: b.invite,
                tag: b.tag,
                contact: b.contact,
                dialog: b.dialog,
                final_sent: true,
            },
        }
    }

    /// As the B slot of a call; `called`: the party's number.
    fn into_b(self, called: String) -> BLeg {
        match self {
            Self::B(b) => b,
            Self::A(a) => BLeg::new(
                Target {
                    trunk: a.trunk,
                    called,
                    redirect: None,
                    addr: None,
                },
                a.peer,
                a.invite.call_id().unwrap_or("").to_owned(),
                a.tag,
                a.contact,
                a.invite,
            )
            .established(a.dialog),
        }
    }

    /// (Call-ID, our tag): the leg's key in the dialog index.
    fn key(&self) -> (String, String) {
        match self {
            Self::A(a) => (a.invite.call_id().unwrap_or("").to_owned(), a.tag.clone()),
            Self::B(b) => (b.call_id.clone(), b.tag.clone()),
        }
    }

    fn record(&self, cfg: &EngineConfig) -> LegRecord {
        match self {
            Self::A(a) => a_record(cfg, a),
            Self::B(b) => b_record(cfg, b),
        }
    }
}

/// CDR record of an A-slot leg.
fn a_record(cfg: &EngineConfig, a: &ALeg) -> LegRecord {
    LegRecord {
        call_id: a.invite.call_id().unwrap_or("").to_owned(),
        from: a.invite.header("From").unwrap_or("").to_owned(),
        to: a.invite.header("To").unwrap_or("").to_owned(),
        trunk: cfg
            .trunk(a.trunk)
            .map(|t| t.name.clone())
            .unwrap_or_default(),
        remote: a.peer.addr,
    }
}

/// CDR record of a B-slot leg.
fn b_record(cfg: &EngineConfig, b: &BLeg) -> LegRecord {
    LegRecord {
        call_id: b.call_id.clone(),
        from: b.invite.header("From").unwrap_or("").to_owned(),
        to: b.invite.header("To").unwrap_or("").to_owned(),
        trunk: cfg
            .trunk(b.target.trunk)
            .map(|t| t.name.clone())
            .unwrap_or_default(),
        remote: b.dest.addr,
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
        if c.state != CallState::Answered || c.busy() {
            self.reply(now, tx, req, 491, "Request Pending", None);
            return;
        }
        if c.bypassed() {
            self.reply(now, tx, req, 403, BYPASS_NO_TRANSFER, None);
            return;
        }
        let value = req
            .header("Refer-To")
            .or_else(|| req.header("r"))
            .unwrap_or("")
            .to_owned();
        let (base, replaces) = split_refer_to(refer_uri(&value));
        let called = user_of(base).to_owned();
        let replaces = match replaces.as_deref().map(|v| (v, parse_replaces(v))) {
            None => None,
            Some((_, None)) => {
                self.reply(now, tx, req, 400, "Bad Replaces", None);
                return;
            }
            Some((raw, Some(r))) => Some((raw.to_owned(), r)),
        };
        let refer_cseq = req.cseq().map(|s| s.seq).unwrap_or(1);
        if let Some((_, r)) = &replaces {
            if let Some((other, replaced)) = self.find_replaced(r) {
                if other == call {
                    self.reply(now, tx, req, 400, "Replaces Names This Call", None);
                    return;
                }
                if self
                    .calls
                    .get(&other)
                    .is_some_and(super::call::Call::bypassed)
                {
                    self.reply(now, tx, req, 403, BYPASS_NO_TRANSFER, None);
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
                self.reply(now, tx, req, 202, "Accepted", None);
                self.notify(now, call, side, refer_cseq, "SIP/2.0 100 Trying", false);
                if !self.start_join_refer(now, call, side, refer_cseq, other, replaced) {
                    let frag = "SIP/2.0 503 Service Unavailable";
                    self.notify(now, call, side, refer_cseq, frag, true);
                }
                return;
            }
            if self.by_dialog.keys().any(|(id, _)| *id == r.call_id) {
                // Our Call-ID, but no such dialog (any more).
                self.reply(now, tx, req, 481, "Call/Transaction Does Not Exist", None);
                return;
            }
        }
        if called.is_empty() {
            self.reply(now, tx, req, 400, "Bad Request", None);
            return;
        }
        let Some(inbound) = Self::leg_trunk(c, side) else {
            return;
        };
        // The party that stays calls the target.
        let (calling, caller) = match side {
            Side::B => (c.a_calling.clone(), None),
            Side::A => {
                let n =
                    c.b.as_ref()
                        .map(|b| b.target.called.clone())
                        .unwrap_or_default();
                (n.clone(), Some(n))
            }
        };
        let history: Vec<String> = req
            .header_values("History-Info")
            .map(str::to_owned)
            .collect();
        self.reply(now, tx, req, 202, "Accepted", None);
        self.notify(now, call, side, refer_cseq, "SIP/2.0 100 Trying", false);
        let targets: std::collections::VecDeque<Target> =
            match self.router.route(inbound, &called, &calling) {
                Ok(d) => d
                    .targets
                    .into_iter()
                    .map(|t| Target {
                        trunk: t.trunk,
                        called: t.called,
                        redirect: None,
                        addr: None,
                    })
                    .collect(),
                Err(_) => std::collections::VecDeque::new(),
            };
        if targets.is_empty() {
            self.notify(now, call, side, refer_cseq, "SIP/2.0 404 Not Found", true);
            return;
        }
        let extra = NewLeg {
            caller,
            replaces: replaces.map(|(raw, _)| raw),
            history,
        };
        self.next_transfer_target(now, call, side, refer_cseq, targets, &extra, 503);
    }

    /// Tries the transfer targets in order; NOTIFYs `status` when none could
    /// be tried.
    #[allow(clippy::too_many_arguments)]
    fn next_transfer_target(
        &mut self,
        now: Timestamp,
        call: u64,
        referrer: Side,
        refer_cseq: u32,
        mut targets: std::collections::VecDeque<Target>,
        extra: &NewLeg,
        status: u16,
    ) {
        while let Some(mut target) = targets.pop_front() {
            if !self.pick_target(now, call, &mut target, true) {
                continue;
            }
            let rest = std::mem::take(&mut targets);
            match self.start_transfer(now, call, referrer, refer_cseq, target, rest, extra) {
                Ok(()) => return,
                Err(rest) => targets = rest,
            }
        }
        let frag = format!(
            "SIP/2.0 {status} {}",
            super::failover::default_reason(status)
        );
        self.notify(now, call, referrer, refer_cseq, &frag, true);
    }

    /// The leg of ours a Replaces names (either tag order), as (call, side).
    pub(super) fn find_replaced(&self, r: &Replaces) -> Option<(u64, Side)> {
        for (ours, theirs) in [(&r.to_tag, &r.from_tag), (&r.from_tag, &r.to_tag)] {
            let key = (r.call_id.clone(), ours.clone());
            if let Some(&(call, side)) = self.by_dialog.get(&key) {
                let matches = self
                    .calls
                    .get(&call)
                    .filter(|c| c.state != CallState::Ended)
                    .and_then(|c| c.dialog(side))
                    .is_some_and(|d| d.id.remote_tag == *theirs);
                if matches {
                    return Some((call, side));
                }
            }
        }
        None
    }

    /// Sends the INVITE of the transfer leg (`rest`: the targets after this
    /// one). Gives `rest` back when it could not be sent.
    #[allow(clippy::too_many_arguments)]
    fn start_transfer(
        &mut self,
        now: Timestamp,
        call: u64,
        referrer: Side,
        refer_cseq: u32,
        target: Target,
        rest: std::collections::VecDeque<Target>,
        extra: &NewLeg,
    ) -> Result<(), std::collections::VecDeque<Target>> {
        let trunk = target.trunk;
        if !self.acquire_trunk(call, trunk) {
            // The target trunk is at its `max_calls`.
            self.stats.trunk_limit_rejects += 1;
            return Err(rest);
        }
        if !self.try_transfer(now, call, referrer, refer_cseq, target, extra) {
            self.release_trunk(call, trunk);
            return Err(rest);
        }
        {
            if let Some(t) = self.calls.get_mut(&call).and_then(|c| c.transfer.as_mut()) {
                t.targets = rest;
                t.extra = extra.clone();
            }
        }
        Ok(())
    }

    /// Sends the INVITE of the transfer leg. False when it could not be sent.
    fn try_transfer(
        &mut self,
        now: Timestamp,
        call: u64,
        referrer: Side,
        refer_cseq: u32,
        target: Target,
        extra: &NewLeg,
    ) -> bool {
        let Some((mut inv, dest, call_id, tag, contact)) =
            self.build_b_invite(call, &target, extra.caller.as_deref())
        else {
            return false;
        };
        let Some(c) = self.calls.get(&call) else {
            return false;
        };
        let remaining = referrer.other();
        // RFC 7044 History-Info: the REFER's entries when it has some, else the
        // original INVITE's, whenever Teams is on any leg involved.
        let teams = c.cfg.is_teams_trunk(target.trunk)
            || [Side::A, Side::B]
                .into_iter()
                .filter_map(|s| Self::leg_trunk(c, s))
                .any(|t| c.cfg.is_teams_trunk(t));
        inv.remove_header("History-Info");
        if teams {
            let his: Vec<String> = if extra.history.is_empty() {
                c.a.invite
                    .header_values("History-Info")
                    .map(str::to_owned)
                    .collect()
            } else {
                extra.history.to_vec()
            };
            for h in his {
                inv.push_header("History-Info", h);
            }
        }
        if let Some(r) = extra.replaces.as_deref() {
            // Not one of our dialogs: the target resolves it (RFC 3891).
            inv.push_header("Replaces", r);
            inv.push_header("Require", "replaces");
        }
        let Some(saved) = c.media.as_ref().map(|m| m.snapshot(referrer)) else {
            return false;
        };
        self.set_leg_teams(call, referrer, target.trunk);
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        let mode = c
            .cfg
            .trunk(target.trunk)
            .map_or(MediaMode::Rtp, |t| t.media);
        let Some(ms) = c.media.as_mut() else {
            return false;
        };
        // A fresh SDES key toward the new peer (RFC 4568 §6.1: keys are per sender).
        ms.params[ix(referrer)].srtp_out = None;
        let entropy = self.txn.entropy();
        let mut nk = || Self::new_key(&mut *entropy);
        let body = match ms.last_from(remaining).map(sendrecv) {
            Some(sdp) => ms.rewrite_for(referrer, &sdp, mode, false, &mut nk),
            None => ms.own_offer(referrer, mode, &mut nk),
        };
        inv.push_header("Content-Type", "application/sdp");
        inv.set_body(body);
        let Some(tx) = self.send_on(now, call, dest, inv.clone(), ClientRole::Transfer { dest })
        else {
            if let Some(ms) = self.calls.get_mut(&call).and_then(|c| c.media.as_mut()) {
                ms.restore(referrer, saved);
            }
            return false;
        };
        if let Some(c) = self.calls.get_mut(&call) {
            c.transfer = Some(Transfer {
                referrer,
                refer_cseq,
                leg: BLeg::new(target, dest, call_id, tag, contact, inv).calling(tx),
                saved,
                targets: std::collections::VecDeque::new(),
                extra: NewLeg::default(),
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
                self.ack_and_bye_orphan(now, call, tx, dest, resp);
            }
            return;
        }
        match status {
            0..=199 => {}
            200..=299 => self.transfer_answered(now, call, tx, dest, resp),
            _ => self.transfer_failed(now, call, status, Some(resp)),
        }
    }

    /// ACKs a 2xx nobody wants any more and hangs that dialog up.
    fn ack_and_bye_orphan(
        &mut self,
        now: Timestamp,
        call: u64,
        tx: TxId,
        dest: PeerAddr,
        resp: &SipMsg,
    ) {
        if let Some(invite) = self.txn.request(tx).cloned() {
            if let Ok(mut d) = Dialog::from_uac(&invite, resp) {
                let via = self.via_to(call, dest);
                let ack = d.ack(resp.cseq().map_or(1, |c| c.seq), &via);
                self.txn.send_ack(Some(tx), dest, &ack);
                let via = self.via_to(call, dest);
                if let Ok(bye) = d.request(Method::Bye, &via) {
                    self.send_on(now, call, dest, bye, ClientRole::Own);
                }
            }
        }
    }

    /// The transfer target refused (or timed out): the next target on
    /// 408/5xx (a 503 with Retry-After holds its trunk back as for calls),
    /// else NOTIFY the failure and keep the call.
    pub(super) fn transfer_failed(
        &mut self,
        now: Timestamp,
        call: u64,
        status: u16,
        resp: Option<&SipMsg>,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(t) = c.transfer.take() else {
            return;
        };
        if let Some(ms) = c.media.as_mut() {
            ms.restore(t.referrer, t.saved);
        }
        let trunk = c.cfg.trunk(t.leg.target.trunk).map(|t| t.name.clone());
        self.release_trunk(call, t.leg.target.trunk);
        if let (503, Some(secs), Some(name)) = (status, resp.and_then(retry_after), trunk) {
            let addr = t.leg.dest.addr;
            self.targets
                .hold_off(&name, addr, now, std::time::Duration::from_secs(secs));
        }
        let targets = if matches!(status, 408 | 500..=599) {
            t.targets
        } else {
            std::collections::VecDeque::new()
        };
        self.next_transfer_target(
            now,
            call,
            t.referrer,
            t.refer_cseq,
            targets,
            &t.extra,
            status,
        );
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
        let via = self.via_to(call, dest);
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
        // The target's answer is the referrer side's new peer (same allocation).
        let mode = c
            .cfg
            .trunk(t.leg.target.trunk)
            .map_or(MediaMode::Rtp, |t| t.media);
        if has_sdp(resp) {
            if let (Ok(sdp), Some(ms)) = (SessionDescription::parse(resp.body()), c.media.as_mut())
            {
                ms.learn(t.referrer, &sdp, mode);
            }
        }
        self.update_media(call);
        self.notify(now, call, t.referrer, t.refer_cseq, "SIP/2.0 200 OK", true);
        // BYE the referrer's leg after the final NOTIFY (RFC 5589 §6).
        self.release_leg(now, call, t.referrer);
        let referrer = t.referrer;
        self.replace_leg(now, call, referrer, Leg::B(t.leg));
        self.unhold(now, call, referrer.other());
    }

    /// Sends BYE on `side` (after which the leg is replaced).
    fn release_leg(&mut self, now: Timestamp, call: u64, side: Side) {
        if let Some((bye, dest)) = self.dialog_request(call, side, Method::Bye) {
            self.send_on(now, call, dest, bye, ClientRole::Own);
        }
        if let Some(d) = self.calls.get_mut(&call).and_then(|c| c.dialog_mut(side)) {
            d.terminate();
        }
    }

    /// Puts `leg` on `side` of `call` (dialog index, session timers), and
    /// emits the CDR of the segment that ended with the old leg.
    fn replace_leg(&mut self, now: Timestamp, call: u64, side: Side, leg: Leg) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let new_key = leg.key();
        let old = match side {
            Side::A => {
                let a = leg.into_a(c.a.invite_tx);
                Leg::A(std::mem::replace(&mut c.a, a))
            }
            Side::B => {
                let called = c.called.clone();
                let Some(old) = c.b.replace(leg.into_b(called)) else {
                    return;
                };
                Leg::B(old)
            }
        };
        let old_key = old.key();
        let old_trunk = match &old {
            Leg::A(a) => a.trunk,
            Leg::B(b) => b.target.trunk,
        };
        c.dialog_keys.retain(|k| *k != old_key);
        c.dialog_keys.push(new_key.clone());
        c.session[ix(side)] = None;
        self.by_dialog.remove(&old_key);
        self.by_dialog.insert(new_key, (call, side));
        // The leg that left gives back its trunk slot (the new one holds its own).
        self.release_trunk(call, old_trunk);
        // RFC 4028 state of the old leg no longer applies.
        self.stop_timer(call, CallTimer::Refresh(side));
        self.stop_timer(call, CallTimer::SessionExpiry);
        self.arm_session(now, call, side.other());
        self.segment_cdr(now, call, side, &old);
    }

    /// When the stream toward `side` was left on hold (a transfer is often
    /// preceded by one), re-INVITEs it with the other side's SDP `sendrecv`.
    fn unhold(&mut self, now: Timestamp, call: u64, side: Side) {
        let held = self
            .calls
            .get(&call)
            .and_then(|c| c.media.as_ref())
            .is_some_and(|m| m.held(side));
        if held {
            self.reoffer(now, call, side);
        }
    }

    /// Sends our own offer (the other side's last SDP, `sendrecv`) on `side`.
    fn reoffer(&mut self, now: Timestamp, call: u64, side: Side) {
        let Some((mut req, dest)) = self.dialog_request(call, side, Method::Invite) else {
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let mode = Self::leg_trunk(c, side)
            .and_then(|t| c.cfg.trunk(t))
            .map_or(MediaMode::Rtp, |t| t.media);
        let Some(ms) = c.media.as_mut() else {
            return;
        };
        let Some(sdp) = ms.last_from(side.other()).map(sendrecv) else {
            return;
        };
        let entropy = self.txn.entropy();
        let mut nk = || Self::new_key(&mut *entropy);
        let body = ms.rewrite_for(side, &sdp, mode, false, &mut nk);
        c.reinvite_pending = true;
        req.push_header("Content-Type", "application/sdp");
        req.set_body(body);
        self.send_on(now, call, dest, req, ClientRole::Reoffer(side));
    }

    /// A response to [`Self::reoffer`]'s re-INVITE.
    pub(super) fn on_reoffer_response(&mut self, call: u64, tx: TxId, side: Side, resp: &SipMsg) {
        let status = resp.status().unwrap_or(0);
        if status < 200 {
            return;
        }
        let Some(dest) = self.calls.get(&call).and_then(|c| c.dest(side)) else {
            return;
        };
        let via = self.via_to(call, dest);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.reinvite_pending = false;
        if !(200..300).contains(&status) || c.state != CallState::Answered {
            return;
        }
        let mode = Self::leg_trunk(c, side)
            .and_then(|t| c.cfg.trunk(t))
            .map_or(MediaMode::Rtp, |t| t.media);
        if let Some(d) = c.dialog_mut(side) {
            let ack = d.ack_answer(resp, &via);
            self.txn.send_ack(Some(tx), dest, &ack);
        }
        if has_sdp(resp) {
            if let (Ok(sdp), Some(ms)) = (SessionDescription::parse(resp.body()), c.media.as_mut())
            {
                ms.learn(side, &sdp, mode);
            }
        }
        self.update_media(call);
    }

    /// REFER with Replaces naming leg `replaced` of call `other`: re-INVITE
    /// the party left on `other` toward our port on `side` of `call`.
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
        ms.params[ix(side)].srtp_out = None;
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
    pub(super) fn on_invite_replaces(
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
        let tag = self.random_hex();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let o_mode = Self::leg_trunk(c, other)
            .and_then(|t| c.cfg.trunk(t))
            .map_or(MediaMode::Rtp, |t| t.media);
        let contact = super::identity::leg_contact(&c.cfg.clone(), trunk, from.transport);
        let Some(ms) = c.media.as_mut() else {
            return;
        };
        ms.params[ix(side)].srtp_out = None;
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
    pub(super) fn on_join_response(
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
            self.join_stale(now, tx, dest, resp, join);
            return;
        }
        if (200..300).contains(&status) {
            self.join_answered(now, call, tx, dest, resp, join);
        } else {
            self.join_failed(now, call, join, status, resp.as_owned().reason());
        }
    }

    /// A join whose call ended before the re-INVITE was answered: a 2xx is
    /// ACKed and the other call (REFER) ends too; the new party (INVITE)
    /// gets `481`.
    fn join_stale(&mut self, now: Timestamp, tx: TxId, dest: PeerAddr, resp: &SipMsg, join: Join) {
        let status = resp.status().unwrap_or(0);
        if (200..300).contains(&status) {
            if let Some(invite) = self.txn.request(tx).cloned() {
                if let Ok(d) = Dialog::from_uac(&invite, resp) {
                    let via = self.via(dest.transport);
                    let ack = d.ack(resp.cseq().map_or(1, |c| c.seq), &via);
                    self.txn.send_ack(Some(tx), dest, &ack);
                }
            }
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
    pub(super) fn join_failed(
        &mut self,
        now: Timestamp,
        call: u64,
        join: Join,
        status: u16,
        reason: Option<&str>,
    ) {
        let reason = reason
            .map(str::to_owned)
            .unwrap_or_else(|| super::failover::default_reason(status).to_owned());
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

    /// The party re-INVITEd for a join answered: move the legs.
    fn join_answered(
        &mut self,
        now: Timestamp,
        call: u64,
        tx: TxId,
        dest: PeerAddr,
        resp: &SipMsg,
        join: Join,
    ) {
        let via = self.via_to(call, dest);
        let side = join.side;
        match join.kind {
            JoinKind::Refer {
                refer_cseq,
                other,
                replaced,
            } => {
                let mover = replaced.other();
                let Some(o) = self.calls.get_mut(&other) else {
                    return;
                };
                o.reinvite_pending = false;
                let mode = Self::leg_trunk(o, mover)
                    .and_then(|t| o.cfg.trunk(t))
                    .map_or(MediaMode::Rtp, |t| t.media);
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
                if let Some(d) = o.dialog_mut(mover) {
                    let ack = d.ack_answer(resp, &via);
                    self.txn.send_ack(Some(tx), dest, &ack);
                }
                // The mover leaves `other` (its dialog goes with it: no BYE there).
                let Some(o) = self.calls.get_mut(&other) else {
                    return;
                };
                let leg = match mover {
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
                        let Some(b) = o.b.as_mut() else {
                            return;
                        };
                        Leg::B(
                            BLeg::new(
                                Target {
                                    trunk: b.target.trunk,
                                    called: number.clone(),
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
                if let Some(c) = self.calls.get_mut(&call) {
                    if has_sdp(resp) {
                        if let (Ok(sdp), Some(ms)) =
                            (SessionDescription::parse(resp.body()), c.media.as_mut())
                        {
                            ms.learn(side, &sdp, mode);
                        }
                    }
                }
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
            JoinKind::Invite {
                server_tx,
                invite,
                peer,
                trunk,
                tag,
                contact,
            } => {
                let other = side.other();
                let Some(c) = self.calls.get_mut(&call) else {
                    return;
                };
                c.reinvite_pending = false;
                if let Some(d) = c.dialog_mut(other) {
                    let ack = d.ack_answer(resp, &via);
                    self.txn.send_ack(Some(tx), dest, &ack);
                }
                // Our answer to the new party: the re-INVITEd party's answer.
                let mut r = self.response(&invite, 200, "OK", Some(&tag));
                r.push_header("Contact", &contact);
                let teams = self
                    .calls
                    .get(&call)
                    .is_some_and(|c| c.cfg.is_teams_trunk(trunk));
                if teams {
                    r.push_header("X-MS-SBC", super::x_ms_sbc());
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
        let c = self.calls.get_mut(&call)?;
        let other = side.other();
        let o_mode = Self::leg_trunk(c, other)
            .and_then(|t| c.cfg.trunk(t))
            .map_or(MediaMode::Rtp, |t| t.media);
        let p_mode = c.cfg.trunk(trunk).map_or(MediaMode::Rtp, |t| t.media);
        let ms = c.media.as_mut()?;
        ms.learn(other, &sdp, o_mode);
        let entropy = self.txn.entropy();
        let mut nk = || Self::new_key(&mut *entropy);
        let out = ms.rewrite_for(side, &sdp, p_mode, true, &mut nk);
        Some(out)
    }

    /// The record of the segment that ended when `old` left `side`.
    fn segment_cdr(&mut self, now: Timestamp, call: u64, side: Side, old: &Leg) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let off = self.epoch_offset_ms;
        let cfg = c.cfg.clone();
        let a_rec = match (side, old) {
            (Side::A, o) => o.record(&cfg),
            _ => a_record(&cfg, &c.a),
        };
        let (b_rec, b_called) = match (side, old) {
            (Side::B, Leg::B(b)) => (Some(b_record(&cfg, b)), Some(b.target.called.clone())),
            (Side::B, o) => (Some(o.record(&cfg)), None),
            _ => (
                c.b.as_ref().map(|b| b_record(&cfg, b)),
                c.b.as_ref().map(|b| b.target.called.clone()),
            ),
        };
        let cdr = CdrRecord {
            call_id: call,
            a_leg: a_rec,
            b_leg: b_rec,
            calling: NumberRecord::new(c.a_calling.clone(), c.calling.clone()),
            called: NumberRecord::new(
                c.called.clone(),
                b_called.unwrap_or_else(|| c.called.clone()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_in_refer_to() {
        let uri = refer_uri(
            "<sip:+4930777@sbc.example.com?Replaces=abc%40host%3Bto-tag%3D12%3Bfrom-tag%3D34&Require=replaces>",
        );
        let (base, rep) = split_refer_to(uri);
        assert_eq!(base, "sip:+4930777@sbc.example.com");
        let rep = rep.unwrap();
        assert_eq!(rep, "abc@host;to-tag=12;from-tag=34");
        let r = parse_replaces(&rep).unwrap();
        assert_eq!(r.call_id, "abc@host");
        assert_eq!(r.to_tag, "12");
        assert_eq!(r.from_tag, "34");
        assert!(!r.early_only);
        assert!(parse_replaces("abc;to-tag=1").is_none());
        assert!(parse_replaces(";to-tag=1;from-tag=2").is_none());
        assert!(
            parse_replaces("x;to-tag=1;from-tag=2;early-only")
                .unwrap()
                .early_only
        );
        assert_eq!(split_refer_to("sip:1@h").1, None);
    }
}

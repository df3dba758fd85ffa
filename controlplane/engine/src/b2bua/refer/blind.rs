//! Blind transfer (RFC 3515): the Refer-To number is routed as a new call
//! from the referrer's trunk and a new leg INVITEd with the remaining party's
//! last SDP (`sendrecv`) rewritten for our port on the referrer's side; on its
//! 2xx the new leg takes the referrer's place (see the module docs of `refer`).

use std::collections::VecDeque;

use super::legs::Leg;
use crate::b2bua::answer::{confirm_leg, Unwanted};
use crate::b2bua::call::{BLeg, CallState, ClientRole, NewLeg, Transfer};
use crate::b2bua::headers::retry_after;
use crate::b2bua::route::Target;
use crate::b2bua::sdp_rewrite::sendrecv;
use crate::b2bua::B2bua;
use crate::config::MediaMode;
use crate::media::{MediaControl, Side};
use crate::time::Timestamp;
use crate::transaction::{PeerAddr, SipMsg, TxId};

impl<M: MediaControl> B2bua<M> {
    /// A REFER on `side` whose Refer-To names `called` (no Replaces of ours):
    /// `202`, NOTIFY `100 Trying`, then the first target tried. `extra`: what
    /// the new leg's INVITE carries beyond the routed call.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn refer_blind(
        &mut self,
        now: Timestamp,
        call: u64,
        side: Side,
        tx: TxId,
        req: &SipMsg,
        called: &str,
        mut extra: NewLeg,
    ) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if called.is_empty() {
            self.reply(now, tx, req, 400, "Bad Request", None);
            return;
        }
        let Some(inbound) = Self::leg_trunk(c, side) else {
            return;
        };
        // The party that stays calls the target.
        let calling = match side {
            Side::B => c.a_calling.clone(),
            Side::A => {
                let n =
                    c.b.as_ref()
                        .map(|b| b.target.called.clone())
                        .unwrap_or_default();
                extra.caller = Some(n.clone());
                n
            }
        };
        extra.history = req
            .header_values("History-Info")
            .map(str::to_owned)
            .collect();
        let refer_cseq = req.cseq().map(|s| s.seq).unwrap_or(1);
        self.reply(now, tx, req, 202, "Accepted", None);
        self.notify(now, call, side, refer_cseq, "SIP/2.0 100 Trying", false);
        let targets: VecDeque<Target> = match self.router.route(inbound, called, &calling) {
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
            Err(_) => VecDeque::new(),
        };
        if targets.is_empty() {
            self.notify(now, call, side, refer_cseq, "SIP/2.0 404 Not Found", true);
            return;
        }
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
        mut targets: VecDeque<Target>,
        extra: &NewLeg,
        status: u16,
    ) {
        while let Some(mut target) = targets.pop_front() {
            // The target takes the referrer's side: its ports are in that side's realm.
            if !self.realm_fits(call, referrer, target.trunk) {
                continue;
            }
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
            crate::b2bua::failover::default_reason(status)
        );
        self.notify(now, call, referrer, refer_cseq, &frag, true);
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
        rest: VecDeque<Target>,
        extra: &NewLeg,
    ) -> Result<(), VecDeque<Target>> {
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
        if let Some(t) = self.calls.get_mut(&call).and_then(|c| c.transfer.as_mut()) {
            t.targets = rest;
            t.extra = extra.clone();
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
                extra.history.clone()
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
        ms.forget_keys(referrer);
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
                targets: VecDeque::new(),
                extra: NewLeg::default(),
            });
        }
        true
    }

    /// A response to the transfer leg's INVITE.
    pub(in crate::b2bua) fn on_transfer_response(
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
                let what = Unwanted::Bye { remember: true };
                self.ack_unwanted(now, call, tx, dest, resp, what);
            }
            return;
        }
        match status {
            101..=199 => self.transfer_early_media(call, resp),
            0..=100 => {}
            200..=299 => self.transfer_answered(now, call, tx, dest, resp),
            _ => self.transfer_failed(now, call, status, Some(resp)),
        }
    }

    /// The transfer target refused (or timed out): the next target on
    /// 408/5xx (a 503 with Retry-After holds its trunk back as for calls),
    /// else NOTIFY the failure and keep the call.
    pub(in crate::b2bua) fn transfer_failed(
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
        // Early media of the target may have moved the leg: back to the referrer.
        self.update_media(call);
        self.release_trunk(call, t.leg.target.trunk);
        if let (503, Some(secs), Some(name)) = (status, resp.and_then(retry_after), trunk) {
            let addr = t.leg.dest.addr;
            self.targets
                .hold_off(&name, addr, now, std::time::Duration::from_secs(secs));
        }
        let targets = if matches!(status, 408 | 500..=599) {
            t.targets
        } else {
            VecDeque::new()
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

    /// A 18x with SDP from the transfer target: its early media reaches the
    /// remaining party at once (the referrer side's peer becomes the target;
    /// a failure of the transfer restores it).
    fn transfer_early_media(&mut self, call: u64, resp: &SipMsg) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let Some(t) = c.transfer.as_ref() else {
            return;
        };
        let referrer = t.referrer;
        let mode = c
            .cfg
            .trunk(t.leg.target.trunk)
            .map_or(MediaMode::Rtp, |t| t.media);
        self.learn_sdp(call, referrer, resp, Some(mode));
        self.update_media(call);
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
        if let Some(ack) = confirm_leg(&mut t.leg, resp, &via) {
            self.txn.send_ack(Some(tx), dest, &ack);
        }
        // The target's answer is the referrer side's new peer (same allocation).
        let mode = c
            .cfg
            .trunk(t.leg.target.trunk)
            .map_or(MediaMode::Rtp, |t| t.media);
        self.learn_sdp(call, t.referrer, resp, Some(mode));
        self.update_media(call);
        self.notify(now, call, t.referrer, t.refer_cseq, "SIP/2.0 200 OK", true);
        // BYE the referrer's leg after the final NOTIFY (RFC 5589 §6).
        self.release_leg(now, call, t.referrer);
        let referrer = t.referrer;
        self.replace_leg(now, call, referrer, Leg::B(t.leg));
        self.unhold(now, call, referrer.other());
    }
}

//! Codec policy at the points where an offer enters a call
//! ([`crate::trunk_policy::codecs`] does the filtering inside the SDP
//! rewrite): the caller's offer against its own trunk, then against each
//! target's (a target whose policy leaves no codec is skipped), and every
//! in-dialog offer against both legs. No transcoding: an offer left without a
//! codec is refused `488 Not Acceptable Here` with `Warning: 305` naming what
//! was offered and what is allowed (RFC 3261 §20.43), and counted.

use portcullis_sip::sdp::SessionDescription;

use super::headers::has_sdp;
use super::stats::Outcome;
use super::B2bua;
use crate::cdr::EndReason;
use crate::media::{MediaControl, Side};
use crate::time::Timestamp;
use crate::transaction::{SipMsg, TxId};
use crate::trunk_policy::NoCommonCodec;

/// Reason phrase of the `488`.
const NOT_ACCEPTABLE: &str = "Not Acceptable Here";

impl<M: MediaControl> B2bua<M> {
    /// `Warning: 305` (incompatible media format) with `why`.
    fn warning_305(&self, why: &str) -> String {
        let agent = self
            .cfg
            .node
            .fqdn
            .clone()
            .unwrap_or_else(|| self.cfg.node.name.clone());
        format!("305 {agent} \"{}\"", why.replace(['"', '\\'], ""))
    }

    /// Whether the offer in `msg` from `from` of `call` keeps a codec under
    /// both sides' policies (no offer, or a bypassed call: yes).
    pub(super) fn offer_codecs(
        &self,
        call: u64,
        from: Side,
        msg: &SipMsg,
    ) -> Result<(), NoCommonCodec> {
        let Some(ms) = self.calls.get(&call).and_then(|c| c.media.as_ref()) else {
            return Ok(());
        };
        if !has_sdp(msg) {
            return Ok(());
        }
        match SessionDescription::parse(msg.body()) {
            Ok(sdp) => ms.check_offer(from, &sdp),
            Err(_) => Ok(()),
        }
    }

    /// Refuses the caller's offer before answer: `488` with the reason, CDR
    /// `Rejected 488`.
    pub(super) fn refuse_call_codecs(&mut self, now: Timestamp, call: u64, why: &str) {
        self.stats.codec_rejects += 1;
        let warning = self.warning_305(why);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if !c.a.final_sent {
            let (inv, tag, tx) = (c.a.invite.clone(), c.a.tag.clone(), c.a.invite_tx);
            c.a.final_sent = true;
            c.final_status = Some(488);
            let inbound = Self::trunk_name(&c.cfg.clone(), c.a.trunk);
            self.stats.outcome(&inbound, Outcome::Failed);
            let mut r = self.response(&inv, 488, NOT_ACCEPTABLE, Some(&tag));
            r.push_header("Warning", warning);
            self.send_response(now, tx, &r);
        }
        self.end_call(
            now,
            call,
            EndReason::Rejected { status: 488 },
            Some((488, NOT_ACCEPTABLE)),
        );
    }

    /// Refuses an in-dialog offer (re-INVITE, UPDATE) with `488`; the call
    /// goes on as it was.
    pub(super) fn refuse_offer(&mut self, now: Timestamp, tx: TxId, req: &SipMsg, why: &str) {
        self.stats.codec_rejects += 1;
        let mut r = self.response(req, 488, NOT_ACCEPTABLE, None);
        r.push_header("Warning", self.warning_305(why));
        self.send_response(now, tx, &r);
    }
}

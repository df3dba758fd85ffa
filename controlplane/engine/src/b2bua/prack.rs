//! Reliable provisional responses relayed end to end (RFC 3262).
//!
//! When the caller supports `100rel` our B INVITE says so too. A reliable 18x
//! from B (Require: 100rel, RSeq) is relayed to A as a reliable 18x with our
//! own RSeq, retransmitted at T1, 2·T1, ... until A's PRACK (§3, given up
//! after 64·T1). A's PRACK is forwarded on B's early dialog as a PRACK whose
//! RAck names B's RSeq and B's INVITE CSeq (§7.2); B's answer to it comes
//! back on A's PRACK transaction. When the caller does not support 100rel
//! (B should then not send reliable 18x) we PRACK B ourselves.

use super::call::{CallState, CallTimer, ClientRole};
use super::B2bua;
use crate::media::{MediaControl, Side};
use crate::time::Timestamp;
use crate::transaction::{Method, SipMsg};

/// Whether a request or response lists `100rel` in `header`.
pub(super) fn has_100rel(msg: &SipMsg, header: &str) -> bool {
    msg.header_values(header)
        .any(|t| t.trim().eq_ignore_ascii_case("100rel"))
}

/// `RSeq` of a reliable provisional (RFC 3262 §7.1).
pub(super) fn rseq_of(msg: &SipMsg) -> Option<u32> {
    msg.header("RSeq")?.trim().parse().ok()
}

/// `RAck: <rseq> <cseq> <method>` (RFC 3262 §7.2).
fn rack_of(msg: &SipMsg) -> Option<(u32, u32)> {
    let v = msg.header("RAck")?;
    let mut it = v.split_ascii_whitespace();
    let rseq = it.next()?.parse().ok()?;
    let cseq = it.next()?.parse().ok()?;
    Some((rseq, cseq))
}

impl<M: MediaControl> B2bua<M> {
    /// Makes `r` (an 18x toward A relaying reliable `resp` from B) reliable, or
    /// PRACKs B ourselves when A cannot take reliable provisionals.
    pub(super) fn reliable_provisional(
        &mut self,
        now: Timestamp,
        call: u64,
        resp: &SipMsg,
        r: &mut SipMsg,
    ) {
        let (Some(b_rseq), Ok(cseq)) = (rseq_of(resp), resp.cseq()) else {
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let a_supports = has_100rel(&c.a.invite, "Supported") || has_100rel(&c.a.invite, "Require");
        if !a_supports {
            if let Some((mut prack, dest)) = self.dialog_request(call, Side::B, Method::Prack) {
                prack.push_header("RAck", format!("{b_rseq} {} INVITE", cseq.seq));
                self.send_on(now, call, dest, prack, ClientRole::Own);
            }
            return;
        }
        c.a_rseq = c.a_rseq.wrapping_add(1).max(1);
        let a_rseq = c.a_rseq;
        c.prack_map.push((a_rseq, b_rseq, cseq.seq));
        if c.prack_map.len() > 16 {
            c.prack_map.remove(0);
        }
        r.push_header("Require", "100rel");
        r.push_header("RSeq", a_rseq.to_string());
        let t1 = c.cfg.timers.t1;
        c.rel1xx = Some((r.clone(), t1, now));
        self.stop_timer(call, CallTimer::Rel1xx);
        self.set_timer(call, CallTimer::Rel1xx, now + t1);
    }

    /// Retransmits the pending reliable provisional toward A (RFC 3262 §3).
    pub(super) fn retransmit_rel1xx(&mut self, now: Timestamp, call: u64) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some((r, interval, started)) = c.rel1xx.take() else {
            return;
        };
        if c.state != CallState::Proceeding || now - started >= c.cfg.timers.t1 * 64 {
            return;
        }
        let tx = c.a.invite_tx;
        let next = interval * 2;
        c.rel1xx = Some((r.clone(), next, started));
        self.send_response(now, tx, &r);
        self.set_timer(call, CallTimer::Rel1xx, now + next);
    }

    /// PRACK from A: stop retransmitting, forward with B's RAck.
    pub(super) fn on_prack(
        &mut self,
        now: Timestamp,
        call: u64,
        tx: crate::transaction::TxId,
        req: SipMsg,
    ) {
        let mapped = rack_of(&req).and_then(|(rseq, _)| {
            self.calls
                .get(&call)
                .and_then(|c| c.prack_map.iter().find(|(a, _, _)| *a == rseq).copied())
        });
        let Some((a_rseq, b_rseq, b_cseq)) = mapped else {
            self.reply(now, tx, &req, 481, "Call/Transaction Does Not Exist", None);
            return;
        };
        if let Some(c) = self.calls.get_mut(&call) {
            let pending = c
                .rel1xx
                .as_ref()
                .is_some_and(|(r, _, _)| rseq_of(r) == Some(a_rseq));
            if pending {
                c.rel1xx = None;
                self.stop_timer(call, CallTimer::Rel1xx);
            }
        }
        self.relay_with(
            now,
            call,
            Side::A,
            tx,
            req,
            Some(format!("{b_rseq} {b_cseq} INVITE")),
        );
    }
}

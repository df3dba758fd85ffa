//! Ending calls: final response or BYE toward A, CANCEL or BYE toward B,
//! media and trunk slots released, one CDR emitted (RFC 3261 §15).

use super::call::{CallState, CallTimer};
use super::failover::default_reason;
use super::{B2bua, CallEvent, LINGER_T1_MULTIPLE};
use crate::cdr::{
    CdrRecord, EndReason, LegRecord, MediaRecord, NumberRecord, Party, TakeoverRecord,
};
use crate::dialog::DialogState;
use crate::media::{MediaControl, Side};
use crate::time::Timestamp;
use crate::transaction::Method;

impl<M: MediaControl> B2bua<M> {
    /// Ends `call` for `reason`. Before answer A gets `a_final` (or a status
    /// derived from the reason); after answer each leg that did not hang up
    /// gets a BYE. Idempotent.
    pub(super) fn end_call(
        &mut self,
        now: Timestamp,
        call: u64,
        reason: EndReason,
        a_final: Option<(u16, &str)>,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.state == CallState::Ended {
            return;
        }
        let hung_up = match reason {
            EndReason::NormalClearing { by: Party::Caller } => Some(Side::A),
            EndReason::NormalClearing { by: Party::Callee } => Some(Side::B),
            _ => None,
        };
        // A leg.
        let mut final_status = c.final_status;
        if !c.a.final_sent {
            let (status, phrase) = a_final.unwrap_or_else(|| {
                let s = match reason {
                    EndReason::Rejected { status } => status,
                    EndReason::NoRoute => 404,
                    EndReason::Timeout => 480,
                    EndReason::Shutdown => 503,
                    EndReason::Cancelled | EndReason::Terminated => 487,
                    _ => 500,
                };
                (s, default_reason(s))
            });
            let (inv, tag, tx) = (c.a.invite.clone(), c.a.tag.clone(), c.a.invite_tx);
            c.a.final_sent = true;
            final_status = Some(status);
            let r = self.response(&inv, status, phrase, Some(&tag));
            self.send_response(now, tx, &r);
        } else if hung_up != Some(Side::A) {
            self.bye(now, call, Side::A);
        }
        // B leg.
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some(b) = c.b.as_mut() {
            if !b.final_received && !b.cancelled {
                b.cancelled = true;
                if let Some(itx) = b.invite_tx {
                    if b.provisional {
                        if let Ok(ctx) = self.txn.send_cancel(now, itx) {
                            self.by_client_tx
                                .insert(ctx, (call, super::call::ClientRole::Own));
                        }
                    } else {
                        // §9.1: no CANCEL before a provisional; sent on the first 1xx.
                        b.cancel_pending = true;
                    }
                }
            } else if b.final_received
                && hung_up != Some(Side::B)
                && b.dialog
                    .as_ref()
                    .is_some_and(|d| d.state == DialogState::Confirmed)
            {
                self.bye(now, call, Side::B);
            }
        }
        // Bookkeeping, media, CDR.
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.state = CallState::Ended;
        self.live_calls = self.live_calls.saturating_sub(1);
        c.end_reason = Some(reason);
        c.final_status = final_status.or(if c.answer_at.is_some() {
            Some(200)
        } else {
            None
        });
        for k in std::mem::take(&mut c.dialog_keys) {
            self.by_dialog.remove(&k);
        }
        let held = std::mem::take(&mut c.held_trunks);
        let bound = std::mem::take(&mut c.bound);
        let media_stats = c
            .media
            .as_ref()
            .and_then(|m| m.primary())
            .and_then(|id| self.media.stats(id));
        if let Some(ms) = c.media.as_ref() {
            for id in ms.ids() {
                self.by_media.remove(&id);
                self.media.release(id);
            }
        }
        let cfg = c.cfg.clone();
        for t in held {
            if let Some(t) = cfg.trunk(t) {
                self.trunk_calls.release(&t.name);
            }
        }
        for (name, addr) in bound {
            self.targets.call_unbound(&name, addr);
        }
        let Some(cdr) = self.record(call, now, reason, media_stats.map(MediaRecord::from)) else {
            return;
        };
        self.events
            .push_back(CallEvent::CallEnded { cdr: Box::new(cdr) });
        let timers: Vec<CallTimer> = self
            .calls
            .get(&call)
            .map(|c| c.timers.keys().copied().collect())
            .unwrap_or_default();
        for t in timers {
            self.stop_timer(call, t);
        }
        let linger = now + cfg.timers.t1 * LINGER_T1_MULTIPLE;
        self.set_timer(call, CallTimer::Linger, linger);
    }

    /// The record of a live answered call as it would read were it ended now by a
    /// restart ([`EndReason::Restart`], no media counters): the driver journals it at
    /// answer so a call cut by a crash still gets its record (`None`: not live or
    /// not answered).
    #[must_use]
    pub fn open_record(&self, now: Timestamp, call: u64) -> Option<CdrRecord> {
        let c = self.calls.get(&call)?;
        if c.state != CallState::Answered {
            return None;
        }
        let mut r = self.record(call, now, EndReason::Restart, None)?;
        r.final_status = Some(200);
        Some(r)
    }

    /// The record of `call` ending at `now` for `reason`.
    fn record(
        &self,
        call: u64,
        now: Timestamp,
        reason: EndReason,
        media: Option<MediaRecord>,
    ) -> Option<CdrRecord> {
        let c = self.calls.get(&call)?;
        let cfg = &c.cfg;
        let off = self.epoch_offset_ms;
        let a_leg = LegRecord {
            call_id: c.a.invite.call_id().unwrap_or("").to_owned(),
            from: c.a.invite.header("From").unwrap_or("").to_owned(),
            to: c.a.invite.header("To").unwrap_or("").to_owned(),
            trunk: Self::trunk_name(cfg, c.a.trunk),
            remote: c.a.peer.addr,
        };
        let b_leg = c.b.as_ref().map(|b| LegRecord {
            call_id: b.call_id.clone(),
            from: b.invite.header("From").unwrap_or("").to_owned(),
            to: b.invite.header("To").unwrap_or("").to_owned(),
            trunk: Self::trunk_name(cfg, b.target.trunk),
            remote: b.dest.addr,
        });
        Some(CdrRecord {
            call_id: call,
            a_leg,
            b_leg,
            calling: NumberRecord::new(c.a_calling.clone(), c.calling.clone()),
            called: NumberRecord::new(
                c.called.clone(),
                c.b.as_ref()
                    .map_or_else(|| c.called.clone(), |b| b.target.called.clone()),
            ),
            route: (!c.route.is_empty()).then(|| c.route.clone()),
            setup_at_ms: c.setup_at.as_millis() + off,
            answer_at_ms: c.answer_at.map(|t| t.as_millis() + off),
            end_at_ms: now.as_millis() + off,
            end_reason: reason,
            final_status: c.final_status,
            media,
            takeover: c
                .ha
                .as_ref()
                .and_then(|h| h.takeover.as_ref())
                .map(TakeoverRecord::from),
        })
    }

    /// Sends BYE on a confirmed leg.
    fn bye(&mut self, now: Timestamp, call: u64, side: Side) {
        let confirmed = self
            .calls
            .get_mut(&call)
            .and_then(|c| c.dialog_mut(side))
            .is_some_and(|d| d.state == DialogState::Confirmed);
        if !confirmed {
            return;
        }
        if let Some((req, dest)) = self.dialog_request(call, side, Method::Bye) {
            self.send_on(now, call, dest, req, super::call::ClientRole::Own);
        }
        if let Some(d) = self.calls.get_mut(&call).and_then(|c| c.dialog_mut(side)) {
            d.terminate();
        }
    }

    /// Forgets an ended call after its linger time.
    pub(super) fn remove_call(&mut self, call: u64) {
        self.ha_forget(call);
        let Some(c) = self.calls.remove(&call) else {
            return;
        };
        for tx in c.client_txs {
            self.by_client_tx.remove(&tx);
        }
        for tx in c.server_txs {
            self.by_invite_tx.remove(&tx);
        }
        for (kind, at) in c.timers {
            self.timers.remove(&(at, call, kind));
        }
    }
}

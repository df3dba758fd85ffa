//! What every transfer kind ends with: a leg leaves a slot of the call (BYE,
//! segment CDR) and another takes it (dialog index, trunk slot, session
//! timers), and a party left on hold is taken off it with one re-offer
//! (`reoffer`).

use crate::b2bua::call::{ALeg, BLeg, CallTimer, ClientRole};
use crate::b2bua::route::Target;
use crate::b2bua::sdp_rewrite::ix;
use crate::b2bua::{B2bua, CallEvent};
use crate::cdr::{CdrRecord, EndReason, LegRecord, NumberRecord};
use crate::config::EngineConfig;
use crate::media::{MediaControl, Side};
use crate::time::Timestamp;
use crate::transaction::{Method, TxId};

/// A leg moving between slots or calls.
pub(super) enum Leg {
    A(ALeg),
    B(BLeg),
}

impl Leg {
    /// As the A slot of a call (`invite_tx`: the slot's INVITE transaction).
    pub(super) fn into_a(self, invite_tx: TxId) -> ALeg {
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
    pub(super) fn into_b(self, called: String) -> BLeg {
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
    pub(super) fn key(&self) -> (String, String) {
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
    /// Sends BYE on `side` (after which the leg is replaced).
    pub(super) fn release_leg(&mut self, now: Timestamp, call: u64, side: Side) {
        if let Some((bye, dest)) = self.dialog_request(call, side, Method::Bye) {
            self.send_on(now, call, dest, bye, ClientRole::Own);
        }
        if let Some(d) = self.calls.get_mut(&call).and_then(|c| c.dialog_mut(side)) {
            d.terminate();
        }
    }

    /// Puts `leg` on `side` of `call` (dialog index, session timers), and
    /// emits the CDR of the segment that ended with the old leg.
    pub(super) fn replace_leg(&mut self, now: Timestamp, call: u64, side: Side, leg: Leg) {
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
            takeover: c
                .ha
                .as_ref()
                .and_then(|h| h.takeover.as_ref())
                .map(crate::cdr::TakeoverRecord::from),
        };
        self.events
            .push_back(CallEvent::CallEnded { cdr: Box::new(cdr) });
    }

    /// When the stream toward `side` was left on hold (a transfer is often
    /// preceded by one), re-INVITEs it with the other side's SDP `sendrecv`.
    pub(super) fn unhold(&mut self, now: Timestamp, call: u64, side: Side) {
        let held = self
            .calls
            .get(&call)
            .and_then(|c| c.media.as_ref())
            .is_some_and(|m| m.held(side));
        if held {
            self.reoffer(now, call, side, true);
        }
    }
}

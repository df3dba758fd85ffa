//! Non-INVITE client transaction (RFC 3261 §17.1.2).
//!
//! ```text
//!  Trying --1xx--> Proceeding --200-699--> Completed --Timer K--> Terminated
//!     `--200-699----------------^
//!  Trying/Proceeding --Timer F / transport error--> Terminated
//! ```

use std::mem;
use std::time::Duration;

use super::ctx::Ctx;
use super::message::SipMsg;
use super::timer::{Timer, TimerTable};
use super::{PeerAddr, TxEvent};

/// States of the non-INVITE client transaction (RFC 3261 Figure 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonInviteClientState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

#[derive(Debug)]
pub(crate) struct NonInviteClient {
    pub state: NonInviteClientState,
    pub timers: TimerTable,
    pub dest: PeerAddr,
    pub request: SipMsg,
    request_bytes: Vec<u8>,
    /// Current Timer E interval.
    interval: Duration,
}

impl NonInviteClient {
    /// Sends the request; starts Timer E (unreliable only) and Timer F (§17.1.2.2).
    pub fn start(ctx: &mut Ctx<'_>, dest: PeerAddr, request: SipMsg) -> Self {
        let request_bytes = request.to_bytes();
        ctx.send(&dest, request_bytes.clone());
        let mut timers = TimerTable::default();
        if !dest.transport.is_reliable() {
            timers.set(Timer::E, ctx.now + ctx.cfg.t1);
        }
        timers.set(Timer::F, ctx.now + ctx.cfg.t1x64());
        Self {
            state: NonInviteClientState::Trying,
            timers,
            dest,
            request,
            request_bytes,
            interval: ctx.cfg.t1,
        }
    }

    /// A response matched this transaction.
    pub fn on_response(&mut self, ctx: &mut Ctx<'_>, response: SipMsg) {
        use NonInviteClientState::*;
        let status = response.status().unwrap_or(0);
        self.state = match (mem::replace(&mut self.state, Terminated), status) {
            (Trying | Proceeding, 100..=199) => {
                ctx.emit(TxEvent::Response {
                    tx: ctx.id,
                    response,
                });
                Proceeding
            }
            (Trying | Proceeding, _) => {
                self.timers.stop(Timer::E);
                self.timers.stop(Timer::F);
                self.timers.set(
                    Timer::K,
                    ctx.now + ctx.cfg.t4_or_zero(self.dest.transport.is_reliable()),
                );
                ctx.emit(TxEvent::Response {
                    tx: ctx.id,
                    response,
                });
                Completed
            }
            (state, _) => {
                // Completed: "any retransmissions of the final response ... are buffered
                // [absorbed]" (§17.1.2.2).
                ctx.stats.absorbed += 1;
                state
            }
        };
    }

    /// A timer of this transaction fired.
    pub fn on_timer(&mut self, ctx: &mut Ctx<'_>, timer: Timer) {
        use NonInviteClientState::*;
        self.state = match (mem::replace(&mut self.state, Terminated), timer) {
            (state @ (Trying | Proceeding), Timer::E) => {
                ctx.retransmit(&self.dest, self.request_bytes.clone());
                // §17.1.2.2: doubles up to T2 in Trying; T2 in Proceeding.
                self.interval = match state {
                    Trying => ctx.cfg.double_capped(self.interval),
                    _ => ctx.cfg.t2,
                };
                self.timers.set(Timer::E, ctx.now + self.interval);
                state
            }
            (Trying | Proceeding, Timer::F) => {
                self.timers.stop_all();
                ctx.stats.timeouts += 1;
                ctx.emit(TxEvent::Timeout { tx: ctx.id, timer });
                Terminated
            }
            (Completed, Timer::K) => {
                self.timers.stop_all();
                Terminated
            }
            (state, _) => state,
        };
    }

    /// The driver could not send (§17.1.4).
    pub fn on_transport_error(&mut self, ctx: &mut Ctx<'_>) {
        let old = mem::replace(&mut self.state, NonInviteClientState::Terminated);
        self.timers.stop_all();
        if matches!(
            old,
            NonInviteClientState::Trying | NonInviteClientState::Proceeding
        ) {
            ctx.emit(TxEvent::TransportError { tx: ctx.id });
        }
    }
}

//! INVITE client transaction (RFC 3261 §17.1.1, RFC 6026 §7.2).
//!
//! ```text
//!  Calling --1xx--> Proceeding --300-699--> Completed --Timer D--> Terminated
//!     |  \--300-699 (send ACK)-------------^
//!     |--2xx--> Accepted --Timer M--> Terminated   (also from Proceeding)
//!     `--Timer B / transport error--> Terminated
//! ```

use std::mem;
use std::time::Duration;

use super::ctx::Ctx;
use super::message::SipMsg;
use super::timer::{Timer, TimerTable};
use super::{PeerAddr, TxEvent};

/// States of the INVITE client transaction (RFC 3261 Figure 5, RFC 6026 Figure 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InviteClientState {
    Calling,
    Proceeding,
    Completed,
    Accepted,
    Terminated,
}

#[derive(Debug)]
pub(crate) struct InviteClient {
    pub state: InviteClientState,
    pub timers: TimerTable,
    pub dest: PeerAddr,
    /// The INVITE as sent (ACK and CANCEL are built from it).
    pub request: SipMsg,
    request_bytes: Vec<u8>,
    /// Current Timer A interval.
    interval: Duration,
    /// ACK for the non-2xx final response (§17.1.1.3), re-sent on retransmitted finals.
    ack: Option<Vec<u8>>,
    /// The TU's ACK for a 2xx and where it went, re-sent on 2xx retransmissions.
    pub ack_2xx: Option<(PeerAddr, Vec<u8>)>,
    /// To tags of the 2xx responses already passed to the TU (forking, §13.2.2.4).
    tags_2xx: Vec<Option<String>>,
}

impl InviteClient {
    /// Sends the INVITE and starts Timers A (unreliable only) and B (§17.1.1.2).
    pub fn start(ctx: &mut Ctx<'_>, dest: PeerAddr, request: SipMsg) -> Self {
        let request_bytes = request.to_bytes();
        ctx.send(&dest, request_bytes.clone());
        let mut timers = TimerTable::default();
        if !dest.transport.is_reliable() {
            timers.set(Timer::A, ctx.now + ctx.cfg.t1);
        }
        timers.set(Timer::B, ctx.now + ctx.cfg.t1x64());
        Self {
            state: InviteClientState::Calling,
            timers,
            dest,
            request,
            request_bytes,
            interval: ctx.cfg.t1,
            ack: None,
            ack_2xx: None,
            tags_2xx: Vec::new(),
        }
    }

    /// A response matched this transaction (§17.1.1.2).
    pub fn on_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        response: SipMsg,
        build_ack: impl FnOnce(&SipMsg) -> Vec<u8>,
    ) {
        use InviteClientState::*;
        let status = response.status().unwrap_or(0);
        self.state = match (mem::replace(&mut self.state, Terminated), status) {
            (Calling | Proceeding, 100..=199) => {
                self.timers.stop(Timer::A);
                self.timers.stop(Timer::B);
                ctx.emit(TxEvent::Response {
                    tx: ctx.id,
                    response,
                });
                Proceeding
            }
            (Calling | Proceeding, 200..=299) => {
                self.timers.stop(Timer::A);
                self.timers.stop(Timer::B);
                // RFC 6026 §7.2: Accepted absorbs 2xx retransmissions for 64*T1.
                self.timers.set(Timer::M, ctx.now + ctx.cfg.t1x64());
                self.tags_2xx
                    .push(response.to_tag().ok().flatten().map(str::to_owned));
                ctx.emit(TxEvent::Response {
                    tx: ctx.id,
                    response,
                });
                Accepted
            }
            (Calling | Proceeding, _) => {
                self.timers.stop(Timer::A);
                self.timers.stop(Timer::B);
                let ack = build_ack(&response);
                ctx.send(&self.dest, ack.clone());
                self.ack = Some(ack);
                self.timers.set(
                    Timer::D,
                    ctx.now + ctx.cfg.d(self.dest.transport.is_reliable()),
                );
                ctx.emit(TxEvent::Response {
                    tx: ctx.id,
                    response,
                });
                Completed
            }
            (Completed, 300..=699) => {
                // Retransmitted final: re-send the ACK, do not bother the TU.
                ctx.stats.absorbed += 1;
                if let Some(ack) = &self.ack {
                    ctx.retransmit(&self.dest, ack.clone());
                }
                Completed
            }
            (Accepted, 200..=299) => {
                let tag = response.to_tag().ok().flatten().map(str::to_owned);
                if self.tags_2xx.contains(&tag) {
                    ctx.stats.absorbed += 1;
                    if let Some((dest, ack)) = &self.ack_2xx {
                        ctx.retransmit(dest, ack.clone());
                    }
                } else {
                    // A 2xx from another fork: the TU must ACK (and usually BYE) it.
                    self.tags_2xx.push(tag);
                    ctx.emit(TxEvent::Response {
                        tx: ctx.id,
                        response,
                    });
                }
                Accepted
            }
            (state, _) => {
                ctx.stats.absorbed += 1;
                state
            }
        };
    }

    /// A timer of this transaction fired.
    pub fn on_timer(&mut self, ctx: &mut Ctx<'_>, timer: Timer) {
        use InviteClientState::*;
        self.state = match (mem::replace(&mut self.state, Terminated), timer) {
            (Calling, Timer::A) => {
                // §17.1.1.2: Timer A doubles on every retransmission, no T2 cap.
                ctx.retransmit(&self.dest, self.request_bytes.clone());
                self.interval = self.interval.saturating_mul(2);
                self.timers.set(Timer::A, ctx.now + self.interval);
                Calling
            }
            // §9.1: after a CANCEL, Timer B bounds the wait in Proceeding too.
            (Calling | Proceeding, Timer::B) => {
                self.timers.stop_all();
                ctx.stats.timeouts += 1;
                ctx.emit(TxEvent::Timeout { tx: ctx.id, timer });
                Terminated
            }
            (Completed, Timer::D) | (Accepted, Timer::M) => {
                self.timers.stop_all();
                Terminated
            }
            (state, _) => state,
        };
    }

    /// A CANCEL was sent for this INVITE: if no final response arrives within 64*T1
    /// the transaction is destroyed (RFC 3261 §9.1); Timer B is reused for that.
    pub fn on_cancel_sent(&mut self, ctx: &mut Ctx<'_>) {
        if self.state == InviteClientState::Proceeding {
            self.timers.set(Timer::B, ctx.now + ctx.cfg.t1x64());
        }
    }

    /// The driver could not send (§17.1.4): the TU hears about it while it still waits.
    pub fn on_transport_error(&mut self, ctx: &mut Ctx<'_>) {
        let old = mem::replace(&mut self.state, InviteClientState::Terminated);
        self.timers.stop_all();
        if matches!(
            old,
            InviteClientState::Calling | InviteClientState::Proceeding
        ) {
            ctx.emit(TxEvent::TransportError { tx: ctx.id });
        }
    }
}

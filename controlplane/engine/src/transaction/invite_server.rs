//! INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §7.1).
//!
//! ```text
//!  Proceeding --300-699 from TU--> Completed --ACK--> Confirmed --Timer I--> Terminated
//!      |                              `--Timer H / transport error--> Terminated
//!      `--2xx from TU--> Accepted --Timer L--> Terminated
//! ```
//!
//! `100 Trying` is sent as soon as the transaction is created (§17.2.1 allows
//! the TU to be slower than 200 ms; we never wait). In Accepted, the 2xx is
//! retransmitted on Timer G intervals (T1 doubling to T2) until the ACK
//! arrives — the UAS core duty of RFC 3261 §13.3.1.4 done here so every TU
//! gets it right. Timer L expiring without an ACK is reported as a timeout.

use std::mem;
use std::time::Duration;

use super::ctx::Ctx;
use super::message::SipMsg;
use super::timer::{Timer, TimerTable};
use super::{PeerAddr, TxError, TxEvent};

/// States of the INVITE server transaction (RFC 3261 Figure 7, RFC 6026 Figure 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InviteServerState {
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

#[derive(Debug)]
pub(crate) struct InviteServer {
    pub state: InviteServerState,
    pub timers: TimerTable,
    /// Where responses go (§18.2.2).
    pub dest: PeerAddr,
    /// The INVITE as received, top Via stamped with received/rport.
    pub request: SipMsg,
    last_response: Option<Vec<u8>>,
    /// Current Timer G interval.
    interval: Duration,
    /// Whether the 2xx ACK was already passed to the TU.
    ack_seen: bool,
}

impl InviteServer {
    /// Creates the transaction and sends `100 Trying` at once (§17.2.1).
    pub fn start(ctx: &mut Ctx<'_>, dest: PeerAddr, request: SipMsg, trying: &SipMsg) -> Self {
        let bytes = trying.to_bytes();
        ctx.send(&dest, bytes.clone());
        Self {
            state: InviteServerState::Proceeding,
            timers: TimerTable::default(),
            dest,
            request,
            last_response: Some(bytes),
            interval: ctx.cfg.t1,
            ack_seen: false,
        }
    }

    /// The INVITE was retransmitted: re-send the last response (§17.2.1).
    pub fn on_retransmission(&mut self, ctx: &mut Ctx<'_>) {
        ctx.stats.absorbed += 1;
        if matches!(
            self.state,
            InviteServerState::Proceeding | InviteServerState::Completed
        ) {
            if let Some(last) = &self.last_response {
                ctx.retransmit(&self.dest, last.clone());
            }
        }
    }

    /// An ACK matched this transaction (by branch, RFC 2543 key, or 2xx dialog key).
    pub fn on_ack(&mut self, ctx: &mut Ctx<'_>, from: PeerAddr, ack: SipMsg) {
        use InviteServerState::*;
        self.state = match mem::replace(&mut self.state, Terminated) {
            Completed => {
                self.timers.stop(Timer::G);
                self.timers.stop(Timer::H);
                self.timers.set(
                    Timer::I,
                    ctx.now + ctx.cfg.t4_or_zero(self.dest.transport.is_reliable()),
                );
                Confirmed
            }
            Accepted if !self.ack_seen => {
                self.ack_seen = true;
                self.timers.stop(Timer::G);
                ctx.emit(TxEvent::Ack {
                    tx: ctx.id,
                    from,
                    request: ack,
                });
                Accepted
            }
            state => {
                ctx.stats.absorbed += 1;
                state
            }
        };
    }

    /// The TU sends a response (§17.2.1).
    pub fn respond(&mut self, ctx: &mut Ctx<'_>, response: &SipMsg) -> Result<(), TxError> {
        use InviteServerState::*;
        let status = response
            .status()
            .ok_or(TxError::InvalidState("sending a request as a response"))?;
        let reliable = self.dest.transport.is_reliable();
        let old = mem::replace(&mut self.state, Terminated);
        let (next, result) = match (old, status) {
            (Proceeding, 100..=199) => (Proceeding, Ok(())),
            (Proceeding | Accepted, 200..=299) => {
                if old == Proceeding {
                    self.timers.set(Timer::L, ctx.now + ctx.cfg.t1x64());
                    if !reliable {
                        self.interval = ctx.cfg.t1;
                        self.timers.set(Timer::G, ctx.now + self.interval);
                    }
                }
                (Accepted, Ok(()))
            }
            (Proceeding, 300..=699) => {
                if !reliable {
                    self.interval = ctx.cfg.t1;
                    self.timers.set(Timer::G, ctx.now + self.interval);
                }
                self.timers.set(Timer::H, ctx.now + ctx.cfg.t1x64());
                (Completed, Ok(()))
            }
            (state, _) => (
                state,
                Err(TxError::InvalidState("response after the final response")),
            ),
        };
        self.state = next;
        if result.is_ok() {
            let bytes = response.to_bytes();
            ctx.send(&self.dest, bytes.clone());
            self.last_response = Some(bytes);
        }
        result
    }

    /// A timer of this transaction fired.
    pub fn on_timer(&mut self, ctx: &mut Ctx<'_>, timer: Timer) {
        use InviteServerState::*;
        self.state = match (mem::replace(&mut self.state, Terminated), timer) {
            (state @ (Completed | Accepted), Timer::G) => {
                if state == Completed || !self.ack_seen {
                    if let Some(last) = &self.last_response {
                        ctx.retransmit(&self.dest, last.clone());
                    }
                    self.interval = ctx.cfg.double_capped(self.interval);
                    self.timers.set(Timer::G, ctx.now + self.interval);
                }
                state
            }
            (Completed, Timer::H) => {
                self.timers.stop_all();
                ctx.stats.timeouts += 1;
                ctx.emit(TxEvent::Timeout { tx: ctx.id, timer });
                Terminated
            }
            (Confirmed, Timer::I) => {
                self.timers.stop_all();
                Terminated
            }
            (Accepted, Timer::L) => {
                self.timers.stop_all();
                if !self.ack_seen {
                    ctx.stats.timeouts += 1;
                    ctx.emit(TxEvent::Timeout { tx: ctx.id, timer });
                }
                Terminated
            }
            (state, _) => state,
        };
    }

    /// The driver could not send (§17.2.4).
    pub fn on_transport_error(&mut self, ctx: &mut Ctx<'_>) {
        let old = mem::replace(&mut self.state, InviteServerState::Terminated);
        self.timers.stop_all();
        let waiting = match old {
            InviteServerState::Proceeding | InviteServerState::Completed => true,
            InviteServerState::Accepted => !self.ack_seen,
            _ => false,
        };
        if waiting {
            ctx.emit(TxEvent::TransportError { tx: ctx.id });
        }
    }
}

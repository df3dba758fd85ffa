//! Non-INVITE server transaction (RFC 3261 §17.2.2).
//!
//! ```text
//!  Trying --1xx from TU--> Proceeding --200-699 from TU--> Completed --Timer J--> Terminated
//!     `--200-699 from TU------------------^
//! ```

use std::mem;

use super::ctx::Ctx;
use super::message::SipMsg;
use super::timer::{Timer, TimerTable};
use super::{PeerAddr, TxError, TxEvent};

/// States of the non-INVITE server transaction (RFC 3261 Figure 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonInviteServerState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

#[derive(Debug)]
pub(crate) struct NonInviteServer {
    pub state: NonInviteServerState,
    pub timers: TimerTable,
    pub dest: PeerAddr,
    pub request: SipMsg,
    last_response: Option<Vec<u8>>,
}

impl NonInviteServer {
    /// Creates the transaction in Trying; no response is sent (§17.2.2).
    pub fn start(dest: PeerAddr, request: SipMsg) -> Self {
        Self {
            state: NonInviteServerState::Trying,
            timers: TimerTable::default(),
            dest,
            request,
            last_response: None,
        }
    }

    /// The request was retransmitted: absorbed in Trying, last response re-sent later.
    pub fn on_retransmission(&mut self, ctx: &mut Ctx<'_>) {
        ctx.stats.absorbed += 1;
        if let Some(last) = &self.last_response {
            ctx.retransmit(&self.dest, last.clone());
        }
    }

    /// The TU sends a response.
    pub fn respond(&mut self, ctx: &mut Ctx<'_>, response: &SipMsg) -> Result<(), TxError> {
        use NonInviteServerState::*;
        let status = response
            .status()
            .ok_or(TxError::InvalidState("sending a request as a response"))?;
        let (next, result) = match (mem::replace(&mut self.state, Terminated), status) {
            (Trying | Proceeding, 100..=199) => (Proceeding, Ok(())),
            (Trying | Proceeding, _) => {
                self.timers.set(
                    Timer::J,
                    ctx.now + ctx.cfg.j(self.dest.transport.is_reliable()),
                );
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
    pub fn on_timer(&mut self, timer: Timer) {
        self.state = match (
            mem::replace(&mut self.state, NonInviteServerState::Terminated),
            timer,
        ) {
            (NonInviteServerState::Completed, Timer::J) => {
                self.timers.stop_all();
                NonInviteServerState::Terminated
            }
            (state, _) => state,
        };
    }

    /// The driver could not send (§17.2.4).
    pub fn on_transport_error(&mut self, ctx: &mut Ctx<'_>) {
        // Reported in every state: in Completed it means the final response was lost.
        self.state = NonInviteServerState::Terminated;
        self.timers.stop_all();
        ctx.emit(TxEvent::TransportError { tx: ctx.id });
    }
}

//! Out-of-dialog OPTIONS (RFC 3261 §11): our capabilities, and whether we take new calls.
//!
//! A load balancer in front of a farm of appliances (Kamailio's `dispatcher` module)
//! probes each one with OPTIONS and takes a destination out of rotation when the answer is
//! not a 2xx. So the answer says whether new calls are welcome:
//!
//! - `503 Service Unavailable (draining)` + `Retry-After` once [`B2bua::start_drain`] ran
//!   (SIGTERM): new INVITEs get 503 too, calls in progress go on;
//! - `503 Service Unavailable (overload)` + `Retry-After` with `overload_calls` live calls
//!   or more: INVITEs are still admitted up to `max_calls`, so calls already on their way
//!   (sent before the balancer's next probe) are not lost;
//! - `200 OK` otherwise.
//!
//! Every answer carries the load, `X-Portcullis-Load: calls=N` followed by `;max=M` and
//! `;overload=O` when those limits are configured, for operators and for balancers that
//! read headers.

use super::{B2bua, ALLOW, RETRY_AFTER_SECS};
use crate::media::MediaControl;
use crate::time::Timestamp;
use crate::transaction::{SipMsg, TxId};

/// The load header of every OPTIONS answer.
pub const LOAD_HEADER: &str = "X-Portcullis-Load";

/// Whether the engine takes new calls, as its OPTIONS answer tells a load balancer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    /// New calls welcome (`200`).
    Open,
    /// Live calls at or over `overload_calls` (`503`; INVITEs admitted up to `max_calls`).
    Overloaded,
    /// Draining after SIGTERM (`503`; new INVITEs refused).
    Draining,
}

impl<M: MediaControl> B2bua<M> {
    /// What an OPTIONS answer says now (draining wins over overload).
    #[must_use]
    pub fn availability(&self) -> Availability {
        let overloaded = self
            .cfg
            .policy
            .overload_calls
            .is_some_and(|o| self.live_calls >= o as usize);
        if self.draining {
            Availability::Draining
        } else if overloaded {
            Availability::Overloaded
        } else {
            Availability::Open
        }
    }

    /// `calls=N[;max=M][;overload=O]`.
    fn load_value(&self) -> String {
        let p = &self.cfg.policy;
        let mut v = format!("calls={}", self.live_calls);
        if let Some(m) = p.max_calls {
            v.push_str(&format!(";max={m}"));
        }
        if let Some(o) = p.overload_calls {
            v.push_str(&format!(";overload={o}"));
        }
        v
    }

    /// Answers an out-of-dialog OPTIONS from a configured trunk.
    pub(super) fn on_options(&mut self, now: Timestamp, tx: TxId, req: &SipMsg) {
        let (status, reason) = match self.availability() {
            Availability::Open => (200, "OK"),
            Availability::Overloaded => {
                self.stats.options_overloaded += 1;
                (503, "Service Unavailable (overload)")
            }
            Availability::Draining => {
                self.stats.options_draining += 1;
                (503, "Service Unavailable (draining)")
            }
        };
        let mut r = self.response(req, status, reason, Some("opt"));
        if status == 503 {
            r.push_header("Retry-After", RETRY_AFTER_SECS.to_string());
        }
        r.push_header("Allow", ALLOW);
        r.push_header("Supported", "timer, replaces");
        r.push_header("Accept", "application/sdp");
        r.push_header(LOAD_HEADER, self.load_value());
        self.send_response(now, tx, &r);
    }
}

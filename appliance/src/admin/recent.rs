//! Recent failures and the last outcome per outbound trunk, fed by the engine task from
//! the engine's `CallAnswered` events, `CallEnded` records and `Rejected` refusals (`GET /api/v1/failures`, the
//! trunk health of the dashboard).
//!
//! Invariants: at most [`FAILURES_KEPT`] failures are kept (the oldest go first) and at
//! most [`TRUNKS_KEPT`] trunk names (a name the engine reports beyond that is not
//! tracked); the engine task only takes a short lock to push, never waits on a reader.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use portcullis_engine::b2bua::{CdrRecord, EndReason};
use serde::{Deserialize, Serialize};

/// Failures kept for the dashboard.
pub const FAILURES_KEPT: usize = 200;

/// Outbound trunks whose last outcome is tracked.
pub const TRUNKS_KEPT: usize = 1024;

/// One failed call or refused request, as listed by `GET /api/v1/failures`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// When it ended (ms since the UNIX epoch).
    pub at_ms: u64,
    /// Engine call id; `None` for a request refused before a call existed.
    pub call: Option<u64>,
    /// Calling number (as received), when a call existed.
    pub calling: Option<String>,
    /// Called number (as received), when a call existed.
    pub called: Option<String>,
    /// Trunk the call came from.
    pub inbound_trunk: Option<String>,
    /// Last trunk tried.
    pub outbound_trunk: Option<String>,
    /// SIP status sent to the caller (`None`: the call was answered, then failed).
    pub status: Option<u16>,
    /// SIP reason phrase of `status` (the engine's own text for refusals).
    pub reason: String,
    /// Why the call ended (`rejected`, `timeout`, `no_route`, `media_inactivity`,
    /// `session_expired`, ...; `refused` for a request refused before a call existed).
    pub end_reason: String,
    /// The signalling source of a refused request.
    pub source: Option<String>,
}

/// The last call attempt toward one outbound trunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrunkOutcome {
    /// When the call that tried it ended (ms since the UNIX epoch).
    pub at_ms: u64,
    /// The call was answered by that trunk.
    pub answered: bool,
    /// Final status the call got (`None` when answered then ended).
    pub status: Option<u16>,
    /// Attempts in a row that timed out or got a 5xx (0 after any other outcome).
    pub failures_in_row: u32,
}

#[derive(Debug, Default)]
struct Inner {
    failures: VecDeque<Failure>,
    trunks: BTreeMap<String, TrunkOutcome>,
}

/// The shared record (engine task writes, admin API reads).
#[derive(Debug, Default)]
pub struct RecentCalls {
    inner: Mutex<Inner>,
}

/// Stable label of an end reason (the `kind` of the CDR's `end_reason`).
#[must_use]
pub fn end_reason_label(r: &EndReason) -> &'static str {
    match r {
        EndReason::NormalClearing { .. } => "normal_clearing",
        EndReason::Cancelled => "cancelled",
        EndReason::Rejected { .. } => "rejected",
        EndReason::NoRoute => "no_route",
        EndReason::Timeout => "timeout",
        EndReason::MediaInactivity => "media_inactivity",
        EndReason::SessionExpired => "session_expired",
        EndReason::Shutdown => "shutdown",
        EndReason::Terminated => "terminated",
        EndReason::Transferred => "transferred",
        EndReason::Restart => "restart",
    }
}

/// Whether a call that ended so counts as a failure: unanswered and not cancelled by its
/// caller, or answered and then lost to media inactivity or an expired session timer.
#[must_use]
pub fn is_failure(cdr: &CdrRecord) -> bool {
    match cdr.end_reason {
        EndReason::Cancelled | EndReason::Transferred => false,
        EndReason::MediaInactivity | EndReason::SessionExpired => true,
        _ => cdr.answer_at_ms.is_none(),
    }
}

/// The reason phrase of a SIP status (RFC 3261 §21 and the RFCs that added codes);
/// the class name for codes without one.
#[must_use]
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        607 => "Unwanted",
        608 => "Rejected",
        _ => class_phrase(status),
    }
}

/// The name of a status class (RFC 3261 §21), for codes without a phrase of their own.
fn class_phrase(status: u16) -> &'static str {
    match status / 100 {
        3 => "Redirection",
        4 => "Client Error",
        5 => "Server Error",
        6 => "Global Failure",
        _ => "",
    }
}

impl RecentCalls {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain data: a panic elsewhere cannot leave it inconsistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A call ended: its outbound trunk's outcome, and a failure entry when it failed.
    pub fn call_ended(&self, cdr: &CdrRecord) {
        let failed = is_failure(cdr);
        let mut inner = self.lock();
        if let Some(b) = &cdr.b_leg {
            let answered = cdr.answer_at_ms.is_some();
            let tracked = inner.trunks.len() < TRUNKS_KEPT || inner.trunks.contains_key(&b.trunk);
            if tracked && cdr.end_reason != EndReason::Cancelled {
                let prev = inner.trunks.get(&b.trunk).map_or(0, |t| t.failures_in_row);
                // Timeouts and 5xx say the trunk is failing; a 4xx/6xx is the callee's answer.
                let fault = !answered
                    && cdr
                        .final_status
                        .is_none_or(|s| s == 408 || (500..600).contains(&s));
                inner.trunks.insert(
                    b.trunk.clone(),
                    TrunkOutcome {
                        at_ms: cdr.end_at_ms,
                        answered,
                        status: if answered { None } else { cdr.final_status },
                        failures_in_row: if fault { prev.saturating_add(1) } else { 0 },
                    },
                );
            }
        }
        if !failed {
            return;
        }
        let status = cdr.final_status.filter(|_| cdr.answer_at_ms.is_none());
        let reason = match (status, cdr.end_reason) {
            (Some(s), _) => reason_phrase(s).to_owned(),
            (None, EndReason::MediaInactivity) => "media inactivity".to_owned(),
            (None, EndReason::SessionExpired) => "session timer expired".to_owned(),
            (None, r) => end_reason_label(&r).replace('_', " "),
        };
        push(
            &mut inner.failures,
            Failure {
                at_ms: cdr.end_at_ms,
                call: Some(cdr.call_id),
                calling: Some(cdr.calling.original.clone()),
                called: Some(cdr.called.original.clone()),
                inbound_trunk: Some(cdr.a_leg.trunk.clone()),
                outbound_trunk: cdr.b_leg.as_ref().map(|b| b.trunk.clone()),
                status,
                reason,
                end_reason: end_reason_label(&cdr.end_reason).to_owned(),
                source: None,
            },
        );
    }

    /// Outbound trunk `trunk` answered a call at `at_ms`: it is up, whatever came before.
    pub fn answered(&self, trunk: &str, at_ms: u64) {
        let mut inner = self.lock();
        if inner.trunks.len() < TRUNKS_KEPT || inner.trunks.contains_key(trunk) {
            inner.trunks.insert(
                trunk.to_owned(),
                TrunkOutcome {
                    at_ms,
                    answered: true,
                    status: None,
                    failures_in_row: 0,
                },
            );
        }
    }

    /// A request was refused before a call existed (policy, drain, parse).
    pub fn rejected(&self, at_ms: u64, status: u16, reason: &str, source: SocketAddr) {
        let mut inner = self.lock();
        push(
            &mut inner.failures,
            Failure {
                at_ms,
                call: None,
                calling: None,
                called: None,
                inbound_trunk: None,
                outbound_trunk: None,
                status: Some(status),
                reason: reason.to_owned(),
                end_reason: "refused".to_owned(),
                source: Some(source.to_string()),
            },
        );
    }

    /// The failures kept, newest first.
    #[must_use]
    pub fn failures(&self) -> Vec<Failure> {
        self.lock().failures.iter().rev().cloned().collect()
    }

    /// The last outcome of every tracked outbound trunk.
    #[must_use]
    pub fn trunk_outcomes(&self) -> BTreeMap<String, TrunkOutcome> {
        self.lock().trunks.clone()
    }
}

fn push(q: &mut VecDeque<Failure>, f: Failure) {
    while q.len() >= FAILURES_KEPT {
        q.pop_front();
    }
    q.push_back(f);
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_engine::b2bua::{LegRecord, Party};
    use portcullis_engine::cdr::NumberRecord;

    fn leg(trunk: &str) -> LegRecord {
        LegRecord {
            call_id: "c".into(),
            from: "sip:1@a".into(),
            to: "sip:2@b".into(),
            trunk: trunk.into(),
            remote: "127.0.0.1:5060".parse().unwrap_or_else(|e| panic!("{e}")),
        }
    }

    fn cdr(id: u64, answered: bool, reason: EndReason, status: Option<u16>) -> CdrRecord {
        CdrRecord {
            call_id: id,
            a_leg: leg("left"),
            b_leg: Some(leg("right")),
            calling: NumberRecord::same("1000"),
            called: NumberRecord::same("2000"),
            route: Some("r".into()),
            setup_at_ms: 1_000,
            answer_at_ms: answered.then_some(2_000),
            end_at_ms: 3_000 + id,
            end_reason: reason,
            final_status: status,
            media: None,
            takeover: None,
        }
    }

    #[test]
    fn failures_and_trunk_outcomes() {
        let r = RecentCalls::default();
        r.call_ended(&cdr(
            1,
            true,
            EndReason::NormalClearing { by: Party::Caller },
            Some(200),
        ));
        r.call_ended(&cdr(2, false, EndReason::Cancelled, Some(487)));
        assert!(r.failures().is_empty());
        assert!(r.trunk_outcomes()["right"].answered);
        r.call_ended(&cdr(
            3,
            false,
            EndReason::Rejected { status: 486 },
            Some(486),
        ));
        r.call_ended(&cdr(4, false, EndReason::Timeout, Some(408)));
        r.call_ended(&cdr(5, true, EndReason::MediaInactivity, Some(200)));
        r.rejected(
            9_000,
            403,
            "Forbidden (ACL)",
            "192.0.2.1:5060".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        let f = r.failures();
        assert_eq!(f.len(), 4);
        assert_eq!(f[0].end_reason, "refused");
        assert_eq!(f[0].reason, "Forbidden (ACL)");
        assert_eq!(f[0].source.as_deref(), Some("192.0.2.1:5060"));
        assert_eq!(
            (f[1].status, f[1].reason.as_str()),
            (None, "media inactivity")
        );
        assert_eq!(
            (f[2].status, f[2].reason.as_str()),
            (Some(408), "Request Timeout")
        );
        assert_eq!(
            (f[3].status, f[3].reason.as_str()),
            (Some(486), "Busy Here")
        );
        assert_eq!(f[3].called.as_deref(), Some("2000"));
        let t = &r.trunk_outcomes()["right"];
        assert!(t.answered, "the media-inactivity call had been answered");
        assert_eq!(t.failures_in_row, 0);
        r.call_ended(&cdr(
            6,
            false,
            EndReason::Rejected { status: 503 },
            Some(503),
        ));
        r.call_ended(&cdr(
            7,
            false,
            EndReason::Rejected { status: 503 },
            Some(503),
        ));
        let t = &r.trunk_outcomes()["right"];
        assert_eq!(
            (t.answered, t.status, t.failures_in_row),
            (false, Some(503), 2)
        );
        r.answered("right", 9_999);
        let t = &r.trunk_outcomes()["right"];
        assert_eq!((t.answered, t.at_ms, t.failures_in_row), (true, 9_999, 0));
    }

    #[test]
    fn bounded() {
        let r = RecentCalls::default();
        for i in 0..(FAILURES_KEPT as u64 + 50) {
            r.call_ended(&cdr(i, false, EndReason::Timeout, Some(408)));
        }
        let f = r.failures();
        assert_eq!(f.len(), FAILURES_KEPT);
        assert_eq!(f[0].call, Some(FAILURES_KEPT as u64 + 49), "newest first");
        let mut r2 = RecentCalls::default();
        {
            let inner = r2.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
            for i in 0..TRUNKS_KEPT {
                inner.trunks.insert(
                    format!("t{i}"),
                    TrunkOutcome {
                        at_ms: 0,
                        answered: true,
                        status: None,
                        failures_in_row: 0,
                    },
                );
            }
        }
        r2.call_ended(&cdr(1, false, EndReason::Timeout, Some(408)));
        assert_eq!(r2.trunk_outcomes().len(), TRUNKS_KEPT);
    }

    #[test]
    fn phrases() {
        assert_eq!(reason_phrase(486), "Busy Here");
        assert_eq!(reason_phrase(499), "Client Error");
        assert_eq!(reason_phrase(42), "");
    }
}

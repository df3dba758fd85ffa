//! B2BUA counters ([`EngineStats`]).
//!
//! Keys are bounded: methods outside the RFC set count as `OTHER`, trunks are
//! the configured names, outcomes a fixed enum.

use std::collections::BTreeMap;

/// How a call attempt ended, for per-trunk counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Answered (counted once at answer).
    Answered,
    /// Caller cancelled before answer.
    Cancelled,
    /// Final failure relayed or generated before answer.
    Failed,
    /// Refused by a limit (trunk full, drain, media capacity).
    Refused,
    /// No route.
    NoRoute,
}

/// Counters for one trunk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrunkStats {
    /// Calls that arrived from the trunk.
    pub inbound: u64,
    /// Attempts toward the trunk (one per target tried).
    pub outbound: u64,
    /// Outcomes of the calls that arrived from the trunk.
    pub outcomes: BTreeMap<Outcome, u64>,
}

/// Methods counted by name.
const METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "PRACK",
    "UPDATE",
    "INFO",
    "MESSAGE",
    "REFER",
    "NOTIFY",
    "SUBSCRIBE",
    "PUBLISH",
];

/// Every counter of the B2BUA (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub calls_total: u64,
    pub by_trunk: BTreeMap<String, TrunkStats>,
    pub requests_in: BTreeMap<&'static str, u64>,
    pub requests_out: BTreeMap<&'static str, u64>,
    /// Responses by class (index 1 = 1xx ... 6 = 6xx, 0 = unparsable).
    pub responses_in: [u64; 7],
    pub responses_out: [u64; 7],
    /// Client transactions that timed out (Timer B/F) plus 2xx never ACKed (Timer L).
    pub transaction_timeouts: u64,
    /// Malformed messages (answered 400 when a response could be formed).
    pub parse_errors: u64,
    /// Requests refused by policy (unknown source, rate limit, auth failures).
    pub policy_rejects: u64,
    /// Sources banned by the rate limiter.
    pub bans: u64,
    /// Requests silently dropped (unknown source in drop mode, banned).
    pub dropped: u64,
    pub failovers: u64,
    pub trunk_limit_rejects: u64,
    /// New calls refused (503 + Retry-After) at the global `max_calls`.
    pub call_limit_rejects: u64,
    /// Requests refused before a call existed, by status and reason phrase
    /// (policy 403s, drain and limit 503s, 481s for unknown dialogs, ...).
    pub rejected: BTreeMap<(u16, &'static str), u64>,
    /// ACKs from sources no trunk claims, absorbed without an answer (the
    /// ACK of a stateless 403).
    pub absorbed_acks: u64,
    pub drain_rejects: u64,
    /// New calls refused with 503 because the CDR writer is behind
    /// ([`super::B2bua::set_cdr_backpressure`]).
    pub cdr_rejects: u64,
    /// OPTIONS answered `503` while draining (a load balancer takes us out of rotation).
    pub options_draining: u64,
    /// OPTIONS answered `503` at `overload_calls` live calls or more.
    pub options_overloaded: u64,
    pub media_errors: u64,
    /// Calls set up with media bypass (no data-plane ports taken).
    pub media_bypassed: u64,
    pub auth_challenges: u64,
    /// Digest credentials refused as replays (nonce count not increasing, or a
    /// nonce without qop used again): answered with a fresh challenge, never a call.
    pub auth_replays: u64,
    pub no_answer_timeouts: u64,
    pub media_inactivity: u64,
    pub session_expiries: u64,
    pub forked_answers_released: u64,
    /// re-INVITEs sent to carry a delayed-offer answer (received in an ACK) to the
    /// side that had answered our own offer (see `reoffer`).
    pub delayed_offer_reoffers: u64,
    /// Offers refused `488` because the trunks' codec policies left no codec.
    pub codec_rejects: u64,
    /// Trunk header rules that changed a relayed message (`[[trunk.headers]]`).
    pub header_rules_applied: u64,
    /// RFC 4733 events detected in the media and sent on as SIP INFO.
    pub dtmf_to_info: u64,
    /// SIP INFO digits answered here and played as RFC 4733 events.
    pub dtmf_to_rfc4733: u64,
    /// Digits that could not be interworked (unreadable INFO body, no dialog
    /// to send the INFO on, data plane refused the event).
    pub dtmf_failed: u64,
}

impl EngineStats {
    pub(crate) fn trunk(&mut self, name: &str) -> &mut TrunkStats {
        if !self.by_trunk.contains_key(name) {
            self.by_trunk.insert(name.to_owned(), TrunkStats::default());
        }
        self.by_trunk.entry(name.to_owned()).or_default()
    }

    pub(crate) fn outcome(&mut self, trunk: &str, o: Outcome) {
        *self.trunk(trunk).outcomes.entry(o).or_insert(0) += 1;
    }

    /// Counts one message given its first bytes (no parse: `METHOD ` or `SIP/2.0 NNN`).
    pub(crate) fn count_wire(&mut self, bytes: &[u8], inbound: bool) {
        if let Some(rest) = bytes.strip_prefix(b"SIP/2.0 ") {
            let class = rest
                .first()
                .filter(|c| (b'1'..=b'6').contains(c))
                .map_or(0, |c| usize::from(c - b'0'));
            let arr = if inbound {
                &mut self.responses_in
            } else {
                &mut self.responses_out
            };
            if let Some(slot) = arr.get_mut(class) {
                *slot += 1;
            }
            return;
        }
        let end = bytes.iter().take(16).position(|b| *b == b' ').unwrap_or(0);
        let token = bytes.get(..end).unwrap_or(b"");
        let name = METHODS
            .iter()
            .find(|m| m.as_bytes() == token)
            .copied()
            .unwrap_or("OTHER");
        let map = if inbound {
            &mut self.requests_in
        } else {
            &mut self.requests_out
        };
        *map.entry(name).or_insert(0) += 1;
    }

    /// Requests received with `method`.
    #[must_use]
    pub fn requests_in(&self, method: &str) -> u64 {
        self.requests_in.get(method).copied().unwrap_or(0)
    }

    /// Requests sent with `method`.
    #[must_use]
    pub fn requests_out(&self, method: &str) -> u64 {
        self.requests_out.get(method).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_counting() {
        let mut s = EngineStats::default();
        s.count_wire(b"INVITE sip:x SIP/2.0\r\n", true);
        s.count_wire(b"FOO sip:x SIP/2.0\r\n", true);
        s.count_wire(b"SIP/2.0 486 Busy\r\n", false);
        s.count_wire(b"SIP/2.0 9", false);
        assert_eq!(s.requests_in("INVITE"), 1);
        assert_eq!(s.requests_in("OTHER"), 1);
        assert_eq!(s.responses_out[4], 1);
        assert_eq!(s.responses_out[0], 1);
    }
}

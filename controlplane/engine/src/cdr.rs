//! Call detail records: one [`CdrRecord`] per call, written as one JSON line
//! ([`CdrRecord::to_json_line`], JSON Lines).
//!
//! Invariants: the JSON field order is the declaration order below (serde
//! derives serialize struct fields in order, so two runs produce identical
//! bytes); a line never contains a raw newline (JSON escapes control
//! characters inside strings) and ends with exactly one `\n`. Timestamps are
//! wall-clock milliseconds since the UNIX epoch, supplied by the caller (the
//! engine never reads a clock).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Who hung up a normally cleared call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    /// The A side (our UAS leg).
    Caller,
    /// The B side (our UAC leg).
    Callee,
}

/// Why a call ended. Serialized as `{"kind": "...", ...}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EndReason {
    /// BYE after answer.
    NormalClearing {
        /// Who sent the BYE.
        by: Party,
    },
    /// CANCEL before answer (RFC 3261 §9).
    Cancelled,
    /// A final failure response ended the call (ours or relayed).
    Rejected {
        /// The status sent to the caller.
        status: u16,
    },
    /// No route matched the called number.
    NoRoute,
    /// No answer in time, or every target timed out.
    Timeout,
    /// The data plane saw no media for the inactivity timeout.
    MediaInactivity,
    /// The session timer ran out without a refresh (RFC 4028 §10).
    SessionExpired,
    /// The appliance shut down (drain expired, `release_all`).
    Shutdown,
    /// An operator terminated the call through the admin API.
    Terminated,
    /// The call was transferred (RFC 3515 REFER): this record covers the
    /// segment before the transfer; the continuing call gets its own record.
    Transferred,
    /// The appliance stopped without clearing the call (crash, `kill -9`, power
    /// loss). The engine never emits it: the appliance closes the call's
    /// journal entry at its next start, with `end_at_ms` the last time known
    /// before the stop and no media counters.
    Restart,
}

/// One call leg (A: caller ↔ us; B: us ↔ callee).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegRecord {
    /// The leg's SIP Call-ID.
    pub call_id: String,
    /// From URI.
    pub from: String,
    /// To URI.
    pub to: String,
    /// Trunk name.
    pub trunk: String,
    /// The peer's signalling address.
    pub remote: SocketAddr,
}

/// A number as received and as sent on (after translation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberRecord {
    /// As received on the A leg.
    pub original: String,
    /// As sent on the B leg (equal to `original` without translation or
    /// when no B leg was attempted).
    pub translated: String,
}

impl NumberRecord {
    /// A number with its translation.
    #[must_use]
    pub fn new(original: impl Into<String>, translated: impl Into<String>) -> Self {
        Self {
            original: original.into(),
            translated: translated.into(),
        }
    }

    /// A number that was not translated.
    #[must_use]
    pub fn same(number: impl Into<String>) -> Self {
        let n = number.into();
        Self {
            translated: n.clone(),
            original: n,
        }
    }
}

/// Media counters of one side: what its peer sent us (`rx_*`) and what we
/// sent it (`tx_*`). `lost`/`jitter_us` are the data plane's RTP statistics up to the
/// last packet, `null` when no RTP from that peer was measured: none arrived, every
/// packet failed SRTP, or media was bypassed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaSideRecord {
    /// Packets received from this side's peer.
    pub rx_packets: u64,
    /// Bytes received from this side's peer.
    pub rx_bytes: u64,
    /// Packets sent to this side's peer.
    pub tx_packets: u64,
    /// Bytes sent to this side's peer.
    pub tx_bytes: u64,
    /// Packets lost from this side's peer (RFC 3550 §6.4.1 cumulative).
    pub lost: Option<u64>,
    /// Interarrival jitter of this side's stream, microseconds (RFC 3550 §6.4.1).
    pub jitter_us: Option<u32>,
    /// Packets that reached this side's media port from a source it does not take
    /// media from (spoofed or stray streams, endpoint learning), refused.
    #[serde(default)]
    pub rtp_source_rejected: u64,
}

/// Media counters of both sides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRecord {
    /// The caller's side.
    pub a: MediaSideRecord,
    /// The callee's side.
    pub b: MediaSideRecord,
}

impl From<crate::media::LegMediaStats> for MediaSideRecord {
    fn from(s: crate::media::LegMediaStats) -> Self {
        Self {
            rx_packets: s.rx_packets,
            rx_bytes: s.rx_bytes,
            tx_packets: s.tx_packets,
            tx_bytes: s.tx_bytes,
            lost: s.rtp_lost,
            jitter_us: s.rtp_jitter_us,
            rtp_source_rejected: s.rtp_source_rejected,
        }
    }
}

impl From<crate::media::MediaStats> for MediaRecord {
    fn from(s: crate::media::MediaStats) -> Self {
        Self {
            a: s.a.into(),
            b: s.b.into(),
        }
    }
}

/// One call detail record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdrRecord {
    /// The engine's call id (unique per process run).
    pub call_id: u64,
    /// The caller's leg.
    pub a_leg: LegRecord,
    /// The callee's leg (the last target tried); `None` if none was attempted.
    pub b_leg: Option<LegRecord>,
    /// Calling number before/after translation.
    pub calling: NumberRecord,
    /// Called number before/after translation.
    pub called: NumberRecord,
    /// The route that matched; `None` for [`EndReason::NoRoute`] and
    /// rejections before routing.
    pub route: Option<String>,
    /// When the INVITE arrived (ms since the UNIX epoch).
    pub setup_at_ms: u64,
    /// When the 200 OK was relayed; `None` if never answered.
    pub answer_at_ms: Option<u64>,
    /// When the call ended.
    pub end_at_ms: u64,
    /// Why it ended.
    pub end_reason: EndReason,
    /// The final status sent to the caller on the INVITE (200 when answered).
    pub final_status: Option<u16>,
    /// Media counters; `None` when no media was allocated. After a takeover they
    /// count from the takeover on (the dead node's counters died with it).
    pub media: Option<MediaRecord>,
    /// The call survived a takeover of an active/standby pair: this node restored it
    /// and wrote its one record. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub takeover: Option<TakeoverRecord>,
}

/// The takeover mark of a call carried on by a standby ([`crate::ha`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeoverRecord {
    /// The engine call id on the node that answered the call.
    pub origin_call_id: u64,
    /// Takeovers the call went through.
    pub count: u32,
    /// When the last takeover restored it (ms since the UNIX epoch).
    pub at_ms: u64,
}

impl From<&crate::ha::TakeoverSnapshot> for TakeoverRecord {
    fn from(t: &crate::ha::TakeoverSnapshot) -> Self {
        Self {
            origin_call_id: t.origin_call_id,
            count: t.count,
            at_ms: t.at_ms,
        }
    }
}

impl CdrRecord {
    /// Talk time in ms (answer → end), `None` if never answered.
    #[must_use]
    pub fn duration_ms(&self) -> Option<u64> {
        self.answer_at_ms.map(|a| self.end_at_ms.saturating_sub(a))
    }

    /// Setup time in ms (INVITE → answer, or → end when unanswered).
    #[must_use]
    pub fn setup_ms(&self) -> u64 {
        self.answer_at_ms
            .unwrap_or(self.end_at_ms)
            .saturating_sub(self.setup_at_ms)
    }

    /// One JSON object on one line, terminated by `\n` (JSON Lines).
    #[must_use]
    pub fn to_json_line(&self) -> String {
        // Serialization of these plain types cannot fail (no maps with
        // non-string keys, no fallible Serialize impls).
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Parses one line written by [`CdrRecord::to_json_line`].
    pub fn from_json_line(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line.trim_end_matches(['\n', '\r']))
    }
}

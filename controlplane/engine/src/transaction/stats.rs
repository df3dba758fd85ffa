//! Transaction layer counters (read by the metrics exporter).

use super::TxKind;

/// Counters of one [`super::TransactionLayer`]. Plain integers: a layer is
/// owned by one task, and the exporter copies the struct.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxStats {
    /// Transactions created, indexed like [`TxKind::ALL`].
    pub created: [u64; 4],
    /// Transactions that reached Terminated and were removed, indexed like [`TxKind::ALL`].
    pub terminated: [u64; 4],
    /// Timer B, F, H or L expiries reported to the TU.
    pub timeouts: u64,
    /// Requests or responses retransmitted by a timer (A, E, G) or in answer to a
    /// retransmitted request (server side), plus ACKs re-sent for retransmitted finals.
    pub retransmissions: u64,
    /// Retransmitted requests and responses absorbed without reaching the TU.
    pub absorbed: u64,
    /// Responses matching no client transaction (dropped, §17.1.3).
    pub stray_responses: u64,
    /// ACKs matching no transaction (passed to the TU as [`super::TxEvent::StrayAck`]).
    pub stray_acks: u64,
    /// Messages that could not be parsed or lacked the headers matching needs.
    pub malformed: u64,
    /// Transport errors reported by the driver.
    pub transport_errors: u64,
    /// New inbound requests refused with 503 at the load limit.
    pub overload_rejects: u64,
    /// New inbound requests refused with 503 at the per-source load limit.
    pub source_limit_rejects: u64,
    /// Requests answered without a transaction ([`super::TransactionLayer::respond_stateless`]).
    pub stateless_responses: u64,
}

impl TxStats {
    pub(crate) fn slot(kind: TxKind) -> usize {
        match kind {
            TxKind::InviteClient => 0,
            TxKind::NonInviteClient => 1,
            TxKind::InviteServer => 2,
            TxKind::NonInviteServer => 3,
        }
    }

    /// Transactions of `kind` created so far.
    #[must_use]
    pub fn created(&self, kind: TxKind) -> u64 {
        self.created.get(Self::slot(kind)).copied().unwrap_or(0)
    }

    /// Transactions of `kind` terminated and removed so far.
    #[must_use]
    pub fn terminated(&self, kind: TxKind) -> u64 {
        self.terminated.get(Self::slot(kind)).copied().unwrap_or(0)
    }

    pub(crate) fn on_created(&mut self, kind: TxKind) {
        if let Some(c) = self.created.get_mut(Self::slot(kind)) {
            *c += 1;
        }
    }

    pub(crate) fn on_terminated(&mut self, kind: TxKind) {
        if let Some(c) = self.terminated.get_mut(Self::slot(kind)) {
            *c += 1;
        }
    }
}

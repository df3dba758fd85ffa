//! Transport counters: relaxed atomics, read with [`NetCounters::snapshot`] for export.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::Transport;

/// Per-transport traffic counters.
#[derive(Debug, Default)]
pub struct TransportCounters {
    /// Messages handed to the event channel.
    pub messages_in: AtomicU64,
    /// Messages written to a socket.
    pub messages_out: AtomicU64,
    /// Bytes of those messages in.
    pub bytes_in: AtomicU64,
    /// Bytes of those messages out.
    pub bytes_out: AtomicU64,
}

/// All counters of one [`crate::SipTransports`].
#[derive(Debug, Default)]
pub struct NetCounters {
    /// Indexed by [`Transport::index`].
    pub per_transport: [TransportCounters; 4],
    /// Stream connections open now.
    pub connections_open: AtomicU64,
    /// Stream connections ever established (accepted or opened).
    pub connections_total: AtomicU64,
    /// Connections refused by the global or per-IP cap.
    pub connections_refused: AtomicU64,
    /// Connections closed by the idle timeout.
    pub idle_closes: AtomicU64,
    /// Datagrams over `max_message_bytes` dropped, and stream messages over the framer
    /// limits (their connection is closed).
    pub oversize_drops: AtomicU64,
    /// Other framing failures (missing/bad Content-Length) that closed a connection.
    pub framing_errors: AtomicU64,
    /// TLS handshakes that failed (including client certificate verification).
    pub tls_handshake_failures: AtomicU64,
    /// mTLS peers whose verified certificate named none of the expected names.
    pub tls_name_rejections: AtomicU64,
    /// CRLFCRLF pings answered with a CRLF pong (RFC 5626 §4.4.1), and whitespace-only
    /// UDP keepalive datagrams absorbed.
    pub keepalives: AtomicU64,
    /// UDP messages dropped because the event channel was full.
    pub event_queue_drops: AtomicU64,
    /// Sends that failed (synchronously or reported as `SendFailed`).
    pub send_failures: AtomicU64,
}

/// A plain copy of the counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct NetCountersSnapshot {
    pub messages_in: [u64; 4],
    pub messages_out: [u64; 4],
    pub bytes_in: [u64; 4],
    pub bytes_out: [u64; 4],
    pub connections_open: u64,
    pub connections_total: u64,
    pub connections_refused: u64,
    pub idle_closes: u64,
    pub oversize_drops: u64,
    pub framing_errors: u64,
    pub tls_handshake_failures: u64,
    pub tls_name_rejections: u64,
    pub keepalives: u64,
    pub event_queue_drops: u64,
    pub send_failures: u64,
}

impl NetCountersSnapshot {
    /// Messages received on `t`.
    pub fn messages_in(&self, t: Transport) -> u64 {
        self.messages_in[t.index()]
    }
    /// Messages sent on `t`.
    pub fn messages_out(&self, t: Transport) -> u64 {
        self.messages_out[t.index()]
    }
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

pub(crate) fn inc(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn dec(a: &AtomicU64) {
    a.fetch_sub(1, Ordering::Relaxed);
}

impl NetCounters {
    pub(crate) fn message_in(&self, t: Transport, len: usize) {
        let c = &self.per_transport[t.index()];
        inc(&c.messages_in);
        c.bytes_in.fetch_add(len as u64, Ordering::Relaxed);
    }

    pub(crate) fn message_out(&self, t: Transport, len: usize) {
        let c = &self.per_transport[t.index()];
        inc(&c.messages_out);
        c.bytes_out.fetch_add(len as u64, Ordering::Relaxed);
    }

    /// Reads every counter (each individually consistent, not a global snapshot).
    pub fn snapshot(&self) -> NetCountersSnapshot {
        let mut s = NetCountersSnapshot {
            connections_open: get(&self.connections_open),
            connections_total: get(&self.connections_total),
            connections_refused: get(&self.connections_refused),
            idle_closes: get(&self.idle_closes),
            oversize_drops: get(&self.oversize_drops),
            framing_errors: get(&self.framing_errors),
            tls_handshake_failures: get(&self.tls_handshake_failures),
            tls_name_rejections: get(&self.tls_name_rejections),
            keepalives: get(&self.keepalives),
            event_queue_drops: get(&self.event_queue_drops),
            send_failures: get(&self.send_failures),
            ..NetCountersSnapshot::default()
        };
        for (i, c) in self.per_transport.iter().enumerate() {
            s.messages_in[i] = get(&c.messages_in);
            s.messages_out[i] = get(&c.messages_out);
            s.bytes_in[i] = get(&c.bytes_in);
            s.bytes_out[i] = get(&c.bytes_out);
        }
        s
    }
}

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
    /// Other framing failures (missing/bad/conflicting Content-Length, a start line with
    /// control characters) that closed a connection; answered with 400 when possible.
    pub framing_errors: AtomicU64,
    /// TLS handshakes that failed (including client certificate verification).
    pub tls_handshake_failures: AtomicU64,
    /// mTLS peers whose verified certificate named none of the expected names.
    pub tls_name_rejections: AtomicU64,
    /// CRLFCRLF pings answered with a CRLF pong (RFC 5626 §4.4.1), and whitespace-only
    /// UDP keepalive datagrams absorbed.
    pub keepalives: AtomicU64,
    /// UDP messages dropped because their event queue was full.
    pub event_queue_drops: AtomicU64,
    /// Of those, datagrams from configured peers (their own queue was full).
    pub trunk_queue_drops: AtomicU64,
    /// Sends that failed (synchronously or reported as `SendFailed`).
    pub send_failures: AtomicU64,
    /// UDP datagrams from banned sources, dropped before the event queues.
    pub banned_drops: AtomicU64,
    /// UDP datagrams from unknown sources over `unknown_source_rate`, dropped before the
    /// event queues.
    pub source_rate_drops: AtomicU64,
    /// Stream messages over `per_connection_rate` (requests answered 503, the rest
    /// dropped), never queued.
    pub rate_limited: AtomicU64,
    /// Connections closed because a pending message outgrew `per_connection_buffer`.
    pub buffer_closes: AtomicU64,
    /// Connections closed because a message missed `header_timeout` or
    /// `min_receive_rate`.
    pub slow_closes: AtomicU64,
    /// Inbound connections from unknown sources refused because only the
    /// `trunk_connection_reserve` was left (also counted in `connections_refused`).
    pub reserve_refusals: AtomicU64,
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
    pub trunk_queue_drops: u64,
    pub send_failures: u64,
    pub banned_drops: u64,
    pub source_rate_drops: u64,
    pub rate_limited: u64,
    pub buffer_closes: u64,
    pub slow_closes: u64,
    pub reserve_refusals: u64,
}

impl NetCountersSnapshot {
    /// Visits every counter as `(metric name, transport label, value)`, for export (e.g.
    /// Prometheus `portcullis_sip_<name>{transport="udp"}`). Names are stable.
    pub fn for_each(&self, mut f: impl FnMut(&'static str, Option<Transport>, u64)) {
        for t in Transport::ALL {
            let i = t.index();
            f("messages_in_total", Some(t), self.messages_in[i]);
            f("messages_out_total", Some(t), self.messages_out[i]);
            f("bytes_in_total", Some(t), self.bytes_in[i]);
            f("bytes_out_total", Some(t), self.bytes_out[i]);
        }
        f("connections_open", None, self.connections_open);
        f("connections_total", None, self.connections_total);
        f("connections_refused_total", None, self.connections_refused);
        f("idle_closes_total", None, self.idle_closes);
        f("oversize_drops_total", None, self.oversize_drops);
        f("framing_errors_total", None, self.framing_errors);
        f(
            "tls_handshake_failures_total",
            None,
            self.tls_handshake_failures,
        );
        f("tls_name_rejections_total", None, self.tls_name_rejections);
        f("keepalives_total", None, self.keepalives);
        f("event_queue_drops_total", None, self.event_queue_drops);
        f("trunk_queue_drops_total", None, self.trunk_queue_drops);
        f("send_failures_total", None, self.send_failures);
        f("banned_drops_total", None, self.banned_drops);
        f("source_rate_drops_total", None, self.source_rate_drops);
        f("rate_limited_total", None, self.rate_limited);
        f("buffer_closes_total", None, self.buffer_closes);
        f("slow_closes_total", None, self.slow_closes);
        f("reserve_refusals_total", None, self.reserve_refusals);
    }

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
            trunk_queue_drops: get(&self.trunk_queue_drops),
            send_failures: get(&self.send_failures),
            banned_drops: get(&self.banned_drops),
            source_rate_drops: get(&self.source_rate_drops),
            rate_limited: get(&self.rate_limited),
            buffer_closes: get(&self.buffer_closes),
            slow_closes: get(&self.slow_closes),
            reserve_refusals: get(&self.reserve_refusals),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_visited_once() {
        // Distinct values per field show each field is visited under its own name.
        let mut s = NetCountersSnapshot::default();
        let mut v = 1;
        let mut next = || {
            v += 1;
            v
        };
        for i in 0..4 {
            s.messages_in[i] = next();
            s.messages_out[i] = next();
            s.bytes_in[i] = next();
            s.bytes_out[i] = next();
        }
        s.connections_open = next();
        s.connections_total = next();
        s.connections_refused = next();
        s.idle_closes = next();
        s.oversize_drops = next();
        s.framing_errors = next();
        s.tls_handshake_failures = next();
        s.tls_name_rejections = next();
        s.keepalives = next();
        s.event_queue_drops = next();
        s.trunk_queue_drops = next();
        s.send_failures = next();
        s.banned_drops = next();
        s.source_rate_drops = next();
        s.rate_limited = next();
        s.buffer_closes = next();
        s.slow_closes = next();
        s.reserve_refusals = next();
        let mut seen = Vec::new();
        s.for_each(|name, t, val| seen.push((name, t, val)));
        assert_eq!(seen.len(), 16 + 18);
        let mut vals: Vec<u64> = seen.iter().map(|x| x.2).collect();
        vals.sort_unstable();
        vals.dedup();
        assert_eq!(vals.len(), seen.len(), "a field was visited twice");
        let mut keys: Vec<_> = seen
            .iter()
            .map(|x| (x.0, x.1.map(Transport::index)))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), seen.len(), "duplicate metric name/label");
    }
}

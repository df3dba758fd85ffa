//! The protections of one stream connection's receive side: the message rate
//! (`per_connection_rate`), the bytes held before a message is whole
//! (`per_connection_buffer`), and how slowly a message may arrive (`header_timeout`,
//! `min_receive_rate`), so that a peer sending a byte now and then cannot hold a
//! connection forever (each byte would otherwise reset the idle timer).

use std::time::{Duration, Instant};

use portcullis_sip::{Message, OwnedMessage, Pending};

use crate::border::TokenBucket;
use crate::config::Limits;

/// Seconds a client is asked to wait in the `Retry-After` of a rate-limit 503.
const RETRY_AFTER_SECS: &str = "1";

/// The receive-side state of one connection.
#[derive(Debug)]
pub(crate) struct ConnGuard {
    limits: Limits,
    bucket: TokenBucket,
    /// First byte of the message being received.
    since: Option<tokio::time::Instant>,
}

impl ConnGuard {
    pub(crate) fn new(limits: &Limits) -> Self {
        ConnGuard {
            limits: *limits,
            bucket: TokenBucket::full(limits.per_connection_rate, Instant::now()),
            since: None,
        }
    }

    /// How many bytes the next read may take: up to `chunk`, never past
    /// `per_connection_buffer` held bytes (0 disables the cap). `None`: the buffer is full
    /// and no message can complete in it, so the connection must close.
    pub(crate) fn read_room(&self, buffered: usize, chunk: usize) -> Option<usize> {
        let cap = self.limits.per_connection_buffer;
        if cap == 0 {
            return Some(chunk);
        }
        match cap.saturating_sub(buffered).min(chunk) {
            0 => None,
            n => Some(n),
        }
    }

    /// Whether one more message fits in `per_connection_rate`.
    pub(crate) fn admit_message(&mut self) -> bool {
        self.bucket
            .take(Instant::now(), self.limits.per_connection_rate)
    }

    /// Records what the framer holds after a read was framed. `completed`: a message
    /// ended in this read, so what is pending (if anything) started in it.
    pub(crate) fn after_read(&mut self, now: tokio::time::Instant, completed: bool, held: Pending) {
        match held {
            Pending::Nothing | Pending::Keepalive => self.since = None,
            Pending::Headers | Pending::Body => {
                if completed || self.since.is_none() {
                    self.since = Some(now);
                }
            }
        }
    }

    /// When the message being received is too slow: its header section must end within
    /// `header_timeout` of its first byte, and the whole message within that plus one
    /// second per `min_receive_rate` bytes held so far. `None` when no message is pending.
    pub(crate) fn deadline(&self, held: Pending, buffered: usize) -> Option<tokio::time::Instant> {
        let since = self.since?;
        let headers = since + self.limits.header_timeout;
        match held {
            Pending::Nothing | Pending::Keepalive => None,
            Pending::Headers => Some(headers),
            Pending::Body => {
                let rate = self.limits.min_receive_rate;
                if rate == 0 {
                    return None;
                }
                let secs = buffered as f64 / f64::from(rate);
                Some(headers + Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX / 4))
            }
        }
    }
}

/// The answer to a stream message over `per_connection_rate`: `503 Service Unavailable`
/// with `Retry-After` for a request (RFC 3261 §21.5.4), nothing for an ACK, a response or
/// bytes that do not parse.
pub(crate) fn rate_limited_response(bytes: &[u8]) -> Option<Vec<u8>> {
    let msg = Message::parse(bytes).ok()?;
    if !msg.is_request() || msg.method() == Some("ACK") {
        return None;
    }
    let mut r = OwnedMessage::response_to(&msg, 503, "Service Unavailable (connection rate limit)");
    r.push(portcullis_sip::HeaderName::RetryAfter, RETRY_AFTER_SECS);
    Some(r.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            per_connection_rate: 2,
            per_connection_buffer: 100,
            header_timeout: Duration::from_secs(10),
            min_receive_rate: 10,
            ..Limits::default()
        }
    }

    #[test]
    fn read_room_stops_at_the_buffer_cap() {
        let g = ConnGuard::new(&limits());
        assert_eq!(g.read_room(0, 16), Some(16));
        assert_eq!(g.read_room(90, 16), Some(10));
        assert_eq!(g.read_room(100, 16), None);
        let open = ConnGuard::new(&Limits {
            per_connection_buffer: 0,
            ..limits()
        });
        assert_eq!(open.read_room(1 << 30, 16), Some(16));
    }

    #[test]
    fn rate_admits_one_second_worth() {
        let mut g = ConnGuard::new(&limits());
        assert!(g.admit_message());
        assert!(g.admit_message());
        assert!(!g.admit_message());
    }

    #[test]
    fn deadlines_for_headers_and_body() {
        let mut g = ConnGuard::new(&limits());
        let t0 = tokio::time::Instant::now();
        assert_eq!(g.deadline(Pending::Nothing, 0), None);
        g.after_read(t0, false, Pending::Keepalive);
        assert_eq!(
            g.deadline(Pending::Keepalive, 2),
            None,
            "keepalives are not timed"
        );
        g.after_read(t0, false, Pending::Headers);
        let t1 = t0 + Duration::from_secs(3);
        g.after_read(t1, false, Pending::Headers);
        // The first byte starts the clock; more bytes do not restart it.
        assert_eq!(
            g.deadline(Pending::Headers, 50),
            Some(t0 + Duration::from_secs(10))
        );
        g.after_read(t1, false, Pending::Body);
        assert_eq!(
            g.deadline(Pending::Body, 50),
            Some(t0 + Duration::from_secs(15)),
            "50 bytes at 10 B/s earn 5 s"
        );
        // A message completed and the next one began in the same read: its own clock.
        g.after_read(t1, true, Pending::Headers);
        assert_eq!(
            g.deadline(Pending::Headers, 5),
            Some(t1 + Duration::from_secs(10))
        );
        g.after_read(t1, true, Pending::Nothing);
        assert_eq!(g.deadline(Pending::Nothing, 0), None);
    }

    #[test]
    fn over_rate_requests_get_503_others_nothing() {
        let req = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1\r\n\
            From: <sip:x@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: rl@test\r\nCSeq: 1 OPTIONS\r\n\
            Content-Length: 0\r\n\r\n";
        let r = rate_limited_response(req).expect("a request is answered");
        let text = String::from_utf8(r).expect("utf-8");
        assert!(
            text.starts_with("SIP/2.0 503 Service Unavailable (connection rate limit)\r\n"),
            "{text}"
        );
        assert!(text.contains("Retry-After: 1\r\n"), "{text}");
        assert!(text.contains("Call-ID: rl@test\r\n"), "{text}");
        let ack = String::from_utf8_lossy(req)
            .replace("OPTIONS sip", "ACK sip")
            .replace("1 OPTIONS", "1 ACK");
        assert_eq!(rate_limited_response(ack.as_bytes()), None);
        let resp = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1\r\n\
            From: <sip:x@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: rl@test\r\nCSeq: 1 OPTIONS\r\n\
            Content-Length: 0\r\n\r\n";
        assert_eq!(rate_limited_response(resp), None);
        assert_eq!(rate_limited_response(b"garbage\r\n\r\n"), None);
    }
}

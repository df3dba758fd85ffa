//! SIP capture to a HEP collector (Homer): every SIP message the engine receives or sends
//! leaves as one HEP v3 datagram (the HEP/EEP chunk format of the HEP 3 specification,
//! generic vendor 0x0000) to `[capture] hep`.
//!
//! Each packet carries the addresses and ports, the transport protocol, the capture time
//! (seconds and microseconds), the protocol type (1 = SIP), the capture agent id, the
//! message, and a correlation id: the A leg's Call-ID, on the messages of both legs, so the
//! collector shows a call's two dialogs as one flow.
//!
//! Capture never holds up call handling: the socket is non-blocking and a datagram the
//! kernel cannot take at once is dropped and counted, never queued.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::CaptureConfig;

/// HEP chunk types (generic vendor 0x0000) that Portcullis writes.
mod chunk {
    pub const IP_FAMILY: u16 = 0x0001;
    pub const IP_PROTO: u16 = 0x0002;
    pub const IPV4_SRC: u16 = 0x0003;
    pub const IPV4_DST: u16 = 0x0004;
    pub const IPV6_SRC: u16 = 0x0005;
    pub const IPV6_DST: u16 = 0x0006;
    pub const SRC_PORT: u16 = 0x0007;
    pub const DST_PORT: u16 = 0x0008;
    pub const TIME_SEC: u16 = 0x0009;
    pub const TIME_USEC: u16 = 0x000a;
    pub const PROTO_TYPE: u16 = 0x000b;
    pub const CAPTURE_ID: u16 = 0x000c;
    pub const AUTH_KEY: u16 = 0x000e;
    pub const PAYLOAD: u16 = 0x000f;
    pub const CORRELATION_ID: u16 = 0x0011;
}

/// `AF_INET` and `AF_INET6` as HEP writes the family.
const FAMILY_V4: u8 = 2;
const FAMILY_V6: u8 = 10;
/// HEP protocol type of a SIP payload.
const PROTO_SIP: u8 = 1;
/// The largest HEP packet (its length field is 16 bits).
const MAX_PACKET: usize = u16::MAX as usize;

/// The transport a captured message used, as an IP protocol number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpProto {
    /// UDP (17).
    Udp,
    /// TCP (6): TCP and TLS (the payload is the SIP message, decrypted).
    Tcp,
}

impl IpProto {
    fn number(self) -> u8 {
        match self {
            IpProto::Udp => 17,
            IpProto::Tcp => 6,
        }
    }
}

/// One captured SIP message.
#[derive(Debug, Clone, Copy)]
pub struct SipCapture<'a> {
    /// Transport.
    pub proto: IpProto,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// When it was received or sent.
    pub time: SystemTime,
    /// The message as on the wire.
    pub payload: &'a [u8],
    /// The A leg's Call-ID of the call it belongs to.
    pub correlation: Option<&'a str>,
}

fn put_chunk(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    // Chunk length counts its own 6-byte header; the caller keeps the whole packet
    // under 64 KiB, so every chunk fits.
    let len = u16::try_from(6 + data.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// Encodes `c` as one HEP v3 packet into `out` (cleared first). `None` when the message is
/// too large for a HEP packet.
pub fn encode(
    c: &SipCapture<'_>,
    capture_id: u32,
    auth_key: Option<&str>,
    out: &mut Vec<u8>,
) -> Option<()> {
    out.clear();
    out.extend_from_slice(b"HEP3\0\0");
    match (c.src.ip(), c.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            put_chunk(out, chunk::IP_FAMILY, &[FAMILY_V4]);
            put_chunk(out, chunk::IP_PROTO, &[c.proto.number()]);
            put_chunk(out, chunk::IPV4_SRC, &s.octets());
            put_chunk(out, chunk::IPV4_DST, &d.octets());
        }
        // IPv6 on either side: both as IPv6 (an IPv4 one mapped).
        (s, d) => {
            put_chunk(out, chunk::IP_FAMILY, &[FAMILY_V6]);
            put_chunk(out, chunk::IP_PROTO, &[c.proto.number()]);
            put_chunk(out, chunk::IPV6_SRC, &v6(s).octets());
            put_chunk(out, chunk::IPV6_DST, &v6(d).octets());
        }
    }
    put_chunk(out, chunk::SRC_PORT, &c.src.port().to_be_bytes());
    put_chunk(out, chunk::DST_PORT, &c.dst.port().to_be_bytes());
    let t = c.time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = u32::try_from(t.as_secs()).unwrap_or(u32::MAX);
    put_chunk(out, chunk::TIME_SEC, &secs.to_be_bytes());
    put_chunk(out, chunk::TIME_USEC, &t.subsec_micros().to_be_bytes());
    put_chunk(out, chunk::PROTO_TYPE, &[PROTO_SIP]);
    put_chunk(out, chunk::CAPTURE_ID, &capture_id.to_be_bytes());
    if let Some(k) = auth_key {
        put_chunk(out, chunk::AUTH_KEY, k.as_bytes());
    }
    if let Some(id) = c.correlation {
        put_chunk(out, chunk::CORRELATION_ID, id.as_bytes());
    }
    if out.len() + 6 + c.payload.len() > MAX_PACKET {
        return None;
    }
    put_chunk(out, chunk::PAYLOAD, c.payload);
    let total = u16::try_from(out.len()).ok()?;
    out.get_mut(4..6)?.copy_from_slice(&total.to_be_bytes());
    Some(())
}

/// How long a leg's correlation is remembered after its last message: long enough for
/// what follows a call's end (the BYE's answer, retransmissions: 64·T1 = 32 s).
const REMEMBER: Duration = Duration::from_secs(120);
/// Most legs remembered; past it, those idle for longest are forgotten first.
const REMEMBER_MAX: usize = 131_072;

/// The correlations of recent legs (Call-ID → the A leg's Call-ID), for the messages
/// that follow a call's end, when the engine no longer knows the dialog.
#[derive(Debug, Default)]
pub struct Correlations {
    legs: HashMap<String, (String, Instant)>,
    since_sweep: usize,
}

impl Correlations {
    /// The A leg's Call-ID of a message with `call_id`: `known` (the engine's answer,
    /// remembered) or what was remembered; else the message's own Call-ID (a message of
    /// no known call starts its own correlation: an initial INVITE is an A leg).
    pub fn correlate(&mut self, call_id: &str, known: Option<&str>, now: Instant) -> String {
        if let Some(a) = known {
            self.remember(call_id, a, now);
            return a.to_owned();
        }
        match self.legs.get_mut(call_id) {
            Some((a, seen)) => {
                *seen = now;
                a.clone()
            }
            None => call_id.to_owned(),
        }
    }

    fn remember(&mut self, call_id: &str, a: &str, now: Instant) {
        match self.legs.get_mut(call_id) {
            Some(entry) => entry.1 = now,
            None => {
                self.legs.insert(call_id.to_owned(), (a.to_owned(), now));
            }
        }
        self.since_sweep += 1;
        if self.since_sweep >= 4096 || self.legs.len() > REMEMBER_MAX {
            self.since_sweep = 0;
            self.legs
                .retain(|_, (_, seen)| now.saturating_duration_since(*seen) < REMEMBER);
            if self.legs.len() > REMEMBER_MAX {
                // Every leg active within the window and still too many: forget the
                // older half (the bound holds whatever the call rate).
                let mut ages: Vec<(Instant, String)> = self
                    .legs
                    .iter()
                    .map(|(k, (_, t))| (*t, k.clone()))
                    .collect();
                ages.sort_unstable();
                let excess = self.legs.len() - REMEMBER_MAX / 2;
                for (_, k) in ages.into_iter().take(excess) {
                    self.legs.remove(&k);
                }
            }
        }
    }

    /// Legs remembered.
    #[must_use]
    pub fn len(&self) -> usize {
        self.legs.len()
    }

    /// Whether no leg is remembered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.legs.is_empty()
    }
}

/// The sender, owned by the engine task.
#[derive(Debug)]
pub struct Capture {
    sock: UdpSocket,
    capture_id: u32,
    auth_key: Option<String>,
    buf: Vec<u8>,
    /// HEP packets sent to the collector.
    sent: u64,
    /// Messages not captured: the socket could not take the packet at once, or the
    /// message was too large for HEP.
    dropped: u64,
}

impl Capture {
    /// A non-blocking UDP socket connected to the collector.
    ///
    /// # Errors
    /// The socket cannot be made or connected.
    pub fn new(cfg: &CaptureConfig) -> std::io::Result<Self> {
        let any: SocketAddr = if cfg.hep.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = UdpSocket::bind(any)?;
        sock.connect(cfg.hep)?;
        sock.set_nonblocking(true)?;
        Ok(Self {
            sock,
            capture_id: cfg.capture_id,
            auth_key: cfg.password.as_ref().map(|p| p.expose().to_owned()),
            buf: Vec::with_capacity(4096),
            sent: 0,
            dropped: 0,
        })
    }

    /// Packets sent and messages dropped so far.
    #[must_use]
    pub fn counts(&self) -> (u64, u64) {
        (self.sent, self.dropped)
    }

    /// Sends one message to the collector, or counts it as dropped.
    pub fn send(&mut self, c: &SipCapture<'_>) {
        let sent = encode(c, self.capture_id, self.auth_key.as_deref(), &mut self.buf).is_some()
            && self.sock.send(&self.buf).is_ok();
        if sent {
            self.sent += 1;
        } else {
            self.dropped += 1;
        }
    }
}

/// Call-ID, From tag and To tag of a SIP message (what correlation needs); `None` when it
/// does not parse.
pub fn dialog_ids(bytes: &[u8]) -> Option<(&str, [Option<&str>; 2])> {
    let m = portcullis_sip::Message::parse(bytes).ok()?;
    let call_id = m.call_id()?;
    let from = m.from().ok().and_then(|f| f.tag());
    let to = m.to().ok().and_then(|t| t.tag());
    Some((call_id, [from, to]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(
        src: &str,
        dst: &str,
        payload: &'a [u8],
        corr: Option<&'a str>,
    ) -> SipCapture<'a> {
        SipCapture {
            proto: IpProto::Udp,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            time: UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5_000),
            payload,
            correlation: corr,
        }
    }

    /// The chunks of a packet: (type, data), checking every length on the way.
    fn chunks(p: &[u8]) -> Vec<(u16, Vec<u8>)> {
        assert_eq!(&p[..4], b"HEP3");
        assert_eq!(usize::from(u16::from_be_bytes([p[4], p[5]])), p.len());
        let mut out = Vec::new();
        let mut i = 6;
        while i < p.len() {
            assert_eq!(u16::from_be_bytes([p[i], p[i + 1]]), 0, "generic vendor");
            let kind = u16::from_be_bytes([p[i + 2], p[i + 3]]);
            let len = usize::from(u16::from_be_bytes([p[i + 4], p[i + 5]]));
            assert!(len >= 6 && i + len <= p.len());
            out.push((kind, p[i + 6..i + len].to_vec()));
            i += len;
        }
        out
    }

    #[test]
    fn an_ipv4_message_has_every_chunk_the_collector_reads() {
        let msg = b"OPTIONS sip:a@b SIP/2.0\r\n\r\n";
        let mut out = Vec::new();
        encode(
            &sample("10.0.0.1:5060", "10.0.0.2:5070", msg, Some("a-leg@x")),
            2001,
            Some("secret"),
            &mut out,
        )
        .unwrap();
        let c = chunks(&out);
        let get = |k: u16| c.iter().find(|(t, _)| *t == k).map(|(_, d)| d.clone());
        assert_eq!(get(chunk::IP_FAMILY), Some(vec![2]));
        assert_eq!(get(chunk::IP_PROTO), Some(vec![17]));
        assert_eq!(get(chunk::IPV4_SRC), Some(vec![10, 0, 0, 1]));
        assert_eq!(get(chunk::IPV4_DST), Some(vec![10, 0, 0, 2]));
        assert_eq!(get(chunk::SRC_PORT), Some(5060u16.to_be_bytes().to_vec()));
        assert_eq!(get(chunk::DST_PORT), Some(5070u16.to_be_bytes().to_vec()));
        assert_eq!(
            get(chunk::TIME_SEC),
            Some(1_700_000_000u32.to_be_bytes().to_vec())
        );
        assert_eq!(get(chunk::TIME_USEC), Some(5u32.to_be_bytes().to_vec()));
        assert_eq!(get(chunk::PROTO_TYPE), Some(vec![1]));
        assert_eq!(get(chunk::CAPTURE_ID), Some(2001u32.to_be_bytes().to_vec()));
        assert_eq!(get(chunk::AUTH_KEY), Some(b"secret".to_vec()));
        assert_eq!(get(chunk::CORRELATION_ID), Some(b"a-leg@x".to_vec()));
        assert_eq!(get(chunk::PAYLOAD), Some(msg.to_vec()));
    }

    #[test]
    fn ipv6_on_either_side_writes_both_as_ipv6() {
        let mut out = Vec::new();
        encode(
            &sample("[2001:db8::1]:5060", "10.0.0.2:5070", b"x", None),
            1,
            None,
            &mut out,
        )
        .unwrap();
        let c = chunks(&out);
        let get = |k: u16| c.iter().find(|(t, _)| *t == k).map(|(_, d)| d.clone());
        assert_eq!(get(chunk::IP_FAMILY), Some(vec![10]));
        let dst: std::net::Ipv6Addr = "::ffff:10.0.0.2".parse().unwrap();
        assert_eq!(get(chunk::IPV6_DST), Some(dst.octets().to_vec()));
        assert!(get(chunk::IPV4_SRC).is_none() && get(chunk::CORRELATION_ID).is_none());
        assert!(get(chunk::AUTH_KEY).is_none());
    }

    #[test]
    fn a_message_too_large_for_hep_is_refused() {
        let big = vec![b'x'; MAX_PACKET];
        let mut out = Vec::new();
        assert!(encode(
            &sample("10.0.0.1:1", "10.0.0.2:2", &big, None),
            1,
            None,
            &mut out
        )
        .is_none());
        let fits = vec![b'x'; MAX_PACKET - 200];
        assert!(encode(
            &sample("10.0.0.1:1", "10.0.0.2:2", &fits, None),
            1,
            None,
            &mut out
        )
        .is_some());
        assert_eq!(usize::from(u16::from_be_bytes([out[4], out[5]])), out.len());
    }

    #[test]
    fn a_leg_is_remembered_after_the_engine_forgets_it_then_forgotten() {
        let mut c = Correlations::default();
        let t0 = Instant::now();
        assert_eq!(c.correlate("b@x", Some("a@y"), t0), "a@y");
        // The call ended: the engine no longer knows the dialog.
        assert_eq!(
            c.correlate("b@x", None, t0 + Duration::from_secs(30)),
            "a@y"
        );
        assert_eq!(c.correlate("new@z", None, t0), "new@z");
        // Long after the last message, a sweep forgets it.
        let late = t0 + Duration::from_secs(30) + REMEMBER + Duration::from_secs(1);
        for i in 0..4096 {
            c.correlate(&format!("l{i}"), Some("a"), late);
        }
        assert_eq!(c.correlate("b@x", None, late), "b@x");
        assert!(c.len() <= 4097);
    }

    #[test]
    fn the_memory_is_bounded_whatever_the_call_rate() {
        let mut c = Correlations::default();
        let t0 = Instant::now();
        for i in 0..(REMEMBER_MAX + 10_000) {
            c.correlate(&format!("leg{i}"), Some("a"), t0);
        }
        assert!(c.len() <= REMEMBER_MAX, "{}", c.len());
        assert!(!c.is_empty());
    }

    #[test]
    fn dialog_ids_reads_call_id_and_both_tags() {
        let m = b"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=f1\r\nTo: <sip:a@b>;tag=t2\r\nCall-ID: c@h\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(dialog_ids(m), Some(("c@h", [Some("f1"), Some("t2")])));
        assert_eq!(dialog_ids(b"garbage"), None);
    }
}

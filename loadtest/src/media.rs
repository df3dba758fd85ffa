//! Paced RTP generation and reception on a few sockets shared by many streams.
//!
//! One media worker thread per configured core owns a handful of UDP sockets. Streams
//! are spread over a timer wheel of `ptime` one-millisecond buckets (bucket = SSRC mod
//! ptime), so every tick sends one packet for each stream in its bucket: the load is flat
//! instead of bursting every `ptime`. Between ticks the worker drains its sockets
//! (non-blocking, with a per-socket budget) and waits in `ppoll` until the next tick or
//! the next datagram. Received packets are demultiplexed by SSRC (RFC 3550 §8) into
//! [`StreamRx`] records.
//!
//! Payload layout ([`Probe`]): the first 8 bytes are the monotonic send time in ns since
//! the run's [`Clock`] epoch (big endian), the next 4 the per-stream sequence number; the
//! rest is PCMU/PCMA silence up to 160 bytes (20 ms at 8 kHz).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::sync::Recorder;
use hdrhistogram::Histogram;
use portcullis_rtp::rtp::RtpPacket;
use portcullis_rtp::srtp::{SrtpKeys, SrtpProfile, SrtpSession};
use socket2::{Domain, Protocol, Socket, Type};

use crate::stats::StreamRx;

/// RTP fixed header length (RFC 3550 §5.1), no CSRC, no extension.
pub const RTP_HEADER_LEN: usize = 12;
/// Bytes of audio per packet at 8 kHz for 20 ms (G.711).
pub const G711_PAYLOAD_20MS: usize = 160;
/// Commands taken per loop iteration.
const CMD_BUDGET: usize = 4096;
/// Ticks we catch up after a stall (late packets are still sent, as a real endpoint
/// would); a longer stall skips ahead rather than bursting.
const CATCH_UP_TICKS: usize = 1000;
/// Timer wheel tick.
const TICK_NS: u64 = 1_000_000;
/// SRTP packets held per SSRC until its key is known (early media racing the answer).
const PENDING_PER_SSRC: usize = 64;
/// SSRCs with held packets, at most.
const PENDING_SSRCS: usize = 65_536;

/// An SDES key||salt (16 + 14 bytes).
pub type SrtpKey = [u8; 30];

/// An `AES_CM_128_HMAC_SHA1_80` session for one direction of one stream.
pub fn srtp_session(key: &SrtpKey) -> Option<SrtpSession> {
    SrtpKeys::from_key_salt(SrtpProfile::AesCm128HmacSha1_80, key).map(|k| SrtpSession::new(&k))
}

/// A UDP socket bound to `addr` with large kernel buffers (a generator that drops its
/// own packets measures nothing; the kernel caps them at `net.core.rmem_max`).
pub fn udp_socket(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = s.set_recv_buffer_size(16 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    // With CAP_NET_ADMIN, past net.core.rmem_max: one socket receives every stream of a
    // worker, and a relay that stalls then bursts must not overflow the generator.
    let _ = nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::RcvBufForce, &(64 << 20));
    s.bind(&addr.into())
        .with_context(|| format!("bind {addr}"))?;
    Ok(s.into())
}

/// Monotonic time since the start of the run, shared by senders and receivers in one
/// process so one-way latency needs no clock synchronisation.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// A clock whose epoch is now.
    pub fn new() -> Self {
        Self(Instant::now())
    }
    /// Nanoseconds since the epoch.
    pub fn ns(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// The probe carried in every payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Per-stream sequence, 0-based, never wraps within a run.
    pub seq: u32,
    /// Send time, ns since the [`Clock`] epoch.
    pub sent_ns: u64,
}

/// Writes an RTP packet (V=2, no padding/extension/CSRC) carrying `probe` into `buf`,
/// returning its length. `payload_len` is clamped to at least the 12 probe bytes.
pub fn build_packet(
    buf: &mut [u8],
    pt: u8,
    ssrc: u32,
    probe: Probe,
    payload_len: usize,
) -> Option<usize> {
    let payload_len = payload_len.max(12);
    let len = RTP_HEADER_LEN + payload_len;
    let out = buf.get_mut(..len)?;
    out[0] = 0x80;
    out[1] = pt & 0x7f;
    out[2..4].copy_from_slice(&(probe.seq as u16).to_be_bytes());
    // RTP timestamp advances by 160 per 20 ms packet at 8 kHz.
    let ts = probe.seq.wrapping_mul(payload_len as u32);
    out[4..8].copy_from_slice(&ts.to_be_bytes());
    out[8..12].copy_from_slice(&ssrc.to_be_bytes());
    out[12..20].copy_from_slice(&probe.sent_ns.to_be_bytes());
    out[20..24].copy_from_slice(&probe.seq.to_be_bytes());
    // G.711 silence (0xFF for PCMU, 0xD5 for PCMA; any byte is valid audio).
    let fill = if pt == 8 { 0xD5 } else { 0xFF };
    out[24..].fill(fill);
    Some(len)
}

/// Parses a received packet: `(ssrc, probe)`, or `None` when it is not ours.
pub fn parse_packet(buf: &[u8]) -> Option<(u32, Probe)> {
    let pkt = RtpPacket::new_checked(buf).ok()?;
    let p = pkt.payload();
    let sent_ns = u64::from_be_bytes(p.get(0..8)?.try_into().ok()?);
    let seq = u32::from_be_bytes(p.get(8..12)?.try_into().ok()?);
    Some((pkt.ssrc(), Probe { seq, sent_ns }))
}

/// Counters read by the progress line while a run is going.
#[derive(Debug, Default)]
pub struct Live {
    /// Packets sent.
    pub tx: AtomicU64,
    /// Packets received.
    pub rx: AtomicU64,
    /// Sum of one-way latency (ns) of received packets.
    pub lat_sum_ns: AtomicU64,
    /// Send errors (e.g. ECONNREFUSED, ENOBUFS).
    pub send_errors: AtomicU64,
    /// SRTP packets refused (authentication, replay, no key): they also show as loss.
    pub srtp_errors: AtomicU64,
}

/// One stream to send.
#[derive(Debug, Clone, Copy)]
pub struct StreamSpec {
    /// SSRC, unique in the run.
    pub ssrc: u32,
    /// Index of the worker socket to send from.
    pub socket: usize,
    /// Destination.
    pub dest: SocketAddr,
    /// Payload type (0 PCMU, 8 PCMA).
    pub pt: u8,
    /// SRTP key to protect with (`None`: plain RTP).
    pub srtp: Option<SrtpKey>,
}

/// Commands to a media worker.
#[derive(Debug, Clone, Copy)]
pub enum MediaCmd {
    /// Start sending a stream at its next wheel slot.
    Add(StreamSpec),
    /// Stop sending the stream with this SSRC.
    Remove(u32),
    /// Packets from `ssrc` are SRTP under `key` (replaces an earlier key).
    Expect {
        /// The sender's SSRC.
        ssrc: u32,
        /// Its SDES key||salt.
        key: SrtpKey,
    },
    /// Stop all sending; keep receiving for the drain time, then return.
    Stop,
}

/// What a stream sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SentInfo {
    /// Packets sent (sequences `0..count`).
    pub count: u64,
    /// Send time of the first packet, ns.
    pub first_ns: u64,
    /// Send time of the last packet, ns.
    pub last_ns: u64,
}

/// The outcome of one media worker.
#[derive(Debug)]
pub struct WorkerResult {
    /// Per-SSRC send records.
    pub sent: HashMap<u32, SentInfo>,
    /// Per-SSRC receive records.
    pub rx: HashMap<u32, StreamRx>,
    /// One-way latency in microseconds.
    pub latency_us: Histogram<u64>,
    /// Datagrams that were not ours.
    pub foreign: u64,
    /// SRTP packets refused (authentication, replay, or never keyed).
    pub srtp_errors: u64,
    /// Datagrams dropped on the generator's side before it read them (AF_XDP).
    pub rx_dropped: u64,
}

/// What a [`MediaIo`] calls for each datagram it receives: `(socket, datagram,
/// arrival_ns)`, socket `None` for a frame that is not for one of the worker's sockets.
pub type OnDatagram<'a> = dyn FnMut(Option<usize>, &mut [u8], u64) + 'a;

/// The packet I/O of a media worker: kernel UDP sockets ([`crate::mmsg::SocketIo`]) or
/// one AF_XDP socket that carries the traffic of every worker socket address
/// ([`crate::xdpgen::XdpIo`]). Sockets are named by their index (0 caller side, 1 callee
/// side).
pub trait MediaIo {
    /// The buffer for the next packet sent from socket `socket`; `None` when none is free
    /// now (flush first).
    fn slot(&mut self, socket: usize) -> Option<&mut [u8]>;
    /// Queues the packet just written into the slot (`len` bytes) for `dest`.
    fn push(&mut self, socket: usize, len: usize, dest: SocketAddr);
    /// Sends everything queued: `(sent, failed)`.
    fn flush(&mut self) -> (usize, usize);
    /// A stream toward `dest` starts (the AF_XDP generator resolves the next hop's MAC).
    fn prepare(&mut self, _dest: SocketAddr) {}
    /// Receives what is ready (bounded by the work budget), calling `f(socket, packet,
    /// arrival_ns)` for each datagram, with `None` for a frame that is not for one of the
    /// sockets (or fails its checksums). Returns how many were read.
    fn receive(&mut self, clock: Clock, f: &mut OnDatagram<'_>) -> usize;
    /// Waits until a datagram may be ready, at most `timeout`.
    fn wait(&mut self, timeout: Duration);
    /// Datagrams the generator's side dropped before reading them (AF_XDP ring full),
    /// when it can tell.
    fn rx_dropped(&self) -> u64 {
        0
    }
}

/// Settings of one media worker.
#[derive(Debug)]
pub struct WorkerConfig {
    /// Packetisation time in ms (bucket count of the wheel).
    pub ptime_ms: u32,
    /// Payload bytes per packet.
    pub payload_len: usize,
    /// Core to pin to.
    pub core: Option<usize>,
    /// Hard stop (ns on the clock), whatever the commands say: no packet is scheduled at or
    /// after it, so a run bounded by the deadline sends exactly the packets that fell due.
    pub deadline_ns: u64,
    /// How long to keep receiving after [`MediaCmd::Stop`].
    pub drain: Duration,
    /// Per socket: packets arriving there are SRTP (decrypted with the key announced by
    /// [`MediaCmd::Expect`] for their SSRC; held until it is known).
    pub srtp_rx: Vec<bool>,
}

struct Sending {
    spec: StreamSpec,
    seq: u32,
    first_ns: u64,
    last_ns: u64,
    srtp: Option<Box<SrtpSession>>,
}

/// Receive-side SRTP state of one worker.
#[derive(Default)]
struct SrtpRx {
    sessions: HashMap<u32, SrtpSession>,
    /// Packets (with their arrival time) from SSRCs whose key has not arrived yet.
    pending: HashMap<u32, Vec<(u64, Vec<u8>)>>,
}

/// Runs a media worker on the calling thread until [`MediaCmd::Stop`] (plus drain), the
/// command channel closing, or the deadline.
///
/// `interval` also records each packet's one-way latency (µs), for the per-second
/// percentiles of the timeline.
pub fn run_worker(
    cfg: &WorkerConfig,
    io: &mut impl MediaIo,
    cmds: &Receiver<MediaCmd>,
    clock: Clock,
    live: &Arc<Live>,
    mut interval: Option<Recorder<u64>>,
) -> std::io::Result<WorkerResult> {
    if let Some(c) = cfg.core {
        // Best effort: an unpinnable core is reported by the caller's config check.
        let _ = core_affinity::set_for_current(core_affinity::CoreId { id: c });
    }
    let ptime = cfg.ptime_ms.max(1) as usize;
    let mut wheel: Vec<Vec<Sending>> = (0..ptime).map(|_| Vec::new()).collect();
    let mut result = WorkerResult {
        sent: HashMap::new(),
        rx: HashMap::new(),
        latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)
            .map_err(|e| std::io::Error::other(e.to_string()))?,
        foreign: 0,
        srtp_errors: 0,
        rx_dropped: 0,
    };
    let mut srtp_rx = SrtpRx::default();
    let start = clock.ns();
    let mut next_tick = start - start % TICK_NS + TICK_NS;
    let mut tick: u64 = next_tick / TICK_NS;
    let mut stop_at: Option<u64> = None;
    loop {
        let now = clock.ns();
        if now >= cfg.deadline_ns || stop_at.is_some_and(|s| now >= s) {
            break;
        }
        // Send every tick that is due (catching up if we fell behind), batched.
        let mut guard = 0;
        while clock.ns() >= next_tick && next_tick < cfg.deadline_ns && guard < CATCH_UP_TICKS {
            let bucket = (tick % ptime as u64) as usize;
            if let Some(b) = wheel.get_mut(bucket) {
                for s in b.iter_mut() {
                    let sock = s.spec.socket;
                    if io.slot(sock).is_none() {
                        flush(io, live);
                    }
                    let Some(slot) = io.slot(sock) else { continue };
                    let sent_ns = clock.ns();
                    let probe = Probe {
                        seq: s.seq,
                        sent_ns,
                    };
                    let Some(mut len) =
                        build_packet(slot, s.spec.pt, s.spec.ssrc, probe, cfg.payload_len)
                    else {
                        continue;
                    };
                    if let Some(srtp) = s.srtp.as_mut() {
                        match srtp.protect_rtp(slot, len) {
                            Ok(n) => len = n,
                            Err(_) => {
                                // Counted as an error and as loss (its sequence is used).
                                live.srtp_errors.fetch_add(1, Ordering::Relaxed);
                                result.srtp_errors += 1;
                                s.seq += 1;
                                continue;
                            }
                        }
                    }
                    io.push(sock, len, s.spec.dest);
                    // A datagram the kernel refuses still used its sequence number: it
                    // is counted in send_errors and shows as loss.
                    if s.seq == 0 {
                        s.first_ns = sent_ns;
                    }
                    s.last_ns = sent_ns;
                    s.seq += 1;
                }
            }
            flush(io, live);
            tick += 1;
            next_tick += TICK_NS;
            guard += 1;
        }
        if guard == CATCH_UP_TICKS {
            // More than CATCH_UP_TICKS behind: skip ahead instead of bursting.
            let now = clock.ns();
            next_tick = now - now % TICK_NS + TICK_NS;
            tick = next_tick / TICK_NS;
        }
        // Commands (bounded), after the sends: packets that fell due before a Stop
        // (e.g. during a scheduling stall) are still sent.
        if stop_at.is_none() {
            for _ in 0..CMD_BUDGET {
                match cmds.try_recv() {
                    Ok(MediaCmd::Add(spec)) => {
                        io.prepare(spec.dest);
                        if let Some(b) = wheel.get_mut(spec.ssrc as usize % ptime) {
                            b.push(Sending {
                                spec,
                                seq: 0,
                                first_ns: 0,
                                last_ns: 0,
                                srtp: spec.srtp.as_ref().and_then(srtp_session).map(Box::new),
                            });
                        }
                    }
                    Ok(MediaCmd::Expect { ssrc, key }) => {
                        if let Some(sess) = srtp_session(&key) {
                            srtp_rx.sessions.insert(ssrc, sess);
                        }
                        // Early packets held for this SSRC: count them now.
                        if let Some(held) = srtp_rx.pending.remove(&ssrc) {
                            for (arrival, mut pkt) in held {
                                on_packet(
                                    &mut result,
                                    live,
                                    &mut srtp_rx,
                                    true,
                                    &mut pkt,
                                    arrival,
                                    interval.as_mut(),
                                );
                            }
                        }
                    }
                    Ok(MediaCmd::Remove(ssrc)) => {
                        if let Some(b) = wheel.get_mut(ssrc as usize % ptime) {
                            if let Some(i) = b.iter().position(|s| s.spec.ssrc == ssrc) {
                                let s = b.swap_remove(i);
                                finish(&mut result.sent, &s);
                            }
                        }
                    }
                    Ok(MediaCmd::Stop) | Err(TryRecvError::Disconnected) => {
                        for b in &mut wheel {
                            for s in b.drain(..) {
                                finish(&mut result.sent, &s);
                            }
                        }
                        stop_at = Some(now + u64::try_from(cfg.drain.as_nanos()).unwrap_or(0));
                        break;
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
        }
        // Receive (bounded).
        io.receive(clock, &mut |sock, pkt, arrival| match sock {
            Some(si) => {
                let srtp = cfg.srtp_rx.get(si).copied().unwrap_or(false);
                on_packet(
                    &mut result,
                    live,
                    &mut srtp_rx,
                    srtp,
                    pkt,
                    arrival,
                    interval.as_mut(),
                );
            }
            None => result.foreign += 1,
        });
        // Wait for the next tick or a datagram.
        let now = clock.ns();
        if now < next_tick {
            io.wait(Duration::from_nanos(next_tick - now));
        }
    }
    for b in &mut wheel {
        for s in b.drain(..) {
            finish(&mut result.sent, &s);
        }
    }
    // Packets whose key never came: refused.
    let never_keyed: u64 = srtp_rx.pending.values().map(|v| v.len() as u64).sum();
    result.srtp_errors += never_keyed;
    result.rx_dropped = io.rx_dropped();
    live.srtp_errors.fetch_add(never_keyed, Ordering::Relaxed);
    Ok(result)
}

/// Accounts one received datagram (SRTP-unprotected first when `srtp`).
fn on_packet(
    result: &mut WorkerResult,
    live: &Live,
    srtp_rx: &mut SrtpRx,
    srtp: bool,
    pkt: &mut [u8],
    arrival: u64,
    interval: Option<&mut Recorder<u64>>,
) {
    let mut len = pkt.len();
    if srtp {
        let Some(ssrc) = pkt
            .get(8..12)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
        else {
            result.foreign += 1;
            return;
        };
        match srtp_rx.sessions.get_mut(&ssrc) {
            Some(sess) => match sess.unprotect_rtp(pkt, len) {
                Ok(n) => len = n,
                Err(_) => {
                    result.srtp_errors += 1;
                    live.srtp_errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
            None => {
                // Early media: hold it (bounded) until the answer's key arrives.
                let n_ssrcs = srtp_rx.pending.len();
                let held = srtp_rx.pending.get_mut(&ssrc);
                match held {
                    Some(v) if v.len() < PENDING_PER_SSRC => v.push((arrival, pkt.to_vec())),
                    None if n_ssrcs < PENDING_SSRCS => {
                        srtp_rx.pending.insert(ssrc, vec![(arrival, pkt.to_vec())]);
                    }
                    _ => {
                        result.srtp_errors += 1;
                        live.srtp_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                return;
            }
        }
    }
    match pkt.get(..len).and_then(parse_packet) {
        Some((ssrc, probe)) => {
            let st = result.rx.entry(ssrc).or_default();
            st.record(probe.seq, probe.sent_ns, arrival);
            let lat = arrival.saturating_sub(probe.sent_ns);
            let us = (lat / 1000).max(1);
            let _ = result.latency_us.record(us);
            if let Some(r) = interval {
                let _ = r.record(us);
            }
            live.rx.fetch_add(1, Ordering::Relaxed);
            live.lat_sum_ns.fetch_add(lat, Ordering::Relaxed);
        }
        None => result.foreign += 1,
    }
}

fn flush(io: &mut impl MediaIo, live: &Live) {
    let (ok, failed) = io.flush();
    live.tx.fetch_add(ok as u64, Ordering::Relaxed);
    live.send_errors.fetch_add(failed as u64, Ordering::Relaxed);
}

fn finish(sent: &mut HashMap<u32, SentInfo>, s: &Sending) {
    if s.seq == 0 {
        return;
    }
    let e = sent.entry(s.spec.ssrc).or_default();
    e.count += u64::from(s.seq);
    if e.first_ns == 0 {
        e.first_ns = s.first_ns;
    }
    e.last_ns = s.last_ns;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmsg::SocketIo;

    #[test]
    fn packet_round_trips_probe() {
        let mut buf = [0u8; 400];
        let p = Probe {
            seq: 70_000,
            sent_ns: 123_456_789_012,
        };
        let n = build_packet(&mut buf, 8, 0xdead_beef, p, G711_PAYLOAD_20MS).unwrap();
        assert_eq!(n, 172);
        let (ssrc, q) = parse_packet(&buf[..n]).unwrap();
        assert_eq!((ssrc, q), (0xdead_beef, p));
        // RTP sequence is the low 16 bits.
        assert_eq!(u16::from_be_bytes([buf[2], buf[3]]), 70_000u32 as u16);
        assert!(parse_packet(&buf[..20]).is_none());
        assert!(parse_packet(b"garbage").is_none());
        assert!(build_packet(&mut [0u8; 10], 0, 1, p, 160).is_none());
    }

    /// Runs one worker with two loopback sockets, every stream sent from socket 0 to
    /// socket 1: with `by_command` it is stopped by command (then drains), otherwise it
    /// runs to a deadline `secs` after start.
    fn run_streams(n: u32, secs: f64, by_command: bool) -> WorkerResult {
        run_streams_srtp(n, secs, by_command, |_| None, |_| None, 0.0)
    }

    /// Like [`run_streams`], with SRTP: `tx_key(i)` protects stream `i`, `rx_key(i)` is
    /// announced to the receiver `expect_after` seconds after start (socket 1 is SRTP
    /// when any stream has a receive key).
    fn run_streams_srtp(
        n: u32,
        secs: f64,
        by_command: bool,
        tx_key: impl Fn(u32) -> Option<SrtpKey>,
        rx_key: impl Fn(u32) -> Option<SrtpKey>,
        expect_after: f64,
    ) -> WorkerResult {
        let a = udp_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = udp_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        let dest = b.local_addr().unwrap();
        let clock = Clock::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let ssrc = |i: u32| 0x1000 + i * 7;
        for i in 0..n {
            let spec = StreamSpec {
                ssrc: ssrc(i),
                socket: 0,
                dest,
                pt: 0,
                srtp: tx_key(i),
            };
            tx.send(MediaCmd::Add(spec)).unwrap();
        }
        let srtp_rx = (0..n).any(|i| rx_key(i).is_some());
        let span = if by_command { 30.0 } else { secs };
        let cfg = WorkerConfig {
            ptime_ms: 20,
            payload_len: G711_PAYLOAD_20MS,
            core: None,
            deadline_ns: clock.ns() + (span * 1e9) as u64,
            drain: Duration::from_millis(300),
            srtp_rx: vec![false, srtp_rx],
        };
        let live = Arc::new(Live::default());
        let h = std::thread::spawn(move || {
            let mut io = SocketIo::new(vec![a, b])?;
            run_worker(&cfg, &mut io, &rx, clock, &live, None)
        });
        if srtp_rx {
            std::thread::sleep(Duration::from_secs_f64(expect_after));
            for i in 0..n {
                if let Some(key) = rx_key(i) {
                    tx.send(MediaCmd::Expect { ssrc: ssrc(i), key }).unwrap();
                }
            }
        }
        if by_command {
            std::thread::sleep(Duration::from_secs_f64(secs - expect_after));
            tx.send(MediaCmd::Stop).unwrap();
        }
        let r = h.join().unwrap().unwrap();
        drop(tx);
        r
    }

    fn key(i: u32, salt: u8) -> SrtpKey {
        let mut k = [salt; 30];
        k[..4].copy_from_slice(&i.to_be_bytes());
        k
    }

    #[test]
    fn srtp_streams_are_decrypted_exactly_even_when_keyed_late() {
        // 100 SRTP streams; the receiver learns the keys 0.2 s in (as a caller learns
        // the far end's key from the answer while early media is already flowing):
        // held packets are counted then, so every packet sent is received once.
        let n = 100;
        let r = run_streams_srtp(n, 0.8, true, |i| Some(key(i, 1)), |i| Some(key(i, 1)), 0.2);
        assert_eq!(r.srtp_errors, 0);
        assert_eq!(r.foreign, 0);
        assert_eq!(r.rx.len(), n as usize);
        for (ssrc, info) in &r.sent {
            let rx = r.rx.get(ssrc).expect("received");
            assert!(info.count > 20, "ssrc {ssrc:#x}: {}", info.count);
            assert_eq!(rx.unique, info.count, "ssrc {ssrc:#x}");
            assert_eq!((rx.duplicates, rx.reordered), (0, 0));
        }
    }

    #[test]
    fn srtp_with_the_wrong_key_is_refused_not_counted() {
        let n = 20;
        let r = run_streams_srtp(n, 0.5, true, |i| Some(key(i, 1)), |i| Some(key(i, 2)), 0.0);
        assert!(r.rx.is_empty(), "nothing authenticates");
        let sent: u64 = r.sent.values().map(|s| s.count).sum();
        assert!(sent > 0);
        assert_eq!(r.srtp_errors, sent, "every packet refused and counted");
    }

    #[test]
    fn srtp_is_really_on_the_wire() {
        // A plain receiver sees the probe encrypted: the SSRC is in the clear, the
        // sequence number in the payload is not what was sent.
        let mut buf = [0u8; 400];
        let p = Probe {
            seq: 5,
            sent_ns: 42,
        };
        let n = build_packet(&mut buf, 0, 9, p, G711_PAYLOAD_20MS).unwrap();
        let mut s = srtp_session(&key(9, 1)).unwrap();
        let m = s.protect_rtp(&mut buf, n).unwrap();
        assert_eq!(m, n + 10, "80-bit tag");
        assert_ne!(parse_packet(&buf[..n]).map(|x| x.1), Some(p));
        let mut r = srtp_session(&key(9, 1)).unwrap();
        let back = r.unprotect_rtp(&mut buf, m).unwrap();
        assert_eq!(parse_packet(&buf[..back]), Some((9, p)));
    }

    #[test]
    fn many_streams_on_one_socket_are_demultiplexed_by_ssrc() {
        let n = 200;
        let r = run_streams(n, 0.5, true);
        assert_eq!(r.sent.len(), n as usize);
        assert_eq!(r.rx.len(), n as usize, "every SSRC has its own record");
        for (ssrc, info) in &r.sent {
            let rx =
                r.rx.get(ssrc)
                    .unwrap_or_else(|| panic!("ssrc {ssrc:#x} not received"));
            assert!(info.count > 0);
            assert_eq!(rx.unique, info.count, "ssrc {ssrc:#x}");
            assert_eq!((rx.duplicates, rx.reordered), (0, 0));
            assert_eq!(rx.highest, Some(info.count as u32 - 1));
        }
        assert_eq!(r.foreign, 0);
        assert_eq!(
            r.latency_us.len(),
            r.sent.values().map(|s| s.count).sum::<u64>()
        );
    }

    #[test]
    fn pacing_sends_one_packet_per_ptime_per_stream() {
        // 1 s of 300 streams at 20 ms: never more than one packet per ptime (at most 52
        // in 1 s). A busy machine may send
        // late, never early: the run ends at its deadline with fewer packets, so the
        // lower bound only says the stream ran.
        let r = run_streams(300, 1.0, false);
        assert_eq!(r.sent.len(), 300);
        for (ssrc, s) in &r.sent {
            let span_ns = s.last_ns - s.first_ns;
            assert!(
                (10..=52).contains(&s.count),
                "ssrc {ssrc:#x}: {} packets",
                s.count
            );
            let mean = span_ns as f64 / (s.count - 1) as f64;
            assert!(
                mean > 12e6,
                "ssrc {ssrc:#x}: mean interval {mean} ns, faster than the ptime"
            );
        }
    }
}

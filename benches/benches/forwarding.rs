//! Data-plane forwarding benchmark: packets/s and worker CPU µs/packet on one pinned worker
//! (core 1), for the relay (plain RTP and RTP→SRTP, io_uring and mmsg backends) side by side
//! with the raw baseline forwarders (recvmmsg and io_uring) on the same core, each both with
//! one socket (the kernel's best case) and with 2,000 legs of their own rx and tx ports (the
//! relay's socket layout, no session logic); the io_uring one also with its tx ports
//! connected to their peers (`raw_uring_2000c`, as the relay sends through connected
//! companions), and that loop again with a receive armed on its tx ports
//! (`raw_uring_2000c_rx`, the layout of a two-way forwarder: context, not a baseline).
//! The generator runs on core 0. Two loads: 2,000 streams paced at 50 pps each (100 kpps
//! total) and flat out. CPU time comes from `/proc/self/task/<tid>/stat`.
//!
//! Run: `cargo bench -p portcullis-benches --bench forwarding`
//! (`FWD_SECS` sets the measurement window per case, default 2; `FWD_ROUNDS` the number of
//! interleaved rounds, the case order rotated by one each round, default 3, best kept per
//! case; `FWD_CASES` a comma-separated subset of case names; `FWD_LOADS` `paced` or `flat`
//! for one load only; `FWD_VERBOSE` set prints the relay worker's loop, re-arm and ENOBUFS
//! counts per case).
#![allow(clippy::print_stdout, clippy::cast_precision_loss)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_benches::rawfwd::{self, Blaster};
use portcullis_dataplane::{Backend, Dataplane, DataplaneConfig, StreamParams};
use portcullis_rtp::srtp::{SrtpKeys, SrtpProfile};

const STREAMS: usize = 2000;
const PPS_PER_STREAM: u64 = 50;
const WORKER_CORE: usize = 1;
const GEN_CORE: usize = 0;
const PAYLOAD: usize = 160;
// Relay media ports 41000–48999, raw legs 61000–64999: clear of the appliance tests'
// ports (5000–5060, 15000–15300, 20000–26000, 30000–39999) and of 8888/8889, which a CI
// run may hold while this runs. The relay range lies in the ephemeral range, so the sink
// and generator sockets are bound *without* SO_REUSEPORT (see `ephemeral`): a media
// socket can then never share their port.
const BASE_PORT: u16 = 41000;
const RAW_PORT: u16 = 5990;
// Raw multi-socket legs: 2 ports each (61000–64999), above the ephemeral range.
const RAW_MULTI_PORT: u16 = 61000;
const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Sut {
    Relay {
        backend: Backend,
        srtp: bool,
    },
    /// The io_uring relay with all traffic on one stream: isolates the relay logic from
    /// the kernel's per-socket cost of 2,000 ports.
    RelayOneStream {
        srtp: bool,
    },
    RawMmsg,
    RawUring,
    /// Raw forwarder over [`STREAMS`] legs (rx port → tx port → fixed peer each).
    RawMmsgMulti,
    RawUringMulti,
    /// The same with every `tx` connected to its peer (no route lookup per packet).
    RawUringMultiConnected,
    /// The same with a receive armed on every `tx` port too: the layout of a forwarder of
    /// two-way streams, which reads the ports it sends from (the relay does). Context for
    /// the ratios, not one of the baselines they are taken against.
    RawUringMultiTwoWay,
}

impl Sut {
    fn name(self) -> &'static str {
        match self {
            Sut::Relay {
                backend: Backend::IoUring,
                srtp: false,
            } => "relay_uring_plain",
            Sut::Relay {
                backend: Backend::IoUring,
                srtp: true,
            } => "relay_uring_srtp",
            Sut::RelayOneStream { srtp: false } => "relay_uring_plain_1st",
            Sut::RelayOneStream { srtp: true } => "relay_uring_srtp_1st",
            Sut::Relay { srtp: false, .. } => "relay_mmsg_plain",
            Sut::Relay { srtp: true, .. } => "relay_mmsg_srtp",
            Sut::RawMmsg => "raw_mmsg",
            Sut::RawUring => "raw_uring",
            Sut::RawMmsgMulti => "raw_mmsg_2000",
            Sut::RawUringMulti => "raw_uring_2000",
            Sut::RawUringMultiConnected => "raw_uring_2000c",
            Sut::RawUringMultiTwoWay => "raw_uring_2000c_rx",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Load {
    Paced,
    Flat,
}

#[derive(Clone, Copy, Debug)]
struct Outcome {
    sent: u64,
    forwarded: u64,
    secs: f64,
    cpu_us: f64,
    /// Busy time of the worker's core over the window (every task, interrupt and softirq).
    core_us: f64,
    /// Time stolen from the worker's core by the hypervisor over the window.
    steal_us: f64,
}

impl Outcome {
    fn pps(&self) -> f64 {
        self.forwarded as f64 / self.secs
    }
    fn us_per_pkt(&self) -> f64 {
        if self.forwarded == 0 {
            f64::NAN
        } else {
            self.cpu_us / self.forwarded as f64
        }
    }
}

fn keys() -> SrtpKeys {
    SrtpKeys {
        profile: SrtpProfile::AesCm128HmacSha1_80,
        master_key: [0x11; 16],
        master_salt: [0x22; 14],
    }
}

/// Generate `load` toward `dests` (stream i → dests[i % len]) from core 0 for `secs`.
/// (Same source socket for warm-up and measurement: the relay latches on it.)
/// `seq` persists across calls: the RTP→SRTP leg refuses to protect a repeated index.
fn generate(
    seq: &mut [u16],
    sock: &rawfwd::Socket,
    dests: &[SocketAddr],
    load: Load,
    secs: f64,
    stop: &AtomicBool,
) -> u64 {
    let mut blaster = Blaster::default();
    let mut next = 0usize;
    let rate = (STREAMS as u64 * PPS_PER_STREAM) as f64;
    let t0 = Instant::now();
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let el = t0.elapsed().as_secs_f64();
        if el >= secs {
            break;
        }
        let want = match load {
            Load::Flat => Blaster::BATCH,
            Load::Paced => {
                let due = (el * rate) as u64;
                if due <= sent {
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                }
                usize::try_from(due - sent)
                    .unwrap_or(usize::MAX)
                    .min(Blaster::BATCH)
            }
        };
        let n = blaster.send(sock, want, |_, buf| {
            let s = next % dests.len();
            next = next.wrapping_add(1);
            let q = seq[s];
            seq[s] = q.wrapping_add(1);
            buf[0] = 0x80;
            buf[1] = 0;
            buf[2..4].copy_from_slice(&q.to_be_bytes());
            buf[4..8].copy_from_slice(&(u32::from(q) * 160).to_be_bytes());
            buf[8..12].copy_from_slice(&(s as u32 + 1).to_be_bytes());
            buf[12..12 + PAYLOAD].fill(0xd5);
            (dests[s], 12 + PAYLOAD)
        });
        sent += n as u64;
    }
    sent
}

/// Busy and stolen microseconds of `core` so far.
fn core_time(core: usize) -> (f64, f64) {
    rawfwd::core_time(core).map_or((f64::NAN, f64::NAN), |(b, s)| {
        (b.as_secs_f64() * 1e6, s.as_secs_f64() * 1e6)
    })
}

fn cpu(tid: u64) -> f64 {
    rawfwd::thread_cpu_time(tid).map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
}

fn run_relay(
    backend: Backend,
    srtp: bool,
    streams: usize,
    load: Load,
    secs: f64,
    sink: SocketAddr,
) -> Outcome {
    let dp = retry(|| {
        Dataplane::start(DataplaneConfig {
            cores: vec![WORKER_CORE],
            port_min: BASE_PORT,
            port_max: BASE_PORT + (STREAMS * 4) as u16 - 1,
            backend,
            ring_capacity: 4096,
            inactivity_timeout: Duration::from_secs(3600),
            uring_buffers: std::env::var("FWD_NBUF")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(4096),
            ..DataplaneConfig::default()
        })
    })
    .expect("data plane");
    let gen = ephemeral().expect("generator socket");
    // Leg A's peer is signalled: the generator.
    let a = StreamParams {
        peer: gen.local_addr().ok().and_then(|a| a.as_socket()),
        ..StreamParams::default()
    };
    let mut dests = Vec::with_capacity(streams);
    for _ in 0..streams {
        let h = dp.allocate_pair().expect("pair");
        let b = StreamParams {
            peer: Some(sink),
            srtp_out: srtp.then(keys),
            ..StreamParams::default()
        };
        dp.update(&h, a, b).expect("update");
        dests.push(SocketAddr::new(LO, h.port_a));
    }
    let ok = wait(|| dp.worker_stats()[0].commands >= streams as u64);
    assert!(ok, "worker did not apply the updates");
    // Warm-up: every stream once.
    let stop = AtomicBool::new(false);
    let mut seq = vec![0u16; STREAMS];
    generate(&mut seq, &gen, &dests, Load::Paced, 0.1, &stop);
    std::thread::sleep(Duration::from_millis(100));
    let tid = dp.worker_stats()[0].tid;
    let (c0, s0, k0) = (cpu(tid), dp.worker_stats()[0], core_time(WORKER_CORE));
    let t0 = Instant::now();
    let sent = generate(&mut seq, &gen, &dests, load, secs, &stop);
    std::thread::sleep(Duration::from_millis(20));
    let (c1, s1, k1) = (cpu(tid), dp.worker_stats()[0], core_time(WORKER_CORE));
    let el = t0.elapsed().as_secs_f64();
    let dropped: u64 = s1.drops.iter().sum::<u64>() - s0.drops.iter().sum::<u64>();
    if dropped > 0 {
        println!("  ({} drops in the relay: {:?})", dropped, s1.drops);
    }
    if std::env::var_os("FWD_VERBOSE").is_some() {
        let pkts = (s1.tx_packets - s0.tx_packets).max(1) as f64;
        println!(
            "  (loops {} = {:.1} packets per loop, rearms {}, enobufs {})",
            s1.loops - s0.loops,
            pkts / (s1.loops - s0.loops).max(1) as f64,
            s1.rearms - s0.rearms,
            s1.enobufs - s0.enobufs
        );
    }
    Outcome {
        sent,
        forwarded: s1.tx_packets - s0.tx_packets,
        secs: el,
        cpu_us: c1 - c0,
        core_us: k1.0 - k0.0,
        steal_us: k1.1 - k0.1,
    }
}

/// A raw forwarder (`sut` one of the `Raw*` cases): one socket or [`STREAMS`] legs.
fn run_raw(sut: Sut, load: Load, secs: f64, sink: SocketAddr) -> Outcome {
    enum Layout {
        Single(rawfwd::Socket),
        Multi(Vec<rawfwd::Leg>),
    }
    let uring = !matches!(sut, Sut::RawMmsg | Sut::RawMmsgMulti);
    let multi = !matches!(sut, Sut::RawMmsg | Sut::RawUring);
    let (layout, dests) = if multi {
        // Another process (a CI run) may hold a port of the range for a moment: retry.
        let legs =
            retry(|| rawfwd::bind_legs(LO, RAW_MULTI_PORT, STREAMS, sink)).expect("raw legs");
        let dests: Vec<SocketAddr> = legs
            .iter()
            .map(|l| {
                l.rx.local_addr()
                    .expect("leg addr")
                    .as_socket()
                    .expect("inet")
            })
            .collect();
        (Layout::Multi(legs), dests)
    } else {
        let sock = rawfwd::bind(SocketAddr::new(LO, RAW_PORT)).expect("raw socket");
        (Layout::Single(sock), vec![SocketAddr::new(LO, RAW_PORT)])
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (txid, rxid) = std::sync::mpsc::channel();
    let s2 = stop.clone();
    let t = std::thread::spawn(move || {
        let _ = rawfwd::pin_current(WORKER_CORE);
        let _ = txid.send(rawfwd::current_tid());
        match (&layout, uring) {
            (Layout::Single(sock), true) => rawfwd::run_uring(sock, sink, &s2),
            (Layout::Single(sock), false) => rawfwd::run_mmsg(sock, sink, &s2),
            (Layout::Multi(legs), true) => match sut {
                Sut::RawUringMultiConnected => rawfwd::run_uring_multi_connected(legs, &s2),
                Sut::RawUringMultiTwoWay => rawfwd::run_uring_multi_two_way(legs, &s2),
                _ => rawfwd::run_uring_multi(legs, &s2),
            },
            (Layout::Multi(legs), false) => rawfwd::run_mmsg_multi(legs, &s2),
        }
    });
    let tid = rxid.recv().expect("raw tid");
    std::thread::sleep(Duration::from_millis(100));
    let gstop = AtomicBool::new(false);
    let gen = ephemeral().expect("generator socket");
    let mut seq = vec![0u16; STREAMS];
    // Warm-up, as for the relay (which needs it to latch): same caches, same sockets.
    let warm = generate(&mut seq, &gen, &dests, Load::Paced, 0.1, &gstop);
    std::thread::sleep(Duration::from_millis(100));
    let (c0, k0) = (cpu(tid), core_time(WORKER_CORE));
    let t0 = Instant::now();
    let sent = generate(&mut seq, &gen, &dests, load, secs, &gstop);
    std::thread::sleep(Duration::from_millis(20));
    let (c1, k1) = (cpu(tid), core_time(WORKER_CORE));
    let el = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let st = t.join().expect("raw thread").expect("raw loop");
    // The loop's counters cover the warm-up too. The warm-up is paced (10 k packets) and
    // followed by 100 ms of silence, so the forwarder has sent all of it before the window
    // opens; anything it loses is lost inside the window (which only lowers raw's figures).
    Outcome {
        sent,
        forwarded: st.tx_packets.saturating_sub(warm),
        secs: el,
        cpu_us: c1 - c0,
        core_us: k1.0 - k0.0,
        steal_us: k1.1 - k0.1,
    }
}

/// A non-blocking UDP socket on an ephemeral loopback port, without `SO_REUSEPORT`, outside
/// the relay's range (an ephemeral port inside it would make the relay's bind fail: about
/// one run in four before this check).
fn ephemeral() -> std::io::Result<rawfwd::Socket> {
    let relay = u32::from(BASE_PORT)..u32::from(BASE_PORT) + (STREAMS * 4) as u32;
    // Held until a port outside the range comes up, so the kernel does not hand them back.
    let mut rejected = Vec::new();
    let s = loop {
        let s = std::net::UdpSocket::bind(SocketAddr::new(LO, 0))?;
        if !relay.contains(&u32::from(s.local_addr()?.port())) || rejected.len() >= 64 {
            break s;
        }
        rejected.push(s);
    };
    drop(rejected);
    s.set_nonblocking(true)?;
    let s = rawfwd::Socket::from(s);
    // Same buffers as the media sockets (best effort, capped by the kernel).
    let _ = s.set_send_buffer_size(4 << 20);
    let _ = s.set_recv_buffer_size(4 << 20);
    Ok(s)
}

/// `f` until it succeeds, at most 20 times 250 ms apart (ports briefly held elsewhere).
fn retry<T, E: std::fmt::Debug>(mut f: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let mut r = f();
    for _ in 0..20 {
        match &r {
            Ok(_) => break,
            Err(e) => println!("  (bind failed, retrying: {e:?})"),
        }
        std::thread::sleep(Duration::from_millis(250));
        r = f();
    }
    r
}

fn wait(mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs us too: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let secs: f64 = std::env::var("FWD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 0.3 } else { 2.0 });
    let _ = rawfwd::pin_current(GEN_CORE);
    let sink_sock = ephemeral().expect("sink");
    let sink = sink_sock
        .local_addr()
        .expect("sink addr")
        .as_socket()
        .expect("inet");
    let uring_ok = portcullis_dataplane::probe_io_uring().is_ok();
    let mut suts = vec![Sut::RawMmsg, Sut::RawMmsgMulti];
    if uring_ok {
        suts.push(Sut::RawUring);
        suts.push(Sut::RawUringMulti);
        suts.push(Sut::RawUringMultiConnected);
        suts.push(Sut::RawUringMultiTwoWay);
        suts.push(Sut::Relay {
            backend: Backend::IoUring,
            srtp: false,
        });
        suts.push(Sut::Relay {
            backend: Backend::IoUring,
            srtp: true,
        });
        suts.push(Sut::RelayOneStream { srtp: false });
        suts.push(Sut::RelayOneStream { srtp: true });
    }
    suts.push(Sut::Relay {
        backend: Backend::Mmsg,
        srtp: false,
    });
    suts.push(Sut::Relay {
        backend: Backend::Mmsg,
        srtp: true,
    });
    // `FWD_CASES=raw_mmsg,relay_uring_plain,…` runs a subset (quick checks).
    if let Ok(only) = std::env::var("FWD_CASES") {
        suts.retain(|s| only.split(',').any(|n| n == s.name()));
    }
    println!(
        "forwarding: worker core {WORKER_CORE}, generator core {GEN_CORE}, {STREAMS} streams, \
         {PAYLOAD}-byte payloads, {secs} s per case, io_uring {}",
        if uring_ok { "available" } else { "unavailable" }
    );
    println!(
        "{:<22} {:<6} {:>10} {:>12} {:>12} {:>10} {:>12} {:>8}",
        "case", "load", "sent", "fwd_pps", "cpu_us/pkt", "cpu_%", "core_us/pkt", "steal_%"
    );
    // Cases interleaved over several rounds so every case sees the same background load,
    // in an order rotated by one each round; per case the best round is kept (lowest
    // CPU/packet paced, highest packets/s flat).
    let rounds: usize = std::env::var("FWD_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 1 } else { 3 });
    let mut loads = vec![Load::Paced, Load::Flat];
    match std::env::var("FWD_LOADS").as_deref() {
        Ok("paced") => loads.retain(|l| *l == Load::Paced),
        Ok("flat") => loads.retain(|l| *l == Load::Flat),
        _ => {}
    }
    let mut results: Vec<(Sut, Load, Outcome)> = Vec::new();
    let mut every: Vec<(usize, Sut, Load, Outcome)> = Vec::new();
    for round in 0..rounds {
        for &load in &loads {
            // Each round starts one case later than the one before, so that over the rounds
            // every case runs in every position (after a light case and after a heavy one)
            // and no case's ratio carries the order's bias.
            for i in 0..suts.len() {
                let sut = suts[(i + round) % suts.len()];
                let o = match sut {
                    Sut::Relay { backend, srtp } => {
                        run_relay(backend, srtp, STREAMS, load, secs, sink)
                    }
                    Sut::RelayOneStream { srtp } => {
                        run_relay(Backend::IoUring, srtp, 1, load, secs, sink)
                    }
                    raw => run_raw(raw, load, secs, sink),
                };
                println!(
                    "{:<22} {:<6} {:>10} {:>12.0} {:>12.3} {:>10.1} {:>12.3} {:>8.1}   (round {})",
                    sut.name(),
                    if load == Load::Paced { "paced" } else { "flat" },
                    o.sent,
                    o.pps(),
                    o.us_per_pkt(),
                    100.0 * o.cpu_us / (o.secs * 1e6),
                    o.core_us / o.forwarded as f64,
                    100.0 * o.steal_us / (o.secs * 1e6),
                    round + 1
                );
                every.push((round, sut, load, o));
                match results.iter_mut().find(|(s, l, _)| *s == sut && *l == load) {
                    Some((_, _, best)) => {
                        let better = match load {
                            Load::Paced => o.us_per_pkt() < best.us_per_pkt(),
                            Load::Flat => o.pps() > best.pps(),
                        };
                        if better {
                            *best = o;
                        }
                    }
                    None => results.push((sut, load, o)),
                }
            }
        }
    }
    println!("best of {rounds} round(s):");
    for (sut, load, o) in &results {
        println!(
            "{:<22} {:<6} {:>10} {:>12.0} {:>12.3} {:>10.1}",
            sut.name(),
            if *load == Load::Paced {
                "paced"
            } else {
                "flat"
            },
            o.sent,
            o.pps(),
            o.us_per_pkt(),
            100.0 * o.cpu_us / (o.secs * 1e6)
        );
    }
    let get = |name: &str, load: Load| {
        results
            .iter()
            .find(|(s, l, _)| s.name() == name && *l == load)
            .map(|(_, _, o)| *o)
    };
    let best = |names: &[&str], load: Load, f: &dyn Fn(&Outcome) -> f64, higher: bool| {
        names
            .iter()
            .filter_map(|n| get(n, load).map(|o| f(&o)))
            .filter(|v| v.is_finite())
            .fold(None, |acc: Option<f64>, v| {
                Some(acc.map_or(v, |a| if higher { a.max(v) } else { a.min(v) }))
            })
            .unwrap_or(f64::NAN)
    };
    let one = ["raw_mmsg", "raw_uring"];
    let many = ["raw_mmsg_2000", "raw_uring_2000", "raw_uring_2000c"];
    let raw_flat_pps = best(&one, Load::Flat, &|o| o.pps(), true);
    let raw_paced_us = best(&one, Load::Paced, &|o| o.us_per_pkt(), false);
    let rawn_flat_pps = best(&many, Load::Flat, &|o| o.pps(), true);
    let rawn_paced_us = best(&many, Load::Paced, &|o| o.us_per_pkt(), false);
    let relay = if uring_ok {
        "relay_uring"
    } else {
        "relay_mmsg"
    };
    let plain_flat = get(&format!("{relay}_plain"), Load::Flat).map_or(f64::NAN, |o| o.pps());
    let srtp_flat = get(&format!("{relay}_srtp"), Load::Flat).map_or(f64::NAN, |o| o.pps());
    let plain_us = get(&format!("{relay}_plain"), Load::Paced).map_or(f64::NAN, |o| o.us_per_pkt());
    let srtp_us = get(&format!("{relay}_srtp"), Load::Paced).map_or(f64::NAN, |o| o.us_per_pkt());
    let one_plain_us =
        get("relay_uring_plain_1st", Load::Paced).map_or(f64::NAN, |o| o.us_per_pkt());
    let one_srtp_us = get("relay_uring_srtp_1st", Load::Paced).map_or(f64::NAN, |o| o.us_per_pkt());
    println!(
        "summary backend={relay} raw_best_flat_pps={raw_flat_pps:.0} \
         relay_plain_flat_pps={plain_flat:.0} relay_srtp_flat_pps={srtp_flat:.0} \
         ratio_plain_pps={:.2} ratio_srtp_pps={:.2} raw_best_paced_us_per_pkt={raw_paced_us:.3} \
         relay_plain_paced_us_per_pkt={plain_us:.3} relay_srtp_paced_us_per_pkt={srtp_us:.3} \
         ratio_plain_cpu={:.2} ratio_srtp_cpu={:.2} \
         relay_1stream_plain_paced_us_per_pkt={one_plain_us:.3} \
         relay_1stream_srtp_paced_us_per_pkt={one_srtp_us:.3} \
         ratio_1stream_plain_cpu={:.2} ratio_1stream_srtp_cpu={:.2}",
        plain_flat / raw_flat_pps,
        srtp_flat / raw_flat_pps,
        raw_paced_us / plain_us,
        raw_paced_us / srtp_us,
        raw_paced_us / one_plain_us,
        raw_paced_us / one_srtp_us,
    );
    // Like with like: the raw forwarder over the relay's socket layout (2,000 legs).
    println!(
        "summary_2000 backend={relay} raw2000_best_flat_pps={rawn_flat_pps:.0} \
         ratio_plain_pps={:.2} ratio_srtp_pps={:.2} \
         raw2000_best_paced_us_per_pkt={rawn_paced_us:.3} \
         ratio_plain_cpu={:.2} ratio_srtp_cpu={:.2}",
        plain_flat / rawn_flat_pps,
        srtp_flat / rawn_flat_pps,
        rawn_paced_us / plain_us,
        rawn_paced_us / srtp_us,
    );
    // Paired: per round, the relay against the better baseline of that same round (run
    // seconds apart, under the same background load and hypervisor steal), then the
    // median over the rounds. Less sensitive to one lucky or unlucky case than the ratio
    // of bests above.
    let ratios = |relay_case: &str, baselines: &[&str], load: Load| {
        let mut ratios: Vec<f64> = (0..rounds)
            .filter_map(|r| {
                let at = |name: &str| {
                    every
                        .iter()
                        .find(|(n, s, l, _)| *n == r && s.name() == name && *l == load)
                        .map(|(_, _, _, o)| *o)
                };
                let ours = at(relay_case)?;
                let base = baselines
                    .iter()
                    .filter_map(|b| at(b))
                    .fold(None, |acc, o| {
                        let better = |a: &Outcome| match load {
                            Load::Paced => o.us_per_pkt() < a.us_per_pkt(),
                            Load::Flat => o.pps() > a.pps(),
                        };
                        match acc {
                            Some(a) if !better(&a) => Some(a),
                            _ => Some(o),
                        }
                    })?;
                let ratio = match load {
                    Load::Paced => base.us_per_pkt() / ours.us_per_pkt(),
                    Load::Flat => ours.pps() / base.pps(),
                };
                ratio.is_finite().then_some(ratio)
            })
            .collect();
        ratios.sort_by(f64::total_cmp);
        ratios
    };
    let paired = |relay_case: &str, baselines: &[&str], load: Load| {
        median(&ratios(relay_case, baselines, load))
    };
    let (plain, srtp) = (format!("{relay}_plain"), format!("{relay}_srtp"));
    let max_steal = every
        .iter()
        .map(|(_, _, _, o)| 100.0 * o.steal_us / (o.secs * 1e6))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    // Context: the relay against the io_uring loop that also reads its send ports, as a
    // forwarder of two-way streams must (not a baseline of the targets).
    let two_way = ["raw_uring_2000c_rx"];
    println!(
        "summary_two_way backend={relay} rounds={rounds} plain_pps={:.2} srtp_pps={:.2} \
         plain_cpu={:.2} srtp_cpu={:.2}",
        paired(&plain, &two_way, Load::Flat),
        paired(&srtp, &two_way, Load::Flat),
        paired(&plain, &two_way, Load::Paced),
        paired(&srtp, &two_way, Load::Paced),
    );
    println!(
        "summary_paired backend={relay} rounds={rounds} \
         plain_pps_2000={:.2} srtp_pps_2000={:.2} plain_cpu_2000={:.2} srtp_cpu_2000={:.2} \
         plain_pps_1={:.2} srtp_pps_1={:.2} plain_cpu_1={:.2} srtp_cpu_1={:.2} \
         max_steal_pct={max_steal:.1}",
        paired(&plain, &many, Load::Flat),
        paired(&srtp, &many, Load::Flat),
        paired(&plain, &many, Load::Paced),
        paired(&srtp, &many, Load::Paced),
        paired(&plain, &one, Load::Flat),
        paired(&srtp, &one, Load::Flat),
        paired(&plain, &one, Load::Paced),
        paired(&srtp, &one, Load::Paced),
    );
    // How far the paired medians can be trusted: a 95 % interval of each median from the
    // rounds' order statistics (no assumption on the spread; "na" under 6 rounds).
    let ci = |relay_case: &str, baselines: &[&str], load: Load| {
        median_interval(&ratios(relay_case, baselines, load))
            .map_or_else(|| "na".to_owned(), |(lo, hi)| format!("{lo:.2}-{hi:.2}"))
    };
    println!(
        "summary_paired_ci95 backend={relay} rounds={rounds} plain_cpu_2000={} \
         srtp_cpu_2000={} plain_cpu_two_way={} srtp_cpu_two_way={} plain_pps_2000={} \
         srtp_pps_2000={} plain_pps_two_way={} srtp_pps_two_way={}",
        ci(&plain, &many, Load::Paced),
        ci(&srtp, &many, Load::Paced),
        ci(&plain, &two_way, Load::Paced),
        ci(&srtp, &two_way, Load::Paced),
        ci(&plain, &many, Load::Flat),
        ci(&srtp, &many, Load::Flat),
        ci(&plain, &two_way, Load::Flat),
        ci(&srtp, &two_way, Load::Flat),
    );
}

/// Median of sorted values (NaN when empty).
fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Distribution-free 95 % confidence interval of the median of sorted values: the order
/// statistics `k` and `n + 1 - k` (1-based), with `k` the largest such that a
/// Binomial(n, 1/2) falls below it with probability at most 2.5 %. None under 6 values.
fn median_interval(sorted: &[f64]) -> Option<(f64, f64)> {
    let n = sorted.len();
    let mut below = 0.0; // P(Bin(n, 1/2) < k)
    let mut term = 0.5f64.powi(i32::try_from(n).ok()?); // P(Bin = i), from i = 0
    let mut k = 0;
    for i in 0..n {
        if below + term > 0.025 {
            break;
        }
        below += term;
        k = i + 1;
        term *= (n - i) as f64 / (i + 1) as f64;
    }
    (k >= 1).then(|| (sorted[k - 1], sorted[n - k]))
}

//! One run: media workers, the relay under test, the call loop, the live progress line
//! and the final [`Report`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, sync_channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context};
use hdrhistogram::sync::SyncHistogram;
use hdrhistogram::Histogram;
use nix::poll::{PollFd, PollFlags};
use nix::sys::time::TimeSpec;
use portcullis_sip::sdp::SessionDescription;

use crate::media::{self, Clock, Live, MediaCmd, StreamSpec, WorkerConfig, WorkerResult};
use crate::mmsg::SocketIo;
use crate::relay::NgClient;
use crate::report::{proc_sample, Percentiles, RelayCost, Report, Tick};
use crate::sip::{sdp_for, ssrcs, Out, Population, Side, SipConfig};
use crate::stats::{StreamRx, Totals};
use crate::xdpgen::XdpIo;

/// Longest run we allow (every load is bounded).
pub const MAX_DURATION_S: f64 = 3600.0;
/// Most calls in one run.
pub const MAX_CALLS: u64 = 200_000;

/// What the media goes through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// SIP calls through an appliance at this address.
    Appliance(SocketAddr),
    /// SIP calls straight from our UAC to our UAS (no relay; tests the tool itself).
    Direct,
    /// rtpengine, set up through ng; no SIP.
    Rtpengine,
    /// `portcullis media-node`, set up through ng as rtpengine is; no SIP.
    PortcullisNg,
    /// `portcullis-rawfwd`; no SIP.
    Raw,
}

impl Mode {
    /// Short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Appliance(_) => "appliance",
            Mode::Direct => "direct",
            Mode::Rtpengine => "rtpengine",
            Mode::PortcullisNg => "portcullis-ng",
            Mode::Raw => "raw",
        }
    }
}

/// How the media workers send and receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generator {
    /// Kernel UDP sockets, `sendmmsg`/`recvmmsg`.
    Socket,
    /// One AF_XDP socket on this interface (frames built by the generator; IPv4, one
    /// worker).
    AfXdp {
        /// The interface that holds the UAC and UAS addresses.
        ifname: String,
    },
}

impl Generator {
    /// Short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Generator::Socket => "socket",
            Generator::AfXdp { .. } => "af_xdp",
        }
    }
}

/// Settings of a run (built from the command line).
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Relay under test.
    pub mode: Mode,
    /// Target concurrent calls.
    pub calls: u64,
    /// Total calls bound.
    pub max_calls: u64,
    /// Calls started per second.
    pub cps: f64,
    /// Hold time, s (None: until the end of the run).
    pub hold_s: Option<f64>,
    /// Run length, s (calls are hung up at the end).
    pub duration_s: f64,
    /// ptime, ms.
    pub ptime_ms: u32,
    /// Payload type (0 PCMU, 8 PCMA).
    pub pt: u8,
    /// Shares of call behaviours.
    pub share_reinvite: f64,
    /// See `share_reinvite`.
    pub share_cancel: f64,
    /// See `share_reinvite`.
    pub share_callee_bye: f64,
    /// Session refresh interval, s (0: none).
    pub refresh_s: f64,
    /// Whether calls carry media.
    pub media: bool,
    /// The caller side speaks SDES-SRTP.
    pub srtp_caller: bool,
    /// The callee side speaks SDES-SRTP.
    pub srtp_callee: bool,
    /// Cores for media workers (one worker per entry).
    pub cores: Vec<usize>,
    /// The media workers' packet I/O.
    pub generator: Generator,
    /// Core for a relay we start ourselves.
    pub relay_core: usize,
    /// UAC socket address.
    pub uac: SocketAddr,
    /// UAS socket address.
    pub uas: SocketAddr,
    /// Process to account CPU and RSS to.
    pub relay_pid: Option<u32>,
    /// Binaries.
    pub rawfwd_bin: PathBuf,
    /// rtpengine binary.
    pub rtpengine_bin: PathBuf,
    /// `portcullis` binary (media node).
    pub portcullis_bin: PathBuf,
    /// Port base for spawned relays (rtpengine ng port, rawfwd listen port).
    pub relay_port: u16,
    /// ng address of an rtpengine or media node already running: driven, not started.
    pub relay_addr: Option<SocketAddr>,
    /// Highest port a spawned media node's range may use: below the kernel's ephemeral
    /// ports (32767 on the host, 60999 in the namespace of `--netns`).
    pub media_port_max: u32,
    /// Print the progress line.
    pub progress: bool,
    /// Command line for the report.
    pub command: String,
}

/// A relay process we started; killed on drop.
#[derive(Debug)]
pub struct Spawned(pub Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Workers {
    tx: Vec<Sender<MediaCmd>>,
    handles: Vec<JoinHandle<std::io::Result<WorkerResult>>>,
    /// Socket 0 (caller side) and socket 1 (callee side) address of each worker.
    addrs: Vec<(SocketAddr, SocketAddr)>,
}

fn start_workers(
    cfg: &RunConfig,
    clock: Clock,
    live: &Arc<Live>,
    interval: &SyncHistogram<u64>,
) -> anyhow::Result<Workers> {
    let mut w = Workers {
        tx: Vec::new(),
        handles: Vec::new(),
        addrs: Vec::new(),
    };
    let deadline_ns = ((cfg.duration_s + 40.0) * 1e9) as u64 + clock.ns();
    for &core in &cfg.cores {
        // Media from the signalling addresses' hosts (loopback by default; a host of a
        // test network namespace when --uac/--uas name one).
        let a = media::udp_socket(SocketAddr::new(cfg.uac.ip(), 0))?;
        let b = media::udp_socket(SocketAddr::new(cfg.uas.ip(), 0))?;
        w.addrs.push((a.local_addr()?, b.local_addr()?));
        let (tx, rx) = channel();
        let live = Arc::clone(live);
        let rec = interval.recorder();
        let wc = WorkerConfig {
            ptime_ms: cfg.ptime_ms,
            payload_len: media::G711_PAYLOAD_20MS * cfg.ptime_ms as usize / 20,
            core: Some(core),
            deadline_ns,
            drain: Duration::from_millis(300),
            srtp_rx: vec![cfg.srtp_caller, cfg.srtp_callee],
        };
        // The worker opens its I/O on its own thread and says whether it could.
        let (ready_tx, ready_rx) = sync_channel::<Result<(), String>>(1);
        let generator = cfg.generator.clone();
        let h = std::thread::Builder::new()
            .name(format!("media-{core}"))
            .spawn(move || match generator {
                Generator::Socket => {
                    let io = SocketIo::new(vec![a, b]);
                    let _ = ready_tx.send(io.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                    media::run_worker(&wc, &mut io?, &rx, clock, &live, Some(rec))
                }
                Generator::AfXdp { ifname } => match XdpIo::open(&ifname, vec![a, b]) {
                    Ok(mut io) => {
                        let _ = ready_tx.send(Ok(()));
                        media::run_worker(&wc, &mut io, &rx, clock, &live, Some(rec))
                    }
                    Err(e) => {
                        let msg = format!("{e:#}");
                        let _ = ready_tx.send(Err(msg.clone()));
                        Err(std::io::Error::other(msg))
                    }
                },
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("media worker on core {core}: {e}"),
            Err(_) => bail!("media worker on core {core} exited at start"),
        }
        w.tx.push(tx);
        w.handles.push(h);
    }
    Ok(w)
}

/// Starts rawfwd (listening on `listen`, forwarding to `to`) pinned to `core`.
pub fn spawn_rawfwd(
    cfg: &RunConfig,
    listen: SocketAddr,
    to: SocketAddr,
) -> anyhow::Result<Spawned> {
    let child = Command::new(&cfg.rawfwd_bin)
        .args([
            "--backend",
            "mmsg",
            "--listen",
            &listen.to_string(),
            "--to",
            &to.to_string(),
        ])
        .args(["--core", &cfg.relay_core.to_string()])
        .args(["--seconds", &((cfg.duration_s + 30.0) as u64).to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", cfg.rawfwd_bin.display()))?;
    std::thread::sleep(Duration::from_millis(300));
    Ok(Spawned(child))
}

/// Runs one measurement.
pub fn run(cfg: &RunConfig) -> anyhow::Result<Report> {
    if !(cfg.duration_s > 0.0 && cfg.duration_s <= MAX_DURATION_S) {
        bail!("--duration must be in (0, {MAX_DURATION_S}] s");
    }
    if cfg.max_calls > MAX_CALLS || cfg.calls > MAX_CALLS {
        bail!("at most {MAX_CALLS} calls per run");
    }
    if cfg.cores.is_empty() {
        bail!("--cores needs at least one core");
    }
    if matches!(cfg.generator, Generator::AfXdp { .. }) {
        if cfg.cores.len() != 1 {
            bail!("--generator af_xdp runs one media worker (one AF_XDP socket on queue 0): give one --cores entry");
        }
        if !matches!(cfg.mode, Mode::Appliance(_)) {
            // Direct: frames to our own addresses would leave by the interface and not
            // come back; the ng relays and rawfwd listen on loopback.
            bail!("--generator af_xdp needs an appliance across --ifname (--target or --spawn)");
        }
    }
    if (cfg.srtp_caller || cfg.srtp_callee)
        && matches!(cfg.mode, Mode::Raw | Mode::Rtpengine | Mode::PortcullisNg)
    {
        bail!("--srtp needs SIP calls (the appliance or --against direct)");
    }
    if cfg.relay_addr.is_some() && !matches!(cfg.mode, Mode::Rtpengine | Mode::PortcullisNg) {
        bail!("--relay-addr names an ng relay: it goes with --against rtpengine or portcullis-ng");
    }
    if cfg.mode == Mode::Direct && cfg.srtp_caller != cfg.srtp_callee {
        bail!("--against direct: both sides are ours, so --srtp must be both or none");
    }
    // The signalling loop runs on the first generator core too, never on the relay's.
    if let Some(&c) = cfg.cores.first() {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
            bail!("cannot pin to core {c}");
        }
    }
    let clock = Clock::new();
    let live = Arc::new(Live::default());
    // One-way latency of the packets received in the current second (every worker
    // records into it; read and reset at each tick of the timeline).
    let mut interval_lat: SyncHistogram<u64> =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?.into();
    let workers = start_workers(cfg, clock, &live, &interval_lat)?;
    let mut relay_proc: Option<Spawned> = None;
    let mut ng: Option<NgClient> = None;
    let mut raw_listen: Option<SocketAddr> = None;
    match (&cfg.mode, cfg.relay_addr) {
        (Mode::Raw, _) => {
            let listen: SocketAddr = format!("127.0.0.1:{}", cfg.relay_port).parse()?;
            let sink = workers.addrs.first().map(|a| a.1).context("no worker")?;
            relay_proc = Some(spawn_rawfwd(cfg, listen, sink)?);
            raw_listen = Some(listen);
        }
        (Mode::Rtpengine | Mode::PortcullisNg, Some(addr)) => {
            crate::relay::wait_for_ping(addr, cfg.mode.name())?;
            ng = Some(NgClient::new(addr)?);
        }
        (Mode::Rtpengine, None) => {
            let (p, addr) = crate::relay::spawn_rtpengine(cfg)?;
            relay_proc = Some(p);
            ng = Some(NgClient::new(addr)?);
        }
        (Mode::PortcullisNg, None) => {
            let (p, addr) = crate::relay::spawn_media_node(cfg, &std::env::temp_dir())?;
            relay_proc = Some(p);
            ng = Some(NgClient::new(addr)?);
        }
        (Mode::Appliance(_) | Mode::Direct, _) => {}
    }
    let relay_pid = cfg
        .relay_pid
        .or_else(|| relay_proc.as_ref().map(|p| p.0.id()));
    let proc_start = relay_pid.and_then(proc_sample);
    let sip_mode = matches!(cfg.mode, Mode::Appliance(_) | Mode::Direct);
    let (uac_sock, uas_sock) = if sip_mode {
        let a = media::udp_socket(cfg.uac)?;
        let b = media::udp_socket(cfg.uas)?;
        a.set_nonblocking(true)?;
        b.set_nonblocking(true)?;
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    let hold_ns = (cfg.hold_s.unwrap_or(cfg.duration_s + 1.0) * 1e9) as u64;
    let target = match cfg.mode {
        Mode::Appliance(a) => a,
        _ => cfg.uas,
    };
    let mut pop = Population::new(SipConfig {
        target,
        uac_addr: cfg.uac,
        uas_addr: cfg.uas,
        media_a: workers.addrs.iter().map(|a| a.0).collect(),
        media_b: workers.addrs.iter().map(|a| a.1).collect(),
        hold_ns,
        refresh_ns: (cfg.refresh_s * 1e9) as u64,
        share_reinvite: cfg.share_reinvite,
        share_cancel: cfg.share_cancel,
        share_callee_bye: cfg.share_callee_bye,
        pt: cfg.pt,
        ptime_ms: cfg.ptime_ms,
        media: cfg.media,
        srtp_caller: cfg.srtp_caller,
        srtp_callee: cfg.srtp_callee,
        run: std::process::id(),
    })?;
    // Media-only calls: (end_ns, removed, deleted).
    let mut mcalls: Vec<(u64, bool, bool)> = Vec::new();
    let mut mfail: std::collections::BTreeMap<String, u64> = Default::default();
    let mut mup: u64 = 0;
    let nworkers = workers.tx.len();
    let send_media = |cmd: MediaCmd, w: usize| {
        if let Some(tx) = workers.tx.get(w % nworkers) {
            let _ = tx.send(cmd);
        }
    };

    let t0 = clock.ns();
    let end_ns = t0 + (cfg.duration_s * 1e9) as u64;
    let hard_end = end_ns + 40_000_000_000;
    let mut started: u64 = 0;
    let mut hung_up = false;
    let mut out: Vec<Out> = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut timeline: Vec<Tick> = Vec::new();
    let mut next_tick = t0 + 1_000_000_000;
    let (mut last_rx, mut last_lat, mut last_started) = (0u64, 0u64, 0u64);
    let mut peak_calls = 0u64;
    let mut rss_peak = proc_start.map(|p| p.rss_kib).unwrap_or(0);
    let mut last_cpu_us = proc_start.map(|p| p.cpu_us);
    loop {
        let now = clock.ns();
        let up = if sip_mode { pop.up } else { mup };
        peak_calls = peak_calls.max(up);
        if now >= hard_end || (now >= end_ns && hung_up && up == 0) {
            break;
        }
        // Start calls at the configured rate, up to the concurrency target.
        if now < end_ns {
            let due = ((now - t0) as f64 / 1e9 * cfg.cps) as u64;
            let mut budget = 256;
            while started < due
                && up_now(sip_mode, &pop, mup) < cfg.calls
                && started < cfg.max_calls
                && budget > 0
            {
                budget -= 1;
                started += 1;
                if sip_mode {
                    pop.start_call(now, &mut out);
                } else {
                    let idx = mcalls.len();
                    let hold = cfg.hold_s.map(|h| (h * 1e9) as u64).unwrap_or(u64::MAX / 4);
                    match start_media_call(cfg, idx, &workers.addrs, raw_listen, ng.as_mut()) {
                        Ok(specs) => {
                            for (w, s) in specs {
                                send_media(MediaCmd::Add(s), w);
                            }
                            mcalls.push((now.saturating_add(hold).min(end_ns), false, false));
                            mup += 1;
                        }
                        Err(e) => {
                            mcalls.push((0, true, true));
                            *mfail.entry(format!("setup: {e}")).or_default() += 1;
                        }
                    }
                }
            }
        } else if !hung_up {
            hung_up = true;
            pop.hang_up_all(now, &mut out);
        }
        if sip_mode {
            pop.poll_timers(now, 4096, &mut out);
            for (side, sock) in [(Side::Uac, &uac_sock), (Side::Uas, &uas_sock)] {
                let Some(sock) = sock else { continue };
                for _ in 0..512 {
                    match sock.recv_from(&mut buf) {
                        Ok((n, from)) => pop.handle(
                            clock.ns(),
                            side,
                            from,
                            buf.get(..n).unwrap_or(&[]),
                            &mut out,
                        ),
                        Err(_) => break,
                    }
                }
            }
            for o in out.drain(..) {
                match o {
                    Out::Send { side, to, bytes } => {
                        let s = if side == Side::Uac {
                            &uac_sock
                        } else {
                            &uas_sock
                        };
                        if let Some(s) = s {
                            let _ = s.send_to(&bytes, to);
                        }
                    }
                    Out::MediaAdd {
                        worker,
                        socket,
                        ssrc,
                        dest,
                        srtp,
                    } => send_media(
                        MediaCmd::Add(StreamSpec {
                            ssrc,
                            socket,
                            dest,
                            pt: cfg.pt,
                            srtp,
                        }),
                        worker,
                    ),
                    Out::MediaExpect { worker, ssrc, key } => {
                        send_media(MediaCmd::Expect { ssrc, key }, worker);
                    }
                    Out::MediaRemove { worker, ssrc } => send_media(MediaCmd::Remove(ssrc), worker),
                }
            }
        } else {
            for (idx, c) in mcalls.iter_mut().enumerate() {
                if !c.1 && now >= c.0 {
                    c.1 = true;
                    let (a, b) = ssrcs(idx);
                    send_media(MediaCmd::Remove(a), idx);
                    send_media(MediaCmd::Remove(b), idx);
                }
                if c.1 && !c.2 && now >= c.0 + 300_000_000 {
                    c.2 = true;
                    mup = mup.saturating_sub(1);
                    if let Some(ng) = ng.as_mut() {
                        if let Err(e) = ng.delete(&format!("lt{idx}"), "a") {
                            *mfail.entry(format!("delete: {e}")).or_default() += 1;
                        }
                    }
                }
            }
            if now >= end_ns {
                hung_up = true;
            }
        }
        if now >= next_tick {
            next_tick += 1_000_000_000;
            let rx = live.rx.load(Ordering::Relaxed);
            let tx = live.tx.load(Ordering::Relaxed);
            let lat = live.lat_sum_ns.load(Ordering::Relaxed);
            let drx = rx - last_rx;
            let failures = pop.stats.failed() + mfail.values().sum::<u64>();
            // Workers hand over what they recorded when they next record; one that
            // received nothing this second has nothing to hand over, so do not wait long.
            interval_lat.refresh_timeout(Duration::from_millis(20));
            let pct = |q: f64| {
                if interval_lat.is_empty() {
                    0.0
                } else {
                    interval_lat.value_at_quantile(q) as f64
                }
            };
            let (latency_p50_us, latency_p99_us) = (pct(0.5), pct(0.99));
            interval_lat.reset();
            let sample = relay_pid.and_then(proc_sample);
            let cpu_us_per_packet = match (sample, last_cpu_us) {
                (Some(s), Some(last)) if drx > 0 => {
                    s.cpu_us.saturating_sub(last) as f64 / drx as f64
                }
                _ => 0.0,
            };
            if let Some(s) = sample {
                last_cpu_us = Some(s.cpu_us);
                rss_peak = rss_peak.max(s.rss_kib);
            }
            let tick = Tick {
                t: (now - t0) as f64 / 1e9,
                calls: up_now(sip_mode, &pop, mup),
                cps: (started - last_started) as f64,
                pps: drx as f64,
                latency_us: if drx > 0 {
                    (lat - last_lat) as f64 / drx as f64 / 1000.0
                } else {
                    0.0
                },
                latency_p50_us,
                latency_p99_us,
                failures,
                loss: if tx > 0 {
                    1.0 - rx as f64 / tx as f64
                } else {
                    0.0
                },
                cpu_us_per_packet,
            };
            (last_rx, last_lat, last_started) = (rx, lat, started);
            if cfg.progress {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!(
                        "[{:>5.1}s] calls {:>6} cps {:>5.0} fail {:>4} pps {:>8.0} loss {:.3}% lat {:.0}us",
                        tick.t, tick.calls, tick.cps, tick.failures, tick.pps, tick.loss * 100.0, tick.latency_us
                    );
                }
            }
            timeline.push(tick);
        }
        // Wait for SIP traffic or the next 1 ms step.
        let mut fds: Vec<PollFd<'_>> = [&uac_sock, &uas_sock]
            .into_iter()
            .flatten()
            .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN))
            .collect();
        let mut wait = 1_000_000u64;
        if let Some(t) = pop.next_timer() {
            wait = wait.min(t.saturating_sub(clock.ns()));
        }
        if fds.is_empty() {
            std::thread::sleep(Duration::from_nanos(wait));
        } else {
            let _ = nix::poll::ppoll(
                &mut fds,
                Some(TimeSpec::from_duration(Duration::from_nanos(wait))),
                None,
            );
        }
    }
    let proc_end = relay_pid.and_then(proc_sample);
    for tx in &workers.tx {
        let _ = tx.send(MediaCmd::Stop);
    }
    let wall = (clock.ns() - t0) as f64 / 1e9;
    let mut sent: HashMap<u32, u64> = HashMap::new();
    let mut rx: HashMap<u32, StreamRx> = HashMap::new();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut rx_dropped = 0;
    for h in workers.handles {
        let r = h
            .join()
            .map_err(|_| anyhow::anyhow!("media worker panicked"))??;
        for (k, v) in r.sent {
            *sent.entry(k).or_default() += v.count;
        }
        // An SSRC is received by exactly one socket, hence one worker.
        rx.extend(r.rx);
        rx_dropped += r.rx_dropped;
        latency.add(&r.latency_us)?;
    }
    drop(relay_proc);
    let mut totals = Totals::default();
    let mut jitter = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut gap = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    for (ssrc, n) in &sent {
        let r = rx.get(ssrc);
        totals.add(*n, r);
        if let Some(r) = r {
            let _ = jitter.record(((r.jitter_ns / 1000.0) as u64).max(1));
            let _ = gap.record((r.max_gap_ns / 1000).max(1));
        }
    }
    let mut failures = pop.stats.failures.clone();
    failures.extend(mfail);
    let relay = match (relay_pid, proc_start, proc_end) {
        (Some(pid), Some(a), Some(b)) => {
            let cpu_us = b.cpu_us.saturating_sub(a.cpu_us);
            Some(RelayCost {
                pid,
                cpu_us,
                cpu_us_per_packet: if totals.received == 0 {
                    0.0
                } else {
                    cpu_us as f64 / totals.received as f64
                },
                cpu_us_per_call: cpu_us as f64 / started.max(1) as f64,
                rss_start_kib: a.rss_kib,
                rss_peak_kib: rss_peak.max(b.rss_kib),
                rss_bytes_per_call: (rss_peak.max(b.rss_kib).saturating_sub(a.rss_kib) * 1024)
                    as f64
                    / peak_calls.max(1) as f64,
            })
        }
        _ => None,
    };
    let (answered, completed) = if sip_mode {
        (pop.stats.answered, pop.stats.completed)
    } else {
        let ok = mcalls.iter().filter(|c| c.0 > 0).count() as u64;
        (ok, ok)
    };
    Ok(Report {
        mode: cfg.mode.name().to_string(),
        command: cfg.command.clone(),
        duration_s: wall,
        calls_started: started,
        calls_answered: answered,
        calls_completed: completed,
        peak_calls,
        failures,
        retransmissions: pop.stats.retransmissions,
        reinvites_ok: pop.stats.reinvites_ok,
        loss_ratio: totals.loss_ratio(),
        media: totals,
        send_errors: live.send_errors.load(Ordering::Relaxed),
        srtp_errors: live.srtp_errors.load(Ordering::Relaxed),
        srtp: match (cfg.srtp_caller, cfg.srtp_callee) {
            (true, true) => "both",
            (true, false) => "caller",
            (false, true) => "callee",
            (false, false) => "none",
        }
        .to_string(),
        ptime_ms: cfg.ptime_ms,
        packets_per_s: totals.received as f64 / wall.max(1e-9),
        setup_us: Percentiles::of(&pop.stats.setup_us),
        latency_us: Percentiles::of(&latency),
        jitter_us: Percentiles::of(&jitter),
        max_gap_us: Percentiles::of(&gap),
        relay,
        timeline,
        generator: cfg.generator.name().to_string(),
        generator_rx_dropped: rx_dropped,
    })
}

fn up_now(sip_mode: bool, pop: &Population, mup: u64) -> u64 {
    if sip_mode {
        pop.up
    } else {
        mup
    }
}

/// Sets up one media-only call; returns the streams to start, per worker.
fn start_media_call(
    cfg: &RunConfig,
    idx: usize,
    addrs: &[(SocketAddr, SocketAddr)],
    raw_listen: Option<SocketAddr>,
    ng: Option<&mut NgClient>,
) -> anyhow::Result<Vec<(usize, StreamSpec)>> {
    let w = idx % addrs.len().max(1);
    let (a_addr, b_addr) = *addrs.get(w).context("no worker")?;
    let (sa, sb) = ssrcs(idx);
    let (to_b, to_a) = match (raw_listen, ng) {
        // rawfwd forwards everything to one sink: both streams enter at its listen port.
        (Some(l), _) => (l, l),
        (None, Some(ng)) => {
            let call_id = format!("lt{idx}");
            let offer = ng.offer(
                &call_id,
                "a",
                &sdp_for(a_addr, cfg.pt, cfg.ptime_ms, 1, None),
            )?;
            let for_b = SessionDescription::parse(&offer)?
                .rtp_destination(0)
                .context("offer SDP has no RTP destination")?;
            let answer = ng.answer(
                &call_id,
                "a",
                "b",
                &sdp_for(b_addr, cfg.pt, cfg.ptime_ms, 1, None),
            )?;
            let for_a = SessionDescription::parse(&answer)?
                .rtp_destination(0)
                .context("answer SDP has no RTP destination")?;
            (for_a, for_b)
        }
        (None, None) => bail!("media-only call without a relay"),
    };
    let raw = raw_listen.is_some();
    Ok(vec![
        (
            w,
            StreamSpec {
                ssrc: sa,
                socket: 0,
                dest: to_b,
                pt: cfg.pt,
                srtp: None,
            },
        ),
        (
            w,
            StreamSpec {
                ssrc: sb,
                socket: if raw { 0 } else { 1 },
                dest: to_a,
                pt: cfg.pt,
                srtp: None,
            },
        ),
    ])
}

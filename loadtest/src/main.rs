//! `portcullis-loadtest`: SIP UAC + UAS populations and paced RTP through an appliance,
//! rtpengine or the raw forwarder, with hdrhistogram reports.
//!
//! ```text
//! portcullis-loadtest --target 127.0.0.1:5060 --calls 1000 --cps 100 --duration 30
//! portcullis-loadtest --spawn --config lt.toml --calls 20 --duration 3
//! portcullis-loadtest --against rtpengine --calls 500 --duration 20 --cores 0 --relay-core 1
//! portcullis-loadtest --against portcullis-ng --calls 500 --duration 20 --cores 0 --relay-core 1
//! portcullis-loadtest --against rtpengine --relay-addr 192.0.2.2:2223 --uac 192.0.2.1:5070
//! portcullis-loadtest --against raw --calls 25 --duration 2 --report r.json --svg r.svg
//! portcullis-loadtest compare --config lt.toml --calls 1000 --duration 20
//! portcullis-loadtest --netns --spawn --config wide.toml --calls 4500 --ptime 150
//! portcullis-loadtest --target 192.0.2.2:5060 --uac 192.0.2.1:5070 --uas 192.0.2.3:5080 \
//!     --generator af_xdp --ifname p0 --calls 1000 --ptime 2 --duration 20
//! ```
//! Everything is loopback-only and bounded by `--duration` (≤ 1 h) and `--max-calls`.
// `unsafe` only in the AF_XDP generator's UMEM and descriptor handling (`xsk`, `xdpgen`).
#![deny(unsafe_code)]
#![allow(clippy::print_stderr)]

mod chart;
mod media;
mod mmsg;
mod relay;
mod report;
mod run;
mod sip;
mod stats;
#[allow(unsafe_code)]
mod xdpgen;
#[allow(unsafe_code)]
mod xsk;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;

use run::{Generator, Mode, RunConfig, Spawned};

/// Command line (a leading `compare` runs raw, rtpengine, the Portcullis media node and
/// the appliance back to back).
#[derive(Debug, Clone, Parser)]
#[command(name = "portcullis-loadtest", version)]
struct Opts {
    /// SIP address of a running appliance.
    #[arg(long)]
    target: Option<SocketAddr>,
    /// Start the appliance ourselves (`portcullis run --config FILE`).
    #[arg(long)]
    spawn: bool,
    /// Appliance configuration for --spawn and compare.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Appliance binary (default: `portcullis` next to this executable).
    #[arg(long)]
    appliance_bin: Option<PathBuf>,
    /// SIP address of the appliance when spawned.
    #[arg(long, default_value = "127.0.0.1:5060")]
    appliance_sip: SocketAddr,
    /// Relay without SIP: `rtpengine`, `portcullis-ng` (a media node driven by ng, as
    /// rtpengine is) or `raw`; `direct` calls our own UAS.
    #[arg(long)]
    against: Option<String>,
    /// Target concurrent calls.
    #[arg(long, default_value_t = 100)]
    calls: u64,
    /// Bound on calls started in the run (default: 4 × --calls).
    #[arg(long)]
    max_calls: Option<u64>,
    /// Calls started per second.
    #[arg(long, default_value_t = 100.0)]
    cps: f64,
    /// Hold time in seconds (default: until the end of the run).
    #[arg(long)]
    hold: Option<f64>,
    /// Run length in seconds (calls still up are hung up then).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// ptime in ms.
    #[arg(long, default_value_t = 20)]
    ptime: u32,
    /// Codec: pcmu or pcma.
    #[arg(long, default_value = "pcmu")]
    codec: String,
    /// Share of calls that re-INVITE half-way.
    #[arg(long, default_value_t = 0.0)]
    reinvite_share: f64,
    /// Share of calls cancelled while ringing.
    #[arg(long, default_value_t = 0.0)]
    cancel_share: f64,
    /// Share of calls hung up by the callee.
    #[arg(long, default_value_t = 0.0)]
    callee_bye_share: f64,
    /// Session refresh (re-INVITE) interval in seconds, 0 for none.
    #[arg(long, default_value_t = 0.0)]
    refresh: f64,
    /// Signalling only (no RTP).
    #[arg(long)]
    no_media: bool,
    /// SDES-SRTP (`RTP/SAVP`, AES_CM_128_HMAC_SHA1_80) on the caller side, the callee
    /// side, or both (the appliance's trunks must match: `media = "srtp"`).
    #[arg(long, value_parser = ["none", "caller", "callee", "both"], default_value = "none")]
    srtp: String,
    /// Media packet I/O: `socket` (UDP sockets) or `af_xdp` (frames built here and sent
    /// and received through an AF_XDP socket on --ifname, which holds the --uac and --uas
    /// addresses; root; one --cores entry; IPv4).
    #[arg(long, value_parser = ["socket", "af_xdp"], default_value = "socket")]
    generator: String,
    /// Interface of the AF_XDP generator.
    #[arg(long)]
    ifname: Option<String>,
    /// Cores for media workers, comma separated (one worker each).
    #[arg(long, default_value = "0")]
    cores: String,
    /// Core for a relay we start (rtpengine, rawfwd, appliance via taskset).
    #[arg(long, default_value_t = 1)]
    relay_core: usize,
    /// UAC socket address (must match the appliance's inbound trunk).
    #[arg(long, default_value = "127.0.0.1:5070")]
    uac: SocketAddr,
    /// UAS socket address (the appliance's outbound trunk).
    #[arg(long, default_value = "127.0.0.1:5080")]
    uas: SocketAddr,
    /// Process whose CPU and RSS are accounted (default: the spawned relay).
    #[arg(long)]
    appliance_pid: Option<u32>,
    /// rawfwd binary (default: next to this executable).
    #[arg(long)]
    rawfwd_bin: Option<PathBuf>,
    /// rtpengine binary.
    #[arg(long, default_value = "rtpengine")]
    rtpengine_bin: PathBuf,
    /// ng port for rtpengine and the media node (its admin API takes the next port),
    /// listen port for rawfwd.
    #[arg(long, default_value_t = 22222)]
    relay_port: u16,
    /// ng address of an rtpengine or media node already running (with `--against
    /// rtpengine` or `portcullis-ng`): drive it instead of starting one, e.g. in another
    /// network namespace. Its CPU and RSS are accounted only with --appliance-pid.
    #[arg(long)]
    relay_addr: Option<SocketAddr>,
    /// Write the JSON report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write the charts here (SVG): the run's timeline, or every relay side by side
    /// with `compare`.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// No live progress line.
    #[arg(long)]
    quiet: bool,
    /// Run in a new network namespace (root): loopback only, and the kernel's ephemeral
    /// port range narrowed to 61000-65535 there, so media ranges up to 60999 are free.
    #[arg(long)]
    netns: bool,
    /// Seconds to wait for a spawned appliance to bind its ports and come up.
    #[arg(long, default_value_t = 1.5)]
    startup_wait: f64,
}

/// Longest ptime: 180 ms of G.711 is 1440 bytes, plus 12 (RTP) and 10 (SRTP tag).
const MAX_PTIME_MS: u32 = 180;

/// Ephemeral ports inside the namespace made by `--netns`.
const NETNS_EPHEMERAL: &str = "61000 65535";

/// Moves this process (still single-threaded) into a fresh network namespace with
/// loopback up and a narrow ephemeral port range; children (appliance, rtpengine,
/// rawfwd) inherit it, and it disappears with the last of them.
fn enter_netns() -> anyhow::Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .context("--netns: unshare(CLONE_NEWNET) needs root (CAP_SYS_ADMIN)")?;
    let st = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .context("--netns: running `ip link set lo up` (iproute2)")?;
    if !st.success() {
        bail!("--netns: `ip link set lo up` failed: {st}");
    }
    std::fs::write("/proc/sys/net/ipv4/ip_local_port_range", NETNS_EPHEMERAL)
        .context("--netns: narrowing net.ipv4.ip_local_port_range")?;
    Ok(())
}

fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

fn run_config(o: &Opts, mode: Mode) -> anyhow::Result<RunConfig> {
    let cores = o
        .cores
        .split(',')
        .map(|c| {
            c.trim()
                .parse::<usize>()
                .with_context(|| format!("--cores: {c:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let pt = match o.codec.to_ascii_lowercase().as_str() {
        "pcmu" => 0,
        "pcma" => 8,
        other => bail!("--codec {other}: pcmu or pcma"),
    };
    let shares = o.reinvite_share + o.cancel_share + o.callee_bye_share;
    if !(0.0..=1.0).contains(&shares) {
        bail!("the call behaviour shares must add up to at most 1");
    }
    if o.ptime == 0 || o.ptime > MAX_PTIME_MS {
        // 8 bytes per ms of G.711 plus the RTP header (and an SRTP tag) must fit a
        // 1500-byte datagram, the largest a relay forwards.
        bail!("--ptime must be 1..={MAX_PTIME_MS} ms (one G.711 packet per 1500-byte datagram)");
    }
    let generator = match (o.generator.as_str(), &o.ifname) {
        ("af_xdp", Some(ifname)) => Generator::AfXdp {
            ifname: ifname.clone(),
        },
        ("af_xdp", None) => {
            bail!("--generator af_xdp needs --ifname (the interface holding --uac and --uas)")
        }
        (_, Some(_)) => bail!("--ifname is for --generator af_xdp"),
        _ => Generator::Socket,
    };
    Ok(RunConfig {
        mode,
        generator,
        calls: o.calls,
        max_calls: o.max_calls.unwrap_or(o.calls.saturating_mul(4)),
        cps: o.cps,
        hold_s: o.hold,
        duration_s: o.duration,
        ptime_ms: o.ptime,
        pt,
        share_reinvite: o.reinvite_share,
        share_cancel: o.cancel_share,
        share_callee_bye: o.callee_bye_share,
        refresh_s: o.refresh,
        media: !o.no_media,
        srtp_caller: matches!(o.srtp.as_str(), "caller" | "both"),
        srtp_callee: matches!(o.srtp.as_str(), "callee" | "both"),
        cores,
        relay_core: o.relay_core,
        uac: o.uac,
        uas: o.uas,
        relay_pid: o.appliance_pid,
        rawfwd_bin: o
            .rawfwd_bin
            .clone()
            .unwrap_or_else(|| sibling("portcullis-rawfwd")),
        rtpengine_bin: o.rtpengine_bin.clone(),
        portcullis_bin: o
            .appliance_bin
            .clone()
            .unwrap_or_else(|| sibling("portcullis")),
        relay_port: o.relay_port,
        relay_addr: o.relay_addr,
        media_port_max: if o.netns { 60_999 } else { 32_767 },
        progress: !o.quiet,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    })
}

/// Starts the appliance pinned to the relay core and waits for it to come up.
fn spawn_appliance(o: &Opts) -> anyhow::Result<Spawned> {
    let config = o.config.as_ref().context("--spawn needs --config FILE")?;
    let bin = o
        .appliance_bin
        .clone()
        .unwrap_or_else(|| sibling("portcullis"));
    let child = Command::new("taskset")
        .args(["-c", &o.relay_core.to_string()])
        .arg(&bin)
        .arg("run")
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {} through taskset", bin.display()))?;
    let mut p = Spawned(child);
    std::thread::sleep(Duration::from_secs_f64(o.startup_wait.clamp(0.0, 120.0)));
    if let Some(status) = p.0.try_wait()? {
        bail!("appliance {} exited at start: {status}", bin.display());
    }
    Ok(p)
}

fn run_one(o: &Opts, mode_name: &str) -> anyhow::Result<report::Report> {
    let mut guard = None;
    let mode = match mode_name {
        "raw" => Mode::Raw,
        "rtpengine" => Mode::Rtpengine,
        "portcullis-ng" => Mode::PortcullisNg,
        "direct" => Mode::Direct,
        "appliance" => match (o.spawn || o.target.is_none(), o.target) {
            (true, _) => {
                guard = Some(spawn_appliance(o)?);
                Mode::Appliance(o.appliance_sip)
            }
            (false, Some(t)) => Mode::Appliance(t),
            (false, None) => bail!("--target or --spawn"),
        },
        other => bail!("--against {other}: rtpengine, portcullis-ng, raw or direct"),
    };
    let mut cfg = run_config(o, mode)?;
    if let Some(g) = &guard {
        cfg.relay_pid = cfg.relay_pid.or(Some(g.0.id()));
    }
    let r = run::run(&cfg)?;
    drop(guard);
    Ok(r)
}

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().collect();
    let compare = args.get(1).is_some_and(|a| a == "compare");
    if compare {
        args.remove(1);
    }
    let o = Opts::parse_from(args);
    if o.netns {
        enter_netns()?;
    }
    if compare {
        if o.relay_addr.is_some() {
            bail!("compare starts each relay itself: no --relay-addr");
        }
        let mut modes = vec!["raw", "rtpengine", "portcullis-ng"];
        if o.config.is_some() || o.target.is_some() {
            modes.push("appliance");
        }
        let mut rows = Vec::new();
        for m in modes {
            eprintln!("== {m}");
            match run_one(&o, m) {
                Ok(r) => rows.push(r),
                Err(e) => eprintln!("{m}: {e:#}"),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        println!(
            "{:<10} {:>7} {:>7} {:>10} {:>9} {:>9} {:>9} {:>12}",
            "relay", "calls", "fail", "pkts/s", "loss%", "p50 us", "p99 us", "cpu us/pkt"
        );
        for r in &rows {
            println!(
                "{:<10} {:>7} {:>7} {:>10.0} {:>9.4} {:>9} {:>9} {:>12}",
                r.mode,
                r.peak_calls,
                r.failures.values().sum::<u64>(),
                r.packets_per_s,
                r.loss_ratio * 100.0,
                r.latency_us.p50,
                r.latency_us.p99,
                r.relay
                    .map(|x| format!("{:.3}", x.cpu_us_per_packet))
                    .unwrap_or("-".into())
            );
        }
        if let Some(p) = &o.report {
            std::fs::write(p, serde_json::to_vec_pretty(&rows)?)?;
        }
        if let Some(p) = &o.svg {
            let svg = chart::compare_chart(&rows).map_err(anyhow::Error::msg)?;
            std::fs::write(p, svg).with_context(|| p.display().to_string())?;
        }
        return Ok(());
    }
    let mode = o.against.clone().unwrap_or_else(|| "appliance".into());
    let r = run_one(&o, &mode)?;
    print!("{}", r.text());
    if let Some(p) = &o.report {
        std::fs::write(p, serde_json::to_vec_pretty(&r)?)
            .with_context(|| p.display().to_string())?;
    }
    if let Some(p) = &o.svg {
        let svg = chart::run_chart(&r).map_err(anyhow::Error::msg)?;
        std::fs::write(p, svg).with_context(|| p.display().to_string())?;
    }
    if r.failures.values().sum::<u64>() > 0 {
        std::process::exit(1);
    }
    Ok(())
}

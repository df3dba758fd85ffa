//! `portcullis-rawfwd`: the raw baseline forwarder (no session logic).
//!
//! ```text
//! portcullis-rawfwd --backend mmsg|uring --listen 127.0.0.1:40000 --to 127.0.0.1:40001 \
//!                   [--core 1] [--seconds 10] [--legs N]
//! ```
//! With `--legs N` (N > 1) it forwards N legs instead of one socket: leg `i` receives on
//! `listen.port + 2i` and sends from `listen.port + 2i + 1` to `--to` (the relay's socket
//! layout, see `rawfwd::run_uring_multi`).
//! Prints `rx=… tx=… send_errors=… seconds=… pps=…` on exit.
#![allow(clippy::print_stderr)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_benches::rawfwd;

struct Args {
    backend: String,
    listen: SocketAddr,
    to: SocketAddr,
    core: Option<usize>,
    seconds: u64,
    legs: usize,
}

/// One socket, or N legs.
enum Layout {
    Single(rawfwd::Socket),
    Multi(Vec<rawfwd::Leg>),
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        backend: "uring".into(),
        listen: "127.0.0.1:40000".parse().map_err(|e| format!("{e}"))?,
        to: "127.0.0.1:40001".parse().map_err(|e| format!("{e}"))?,
        core: None,
        seconds: 10,
        legs: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--backend" => a.backend = v,
            "--listen" => a.listen = v.parse().map_err(|e| format!("--listen: {e}"))?,
            "--to" => a.to = v.parse().map_err(|e| format!("--to: {e}"))?,
            "--core" => a.core = Some(v.parse().map_err(|e| format!("--core: {e}"))?),
            "--seconds" => a.seconds = v.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--legs" => a.legs = v.parse().map_err(|e| format!("--legs: {e}"))?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("portcullis-rawfwd: {e}");
            std::process::exit(2);
        }
    };
    if let Some(c) = args.core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
            eprintln!("portcullis-rawfwd: could not pin to core {c}");
        }
    }
    let bound = if args.legs > 1 {
        rawfwd::bind_legs(args.listen.ip(), args.listen.port(), args.legs, args.to)
            .map(Layout::Multi)
    } else {
        rawfwd::bind(args.listen).map(Layout::Single)
    };
    let layout = match bound {
        Ok(l) => l,
        Err(e) => {
            eprintln!("portcullis-rawfwd: {e}");
            std::process::exit(1);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let secs = args.seconds;
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(secs));
        s2.store(true, Ordering::Relaxed);
    });
    let t0 = Instant::now();
    let r = match (args.backend.as_str(), &layout) {
        ("mmsg", Layout::Single(sock)) => rawfwd::run_mmsg(sock, args.to, &stop),
        ("uring" | "io_uring", Layout::Single(sock)) => rawfwd::run_uring(sock, args.to, &stop),
        ("mmsg", Layout::Multi(legs)) => rawfwd::run_mmsg_multi(legs, &stop),
        ("uring" | "io_uring", Layout::Multi(legs)) => rawfwd::run_uring_multi(legs, &stop),
        (other, _) => {
            eprintln!("portcullis-rawfwd: unknown backend {other} (mmsg|uring)");
            std::process::exit(2);
        }
    };
    match r {
        Ok(st) => {
            let el = t0.elapsed().as_secs_f64();
            println!(
                "rx={} tx={} send_errors={} seconds={:.2} pps={:.0}",
                st.rx_packets,
                st.tx_packets,
                st.send_errors,
                el,
                st.rx_packets as f64 / el.max(1e-9)
            );
        }
        Err(e) => {
            eprintln!("portcullis-rawfwd: {e}");
            std::process::exit(1);
        }
    }
}

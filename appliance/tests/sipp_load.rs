//! Interop: 1,000 calls at 100 calls/s, sipp UAC → portcullis → sipp UAS, all succeed,
//! one CDR each (normal clearing by the caller).

mod sipp_harness;

use std::time::{Duration, Instant};

use sipp_harness::*;

#[test]
fn thousand_calls_at_100_cps() {
    let _serial = serial();
    let p = Ports::for_test(1);
    let app = Appliance::start(&config(p, ROUTE_LEFT_RIGHT));
    let dir = app.dir.path().to_path_buf();
    let mut uas = start_uas(&dir, p, &["-sn", "uas", "-m", "1000"]);
    let target = sip_target(p);
    let started = Instant::now();
    let mut uac = start_uac(
        &dir,
        p,
        &[
            "-sn",
            "uac",
            &target,
            "-m",
            "1000",
            "-r",
            "100",
            "-trace_stat",
            "-fd",
            "1",
        ],
    );
    uac.wait_ok(Duration::from_secs(90), "sipp uac failed");
    let elapsed = started.elapsed();
    assert_uac_stats(&dir, 1000);
    uas.wait_ok(Duration::from_secs(30), "sipp uas failed");
    let cdrs = app.wait_cdrs(1000, Duration::from_secs(10));
    assert_eq!(cdrs.len(), 1000);
    for c in &cdrs {
        assert_eq!(end_kind(c), "normal_clearing", "{c}");
        assert_eq!(c["end_reason"]["by"], "caller", "{c}");
        assert_eq!(c["a_leg"]["trunk"], "left");
        assert_eq!(c["b_leg"]["trunk"], "right");
    }
    let cpu = cpu_seconds(app.child.id());
    note(&format!(
        "1000 calls in {elapsed:?} ({:.0} calls/s); portcullis CPU {cpu:.2} s user+system",
        1000.0 / elapsed.as_secs_f64()
    ));
}

/// utime + stime of a process, in seconds (`/proc/PID/stat` fields 14 and 15, at the
/// usual 100 ticks per second).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // rest[0] is field 3 (state): utime is field 14 → index 11, stime → 12.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks as f64 / 100.0
}

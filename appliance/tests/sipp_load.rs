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
    let mut uas = Sipp::start(
        "uas",
        &dir,
        &sipp_args(
            "127.0.0.1",
            p.right,
            p.sipp_media + 100,
            &["-sn", "uas", "-m", "1000"],
        ),
    );
    std::thread::sleep(Duration::from_millis(300));
    let target = format!("127.0.0.1:{}", p.sip);
    let started = Instant::now();
    let mut uac = Sipp::start(
        "uac",
        &dir,
        &sipp_args(
            "127.0.0.1",
            p.left,
            p.sipp_media,
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
        ),
    );
    let st = uac.wait(Duration::from_secs(90));
    let elapsed = started.elapsed();
    assert!(st.success(), "sipp uac failed ({st}):\n{}", uac.output());
    let stats = last_stats(&stat_file(&dir, "uac_"));
    assert_eq!(stats["SuccessfulCall(C)"], "1000", "{stats:?}");
    assert_eq!(stats["FailedCall(C)"], "0", "{stats:?}");
    let st = uas.wait(Duration::from_secs(30));
    assert!(st.success(), "sipp uas failed ({st}):\n{}", uas.output());
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

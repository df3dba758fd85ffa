//! Signalling farm: three appliances behind Kamailio's dispatcher
//! (`deploy/kamailio/dispatcher.cfg`), in network namespaces, with the load generator
//! calling through Kamailio's address (docs/scale-out.md, signalling farm).
//!
//! - SIGKILL of one appliance: only the calls it held fail; the dispatcher takes it out
//!   within its probe interval plus its answer timeout and sends it nothing more; calls
//!   on the others end normally.
//! - SIGTERM of one appliance: it answers OPTIONS and new INVITEs 503 (with its load),
//!   the dispatcher takes it out and retries its refused INVITEs elsewhere, its calls in
//!   progress end normally, then it exits 0: no call fails.
//! - Overload: from `overload_calls` live calls on, an appliance answers OPTIONS 503 and
//!   the dispatcher takes it out until it is back under; INVITEs over its `max_calls` are
//!   retried elsewhere: no call fails, it never holds more than `max_calls`.
//!
//! Needs root (network namespaces), `ip`, `kamailio`, `curl` and `sipsak`.

#![allow(clippy::print_stderr)]

mod common_farm;
mod sipp_harness;

use std::process::Command;
use std::time::{Duration, Instant};

use common_farm::*;
use sipp_harness::{end_kind, serial};

/// Waits (bounded) until `ok` holds, polling every 200 ms.
fn wait_for(farm: &Farm, within: Duration, what: &str, ok: impl Fn(&Farm) -> bool) {
    let deadline = Instant::now() + within;
    while !ok(farm) {
        assert!(Instant::now() < deadline, "{what} not within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// When Kamailio first took `uri` out of rotation (a failed probe, or an INVITE without
/// any answer), at `since` or later.
fn taken_out(events: &[Event], uri: &str, since: f64) -> Option<f64> {
    events.iter().find_map(|e| match e {
        Event::Down { uri: u, at } | Event::Silent { uri: u, at } if u == uri && *at >= since => {
            Some(*at)
        }
        _ => None,
    })
}

/// INVITEs Kamailio sent to `uri` (first tries and failovers) after `t`.
fn sent_to_after(events: &[Event], uri: &str, t: f64) -> Vec<Event> {
    events
        .iter()
        .filter(|e| match e {
            Event::Dispatch { to, at, .. } | Event::Failover { to, at, .. } => to == uri && *at > t,
            _ => false,
        })
        .cloned()
        .collect()
}

fn failures(report: &serde_json::Value) -> u64 {
    report["failures"].as_object().map_or(0, |m| {
        m.values().filter_map(serde_json::Value::as_u64).sum()
    })
}

/// Every CDR of `app` ended with the caller's BYE; returns how many there are.
fn all_normal(app: &App) -> usize {
    let cdrs = app.cdrs();
    for c in &cdrs {
        assert_eq!(end_kind(c), "normal_clearing", "{}: {c}", app.ns);
        assert_eq!(c["end_reason"]["by"], "caller", "{}: {c}", app.ns);
    }
    cdrs.len()
}

/// CDRs of `app` whose call was set up after `t` (s since the epoch).
fn set_up_after(app: &App, t: f64) -> usize {
    app.cdrs()
        .iter()
        .filter(|c| c["setup_at_ms"].as_f64().is_some_and(|ms| ms / 1000.0 > t))
        .count()
}

#[test]
fn killed_appliance_loses_only_its_calls_and_new_calls_move_to_the_others() {
    let _serial = serial();
    let mut farm = Farm::start("k", 3, |_| AppSettings::default());
    // 20 calls/s held 3 s: about 20 calls on each appliance at any time.
    farm.start_load(20, 3, 14);
    wait_for(
        &farm,
        Duration::from_secs(20),
        "calls on appliance 1",
        |f| f.apps[0].metric("portcullis_calls_active") >= 10.0,
    );
    let live = farm.apps[0].metric("portcullis_calls_active");
    let killed_at = epoch_now();
    farm.apps[0].signal("KILL");
    let victim = app_uri(1);

    wait_for(&farm, Duration::from_secs(30), "appliance 1 out", |f| {
        taken_out(&f.events(), &victim, killed_at).is_some()
    });
    let report = farm.wait_load(Duration::from_secs(90));
    let events = farm.events();
    let out_at = taken_out(&events, &victim, killed_at).unwrap_or_default();
    eprintln!(
        "appliance 1 killed with {live} calls; out of rotation {:.2} s later (probe every {PING_INTERVAL_S} s, answer timeout {FR_TIMER_MS} ms)",
        out_at - killed_at
    );

    // Nothing is sent to the dead appliance once it is out (1 s for log lines of
    // decisions taken just before).
    let late = sent_to_after(&events, &victim, out_at + 1.0);
    assert!(late.is_empty(), "INVITEs to the dead appliance: {late:?}");
    // INVITEs it never answered went to the others.
    for e in &events {
        if let Event::Failover { to, .. } = e {
            assert_ne!(to, &victim, "{e:?}");
        }
    }

    // Only the calls it held fail: each at most twice (caller side and callee side).
    let failed = failures(&report);
    let started = report["calls_started"].as_u64().unwrap_or(0);
    assert!(started >= 250, "{}", farm.load_output());
    assert!(
        failed >= 1,
        "the killed appliance held {live} calls: {report}"
    );
    assert!(
        failed as f64 <= 2.0 * (live + 2.0),
        "{failed} failures for {live} calls on the killed appliance:\n{}",
        farm.load_output()
    );
    // None of the others' calls is disturbed, and both took new calls after the kill.
    let mut survivors = 0;
    for app in &farm.apps[1..] {
        survivors += all_normal(app);
        assert!(
            set_up_after(app, out_at) > 0,
            "{} took no call after the kill",
            app.ns
        );
    }
    let completed = report["calls_completed"].as_u64().unwrap_or(0) as usize;
    assert!(
        survivors <= completed,
        "{survivors} calls ended on the others, {completed} completed"
    );
    assert!(
        completed - survivors <= farm.apps[0].cdrs().len() + 2,
        "completed calls not ended by an appliance: {completed} completed, {survivors} on the others, {} on the killed one",
        farm.apps[0].cdrs().len()
    );
}

#[test]
fn sigterm_drains_the_appliance_out_of_rotation_without_losing_a_call() {
    let _serial = serial();
    let mut farm = Farm::start("d", 3, |_| AppSettings {
        sip: "drain_timeout = \"20s\"\ndrain_notice = \"5s\"".into(),
        limits: String::new(),
    });
    farm.start_load(20, 3, 14);
    wait_for(
        &farm,
        Duration::from_secs(20),
        "calls on appliance 2",
        |f| f.apps[1].metric("portcullis_calls_active") >= 5.0,
    );
    let term_at = epoch_now();
    farm.apps[1].signal("TERM");
    let drained = app_uri(2);

    // Its OPTIONS answer now, as the dispatcher's probe sees it (from Kamailio's address).
    let probe = Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("{}-kam", farm.tag),
            "sipsak",
            "-vv",
            "-s",
        ])
        .arg(format!("sip:ping@{}:5060", app_ip(2)))
        .output()
        .expect("sipsak (Debian package sipsak)");
    let text = String::from_utf8_lossy(&probe.stdout);
    assert!(
        text.contains("SIP/2.0 503 Service Unavailable (draining)"),
        "{text}"
    );
    assert!(text.contains("Retry-After: "), "{text}");
    assert!(text.contains("X-Portcullis-Load: calls="), "{text}");

    wait_for(&farm, Duration::from_secs(20), "appliance 2 out", |f| {
        taken_out(&f.events(), &drained, term_at).is_some()
    });
    let out_at = taken_out(&farm.events(), &drained, term_at).unwrap_or_default();
    // Still draining (drain_notice): the 503s it answered are counted.
    let refused =
        farm.apps[1].metric(r#"portcullis_sip_options_unavailable_total{reason="draining"}"#);
    assert!(refused >= 1.0, "OPTIONS 503 while draining: {refused}");
    eprintln!(
        "appliance 2 out of rotation {:.2} s after SIGTERM",
        out_at - term_at
    );

    let st = farm.apps[1].wait_exit(Duration::from_secs(40));
    assert!(st.success(), "exit status {st}:\n{}", farm.apps[1].log());
    assert!(
        farm.apps[1].log().contains("drained: no call left"),
        "its calls ended by themselves:\n{}",
        farm.apps[1].log()
    );
    let report = farm.wait_load(Duration::from_secs(90));
    assert_eq!(failures(&report), 0, "{}", farm.load_output());
    assert!(
        report["calls_started"].as_u64() >= Some(250),
        "{}",
        farm.load_output()
    );

    let events = farm.events();
    let late = sent_to_after(&events, &drained, out_at + 1.0);
    assert!(
        late.is_empty(),
        "INVITEs to the drained appliance: {late:?}"
    );
    // Its calls in progress at SIGTERM ended normally during the drain.
    all_normal(&farm.apps[1]);
    let ended_in_drain = farm.apps[1]
        .cdrs()
        .iter()
        .filter(|c| {
            c["end_at_ms"]
                .as_f64()
                .is_some_and(|ms| ms / 1000.0 > term_at)
        })
        .count();
    assert!(
        ended_in_drain >= 5,
        "{ended_in_drain} calls ended during the drain"
    );
    for app in [&farm.apps[0], &farm.apps[2]] {
        all_normal(app);
        assert!(set_up_after(app, out_at) > 0, "{} took no new call", app.ns);
    }
}

#[test]
fn overloaded_appliance_leaves_rotation_until_it_is_under_its_threshold() {
    let _serial = serial();
    let mut farm = Farm::start("o", 3, |i| AppSettings {
        limits: if i == 1 {
            "max_calls = 8\noverload_calls = 4".into()
        } else {
            String::new()
        },
        ..AppSettings::default()
    });
    let start = epoch_now();
    farm.start_load(20, 3, 12);
    let report = farm.wait_load(Duration::from_secs(90));
    // INVITEs over its max_calls (503) were retried on the others.
    assert_eq!(failures(&report), 0, "{}", farm.load_output());
    let small = app_uri(1);
    let events = farm.events();
    let down = taken_out(&events, &small, start).expect("appliance 1 taken out at its threshold");
    let up = events
        .iter()
        .any(|e| matches!(e, Event::Up { uri, at } if *uri == small && *at > down));
    assert!(up, "appliance 1 back once under its threshold: {events:?}");
    let answered =
        farm.apps[0].metric(r#"portcullis_sip_options_unavailable_total{reason="overload"}"#);
    assert!(answered >= 1.0, "OPTIONS 503 for overload: {answered}");

    // It never held more than max_calls, and took fewer calls than the others.
    let cdrs = farm.apps[0].cdrs();
    let mut edges: Vec<(f64, i32)> = cdrs
        .iter()
        .flat_map(|c| {
            [
                (c["setup_at_ms"].as_f64().unwrap_or(0.0), 1),
                (c["end_at_ms"].as_f64().unwrap_or(0.0), -1),
            ]
        })
        .collect();
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let peak = edges
        .iter()
        .scan(0, |n, (_, d)| {
            *n += d;
            Some(*n)
        })
        .max()
        .unwrap_or(0);
    assert!(
        peak <= 8,
        "appliance 1 held {peak} calls at once (max_calls 8)"
    );
    let small_n = all_normal(&farm.apps[0]);
    for app in &farm.apps[1..] {
        let n = all_normal(app);
        assert!(
            n > small_n,
            "{}: {n} calls, the limited one {small_n}",
            app.ns
        );
    }
}

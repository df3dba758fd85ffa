//! No lost billing, with a real appliance and real sipp peers:
//! - `kill -9` with 50 answered calls up, then a restart: the CDR file holds one
//!   closed record per call, ended by restart at the last time the journal knew;
//! - a CDR file that stops draining (a FIFO nobody reads) makes new calls get `503`
//!   with Retry-After and the back-pressure metric rise, and once it drains every
//!   record of every call that was let in is there.

mod common_admin;
mod sipp_harness;

use std::fs::OpenOptions;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common_admin::sample;
use sipp_harness::*;

fn wall_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn metrics(p: Ports) -> String {
    ureq::get(&format!("http://127.0.0.1:{}/metrics", p.admin))
        .call()
        .unwrap_or_else(|e| panic!("metrics: {e}"))
        .into_string()
        .unwrap()
}

fn metric(p: Ports, name: &str) -> f64 {
    let text = metrics(p);
    sample(&text, name).unwrap_or_else(|| panic!("{name} not exported:\n{text}"))
}

/// Waits (bounded) until `f` holds; `what` names it in the failure.
fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The journal's entries.
fn journal(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("cdr.jsonl.journal"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn kill_9_with_answered_calls_leaves_one_restart_record_per_call() {
    const CALLS: usize = 50;
    let _serial = serial();
    // Tests 22 and 23: twice the media range, for 50 calls held at once.
    let p = Ports::for_test(22);
    let toml = config(p, ROUTE_LEFT_RIGHT).replace(
        &format!("port_max = {}", p.media_min + 255),
        &format!("port_max = {}", p.media_min + 511),
    );
    let mut app = Appliance::start(&toml);
    let dir = app.dir.path().to_path_buf();
    let uas_sc = scenario(&dir, "uas_wait_bye.xml");
    let uac_sc = scenario(&dir, "uac_wait_bye.xml");
    let n = CALLS.to_string();
    let _uas = start_uas(&dir, p, &["-sf", uas_sc.to_str().unwrap(), "-m", &n]);
    let target = sip_target(p);
    let uac = start_uac(
        &dir,
        p,
        &[
            "-sf",
            uac_sc.to_str().unwrap(),
            &target,
            "-m",
            &n,
            "-r",
            "25",
        ],
    );
    wait_for("every call answered", Duration::from_secs(60), || {
        app.log().matches("call answered").count() >= CALLS
    });
    // Each answered call is journalled; then a checkpoint follows the last answer.
    wait_for("every call journalled", Duration::from_secs(30), || {
        journal(&dir)
            .iter()
            .filter(|e| e.get("open").is_some())
            .count()
            >= CALLS
    });
    let last_answer = journal(&dir)
        .iter()
        .filter_map(|e| e["cdr"]["answer_at_ms"].as_u64())
        .max()
        .unwrap();
    wait_for(
        "a checkpoint after the answers",
        Duration::from_secs(30),
        || {
            journal(&dir)
                .iter()
                .any(|e| e["at"].as_u64().is_some_and(|at| at > last_answer))
        },
    );
    assert!(app.cdrs().is_empty(), "no call ended before the kill");
    let checkpoint = journal(&dir)
        .iter()
        .filter_map(|e| e["at"].as_u64())
        .max()
        .unwrap();
    app.child.kill().expect("kill -9");
    let st = app.child.wait().expect("wait");
    let killed_at = wall_ms();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(9),
        "{st}"
    );
    assert!(
        app.cdrs().is_empty(),
        "CDRs are written at the end of calls"
    );
    drop(uac);

    // Restart on the same files.
    let tmp = std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap());
    let config_path = app.config_path.clone();
    drop(app);
    let app = Appliance::start_in(tmp, config_path, true);
    let cdrs = app.cdrs();
    assert_eq!(cdrs.len(), CALLS, "one record per call");
    let mut a_ids: Vec<&str> = cdrs
        .iter()
        .map(|c| c["a_leg"]["call_id"].as_str().unwrap())
        .collect();
    a_ids.sort_unstable();
    a_ids.dedup();
    assert_eq!(a_ids.len(), CALLS, "distinct calls");
    for c in &cdrs {
        assert_eq!(end_kind(c), "restart", "{c}");
        assert_eq!(c["final_status"], 200, "{c}");
        assert_eq!(c["a_leg"]["trunk"], "left", "{c}");
        assert_eq!(c["b_leg"]["trunk"], "right", "{c}");
        assert_eq!(c["node"], "sipp-test", "{c}");
        let answer = c["answer_at_ms"].as_u64().expect("answered");
        let end = c["end_at_ms"].as_u64().unwrap();
        let setup = c["setup_at_ms"].as_u64().unwrap();
        assert!(setup <= answer, "{c}");
        // The last time known: the journal's last checkpoint, before the kill.
        assert!(
            end >= checkpoint && end >= answer,
            "{c} (checkpoint {checkpoint})"
        );
        assert!(end <= killed_at, "{c} (killed at {killed_at})");
    }
    assert_eq!(metric(p, "portcullis_cdr_recovered_total"), CALLS as f64);
    assert!(journal(app.dir.path()).is_empty(), "journal starts afresh");
    assert!(app.log().contains("ended by restart"), "{}", app.log());
}

#[test]
fn a_stalled_cdr_file_backpressures_new_calls_and_loses_nothing() {
    let _serial = serial();
    let p = Ports::for_test(24);
    let toml = config(p, ROUTE_LEFT_RIGHT).replace(
        "fsync = \"always\"",
        "fsync = \"always\"\nqueue_capacity = 16",
    );
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("cdr.jsonl");
    let st = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(st.success());
    // Held open read+write (never read): the appliance's open does not wait, and the
    // pipe fills once its buffer (64 KiB) is full.
    let holder = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let config_path = dir.path().join("portcullis.toml");
    std::fs::write(&config_path, toml).unwrap();
    let mut app = Appliance::start_in(dir, config_path, true);
    let dir = app.dir.path().to_path_buf();
    let target = sip_target(p);
    let uas = start_uas(&dir, p, &["-sn", "uas"]);
    let mut uac = start_uac(
        &dir,
        p,
        &[
            "-sn",
            "uac",
            &target,
            "-m",
            "400",
            "-r",
            "40",
            "-trace_stat",
            "-fd",
            "1",
            "-trace_msg",
        ],
    );
    let _ = uac.wait(Duration::from_secs(120));
    let stats = last_stats(&stat_file(&dir, "uac_"));
    let ok: u64 = stats["SuccessfulCall(C)"].parse().unwrap();
    let failed: u64 = stats["FailedCall(C)"].parse().unwrap();
    assert_eq!(ok + failed, 400, "{stats:?}");
    assert!(ok > 0 && failed > 0, "some calls in, then 503s: {stats:?}");
    note(&format!(
        "{ok} calls let in, {failed} refused while the CDR file stalled"
    ));
    assert_eq!(metric(p, "portcullis_cdr_backpressure"), 1.0);
    // The refused calls are the failed ones (a busy machine may fail one otherwise).
    let rejects = metric(p, "portcullis_cdr_backpressure_rejects_total");
    assert!(
        rejects >= 1.0 && rejects <= failed as f64,
        "{rejects} vs {failed}"
    );
    assert!(metric(p, "portcullis_cdr_queue_depth") >= 12.0);
    // The refusals are 503 with Retry-After.
    let msgs = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("uac_") && n.ends_with("_messages.log")
        })
        .expect("sipp message trace");
    let trace = std::fs::read_to_string(msgs).unwrap();
    let refusal = trace
        .split("SIP/2.0 503 Service Unavailable")
        .nth(1)
        .expect("a 503 in the trace");
    let headers = refusal.split("\r\n\r\n").next().unwrap_or(refusal);
    assert!(headers.contains("Retry-After:"), "{headers}");

    // Someone reads the file again: the writer catches up, nothing was dropped.
    let drained = dir.join("drained.jsonl");
    let mut cat = Command::new("cat")
        .arg(&fifo)
        .stdout(Stdio::from(std::fs::File::create(&drained).unwrap()))
        .spawn()
        .expect("cat");
    wait_for("writer caught up", Duration::from_secs(30), || {
        metric(p, "portcullis_cdr_backpressure") == 0.0
            && metric(p, "portcullis_cdr_queue_depth") == 0.0
    });
    // New calls are accepted again.
    std::fs::rename(stat_file(&dir, "uac_"), dir.join("first_run.csv")).unwrap();
    let mut uac2 = start_uac(
        &dir,
        p,
        &[
            "-sn",
            "uac",
            &target,
            "-m",
            "10",
            "-r",
            "10",
            "-trace_stat",
            "-fd",
            "1",
        ],
    );
    uac2.wait_ok(Duration::from_secs(60), "calls after the writer caught up");
    assert_uac_stats(&dir, 10);
    // Every call let in (routing began) has exactly one record.
    let let_in = metric(p, "portcullis_calls_started_total") as usize;
    assert!(let_in as u64 >= ok + 10, "{let_in} < {ok} + 10");
    app.signal("TERM");
    assert!(app.wait_exit(Duration::from_secs(30)).success());
    drop(holder);
    let st = cat.wait().expect("cat");
    assert!(st.success());
    drop(uas);
    let text = std::fs::read_to_string(&drained).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(records.len(), let_in, "one record per call let in");
    let mut ids: Vec<u64> = records
        .iter()
        .map(|r| r["call_id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), records.len(), "distinct calls");
}

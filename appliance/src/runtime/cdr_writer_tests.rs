use std::sync::{Condvar, Mutex, PoisonError};

use super::*;

fn config(path: PathBuf, fsync: FsyncPolicy, queue_capacity: usize) -> CdrConfig {
    CdrConfig {
        path,
        fsync,
        fsync_interval: Duration::from_secs(30),
        queue_capacity,
    }
}

/// Waits (bounded) until `f` holds.
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not after 20 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn every_line_is_written_before_finish_returns() {
    let dir = tempfile::tempdir().unwrap();
    for policy in [
        FsyncPolicy::Always,
        FsyncPolicy::Interval,
        FsyncPolicy::Never,
    ] {
        let path = dir.path().join(format!("sub/{policy:?}.jsonl"));
        let w = CdrWriter::start(&config(path.clone(), policy, 64), WallClock::system()).unwrap();
        let mut q = w.queue().unwrap();
        for i in 0..500 {
            q.record(i, format!("{{\"n\":{i}}}\n"));
            q.pump();
        }
        drop(q);
        let counters = w.counters().clone();
        w.finish();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 500, "{policy:?}");
        assert_eq!(text.lines().last(), Some("{\"n\":499}"));
        assert_eq!(counters.written.load(Ordering::Relaxed), 500);
        assert_eq!(counters.depth(), 0);
        if policy != FsyncPolicy::Never {
            assert!(counters.syncs.load(Ordering::Relaxed) >= 1);
        }
        // A clean stop leaves nothing to recover.
        let journal = cdr_journal::journal_path(&path);
        assert_eq!(std::fs::read_to_string(journal).unwrap(), "");
    }
}

/// A sink that blocks every write until opened, and keeps what it got.
#[derive(Clone, Default)]
struct GatedSink {
    open: Arc<(Mutex<bool>, Condvar)>,
    got: Arc<Mutex<Vec<u8>>>,
}

impl GatedSink {
    fn release(&self) {
        let (m, cv) = &*self.open;
        *m.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cv.notify_all();
    }
    fn text(&self) -> String {
        String::from_utf8(self.got.lock().unwrap().clone()).unwrap()
    }
}

impl CdrSink for GatedSink {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let (m, cv) = &*self.open;
        let mut open = m.lock().unwrap_or_else(PoisonError::into_inner);
        while !*open {
            open = cv.wait(open).unwrap_or_else(PoisonError::into_inner);
        }
        self.got.lock().unwrap().extend_from_slice(buf);
        Ok(())
    }
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_stalled_sink_raises_backpressure_and_loses_nothing() {
    const CAPACITY: usize = 16;
    const RECORDS: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let sink = GatedSink::default();
    let cfg = config(dir.path().join("cdr.jsonl"), FsyncPolicy::Always, CAPACITY);
    let w = CdrWriter::start_with(&cfg, WallClock::system(), sink.clone()).unwrap();
    let counters = w.counters().clone();
    let mut q = w.queue().unwrap();
    assert!(!q.pump());
    for i in 0..RECORDS {
        q.open(i, format!("{{\"call_id\":{i}}}\n"));
        q.record(i, format!("{{\"n\":{i}}}\n"));
        q.pump();
    }
    // The writer holds at most one batch; the channel is full; the rest waits.
    assert!(q.pump(), "writer behind");
    assert!(counters.behind.load(Ordering::Relaxed));
    assert!(counters.overflow.load(Ordering::Relaxed) > 0);
    assert!(q.depth() >= CAPACITY as u64, "depth {}", q.depth());
    assert!(sink.text().is_empty());
    sink.release();
    wait_for("queue drained", || !q.pump() && q.depth() == 0);
    assert!(!counters.behind.load(Ordering::Relaxed));
    assert_eq!(counters.overflow.load(Ordering::Relaxed), 0);
    drop(q);
    w.finish();
    let text = sink.text();
    let want: Vec<String> = (0..RECORDS).map(|i| format!("{{\"n\":{i}}}")).collect();
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        want,
        "every record, in order"
    );
    assert_eq!(counters.errors.load(Ordering::Relaxed), 0);
}

#[test]
fn the_overflow_is_handed_over_when_the_queue_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let sink = GatedSink::default();
    let cfg = config(dir.path().join("cdr.jsonl"), FsyncPolicy::Never, 4);
    let w = CdrWriter::start_with(&cfg, WallClock::system(), sink.clone()).unwrap();
    let mut q = w.queue().unwrap();
    for i in 0..50 {
        q.record(i, format!("{{\"n\":{i}}}\n"));
    }
    assert!(q.pump());
    let opener = sink.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        opener.release();
    });
    drop(q);
    w.finish();
    t.join().unwrap();
    assert_eq!(sink.text().lines().count(), 50);
}

#[test]
fn calls_open_at_a_crash_are_closed_at_the_next_start() {
    let live = tempfile::tempdir().unwrap();
    let path = live.path().join("cdr.jsonl");
    let wall = WallClock::manual(1_700_000_000_000);
    let cfg = config(path.clone(), FsyncPolicy::Always, 64);
    let w = CdrWriter::start(&cfg, wall.clone()).unwrap();
    let mut q = w.queue().unwrap();
    let rec = |call: u64, b: &str| {
        format!(
            "{{\"call_id\":{call},\"a_leg\":{{\"call_id\":\"a{call}\"}},\"b_leg\":{{\"call_id\":\"{b}\"}},\"answer_at_ms\":1700000000000,\"end_at_ms\":1700000000000,\"end_reason\":{{\"kind\":\"restart\"}},\"node\":\"n\"}}\n"
        )
    };
    for call in 1..=3 {
        q.open(call, rec(call, "b"));
    }
    // Call 2 ends normally.
    q.record(2, rec(2, "b").replace("restart", "normal_clearing"));
    q.pump();
    let journal = cdr_journal::journal_path(&path);
    wait_for("journal written", || {
        std::fs::read_to_string(&journal).is_ok_and(|t| t.contains("\"close\":2"))
    });
    // The clock moves on; a checkpoint records it.
    wall.set_ms(1_700_000_042_000);
    wait_for("checkpoint", || {
        std::fs::read_to_string(&journal).is_ok_and(|t| t.contains("1700000042000"))
    });
    // The process dies here: its files, as they are, are what the next start finds.
    let next = tempfile::tempdir().unwrap();
    let path2 = next.path().join("cdr.jsonl");
    std::fs::copy(&path, &path2).unwrap();
    std::fs::copy(&journal, cdr_journal::journal_path(&path2)).unwrap();
    let w2 = CdrWriter::start(&config(path2.clone(), FsyncPolicy::Always, 64), wall).unwrap();
    assert_eq!(w2.counters().recovered.load(Ordering::Relaxed), 2);
    w2.finish();
    let text = std::fs::read_to_string(&path2).unwrap();
    let recs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 3, "{text}");
    assert_eq!(recs[0]["end_reason"]["kind"], "normal_clearing");
    for (r, call) in recs[1..].iter().zip([1, 3]) {
        assert_eq!(r["call_id"], call);
        assert_eq!(r["end_reason"]["kind"], "restart");
        assert_eq!(r["end_at_ms"], 1_700_000_042_000_u64);
    }
    assert_eq!(
        std::fs::read_to_string(cdr_journal::journal_path(&path2)).unwrap(),
        "",
        "the journal starts afresh"
    );
    drop(q);
    w.finish();
}

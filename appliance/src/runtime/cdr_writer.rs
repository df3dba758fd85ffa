//! The CDR writer: one JSON line per call appended to `[cdr] path`, on its own
//! thread so the engine never waits on the disk.
//!
//! Lines arriving together are written as one batch, then made durable according
//! to the fsync policy (`always`: `fdatasync` after every batch; `interval`: at most
//! every `fsync_interval`, and always before exit; `never`: left to the kernel).
//! Invariant: every line handed to [`CdrWriter::send`] before [`CdrWriter::finish`]
//! is written and synced before `finish` returns (SIGTERM loses none).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{CdrConfig, FsyncPolicy};

/// Lines written per batch at most (work budget).
const BATCH: usize = 1024;

/// Counters of the writer.
#[derive(Debug, Default)]
pub struct CdrCounters {
    /// Lines written.
    pub written: AtomicU64,
    /// `fdatasync` calls.
    pub syncs: AtomicU64,
    /// Write or sync failures.
    pub errors: AtomicU64,
}

/// Handle of the writer thread.
#[derive(Debug)]
pub struct CdrWriter {
    tx: Option<Sender<String>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<CdrCounters>,
    path: PathBuf,
}

impl CdrWriter {
    /// Opens (creating, appending) the file and starts the thread.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn start(cfg: &CdrConfig) -> std::io::Result<Self> {
        let file = open(&cfg.path)?;
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(CdrCounters::default());
        let c = counters.clone();
        let policy = cfg.fsync;
        let interval = cfg.fsync_interval;
        let path = cfg.path.clone();
        let thread = std::thread::Builder::new()
            .name("cdr-writer".into())
            .spawn(move || writer_loop(file, &rx, policy, interval, &c))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            counters,
            path,
        })
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Counters.
    pub fn counters(&self) -> &Arc<CdrCounters> {
        &self.counters
    }

    /// A sender for lines (each newline-terminated).
    pub fn sender(&self) -> Option<Sender<String>> {
        self.tx.clone()
    }

    /// Queues one line.
    pub fn send(&self, line: String) {
        if let Some(tx) = &self.tx {
            if tx.send(line).is_err() {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Closes the queue and waits until every queued line is written and synced.
    /// Other clones of [`Self::sender`] must be dropped first.
    pub fn finish(mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("CDR writer thread panicked");
            }
        }
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

fn writer_loop(
    mut file: File,
    rx: &Receiver<String>,
    policy: FsyncPolicy,
    interval: Duration,
    c: &CdrCounters,
) {
    let mut dirty = false;
    let mut last_sync = Instant::now();
    let mut buf = String::new();
    loop {
        let wait = if dirty && policy == FsyncPolicy::Interval {
            interval.saturating_sub(last_sync.elapsed())
        } else {
            Duration::from_secs(3600)
        };
        let first = match rx.recv_timeout(wait) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut n = 0u64;
        if let Some(line) = first {
            buf.push_str(&line);
            n += 1;
            while n < BATCH as u64 {
                match rx.try_recv() {
                    Ok(l) => {
                        buf.push_str(&l);
                        n += 1;
                    }
                    Err(_) => break,
                }
            }
        }
        if n > 0 {
            write_batch(&mut file, &mut buf, n, c);
            dirty = true;
        }
        let due = match policy {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval => last_sync.elapsed() >= interval,
            FsyncPolicy::Never => false,
        };
        if dirty && due {
            sync(&file, c);
            dirty = false;
            last_sync = Instant::now();
        }
    }
    // Queue closed: everything was received; make it durable whatever the policy.
    if dirty || policy != FsyncPolicy::Never {
        sync(&file, c);
    }
}

fn write_batch(file: &mut File, buf: &mut String, n: u64, c: &CdrCounters) {
    match file.write_all(buf.as_bytes()) {
        Ok(()) => {
            c.written.fetch_add(n, Ordering::Relaxed);
        }
        Err(e) => {
            c.errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, lines = n, "CDR write failed");
        }
    }
    buf.clear();
}

fn sync(file: &File, c: &CdrCounters) {
    match file.sync_data() {
        Ok(()) => {
            c.syncs.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            c.errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "CDR fdatasync failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_written_before_finish_returns() {
        let dir = tempfile::tempdir().unwrap();
        for policy in [
            FsyncPolicy::Always,
            FsyncPolicy::Interval,
            FsyncPolicy::Never,
        ] {
            let path = dir.path().join(format!("sub/{policy:?}.jsonl"));
            let w = CdrWriter::start(&CdrConfig {
                path: path.clone(),
                fsync: policy,
                fsync_interval: Duration::from_secs(30),
            })
            .unwrap();
            for i in 0..500 {
                w.send(format!("{{\"n\":{i}}}\n"));
            }
            let counters = w.counters().clone();
            w.finish();
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(text.lines().count(), 500, "{policy:?}");
            assert_eq!(text.lines().last(), Some("{\"n\":499}"));
            assert_eq!(counters.written.load(Ordering::Relaxed), 500);
            if policy != FsyncPolicy::Never {
                assert!(counters.syncs.load(Ordering::Relaxed) >= 1);
            }
        }
    }
}

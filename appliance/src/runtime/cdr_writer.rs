//! The CDR writer: one JSON line per call appended to `[cdr] path`, on its own
//! thread so the engine never waits on the disk, with the journal of answered calls
//! beside it (see [`super::cdr_journal`]).
//!
//! Lines arriving together are written as one batch, then made durable according
//! to the fsync policy (`always`: `fdatasync` after every batch; `interval`: at most
//! every `fsync_interval`, and always before exit; `never`: left to the kernel).
//! The journal entries of the batch follow the CDR lines, under the same policy.
//!
//! Back-pressure, never loss: the engine task reaches the writer through a
//! [`CdrQueue`], a bounded channel of `[cdr] queue_capacity` entries. A record that
//! finds the channel full waits in the queue's overflow (bounded by the live calls:
//! each produces a handful of entries at most) and is moved on at the engine's next
//! turn. While the entries waiting reach three quarters of the capacity the writer
//! is *behind*: the engine refuses new calls with `503` and Retry-After (counted),
//! until they are down to a quarter. No record is ever dropped.
//!
//! Invariant: every entry handed to a [`CdrQueue`] before [`CdrWriter::finish`] is
//! written and synced before `finish` returns (SIGTERM loses none).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::cdr_journal::{self, Journal, JournalOp, CHECKPOINT};
use super::cdr_unconfirmed;
use super::clock::WallClock;
use crate::config::{CdrConfig, FsyncPolicy};

/// Entries written per batch at most (work budget).
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
    /// Entries put on the channel.
    pub enqueued: AtomicU64,
    /// Entries taken off the channel by the writer.
    pub dequeued: AtomicU64,
    /// Entries waiting in the queue's overflow.
    pub overflow: AtomicU64,
    /// Whether the writer is behind (new calls refused).
    pub behind: AtomicBool,
    /// Records of calls cut by a stop, written at start as ended by restart.
    pub recovered: AtomicU64,
}

impl CdrCounters {
    /// Entries waiting for the writer (channel and overflow).
    pub fn depth(&self) -> u64 {
        let queued = self
            .enqueued
            .load(Ordering::Relaxed)
            .saturating_sub(self.dequeued.load(Ordering::Relaxed));
        queued + self.overflow.load(Ordering::Relaxed)
    }
}

/// What the engine task hands the writer.
#[derive(Debug)]
pub enum CdrMsg {
    /// Call answered: its record as journalled (see [`super::cdr_journal`]).
    Open {
        /// Engine call id.
        call: u64,
        /// The record line.
        line: String,
    },
    /// A call's (or a transfer segment's) record, newline-terminated.
    Record {
        /// Engine call id.
        call: u64,
        /// The record line.
        line: String,
    },
    /// Records of calls an earlier run left open, settled late
    /// ([`super::cdr_unconfirmed`]): written and synced at once, then `done` is told
    /// whether they are durable.
    Recovered {
        /// The record lines (newline-terminated).
        lines: Vec<String>,
        done: tokio::sync::oneshot::Sender<bool>,
    },
}

/// Where CDR lines go: the file, or a stand-in in tests.
pub trait CdrSink: Send + 'static {
    /// Writes all of `buf`.
    ///
    /// # Errors
    /// The write failed.
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()>;
    /// Makes what was written durable.
    ///
    /// # Errors
    /// The sync failed.
    fn sync(&mut self) -> std::io::Result<()>;
}

/// The CDR file; a path that is not a regular file (a FIFO read by a collector) is
/// written but never synced.
#[derive(Debug)]
pub struct FileSink {
    file: File,
    regular: bool,
}

impl FileSink {
    /// Opens (creating the directories and the file, appending) `path`.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let regular = file.metadata()?.is_file();
        Ok(Self { file, regular })
    }
}

impl CdrSink for FileSink {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.file.write_all(buf)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        if self.regular {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

/// Handle of the writer thread.
#[derive(Debug)]
pub struct CdrWriter {
    tx: Option<SyncSender<CdrMsg>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<CdrCounters>,
    path: PathBuf,
    capacity: usize,
}

impl CdrWriter {
    /// Closes the calls the journal left open (see [`super::cdr_journal`]), opens
    /// the file and starts the thread; checkpoints read `wall`.
    ///
    /// # Errors
    /// The file or the journal cannot be read, written or synced.
    pub fn start(cfg: &CdrConfig, wall: WallClock) -> std::io::Result<Self> {
        let sink = FileSink::open(&cfg.path)?;
        Self::start_with(cfg, wall, sink)
    }

    /// [`Self::start`] writing the CDR lines to `sink` (the journal is still
    /// `[cdr] path` + `.journal`).
    ///
    /// # Errors
    /// As [`Self::start`].
    pub fn start_with<S: CdrSink>(
        cfg: &CdrConfig,
        wall: WallClock,
        sink: S,
    ) -> std::io::Result<Self> {
        Self::start_inner(cfg, wall, sink, Some(&std::collections::HashSet::new()))
    }

    /// [`Self::start`] whose journal recovery leaves out the calls an active/standby
    /// pair carried on (their legs' Call-IDs, see `crate::ha::journal_taken_over`);
    /// `None`: Redis could not say, the calls left open were deferred
    /// ([`super::cdr_unconfirmed`]) and nothing is recovered now.
    ///
    /// # Errors
    /// As [`Self::start`].
    pub fn start_except(
        cfg: &CdrConfig,
        wall: WallClock,
        taken_over: Option<&std::collections::HashSet<(String, String)>>,
    ) -> std::io::Result<Self> {
        let sink = FileSink::open(&cfg.path)?;
        Self::start_inner(cfg, wall, sink, taken_over)
    }

    fn start_inner<S: CdrSink>(
        cfg: &CdrConfig,
        wall: WallClock,
        mut sink: S,
        taken_over: Option<&std::collections::HashSet<(String, String)>>,
    ) -> std::io::Result<Self> {
        let durable = cfg.fsync != FsyncPolicy::Never;
        let counters = Arc::new(CdrCounters::default());
        let jpath = cdr_journal::journal_path(&cfg.path);
        let upath = cdr_unconfirmed::unconfirmed_path(&cfg.path);
        let none = std::collections::HashSet::new();
        // Deferred: the journal's open calls moved to the unconfirmed file, which waits
        // for Redis; otherwise both are settled now.
        let files: &[&Path] = match taken_over {
            Some(_) => &[&jpath, &upath],
            None => &[&jpath],
        };
        let rec = cdr_journal::recover_files(files, &cfg.path, taken_over.unwrap_or(&none))?;
        if rec.bad_lines > 0 {
            tracing::warn!(
                journal = %jpath.display(),
                lines = rec.bad_lines,
                "CDR journal lines unreadable (cut by the stop) skipped"
            );
        }
        if !rec.lines.is_empty() {
            sink.write_all(rec.lines.concat().as_bytes())?;
            if durable {
                sink.sync()?;
            }
            let n = rec.lines.len() as u64;
            counters.recovered.store(n, Ordering::Relaxed);
            counters.written.store(n, Ordering::Relaxed);
            tracing::warn!(
                calls = n,
                already_written = rec.already_written,
                "records of calls cut by the last stop written, ended by restart"
            );
        }
        if taken_over.is_some() {
            // Its calls have their records (synced above) or were carried on.
            cdr_unconfirmed::remove(&upath)?;
        }
        let journal = Journal::create(&jpath, durable)?;
        let capacity = cfg.queue_capacity.max(1);
        let (tx, rx) = mpsc::sync_channel(capacity);
        let w = WriterLoop {
            sink,
            journal,
            policy: cfg.fsync,
            interval: cfg.fsync_interval,
            c: counters.clone(),
            wall,
        };
        let thread = std::thread::Builder::new()
            .name("cdr-writer".into())
            .spawn(move || w.run(&rx))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            counters,
            path: cfg.path.clone(),
            capacity,
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

    /// The queue the engine task feeds (see the module docs).
    pub fn queue(&self) -> Option<CdrQueue> {
        let tx = self.tx.clone()?;
        Some(CdrQueue {
            tx,
            overflow: VecDeque::new(),
            counters: self.counters.clone(),
            high: (self.capacity * 3 / 4).max(1),
            low: self.capacity / 4,
            behind: false,
        })
    }

    /// Closes the queue and waits until every queued entry is written and synced.
    /// Every [`CdrQueue`] must be dropped first.
    pub fn finish(mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("CDR writer thread panicked");
            }
        }
    }
}

/// The engine task's end of the writer (see the module docs): never blocks, never
/// drops an entry.
#[derive(Debug)]
pub struct CdrQueue {
    tx: SyncSender<CdrMsg>,
    overflow: VecDeque<CdrMsg>,
    counters: Arc<CdrCounters>,
    high: usize,
    low: usize,
    behind: bool,
}

impl CdrQueue {
    /// Journals answered call `call` (its record as of the answer).
    pub fn open(&mut self, call: u64, line: String) {
        self.push(CdrMsg::Open { call, line });
    }

    /// Queues the record of call `call`.
    pub fn record(&mut self, call: u64, line: String) {
        self.push(CdrMsg::Record { call, line });
    }

    /// Queues records settled late (see [`CdrMsg::Recovered`]).
    pub fn recovered(&mut self, lines: Vec<String>, done: tokio::sync::oneshot::Sender<bool>) {
        self.push(CdrMsg::Recovered { lines, done });
    }

    fn push(&mut self, m: CdrMsg) {
        if self.overflow.is_empty() {
            match self.tx.try_send(m) {
                Ok(()) => {
                    self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
                }
                Err(TrySendError::Full(m)) => self.overflow.push_back(m),
                Err(TrySendError::Disconnected(_)) => self.gone(1),
            }
        } else {
            self.overflow.push_back(m);
        }
        self.note_overflow();
    }

    /// Moves waiting entries on to the writer and returns whether it is behind.
    pub fn pump(&mut self) -> bool {
        while let Some(m) = self.overflow.pop_front() {
            match self.tx.try_send(m) {
                Ok(()) => {
                    self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
                }
                Err(TrySendError::Full(m)) => {
                    self.overflow.push_front(m);
                    break;
                }
                Err(TrySendError::Disconnected(_)) => {
                    let n = self.overflow.len() + 1;
                    self.overflow.clear();
                    self.gone(n);
                }
            }
        }
        self.note_overflow();
        let depth = usize::try_from(self.counters.depth()).unwrap_or(usize::MAX);
        if self.behind && depth <= self.low {
            self.behind = false;
        } else if !self.behind && depth >= self.high {
            self.behind = true;
        }
        self.counters.behind.store(self.behind, Ordering::Relaxed);
        self.behind
    }

    /// Entries waiting for the writer.
    pub fn depth(&self) -> u64 {
        self.counters.depth()
    }

    fn note_overflow(&self) {
        self.counters
            .overflow
            .store(self.overflow.len() as u64, Ordering::Relaxed);
    }

    fn gone(&self, n: usize) {
        self.counters.errors.fetch_add(n as u64, Ordering::Relaxed);
        tracing::error!(entries = n, "CDR writer gone; records lost");
    }
}

impl Drop for CdrQueue {
    /// Hands the overflow over, waiting for room: at the end of the engine task,
    /// so that [`CdrWriter::finish`] finds every record.
    fn drop(&mut self) {
        let n = self.overflow.len();
        for m in self.overflow.drain(..) {
            if self.tx.send(m).is_err() {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
            } else {
                self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
            }
        }
        if n > 0 {
            self.counters.overflow.store(0, Ordering::Relaxed);
        }
    }
}

struct WriterLoop<S> {
    sink: S,
    journal: Journal,
    policy: FsyncPolicy,
    interval: Duration,
    c: Arc<CdrCounters>,
    wall: WallClock,
}

impl<S: CdrSink> WriterLoop<S> {
    fn run(mut self, rx: &Receiver<CdrMsg>) {
        let mut dirty = false;
        let mut last_sync = Instant::now();
        let mut last_checkpoint = Instant::now();
        let mut buf = String::new();
        let mut ops = Vec::new();
        loop {
            let mut wait = Duration::from_secs(3600);
            if (dirty || self.journal.is_dirty()) && self.policy == FsyncPolicy::Interval {
                wait = wait.min(self.interval.saturating_sub(last_sync.elapsed()));
            }
            if self.journal.has_open() {
                wait = wait.min(CHECKPOINT.saturating_sub(last_checkpoint.elapsed()));
            }
            let first = match rx.recv_timeout(wait) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut lines = 0u64;
            if let Some(m) = first {
                self.take(m, &mut buf, &mut lines, &mut ops);
                for _ in 1..BATCH {
                    match rx.try_recv() {
                        Ok(m) => self.take(m, &mut buf, &mut lines, &mut ops),
                        Err(_) => break,
                    }
                }
            }
            let written = lines == 0 || self.write_batch(&mut buf, lines);
            dirty |= lines > 0;
            let due = match self.policy {
                FsyncPolicy::Always => true,
                FsyncPolicy::Interval => last_sync.elapsed() >= self.interval,
                FsyncPolicy::Never => false,
            };
            let mut synced = false;
            if dirty && due {
                self.sync_sink();
                dirty = false;
                synced = true;
            }
            let now_ms = self.wall.now_ms();
            self.journal.apply(ops.drain(..), written, now_ms);
            if self.journal.has_open() && last_checkpoint.elapsed() >= CHECKPOINT {
                self.journal.checkpoint(now_ms);
                last_checkpoint = Instant::now();
            }
            synced |= self.journal_write(due);
            if synced {
                last_sync = Instant::now();
            }
            if self.journal.compaction_due() {
                self.compact(now_ms);
            }
        }
        // Queue closed: everything was received; make it durable whatever the policy.
        if dirty || self.policy != FsyncPolicy::Never {
            self.sync_sink();
        }
        let _ = self.journal_write(self.policy != FsyncPolicy::Never);
        if !self.journal.has_open() {
            // Clean stop: nothing for the next start to close.
            self.compact(self.wall.now_ms());
        }
    }

    fn take(&mut self, m: CdrMsg, buf: &mut String, lines: &mut u64, ops: &mut Vec<JournalOp>) {
        self.c.dequeued.fetch_add(1, Ordering::Relaxed);
        match m {
            CdrMsg::Recovered { lines: recs, done } => {
                let n = recs.len() as u64;
                let mut text = recs.concat();
                let ok = self.write_batch(&mut text, n) && self.sync_sink();
                self.c.recovered.fetch_add(n, Ordering::Relaxed);
                let _ = done.send(ok);
            }
            CdrMsg::Record { call, line } => {
                buf.push_str(&line);
                *lines += 1;
                ops.push(JournalOp::Close(call));
            }
            CdrMsg::Open { call, line } => ops.push(JournalOp::Open(call, line)),
        }
    }

    fn write_batch(&mut self, buf: &mut String, n: u64) -> bool {
        let ok = match self.sink.write_all(buf.as_bytes()) {
            Ok(()) => {
                self.c.written.fetch_add(n, Ordering::Relaxed);
                true
            }
            Err(e) => {
                self.c.errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, lines = n, "CDR write failed");
                false
            }
        };
        buf.clear();
        ok
    }

    /// Syncs the CDR file; whether it worked.
    fn sync_sink(&mut self) -> bool {
        match self.sink.sync() {
            Ok(()) => {
                self.c.syncs.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                self.c.errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "CDR fdatasync failed");
                false
            }
        }
    }

    /// Writes the journal's queued lines, syncing when `sync`; returns whether it synced.
    fn journal_write(&mut self, sync: bool) -> bool {
        let res = self
            .journal
            .write()
            .and_then(|()| if sync { self.journal.sync() } else { Ok(false) });
        match res {
            Ok(synced) => {
                if synced {
                    self.c.syncs.fetch_add(1, Ordering::Relaxed);
                }
                synced
            }
            Err(e) => {
                self.c.errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "CDR journal write failed");
                false
            }
        }
    }

    fn compact(&mut self, now_ms: u64) {
        if let Err(e) = self
            .journal
            .compact(now_ms, self.policy != FsyncPolicy::Never)
        {
            self.c.errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "CDR journal compaction failed");
        }
    }
}

#[cfg(test)]
#[path = "cdr_writer_tests.rs"]
mod tests;

//! The CDR journal: the record of every answered call, written when it is answered,
//! so that a call cut by a crash (`kill -9`, power loss) still gets its record.
//!
//! The journal sits next to the CDR file (`[cdr] path` + `.journal`) and holds one
//! JSON object per line:
//!
//! - `{"open":N,"cdr":{..}}`: call `N` was answered; `cdr` is its record as it would
//!   read were it ended then by a restart (`end_reason` `restart`, no media);
//! - `{"close":N,"at":MS}`: the real record of call `N` was written to the CDR file;
//! - `{"at":MS}`: a checkpoint, written every [`CHECKPOINT`] while calls are open:
//!   the wall clock was `MS` then.
//!
//! The writer thread writes it after the CDR lines of the same batch, and makes it
//! durable under the same `[cdr] fsync` policy (a close never reaches the journal
//! before its record reached the CDR file). At start, [`recover`] replays it: every
//! call opened and not closed gets its record, `end_reason` `restart`, `end_at_ms`
//! the last time known (the latest checkpoint or close, never before its answer),
//! appended to the CDR file; then the journal starts empty. Records found at the end
//! of the CDR file (the last [`TAIL_BYTES`]) for the same call (engine call id and
//! both legs' Call-IDs, unique per run) are not written twice. The journal is
//! rewritten with only the open calls once it holds [`COMPACT_MIN_LINES`] lines and
//! four times as many as there are open calls, and left empty on a clean stop.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use portcullis_engine::cdr::EndReason;
use serde_json::Value;

/// Period of the journal's checkpoints while calls are open.
pub const CHECKPOINT: Duration = Duration::from_secs(1);

/// Lines appended before the journal may be compacted.
pub const COMPACT_MIN_LINES: u64 = 16_384;

/// How much of the CDR file's end recovery reads to skip records already written.
pub const TAIL_BYTES: u64 = 1 << 20;

/// The journal of the CDR file `cdr`: its path with `.journal` appended.
#[must_use]
pub fn journal_path(cdr: &Path) -> PathBuf {
    let mut s = cdr.as_os_str().to_owned();
    s.push(".journal");
    PathBuf::from(s)
}

/// What [`recover`] found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// CDR lines (newline-terminated) of the calls left open, in call order.
    pub lines: Vec<String>,
    /// Journal lines that did not parse (a line torn by the crash).
    pub bad_lines: usize,
    /// Open calls whose record was already at the end of the CDR file.
    pub already_written: usize,
    /// Open calls the pair carried on (another node writes their record).
    pub taken_over: usize,
}

/// Reads the journal at `journal` (none: nothing to recover) and builds the record of
/// every call left open (see the module docs). Writes nothing.
///
/// # Errors
/// The journal exists but cannot be read.
pub fn recover(journal: &Path, cdr: &Path) -> std::io::Result<Recovered> {
    recover_except(journal, cdr, &HashSet::new())
}

/// Field of an `open` record holding the call's active/standby key, when it has one
/// (never written to the CDR file).
pub const HA_KEY: &str = "ha_key";

/// `line` (a record's JSON line) with [`HA_KEY`] set to `key`.
#[must_use]
pub fn with_ha_key(line: &str, key: &str) -> String {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(mut m)) => {
            m.insert(HA_KEY.into(), key.into());
            let mut s = Value::Object(m).to_string();
            s.push('\n');
            s
        }
        _ => line.to_owned(),
    }
}

/// An open call's identity for an active/standby pair: its legs' Call-IDs (A, B) and
/// its key when the journal recorded one.
pub type OpenLegs = (String, String, Option<String>);

/// Every call left open in the journal at `journal` (an active/standby pair asks Redis
/// which of them it carried on). Unreadable: none.
#[must_use]
pub fn open_legs(journal: &Path) -> Vec<OpenLegs> {
    let Ok(bytes) = std::fs::read(journal) else {
        return Vec::new();
    };
    let mut open: BTreeMap<u64, OpenLegs> = BTreeMap::new();
    for line in String::from_utf8_lossy(&bytes).lines() {
        let Ok(Value::Object(e)) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let Some(call) = e.get("close").and_then(Value::as_u64) {
            open.remove(&call);
        } else if let (Some(call), Some(Value::Object(cdr))) =
            (e.get("open").and_then(Value::as_u64), e.get("cdr"))
        {
            let (_, a, b) = key(cdr);
            let k = cdr.get(HA_KEY).and_then(Value::as_str).map(str::to_owned);
            open.insert(call, (a, b, k));
        }
    }
    open.into_values().collect()
}

/// [`recover`], leaving out the calls whose legs' Call-IDs (A, B) are in `taken_over`:
/// an active/standby pair carried them on, and the node that ends them writes their
/// record (counted in [`Recovered::taken_over`]).
///
/// # Errors
/// As [`recover`].
pub fn recover_except(
    journal: &Path,
    cdr: &Path,
    taken_over: &HashSet<(String, String)>,
) -> std::io::Result<Recovered> {
    recover_files(&[journal], cdr, taken_over)
}

/// [`recover_except`] over several journals (the journal and the calls an earlier start
/// could not confirm, `super::cdr_unconfirmed`): a call found in more than one gets one
/// record.
///
/// # Errors
/// A journal exists but cannot be read.
pub fn recover_files(
    journals: &[&Path],
    cdr: &Path,
    taken_over: &HashSet<(String, String)>,
) -> std::io::Result<Recovered> {
    let mut out = Recovered::default();
    let mut written: Option<HashSet<Key>> = None;
    let restart = serde_json::to_value(EndReason::Restart).unwrap_or(Value::Null);
    for journal in journals {
        let bytes = match std::fs::read(journal) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let (open, last_at, bad) = read_open(&String::from_utf8_lossy(&bytes));
        out.bad_lines += bad;
        if open.is_empty() {
            continue;
        }
        let written = written.get_or_insert_with(|| tail_keys(cdr));
        for (_, mut cdr) in open {
            cdr.remove(HA_KEY);
            let (_, a, b) = key(&cdr);
            if taken_over.contains(&(a, b)) {
                out.taken_over += 1;
                continue;
            }
            if !written.insert(key(&cdr)) {
                out.already_written += 1;
                continue;
            }
            ended_by_restart(&mut cdr, last_at, &restart);
            let mut line = Value::Object(cdr).to_string();
            line.push('\n');
            out.lines.push(line);
        }
    }
    Ok(out)
}

/// Sets `end_at_ms` (the last time known, never before what the record says) and
/// `end_reason` `restart`.
pub(crate) fn ended_by_restart(
    cdr: &mut serde_json::Map<String, Value>,
    last_at: u64,
    restart: &Value,
) {
    let known = cdr.get("end_at_ms").and_then(Value::as_u64).unwrap_or(0);
    cdr.insert("end_at_ms".into(), last_at.max(known).into());
    cdr.insert("end_reason".into(), restart.clone());
}

/// The calls a journal's text leaves open (by engine call id), the last time it knew
/// (`at` of its latest checkpoint or close), and the lines that did not parse.
pub(crate) fn read_open(text: &str) -> (BTreeMap<u64, serde_json::Map<String, Value>>, u64, usize) {
    let mut open: BTreeMap<u64, serde_json::Map<String, Value>> = BTreeMap::new();
    let mut last_at = 0u64;
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(Value::Object(mut e)) = serde_json::from_str::<Value>(line) else {
            bad += 1;
            continue;
        };
        if let Some(at) = e.get("at").and_then(Value::as_u64) {
            last_at = last_at.max(at);
        }
        if let Some(call) = e.get("close").and_then(Value::as_u64) {
            open.remove(&call);
        } else if let (Some(call), Some(Value::Object(cdr))) =
            (e.get("open").and_then(Value::as_u64), e.remove("cdr"))
        {
            open.insert(call, cdr);
        } else if !e.contains_key("at") {
            bad += 1;
        }
    }
    (open, last_at, bad)
}

/// The identity of a call's record: engine call id, A-leg and B-leg Call-IDs (the
/// B-leg's is ours, random per run).
pub(crate) type Key = (u64, String, String);

pub(crate) fn key(cdr: &serde_json::Map<String, Value>) -> Key {
    let leg = |name: &str| {
        cdr.get(name)
            .and_then(|l| l.get("call_id"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    (
        cdr.get("call_id").and_then(Value::as_u64).unwrap_or(0),
        leg("a_leg"),
        leg("b_leg"),
    )
}

/// Keys of the records in the last [`TAIL_BYTES`] of the CDR file, but transfer
/// segments (the call went on after them).
fn tail_keys(cdr: &Path) -> HashSet<Key> {
    let mut keys = HashSet::new();
    // Checked before opening: opening a FIFO for reading would wait for a writer.
    if !std::fs::metadata(cdr).is_ok_and(|m| m.is_file()) {
        return keys;
    }
    let Ok(mut f) = File::open(cdr) else {
        return keys;
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let from = len.saturating_sub(TAIL_BYTES);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.read_to_end(&mut buf).is_err() {
        return keys;
    }
    let text = String::from_utf8_lossy(&buf);
    // A cut first line is skipped by the parse.
    for line in text.lines() {
        let Ok(Value::Object(r)) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let transferred = r
            .get("end_reason")
            .and_then(|e| e.get("kind"))
            .and_then(Value::as_str)
            == Some("transferred");
        if !transferred {
            keys.insert(key(&r));
        }
    }
    keys
}

/// One change to the journal, applied in order after the CDR lines of its batch.
#[derive(Debug)]
pub enum JournalOp {
    /// Call answered: its record line (newline-terminated JSON object).
    Open(u64, String),
    /// Call's record written to the CDR file.
    Close(u64),
}

/// The journal file being appended to (see the module docs).
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Open calls → their `open` line.
    open: BTreeMap<u64, String>,
    /// Lines in the file.
    lines: u64,
    buf: String,
    dirty: bool,
}

impl Journal {
    /// Starts an empty journal at `path` (after [`recover`]), durably when `durable`.
    ///
    /// # Errors
    /// The file cannot be created or synced.
    pub fn create(path: &Path, durable: bool) -> std::io::Result<Self> {
        let mut j = Self {
            path: path.to_owned(),
            file: File::create(path)?,
            open: BTreeMap::new(),
            lines: 0,
            buf: String::new(),
            dirty: false,
        };
        if durable {
            j.file.sync_all()?;
            sync_dir(path)?;
        }
        j.reopen()?;
        Ok(j)
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        Ok(())
    }

    /// Whether calls are open.
    #[must_use]
    pub fn has_open(&self) -> bool {
        !self.open.is_empty()
    }

    /// Whether something was written since the last sync (or is queued).
    #[must_use]
    pub fn is_dirty(&self) -> bool {
        self.dirty || !self.buf.is_empty()
    }

    /// Queues `ops` at wall time `at_ms`. `closes`: whether the records of the batch
    /// reached the CDR file (when they did not, their calls stay open and a restart
    /// closes them).
    pub fn apply(&mut self, ops: impl IntoIterator<Item = JournalOp>, closes: bool, at_ms: u64) {
        for op in ops {
            match op {
                JournalOp::Open(call, cdr) => {
                    let line = format!("{{\"open\":{call},\"cdr\":{}}}\n", cdr.trim_end());
                    self.buf.push_str(&line);
                    self.lines += 1;
                    self.open.insert(call, line);
                }
                JournalOp::Close(call) => {
                    if closes && self.open.remove(&call).is_some() {
                        self.buf
                            .push_str(&format!("{{\"close\":{call},\"at\":{at_ms}}}\n"));
                        self.lines += 1;
                    }
                }
            }
        }
    }

    /// Queues a checkpoint at wall time `at_ms`.
    pub fn checkpoint(&mut self, at_ms: u64) {
        self.buf.push_str(&format!("{{\"at\":{at_ms}}}\n"));
        self.lines += 1;
    }

    /// Writes what was queued.
    ///
    /// # Errors
    /// The write failed (the queued lines are dropped; the open calls stay in memory
    /// and are written again by the next compaction).
    pub fn write(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let res = self.file.write_all(self.buf.as_bytes());
        self.buf.clear();
        self.dirty = true;
        res
    }

    /// `fdatasync` when something was written since the last one.
    ///
    /// # Errors
    /// The sync failed.
    pub fn sync(&mut self) -> std::io::Result<bool> {
        if !self.dirty {
            return Ok(false);
        }
        self.dirty = false;
        self.file.sync_data()?;
        Ok(true)
    }

    /// Whether the journal is due for [`Self::compact`].
    #[must_use]
    pub fn compaction_due(&self) -> bool {
        self.lines >= COMPACT_MIN_LINES && self.lines >= 4 * self.open.len() as u64
    }

    /// Rewrites the journal with only the open calls and a checkpoint at `at_ms`
    /// (nothing at all when none is open): a temporary file renamed over it,
    /// durably when `durable`.
    ///
    /// # Errors
    /// Writing, syncing or renaming failed (the old journal stays in use).
    pub fn compact(&mut self, at_ms: u64, durable: bool) -> std::io::Result<()> {
        self.write()?;
        let mut tmp_path = self.path.clone().into_os_string();
        tmp_path.push(".tmp");
        let tmp_path = PathBuf::from(tmp_path);
        let mut text = String::new();
        for line in self.open.values() {
            text.push_str(line);
        }
        if !self.open.is_empty() {
            text.push_str(&format!("{{\"at\":{at_ms}}}\n"));
        }
        let mut tmp = File::create(&tmp_path)?;
        tmp.write_all(text.as_bytes())?;
        if durable {
            tmp.sync_data()?;
        }
        std::fs::rename(&tmp_path, &self.path)?;
        if durable {
            sync_dir(&self.path)?;
        }
        self.lines = self.open.len() as u64 + u64::from(!self.open.is_empty());
        self.dirty = false;
        self.reopen()
    }
}

/// Makes a rename or creation in `path`'s directory durable.
pub(crate) fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(call: u64, answer: u64) -> String {
        format!(
            "{{\"call_id\":{call},\"a_leg\":{{\"call_id\":\"a{call}\"}},\"b_leg\":{{\"call_id\":\"b{call}\"}},\"answer_at_ms\":{answer},\"end_at_ms\":{answer},\"end_reason\":{{\"kind\":\"restart\"}},\"node\":\"n1\"}}\n"
        )
    }

    #[test]
    fn calls_the_pair_carried_on_get_no_restart_record() {
        let dir = tempfile::tempdir().unwrap();
        let cdr = dir.path().join("cdr.jsonl");
        let jp = journal_path(&cdr);
        let mut j = Journal::create(&jp, true).unwrap();
        j.apply(
            [
                JournalOp::Open(1, record(1, 1_000)),
                JournalOp::Open(2, with_ha_key(&record(2, 2_000), "k2")),
                JournalOp::Open(3, record(3, 3_000)),
            ],
            true,
            3_000,
        );
        j.write().unwrap();
        drop(j);
        let legs = open_legs(&jp);
        assert_eq!(
            legs,
            vec![
                ("a1".into(), "b1".into(), None),
                ("a2".into(), "b2".into(), Some("k2".into())),
                ("a3".into(), "b3".into(), None),
            ]
        );
        let taken: HashSet<(String, String)> =
            [("a1".to_owned(), "b1".to_owned())].into_iter().collect();
        let r = recover_except(&jp, &cdr, &taken).unwrap();
        assert_eq!((r.lines.len(), r.taken_over), (2, 1));
        assert!(r.lines[0].contains("\"a2\""), "{:?}", r.lines);
        assert!(
            r.lines.iter().all(|l| !l.contains(HA_KEY)),
            "the key stays out of the CDR file: {:?}",
            r.lines
        );
    }

    #[test]
    fn replay_closes_open_calls_at_the_last_time_known() {
        let dir = tempfile::tempdir().unwrap();
        let cdr = dir.path().join("cdr.jsonl");
        let jp = journal_path(&cdr);
        assert_eq!(jp, dir.path().join("cdr.jsonl.journal"));
        let mut j = Journal::create(&jp, true).unwrap();
        j.apply(
            [
                JournalOp::Open(1, record(1, 1_000)),
                JournalOp::Open(2, record(2, 2_000)),
                JournalOp::Open(3, record(3, 9_000)),
            ],
            true,
            2_000,
        );
        j.checkpoint(5_000);
        // Call 2 ends; a failed CDR write leaves call 3 open.
        j.apply([JournalOp::Close(2)], true, 6_000);
        j.apply([JournalOp::Close(3)], false, 7_000);
        j.write().unwrap();
        // A line torn by the crash.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&jp)
            .unwrap()
            .write_all(b"{\"open\":4,\"cdr\":{\"call")
            .unwrap();
        let r = recover(&jp, &cdr).unwrap();
        assert_eq!(r.bad_lines, 1);
        assert_eq!(r.lines.len(), 2, "{:?}", r.lines);
        let one: Value = serde_json::from_str(&r.lines[0]).unwrap();
        assert_eq!(one["call_id"], 1);
        assert_eq!(one["end_at_ms"], 6_000, "last close written");
        assert_eq!(one["end_reason"]["kind"], "restart");
        assert_eq!(one["node"], "n1");
        let three: Value = serde_json::from_str(&r.lines[1]).unwrap();
        assert_eq!(three["call_id"], 3);
        assert_eq!(three["end_at_ms"], 9_000, "never before its answer");
        // Records already at the end of the CDR file are not written again.
        std::fs::write(&cdr, &r.lines[0]).unwrap();
        let again = recover(&jp, &cdr).unwrap();
        assert_eq!(again.already_written, 1);
        assert_eq!(again.lines.len(), 1);
    }

    #[test]
    fn compaction_keeps_only_open_calls() {
        let dir = tempfile::tempdir().unwrap();
        let cdr = dir.path().join("cdr.jsonl");
        let jp = journal_path(&cdr);
        let mut j = Journal::create(&jp, false).unwrap();
        for call in 0..COMPACT_MIN_LINES {
            j.apply([JournalOp::Open(call, record(call, 10))], true, 10);
            if call != 7 {
                j.apply([JournalOp::Close(call)], true, 20);
            }
        }
        j.write().unwrap();
        assert!(j.compaction_due());
        j.compact(30, true).unwrap();
        assert!(!j.compaction_due());
        assert_eq!(std::fs::read_to_string(&jp).unwrap().lines().count(), 2);
        // Appends go to the new file.
        j.apply([JournalOp::Open(99, record(99, 40))], true, 40);
        j.write().unwrap();
        let r = recover(&jp, &cdr).unwrap();
        let calls: Vec<u64> = r
            .lines
            .iter()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["call_id"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(calls, vec![7, 99]);
        j.apply([JournalOp::Close(7), JournalOp::Close(99)], true, 50);
        j.compact(50, true).unwrap();
        assert_eq!(std::fs::read_to_string(&jp).unwrap(), "");
    }
}

//! CDR search over the last day (`GET /api/v1/cdrs`): reads the tail of the CDR files
//! (JSON lines, `[cdr] path` and its rotated predecessor `<path>.1`) and returns the newest
//! records that match a number, a trunk and a time window.
//!
//! Invariants: at most [`TAIL_BYTES`] are read from each file and lines longer than
//! [`MAX_LINE`] are skipped, so a request costs bounded time and memory whatever the
//! file holds; at most [`MAX_LIMIT`] records are returned; a line that is not a CDR (not
//! JSON, or another record type without `end_at_ms` and `a_leg`) is skipped and counted,
//! never an error; nothing older than [`WINDOW_MS`] is returned.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How far back a search goes: one day.
pub const WINDOW_MS: u64 = 24 * 3600 * 1000;

/// Bytes read from the end of each file at most.
pub const TAIL_BYTES: u64 = 64 << 20;

/// Longest line considered (longer ones are skipped).
pub const MAX_LINE: usize = 64 << 10;

/// Records returned by default.
pub const DEFAULT_LIMIT: usize = 100;

/// Records returned at most.
pub const MAX_LIMIT: usize = 500;

/// Longest `number` or `trunk` filter accepted.
pub const MAX_FILTER_LEN: usize = 128;

/// Query string of `GET /api/v1/cdrs` (every field optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdrQuery {
    /// Part of the calling or called number (as received or as translated).
    pub number: Option<String>,
    /// Inbound or outbound trunk name (exact).
    pub trunk: Option<String>,
    /// Calls that ended at or after (ms since the UNIX epoch; at most a day back).
    pub since_ms: Option<u64>,
    /// Calls that ended at or before (ms since the UNIX epoch).
    pub until_ms: Option<u64>,
    /// Only unanswered calls (`true`) or only answered ones (`false`).
    pub failed: Option<bool>,
    /// Records returned at most (default [`DEFAULT_LIMIT`], capped at [`MAX_LIMIT`]).
    pub limit: Option<usize>,
}

impl CdrQuery {
    /// Checks the filters' sizes.
    ///
    /// # Errors
    /// A filter longer than [`MAX_FILTER_LEN`].
    pub fn check(&self) -> Result<(), String> {
        for (name, v) in [("number", &self.number), ("trunk", &self.trunk)] {
            if v.as_ref().is_some_and(|v| v.len() > MAX_FILTER_LEN) {
                return Err(format!("{name} longer than {MAX_FILTER_LEN} bytes"));
            }
        }
        Ok(())
    }
}

/// One CDR in the answer (the fields the dashboard shows; `raw` is the whole record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CdrHit {
    /// Engine call id.
    pub call_id: u64,
    /// When the call ended (ms since the UNIX epoch).
    pub end_at_ms: u64,
    /// Calling number as received.
    pub calling: String,
    /// Called number as received.
    pub called: String,
    /// Trunk the call came from.
    pub inbound_trunk: String,
    /// Last trunk tried.
    pub outbound_trunk: Option<String>,
    /// Talk time (ms), `None` when unanswered.
    pub duration_ms: Option<u64>,
    /// Final status sent to the caller.
    pub final_status: Option<u16>,
    /// `kind` of the record's `end_reason`.
    pub end_reason: String,
    /// The record as written.
    pub raw: Value,
}

/// The answer of `GET /api/v1/cdrs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CdrSearch {
    /// Matching records, newest first.
    pub records: Vec<CdrHit>,
    /// More records matched than were returned.
    pub truncated: bool,
    /// CDR lines read.
    pub scanned: u64,
    /// Lines skipped: not JSON, not a CDR, or too long.
    pub skipped: u64,
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// The record as a hit, or `None` when the line is not a CDR.
fn hit(v: Value) -> Option<CdrHit> {
    let end_at_ms = v.get("end_at_ms")?.as_u64()?;
    let inbound_trunk = text(&v, &["a_leg", "trunk"])?.to_owned();
    let answer = v.get("answer_at_ms").and_then(Value::as_u64);
    Some(CdrHit {
        call_id: v.get("call_id").and_then(Value::as_u64).unwrap_or(0),
        end_at_ms,
        calling: text(&v, &["calling", "original"]).unwrap_or("").to_owned(),
        called: text(&v, &["called", "original"]).unwrap_or("").to_owned(),
        inbound_trunk,
        outbound_trunk: text(&v, &["b_leg", "trunk"]).map(str::to_owned),
        duration_ms: answer.map(|a| end_at_ms.saturating_sub(a)),
        final_status: v
            .get("final_status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok()),
        end_reason: text(&v, &["end_reason", "kind"]).unwrap_or("").to_owned(),
        raw: v,
    })
}

fn matches(h: &CdrHit, q: &CdrQuery, since: u64, until: u64) -> bool {
    if h.end_at_ms < since || h.end_at_ms > until {
        return false;
    }
    if let Some(t) = q.trunk.as_deref().filter(|t| !t.is_empty()) {
        if h.inbound_trunk != t && h.outbound_trunk.as_deref() != Some(t) {
            return false;
        }
    }
    if let Some(failed) = q.failed {
        if h.duration_ms.is_none() != failed {
            return false;
        }
    }
    if let Some(n) = q.number.as_deref().filter(|n| !n.is_empty()) {
        let numbers = [
            ["calling", "original"],
            ["calling", "translated"],
            ["called", "original"],
            ["called", "translated"],
        ];
        if !numbers
            .iter()
            .any(|p| text(&h.raw, p).is_some_and(|x| x.contains(n)))
        {
            return false;
        }
    }
    true
}

/// Reads the last [`TAIL_BYTES`] of `path` line by line (a first partial line skipped).
fn scan(path: &Path, mut each: impl FnMut(Option<Value>)) -> std::io::Result<()> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    f.seek(SeekFrom::Start(start))?;
    let mut r = BufReader::new(f.take(TAIL_BYTES));
    let mut buf = Vec::new();
    let mut partial = start > 0;
    loop {
        buf.clear();
        let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX) + 1;
        let n = (&mut r).take(limit).read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        let complete = buf.last() == Some(&b'\n');
        if !complete && buf.len() > MAX_LINE {
            // Too long: skip to the end of the line.
            let mut sink = Vec::new();
            loop {
                sink.clear();
                let m = (&mut r).take(limit).read_until(b'\n', &mut sink)?;
                if m == 0 || sink.last() == Some(&b'\n') {
                    break;
                }
            }
            each(None);
            partial = false;
            continue;
        }
        if std::mem::take(&mut partial) {
            continue;
        }
        if !complete {
            // The writer has not finished this line yet.
            return Ok(());
        }
        each(serde_json::from_slice(&buf).ok());
    }
}

/// Searches `files` (oldest first; missing ones are skipped) for records matching `q`,
/// with `now_ms` the current time on the CDR clock.
#[must_use]
pub fn search(files: &[PathBuf], q: &CdrQuery, now_ms: u64) -> CdrSearch {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let floor = now_ms.saturating_sub(WINDOW_MS);
    let since = q.since_ms.map_or(floor, |s| s.max(floor));
    let until = q.until_ms.unwrap_or(u64::MAX);
    let mut out = CdrSearch::default();
    // Files are chronological: keep the last `limit` matches.
    let mut kept = std::collections::VecDeque::with_capacity(limit);
    for path in files {
        let res = scan(path, |v| {
            out.scanned += 1;
            let Some(h) = v.and_then(hit) else {
                out.skipped += 1;
                return;
            };
            if matches(&h, q, since, until) {
                if kept.len() == limit {
                    kept.pop_front();
                    out.truncated = true;
                }
                kept.push_back(h);
            }
        });
        if let Err(e) = res {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "CDR search: file not read");
            }
        }
    }
    out.records = kept.into_iter().rev().collect();
    out.records.sort_by_key(|h| std::cmp::Reverse(h.end_at_ms));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(
        id: u64,
        calling: &str,
        called: &str,
        trunk_b: &str,
        end: u64,
        answered: bool,
    ) -> String {
        let answer = if answered {
            format!("{}", end - 1000)
        } else {
            "null".into()
        };
        format!(
            r#"{{"call_id":{id},"a_leg":{{"call_id":"a{id}","from":"f","to":"t","trunk":"left","remote":"127.0.0.1:5060"}},"b_leg":{{"call_id":"b{id}","from":"f","to":"t","trunk":"{trunk_b}","remote":"127.0.0.1:5062"}},"calling":{{"original":"{calling}","translated":"{calling}"}},"called":{{"original":"{called}","translated":"+49{called}"}},"route":"r","setup_at_ms":{s},"answer_at_ms":{answer},"end_at_ms":{end},"end_reason":{{"kind":"normal_clearing","by":"caller"}},"final_status":200,"media":null,"node":"n"}}"#,
            s = end - 2000
        ) + "\n"
    }

    const NOW: u64 = 10 * WINDOW_MS;

    fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        let mut f = File::create(&p).unwrap_or_else(|e| panic!("{e}"));
        f.write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        p
    }

    #[test]
    fn filters_window_and_tolerance() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let old = line(1, "1000", "2000", "right", NOW - WINDOW_MS - 1, true);
        let mut text = old.clone();
        text += "not json at all\n";
        text += r#"{"record":"start","call_id":5,"setup_at_ms":1}"#;
        text += "\n";
        text += &line(2, "1000", "2000", "right", NOW - 5000, true);
        text += &line(3, "1001", "3000", "other", NOW - 4000, false);
        text += &line(4, "<script>", "2000", "right", NOW - 3000, true);
        text += r#"{"call_id":9,"end_at_ms":"#; // a line still being written
        let rotated = file(
            dir.path(),
            "cdr.jsonl.1",
            &line(0, "1000", "2000", "right", NOW - 9000, true),
        );
        let cur = file(dir.path(), "cdr.jsonl", &text);
        let files = vec![rotated, cur, dir.path().join("missing")];

        let all = search(&files, &CdrQuery::default(), NOW);
        let ids: Vec<u64> = all.records.iter().map(|h| h.call_id).collect();
        assert_eq!(
            ids,
            vec![4, 3, 2, 0],
            "newest first, the day-old one left out"
        );
        assert_eq!(all.skipped, 2, "{all:?}");
        assert!(!all.truncated);
        assert_eq!(all.records[1].outbound_trunk.as_deref(), Some("other"));
        assert_eq!(all.records[1].duration_ms, None);
        assert_eq!(all.records[0].duration_ms, Some(1000));

        let q = |f: fn(&mut CdrQuery)| {
            let mut q = CdrQuery::default();
            f(&mut q);
            search(&files, &q, NOW)
                .records
                .iter()
                .map(|h| h.call_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(q(|q| q.number = Some("3000".into())), vec![3]);
        assert_eq!(
            q(|q| q.number = Some("+492000".into())),
            vec![4, 2, 0],
            "translated"
        );
        assert_eq!(q(|q| q.trunk = Some("other".into())), vec![3]);
        assert_eq!(q(|q| q.trunk = Some("left".into())).len(), 4);
        assert_eq!(q(|q| q.failed = Some(true)), vec![3]);
        assert_eq!(q(|q| q.since_ms = Some(NOW - 4500)), vec![4, 3]);
        assert_eq!(q(|q| q.until_ms = Some(NOW - 4500)), vec![2, 0]);
        assert_eq!(
            q(|q| q.since_ms = Some(0)).len(),
            4,
            "never more than a day back"
        );
        let two = search(
            &files,
            &CdrQuery {
                limit: Some(2),
                ..CdrQuery::default()
            },
            NOW,
        );
        assert_eq!(
            two.records.iter().map(|h| h.call_id).collect::<Vec<_>>(),
            vec![4, 3]
        );
        assert!(two.truncated);
    }

    #[test]
    fn long_lines_and_tail_are_bounded() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut text = "x".repeat(MAX_LINE * 3);
        text.push('\n');
        text += &line(7, "1000", "2000", "right", NOW - 1, true);
        let p = file(dir.path(), "cdr.jsonl", &text);
        let r = search(&[p], &CdrQuery::default(), NOW);
        assert_eq!(r.records.len(), 1);
        assert_eq!(r.skipped, 1);
        assert!(CdrQuery {
            number: Some("9".repeat(MAX_FILTER_LEN + 1)),
            ..CdrQuery::default()
        }
        .check()
        .is_err());
    }
}

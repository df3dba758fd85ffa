//! Calls cut by a crash whose CDR a restarted node of an active/standby pair cannot
//! settle yet: Redis, which says whether the pair carried a call on, is unreachable.
//!
//! Writing their `restart` records then could give a call two CDRs (the survivor's, with
//! `takeover`, and ours); dropping them could give it none. So the node writes neither:
//! [`defer`] moves the calls its journal left open into `[cdr] path` +
//! `.journal.unconfirmed` (journal format, each record's end time fixed to the last
//! time the journal knew) and the node starts; once Redis answers, the calls Redis does
//! not know get their `restart` record and the file goes (`crate::ha::settle_unconfirmed`).
//! A start that reaches Redis settles the file with its journal
//! ([`super::cdr_journal::recover_files`]); a start that does not appends to it.
//!
//! Invariant: an open call is in the journal or in this file (or in both, for a
//! crash between the two writes of [`defer`]: recovery gives it one record), until its
//! record is written or Redis says the pair carried it on.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::cdr_journal::{read_open, sync_dir};

/// The calls an earlier start could not confirm, beside the CDR file `cdr`.
#[must_use]
pub fn unconfirmed_path(cdr: &Path) -> PathBuf {
    let mut s = cdr.as_os_str().to_owned();
    s.push(".journal.unconfirmed");
    PathBuf::from(s)
}

/// Moves the calls `journal` leaves open to `unconfirmed` (appended, numbered after
/// what it holds, their `end_at_ms` set to the last time the journal knew), durably,
/// then empties the journal. Returns how many calls moved.
///
/// # Errors
/// A file cannot be read, written or synced (the journal is then left as it was).
pub fn defer(journal: &Path, unconfirmed: &Path) -> std::io::Result<usize> {
    let text = match std::fs::read(journal) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let (open, last_at, _) = read_open(&text);
    if open.is_empty() {
        return Ok(0);
    }
    let held: BTreeMap<u64, _> = match std::fs::read(unconfirmed) {
        Ok(b) => read_open(&String::from_utf8_lossy(&b)).0,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(e),
    };
    let first = held.keys().next_back().map_or(1, |k| k + 1);
    let mut out = String::new();
    let moved = open.len();
    for (n, (_, mut cdr)) in (first..).zip(open) {
        let known = cdr.get("end_at_ms").and_then(Value::as_u64).unwrap_or(0);
        cdr.insert("end_at_ms".into(), last_at.max(known).into());
        out.push_str(&format!(
            "{{\"open\":{n},\"cdr\":{}}}\n",
            Value::Object(cdr)
        ));
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(unconfirmed)?;
    f.write_all(out.as_bytes())?;
    f.sync_data()?;
    sync_dir(unconfirmed)?;
    // Only now: every call is in the file before the journal forgets it.
    let j = std::fs::File::create(journal)?;
    j.sync_all()?;
    Ok(moved)
}

/// Removes the file once its calls are settled (durably).
///
/// # Errors
/// The removal failed.
pub fn remove(unconfirmed: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(unconfirmed) {
        Ok(()) => sync_dir(unconfirmed),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::cdr_journal::{journal_path, open_legs, recover_files, with_ha_key};
    use super::*;

    /// Call `call` of run `run` (its legs' Call-IDs differ from any other run's).
    fn record(run: &str, call: u64, answer: u64) -> String {
        format!(
            "{{\"call_id\":{call},\"a_leg\":{{\"call_id\":\"a{call}{run}\"}},\"b_leg\":{{\"call_id\":\"b{call}{run}\"}},\"answer_at_ms\":{answer},\"end_at_ms\":{answer},\"end_reason\":{{\"kind\":\"restart\"}},\"node\":\"n1\"}}\n"
        )
    }

    fn journal_with(jp: &Path, run: &str, calls: &[u64], at: u64) {
        let mut text = String::new();
        for &c in calls {
            let line = with_ha_key(&record(run, c, 1_000 + c), &format!("k{c}{run}"));
            text.push_str(&format!("{{\"open\":{c},\"cdr\":{}}}\n", line.trim_end()));
        }
        text.push_str(&format!("{{\"at\":{at}}}\n"));
        std::fs::write(jp, text).unwrap();
    }

    #[test]
    fn deferred_calls_leave_the_journal_and_are_settled_later_once() {
        let dir = tempfile::tempdir().unwrap();
        let cdr = dir.path().join("cdr.jsonl");
        let (jp, up) = (journal_path(&cdr), unconfirmed_path(&cdr));
        // First start, Redis unreachable: calls 1 and 2 move out of the journal.
        journal_with(&jp, "", &[1, 2], 5_000);
        assert_eq!(defer(&jp, &up).unwrap(), 2);
        assert!(open_legs(&jp).is_empty(), "the journal forgot them");
        let legs = open_legs(&up);
        assert_eq!(legs.len(), 2);
        assert_eq!(legs[0].2.as_deref(), Some("k1"), "their pair keys kept");
        // The node crashes again with its own call 1 open, Redis still unreachable.
        journal_with(&jp, "x", &[1], 9_000);
        assert_eq!(defer(&jp, &up).unwrap(), 1);
        assert_eq!(
            open_legs(&up).len(),
            3,
            "a call numbered 1 twice is kept twice"
        );
        // Redis answers: it knows a2/b2 (the pair carried it on), not the others.
        let taken: HashSet<_> = [("a2".to_owned(), "b2".to_owned())].into();
        let rec = recover_files(&[&jp, &up], &cdr, &taken).unwrap();
        assert_eq!(rec.taken_over, 1);
        assert_eq!(rec.lines.len(), 2, "{:?}", rec.lines);
        let ends: Vec<u64> = rec
            .lines
            .iter()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["end_at_ms"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            ends,
            vec![5_000, 9_000],
            "each ended when its run last knew"
        );
        assert!(rec.lines.iter().all(|l| !l.contains("ha_key")));
        // Written once: a second pass (a crash before the file went) writes nothing more.
        std::fs::write(&cdr, rec.lines.concat()).unwrap();
        let again = recover_files(&[&jp, &up], &cdr, &taken).unwrap();
        assert!(again.lines.is_empty());
        assert_eq!(again.already_written, 2);
        remove(&up).unwrap();
        assert!(!up.exists());
    }

    #[test]
    fn a_call_in_both_files_gets_one_record() {
        let dir = tempfile::tempdir().unwrap();
        let cdr = dir.path().join("cdr.jsonl");
        let (jp, up) = (journal_path(&cdr), unconfirmed_path(&cdr));
        journal_with(&jp, "", &[7], 3_000);
        // A crash between the two writes of `defer`: the call is in both.
        std::fs::copy(&jp, &up).unwrap();
        let rec = recover_files(&[&jp, &up], &cdr, &HashSet::new()).unwrap();
        assert_eq!(rec.lines.len(), 1);
        assert_eq!(rec.already_written, 1);
    }
}

//! Logs of refusals that do not flood: the engine reports every refused request
//! ([`portcullis_engine::b2bua::CallEvent::Rejected`]) and every ban; this folds
//! them into one INFO line per interval ("rejected N requests from M sources in
//! the last 10 s, top: ..."), and logs at most [`BAN_LINES`] bans one by one per
//! interval (the rest are counted in the same summary). The counts by status and
//! reason are in the metrics (`portcullis_sip_rejected_total`).
//!
//! Memory is bounded: at most [`MAX_SOURCES`] sources are told apart per
//! interval; requests from further sources are counted without their address.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use portcullis_engine::time::Timestamp;

/// Length of one summary interval.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Sources told apart per interval.
pub const MAX_SOURCES: usize = 4096;

/// Bans logged one by one per interval.
pub const BAN_LINES: u32 = 10;

/// Sources named in a summary line.
const TOP: usize = 3;

/// Refusals and bans seen since the interval started.
#[derive(Debug, Default)]
pub struct RejectLog {
    started: Option<Timestamp>,
    requests: u64,
    by_status: BTreeMap<u16, u64>,
    by_source: HashMap<IpAddr, u64>,
    /// Requests from sources beyond [`MAX_SOURCES`].
    untracked: u64,
    bans: u32,
}

impl RejectLog {
    /// Counts one refused request.
    pub fn rejected(&mut self, now: Timestamp, status: u16, source: IpAddr) {
        self.started.get_or_insert(now);
        self.requests += 1;
        *self.by_status.entry(status).or_insert(0) += 1;
        let tracked = self.by_source.len();
        match self.by_source.get_mut(&source) {
            Some(n) => *n += 1,
            None if tracked < MAX_SOURCES => {
                self.by_source.insert(source, 1);
            }
            None => self.untracked += 1,
        }
    }

    /// Counts one ban; `true` while it may still be logged on its own line.
    pub fn banned(&mut self, now: Timestamp) -> bool {
        self.started.get_or_insert(now);
        self.bans += 1;
        self.bans <= BAN_LINES
    }

    /// The summary line of the interval, once it is over (and starts the next).
    pub fn poll(&mut self, now: Timestamp) -> Option<String> {
        let started = self.started?;
        if now.saturating_duration_since(started) < INTERVAL {
            return None;
        }
        let line = self.summary();
        *self = Self::default();
        line
    }

    fn summary(&self) -> Option<String> {
        if self.requests == 0 && self.bans <= BAN_LINES {
            return None;
        }
        let secs = INTERVAL.as_secs();
        let mut line = String::new();
        if self.requests > 0 {
            let sources = self.by_source.len();
            let more = if self.untracked > 0 { "+" } else { "" };
            let _ = write!(
                line,
                "rejected {} requests from {sources}{more} sources in the last {secs} s",
                self.requests
            );
            let statuses: Vec<String> = self
                .by_status
                .iter()
                .map(|(s, n)| format!("{s}: {n}"))
                .collect();
            let _ = write!(line, " ({})", statuses.join(", "));
            let mut top: Vec<(&IpAddr, &u64)> = self.by_source.iter().collect();
            top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let top: Vec<String> = top
                .iter()
                .take(TOP)
                .map(|(ip, n)| format!("{ip} ({n})"))
                .collect();
            let _ = write!(line, ", top: {}", top.join(", "));
        }
        if self.bans > BAN_LINES {
            if !line.is_empty() {
                line.push_str("; ");
            }
            let _ = write!(
                line,
                "{} sources banned in the last {secs} s ({} not logged one by one)",
                self.bans,
                self.bans - BAN_LINES
            );
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn one_line_per_interval_with_top_sources() {
        let mut l = RejectLog::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for i in 0..50_000u64 {
            let src = if i % 5 == 0 { b } else { a };
            l.rejected(t(i / 10), 403, src);
            assert_eq!(l.poll(t(i / 10)), None, "{i}");
        }
        l.rejected(t(4_000), 481, b);
        let line = l.poll(t(10_000)).expect("summary");
        assert_eq!(
            line,
            "rejected 50001 requests from 2 sources in the last 10 s \
             (403: 50000, 481: 1), top: 192.0.2.1 (40000), 192.0.2.2 (10001)"
        );
        assert_eq!(l.poll(t(30_000)), None, "nothing new, nothing logged");
    }

    #[test]
    fn sources_are_bounded_and_bans_summarised() {
        let mut l = RejectLog::default();
        for i in 0..(MAX_SOURCES as u32 + 100) {
            l.rejected(t(0), 403, IpAddr::V4((0x0a00_0000 + i).into()));
        }
        assert_eq!(l.by_source.len(), MAX_SOURCES);
        let logged = (0..25).filter(|_| l.banned(t(0))).count();
        assert_eq!(logged, BAN_LINES as usize);
        let line = l.poll(t(10_000)).unwrap();
        assert!(
            line.starts_with("rejected 4196 requests from 4096+ sources"),
            "{line}"
        );
        assert!(line.ends_with("25 sources banned in the last 10 s (15 not logged one by one)"));
    }
}

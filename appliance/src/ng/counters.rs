//! Counters of the ng control protocol: written by the protocol core, read by `/metrics`.
//!
//! Plain atomics in fixed arrays (no lock, no allocation): the core increments them as it
//! answers, the admin API reads a [`NgStats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::request::Command;

/// The `result` of an answered request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `ok` (or `pong`).
    Ok,
    /// `error` with an `error-reason`.
    Error,
    /// `load limit`: refused for load to a proxy that supports the extension.
    LoadLimit,
}

impl Outcome {
    const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::Error, Outcome::LoadLimit];

    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::LoadLimit => "load_limit",
        }
    }
}

/// Why a request was refused (metric label of `portcullis_ng_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not an ng message: no cookie, not bencode, not a dictionary, a bad value.
    Malformed,
    /// Larger than `ng.max_message_size`.
    Oversized,
    /// A command, key, flag or value this node does not implement.
    Unsupported,
    /// A required key is missing (`call-id`, `from-tag`, `sdp`, …).
    Missing,
    /// No such call (or tag) for `answer`, `query`, fatal `delete`.
    UnknownCall,
    /// The SDP does not parse or cannot be anchored.
    Sdp,
    /// `ng.max_sessions` reached, no free media port, or a full data plane ring.
    Capacity,
}

impl ErrorKind {
    /// Every kind, in metric order.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Malformed,
        ErrorKind::Oversized,
        ErrorKind::Unsupported,
        ErrorKind::Missing,
        ErrorKind::UnknownCall,
        ErrorKind::Sdp,
        ErrorKind::Capacity,
    ];

    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Malformed => "malformed",
            ErrorKind::Oversized => "oversized",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Missing => "missing",
            ErrorKind::UnknownCall => "unknown_call",
            ErrorKind::Sdp => "sdp",
            ErrorKind::Capacity => "capacity",
        }
    }
}

/// Command label for requests whose command is unknown or unreadable.
pub const OTHER_COMMAND: &str = "other";

const N_COMMANDS: usize = Command::ALL.len() + 1;

/// The live counters.
#[derive(Debug, Default)]
pub struct NgCounters {
    commands: [[AtomicU64; 3]; N_COMMANDS],
    errors: [AtomicU64; ErrorKind::ALL.len()],
    sessions: AtomicU64,
    timeouts: AtomicU64,
    retransmissions: AtomicU64,
}

/// A snapshot of [`NgCounters`] for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NgStats {
    /// Requests answered, by command and result (every pair, zeros included).
    pub commands: Vec<(&'static str, &'static str, u64)>,
    /// Refused requests and undecodable datagrams, by reason.
    pub errors: Vec<(&'static str, u64)>,
    /// Live sessions (gauge).
    pub sessions: u64,
    /// Sessions deleted for the idle timeouts.
    pub timeouts: u64,
    /// Retransmitted requests answered from the reply cache.
    pub retransmissions: u64,
}

fn command_index(c: Option<Command>) -> usize {
    c.map_or(Command::ALL.len(), |c| c as usize)
}

impl NgCounters {
    /// Counts one answered request (`None`: unknown command).
    pub fn answered(&self, command: Option<Command>, outcome: Outcome) {
        if let Some(row) = self.commands.get(command_index(command)) {
            if let Some(c) = row.get(outcome as usize) {
                c.fetch_add(1, Relaxed);
            }
        }
    }

    /// Counts one refusal.
    pub fn error(&self, kind: ErrorKind) {
        if let Some(c) = self.errors.get(kind as usize) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Sets the live session gauge.
    pub fn set_sessions(&self, n: usize) {
        self.sessions.store(n as u64, Relaxed);
    }

    /// Counts sessions deleted for idleness.
    pub fn timed_out(&self, n: u64) {
        self.timeouts.fetch_add(n, Relaxed);
    }

    /// Counts a request answered from the reply cache.
    pub fn retransmission(&self) {
        self.retransmissions.fetch_add(1, Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> NgStats {
        let names = Command::ALL
            .iter()
            .map(|c| c.as_str())
            .chain(std::iter::once(OTHER_COMMAND));
        let mut commands = Vec::new();
        for (name, row) in names.zip(&self.commands) {
            for (o, c) in Outcome::ALL.iter().zip(row) {
                commands.push((name, o.as_str(), c.load(Relaxed)));
            }
        }
        NgStats {
            commands,
            errors: ErrorKind::ALL
                .iter()
                .zip(&self.errors)
                .map(|(k, c)| (k.as_str(), c.load(Relaxed)))
                .collect(),
            sessions: self.sessions.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            retransmissions: self.retransmissions.load(Relaxed),
        }
    }
}

/// Writes the `portcullis_ng_*` families of `s` (declared in the admin `FAMILIES` table).
pub fn render(e: &mut crate::admin::metrics::Encoder, s: &NgStats) {
    use crate::admin::metrics::Value as V;
    if e.family("portcullis_ng_commands_total") {
        for (command, result, n) in &s.commands {
            e.sample(&[("command", command), ("result", result)], V::Int(*n));
        }
    }
    if e.family("portcullis_ng_errors_total") {
        for (reason, n) in &s.errors {
            e.sample(&[("reason", reason)], V::Int(*n));
        }
    }
    e.single("portcullis_ng_sessions_active", s.sessions);
    e.single("portcullis_ng_sessions_timed_out_total", s.timeouts);
    e.single("portcullis_ng_retransmissions_total", s.retransmissions);
}

//! Registrations toward carriers (`[trunk.register]`) in the admin API
//! (`GET /api/v1/registrations`), the metrics and `portcullis status`.

use std::io::Write;

use portcullis_engine::b2bua::RegistrationStatus;
use portcullis_engine::registration::RegState;
use portcullis_engine::time::Timestamp;
use serde::{Deserialize, Serialize};

use super::metrics::{Encoder, Family, Kind, Value};

/// One registration as `GET /api/v1/registrations` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationInfo {
    /// The trunk it belongs to.
    pub trunk: String,
    /// Address of record.
    pub aor: String,
    /// Where REGISTERs go (`ip:port`).
    pub registrar: String,
    /// `unregistered`, `registering`, `registered`, `refreshing`, `failed` or `unregistering`.
    pub state: String,
    /// Seconds until the binding lapses (none without one).
    pub expires_in_s: Option<u64>,
    /// Seconds until the next REGISTER (refresh or retry).
    pub next_attempt_in_s: Option<u64>,
    /// Status of the registrar's last final answer.
    pub last_status: Option<u16>,
    /// Why the last attempt failed (none after a success).
    pub last_error: Option<String>,
    /// REGISTER requests sent.
    pub attempts: u64,
    /// Bindings granted.
    pub successes: u64,
    /// Failed attempts.
    pub failures: u64,
}

impl RegistrationInfo {
    /// The engine's status at `now`.
    #[must_use]
    pub fn new(s: &RegistrationStatus, now: Timestamp) -> Self {
        let secs_from_now = |t: Timestamp| {
            let d = t.saturating_duration_since(now);
            d.as_secs() + u64::from(d.subsec_nanos() > 0)
        };
        Self {
            trunk: s.trunk.clone(),
            aor: s.aor.clone(),
            registrar: s.registrar.to_string(),
            state: s.state.name().to_owned(),
            expires_in_s: s.bound_until.map(secs_from_now),
            next_attempt_in_s: s.next_attempt.map(secs_from_now),
            last_status: s.last_status,
            last_error: s.last_error.clone(),
            attempts: s.stats.attempts,
            successes: s.stats.successes,
            failures: s.stats.failures,
        }
    }
}

/// Metric families of the registrations (label `trunk`).
pub const FAMILIES: &[Family] = &[
    Family {
        name: "portcullis_registration_state",
        kind: Kind::Gauge,
        help: "Registration toward the carrier: 1 for the state it is in (label state), 0 for the others.",
    },
    Family {
        name: "portcullis_registration_expires_seconds",
        kind: Kind::Gauge,
        help: "Seconds until the registration's binding lapses (0 without one).",
    },
    Family {
        name: "portcullis_registration_attempts_total",
        kind: Kind::Counter,
        help: "REGISTER requests sent (challenge answers and un-REGISTER included).",
    },
    Family {
        name: "portcullis_registration_failures_total",
        kind: Kind::Counter,
        help: "Registration attempts that failed (refused, unanswered, transport failure).",
    },
];

/// Writes the registration families (none without registrations).
pub fn render(e: &mut Encoder, regs: &[RegistrationInfo]) {
    if regs.is_empty() {
        return;
    }
    if e.family("portcullis_registration_state") {
        for r in regs {
            for name in RegState::NAMES {
                e.sample(
                    &[("trunk", &r.trunk), ("state", name)],
                    Value::Int(u64::from(r.state == name)),
                );
            }
        }
    }
    let mut each = |name: &str, f: &dyn Fn(&RegistrationInfo) -> u64| {
        if e.family(name) {
            for r in regs {
                e.sample(&[("trunk", &r.trunk)], Value::Int(f(r)));
            }
        }
    };
    each("portcullis_registration_expires_seconds", &|r| {
        r.expires_in_s.unwrap_or(0)
    });
    each("portcullis_registration_attempts_total", &|r| r.attempts);
    each("portcullis_registration_failures_total", &|r| r.failures);
}

/// The registrations section of `portcullis status`.
///
/// # Errors
/// `out` failed.
pub fn status_table(out: &mut dyn Write, regs: &[RegistrationInfo]) -> std::io::Result<()> {
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let rows: Vec<Vec<String>> = regs
        .iter()
        .map(|r| {
            vec![
                r.trunk.clone(),
                r.aor.clone(),
                r.registrar.clone(),
                r.state.clone(),
                opt(r.expires_in_s),
                opt(r.next_attempt_in_s),
                format!("{}/{}/{}", r.attempts, r.successes, r.failures),
                match (&r.last_error, r.last_status) {
                    (Some(e), _) => e.clone(),
                    (None, Some(s)) => s.to_string(),
                    (None, None) => "-".to_owned(),
                },
            ]
        })
        .collect();
    super::client::table(
        out,
        &[
            "REGISTRATION",
            "AOR",
            "REGISTRAR",
            "STATE",
            "EXPIRES IN S",
            "NEXT IN S",
            "SENT/OK/FAILED",
            "LAST",
        ],
        &rows,
    )
}

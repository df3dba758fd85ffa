//! Client side of the admin API for the operator commands `portcullis status` and
//! `portcullis calls` (blocking `ureq`, plain HTTP to the admin address).
//!
//! The address defaults to `$PORTCULLIS_ADMIN`, else `127.0.0.1:8080` (the embedded
//! default's `[admin] listen`); the token to `$PORTCULLIS_ADMIN_TOKEN`. Exit status: 0 when
//! the appliance answered (and, for `status`, is ready); 1 otherwise.

use std::io::Write;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{CallInfo, Health, RegistrationInfo, TeamsInfo, TrunkInfo};

/// Default admin address of the CLI.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:8080";

/// Per-request timeout.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of the admin client (who is to blame is in the variant name).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered at the address.
    #[error("cannot reach the admin API at {url}: {reason}")]
    Unreachable {
        /// URL tried.
        url: String,
        /// Transport error.
        reason: String,
    },
    /// Wrong or missing token.
    #[error("the admin API refused the token (401): pass --token or set PORTCULLIS_ADMIN_TOKEN")]
    Unauthorized,
    /// Any other HTTP error status.
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        /// URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Response body.
        body: String,
    },
    /// The answer was not the expected JSON.
    #[error("{url}: unexpected answer: {reason}")]
    Decode {
        /// URL.
        url: String,
        /// Decoder error.
        reason: String,
    },
}

/// Where the admin API is and how to authenticate.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `host:port` or `http://host:port`.
    pub admin: String,
    /// Bearer token.
    pub token: Option<String>,
}

impl ClientOptions {
    /// Options from the command line, falling back on the environment and the default.
    #[must_use]
    pub fn from_args(admin: Option<String>, token: Option<String>) -> Self {
        let admin = admin
            .or_else(|| std::env::var("PORTCULLIS_ADMIN").ok())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_ADMIN.to_owned());
        let token = token
            .or_else(|| std::env::var("PORTCULLIS_ADMIN_TOKEN").ok())
            .filter(|s| !s.is_empty());
        Self { admin, token }
    }

    fn url(&self, path: &str) -> String {
        let base = self.admin.trim_end_matches('/');
        if base.starts_with("http://") || base.starts_with("https://") {
            format!("{base}{path}")
        } else {
            format!("http://{base}{path}")
        }
    }

    /// `GET path` decoded as JSON; `accept` lists non-2xx statuses whose body is still the
    /// answer (e.g. `503` of `/health`).
    fn get<T: DeserializeOwned>(&self, path: &str, accept: &[u16]) -> Result<T, ClientError> {
        self.request("GET", path, None, accept)
    }

    /// `method path` with an optional text body, decoded as JSON.
    fn request<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        accept: &[u16],
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let agent = ureq::AgentBuilder::new().timeout(TIMEOUT).build();
        let mut req = agent.request(method, &url);
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let sent = match body {
            Some(b) => req.send_string(b),
            None => req.call(),
        };
        let resp = match sent {
            Ok(r) => r,
            Err(ureq::Error::Status(401, _)) => return Err(ClientError::Unauthorized),
            Err(ureq::Error::Status(code, r)) if accept.contains(&code) => r,
            Err(ureq::Error::Status(status, r)) => {
                return Err(ClientError::Status {
                    url,
                    status,
                    body: r.into_string().unwrap_or_default(),
                })
            }
            Err(e) => {
                return Err(ClientError::Unreachable {
                    url,
                    reason: e.to_string(),
                })
            }
        };
        resp.into_json::<T>().map_err(|e| ClientError::Decode {
            url,
            reason: e.to_string(),
        })
    }

    /// `GET /health` (a `503` answer is a valid "not ready").
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn health(&self) -> Result<Health, ClientError> {
        self.get("/health", &[503])
    }

    /// `GET /api/v1/calls`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn calls(&self) -> Result<Vec<CallInfo>, ClientError> {
        self.get("/api/v1/calls", &[])
    }

    /// `GET /api/v1/trunks`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn trunks(&self) -> Result<Vec<TrunkInfo>, ClientError> {
        self.get("/api/v1/trunks", &[])
    }

    /// `GET /api/v1/registrations`.
    ///
    /// # Errors
    /// The API cannot be reached or refused the request.
    pub fn registrations(&self) -> Result<Vec<RegistrationInfo>, ClientError> {
        self.get("/api/v1/registrations", &[])
    }

    /// `GET /api/v1/teams`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn teams(&self) -> Result<TeamsInfo, ClientError> {
        self.get("/api/v1/teams", &[])
    }

    /// `GET /api/v1/log-level`: the log filter in force.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn log_level(&self) -> Result<String, ClientError> {
        let v: LogLevelBody = self.get("/api/v1/log-level", &[])?;
        Ok(v.level)
    }

    /// `PUT /api/v1/log-level`: replaces the log filter; the filter now in force.
    ///
    /// # Errors
    /// See [`ClientError`]; a refused filter is a `400` [`ClientError::Status`] whose body
    /// gives the reason.
    pub fn set_log_level(&self, level: &str) -> Result<String, ClientError> {
        let body = serde_json::json!({ "level": level }).to_string();
        let v: LogLevelBody = self.request("PUT", "/api/v1/log-level", Some(&body), &[])?;
        Ok(v.level)
    }
}

#[derive(Debug, serde::Deserialize)]
struct LogLevelBody {
    level: String,
}

/// `portcullis log-level [LEVEL]`: prints the log filter in force, after setting it to
/// `level` when given.
///
/// # Errors
/// The API cannot be reached or refused the request (a bad filter: HTTP 400 with the
/// reason), or `out` failed.
pub fn cmd_log_level(
    opts: &ClientOptions,
    level: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let now = match level {
        Some(l) => opts.set_log_level(l)?,
        None => opts.log_level()?,
    };
    writeln!(out, "{now}")?;
    Ok(())
}

/// What `portcullis status --json` prints.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct StatusReport {
    /// Readiness.
    pub health: Health,
    /// Live calls.
    pub calls_active: usize,
    /// Trunks.
    pub trunks: Vec<TrunkInfo>,
    /// Teams Direct Routing proxies, when `[teams]` is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams: Option<TeamsInfo>,
    /// Registrations toward carriers (`[trunk.register]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registrations: Vec<RegistrationInfo>,
}

/// `portcullis status`: readiness, live calls, trunks. Returns whether the appliance is ready.
///
/// # Errors
/// The API cannot be reached or refused the request, or `out` failed.
pub fn cmd_status(opts: &ClientOptions, json: bool, out: &mut dyn Write) -> anyhow::Result<bool> {
    let health = opts.health()?;
    let calls = opts.calls()?;
    let trunks = opts.trunks()?;
    let teams = Some(opts.teams()?).filter(|t| t.configured);
    let registrations = opts.registrations()?;
    let report = StatusReport {
        health,
        calls_active: calls.len(),
        trunks,
        teams,
        registrations,
    };
    if json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        let state = if report.health.ready {
            "ready"
        } else {
            "NOT READY"
        };
        writeln!(out, "portcullis at {}: {state}", opts.admin)?;
        for r in &report.health.reasons {
            writeln!(out, "  - {r}")?;
        }
        writeln!(out, "active calls: {}", report.calls_active)?;
        let rows: Vec<Vec<String>> = report
            .trunks
            .iter()
            .map(|t| {
                vec![
                    t.name.clone(),
                    t.address.clone(),
                    t.transport.clone(),
                    t.media.clone(),
                    t.active_calls.to_string(),
                    t.max_calls
                        .map_or_else(|| "-".to_owned(), |m| m.to_string()),
                ]
            })
            .collect();
        table(
            out,
            &["TRUNK", "ADDRESS", "TRANSPORT", "MEDIA", "ACTIVE", "MAX"],
            &rows,
        )?;
        targets_table(out, &report.trunks)?;
        if let Some(t) = &report.teams {
            teams_table(out, t)?;
        }
        if !report.registrations.is_empty() {
            super::registrations::status_table(out, &report.registrations)?;
        }
    }
    Ok(report.health.ready)
}

/// Per-target health of the trunks in `portcullis status`.
fn targets_table(out: &mut dyn Write, trunks: &[TrunkInfo]) -> std::io::Result<()> {
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut rows = Vec::new();
    for t in trunks {
        let Some(tt) = &t.targets else { continue };
        if let Some(e) = &tt.error {
            writeln!(
                out,
                "trunk {}: {} ({}): {e}",
                tt.trunk,
                tt.domain.as_deref().unwrap_or("-"),
                tt.resolution
            )?;
        }
        for g in &tt.targets {
            rows.push(vec![
                tt.trunk.clone(),
                g.address.clone(),
                format!("{}/{}", g.priority, g.weight),
                if g.usable {
                    g.state.clone()
                } else {
                    format!("{} (not usable)", g.state)
                },
                g.calls.to_string(),
                opt(g.held_off_s),
                format!(
                    "{}/{}/{}",
                    g.options_sent, g.options_answered, g.options_missed
                ),
            ]);
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    table(
        out,
        &[
            "TRUNK",
            "TARGET",
            "PRIO/WEIGHT",
            "STATE",
            "CALLS",
            "HELD OFF S",
            "OPTIONS SENT/ANSWERED/MISSED",
        ],
        &rows,
    )
}

/// The Teams section of `portcullis status`.
fn teams_table(out: &mut dyn Write, t: &TeamsInfo) -> std::io::Result<()> {
    writeln!(
        out,
        "teams: SBC {}, new calls go to {}",
        t.sbc_fqdn.as_deref().unwrap_or("-"),
        t.selected
            .as_deref()
            .unwrap_or("NO PROXY (all down or held off)")
    )?;
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let rows: Vec<Vec<String>> = t
        .proxies
        .iter()
        .map(|p| {
            vec![
                p.proxy.clone(),
                p.address.clone(),
                p.state.clone(),
                if p.selected { "*" } else { "" }.to_owned(),
                p.misses.to_string(),
                opt(p.held_off_s),
                opt(p.last_answer_s),
                p.last_status
                    .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                format!(
                    "{}/{}/{}",
                    p.options_sent, p.options_answered, p.options_missed
                ),
            ]
        })
        .collect();
    table(
        out,
        &[
            "PROXY",
            "ADDRESS",
            "STATE",
            "IN USE",
            "MISSES",
            "HELD OFF S",
            "LAST ANSWER S AGO",
            "LAST STATUS",
            "OPTIONS SENT/ANSWERED/MISSED",
        ],
        &rows,
    )
}

/// `portcullis calls`: one line per live call (or the JSON list).
///
/// # Errors
/// The API cannot be reached or refused the request, or `out` failed.
pub fn cmd_calls(opts: &ClientOptions, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let calls = opts.calls()?;
    if json {
        serde_json::to_writer_pretty(&mut *out, &calls)?;
        writeln!(out)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = calls
        .iter()
        .map(|c| {
            vec![
                c.id.to_string(),
                c.inbound_trunk.clone(),
                c.outbound_trunk.clone().unwrap_or_else(|| "-".to_owned()),
                c.calling.clone(),
                c.called.clone(),
                if c.answered { "answered" } else { "setup" }.to_owned(),
                format_duration(c.duration_s),
            ]
        })
        .collect();
    table(
        out,
        &["ID", "FROM", "TO", "CALLING", "CALLED", "STATE", "DURATION"],
        &rows,
    )?;
    writeln!(out, "{} call(s)", calls.len())?;
    Ok(())
}

fn write_row(out: &mut dyn Write, cells: &[&str], widths: &[usize]) -> std::io::Result<()> {
    let mut s = String::new();
    for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            s.push_str("  ");
        }
        s.push_str(c);
        s.extend(std::iter::repeat_n(
            ' ',
            w.saturating_sub(c.chars().count()),
        ));
    }
    writeln!(out, "{}", s.trim_end())
}

/// `h:mm:ss`.
fn format_duration(s: u64) -> String {
    format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// Left-aligned columns separated by two spaces; control characters from the peer are
/// replaced so a hostile number cannot move the cursor.
pub(crate) fn table(
    out: &mut dyn Write,
    head: &[&str],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect()
    };
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| clean(c)).collect())
        .collect();
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    write_row(out, head, &widths)?;
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        write_row(out, &cells, &widths)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let o = ClientOptions {
            admin: "127.0.0.1:9".into(),
            token: None,
        };
        assert_eq!(o.url("/health"), "http://127.0.0.1:9/health");
        let o = ClientOptions {
            admin: "http://[::1]:9/".into(),
            token: None,
        };
        assert_eq!(o.url("/health"), "http://[::1]:9/health");
    }

    #[test]
    fn table_aligns_and_sanitizes() {
        let mut out = Vec::new();
        table(
            &mut out,
            &["A", "BB"],
            &[
                vec!["xxx".into(), "y\x1b[2J".into()],
                vec!["z".into(), "w".into()],
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let s = String::from_utf8(out).unwrap_or_default();
        assert_eq!(s, "A    BB\nxxx  y?[2J\nz    w\n");
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(0), "0:00:00");
        assert_eq!(format_duration(3725), "1:02:05");
    }

    #[test]
    fn unreachable_is_reported() {
        // Port 9 (discard) on loopback: nothing listens in the test environment.
        let o = ClientOptions {
            admin: "127.0.0.1:9".into(),
            token: None,
        };
        match o.health() {
            Err(ClientError::Unreachable { url, .. }) => assert!(url.ends_with("/health")),
            other => panic!("expected Unreachable, got {other:?}"),
        }
    }
}

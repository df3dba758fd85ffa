//! Registration toward carriers (RFC 3261 §10): one client state machine per
//! configured registration, sans-IO.
//!
//! A [`Registration`] builds the REGISTER requests (the B2BUA sends them as
//! client non-INVITE transactions, so retransmission and Timer F are the
//! transaction layer's) and reads their final responses:
//!
//! ```text
//!  Unregistered ──start──► Registering ──2xx──► Registered{expires} ──refresh due──► Refreshing
//!        ▲                  │  ▲                     ▲                                  │
//!        │        failure   │  │ back-off            └───────────────2xx────────────────┘
//!        │                  ▼  │                                                        │
//!        │                  Failed{retry_at} ◄───────────────failure────────────────────┘
//!        │
//!        └──── final answer / timeout ──── Unregistering ◄── unregister (shutdown)
//! ```
//!
//! - One Call-ID and From tag per registration for the process's life, CSeq
//!   increasing by one per request (§10.2, §10.2.4); identifiers come from the
//!   caller's identifier stream.
//! - `401`/`407` (§22.2): the REGISTER is resent once with credentials
//!   ([`crate::digest::answer`]); a second challenge is a failure unless it says
//!   `stale=true` (RFC 7616 §3.3), answered once more.
//! - `423 Interval Too Brief` (§10.2.8): resent at once with the registrar's
//!   `Min-Expires` (at most [`MAX_EXPIRES`]), once per attempt.
//! - `2xx`: the binding lasts the `expires` the registrar gave our Contact (else
//!   the `Expires` header, else what we asked); the refresh is due
//!   [`refresh_in`] later, before it lapses.
//! - Any other final answer, Timer F or a transport failure: `Failed`, retried
//!   after a back-off that starts at `retry_min` and doubles up to `retry_max`
//!   (a `Retry-After` stretches it, capped at `retry_max`); a success resets it.
//! - [`Registration::unregister`] sends our Contact with `Expires: 0` (only our
//!   binding, never `*`), answers a challenge to it once, and ends
//!   `Unregistered` on any final answer or failure.
//!
//! Invariants: at most one REGISTER in flight per registration; the state
//! changes only on a final answer, a failure, a due time or `unregister`.

use std::time::Duration;

use portcullis_sip::header::Auth;

use crate::config::Credentials;
use crate::digest::{answer, cnonce, select_challenge, ChallengeKind, ClientRequest};
use crate::time::Timestamp;
use crate::transaction::message::{addr_uri, header_param};
use crate::transaction::{Method, SipMsg, Transport};

/// Longest expiry we ask for or accept from a `423` (one day).
pub const MAX_EXPIRES: Duration = Duration::from_secs(86_400);

/// Longest a refresh starts before the binding lapses.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// When to refresh a binding granted for `granted`: half-way for short
/// bindings, [`REFRESH_MARGIN`] before the end for long ones.
#[must_use]
pub fn refresh_in(granted: Duration) -> Duration {
    granted.saturating_sub(REFRESH_MARGIN.min(granted / 2))
}

/// One registration as configured (the appliance's `[trunk.register]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationConfig {
    /// The trunk it belongs to: calls to our Contact from the registrar or the
    /// trunk's sources are that trunk's calls.
    pub trunk: String,
    /// Where REGISTERs go (resolved).
    pub registrar: std::net::SocketAddr,
    /// SNI / certificate name toward a TLS registrar.
    pub tls_server_name: Option<String>,
    pub transport: Transport,
    /// Request-URI of the REGISTER (`sip:domain`, §10.2).
    pub registrar_uri: String,
    /// Address of record (`sip:user@domain`): From and To.
    pub aor: String,
    /// User part of our Contact; requests to it are this trunk's.
    pub contact_user: String,
    /// Expiry we ask for.
    pub expires: Duration,
    /// Digest credentials for the registrar's challenges.
    pub credentials: Option<Credentials>,
    /// First retry delay after a failure; doubles up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
}

/// Where a registration stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegState {
    /// No binding, nothing in flight (before the start, after an un-REGISTER).
    Unregistered,
    /// First REGISTER (or one after a failure) in flight.
    Registering,
    /// Bound until `expires_at`; refresh due at `refresh_at`.
    Registered {
        expires_at: Timestamp,
        refresh_at: Timestamp,
    },
    /// A refresh in flight; the binding holds until `expires_at`.
    Refreshing { expires_at: Timestamp },
    /// The last attempt failed; the next one is at `retry_at`.
    Failed { retry_at: Timestamp },
    /// `Expires: 0` in flight (shutdown).
    Unregistering,
}

impl RegState {
    /// Lower-case name for status and metrics.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Unregistered => "unregistered",
            Self::Registering => "registering",
            Self::Registered { .. } => "registered",
            Self::Refreshing { .. } => "refreshing",
            Self::Failed { .. } => "failed",
            Self::Unregistering => "unregistering",
        }
    }

    /// Every state name, in the order of [`Self::name`].
    pub const NAMES: [&'static str; 6] = [
        "unregistered",
        "registering",
        "registered",
        "refreshing",
        "failed",
        "unregistering",
    ];
}

/// Counters of one registration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistrationStats {
    /// REGISTER requests sent (challenge answers and un-REGISTER included).
    pub attempts: u64,
    /// Bindings granted (2xx with a non-zero expiry).
    pub successes: u64,
    /// Failed attempts (refusal, timeout, transport failure).
    pub failures: u64,
}

/// What to do after a final answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Nothing to send now.
    Idle,
    /// Send this REGISTER now (a challenge answer or a `423` retry).
    Send(SipMsg),
}

/// One registration's state machine (see the module docs).
#[derive(Debug)]
pub struct Registration {
    cfg: RegistrationConfig,
    call_id: String,
    from_tag: String,
    cseq: u32,
    state: RegState,
    /// Expiry asked for (raised by a `423`).
    asked: Duration,
    backoff: Duration,
    /// Challenges answered in the current attempt.
    challenges: u8,
    retried_423: bool,
    /// The request in flight (for challenge answers).
    pending: Option<SipMsg>,
    /// When the binding we hold lapses (kept through failures).
    bound_until: Option<Timestamp>,
    last_status: Option<u16>,
    last_error: Option<String>,
    stats: RegistrationStats,
}

impl Registration {
    /// A registration in `Unregistered`, first REGISTER due at once; `call_id`
    /// and `from_tag` come from the identifier stream.
    #[must_use]
    pub fn new(cfg: RegistrationConfig, call_id: String, from_tag: String) -> Self {
        let asked = cfg.expires.min(MAX_EXPIRES);
        let backoff = cfg.retry_min;
        Self {
            cfg,
            call_id,
            from_tag,
            cseq: 0,
            state: RegState::Unregistered,
            asked,
            backoff,
            challenges: 0,
            retried_423: false,
            pending: None,
            bound_until: None,
            last_status: None,
            last_error: None,
            stats: RegistrationStats::default(),
        }
    }

    #[must_use]
    pub fn config(&self) -> &RegistrationConfig {
        &self.cfg
    }

    #[must_use]
    pub fn state(&self) -> RegState {
        self.state
    }

    #[must_use]
    pub fn stats(&self) -> RegistrationStats {
        self.stats
    }

    /// Status of the last final answer.
    #[must_use]
    pub fn last_status(&self) -> Option<u16> {
        self.last_status
    }

    /// Why the last attempt failed (cleared by a success).
    #[must_use]
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// When the binding lapses, if we hold one at `now`.
    #[must_use]
    pub fn bound_until(&self, now: Timestamp) -> Option<Timestamp> {
        self.bound_until.filter(|t| *t > now)
    }

    /// Whether a REGISTER of ours is in flight.
    #[must_use]
    pub fn in_flight(&self) -> bool {
        matches!(
            self.state,
            RegState::Registering | RegState::Refreshing { .. } | RegState::Unregistering
        )
    }

    /// When [`Self::start`] is due (`None`: not before an answer, or never).
    #[must_use]
    pub fn due(&self) -> Option<Timestamp> {
        match self.state {
            RegState::Unregistered if self.cseq == 0 => Some(Timestamp::ZERO),
            RegState::Registered { refresh_at, .. } => Some(refresh_at),
            RegState::Failed { retry_at } => Some(retry_at),
            _ => None,
        }
    }

    /// Starts a (re-)registration when due at `now`: the REGISTER to send,
    /// without Via (the transaction layer's caller adds it).
    pub fn start(&mut self, now: Timestamp, contact_hostport: &str) -> Option<SipMsg> {
        if self.due().is_none_or(|d| d > now) {
            return None;
        }
        self.state = match self.bound_until(now) {
            Some(expires_at) => RegState::Refreshing { expires_at },
            None => RegState::Registering,
        };
        self.challenges = 0;
        self.retried_423 = false;
        Some(self.request(self.asked, contact_hostport))
    }

    /// Un-REGISTERs (shutdown): `Expires: 0` for our Contact when a binding may
    /// exist or a REGISTER is in flight; `None` when there is nothing to remove.
    pub fn unregister(&mut self, now: Timestamp, contact_hostport: &str) -> Option<SipMsg> {
        let bound = self.bound_until(now).is_some() || self.in_flight();
        if !bound || self.state == RegState::Unregistering {
            if self.state != RegState::Unregistering {
                self.state = RegState::Unregistered;
                self.pending = None;
            }
            return None;
        }
        self.state = RegState::Unregistering;
        self.challenges = 0;
        Some(self.request(Duration::ZERO, contact_hostport))
    }

    fn request(&mut self, expires: Duration, contact_hostport: &str) -> SipMsg {
        self.cseq = self.cseq.saturating_add(1);
        self.stats.attempts += 1;
        let c = &self.cfg;
        let tparam = match c.transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Tls => ";transport=tls",
        };
        let mut r = SipMsg::request(Method::Register, &c.registrar_uri);
        r.push_header("Max-Forwards", "70");
        r.push_header("From", format!("<{}>;tag={}", c.aor, self.from_tag));
        r.push_header("To", format!("<{}>", c.aor));
        r.push_header("Call-ID", &self.call_id);
        r.push_header("CSeq", format!("{} REGISTER", self.cseq));
        r.push_header(
            "Contact",
            format!("<sip:{}@{contact_hostport}{tparam}>", c.contact_user),
        );
        r.push_header("Expires", expires.as_secs().to_string());
        self.pending = Some(r.clone());
        r
    }

    /// A final answer to our REGISTER in flight.
    pub fn on_response(&mut self, now: Timestamp, resp: &SipMsg, random: u64) -> Next {
        let Some(status) = resp.status() else {
            return Next::Idle;
        };
        if status < 200 || !self.in_flight() {
            return Next::Idle;
        }
        self.last_status = Some(status);
        let unregistering = self.state == RegState::Unregistering;
        if let Some(kind) = ChallengeKind::from_status(status) {
            return match self.answer_challenge(kind, resp, random) {
                Ok(r) => Next::Send(r),
                Err(why) => self.fail(now, why, None),
            };
        }
        if unregistering {
            self.finish_unregister();
            return Next::Idle;
        }
        match status {
            200..=299 => {
                let granted = self.granted(resp);
                if granted.is_zero() {
                    return self.fail(now, "the registrar granted no time".into(), None);
                }
                let expires_at = now + granted;
                self.state = RegState::Registered {
                    expires_at,
                    refresh_at: now + refresh_in(granted),
                };
                self.bound_until = Some(expires_at);
                self.backoff = self.cfg.retry_min;
                self.last_error = None;
                self.pending = None;
                self.stats.successes += 1;
                Next::Idle
            }
            423 if !self.retried_423 => {
                let min = resp
                    .header("Min-Expires")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs)
                    .filter(|m| *m > self.asked && *m <= MAX_EXPIRES);
                match min {
                    Some(m) => {
                        self.retried_423 = true;
                        self.asked = m;
                        let hp = self.pending_contact_hostport();
                        Next::Send(self.request(m, &hp))
                    }
                    None => self.fail(now, "423 without a usable Min-Expires".into(), None),
                }
            }
            _ => {
                let retry_after = resp
                    .header("Retry-After")
                    .and_then(|v| v.split(';').next())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let reason = format!(
                    "{status} {}",
                    resp.as_owned().reason().unwrap_or_default().trim()
                );
                self.fail(now, reason.trim().to_owned(), retry_after)
            }
        }
    }

    /// Timer F or a transport failure on our REGISTER in flight.
    pub fn on_failure(&mut self, now: Timestamp, why: &str) {
        if self.state == RegState::Unregistering {
            self.last_error = Some(why.to_owned());
            self.finish_unregister();
        } else if self.in_flight() {
            let _ = self.fail(now, why.to_owned(), None);
        }
    }

    fn finish_unregister(&mut self) {
        self.state = RegState::Unregistered;
        self.bound_until = None;
        self.pending = None;
    }

    fn fail(&mut self, now: Timestamp, why: String, retry_after: Option<Duration>) -> Next {
        self.stats.failures += 1;
        self.last_error = Some(why);
        self.pending = None;
        if self.state == RegState::Unregistering {
            self.finish_unregister();
            return Next::Idle;
        }
        let wait = retry_after
            .map_or(self.backoff, |r| r.max(self.backoff))
            .min(self.cfg.retry_max);
        self.state = RegState::Failed {
            retry_at: now + wait,
        };
        self.backoff = self.backoff.saturating_mul(2).min(self.cfg.retry_max);
        Next::Idle
    }

    /// The host:port our pending request's Contact names (kept on resends).
    fn pending_contact_hostport(&self) -> String {
        let prefix = format!("sip:{}@", self.cfg.contact_user);
        self.pending
            .as_ref()
            .and_then(|p| p.header("Contact"))
            .map(addr_uri)
            .and_then(|u| u.strip_prefix(&prefix))
            .map(|rest| rest.split(';').next().unwrap_or("").to_owned())
            .unwrap_or_default()
    }

    fn answer_challenge(
        &mut self,
        kind: ChallengeKind,
        resp: &SipMsg,
        random: u64,
    ) -> Result<SipMsg, String> {
        let status = resp.status().unwrap_or(0);
        let Some(creds) = self.cfg.credentials.clone() else {
            return Err(format!("{status}: challenged, no credentials configured"));
        };
        let (chal_name, cred_name) = match kind {
            ChallengeKind::Www => ("WWW-Authenticate", "Authorization"),
            ChallengeKind::Proxy => ("Proxy-Authenticate", "Proxy-Authorization"),
        };
        let challenges: Vec<Auth<'_>> = resp
            .header_values(chal_name)
            .filter_map(|v| Auth::parse(v, kind.challenge_header()).ok())
            .collect();
        let Some((chal, _)) = select_challenge(&challenges) else {
            return Err(format!("{status}: no digest challenge we support"));
        };
        let stale = chal
            .param("stale")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        // §22.2: credentials refused unless the nonce was merely stale (once more).
        if self.challenges >= 2 || (self.challenges == 1 && !stale) {
            return Err(format!("{status}: credentials refused"));
        }
        let Some(mut req) = self.pending.clone() else {
            return Err(format!("{status}: no request to answer with"));
        };
        let uri = self.cfg.registrar_uri.clone();
        let cn = cnonce(random);
        let value = answer(
            chal,
            &ClientRequest {
                method: "REGISTER",
                uri: &uri,
                username: &creds.username,
                password: &creds.password,
                cnonce: &cn,
                nc: 1,
            },
        )
        .map_err(|e| format!("{status}: cannot answer the challenge: {e}"))?;
        self.challenges += 1;
        self.cseq = self.cseq.saturating_add(1);
        self.stats.attempts += 1;
        req.set_header("CSeq", format!("{} REGISTER", self.cseq));
        req.remove_header("Authorization");
        req.remove_header("Proxy-Authorization");
        req.push_header(cred_name, value);
        self.pending = Some(req.clone());
        Ok(req)
    }

    /// The expiry the registrar gave our binding (§10.2.4): our Contact's
    /// `expires` in the 2xx, else its `Expires` header, else what we asked.
    fn granted(&self, resp: &SipMsg) -> Duration {
        let ours = format!("sip:{}@", self.cfg.contact_user);
        let from_contact = resp
            .header_values("Contact")
            .filter(|v| {
                addr_uri(v)
                    .to_ascii_lowercase()
                    .starts_with(&ours.to_ascii_lowercase())
            })
            .find_map(|v| header_param(v, "expires").and_then(|e| e.parse::<u64>().ok()));
        let secs = from_contact.or_else(|| {
            resp.header("Expires")
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
        secs.map_or(self.asked, Duration::from_secs)
            .min(MAX_EXPIRES)
    }
}

/// The user part of a request's Request-URI, read from the request line only
/// (classification runs before parsing): `None` for responses and URIs
/// without a user.
#[must_use]
pub fn request_uri_user(bytes: &[u8]) -> Option<&str> {
    let line = bytes.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.split(' ');
    let method = parts.next()?;
    if method.starts_with("SIP/") {
        return None;
    }
    let uri = parts.next()?;
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))?;
    let (userinfo, _) = rest.split_once('@')?;
    let user = userinfo.split(':').next()?;
    (!user.is_empty()).then_some(user)
}

#[cfg(test)]
mod tests;

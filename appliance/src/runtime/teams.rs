//! Microsoft Teams Direct Routing in the running appliance: the engine task's
//! driver of the sans-IO [`ProxyHealth`].
//!
//! What it does, all inside the engine task (no lock, no extra task):
//!
//! - sends the OPTIONS pings of [`ProxyHealth::poll_transmit`] over TLS to each
//!   proxy, with SNI and certificate check for the proxy's name and the SBC
//!   certificate as client certificate. The drivers reuse one connection per
//!   proxy and name for pings and calls alike (`SipTransports::send`);
//! - diverts the answers to those pings ([`ProxyHealth::is_ping_answer`]) away
//!   from the B2BUA into [`ProxyHealth::handle_answer`];
//! - feeds transport failures of a proxy (connect refused, TLS refused, reset)
//!   to [`ProxyHealth::handle_transport_error`], and a `503` with `Retry-After`
//!   that a proxy gives a call to [`ProxyHealth::handle_call_response`];
//! - reconnects a proxy whose connection broke with an exponential back-off
//!   ([`RECONNECT_MIN`] doubling up to the OPTIONS interval) by sending a
//!   CRLFCRLF keep-alive (RFC 5626 §4.4.1), so the connection is there when the
//!   next call comes;
//! - after every input (and when a hold-off expires) re-points the `teams` trunk
//!   at the proxy [`ProxyHealth::pick`] chooses ([`teams::retarget`] then
//!   `B2bua::set_config`): new calls go there, calls in progress keep theirs.
//!
//! Invariant: the B2BUA's configuration differs from the loaded one only in the
//! `teams` trunk's address and TLS name.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_engine::b2bua::B2bua;
use portcullis_engine::teams::{
    self, HealthConfig, HealthEvent, ProxyHealth, ProxyId, ProxyState, ProxyTarget,
};
use portcullis_engine::time::Timestamp;
use portcullis_net::{Outbound, SipTransports, Transport as NetTransport};
use serde::{Deserialize, Serialize};

use super::media::DataplaneMedia;

/// First reconnection delay after a proxy connection broke.
pub const RECONNECT_MIN: Duration = Duration::from_secs(1);

/// What the runtime needs to watch the proxies (from `[teams]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamsPlan {
    /// Identity, interval, miss threshold.
    pub health: HealthConfig,
    /// Proxies in failover order, resolved.
    pub proxies: Vec<ProxyTarget>,
}

/// One proxy as shown by the admin API (`GET /api/v1/teams`), `portcullis status`
/// and the metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamsProxyStatus {
    /// Proxy FQDN (`sip.pstnhub.microsoft.com`).
    pub proxy: String,
    /// Where it is reached (`ip:port`).
    pub address: String,
    /// `up` or `down`.
    pub state: String,
    /// New calls toward `teams` go to this proxy now.
    pub selected: bool,
    /// Unanswered OPTIONS in a row.
    pub misses: u32,
    /// Seconds left of a `503 Retry-After` hold-off (none when not held off).
    pub held_off_s: Option<u64>,
    /// Seconds since its last final answer to an OPTIONS.
    pub last_answer_s: Option<u64>,
    /// Status of its last final answer.
    pub last_status: Option<u16>,
    /// OPTIONS sent.
    pub options_sent: u64,
    /// Final answers received.
    pub options_answered: u64,
    /// OPTIONS that went unanswered (timeout or broken connection).
    pub options_missed: u64,
}

/// Counters of the driver itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TeamsCounters {
    /// Times new calls were moved to another proxy.
    pub failovers: u64,
    /// Answers from a proxy that could not be read.
    pub malformed_answers: u64,
}

#[derive(Debug)]
struct Reconnect {
    due: Option<Timestamp>,
    backoff: Duration,
}

/// The health monitor and its wiring (see the module docs).
#[derive(Debug)]
pub struct TeamsDriver {
    plan: TeamsPlan,
    health: ProxyHealth,
    reconnect: Vec<Reconnect>,
    counters: TeamsCounters,
}

fn is_ping_request(bytes: &[u8]) -> bool {
    bytes.starts_with(b"OPTIONS ") && bytes.windows(6).any(|w| w == b"tmopt-")
}

/// Status and `Retry-After` of a response, when it is one.
fn status_and_retry_after(bytes: &[u8]) -> Option<(u16, Option<u32>)> {
    let msg = portcullis_sip::Message::parse(bytes).ok()?;
    let status = msg.status()?;
    let retry = msg.retry_after().and_then(Result::ok).map(|r| r.seconds);
    Some((status, retry))
}

impl TeamsDriver {
    /// A monitor for `plan`; the first pings are due at `now`; its identifiers come
    /// from `entropy` (the OS CSPRNG in the appliance).
    ///
    /// # Errors
    /// The plan is refused by [`ProxyHealth::new`] (no proxy, zero interval…).
    pub fn new(
        plan: TeamsPlan,
        now: Timestamp,
        entropy: impl portcullis_engine::entropy::Entropy + 'static,
    ) -> Result<Self, teams::TeamsError> {
        let health = ProxyHealth::new(plan.health.clone(), plan.proxies.clone(), now, entropy)?;
        let reconnect = plan
            .proxies
            .iter()
            .map(|_| Reconnect {
                due: None,
                backoff: RECONNECT_MIN,
            })
            .collect();
        Ok(Self {
            plan,
            health,
            reconnect,
            counters: TeamsCounters::default(),
        })
    }

    /// The plan in use.
    #[must_use]
    pub fn plan(&self) -> &TeamsPlan {
        &self.plan
    }

    /// Driver counters.
    #[must_use]
    pub fn counters(&self) -> TeamsCounters {
        self.counters
    }

    /// When [`Self::handle_timeout`] must run next.
    #[must_use]
    pub fn poll_timeout(&self, now: Timestamp) -> Option<Timestamp> {
        let reconnect = self.reconnect.iter().filter_map(|r| r.due).min();
        [
            self.health.poll_timeout(),
            self.health.next_hold_expiry(now),
            reconnect,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Expires pings, queues due pings, reconnects broken proxy connections.
    pub fn handle_timeout(&mut self, now: Timestamp, net: &SipTransports) {
        self.health.handle_timeout(now);
        for i in 0..self.reconnect.len() {
            if self.reconnect[i].due.is_some_and(|d| d <= now) {
                self.reconnect[i].due = None;
                self.open(now, ProxyId(i), net);
            }
        }
    }

    /// Opens (or reuses) the connection to `id` with a CRLFCRLF keep-alive.
    fn open(&mut self, now: Timestamp, id: ProxyId, net: &SipTransports) {
        let Some(t) = self.health.target(id) else {
            return;
        };
        let out = Outbound {
            tls_server_name: Some(t.host.clone()),
            ..Outbound::new(NetTransport::Tls, t.addr, b"\r\n\r\n".to_vec())
        };
        tracing::debug!(proxy = %t.host, addr = %t.addr, "reconnecting to Teams proxy");
        if let Err(e) = net.send(out) {
            tracing::debug!(proxy = id.0, error = %e, "reconnect refused");
            self.connection_failed(now, id);
        }
    }

    /// The TLS name of the proxy at `addr`: in-dialog requests of a call set up
    /// through a proxy the `teams` trunk no longer points at still need it to
    /// (re)open a verified connection.
    #[must_use]
    pub fn server_name_for(&self, addr: SocketAddr) -> Option<String> {
        let id = self.health.proxy_by_addr(addr)?;
        self.health.target(id).map(|t| t.host.clone())
    }

    /// A message from `remote`. Returns `true` when it was an answer to one of
    /// our pings (consumed here; the B2BUA must not see it).
    pub fn handle_message(&mut self, now: Timestamp, remote: SocketAddr, bytes: &[u8]) -> bool {
        if ProxyHealth::is_ping_answer(bytes) {
            match self.health.handle_answer(now, bytes) {
                Ok(id) => tracing::trace!(proxy = id.0, "OPTIONS answered"),
                Err(teams::TeamsError::Malformed(reason)) => {
                    self.counters.malformed_answers += 1;
                    tracing::debug!(%remote, %reason, "unreadable answer to an OPTIONS ping");
                }
                Err(e) => tracing::debug!(%remote, error = %e, "late or stray OPTIONS answer"),
            }
            return true;
        }
        // RFC 3261 §21.5.4: a 503 with Retry-After to a call holds that proxy off.
        if bytes.starts_with(b"SIP/2.0 503") {
            if let Some(id) = self.health.proxy_by_addr(remote) {
                if let Some((status, retry)) = status_and_retry_after(bytes) {
                    self.health.handle_call_response(now, id, status, retry);
                }
            }
        }
        false
    }

    /// Bytes toward `remote` could not be delivered. A ping among them is a miss.
    pub fn handle_send_failed(&mut self, now: Timestamp, remote: SocketAddr, bytes: &[u8]) {
        if let Some(id) = self.health.proxy_by_addr(remote) {
            if is_ping_request(bytes) || bytes == b"\r\n\r\n" {
                self.connection_failed(now, id);
            }
        }
    }

    /// A connection to `remote` opened: when it is a proxy, its back-off resets.
    pub fn handle_connection_opened(&mut self, remote: SocketAddr) {
        if let Some(id) = self.health.proxy_by_addr(remote) {
            if let Some(r) = self.reconnect.get_mut(id.0) {
                r.backoff = RECONNECT_MIN;
                r.due = None;
            }
        }
    }

    /// A connection to `remote` ended (`local`: we closed it or are shutting down).
    pub fn handle_connection_closed(&mut self, now: Timestamp, remote: SocketAddr, local: bool) {
        if local {
            return;
        }
        if let Some(id) = self.health.proxy_by_addr(remote) {
            self.connection_failed(now, id);
        }
    }

    /// The outstanding ping (if any) is a miss; reconnect after the back-off.
    fn connection_failed(&mut self, now: Timestamp, id: ProxyId) {
        self.health.handle_transport_error(now, id);
        let cap = self.plan.health.options_interval.max(RECONNECT_MIN);
        if let Some(r) = self.reconnect.get_mut(id.0) {
            if r.due.is_none() {
                r.due = Some(now + r.backoff);
                r.backoff = (r.backoff * 2).min(cap);
            }
        }
    }

    /// Sends due pings, logs state changes, and re-points the `teams` trunk of
    /// the B2BUA's configuration at the proxy picked now.
    pub fn flush(&mut self, now: Timestamp, net: &SipTransports, b2b: &mut B2bua<DataplaneMedia>) {
        while let Some(p) = self.health.poll_transmit() {
            let out = Outbound {
                tls_server_name: Some(p.server_name.clone()),
                ..Outbound::new(NetTransport::Tls, p.addr, p.bytes)
            };
            if let Err(e) = net.send(out) {
                tracing::debug!(proxy = %p.server_name, error = %e, "OPTIONS not sent");
                self.connection_failed(now, p.proxy);
            }
        }
        while let Some(ev) = self.health.poll_event() {
            let (id, up) = match ev {
                HealthEvent::ProxyUp(id) => (id, true),
                HealthEvent::ProxyDown(id) => (id, false),
            };
            let host = self.health.target(id).map_or("?", |t| t.host.as_str());
            if up {
                tracing::info!(proxy = %host, "Teams proxy up (answers OPTIONS)");
            } else {
                tracing::warn!(proxy = %host, "Teams proxy down (OPTIONS unanswered)");
            }
        }
        if let Some(cfg) = teams::retarget(b2b.config(), &self.health, now) {
            let to = self
                .health
                .pick(now)
                .and_then(|id| self.health.target(id))
                .map(|t| format!("{} ({})", t.host, t.addr))
                .unwrap_or_default();
            match b2b.set_config(Arc::new(cfg)) {
                Ok(()) => {
                    self.counters.failovers += 1;
                    tracing::info!(proxy = %to, "new calls toward Teams go to this proxy");
                }
                Err(e) => tracing::error!(error = %e, "cannot re-point the teams trunk"),
            }
        }
    }

    /// Per-proxy view for the admin API and metrics.
    #[must_use]
    pub fn status(&self, now: Timestamp) -> Vec<TeamsProxyStatus> {
        let picked = self.health.pick(now);
        self.health
            .status()
            .into_iter()
            .map(|s| TeamsProxyStatus {
                address: self
                    .health
                    .target(s.id)
                    .map(|t| t.addr.to_string())
                    .unwrap_or_default(),
                proxy: s.host,
                state: match s.state {
                    ProxyState::Up => "up",
                    ProxyState::Down => "down",
                }
                .to_owned(),
                selected: picked == Some(s.id),
                misses: s.misses,
                held_off_s: s
                    .held_until
                    .filter(|t| *t > now)
                    .map(|t| t.saturating_duration_since(now).as_secs().max(1)),
                last_answer_s: s
                    .last_answer
                    .map(|t| now.saturating_duration_since(t).as_secs()),
                last_status: s.last_status,
                options_sent: s.pings_sent,
                options_answered: s.answers,
                options_missed: s.misses_total,
            })
            .collect()
    }
}

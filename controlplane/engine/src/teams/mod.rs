//! Microsoft Teams Direct Routing: per-proxy OPTIONS health and failover order.
//!
//! Sans-IO, quinn-style: [`ProxyHealth`] takes `now` and bytes in and gives
//! OPTIONS requests ([`ProxyHealth::poll_transmit`]), its next deadline
//! ([`ProxyHealth::poll_timeout`]) and state changes ([`ProxyHealth::poll_event`])
//! out. The driver owns the TLS connections (one per proxy, reused for calls)
//! and feeds back answers ([`ProxyHealth::handle_answer`]) and transport
//! failures ([`ProxyHealth::handle_transport_error`]).
//!
//! # Health rules
//!
//! - Every proxy starts [`ProxyState::Up`] (optimistic: calls can go out before
//!   the first round of pings has been answered) and is pinged at once, then
//!   every `options_interval`.
//! - Over TLS a ping is sent once (RFC 3261 §17.1.2.2); it is a *miss* when no
//!   final answer arrives within `answer_timeout` (Timer F = 64·T1 = 32 s,
//!   capped at the interval) or the transport reports a failure.
//! - `miss_threshold` misses in a row demote the proxy to [`ProxyState::Down`];
//!   `recovery_count` final answers in a row (default 1) promote it back to `Up`.
//!   The state machine is [`crate::routing::Probe`], the one trunk targets use.
//! - A `503` with `Retry-After` (to a ping or to a call, RFC 3261 §21.5.4)
//!   keeps the proxy out of the failover order until the time given, without
//!   demoting it.
//! - [`ProxyHealth::failover_order`] lists the proxies that are `Up` and not
//!   held off, in configured order; [`ProxyHealth::pick`] is its first entry.
//!
//! Invariants: at most one ping outstanding per proxy; `misses` never exceeds
//! `miss_threshold` while `Down` (it saturates); time comes only from callers.

mod options;
mod wiring;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

pub use options::{
    answer_options, build_options, parse_answer, PingAnswer, PingIds, SbcIdentity, SBC_TLS_PORT,
    TEAMS_ALLOW, TEAMS_SUPPORTED,
};

pub use wiring::{retarget, TEAMS_TRUNK};

use crate::entropy::{id_u64, Entropy};
use crate::routing::{HealthPolicy, Probe, Transition};
use crate::time::Timestamp;

/// Errors of the Teams layer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TeamsError {
    /// The peer sent something that is not a SIP response we can read.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// A well-formed message that is not an answer to one of our pings.
    #[error("not an answer to one of our OPTIONS")]
    NotOurs,
    /// We are misconfigured.
    #[error("invalid Teams configuration: {0}")]
    Config(&'static str),
}

/// Index of a proxy in the configured order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProxyId(pub usize);

/// One Microsoft SIP proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyTarget {
    /// FQDN (`sip.pstnhub.microsoft.com`): Request-URI, To, SNI and the name
    /// its certificate must carry.
    pub host: String,
    pub port: u16,
    /// Where to connect (DNS or a `[teams.resolve]` override).
    pub addr: SocketAddr,
}

/// Settings of the health monitor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    pub identity: SbcIdentity,
    pub options_interval: Duration,
    /// Unanswered pings in a row before demotion (≥ 1).
    pub miss_threshold: u32,
    /// Answered pings in a row before a `Down` proxy is promoted (≥ 1).
    pub recovery_count: u32,
    /// How long a ping may stay unanswered (capped at `options_interval`).
    pub answer_timeout: Duration,
}

impl HealthConfig {
    /// Defaults: Timer F (64 × 500 ms = 32 s) as answer timeout, 3 misses.
    #[must_use]
    pub fn new(sbc_fqdn: &str, options_interval: Duration) -> Self {
        Self {
            identity: SbcIdentity::new(sbc_fqdn),
            options_interval,
            miss_threshold: 3,
            recovery_count: 1,
            answer_timeout: Duration::from_secs(32),
        }
    }

    /// The health policy of every proxy (the one trunk targets use too).
    #[must_use]
    pub fn policy(&self) -> HealthPolicy {
        HealthPolicy {
            interval: Some(self.options_interval),
            miss_threshold: self.miss_threshold,
            recovery_count: self.recovery_count,
            answer_timeout: self.answer_timeout,
        }
    }
}

/// Health of one proxy (the state of every health-checked target).
pub use crate::routing::TargetState as ProxyState;

/// An OPTIONS ping to send to a proxy over its TLS connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PingTransmit {
    pub proxy: ProxyId,
    pub addr: SocketAddr,
    /// SNI and expected certificate name.
    pub server_name: String,
    pub bytes: Vec<u8>,
}

/// State changes, for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthEvent {
    ProxyUp(ProxyId),
    ProxyDown(ProxyId),
}

/// Snapshot of one proxy for the admin status and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyStatus {
    pub id: ProxyId,
    pub host: String,
    pub state: ProxyState,
    /// Misses in a row.
    pub misses: u32,
    /// Held off by a `503 Retry-After` until this time.
    pub held_until: Option<Timestamp>,
    pub last_answer: Option<Timestamp>,
    pub last_status: Option<u16>,
    pub pings_sent: u64,
    pub answers: u64,
    pub misses_total: u64,
}

#[derive(Debug)]
struct Entry {
    target: ProxyTarget,
    /// Health (the state machine trunk targets use too); ping tokens are CSeqs.
    probe: Probe,
    cseq: u32,
    call_id: String,
    from_tag: String,
}

/// Per-proxy OPTIONS health and failover order (see the module docs).
#[derive(Debug)]
pub struct ProxyHealth {
    cfg: HealthConfig,
    proxies: Vec<Entry>,
    transmits: VecDeque<PingTransmit>,
    events: VecDeque<HealthEvent>,
    /// Call-IDs, tags and branches of the pings (identifier draws).
    entropy: Box<dyn Entropy>,
}

impl ProxyHealth {
    /// A monitor for `proxies` (in failover order); the first pings are due at `now`.
    /// Its Call-IDs, tags and branches come from `entropy` (the appliance injects the
    /// OS-seeded CSPRNG, simulations a [`crate::entropy::SeededEntropy`]).
    pub fn new(
        cfg: HealthConfig,
        proxies: Vec<ProxyTarget>,
        now: Timestamp,
        entropy: impl Entropy + 'static,
    ) -> Result<Self, TeamsError> {
        if proxies.is_empty() {
            return Err(TeamsError::Config("no proxy"));
        }
        cfg.policy().validate().map_err(TeamsError::Config)?;
        if cfg.identity.fqdn.parse::<std::net::IpAddr>().is_ok() || !cfg.identity.fqdn.contains('.')
        {
            return Err(TeamsError::Config(
                "the SBC FQDN must be a DNS name, not an IP",
            ));
        }
        let mut entropy: Box<dyn Entropy> = Box::new(entropy);
        let fqdn = cfg.identity.fqdn.clone();
        let policy = cfg.policy();
        let proxies = proxies
            .into_iter()
            .enumerate()
            .map(|(i, target)| Entry {
                target,
                probe: Probe::new(&policy, now),
                cseq: 0,
                call_id: format!("tmopt-{i}-{:016x}@{fqdn}", id_u64(&mut *entropy)),
                from_tag: format!("{:016x}", id_u64(&mut *entropy)),
            })
            .collect();
        Ok(Self {
            cfg,
            proxies,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            entropy,
        })
    }

    /// The configuration in use.
    #[must_use]
    pub fn config(&self) -> &HealthConfig {
        &self.cfg
    }

    fn report(&mut self, id: ProxyId, t: Option<Transition>) {
        match t {
            Some(Transition::Up) => self.events.push_back(HealthEvent::ProxyUp(id)),
            Some(Transition::Down) => self.events.push_back(HealthEvent::ProxyDown(id)),
            None => {}
        }
    }

    /// Expires overdue pings (misses) and queues the pings that are due.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let policy = self.cfg.policy();
        for i in 0..self.proxies.len() {
            let t = self.proxies[i].probe.expire(&policy, now);
            self.report(ProxyId(i), t);
            if self.proxies[i].probe.ping_due(now) {
                self.send_ping(now, ProxyId(i));
            }
        }
    }

    fn send_ping(&mut self, now: Timestamp, id: ProxyId) {
        let branch = format!("z9hG4bKtm{:016x}", id_u64(&mut *self.entropy));
        let policy = self.cfg.policy();
        let Some(e) = self.proxies.get_mut(id.0) else {
            return;
        };
        e.cseq = e.cseq.wrapping_add(1).max(1);
        let ids = PingIds {
            call_id: e.call_id.clone(),
            cseq: e.cseq,
            branch,
            from_tag: e.from_tag.clone(),
        };
        let msg = build_options(&self.cfg.identity, &e.target.host, e.target.port, &ids);
        e.probe.ping_sent(&policy, now, u64::from(ids.cseq));
        self.transmits.push_back(PingTransmit {
            proxy: id,
            addr: e.target.addr,
            server_name: e.target.host.clone(),
            bytes: msg.to_bytes(),
        });
    }

    /// Whether `bytes` look like an answer to one of our pings (cheap Call-ID
    /// prefix test, so the driver can divert them before the B2BUA sees them).
    #[must_use]
    pub fn is_ping_answer(bytes: &[u8]) -> bool {
        bytes.starts_with(b"SIP/2.0 ") && bytes.windows(6).any(|w| w == b"tmopt-")
    }

    /// Feeds a response received from a proxy. Returns the proxy it answered
    /// for; `Err(NotOurs)` for a response that matches no outstanding ping
    /// (late answers to an expired ping included), `Err(Malformed)` for garbage.
    ///
    /// Provisional responses (1xx) are ignored. Any final response proves the
    /// proxy alive (`recovery_count` of them in a row bring a `Down` proxy back
    /// `Up`); a `503` with `Retry-After` also holds it off.
    pub fn handle_answer(&mut self, now: Timestamp, bytes: &[u8]) -> Result<ProxyId, TeamsError> {
        let a = parse_answer(bytes)?;
        let i = self
            .proxies
            .iter()
            .position(|e| {
                e.call_id == a.call_id && e.probe.outstanding() == Some(u64::from(a.cseq))
            })
            .ok_or(TeamsError::NotOurs)?;
        let id = ProxyId(i);
        if a.status < 200 {
            return Ok(id);
        }
        let policy = self.cfg.policy();
        let t = self.proxies[i]
            .probe
            .answered(&policy, now, u64::from(a.cseq), a.status, a.retry_after)
            .map_err(|_| TeamsError::NotOurs)?;
        self.report(id, t);
        Ok(id)
    }

    /// The connection to `proxy` failed (connect refused, TLS rejected, reset):
    /// the outstanding ping, if any, counts as a miss now.
    pub fn handle_transport_error(&mut self, _now: Timestamp, proxy: ProxyId) {
        let policy = self.cfg.policy();
        let t = self
            .proxies
            .get_mut(proxy.0)
            .and_then(|e| e.probe.transport_failed(&policy));
        self.report(proxy, t);
    }

    /// A call attempt through `proxy` got `status`; a `503` with `Retry-After`
    /// keeps the proxy out of the failover order for that long (RFC 3261 §21.5.4).
    pub fn handle_call_response(
        &mut self,
        now: Timestamp,
        proxy: ProxyId,
        status: u16,
        retry_after: Option<u32>,
    ) {
        if let (503, Some(s), Some(e)) = (status, retry_after, self.proxies.get_mut(proxy.0)) {
            e.probe.hold_off(now, Duration::from_secs(u64::from(s)));
        }
    }

    /// The earliest end of a `503 Retry-After` hold-off still running at
    /// `now` (the driver re-picks the proxy then).
    #[must_use]
    pub fn next_hold_expiry(&self, now: Timestamp) -> Option<Timestamp> {
        self.proxies
            .iter()
            .filter_map(|e| e.probe.held_until(now))
            .min()
    }

    /// Proxies to try for a new call, in order: `Up` and not held off.
    #[must_use]
    pub fn failover_order(&self, now: Timestamp) -> Vec<ProxyId> {
        self.proxies
            .iter()
            .enumerate()
            .filter(|(_, e)| e.probe.usable(now))
            .map(|(i, _)| ProxyId(i))
            .collect()
    }

    /// The first proxy of [`Self::failover_order`]; `None` when none is usable
    /// (the B2BUA then answers `503` with `Retry-After`).
    #[must_use]
    pub fn pick(&self, now: Timestamp) -> Option<ProxyId> {
        self.proxies
            .iter()
            .position(|e| e.probe.usable(now))
            .map(ProxyId)
    }

    /// The proxy's target.
    #[must_use]
    pub fn target(&self, id: ProxyId) -> Option<&ProxyTarget> {
        self.proxies.get(id.0).map(|e| &e.target)
    }

    /// The proxy whose address is `addr` (to attribute a call response or a
    /// transport error to it).
    #[must_use]
    pub fn proxy_by_addr(&self, addr: SocketAddr) -> Option<ProxyId> {
        self.proxies
            .iter()
            .position(|e| e.target.addr == addr)
            .map(ProxyId)
    }

    /// Current state of one proxy.
    #[must_use]
    pub fn state(&self, id: ProxyId) -> Option<ProxyState> {
        self.proxies.get(id.0).map(|e| e.probe.state())
    }

    /// Snapshot of every proxy, in configured order.
    #[must_use]
    pub fn status(&self) -> Vec<ProxyStatus> {
        self.proxies
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let c = e.probe.counters();
                let (last_answer, last_status) = e.probe.last_answer();
                ProxyStatus {
                    id: ProxyId(i),
                    host: e.target.host.clone(),
                    state: e.probe.state(),
                    misses: e.probe.misses(),
                    held_until: e.probe.held_until(Timestamp::ZERO),
                    last_answer,
                    last_status,
                    pings_sent: c.pings_sent,
                    answers: c.answers,
                    misses_total: c.misses_total,
                }
            })
            .collect()
    }

    /// Next ping to send.
    pub fn poll_transmit(&mut self) -> Option<PingTransmit> {
        self.transmits.pop_front()
    }

    /// Next state change.
    pub fn poll_event(&mut self) -> Option<HealthEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must run next: the earliest ping due or
    /// answer deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.proxies
            .iter()
            .filter_map(|e| e.probe.poll_timeout())
            .min()
    }
}

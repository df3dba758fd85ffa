//! Resolution of trunk names and domains (RFC 3263, RFC 2782) off the engine task.
//!
//! One tokio task per trunk to resolve, each with the shared `hickory-resolver`
//! ([`DnsDriver::start`]); answers go to the engine task over a bounded channel
//! ([`DnsDriver::recv`]) and from there into the engine
//! (`B2bua::set_trunk_targets`). The engine never waits on DNS: until a first
//! answer the trunk has no target (calls fail over or get `503`).
//!
//! - `host:port` ([`Query::Host`]): every A/AAAA record is a target on that port
//!   (RFC 3263 §4.2, a port given: no NAPTR/SRV).
//! - a domain ([`Query::Domain`]): NAPTR records whose service matches the
//!   trunk's transport (`SIP+D2U`, `SIP+D2T`, `SIPS+D2T`, flag `s`) give the SRV
//!   name, in (order, preference); without them `_sip._udp`, `_sip._tcp` or
//!   `_sips._tcp` of the domain (RFC 3263 §4.1); the SRV records give priority,
//!   weight, port and host, whose A/AAAA records are the targets (RFC 2782);
//!   without SRV records, the domain's own A/AAAA on 5060 (5061 for TLS).
//!
//! Each answer is re-resolved when its smallest TTL ends (clamped to
//! `[dns] min_ttl..max_ttl`); a failed lookup is retried after `min_ttl`.
//! Invariant: at most one lookup in flight per trunk; the channel is bounded.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use portcullis_engine::routing::{TargetSpec, TargetUpdate};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::Transport;

/// Longest one resolution (all its queries) may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers queued toward the engine task.
const QUEUE: usize = 256;

/// Most targets kept from one answer.
const MAX_TARGETS: usize = 64;

/// What to resolve for one trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `name:port`: A/AAAA only.
    Host {
        /// The name.
        name: String,
        /// The port of every target.
        port: u16,
    },
    /// A domain: NAPTR → SRV → A/AAAA.
    Domain {
        /// The domain.
        name: String,
        /// The trunk's transport (selects the NAPTR service and the SRV prefix).
        transport: Transport,
    },
}

/// One trunk to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsJob {
    /// Trunk name.
    pub trunk: String,
    /// What to ask.
    pub query: Query,
}

/// Everything to resolve, and how (from `[dns]` and the trunks).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsPlan {
    /// DNS servers (`ip:port`); empty = the system's.
    pub servers: Vec<SocketAddr>,
    /// Shortest re-resolution period.
    pub min_ttl: Duration,
    /// Longest re-resolution period.
    pub max_ttl: Duration,
    /// One per trunk with a name.
    pub jobs: Vec<DnsJob>,
}

/// One answer for the engine.
#[derive(Debug, Clone)]
pub struct DnsAnswer {
    /// Trunk name.
    pub trunk: String,
    /// Targets and how long they hold, or the failure; the TTL is relative to now.
    pub result: Result<(Vec<TargetSpec>, Duration), String>,
}

impl DnsAnswer {
    /// The engine's form, the TTL ending `now + ttl` (engine time).
    pub fn update(self, now: portcullis_engine::time::Timestamp) -> TargetUpdate {
        match self.result {
            Ok((targets, ttl)) => TargetUpdate::Resolved {
                targets,
                expires: now + ttl,
            },
            Err(e) => TargetUpdate::Failed(e),
        }
    }
}

/// The running resolution tasks of one plan (aborted when dropped).
#[derive(Debug)]
pub struct DnsDriver {
    plan: DnsPlan,
    tasks: JoinSet<()>,
    rx: mpsc::Receiver<DnsAnswer>,
}

impl DnsDriver {
    /// Starts one task per job of `plan`.
    ///
    /// # Errors
    /// The system resolver configuration cannot be read (no `[dns] servers`).
    pub fn start(plan: DnsPlan) -> Result<Self, String> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut tasks = JoinSet::new();
        if !plan.jobs.is_empty() {
            let resolver = resolver(&plan.servers)?;
            for job in plan.jobs.clone() {
                let r = resolver.clone();
                let tx = tx.clone();
                let (lo, hi) = (plan.min_ttl, plan.max_ttl);
                tasks.spawn(async move { run_job(r, job, tx, lo, hi).await });
            }
        }
        Ok(Self { plan, tasks, rx })
    }

    /// The plan in use.
    #[must_use]
    pub fn plan(&self) -> &DnsPlan {
        &self.plan
    }

    /// The next answer (pending forever when there is nothing to resolve).
    pub async fn recv(&mut self) -> Option<DnsAnswer> {
        if self.tasks.is_empty() {
            return std::future::pending().await;
        }
        self.rx.recv().await
    }
}

fn resolver(servers: &[SocketAddr]) -> Result<TokioResolver, String> {
    let mut b = if servers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| format!("system resolver: {e}"))?
    } else {
        let ns = servers
            .iter()
            .map(|s| {
                let mut n = NameServerConfig::udp_and_tcp(s.ip());
                for c in &mut n.connections {
                    c.port = s.port();
                }
                n
            })
            .collect();
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(ns),
            TokioRuntimeProvider::default(),
        )
    };
    let o = b.options_mut();
    // TTLs are ours to honour: every re-resolution asks the servers.
    o.cache_size = 0;
    o.timeout = Duration::from_secs(2);
    o.attempts = 2;
    b.build().map_err(|e| format!("resolver: {e}"))
}

async fn run_job(
    r: TokioResolver,
    job: DnsJob,
    tx: mpsc::Sender<DnsAnswer>,
    min_ttl: Duration,
    max_ttl: Duration,
) {
    loop {
        let result = match tokio::time::timeout(LOOKUP_TIMEOUT, resolve(&r, &job.query)).await {
            Ok(Ok((t, ttl))) => Ok((t, ttl.clamp(min_ttl, max_ttl))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("no answer within {}s", LOOKUP_TIMEOUT.as_secs())),
        };
        let wait = match &result {
            Ok((_, ttl)) => *ttl,
            Err(_) => min_ttl,
        };
        let answer = DnsAnswer {
            trunk: job.trunk.clone(),
            result,
        };
        if tx.send(answer).await.is_err() {
            return;
        }
        tokio::time::sleep(wait).await;
    }
}

/// NAPTR service of a transport (RFC 3263 §4.1).
fn service(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "SIP+D2U",
        Transport::Tcp => "SIP+D2T",
        Transport::Tls | Transport::Mtls => "SIPS+D2T",
    }
}

/// SRV prefix of a transport when no NAPTR applies (RFC 3263 §4.1).
fn srv_prefix(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "_sip._udp",
        Transport::Tcp => "_sip._tcp",
        Transport::Tls | Transport::Mtls => "_sips._tcp",
    }
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

/// Resolves one query: targets in SRV order and the smallest TTL.
///
/// # Errors
/// A message saying which lookup failed and why. No records at all is not an
/// error: it is an empty answer (the trunk then has no target).
pub async fn resolve(r: &TokioResolver, q: &Query) -> Result<(Vec<TargetSpec>, Duration), String> {
    match q {
        Query::Host { name, port } => {
            let (ips, ttl) = addresses(r, name).await?;
            let t = ips
                .into_iter()
                .map(|ip| TargetSpec {
                    addr: SocketAddr::new(ip, *port),
                    priority: 0,
                    weight: 1,
                })
                .collect();
            Ok((t, ttl))
        }
        Query::Domain { name, transport } => domain(r, name, *transport).await,
    }
}

fn lookup_error(what: &str, name: &str, e: &impl std::fmt::Display) -> String {
    format!("{what} {name}: {e}")
}

async fn domain(
    r: &TokioResolver,
    name: &str,
    transport: Transport,
) -> Result<(Vec<TargetSpec>, Duration), String> {
    let mut ttl = u32::MAX;
    // NAPTR (RFC 3263 §4.1, RFC 3403): the SRV name for our transport.
    let mut srv_name = None;
    match r.lookup(fqdn(name), RecordType::NAPTR).await {
        Ok(l) => {
            let mut recs: Vec<(u16, u16, String)> = l
                .answers()
                .iter()
                .filter_map(|rec| match &rec.data {
                    RData::NAPTR(n) => {
                        let svc = String::from_utf8_lossy(&n.services).to_ascii_uppercase();
                        let flags = String::from_utf8_lossy(&n.flags).to_ascii_lowercase();
                        (svc == service(transport) && flags.contains('s')).then(|| {
                            ttl = ttl.min(rec.ttl);
                            (n.order, n.preference, n.replacement.to_string())
                        })
                    }
                    _ => None,
                })
                .collect();
            recs.sort();
            srv_name = recs.into_iter().next().map(|(_, _, n)| n);
        }
        Err(e) if e.is_no_records_found() => {}
        Err(e) => return Err(lookup_error("NAPTR", name, &e)),
    }
    let srv_name = srv_name.unwrap_or_else(|| format!("{}.{}", srv_prefix(transport), fqdn(name)));
    let mut srvs: Vec<(u16, u16, u16, String)> = Vec::new();
    match r.lookup(srv_name.as_str(), RecordType::SRV).await {
        Ok(l) => {
            for rec in l.answers() {
                if let RData::SRV(s) = &rec.data {
                    ttl = ttl.min(rec.ttl);
                    srvs.push((s.priority, s.weight, s.port, s.target.to_string()));
                }
            }
        }
        Err(e) if e.is_no_records_found() => {}
        Err(e) => return Err(lookup_error("SRV", &srv_name, &e)),
    }
    if srvs.is_empty() {
        // RFC 3263 §4.2: no SRV: the domain itself on the transport's default port.
        let port = if matches!(transport, Transport::Tls | Transport::Mtls) {
            5061
        } else {
            5060
        };
        let (ips, t) = addresses(r, name).await?;
        let targets = ips
            .into_iter()
            .map(|ip| TargetSpec {
                addr: SocketAddr::new(ip, port),
                priority: 0,
                weight: 1,
            })
            .collect();
        return Ok((targets, t.min(Duration::from_secs(u64::from(ttl)))));
    }
    srvs.sort_by_key(|s| (s.0, std::cmp::Reverse(s.1)));
    let mut targets = Vec::new();
    for (priority, weight, port, host) in srvs {
        // RFC 2782: a target of "." means the service is not available there.
        if host == "." || port == 0 {
            continue;
        }
        let (ips, t) = addresses(r, &host).await?;
        ttl = ttl.min(u32::try_from(t.as_secs()).unwrap_or(u32::MAX));
        for ip in ips {
            if targets.len() < MAX_TARGETS {
                targets.push(TargetSpec {
                    addr: SocketAddr::new(ip, port),
                    priority,
                    weight,
                });
            }
        }
    }
    Ok((targets, Duration::from_secs(u64::from(ttl))))
}

/// A and AAAA records of `name` (none is an empty answer) and their smallest TTL.
async fn addresses(r: &TokioResolver, name: &str) -> Result<(Vec<IpAddr>, Duration), String> {
    match r.lookup_ip(fqdn(name)).await {
        Ok(l) => {
            let ttl = l
                .as_lookup()
                .answers()
                .iter()
                .map(|r| r.ttl)
                .min()
                .unwrap_or(u32::MAX);
            let ips: Vec<IpAddr> = l.iter().take(MAX_TARGETS).collect();
            Ok((ips, Duration::from_secs(u64::from(ttl))))
        }
        Err(e) if e.is_no_records_found() => Ok((Vec::new(), Duration::from_secs(60))),
        Err(e) => Err(lookup_error("A/AAAA", name, &e)),
    }
}

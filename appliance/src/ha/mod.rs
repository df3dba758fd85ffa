//! An active/standby pair (`[ha]`, `docs/ha.md`): answered calls replicated to Redis
//! off the engine task, restored by the standby when keepalived makes it master.
//!
//! - [`driver`]: the engine task's side: it drains the engine's dirty calls after
//!   each turn, exports them (with the data plane's SRTP state and latched peers)
//!   and queues the writes on a bounded channel, never waiting; a write that does
//!   not fit is retried on a later tick; it restores calls on takeover.
//! - [`store`]: the Redis side: the writer task (pipelined batches, CAS by version,
//!   expiry), the loader of a takeover, the journal check.
//! - [`crypto`]: every record is sealed (AES-256-GCM) with the pair's key file.
//! - [`warm`]: a standby keeps the live calls at hand (only what changed is read) and
//!   their media armed in its data plane, so media flows as soon as the service
//!   addresses move, and a takeover reads only what changed since.
//!
//! The engine task costs an export and a channel send per changed call; the call's
//! own signalling never waits on Redis. Redis down: calls go on, the pair is marked
//! degraded (status, metrics), writes are kept and the whole state is written again
//! once Redis answers.

pub mod crypto;
pub mod driver;
pub mod store;
pub mod warm;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use portcullis_dataplane::LegResume;
use portcullis_engine::ha::CallSnapshot;
use portcullis_rtp::srtp::SrtpResume;
use serde::{Deserialize, Serialize};

use crate::config::{HaConfig, HaRole};
use crypto::Sealer;

/// What is stored per call (sealed): the engine's snapshot and, per media stream,
/// what the data plane carries over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaRecord {
    pub call: CallSnapshot,
    pub media: Vec<[ResumeRecord; 2]>,
}

/// [`LegResume`] in a serializable form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeRecord {
    /// (SSRC, highest index, next SRTCP index) of what the peer sends us.
    pub srtp_in: Option<(u32, u64, u32)>,
    /// The same for what we send the peer.
    pub srtp_out: Option<(u32, u64, u32)>,
    pub latched: Option<SocketAddr>,
}

fn srtp(s: Option<SrtpResume>) -> Option<(u32, u64, u32)> {
    s.map(|s| (s.ssrc, s.index, s.srtcp_next))
}

fn srtp_back(s: Option<(u32, u64, u32)>) -> Option<SrtpResume> {
    s.map(|(ssrc, index, srtcp_next)| SrtpResume {
        ssrc,
        index,
        srtcp_next,
    })
}

impl From<LegResume> for ResumeRecord {
    fn from(r: LegResume) -> Self {
        Self {
            srtp_in: srtp(r.srtp_in),
            srtp_out: srtp(r.srtp_out),
            latched: r.latched,
        }
    }
}

impl From<ResumeRecord> for LegResume {
    fn from(r: ResumeRecord) -> Self {
        Self {
            srtp_in: srtp_back(r.srtp_in),
            srtp_out: srtp_back(r.srtp_out),
            latched: r.latched,
        }
    }
}

/// Counters of the pair (Prometheus `portcullis_ha_*`).
#[derive(Debug, Default)]
pub struct HaCounters {
    /// Call records written to Redis.
    pub writes: AtomicU64,
    /// Ended calls removed from Redis.
    pub ended: AtomicU64,
    /// Failed Redis connections or batches.
    pub errors: AtomicU64,
    /// Writes that did not fit the queue (written again later).
    pub queue_full: AtomicU64,
    /// Takeovers performed.
    pub takeovers: AtomicU64,
    /// Calls restored by takeovers, and calls that could not be.
    pub restored: AtomicU64,
    pub restore_failed: AtomicU64,
    /// Records that did not open or parse.
    pub bad_records: AtomicU64,
    /// Journal records not written at start because the pair carried the call on.
    pub journal_skipped: AtomicU64,
    /// Calls left open by the last stop whose record waited for Redis (unreachable at
    /// start) instead of being written at once.
    pub journal_deferred: AtomicU64,
    /// Media pairs a standby holds armed ahead of a takeover (a gauge).
    pub prearmed: AtomicU64,
}

/// State shared by the engine driver, the writer task and the admin API.
#[derive(Debug)]
pub struct HaShared {
    pub cfg: HaConfig,
    pub sealer: Sealer,
    role: AtomicU8,
    degraded: AtomicBool,
    /// Set when Redis comes back after failing: the driver writes every call again.
    resync: AtomicBool,
    last_error: Mutex<Option<String>>,
    pub counters: HaCounters,
    /// The live calls as last read from Redis, with their versions: a standby keeps it
    /// current ([`warm`]) so that a takeover reads only what changed since.
    pub warm: Mutex<std::collections::HashMap<String, (u64, HaRecord)>>,
}

/// The pair's state for `/api/v1/ha` and the status page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HaStatus {
    pub role: HaRole,
    pub peer: String,
    /// Redis writes are failing: calls go on, a takeover now would lose what changed.
    pub degraded: bool,
    pub last_error: Option<String>,
    pub writes: u64,
    pub errors: u64,
    pub queue_full: u64,
    pub takeovers: u64,
    pub restored: u64,
    pub restore_failed: u64,
    /// Calls cut by this node's last stop whose CDR waited for Redis (unreachable at
    /// start) to say whether the pair carried them on.
    pub journal_deferred: u64,
    /// Media pairs this standby holds armed ahead of a takeover (`docs/ha.md`).
    pub prearmed: u64,
}

/// What a takeover did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TakeoverReport {
    /// Records found in Redis.
    pub found: usize,
    /// Calls restored (now live here).
    pub restored: usize,
    /// Already live here (a repeated order).
    pub already: usize,
    /// Refused (unknown trunk, ports taken, bad record...).
    pub failed: usize,
}

impl HaShared {
    /// The pair's shared state; reads the key file.
    ///
    /// # Errors
    /// The key file cannot be read or is malformed.
    pub fn new(cfg: HaConfig) -> Result<Arc<Self>, crypto::SealError> {
        let sealer = Sealer::from_key_file(&cfg.key_file)?;
        Ok(Arc::new(Self {
            role: AtomicU8::new(role_code(cfg.role)),
            cfg,
            sealer,
            degraded: AtomicBool::new(false),
            resync: AtomicBool::new(false),
            last_error: Mutex::new(None),
            counters: HaCounters::default(),
            warm: Mutex::new(std::collections::HashMap::new()),
        }))
    }

    /// The role now.
    pub fn role(&self) -> HaRole {
        if self.role.load(Ordering::Relaxed) == 1 {
            HaRole::Active
        } else {
            HaRole::Standby
        }
    }

    /// Takes the active role.
    pub fn set_role(&self, role: HaRole) {
        self.role.store(role_code(role), Ordering::Relaxed);
    }

    /// Whether Redis writes are failing.
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// A connection or a batch failed.
    pub fn failed(&self, e: &str) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, "HA degraded: Redis writes failing; calls go on");
        }
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(e.to_owned());
    }

    /// A batch went through.
    pub fn succeeded(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("HA: Redis answers again; writing every call again");
            self.resync.store(true, Ordering::Relaxed);
        }
    }

    /// Takes the resync request (see [`Self::succeeded`]).
    pub fn take_resync(&self) -> bool {
        self.resync.swap(false, Ordering::Relaxed)
    }

    /// Status for the admin API.
    pub fn status(&self) -> HaStatus {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HaStatus {
            role: self.role(),
            peer: self.cfg.peer.clone(),
            degraded: self.degraded(),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            writes: g(&c.writes),
            errors: g(&c.errors),
            queue_full: g(&c.queue_full),
            takeovers: g(&c.takeovers),
            restored: g(&c.restored),
            restore_failed: g(&c.restore_failed),
            journal_deferred: g(&c.journal_deferred),
            prearmed: g(&c.prearmed),
        }
    }
}

/// How long the engine task may take to restore a takeover's calls.
pub const TAKEOVER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Starts the pair: reads the key file, spawns the Redis writer task (on the current
/// tokio runtime) behind a queue of `[ha] queue` writes.
///
/// # Errors
/// The key file cannot be read or is malformed.
pub fn start(cfg: HaConfig) -> Result<(Arc<HaShared>, driver::HaDriver), crypto::SealError> {
    let (tx, rx) = tokio::sync::mpsc::channel(cfg.queue.max(1));
    let shared = HaShared::new(cfg)?;
    tokio::spawn(store::writer(shared.clone(), rx));
    tracing::info!(
        role = ?shared.role(),
        peer = %shared.cfg.peer,
        "active/standby pair: answered calls replicated to Redis"
    );
    Ok((shared.clone(), driver::HaDriver::new(shared, tx)))
}

/// The calls left open in the CDR journal of `cdr` (a crash), and those an earlier start
/// could not confirm (`cdr_unconfirmed`), that the pair carried on: Redis still holds
/// them, live or ended, so the node that carried them writes their one CDR and the
/// journal recovery here must not. Their legs' Call-IDs (A, B).
///
/// `None`: Redis is unreachable, so no call can be confirmed either way; the calls the
/// journal left open are deferred (moved to the unconfirmed file, no record now) and
/// [`settle_unconfirmed`] settles them once Redis answers (see `docs/ha.md`). Should
/// the deferral itself fail (disk), every open call gets its restart record (logged).
pub async fn journal_taken_over(
    shared: &HaShared,
    cdr: &std::path::Path,
) -> Option<std::collections::HashSet<(String, String)>> {
    use crate::runtime::{cdr_journal, cdr_unconfirmed};
    let journal = cdr_journal::journal_path(cdr);
    let unconfirmed = cdr_unconfirmed::unconfirmed_path(cdr);
    let mut legs = cdr_journal::open_legs(&journal);
    legs.extend(cdr_journal::open_legs(&unconfirmed));
    if legs.is_empty() {
        return Some(std::collections::HashSet::new());
    }
    match carried_on(shared, legs).await {
        Ok(taken) => Some(taken),
        Err(e) => {
            shared.failed(&e);
            match cdr_unconfirmed::defer(&journal, &unconfirmed) {
                Ok(n) => {
                    shared
                        .counters
                        .journal_deferred
                        .fetch_add(n as u64, Ordering::Relaxed);
                    tracing::warn!(
                        error = %e,
                        calls = n,
                        "Redis unreachable at start: calls cut by the last stop cannot be \
                         confirmed; their records wait until Redis answers"
                    );
                    None
                }
                Err(io) => {
                    tracing::error!(
                        error = %e,
                        io = %io,
                        "Redis unreachable at start and the calls cut by the last stop \
                         cannot be deferred: each gets its restart record"
                    );
                    Some(std::collections::HashSet::new())
                }
            }
        }
    }
}

/// Of `legs`, those Redis knows (live or ended): the pair carried them on.
async fn carried_on(
    shared: &HaShared,
    legs: Vec<crate::runtime::cdr_journal::OpenLegs>,
) -> Result<std::collections::HashSet<(String, String)>, String> {
    let keys: Vec<String> = legs
        .iter()
        .map(|(a, b, k)| {
            k.clone()
                .unwrap_or_else(|| portcullis_engine::ha::call_key(a, b))
        })
        .collect();
    let known = store::known(shared, &keys).await?;
    let taken: std::collections::HashSet<(String, String)> = legs
        .into_iter()
        .zip(keys)
        .filter(|(_, k)| known.contains(k))
        .map(|((a, b, _), _)| (a, b))
        .collect();
    shared
        .counters
        .journal_skipped
        .fetch_add(taken.len() as u64, Ordering::Relaxed);
    if !taken.is_empty() {
        tracing::info!(
            calls = taken.len(),
            "calls cut by the last stop were carried on by the pair: no restart record here"
        );
    }
    Ok(taken)
}

/// Back-off of [`settle_unconfirmed`] between attempts.
const SETTLE_RETRY: (std::time::Duration, std::time::Duration) = (
    std::time::Duration::from_millis(500),
    std::time::Duration::from_secs(30),
);

/// Settles the calls a start deferred ([`journal_taken_over`] gave `None`): asks Redis
/// again with back-off until it answers, then hands the `restart` records of the calls
/// it does not know to the CDR writer through `handle` and, once they are durable,
/// removes the unconfirmed file. Ends then (or when the engine stops).
pub async fn settle_unconfirmed(
    shared: Arc<HaShared>,
    cdr: std::path::PathBuf,
    handle: crate::runtime::handle::ApplianceHandle,
) {
    use crate::runtime::{cdr_journal, cdr_unconfirmed};
    let unconfirmed = cdr_unconfirmed::unconfirmed_path(&cdr);
    let mut wait = SETTLE_RETRY.0;
    loop {
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(SETTLE_RETRY.1);
        let legs = cdr_journal::open_legs(&unconfirmed);
        let taken = match carried_on(&shared, legs).await {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(error = %e, "deferred CDRs: Redis still unreachable");
                continue;
            }
        };
        let rec = match cdr_journal::recover_files(&[&unconfirmed], &cdr, &taken) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "deferred CDRs: the unconfirmed file cannot be read");
                continue;
            }
        };
        let n = rec.lines.len();
        if n > 0 {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if !handle
                .send(crate::runtime::engine_task::Cmd::CdrRecovered(
                    rec.lines, tx,
                ))
                .await
            {
                return;
            }
            if rx.await != Ok(true) {
                tracing::error!("deferred CDRs: the CDR writer could not make them durable");
                continue;
            }
        }
        if let Err(e) = cdr_unconfirmed::remove(&unconfirmed) {
            tracing::error!(error = %e, "deferred CDRs: the unconfirmed file cannot be removed");
            continue;
        }
        tracing::warn!(
            restart_records = n,
            carried_on = rec.taken_over,
            "deferred CDRs settled now that Redis answers"
        );
        return;
    }
}

fn role_code(r: HaRole) -> u8 {
    match r {
        HaRole::Active => 1,
        HaRole::Standby => 0,
    }
}

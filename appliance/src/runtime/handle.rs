//! [`ApplianceHandle`]: the cheap, cloneable view of the running appliance used by
//! signal handling, the watchdog and the admin HTTP API.
//!
//! Every call into the engine goes through its command channel (the engine task
//! owns the B2BUA); counters of the drivers and the data plane are read directly
//! from their shared memory.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portcullis_dataplane::{Dataplane, WorkerStats};
use portcullis_engine::b2bua::CallSummary;
use portcullis_net::{NetCountersSnapshot, SipTransports};
use tokio::sync::{mpsc, oneshot};

use super::cdr_writer::CdrCounters;
use super::clock::Clock;
use super::convert;
use super::engine_task::{Cmd, EngineSnapshot};
use crate::admin::recent::RecentCalls;
use crate::config::{Config, ConfigError, LoadOptions};

/// Where the running configuration came from (SIGHUP reloads the same source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A file given with `--config`.
    File(PathBuf),
    /// The embedded default.
    Embedded,
}

impl ConfigSource {
    /// Loads and checks the configuration (the same checks as `check-config`).
    ///
    /// # Errors
    /// Every diagnostic of the file.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let opts = LoadOptions::default();
        match self {
            Self::File(p) => Config::load(p, &opts),
            Self::Embedded => Config::embedded_default(&opts),
        }
    }
}

/// Every counter of the appliance at one point in time.
#[derive(Debug, Clone)]
pub struct StatsSnapshot {
    /// Call engine, transactions, active calls.
    pub engine: EngineSnapshot,
    /// SIP drivers.
    pub net: NetCountersSnapshot,
    /// One entry per data plane worker, indexed by worker id.
    pub workers: Vec<WorkerStats>,
    /// Configuration generation (1 at start, +1 per successful reload).
    pub config_generation: u64,
    /// CDR lines written.
    pub cdr_written: u64,
    /// CDR write/sync failures.
    pub cdr_errors: u64,
    /// CDR entries waiting for the writer.
    pub cdr_queue_depth: u64,
    /// Whether the CDR writer is behind (new calls refused).
    pub cdr_behind: bool,
    /// Records written at start for calls cut by the last stop.
    pub cdr_recovered: u64,
}

/// Health as last measured by the monitor loop.
#[derive(Debug, Clone, Default)]
pub(crate) struct Health {
    pub problems: Vec<String>,
}

#[derive(Debug)]
struct Inner {
    cmds: mpsc::Sender<Cmd>,
    net: SipTransports,
    dp: Arc<Dataplane>,
    source: ConfigSource,
    generation: AtomicU64,
    config: Mutex<Arc<Config>>,
    health: Mutex<Health>,
    cdr: Arc<CdrCounters>,
    reload_lock: tokio::sync::Mutex<()>,
    clock: Clock,
    recent: Arc<RecentCalls>,
    /// Counters of the ng server, when `[ng]` runs beside the engine.
    ng: std::sync::OnceLock<Arc<crate::ng::NgCounters>>,
    /// The active/standby pair's state, with `[ha]`.
    ha: std::sync::OnceLock<Arc<crate::ha::HaShared>>,
}

/// A handle on the running appliance; clones share everything.
#[derive(Debug, Clone)]
pub struct ApplianceHandle {
    inner: Arc<Inner>,
}

/// How long a request to the engine task may take before it is declared stuck.
const ENGINE_REPLY_TIMEOUT: Duration = Duration::from_secs(2);

impl ApplianceHandle {
    pub(crate) fn new(
        cmds: mpsc::Sender<Cmd>,
        net: SipTransports,
        dp: Arc<Dataplane>,
        source: ConfigSource,
        config: Arc<Config>,
        cdr: Arc<CdrCounters>,
        clock: Clock,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                cmds,
                net,
                dp,
                source,
                generation: AtomicU64::new(1),
                config: Mutex::new(config),
                health: Mutex::new(Health::default()),
                cdr,
                reload_lock: tokio::sync::Mutex::new(()),
                clock,
                recent: Arc::default(),
                ng: std::sync::OnceLock::new(),
                ha: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Attaches the counters of the ng server started beside the engine (once).
    pub(crate) fn set_ng(&self, counters: Arc<crate::ng::NgCounters>) {
        let _ = self.inner.ng.set(counters);
    }

    /// The ng server's counters, when `[ng]` is running.
    #[must_use]
    pub fn ng_stats(&self) -> Option<crate::ng::NgStats> {
        self.inner.ng.get().map(|c| c.snapshot())
    }

    /// Attaches the pair's state (`[ha]`, once).
    pub(crate) fn set_ha(&self, shared: Arc<crate::ha::HaShared>) {
        let _ = self.inner.ha.set(shared);
    }

    /// The pair's status, with `[ha]`.
    #[must_use]
    pub fn ha_status(&self) -> Option<crate::ha::HaStatus> {
        self.inner.ha.get().map(|s| s.status())
    }

    /// Takes the calls of the pair over (keepalived made this node master): loads
    /// every live call from Redis and restores it here. Repeating it restores what
    /// is not live here yet.
    ///
    /// # Errors
    /// No `[ha]`, Redis unreachable, or the engine task does not answer.
    pub async fn ha_takeover(&self) -> Result<crate::ha::TakeoverReport, String> {
        let shared = self.inner.ha.get().ok_or("no [ha] section")?.clone();
        shared.set_role(crate::config::HaRole::Active);
        let started = std::time::Instant::now();
        let records = crate::ha::store::load_all(&shared).await?;
        let loaded = started.elapsed();
        let (tx, rx) = oneshot::channel();
        if !self.send(Cmd::HaTakeover(records, tx)).await {
            return Err("the engine task stopped".into());
        }
        match tokio::time::timeout(crate::ha::TAKEOVER_TIMEOUT, rx).await {
            Ok(Ok(r)) => {
                tracing::info!(
                    found = r.found,
                    restored = r.restored,
                    load_ms = loaded.as_millis() as u64,
                    total_ms = started.elapsed().as_millis() as u64,
                    "takeover done"
                );
                Ok(r)
            }
            _ => Err("the engine task did not finish the takeover".into()),
        }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.inner.cmds.send(make(tx)).await.ok()?;
        tokio::time::timeout(ENGINE_REPLY_TIMEOUT, rx)
            .await
            .ok()?
            .ok()
    }

    pub(crate) async fn send(&self, cmd: Cmd) -> bool {
        self.inner.cmds.send(cmd).await.is_ok()
    }

    /// Live calls (empty when the engine does not answer).
    pub async fn calls(&self) -> Vec<CallSummary> {
        self.ask(Cmd::Calls).await.unwrap_or_default()
    }

    /// Tears call `call` down (BYE both legs); `false` when no such live call.
    pub async fn terminate(&self, call: u64) -> bool {
        self.ask(|tx| Cmd::Terminate(call, tx))
            .await
            .unwrap_or(false)
    }

    /// Whether the engine task answers within the reply timeout.
    pub async fn ping(&self) -> bool {
        self.ask(Cmd::Ping).await.is_some()
    }

    /// Engine counters.
    pub async fn engine_stats(&self) -> Option<EngineSnapshot> {
        self.ask(Cmd::Stats).await
    }

    /// Every counter.
    pub async fn stats(&self) -> StatsSnapshot {
        StatsSnapshot {
            engine: self.engine_stats().await.unwrap_or_default(),
            net: self.inner.net.counters().snapshot(),
            workers: self.inner.dp.worker_stats(),
            config_generation: self.generation(),
            cdr_written: self.inner.cdr.written.load(Ordering::Relaxed),
            cdr_errors: self.inner.cdr.errors.load(Ordering::Relaxed),
            cdr_queue_depth: self.inner.cdr.depth(),
            cdr_behind: self.inner.cdr.behind.load(Ordering::Relaxed),
            cdr_recovered: self.inner.cdr.recovered.load(Ordering::Relaxed),
        }
    }

    /// Engine time now (the clock of [`CallSummary::setup_at`]).
    pub fn now(&self) -> portcullis_engine::time::Timestamp {
        self.inner.clock.now()
    }

    /// Recent failures and per-trunk outcomes of ended calls (the dashboard's).
    pub fn recent(&self) -> &Arc<RecentCalls> {
        &self.inner.recent
    }

    /// Unix milliseconds now, on the clock of the CDRs.
    pub fn wall_ms(&self) -> u64 {
        self.inner.clock.wall().now_ms()
    }

    /// Configuration generation (1 at start).
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Relaxed)
    }

    /// The configuration in force for new calls.
    pub fn config(&self) -> Arc<Config> {
        self.inner
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `(healthy, problems)`: engine task answering, data plane workers looping,
    /// not draining.
    pub async fn health(&self) -> (bool, Vec<String>) {
        let mut problems = self
            .inner
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .problems
            .clone();
        match self.engine_stats().await {
            None => problems.push("engine task not answering".into()),
            Some(s) if s.draining => problems.push("draining".into()),
            Some(_) => {}
        }
        problems.dedup();
        (problems.is_empty(), problems)
    }

    pub(crate) fn set_health(&self, h: Health) {
        *self
            .inner
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = h;
    }

    pub(crate) fn dataplane(&self) -> &Arc<Dataplane> {
        &self.inner.dp
    }

    /// Reloads the configuration from its source. On any problem the running
    /// configuration stays and the reasons are returned (and logged); on success new
    /// calls use the new one and the new generation is returned.
    ///
    /// TLS material (listener certificates, keys and client CAs, the Teams client
    /// certificate and roots) is read again from disk and checked first: a file that does
    /// not load or a key that does not match its certificate refuses the reload. On
    /// success new TLS connections, inbound and outbound, use it; established ones keep
    /// theirs. The trunks' source addresses (ACLs) the drivers classify by are swapped
    /// too. Listener address/transport, limits and media changes need a restart
    /// (logged).
    pub async fn reload(&self) -> Result<u64, String> {
        let _serial = self.inner.reload_lock.lock().await;
        let _ = crate::notify::notify_reloading();
        let res = self.reload_inner().await;
        let _ = crate::notify::notify_ready();
        match &res {
            Ok(g) => tracing::info!(generation = g, "configuration reloaded"),
            // One line per event: the journal keeps the priority of the first line only.
            Err(e) => tracing::error!(
                reasons = %e.trim_end().replace('\n', "; "),
                "configuration reload refused; keeping the running configuration"
            ),
        }
        res
    }

    async fn reload_inner(&self) -> Result<u64, String> {
        let source = self.inner.source.clone();
        let cfg = tokio::task::spawn_blocking(move || source.load())
            .await
            .map_err(|e| format!("reload task failed: {e}"))?
            .map_err(|e| e.to_string())?;
        let ec = convert::engine_config(&cfg).map_err(|e| e.to_string())?;
        let teams = convert::teams_plan(&cfg).map_err(|e| e.to_string())?;
        let trunk_sources = convert::trunk_sources(&ec, teams.as_ref());
        // Certificates, keys and CA files are read again (also when replaced in place
        // under the same name) and checked before anything changes.
        let tc = convert::transport_config(&cfg);
        let net = self.inner.net.clone();
        let tls =
            tokio::task::spawn_blocking(move || net.prepare_tls(&tc.listeners, tc.tls_client))
                .await
                .map_err(|e| format!("reload task failed: {e}"))?
                .map_err(|e| e.to_string())?;
        let old = self.config();
        if old.sip.listeners.len() != cfg.sip.listeners.len()
            || old
                .sip
                .listeners
                .iter()
                .zip(&cfg.sip.listeners)
                .any(|(a, b)| a.address != b.address || a.transport != b.transport)
        {
            tracing::warn!(
                "SIP listener address and transport changes take effect at the next restart"
            );
        }
        if old.sip.limits != cfg.sip.limits
            || old.sip.drain_timeout != cfg.sip.drain_timeout
            || old.sip.drain_notice != cfg.sip.drain_notice
        {
            tracing::warn!(
                "[sip.limits], drain_timeout and drain_notice changes take effect at the next restart"
            );
        }
        if old.media != cfg.media {
            tracing::warn!("[media] changes take effect at the next restart");
        }
        if old.log.format != cfg.log.format {
            tracing::warn!("[log] format changes take effect at the next restart");
        }
        if old.otel != cfg.otel {
            tracing::warn!("[otel] changes take effect at the next restart");
        }
        self.ask(|tx| Cmd::SetConfig(Arc::new(ec), tx))
            .await
            .ok_or_else(|| "engine task not answering".to_owned())??;
        self.inner.net.set_trunk_sources(trunk_sources);
        let tls_listeners = tls.listeners();
        self.inner.net.apply_tls(tls);
        tracing::info!(
            tls_listeners,
            teams_client = cfg.teams.is_some(),
            "TLS certificates, keys and CA files re-read; new connections use them"
        );
        crate::logging::apply_config_level(old.log.level, cfg.log.level);
        if !self.send(Cmd::SetTeams(teams)).await
            || !self.send(Cmd::SetCapture(cfg.capture.clone())).await
            || !self.send(Cmd::SetDns(convert::dns_plan(&cfg))).await
        {
            return Err("engine task not answering".to_owned());
        }
        *self
            .inner
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(cfg);
        Ok(self.inner.generation.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

//! `portcullis media-node`: the data plane and the ng listener, no SIP.
//!
//! Starts the data plane (pinned workers, the `[media]` port range), a tokio runtime on
//! the remaining cores with the ng driver ([`super::driver`]) and the admin HTTP API
//! (`/health`, `/metrics`; there are no SIP calls or trunks to list), sends `READY=1`,
//! and runs until SIGTERM or SIGINT. Kamailio's rtpengine module notices a stopped node
//! by its failing `ping` and sends new calls to the other nodes of its set.

use std::sync::Arc;

use anyhow::Context;
use portcullis_dataplane::Dataplane;
use tokio::signal::unix::{signal, SignalKind};

use super::counters::NgCounters;
use crate::admin::metrics::backend_label;
use crate::admin::{AdminBackend, AdminServerConfig, CallInfo, Health, MetricsSnapshot, TrunkInfo};
use crate::config::Config;
use crate::runtime::convert;

/// The admin view of a media node.
#[derive(Debug, Clone)]
pub struct MediaNodeBackend {
    dp: Arc<Dataplane>,
    counters: Arc<NgCounters>,
}

impl MediaNodeBackend {
    /// A backend over the node's data plane and ng counters.
    pub fn new(dp: Arc<Dataplane>, counters: Arc<NgCounters>) -> Self {
        Self { dp, counters }
    }
}

impl AdminBackend for MediaNodeBackend {
    async fn health(&self) -> Health {
        Health {
            ready: true,
            reasons: Vec::new(),
        }
    }

    async fn metrics(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            config_generation: 1,
            workers: self.dp.worker_stats(),
            dataplane_backend: backend_label(self.dp.backend()).to_owned(),
            rings: self.dp.ring_depths(),
            ng: Some(self.counters.snapshot()),
            log_filter: self.log_filter(),
            ..MetricsSnapshot::default()
        }
    }

    async fn calls_total(&self) -> u64 {
        0
    }

    async fn calls(&self) -> Vec<CallInfo> {
        Vec::new()
    }

    async fn terminate(&self, _id: u64) -> bool {
        false
    }

    async fn trunks(&self) -> Vec<TrunkInfo> {
        Vec::new()
    }

    async fn reload(&self) -> Result<u64, Vec<String>> {
        Err(vec![
            "a media node does not reload its configuration: restart it (Kamailio moves new calls to the other nodes meanwhile)".to_owned(),
        ])
    }
}

/// Runs a media node until SIGTERM/SIGINT.
///
/// # Errors
/// No `[ng]` section, or the data plane, the ng listener or the signal handlers cannot
/// start.
pub fn run(config: &Config) -> anyhow::Result<()> {
    crate::runtime::init_logging(&config.log);
    let ng = config
        .ng
        .clone()
        .context("a media node needs an [ng] section with its listen address")?;
    if !config.sip.listeners.is_empty() {
        tracing::warn!("media node: [[sip.listener]], trunks and routes are ignored");
    }
    let total = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let threads = total.saturating_sub(config.media.cores.len()).max(1);
    let dp = Arc::new(Dataplane::start(convert::dataplane_config(config)).context("data plane")?);
    tracing::info!(workers = dp.workers(), backend = ?dp.backend(), "data plane up");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("portcullis-ng")
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let res = rt.block_on(async {
        let sock = super::driver::bind(ng.listen).await?;
        let counters = Arc::new(NgCounters::default());
        let server = super::driver::server(config, &ng, dp.clone(), counters.clone());
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(super::driver::run(sock, server, true, stop_rx));
        let admin = AdminServerConfig {
            listen: config.admin.listen,
            token: config.admin.token.as_ref().map(|t| t.expose().to_owned()),
        };
        let backend = MediaNodeBackend::new(dp.clone(), counters);
        if let Err(e) = crate::admin::spawn(admin.clone(), backend).await {
            tracing::error!(listen = %admin.listen, error = %e, "admin HTTP API not started");
        }
        let mut term = signal(SignalKind::terminate()).context("signal handlers")?;
        let mut int = signal(SignalKind::interrupt()).context("signal handlers")?;
        let _ = crate::notify::notify_ready();
        tracing::info!(node = %config.node.name, ng = %ng.listen, "portcullis media node ready");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
        }
        let _ = stop.send(true);
        let _ = task.await;
        anyhow::Ok(())
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    drop(dp);
    tracing::info!("portcullis media node stopped");
    res
}

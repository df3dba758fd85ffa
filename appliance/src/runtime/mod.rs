//! The appliance runtime: wires the planes together and runs them.
//!
//! ```text
//!  SIP drivers (portcullis-net) ──events──► engine task (B2bua, sans-IO) ──► CDR writer thread
//!          ▲                                   │      ▲
//!          └──────────── poll_transmit ────────┘      │ MediaControl / poll_events
//!                                                     ▼
//!                                 data plane workers (pinned threads, rings)
//! ```
//!
//! [`run`] starts the data plane (its pinned cores), a tokio multi-thread runtime
//! on the remaining cores for the control plane, binds the SIP listeners, starts
//! the engine task and the CDR writer, sends `READY=1` once both planes are up,
//! then serves signals until SIGTERM (see [`signals`]). Other parts of the
//! appliance (admin HTTP) use the [`ApplianceHandle`].

pub(crate) mod call_log;
pub(crate) mod call_trace;
pub mod capture;
pub mod cdr_journal;
pub mod cdr_unconfirmed;
pub mod cdr_writer;
pub mod clock;
pub mod convert;
pub mod dns;
pub mod engine_task;
pub mod fast_path;
pub mod handle;
pub mod media;
pub(crate) mod reject_log;
pub mod signals;
pub mod teams;
pub mod trunk_status;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context;
use portcullis_dataplane::Dataplane;
use portcullis_engine::b2bua::B2bua;
use portcullis_net::SipTransports;
use tokio::sync::mpsc;

pub use self::clock::{Clock, WallClock};
pub use self::engine_task::EngineSnapshot;
pub use self::handle::{ApplianceHandle, ConfigSource, StatsSnapshot};
pub use portcullis_engine::b2bua::CallSummary;

use crate::config::{Config, LogConfig};

/// Capacity of the command channel into the engine task.
const CMD_QUEUE: usize = 1024;

/// Something started alongside the engine once the planes are up (the admin HTTP
/// server): receives the handle, runs on the control-plane runtime. An error (its
/// listener cannot bind) fails the start, before `READY=1`, like any other bind.
pub type Extension = Box<dyn FnOnce(ApplianceHandle) -> ExtensionStart + Send>;

/// What an [`Extension`] returns: done once it is up.
pub type ExtensionStart = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// Runs the appliance until SIGTERM/SIGINT (exit after a graceful drain).
///
/// # Errors
/// A plane cannot start (ports in use, bad TLS material, …) or the engine died.
pub fn run(config: Config, source: ConfigSource) -> anyhow::Result<()> {
    run_with(config, source, Vec::new())
}

/// [`run`], starting `extensions` with the handle once both planes are up.
///
/// # Errors
/// As [`run`].
pub fn run_with(
    config: Config,
    source: ConfigSource,
    extensions: Vec<Extension>,
) -> anyhow::Result<()> {
    init_logging(&config.log);
    // Before the control plane's runtime: the exporter's HTTP client has its own.
    if let Some(otel) = &config.otel {
        crate::traces::start(otel, &config.node.name).context("[otel] trace exporter")?;
    }
    let total = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let cp_threads = total.saturating_sub(config.media.cores.len()).max(1);
    let config = Arc::new(config);
    let clock = Clock::new();
    // The data plane first: it binds every media port and pins its workers. The XDP
    // fast path (when configured) is attached before, and handed to the workers.
    let mut dp_config = convert::dataplane_config(&config);
    dp_config.fast_path = fast_path::start(&config.media)?;
    dp_config.af_xdp = fast_path::start_af_xdp(&config.media, dp_config.fast_path.as_ref())
        .context("[media] backend = \"af_xdp\" needs the XDP program on the media interfaces")?;
    let dp = Dataplane::start(dp_config).context("data plane")?;
    let dp = Arc::new(dp);
    tracing::info!(
        workers = dp.workers(),
        backend = ?dp.backend(),
        fast_path = dp.fast_path(),
        control_plane_threads = cp_threads,
        "data plane up"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cp_threads)
        .thread_name("portcullis-cp")
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let res = rt.block_on(serve(config, source, dp, clock, extensions));
    // Background tasks (monitor, admin) end with the runtime.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    res
}

async fn serve(
    config: Arc<Config>,
    source: ConfigSource,
    dp: Arc<Dataplane>,
    clock: Clock,
    extensions: Vec<Extension>,
) -> anyhow::Result<()> {
    let ec = convert::engine_config(&config).context("configuration")?;
    let (net, net_events) = SipTransports::bind(convert::transport_config(&config))
        .await
        .context("SIP listeners")?;
    for (t, a) in net.local_addrs() {
        tracing::info!(transport = ?t, addr = %a, "SIP listener up");
    }
    let teams = convert::teams_plan(&config).context("configuration")?;
    // Configured trunks keep their own event queue, skip the per-source datagram rate
    // and may use the connection reserve.
    net.set_trunk_sources(convert::trunk_sources(&ec, teams.as_ref()));
    let media = media::DataplaneMedia::new(dp.clone(), convert::realm_addresses(&config));
    let entropy = crate::entropy::OsEntropy::new().context("randomness")?;
    let mut b2b = B2bua::new(Arc::new(ec), media, entropy).context("call engine")?;
    // The pair first: the CDR journal's recovery asks Redis which calls it carried on.
    let ha = match &config.ha {
        Some(h) => Some(crate::ha::start(h.clone()).context("[ha]")?),
        None => None,
    };
    let taken_over = match &ha {
        Some((shared, _)) => crate::ha::journal_taken_over(shared, &config.cdr.path).await,
        None => Some(std::collections::HashSet::new()),
    };
    b2b.set_ha(ha.is_some());
    let cdr =
        cdr_writer::CdrWriter::start_except(&config.cdr, clock.wall().clone(), taken_over.as_ref())
            .with_context(|| format!("CDR file {}", config.cdr.path.display()))?;
    let cdr_queue = cdr.queue().context("CDR writer has no queue")?;
    let (cmd_tx, cmd_rx) = mpsc::channel(CMD_QUEUE);
    let handle = ApplianceHandle::new(
        cmd_tx,
        net.clone(),
        dp.clone(),
        source,
        config.clone(),
        cdr.counters().clone(),
        clock.clone(),
    );
    let ha = ha.map(|(shared, driver)| {
        if taken_over.is_none() {
            // Calls cut by the last stop wait for Redis to say who carried them on.
            tokio::spawn(crate::ha::settle_unconfirmed(
                shared.clone(),
                config.cdr.path.clone(),
                handle.clone(),
            ));
        }
        if shared.role() == crate::config::HaRole::Standby {
            // A standby keeps the pair's calls at hand, their media armed.
            tokio::spawn(crate::ha::warm::run(shared.clone(), handle.clone()));
        }
        handle.set_ha(shared);
        driver
    });
    let mut engine = tokio::spawn(engine_task::run(
        b2b,
        net.clone(),
        net_events,
        cmd_rx,
        engine_task::EngineTaskConfig {
            clock: clock.clone(),
            cdr: cdr_queue,
            node: config.node.name.clone(),
            teams,
            capture: config.capture.clone(),
            dns: convert::dns_plan(&config),
            recent: handle.recent().clone(),
            ha,
        },
    ));
    if !handle.ping().await {
        anyhow::bail!("engine task did not start");
    }
    // rtpengine's ng protocol beside the engine, on the same data plane.
    let (ng_stop, ng_stop_rx) = tokio::sync::watch::channel(false);
    if let Some(ng) = &config.ng {
        let sock = crate::ng::driver::bind(ng.listen).await?;
        let counters = Arc::new(crate::ng::NgCounters::default());
        let server = crate::ng::driver::server(&config, ng, dp.clone(), counters.clone());
        handle.set_ng(counters);
        tokio::spawn(crate::ng::driver::run(sock, server, false, ng_stop_rx));
    }
    for ext in extensions {
        if let Err(e) = ext(handle.clone()).await {
            // Stop what started (no call can be up yet), then fail.
            handle.send(engine_task::Cmd::Stop).await;
            let _ = engine.await;
            drop(handle);
            let _ = tokio::task::spawn_blocking(move || cdr.finish()).await;
            net.shutdown();
            return Err(e);
        }
    }
    let monitor = tokio::spawn(signals::monitor(handle.clone()));
    let _ = crate::notify::notify_ready();
    tracing::info!(node = %config.node.name, "portcullis ready");

    let exit = signals::wait(&handle, &mut engine)
        .await
        .context("signal handlers")?;
    monitor.abort();
    let _ = ng_stop.send(true);
    let result = match exit {
        signals::Exit::Terminate => {
            signals::drain(&handle, config.sip.drain_timeout, config.sip.drain_notice).await;
            signals::unregister(&handle).await;
            handle.send(engine_task::Cmd::Stop).await;
            if let Err(e) = engine.await {
                tracing::error!(error = %e, "engine task failed");
            }
            Ok(())
        }
        signals::Exit::EngineStopped => Err(anyhow::anyhow!("the engine task stopped")),
    };
    drop(handle);
    // Every CDR sender is gone with the engine: drain and sync the file.
    tokio::task::spawn_blocking(move || cdr.finish())
        .await
        .context("CDR writer")?;
    net.shutdown();
    tracing::info!("portcullis stopped");
    result
}

/// Installs the global subscriber (see [`crate::logging`]): `RUST_LOG` when set, else
/// `[log] level`; text or JSON lines on stderr through a bounded non-blocking buffer.
/// A second call (tests) is a no-op.
pub fn init_logging(log: &LogConfig) {
    crate::logging::init(log.level, log.format, log.buffer_lines);
}

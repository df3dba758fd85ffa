//! Process life cycle: SIGHUP reload, SIGTERM/SIGINT graceful drain, and the
//! health monitor that feeds the systemd watchdog.

use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};

use super::engine_task::Cmd;
use super::handle::{ApplianceHandle, Health};

/// How often the monitor measures health.
const MONITOR_PERIOD: Duration = Duration::from_millis(500);

/// After `release_all`, how long BYE transactions get to complete.
const BYE_GRACE: Duration = Duration::from_secs(2);

/// How the signal loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// SIGTERM or SIGINT: drain and exit 0.
    Terminate,
    /// The engine task ended on its own (drivers died).
    EngineStopped,
}

/// Waits for signals: SIGHUP reloads, SIGTERM/SIGINT return [`Exit::Terminate`].
///
/// # Errors
/// A signal handler cannot be installed.
pub async fn wait(
    handle: &ApplianceHandle,
    engine: &mut tokio::task::JoinHandle<()>,
) -> std::io::Result<Exit> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading configuration");
                // The outcome is logged by reload().
                let _ = handle.reload().await;
            }
            _ = term.recv() => {
                tracing::info!("SIGTERM: draining");
                return Ok(Exit::Terminate);
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: draining");
                return Ok(Exit::Terminate);
            }
            _ = &mut *engine => return Ok(Exit::EngineStopped),
        }
    }
}

/// Graceful drain: new INVITEs get 503, calls get up to `drain_timeout` to end,
/// then every remaining call gets a BYE and its transactions a short grace.
/// Returns when the engine may be stopped.
pub async fn drain(handle: &ApplianceHandle, drain_timeout: Duration) {
    let _ = crate::notify::notify_stopping();
    handle.send(Cmd::Drain).await;
    let deadline = Instant::now() + drain_timeout;
    let mut active = usize::MAX;
    while Instant::now() < deadline {
        active = match handle.engine_stats().await {
            Some(s) => s.active_calls,
            None => break,
        };
        if active == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if active == 0 {
        tracing::info!("drained: no call left");
        return;
    }
    let Some(before) = handle.engine_stats().await else {
        return;
    };
    tracing::info!(
        calls = before.active_calls,
        "drain timeout: sending BYE to every call"
    );
    handle.send(Cmd::ReleaseAll).await;
    // Each released call answered on both legs: two responses per call.
    let responses =
        |s: &super::engine_task::EngineSnapshot| -> u64 { s.engine.responses_in.iter().sum() };
    let want = responses(&before) + 2 * u64::try_from(before.active_calls).unwrap_or(0);
    let grace = Instant::now() + BYE_GRACE;
    while Instant::now() < grace {
        match handle.engine_stats().await {
            Some(s) if responses(&s) < want => {}
            _ => break,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Measures health every [`MONITOR_PERIOD`]: the engine answers a ping, every data
/// plane worker advanced its loop counter (workers tick at least every 50 ms).
/// Pings the systemd watchdog at half its period while healthy.
pub async fn monitor(handle: ApplianceHandle) {
    let watchdog = crate::notify::watchdog_interval();
    let mut last_ping = Instant::now();
    let mut last_loops: Vec<u64> = handle
        .dataplane()
        .worker_stats()
        .iter()
        .map(|w| w.loops)
        .collect();
    let mut tick = tokio::time::interval(MONITOR_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: measure from one period on.
    tick.tick().await;
    loop {
        tick.tick().await;
        let mut problems = Vec::new();
        if !handle.ping().await {
            problems.push("engine task not answering".to_owned());
        }
        let loops: Vec<u64> = handle
            .dataplane()
            .worker_stats()
            .iter()
            .map(|w| w.loops)
            .collect();
        for (i, (now, before)) in loops.iter().zip(&last_loops).enumerate() {
            if now == before {
                problems.push(format!("data plane worker {i} stalled"));
            }
        }
        last_loops = loops;
        let healthy = problems.is_empty();
        if !healthy {
            tracing::warn!(?problems, "unhealthy");
            let _ = crate::notify::notify_status(&problems.join("; "));
        }
        handle.set_health(Health { problems });
        if let Some(period) = watchdog {
            if healthy && last_ping.elapsed() >= period / 2 {
                let _ = crate::notify::notify_watchdog();
                last_ping = Instant::now();
            }
        }
    }
}

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

/// How long the un-REGISTERs at shutdown get to be answered (the registrar's
/// binding lapses by itself when they are not).
pub const UNREGISTER_GRACE: Duration = Duration::from_secs(5);

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

/// Graceful drain: new INVITEs and OPTIONS get 503 (a load balancer probing with OPTIONS
/// takes the appliance out of rotation), calls get up to `drain_timeout` to end, then
/// every remaining call gets a BYE and its transactions a short grace. The drain lasts
/// `notice` at least (`notice <= drain_timeout`), calls or not, so the balancer's next
/// probe finds the 503 before the port closes. Returns when the engine may be stopped.
pub async fn drain(handle: &ApplianceHandle, drain_timeout: Duration, notice: Duration) {
    let _ = crate::notify::notify_stopping();
    handle.send(Cmd::Drain).await;
    let start = Instant::now();
    let deadline = start + drain_timeout;
    let notice_end = start + notice.min(drain_timeout);
    let mut active = usize::MAX;
    while Instant::now() < deadline {
        active = match handle.engine_stats().await {
            Some(s) => s.active_calls,
            None => break,
        };
        if active == 0 && Instant::now() >= notice_end {
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

/// Un-REGISTERs every registration toward a carrier (`Expires: 0` for our Contact)
/// and waits at most [`UNREGISTER_GRACE`] for the registrars' answers.
pub async fn unregister(handle: &ApplianceHandle) {
    let Some(before) = handle.engine_stats().await else {
        return;
    };
    if before.registrations.is_empty() {
        return;
    }
    handle.send(Cmd::Unregister).await;
    let deadline = Instant::now() + UNREGISTER_GRACE;
    while Instant::now() < deadline {
        match handle.engine_stats().await {
            Some(s) if s.registrations_pending => {}
            _ => {
                tracing::info!("registrations removed");
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::warn!("un-REGISTER unanswered: the registrar's bindings lapse by themselves");
}

/// Measures health every `MONITOR_PERIOD`: the engine answers a ping, every data
/// plane worker advanced its loop counter (workers tick at least every 50 ms).
/// Pings the systemd watchdog at half its period while healthy.
pub async fn monitor(handle: ApplianceHandle) {
    monitor_with(handle, crate::notify::watchdog_interval(), |n| {
        let _ = match n {
            Notice::Watchdog => crate::notify::notify_watchdog(),
            Notice::Status(s) => crate::notify::notify_status(s),
        };
    })
    .await;
}

/// What the monitor tells the service manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice<'a> {
    /// `WATCHDOG=1`.
    Watchdog,
    /// `STATUS=...`: the problems, or `healthy` once they cleared.
    Status(&'a str),
}

/// [`monitor`] with the watchdog period and the notifier given: [`Notice::Watchdog`] at
/// most every `watchdog / 2`, and only after a measurement found both planes alive. An
/// unhealthy measurement never pings, so a stall longer than the period lets systemd act.
pub(crate) async fn monitor_with(
    handle: ApplianceHandle,
    watchdog: Option<Duration>,
    mut notify: impl FnMut(Notice<'_>) + Send,
) {
    let mut last_ping = Instant::now();
    let mut was_healthy = true;
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
            notify(Notice::Status(&problems.join("; ")));
        } else if !was_healthy {
            // Clear the problem from `systemctl status`.
            tracing::info!("healthy again");
            notify(Notice::Status("healthy"));
        }
        was_healthy = healthy;
        handle.set_health(Health { problems });
        if let Some(period) = watchdog {
            if healthy && last_ping.elapsed() >= period / 2 {
                notify(Notice::Watchdog);
                last_ping = Instant::now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, PoisonError};

    use portcullis_dataplane::{Backend, Dataplane, DataplaneConfig, WorkerId};
    use portcullis_net::{SipTransports, TransportConfig};
    use tokio::sync::mpsc;

    use super::*;
    use crate::runtime::cdr_writer::CdrCounters;
    use crate::runtime::engine_task::{Clock, EngineSnapshot};
    use crate::runtime::ConfigSource;

    /// Ping times, shared with the monitor's notifier.
    type Pings = Arc<Mutex<Vec<Instant>>>;
    /// `STATUS=` texts, in order.
    type Statuses = Arc<Mutex<Vec<String>>>;

    fn pings(p: &Pings) -> Vec<Instant> {
        p.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits (bounded) until `n` pings were sent after `since`.
    async fn pings_after(p: &Pings, since: Instant, n: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while pings(p).iter().filter(|t| **t > since).count() < n {
            assert!(Instant::now() < deadline, "no {n} pings {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The longest silence between pings around instant `mid`.
    fn gap_around(p: &Pings, mid: Instant) -> Duration {
        let t = pings(p);
        let before = t.iter().filter(|x| **x <= mid).max().copied();
        let after = t.iter().filter(|x| **x > mid).min().copied();
        match (before, after) {
            (Some(b), Some(a)) => a - b,
            _ => panic!("no pings on both sides of the stall: {t:?}"),
        }
    }

    /// A stalled data plane worker, then an engine that stops answering: the watchdog
    /// pings stop for the stall and come back after it.
    #[test]
    fn watchdog_pings_only_while_both_planes_are_alive() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        rt.block_on(async {
            let dp = Dataplane::start(DataplaneConfig {
                port_min: 19_800,
                port_max: 19_815,
                backend: Backend::Mmsg,
                ..DataplaneConfig::default()
            })
            .unwrap_or_else(|e| panic!("data plane: {e}"));
            let dp = Arc::new(dp);
            let (net, _events) = SipTransports::bind(TransportConfig::default())
                .await
                .unwrap_or_else(|e| panic!("drivers: {e}"));
            // The engine: answers while `alive`, drops the requests otherwise.
            let alive = Arc::new(AtomicBool::new(true));
            let (tx, mut rx) = mpsc::channel(64);
            let engine_alive = alive.clone();
            tokio::spawn(async move {
                while let Some(cmd) = rx.recv().await {
                    if !engine_alive.load(Ordering::SeqCst) {
                        continue;
                    }
                    match cmd {
                        Cmd::Ping(r) => {
                            let _ = r.send(());
                        }
                        Cmd::Stats(r) => {
                            let _ = r.send(EngineSnapshot::default());
                        }
                        _ => {}
                    }
                }
            });
            let config =
                crate::config::Config::embedded_default(&crate::config::LoadOptions::default())
                    .unwrap_or_else(|e| panic!("{e}"));
            let handle = ApplianceHandle::new(
                tx,
                net.clone(),
                dp.clone(),
                ConfigSource::Embedded,
                Arc::new(config),
                Arc::new(CdrCounters::default()),
                Clock::new(),
            );
            let sent: Pings = Arc::default();
            let statuses: Statuses = Arc::default();
            let (rec, rec_status) = (sent.clone(), statuses.clone());
            let monitor = tokio::spawn(monitor_with(
                handle.clone(),
                Some(Duration::from_millis(400)),
                move |n| match n {
                    Notice::Watchdog => rec
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Instant::now()),
                    Notice::Status(s) => rec_status
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(s.to_owned()),
                },
            ));
            pings_after(&sent, Instant::now(), 2, "while healthy").await;

            // Data plane: worker 0 held still for three seconds.
            let stall = Instant::now();
            for _ in 0..3 {
                dp.quiesce(WorkerId(0), Duration::from_secs(1))
                    .unwrap_or_else(|e| panic!("quiesce: {e}"));
            }
            let mid = stall + Duration::from_millis(1500);
            tokio::time::sleep(Duration::from_secs(3)).await;
            pings_after(
                &sent,
                stall + Duration::from_secs(3),
                2,
                "after the worker resumed",
            )
            .await;
            let gap = gap_around(&sent, mid);
            assert!(
                gap >= Duration::from_millis(1500),
                "pinged through a worker stall: gap {gap:?}"
            );
            // The status line named the stall, then cleared.
            let st = statuses
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let named = st
                .iter()
                .position(|s| s.contains("data plane worker 0 stalled"))
                .unwrap_or_else(|| panic!("stall not reported: {st:?}"));
            assert!(
                st.get(named..)
                    .is_some_and(|r| r.iter().any(|s| s == "healthy")),
                "status not cleared after the stall: {st:?}"
            );

            // Control plane: the engine stops answering for three seconds.
            let stall = Instant::now();
            alive.store(false, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(3)).await;
            alive.store(true, Ordering::SeqCst);
            let mid = stall + Duration::from_millis(1500);
            pings_after(&sent, Instant::now(), 2, "after the engine answered again").await;
            let gap = gap_around(&sent, mid);
            assert!(
                gap >= Duration::from_millis(1500),
                "pinged through an engine stall: gap {gap:?}"
            );
            let st = statuses
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            assert!(
                st.iter().any(|s| s.contains("engine task not answering")),
                "engine stall not reported: {st:?}"
            );
            assert_eq!(st.last().map(String::as_str), Some("healthy"), "{st:?}");

            monitor.abort();
            net.shutdown();
        });
    }
}

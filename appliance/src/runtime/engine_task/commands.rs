//! Commands from the rest of the appliance (admin API, reload, shutdown, the HA
//! driver) and the reload of the drivers the task owns (Teams, DNS, capture).

use portcullis_engine::b2bua::B2bua;

use super::{engine_now, Cmd, Ctx, EngineSnapshot};
use crate::runtime::capture::Capture;
use crate::runtime::media::DataplaneMedia;
use crate::runtime::teams::{TeamsDriver, TeamsPlan};

impl Ctx {
    /// Starts, keeps or stops the Teams monitor.
    pub(super) fn set_teams(&mut self, plan: Option<TeamsPlan>) {
        if self.teams.as_ref().map(TeamsDriver::plan) == plan.as_ref() {
            return;
        }
        self.teams = None;
        let Some(plan) = plan else { return };
        let n = plan.proxies.len();
        let entropy = match crate::entropy::OsEntropy::new() {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "Teams proxy health monitor not started");
                return;
            }
        };
        match TeamsDriver::new(plan, self.clock.now(), entropy) {
            Ok(d) => {
                tracing::info!(proxies = n, "Teams proxy health monitor started");
                self.teams = Some(d);
            }
            Err(e) => tracing::error!(error = %e, "Teams proxy health monitor not started"),
        }
    }

    /// Starts, keeps or restarts the resolution of trunk names.
    pub(super) fn set_dns(&mut self, plan: crate::runtime::dns::DnsPlan) {
        if self.dns.as_ref().map(crate::runtime::dns::DnsDriver::plan) == Some(&plan) {
            return;
        }
        self.dns = None;
        let n = plan.jobs.len();
        match crate::runtime::dns::DnsDriver::start(plan) {
            Ok(d) => {
                if n > 0 {
                    tracing::info!(trunks = n, "trunk name resolution started");
                }
                self.dns = Some(d);
            }
            Err(e) => tracing::error!(error = %e, "trunk names cannot be resolved"),
        }
    }

    /// Starts, keeps or stops the HEP capture.
    pub(super) fn set_capture(&mut self, cfg: Option<crate::config::CaptureConfig>) {
        if cfg == self.capture_config {
            return;
        }
        if let Some(old) = self.capture.take() {
            let (s, d) = old.counts();
            self.capture_counts.0 += s;
            self.capture_counts.1 += d;
        }
        self.capture = cfg.as_ref().and_then(|c| match Capture::new(c) {
            Ok(cap) => {
                tracing::info!(collector = %c.hep, "SIP capture to the HEP collector on");
                Some(cap)
            }
            Err(e) => {
                tracing::error!(collector = %c.hep, error = %e, "SIP capture not started");
                None
            }
        });
        self.capture_config = cfg;
    }

    /// Counters of the capture, those replaced on reload included.
    pub(super) fn capture_counts(&self) -> (u64, u64) {
        let (s, d) = self.capture.as_ref().map_or((0, 0), Capture::counts);
        (self.capture_counts.0 + s, self.capture_counts.1 + d)
    }

    /// Handles one command; `false` asks the loop to stop.
    pub(super) fn command(&mut self, b2b: &mut B2bua<DataplaneMedia>, cmd: Cmd) -> bool {
        match cmd {
            Cmd::Calls(tx) => {
                let _ = tx.send(b2b.calls());
            }
            Cmd::Terminate(call, tx) => {
                if let Some(span) = self.spans.get(call) {
                    span.in_scope(|| tracing::info!("terminate requested by the admin API"));
                }
                let now = engine_now(&self.clock, b2b);
                let ok = b2b.terminate(now, call);
                let _ = tx.send(ok);
            }
            Cmd::SetConfig(cfg, tx) => {
                let _ = tx.send(b2b.set_config(cfg).map_err(|e| e.to_string()));
            }
            Cmd::SetTeams(plan) => self.set_teams(plan),
            Cmd::SetCapture(cfg) => self.set_capture(cfg),
            Cmd::SetDns(plan) => self.set_dns(plan),
            Cmd::Stats(tx) => {
                let now = self.clock.now();
                let _ = tx.send(EngineSnapshot {
                    teams: self
                        .teams
                        .as_ref()
                        .map(|t| t.status(now))
                        .unwrap_or_default(),
                    teams_counters: self
                        .teams
                        .as_ref()
                        .map(TeamsDriver::counters)
                        .unwrap_or_default(),
                    engine: b2b.stats().clone(),
                    tx: *b2b.tx_stats(),
                    active_calls: b2b.active_calls(),
                    transactions: b2b.transactions(),
                    bans_active: b2b.bans(),
                    media_pairs: b2b.media().active(),
                    media_events_lost: b2b.media().events_lost,
                    draining: b2b.is_draining(),
                    capture: self.capture_counts(),
                    trunks_held_off: b2b
                        .trunks_held_off(now)
                        .into_iter()
                        .map(|(t, until)| (t, until.saturating_duration_since(now)))
                        .collect(),
                    trunk_targets: crate::runtime::trunk_status::snapshot(b2b.trunk_targets(), now),
                    registrations: b2b
                        .registrations(now)
                        .iter()
                        .map(|r| crate::admin::RegistrationInfo::new(r, now))
                        .collect(),
                    registrations_pending: b2b.registrations_pending(),
                });
            }
            Cmd::Ping(tx) => {
                let _ = tx.send(());
            }
            Cmd::Drain => b2b.start_drain(),
            Cmd::ReleaseAll => {
                let now = engine_now(&self.clock, b2b);
                b2b.release_all(now);
            }
            Cmd::Unregister => {
                let now = engine_now(&self.clock, b2b);
                b2b.unregister_all(now);
            }
            Cmd::Stop => return false,
            Cmd::CdrRecovered(lines, done) => self.cdr.recovered(lines, done),
            Cmd::HaWarm(changes) => {
                if let Some(h) = &mut self.ha {
                    h.warm(b2b, &changes);
                }
            }
            Cmd::HaTakeover(records, tx) => {
                let report = match &mut self.ha {
                    Some(h) => {
                        let now = engine_now(&self.clock, b2b);
                        let (report, calls) = h.restore(b2b, now, records);
                        // Each survivor's record is journalled here now: this node
                        // writes its one CDR (marked with the takeover).
                        for call in calls {
                            self.journal(b2b, call);
                        }
                        report
                    }
                    None => crate::ha::TakeoverReport::default(),
                };
                let _ = tx.send(report);
            }
        }
        true
    }
}

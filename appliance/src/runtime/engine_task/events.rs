//! What the engine reports: call events to the log (in each call's span), the traces,
//! the dashboard's recent calls and the CDR writer and journal.

use std::time::SystemTime;

use portcullis_engine::b2bua::{B2bua, CallEvent, EndReason};

use super::{cdr_line, Ctx};
use crate::runtime::call_trace::Started;
use crate::runtime::media::DataplaneMedia;

impl Ctx {
    /// The call's span (see [`crate::runtime::call_log`]), its Call-IDs as the engine knows them now.
    pub(super) fn call_span(&mut self, b2b: &B2bua<DataplaneMedia>, call: u64) -> tracing::Span {
        let (a, b) = b2b.call_ids(call).unwrap_or(("", None));
        self.spans.span(call, a, b)
    }

    pub(super) fn call_event(&mut self, b2b: &B2bua<DataplaneMedia>, ev: CallEvent) {
        match ev {
            CallEvent::CallStarted {
                call,
                inbound_trunk,
                calling,
                called,
            } => {
                let _in = self.call_span(b2b, call).entered();
                tracing::info!(trunk = %inbound_trunk, %calling, %called, "call started");
                let a_call_id = b2b.call_ids(call).map_or("", |(a, _)| a);
                let started = Started {
                    call,
                    a_call_id,
                    inbound_trunk: &inbound_trunk,
                    calling: &calling,
                    called: &called,
                };
                self.traces.started(&started, SystemTime::now());
            }
            CallEvent::CallRouted { call, route } => {
                let _in = self.call_span(b2b, call).entered();
                tracing::debug!(%route, "call routed");
                self.traces.routed(call, &route, SystemTime::now());
            }
            CallEvent::AttemptStarted {
                call,
                trunk,
                target,
                b_call_id,
            } => {
                let _in = self.call_span(b2b, call).entered();
                tracing::debug!(%trunk, %target, %b_call_id, "B leg attempt");
                let now = SystemTime::now();
                self.traces
                    .attempt_started(call, &trunk, target, &b_call_id, now);
            }
            CallEvent::AttemptFailed { call, status } => {
                let _in = self.call_span(b2b, call).entered();
                tracing::debug!(status, "B leg attempt failed");
                self.traces.attempt_failed(call, status, SystemTime::now());
            }
            CallEvent::CallAnswered {
                call,
                outbound_trunk,
            } => {
                let _in = self.call_span(b2b, call).entered();
                tracing::info!(trunk = %outbound_trunk, "call answered");
                self.traces
                    .answered(call, &outbound_trunk, SystemTime::now());
                let at_ms = self.clock.wall().now_ms();
                self.recent.answered(&outbound_trunk, at_ms);
                self.journal(b2b, call);
            }
            CallEvent::CallEnded { cdr } => {
                let b_call_id = cdr.b_leg.as_ref().map(|b| b.call_id.as_str());
                let span = self.spans.span(cdr.call_id, &cdr.a_leg.call_id, b_call_id);
                self.spans.close(cdr.call_id);
                let _in = span.entered();
                tracing::info!(
                    reason = ?cdr.end_reason,
                    status = ?cdr.final_status,
                    "call ended"
                );
                self.traces.ended(&cdr, SystemTime::now());
                self.recent.call_ended(&cdr);
                self.cdr.record(cdr.call_id, cdr_line(&cdr, &self.node));
                if cdr.end_reason == EndReason::Transferred {
                    // The call goes on with its new leg: journal it as it is now.
                    self.journal(b2b, cdr.call_id);
                } else if let Some(h) = &mut self.ha {
                    h.ended(cdr.call_id);
                }
            }
            // Counted by status and reason in the metrics; summarised in the log.
            CallEvent::Rejected {
                status,
                reason,
                source,
            } => {
                self.rejects.rejected(self.clock.now(), status, source.ip());
                self.recent
                    .rejected(self.clock.wall().now_ms(), status, &reason, source);
            }
            CallEvent::TargetHealth { trunk, target, up } => {
                if up {
                    tracing::info!(%trunk, %target, "trunk target up (answers OPTIONS)");
                } else {
                    tracing::warn!(%trunk, %target, "trunk target down");
                }
            }
            CallEvent::RegistrationChanged {
                trunk,
                state,
                error,
            } => match (state, error) {
                ("failed", Some(error)) => {
                    tracing::warn!(%trunk, %error, "registration failed; retrying with back-off");
                }
                (state, _) => tracing::info!(%trunk, state, "registration"),
            },
            CallEvent::PolicyBan { ip, duration } => {
                // The drivers drop its datagrams before the engine's queue, close its
                // TCP/TLS connections and refuse new ones until the ban ends.
                let closed = self.net.refuse(ip, duration);
                if self.rejects.banned(self.clock.now()) {
                    tracing::warn!(%ip, ?duration, closed, "source banned");
                }
            }
        }
    }

    /// Journals live answered call `call` (its record as of now).
    pub(super) fn journal(&mut self, b2b: &B2bua<DataplaneMedia>, call: u64) {
        if let Some(r) = b2b.open_record(self.clock.now(), call) {
            let mut line = cdr_line(&r, &self.node);
            // A replicated call's key rides along (its B leg may have changed since the
            // key was drawn); recovery strips it (`cdr_journal::HA_KEY`).
            if let Some(key) = b2b.ha_key(call) {
                line = crate::runtime::cdr_journal::with_ha_key(&line, key);
            }
            self.cdr.open(call, line);
        }
    }
}

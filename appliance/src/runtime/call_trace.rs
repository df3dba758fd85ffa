//! One OpenTelemetry trace per call (`[otel]`), built from the engine's call events:
//!
//! ```text
//! call                 (server) CallStarted ─────────────────────────────── CallEnded
//! ├── route                     CallStarted ─ CallRouted
//! ├── b-leg attempt    (client)               AttemptStarted ─ AttemptFailed
//! ├── b-leg attempt    (client)                                AttemptStarted ─ CallAnswered
//! └── answer                    CallStarted ───────────────────────────────── CallAnswered
//! ```
//!
//! - `call`: `call` (the engine's id, as in the logs, the CDR and the admin API),
//!   `a_call_id` (the caller's SIP Call-ID), `inbound_trunk`, `calling`, `called`, then
//!   `route`, `outbound_trunk`, `b_call_id` (the last B leg's), `final_status`,
//!   `end_reason` (the CDR's `kind`). Status error when the call failed
//!   ([`crate::admin::recent::is_failure`]).
//! - `route`: `route`; error when no route took the call.
//! - `b-leg attempt`, one per target tried: `attempt` (1, 2, …), `trunk`, `target`
//!   (`ip:port`), `b_call_id`, `status` (the final response: the failure, or 200), or
//!   `end_reason` when the call ended during the attempt (CANCEL, no-answer timer).
//!   Status error on a failure response.
//! - `answer`: from the INVITE to the relayed 200 OK; `outbound_trunk`, `setup_ms`.
//!
//! Times are the appliance's wall clock when it handles each event (the engine reports
//! events as it makes them). Attributes carry identities and outcomes only: no SDP, no
//! keys, no credentials, no header values.
//!
//! Invariant: one entry per call between its start and end events (as
//! `super::call_log`), so the map is bounded by the live calls; without `[otel]` nothing
//! is kept.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::SystemTime;

use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, Span};
use portcullis_engine::b2bua::CdrRecord;

use crate::admin::recent::{end_reason_label, is_failure};

/// The traces of the live calls.
#[derive(Debug, Default)]
pub(crate) struct CallTraces {
    tracer: Option<SdkTracer>,
    calls: HashMap<u64, CallTrace>,
}

#[derive(Debug)]
struct CallTrace {
    /// Holds the root span `call`.
    cx: Context,
    started: SystemTime,
    route: Option<Span>,
    attempt: Option<Span>,
    attempts: i64,
}

/// The identities a call starts with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Started<'a> {
    pub call: u64,
    pub a_call_id: &'a str,
    pub inbound_trunk: &'a str,
    pub calling: &'a str,
    pub called: &'a str,
}

fn kv(key: &'static str, value: &str) -> KeyValue {
    KeyValue::new(key, value.to_owned())
}

fn status_kv(status: u16) -> KeyValue {
    KeyValue::new("status", i64::from(status))
}

impl CallTraces {
    /// Traces through `tracer` (`None`: `[otel]` off, every call is a no-op).
    pub(crate) fn new(tracer: Option<SdkTracer>) -> Self {
        Self {
            tracer,
            calls: HashMap::new(),
        }
    }

    /// `CallStarted`: the root span and its `route` child open.
    pub(crate) fn started(&mut self, s: &Started<'_>, now: SystemTime) {
        let Some(tracer) = &self.tracer else { return };
        let root = tracer
            .span_builder("call")
            .with_kind(SpanKind::Server)
            .with_start_time(now)
            .with_attributes([
                KeyValue::new("call", i64::try_from(s.call).unwrap_or(i64::MAX)),
                kv("a_call_id", s.a_call_id),
                kv("inbound_trunk", s.inbound_trunk),
                kv("calling", s.calling),
                kv("called", s.called),
            ])
            .start_with_context(tracer, &Context::new());
        let cx = Context::new().with_span(root);
        let route = tracer
            .span_builder("route")
            .with_start_time(now)
            .start_with_context(tracer, &cx);
        self.calls.insert(
            s.call,
            CallTrace {
                cx,
                started: now,
                route: Some(route),
                attempt: None,
                attempts: 0,
            },
        );
    }

    /// `CallRouted`: the `route` span ends.
    pub(crate) fn routed(&mut self, call: u64, route: &str, now: SystemTime) {
        let Some(t) = self.calls.get_mut(&call) else {
            return;
        };
        t.cx.span().set_attribute(kv("route", route));
        if let Some(mut span) = t.route.take() {
            span.set_attribute(kv("route", route));
            span.end_with_timestamp(now);
        }
    }

    /// `AttemptStarted`: a `b-leg attempt` span opens.
    pub(crate) fn attempt_started(
        &mut self,
        call: u64,
        trunk: &str,
        target: SocketAddr,
        b_call_id: &str,
        now: SystemTime,
    ) {
        let Some(tracer) = &self.tracer else { return };
        let Some(t) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some(mut old) = t.attempt.take() {
            old.end_with_timestamp(now);
        }
        t.attempts += 1;
        let attrs = [
            KeyValue::new("attempt", t.attempts),
            kv("trunk", trunk),
            KeyValue::new("target", target.to_string()),
            kv("b_call_id", b_call_id),
        ];
        t.attempt = Some(
            tracer
                .span_builder("b-leg attempt")
                .with_kind(SpanKind::Client)
                .with_start_time(now)
                .with_attributes(attrs)
                .start_with_context(tracer, &t.cx),
        );
    }

    /// `AttemptFailed`: the current attempt ends with its failure status.
    pub(crate) fn attempt_failed(&mut self, call: u64, status: u16, now: SystemTime) {
        let Some(mut span) = self.calls.get_mut(&call).and_then(|t| t.attempt.take()) else {
            return;
        };
        span.set_attribute(status_kv(status));
        span.set_status(Status::error(format!("SIP {status}")));
        span.end_with_timestamp(now);
    }

    /// `CallAnswered`: the current attempt ends with 200; the `answer` span covers the
    /// INVITE to now.
    pub(crate) fn answered(&mut self, call: u64, outbound_trunk: &str, now: SystemTime) {
        let Some(tracer) = &self.tracer else { return };
        let Some(t) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some(mut span) = t.attempt.take() {
            span.set_attribute(status_kv(200));
            span.end_with_timestamp(now);
        }
        t.cx.span()
            .set_attribute(kv("outbound_trunk", outbound_trunk));
        let setup_ms = now
            .duration_since(t.started)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        tracer
            .span_builder("answer")
            .with_start_time(t.started)
            .with_attributes([
                kv("outbound_trunk", outbound_trunk),
                KeyValue::new("setup_ms", setup_ms),
            ])
            .start_with_context(tracer, &t.cx)
            .end_with_timestamp(now);
    }

    /// `CallEnded`: whatever is open ends; the root span takes the call's outcome.
    pub(crate) fn ended(&mut self, cdr: &CdrRecord, now: SystemTime) {
        let Some(mut t) = self.calls.remove(&cdr.call_id) else {
            return;
        };
        let reason = end_reason_label(&cdr.end_reason);
        if let Some(mut span) = t.route.take() {
            span.set_status(Status::error(reason));
            span.end_with_timestamp(now);
        }
        if let Some(mut span) = t.attempt.take() {
            span.set_attribute(kv("end_reason", reason));
            span.end_with_timestamp(now);
        }
        let root = t.cx.span();
        // The A Call-ID again: a call refused in the engine turn that started it is
        // gone before its start event is handled.
        let mut attrs = vec![
            kv("end_reason", reason),
            kv("a_call_id", &cdr.a_leg.call_id),
        ];
        if let Some(status) = cdr.final_status {
            attrs.push(KeyValue::new("final_status", i64::from(status)));
        }
        if let Some(b) = &cdr.b_leg {
            attrs.push(kv("b_call_id", &b.call_id));
            attrs.push(kv("outbound_trunk", &b.trunk));
        }
        if let Some(route) = &cdr.route {
            attrs.push(kv("route", route));
        }
        root.set_attributes(attrs);
        if is_failure(cdr) {
            root.set_status(Status::error(reason));
        }
        root.end_with_timestamp(now);
    }

    /// Calls with an open trace.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.calls.len()
    }
}

#[cfg(test)]
#[path = "call_trace_tests.rs"]
mod tests;

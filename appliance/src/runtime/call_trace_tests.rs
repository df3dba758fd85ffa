use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry::Value;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use portcullis_engine::b2bua::{EndReason, LegRecord, Party};
use portcullis_engine::cdr::NumberRecord;

use super::*;

/// Keeps every exported span.
#[derive(Debug, Clone, Default)]
struct Keep(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Keep {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(batch);
        Ok(())
    }
}

fn traces() -> (CallTraces, Keep, SdkTracerProvider) {
    let keep = Keep::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(keep.clone())
        .build();
    (CallTraces::new(Some(provider.tracer("t"))), keep, provider)
}

fn attr<'a>(s: &'a SpanData, key: &str) -> Option<&'a Value> {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn leg(call_id: &str, trunk: &str) -> LegRecord {
    LegRecord {
        call_id: call_id.into(),
        from: "sip:1000@a".into(),
        to: "sip:2000@b".into(),
        trunk: trunk.into(),
        remote: "127.0.0.1:5060".parse().unwrap_or_else(|e| panic!("{e}")),
    }
}

fn cdr(answered: bool, reason: EndReason, status: u16) -> CdrRecord {
    CdrRecord {
        call_id: 7,
        a_leg: leg("a-7@pbx", "left"),
        b_leg: Some(leg("b-7@sbc", "right")),
        calling: NumberRecord::same("1000"),
        called: NumberRecord::same("2000"),
        route: Some("out".into()),
        setup_at_ms: 1_000,
        answer_at_ms: answered.then_some(2_000),
        end_at_ms: 3_000,
        end_reason: reason,
        final_status: Some(status),
        media: None,
        takeover: None,
    }
}

const START: Started<'static> = Started {
    call: 7,
    a_call_id: "a-7@pbx",
    inbound_trunk: "left",
    calling: "1000",
    called: "2000",
};

fn at(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms)
}

#[test]
fn a_failed_over_answered_call_is_one_trace_with_its_phases() {
    let (mut t, keep, _p) = traces();
    let (a, b) = ("127.0.0.2:5060".parse().ok(), "127.0.0.3:5060".parse().ok());
    t.started(&START, at(0));
    t.routed(7, "out", at(1));
    t.attempt_started(7, "right", a.unwrap_or_else(|| panic!()), "b-1", at(2));
    t.attempt_failed(7, 503, at(10));
    t.attempt_started(7, "right", b.unwrap_or_else(|| panic!()), "b-7@sbc", at(11));
    t.answered(7, "right", at(50));
    let by = EndReason::NormalClearing { by: Party::Caller };
    t.ended(&cdr(true, by, 200), at(90));
    assert_eq!(t.len(), 0);
    let spans = keep
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(
        names,
        ["route", "b-leg attempt", "b-leg attempt", "answer", "call"]
    );
    let root = &spans[4];
    let trace = root.span_context.trace_id();
    for s in &spans[..4] {
        assert_eq!(s.span_context.trace_id(), trace, "{}", s.name);
        assert_eq!(s.parent_span_id, root.span_context.span_id(), "{}", s.name);
    }
    assert_eq!(root.parent_span_id, opentelemetry::trace::SpanId::INVALID);
    for (k, v) in [
        ("a_call_id", "a-7@pbx"),
        ("inbound_trunk", "left"),
        ("outbound_trunk", "right"),
        ("calling", "1000"),
        ("called", "2000"),
        ("route", "out"),
        ("b_call_id", "b-7@sbc"),
        ("end_reason", "normal_clearing"),
    ] {
        assert_eq!(attr(root, k), Some(&Value::from(v.to_owned())), "{k}");
    }
    assert_eq!(attr(root, "call"), Some(&Value::I64(7)));
    assert_eq!(attr(root, "final_status"), Some(&Value::I64(200)));
    assert_eq!(root.status, Status::Unset);
    assert_eq!((root.start_time, root.end_time), (at(0), at(90)));
    let (first, second) = (&spans[1], &spans[2]);
    assert_eq!(attr(first, "status"), Some(&Value::I64(503)));
    assert_eq!(attr(first, "attempt"), Some(&Value::I64(1)));
    assert_eq!(
        attr(first, "target"),
        Some(&Value::from("127.0.0.2:5060".to_owned()))
    );
    assert!(matches!(first.status, Status::Error { .. }));
    assert_eq!((first.start_time, first.end_time), (at(2), at(10)));
    assert_eq!(attr(second, "status"), Some(&Value::I64(200)));
    assert_eq!(attr(second, "attempt"), Some(&Value::I64(2)));
    assert_eq!(
        attr(second, "b_call_id"),
        Some(&Value::from("b-7@sbc".to_owned()))
    );
    let answer = &spans[3];
    assert_eq!((answer.start_time, answer.end_time), (at(0), at(50)));
    assert_eq!(attr(answer, "setup_ms"), Some(&Value::I64(50)));
}

#[test]
fn an_unrouted_call_ends_its_route_span_in_error() {
    let (mut t, keep, _p) = traces();
    t.started(&START, at(0));
    let mut c = cdr(false, EndReason::NoRoute, 404);
    c.b_leg = None;
    c.route = None;
    t.ended(&c, at(1));
    let spans = keep
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(names, ["route", "call"]);
    assert!(matches!(spans[0].status, Status::Error { .. }));
    assert!(matches!(spans[1].status, Status::Error { .. }));
    assert_eq!(attr(&spans[1], "final_status"), Some(&Value::I64(404)));
    assert_eq!(attr(&spans[1], "b_call_id"), None);
}

#[test]
fn a_call_cancelled_during_an_attempt_closes_it() {
    let (mut t, keep, _p) = traces();
    t.started(&START, at(0));
    t.routed(7, "out", at(0));
    let target = "127.0.0.2:5060".parse().unwrap_or_else(|e| panic!("{e}"));
    t.attempt_started(7, "right", target, "b-c", at(1));
    t.ended(&cdr(false, EndReason::Cancelled, 487), at(5));
    let spans = keep
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let attempt = spans
        .iter()
        .find(|s| s.name == "b-leg attempt")
        .unwrap_or_else(|| panic!("no attempt span"));
    assert_eq!(
        attr(attempt, "end_reason"),
        Some(&Value::from("cancelled".to_owned()))
    );
    let root = spans.last().unwrap_or_else(|| panic!("no spans"));
    assert_eq!(root.status, Status::Unset, "a cancelled call is no failure");
}

#[test]
fn without_a_tracer_nothing_is_kept() {
    let mut t = CallTraces::new(None);
    t.started(&START, at(0));
    t.routed(7, "out", at(0));
    assert_eq!(t.len(), 0);
    // Events of calls it never saw (restored, transferred) are ignored.
    let (mut t, keep, _p) = traces();
    t.routed(9, "out", at(0));
    t.attempt_failed(9, 503, at(0));
    t.ended(&cdr(false, EndReason::Timeout, 408), at(0));
    assert!(keep
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_empty());
}

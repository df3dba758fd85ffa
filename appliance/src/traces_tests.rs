use std::sync::{Condvar, Mutex};

use opentelemetry::trace::{Span as _, Tracer as _};
use opentelemetry_sdk::error::OTelSdkError;

use super::*;

/// An exporter that holds every export until opened, then succeeds or fails.
#[derive(Debug, Default)]
struct Held {
    state: Mutex<(bool, bool)>,
    cv: Condvar,
}

impl Held {
    fn open(&self, succeed: bool) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = (true, succeed);
        self.cv.notify_all();
    }
}

#[derive(Debug)]
struct HeldExporter(Arc<Held>);

impl SpanExporter for HeldExporter {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        let mut s = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !s.0 {
            s = self.0.cv.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        if s.1 {
            Ok(())
        } else {
            Err(OTelSdkError::InternalFailure("collector down".into()))
        }
    }
}

fn cfg(queue_spans: usize) -> OtelConfig {
    OtelConfig {
        traces_url: "http://127.0.0.1:1/v1/traces".into(),
        service_name: "test".into(),
        sample_ratio: 1.0,
        queue_spans,
        timeout: Duration::from_secs(1),
    }
}

fn end_spans(tracer: &SdkTracer, n: usize) {
    for _ in 0..n {
        tracer.start("s").end();
    }
}

#[test]
fn a_stalled_collector_fills_the_queue_and_every_span_is_counted() {
    let held = Arc::new(Held::default());
    let shared = Arc::new(Shared::new(64));
    let p = provider(HeldExporter(held.clone()), &cfg(64), "n", &shared).expect("provider");
    let tracer = p.tracer("t");
    // The first 64 spans fill the queue (their export is held); the next 136 find it full.
    end_spans(&tracer, 200);
    assert_eq!(shared.counts().dropped_queue_full, 136);
    assert_eq!(shared.pending.load(Ordering::Acquire), 64);
    held.open(true);
    p.force_flush().expect("flush");
    assert_eq!(
        shared.counts(),
        TraceCounts {
            exported: 64,
            dropped_queue_full: 136,
            dropped_export_failed: 0,
        }
    );
    assert_eq!(shared.pending.load(Ordering::Acquire), 0);
    // Room again: the queue takes new spans.
    end_spans(&tracer, 10);
    p.force_flush().expect("flush");
    assert_eq!(shared.counts().exported, 74);
    p.shutdown().expect("shutdown");
}

#[test]
fn failed_exports_count_their_spans_as_dropped() {
    let held = Arc::new(Held::default());
    held.open(false);
    let shared = Arc::new(Shared::new(64));
    let p = provider(HeldExporter(held.clone()), &cfg(64), "n", &shared).expect("provider");
    let tracer = p.tracer("t");
    end_spans(&tracer, 10);
    let _ = p.force_flush();
    assert_eq!(
        shared.counts(),
        TraceCounts {
            exported: 0,
            dropped_queue_full: 0,
            dropped_export_failed: 10,
        }
    );
    assert!(shared.failing.load(Ordering::Relaxed));
    held.open(true);
    end_spans(&tracer, 3);
    p.force_flush().expect("flush");
    assert_eq!(shared.counts().exported, 3);
    assert!(!shared.failing.load(Ordering::Relaxed));
    p.shutdown().expect("shutdown");
}

#[test]
fn ids_are_never_zero_and_do_not_repeat() {
    let ids = OsIds(Mutex::new(OsEntropy::new().expect("entropy")));
    let traces: std::collections::HashSet<_> = (0..1000).map(|_| ids.new_trace_id()).collect();
    let spans: std::collections::HashSet<_> = (0..1000).map(|_| ids.new_span_id()).collect();
    assert_eq!((traces.len(), spans.len()), (1000, 1000));
    assert!(!traces.contains(&TraceId::INVALID));
    assert!(!spans.contains(&SpanId::INVALID));
}

//! One `tracing` span per call, so every log line of a call carries its identities:
//!
//! ```text
//! call{call=7 a_call_id=1-4242@10.0.0.5 b_call_id=5b1e…}: portcullis::runtime::engine_task: call answered trunk=right
//! ```
//!
//! `call` is the engine's call id (the one of `GET /api/v1/calls` and the CDR), `a_call_id`
//! the caller's SIP Call-ID, `b_call_id` the Call-ID of the B leg we originated (recorded
//! again when failover replaces the B leg, so each attempt's Call-ID is in the lines that
//! follow). In JSON output the same fields are under `"span"`.
//!
//! The span opens on `CallStarted` and closes on `CallEnded`; the engine task enters it
//! for the call's events and for admin requests about the call. Its level is ERROR so it
//! is enabled whatever the log filter, and a warning about a call still names it.
//!
//! Invariant: one entry per call between its start and end events (the engine emits
//! exactly one `CallEnded` per started call), so the map is bounded by the live calls.

use std::collections::HashMap;

use tracing::Span;

/// The spans of the live calls.
#[derive(Debug, Default)]
pub(crate) struct CallSpans {
    spans: HashMap<u64, Entry>,
}

#[derive(Debug)]
struct Entry {
    span: Span,
    b_call_id: Option<String>,
}

fn new_span(call: u64, a_call_id: &str) -> Span {
    tracing::error_span!(
        "call",
        call,
        a_call_id = %a_call_id,
        b_call_id = tracing::field::Empty
    )
}

impl CallSpans {
    /// The span of `call`, created when missing, with the B Call-ID recorded when it is new.
    pub(crate) fn span(&mut self, call: u64, a_call_id: &str, b_call_id: Option<&str>) -> Span {
        let e = self.spans.entry(call).or_insert_with(|| Entry {
            span: new_span(call, a_call_id),
            b_call_id: None,
        });
        if let Some(b) = b_call_id.filter(|b| !b.is_empty()) {
            if e.b_call_id.as_deref() != Some(b) {
                e.span.record("b_call_id", tracing::field::display(b));
                e.b_call_id = Some(b.to_owned());
            }
        }
        e.span.clone()
    }

    /// The span of a live call, if it has one.
    pub(crate) fn get(&self, call: u64) -> Option<Span> {
        self.spans.get(&call).map(|e| e.span.clone())
    }

    /// Removes the span of an ended call (it closes when the last clone drops).
    pub(crate) fn close(&mut self, call: u64) {
        self.spans.remove(&call);
    }

    /// Live call spans.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_live_call() {
        let mut s = CallSpans::default();
        let _ = s.span(1, "a1", None);
        let _ = s.span(1, "a1", Some("b1"));
        let _ = s.span(2, "a2", Some("b2"));
        assert_eq!(s.len(), 2);
        assert_eq!(
            s.spans.get(&1).and_then(|e| e.b_call_id.clone()),
            Some("b1".into())
        );
        // Failover: a new B leg is recorded.
        let _ = s.span(1, "a1", Some("b1-retry"));
        assert_eq!(
            s.spans.get(&1).and_then(|e| e.b_call_id.clone()),
            Some("b1-retry".into())
        );
        s.close(1);
        assert!(s.get(1).is_none());
        assert!(s.get(2).is_some());
        assert_eq!(s.len(), 1);
    }
}

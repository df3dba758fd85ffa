//! `/metrics` families of the call traces (`[otel]`): rendered only while traces are
//! exported. Every ended span is counted once: exported, or dropped with its reason
//! (see [`crate::traces`]).

use super::metrics::{fam, Encoder, Family, Kind, Value};
use crate::traces::TraceCounts;

/// The traces' families (declared beside [`super::metrics::FAMILIES`]).
pub const FAMILIES: &[Family] = &[
    fam(
        "portcullis_trace_spans_exported_total",
        Kind::Counter,
        "Call trace spans the OTLP collector accepted.",
    ),
    fam(
        "portcullis_trace_spans_dropped_total",
        Kind::Counter,
        "Call trace spans dropped, by reason: queue_full (the export queue held \
         [otel] queue_spans spans) or export_failed (collector unreachable, slow or \
         refusing).",
    ),
];

/// Renders the traces' families when `[otel]` is on.
pub(crate) fn render(e: &mut Encoder, counts: Option<&TraceCounts>) {
    let Some(c) = counts else { return };
    e.single("portcullis_trace_spans_exported_total", c.exported);
    if e.family("portcullis_trace_spans_dropped_total") {
        e.sample(
            &[("reason", "queue_full")],
            Value::Int(c.dropped_queue_full),
        );
        e.sample(
            &[("reason", "export_failed")],
            Value::Int(c.dropped_export_failed),
        );
    }
}

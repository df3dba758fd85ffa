//! Metric families of media interworking (DTMF between RFC 4733 and SIP INFO), declared
//! beside the main table and rendered by [`render`].

use super::metrics::{Encoder, Family, Kind, Value};
use super::MetricsSnapshot;

/// The interworking families.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "portcullis_dtmf_interworked_total",
        kind: Kind::Counter,
        help: "DTMF digits converted by the call engine (label to: info for RFC 4733 events sent on as SIP INFO, rfc4733 for SIP INFO played as events).",
    },
    Family {
        name: "portcullis_dtmf_failed_total",
        kind: Kind::Counter,
        help: "DTMF digits that could not be converted (unreadable INFO body, no dialog, data plane refused).",
    },
    Family {
        name: "portcullis_dataplane_dtmf_detected_total",
        kind: Kind::Counter,
        help: "RFC 4733 events detected on legs flagged for detection, per worker.",
    },
    Family {
        name: "portcullis_dataplane_dtmf_queued_total",
        kind: Kind::Counter,
        help: "RFC 4733 events queued to play toward a leg, per worker.",
    },
    Family {
        name: "portcullis_dataplane_dtmf_refused_total",
        kind: Kind::Counter,
        help: "RFC 4733 events to play refused (leg plays none, queue full), per worker.",
    },
];

/// Writes the interworking families of `snap`.
pub fn render(e: &mut Encoder, snap: &MetricsSnapshot) {
    if e.family("portcullis_dtmf_interworked_total") {
        e.sample(&[("to", "info")], Value::Int(snap.sip.dtmf_to_info));
        e.sample(&[("to", "rfc4733")], Value::Int(snap.sip.dtmf_to_rfc4733));
    }
    e.single("portcullis_dtmf_failed_total", snap.sip.dtmf_failed);
    let mut per_worker = |name: &str, f: &dyn Fn(&portcullis_dataplane::WorkerStats) -> u64| {
        if e.family(name) {
            for (i, w) in snap.workers.iter().enumerate() {
                e.sample(&[("worker", &i.to_string())], Value::Int(f(w)));
            }
        }
    };
    per_worker("portcullis_dataplane_dtmf_detected_total", &|w| {
        w.dtmf_detected
    });
    per_worker("portcullis_dataplane_dtmf_queued_total", &|w| w.dtmf_queued);
    per_worker("portcullis_dataplane_dtmf_refused_total", &|w| {
        w.dtmf_refused
    });
}

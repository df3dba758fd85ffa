//! The `portcullis_ha_*` families (an active/standby pair), declared beside the admin
//! `FAMILIES` table and rendered only with `[ha]`.

use super::metrics::{Encoder, Family, Kind, Value};
use crate::config::HaRole;
use crate::ha::HaStatus;

/// Metric families of the pair.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "portcullis_ha_active",
        kind: Kind::Gauge,
        help: "1 when this node of the active/standby pair is the active one, 0 when standby.",
    },
    Family {
        name: "portcullis_ha_degraded",
        kind: Kind::Gauge,
        help: "1 while Redis writes fail: calls go on, a takeover now loses what changed since.",
    },
    Family {
        name: "portcullis_ha_writes_total",
        kind: Kind::Counter,
        help: "Call state records written to Redis.",
    },
    Family {
        name: "portcullis_ha_errors_total",
        kind: Kind::Counter,
        help: "Redis connections or pipelined batches that failed.",
    },
    Family {
        name: "portcullis_ha_queue_full_total",
        kind: Kind::Counter,
        help: "Writes that did not fit the writer's queue (written again later).",
    },
    Family {
        name: "portcullis_ha_takeovers_total",
        kind: Kind::Counter,
        help: "Takeovers performed by this node.",
    },
    Family {
        name: "portcullis_ha_restored_calls_total",
        kind: Kind::Counter,
        help: "Calls restored by takeovers (result ok) or refused (result failed).",
    },
];

/// Writes the pair's families.
pub fn render(e: &mut Encoder, s: &HaStatus) {
    e.single("portcullis_ha_active", u64::from(s.role == HaRole::Active));
    e.single("portcullis_ha_degraded", u64::from(s.degraded));
    e.single("portcullis_ha_writes_total", s.writes);
    e.single("portcullis_ha_errors_total", s.errors);
    e.single("portcullis_ha_queue_full_total", s.queue_full);
    e.single("portcullis_ha_takeovers_total", s.takeovers);
    if e.family("portcullis_ha_restored_calls_total") {
        e.sample(&[("result", "ok")], Value::Int(s.restored));
        e.sample(&[("result", "failed")], Value::Int(s.restore_failed));
    }
}

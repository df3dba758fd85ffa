//! `/metrics` families of trunk targets: health, pings, calls, failovers, DNS
//! (declared in [`super::metrics::FAMILIES`] like every family).

use super::metrics::{Encoder, Value};
use crate::runtime::trunk_status::{TargetStatus, TrunkTargetsStatus};

/// Renders the trunk target families (nothing when no trunk is configured).
pub(super) fn render(e: &mut Encoder, trunks: &[TrunkTargetsStatus]) {
    if trunks.is_empty() {
        return;
    }
    let flag = |b: bool| Value::Int(u64::from(b));
    let per_target = |e: &mut Encoder, name: &str, f: &dyn Fn(&TargetStatus) -> Value| {
        e.family(name);
        for t in trunks {
            for g in &t.targets {
                e.sample(
                    &[("trunk", t.trunk.as_str()), ("target", g.address.as_str())],
                    f(g),
                );
            }
        }
    };
    per_target(e, "portcullis_trunk_target_up", &|g| flag(g.state == "up"));
    per_target(e, "portcullis_trunk_target_usable", &|g| flag(g.usable));
    per_target(e, "portcullis_trunk_target_calls", &|g| {
        Value::Int(u64::from(g.calls))
    });
    per_target(e, "portcullis_trunk_target_attempts_total", &|g| {
        Value::Int(g.calls_total)
    });
    per_target(e, "portcullis_trunk_pings_sent_total", &|g| {
        Value::Int(g.options_sent)
    });
    per_target(e, "portcullis_trunk_pings_answered_total", &|g| {
        Value::Int(g.options_answered)
    });
    per_target(e, "portcullis_trunk_pings_missed_total", &|g| {
        Value::Int(g.options_missed)
    });
    let per_trunk = |e: &mut Encoder, name: &str, f: &dyn Fn(&TrunkTargetsStatus) -> u64| {
        e.family(name);
        for t in trunks {
            e.sample(&[("trunk", t.trunk.as_str())], Value::Int(f(t)));
        }
    };
    per_trunk(e, "portcullis_trunk_failovers_total", &|t| t.failovers);
    per_trunk(e, "portcullis_trunk_unavailable_total", &|t| t.unavailable);
    per_trunk(e, "portcullis_trunk_resolved", &|t| {
        u64::from(matches!(t.resolution.as_str(), "static" | "resolved"))
    });
    per_trunk(e, "portcullis_trunk_targets", &|t| t.targets.len() as u64);
}

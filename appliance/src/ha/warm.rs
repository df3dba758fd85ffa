//! Warm standby: while a node is the standby of the pair it keeps a copy of the live
//! calls current (every [`WARM_EVERY`], only what changed is read and opened) and arms
//! their media pairs in its own data plane ahead of a takeover
//! (`DataplaneMedia::prearm`). The standby receives no media while the active node
//! holds the service addresses; once keepalived moves them here, the armed pairs relay
//! at once, before the notify script has even ordered the takeover, and the takeover's
//! restore adopts them (restoring them once more with the latest state, which restarts
//! their inactivity clock). Calls
//! that end on the active node release their pairs here at the next look.
//!
//! The takeover stays correct without it: a pair that was not armed (ports unavailable,
//! a call answered since the last look) is created by the restore as before.

use std::sync::Arc;
use std::time::Duration;

use super::{store, HaShared};
use crate::config::HaRole;
use crate::runtime::engine_task::Cmd;
use crate::runtime::handle::ApplianceHandle;

/// How often a standby looks at Redis for changed calls.
pub const WARM_EVERY: Duration = Duration::from_millis(500);

/// The standby's loop (see the module docs); ends once the node is active or the
/// engine task stops. Redis unreachable: tries again at the next look.
pub async fn run(shared: Arc<HaShared>, handle: ApplianceHandle) {
    let mut con = None;
    loop {
        tokio::time::sleep(WARM_EVERY).await;
        if shared.role() == HaRole::Active {
            return;
        }
        if con.is_none() {
            con = store::connect(&shared).await.ok();
        }
        let Some(c) = con.as_mut() else { continue };
        let changes = match store::refresh(&shared, c).await {
            Ok(ch) => ch,
            Err(e) => {
                tracing::debug!(error = %e, "warm standby: Redis read failed");
                con = None;
                continue;
            }
        };
        // Sent even when nothing changed: calls a full ring left unarmed are tried again.
        if shared.role() == HaRole::Active {
            return;
        }
        if !handle.send(Cmd::HaWarm(changes)).await {
            return;
        }
    }
}

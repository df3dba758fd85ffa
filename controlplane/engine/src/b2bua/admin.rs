//! What the operator asks of the engine (the admin API, drain, shutdown) and what it
//! reads back: live calls, counters, the table sizes a flood grew.

use super::*;

impl<M: MediaControl> B2bua<M> {
    /// Live calls (not yet ended), for the admin API.
    #[must_use]
    pub fn calls(&self) -> Vec<CallSummary> {
        self.calls
            .values()
            .filter(|c| c.state != CallState::Ended)
            .map(|c| CallSummary {
                call: c.id,
                inbound_trunk: Self::trunk_name(&c.cfg, c.a.trunk),
                outbound_trunk: c
                    .b
                    .as_ref()
                    .map(|b| Self::trunk_name(&c.cfg, b.target.trunk)),
                calling: c.calling.clone(),
                called: c.called.clone(),
                answered: c.state == CallState::Answered,
                setup_at: c.setup_at,
                media: c.media.as_ref().and_then(|m| m.primary()),
                codec: [Side::A, Side::B].map(|s| c.media.as_ref().and_then(|m| m.codec(s))),
                srtp: [Side::A, Side::B].map(|s| c.media.as_ref().and_then(|m| m.srtp(s))),
                media_stats: c
                    .media
                    .as_ref()
                    .and_then(|m| m.primary())
                    .and_then(|id| self.media.stats(id)),
            })
            .collect()
    }

    /// Trunks with a target out of routing at `now` after a `503` with `Retry-After`
    /// (RFC 3261 §21.5.4), with the latest time one of them is tried again.
    pub fn trunks_held_off(&self, now: Timestamp) -> Vec<(String, Timestamp)> {
        self.targets.held_off(now)
    }

    /// The SIP Call-IDs of call `call`: the A leg's and the current B leg's (for the
    /// driver's per-call log span). `None` once the call is gone.
    pub fn call_ids(&self, call: u64) -> Option<(&str, Option<&str>)> {
        let c = self.calls.get(&call)?;
        Some((
            c.a.invite.call_id().unwrap_or(""),
            c.b.as_ref().map(|b| b.call_id.as_str()),
        ))
    }

    /// The A leg's Call-ID of the call a message with `call_id` and these tags belongs to
    /// (either tag may be ours: the To tag of what the caller sends, the From tag of what
    /// we send to the callee). Capture tools tie a call's two legs together with it.
    #[must_use]
    pub fn a_leg_call_id(&self, call_id: &str, tags: [Option<&str>; 2]) -> Option<&str> {
        tags.into_iter().flatten().find_map(|tag| {
            let (call, _) = self.by_dialog.get(&(call_id.to_owned(), tag.to_owned()))?;
            self.calls.get(call)?.a.invite.call_id().ok()
        })
    }

    /// The live call using media allocation `id` (to log a data plane event in the
    /// call's span). `None` once the call released it.
    #[must_use]
    pub fn call_of_media(&self, id: MediaId) -> Option<u64> {
        self.by_media.get(&id).copied()
    }

    /// Admin: tears call `call` down (BYE both legs, or CANCEL/487 before answer).
    pub fn terminate(&mut self, now: Timestamp, call: u64) -> bool {
        let live = self
            .calls
            .get(&call)
            .is_some_and(|c| c.state != CallState::Ended);
        if live {
            self.end_call(now, call, EndReason::Terminated, None);
            self.process(now);
        }
        live
    }

    /// New INVITEs and OPTIONS get `503` + Retry-After (`options`); calls in progress
    /// continue.
    pub fn start_drain(&mut self) {
        self.draining = true;
    }

    /// Whether [`Self::start_drain`] was called.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// While `on`, new INVITEs get `503` + Retry-After (counted in
    /// `EngineStats::cdr_rejects`); calls in progress continue and still end with
    /// their record. The driver sets it when its CDR writer falls behind.
    pub fn set_cdr_backpressure(&mut self, on: bool) {
        self.cdr_backpressure = on;
    }

    /// Whether [`Self::set_cdr_backpressure`] is on.
    #[must_use]
    pub fn cdr_backpressure(&self) -> bool {
        self.cdr_backpressure
    }

    /// Ends every call (end reason Shutdown).
    pub fn release_all(&mut self, now: Timestamp) {
        let ids: Vec<u64> = self
            .calls
            .values()
            .filter(|c| c.state != CallState::Ended)
            .map(|c| c.id)
            .collect();
        for id in ids {
            self.end_call(now, id, EndReason::Shutdown, None);
        }
        self.process(now);
    }

    /// Calls not yet ended.
    #[must_use]
    pub fn active_calls(&self) -> usize {
        self.live_calls
    }

    /// Live transactions (server and client), for the memory bound.
    #[must_use]
    pub fn transactions(&self) -> usize {
        self.txn.len()
    }

    /// Gives back memory a flood made the tables grow (cheap when there is
    /// none to give back; the driver calls it from time to time).
    pub fn shrink(&mut self) {
        self.txn.shrink();
        let txn = &self.txn;
        self.teams_server_txs.retain(|tx| txn.state(tx).is_some());
        if self.events.capacity() > 4 * self.events.len() + 1024 {
            self.events.shrink_to(2 * self.events.len());
        }
        for m in [&mut self.by_client_tx] {
            if m.capacity() > 4 * m.len() + 1024 {
                m.shrink_to(2 * m.len());
            }
        }
        if self.by_invite_tx.capacity() > 4 * self.by_invite_tx.len() + 1024 {
            self.by_invite_tx.shrink_to(2 * self.by_invite_tx.len());
        }
        if self.by_dialog.capacity() > 4 * self.by_dialog.len() + 1024 {
            self.by_dialog.shrink_to(2 * self.by_dialog.len());
        }
    }

    /// Calls still held in memory (ended ones linger 64·T1).
    #[must_use]
    pub fn held_calls(&self) -> usize {
        self.calls.len()
    }

    /// Sources currently banned by the rate limiter.
    #[must_use]
    pub fn bans(&self) -> usize {
        self.policy.bans()
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }
}

//! The control side of a worker's relay: the commands of the ring (arm, restore, remove
//! a pair; DTMF) and housekeeping (inactivity, learning windows, SRTP failures, the fast
//! path's routes). Never on the packet path.

use super::{latched, make_handle, publish_state, resume, Relay, NO_LEG, SWEEP_SLICES};
use crate::fastpath::pair_counters;
use crate::leg::Leg;
use crate::types::{Command, Event, LegState, Side};

impl Relay {
    /// Point the leg slots of pair `pair` at it (`slots`: sides A and B), releasing the
    /// ones it held before.
    fn map_legs(&mut self, pair: u32, slots: [u32; 2]) {
        let Some(p) = self.pairs.get_mut(pair as usize) else {
            return;
        };
        let old = std::mem::replace(&mut p.slots, slots);
        for (side, slot) in (0u32..).zip(old) {
            if let Some(o) = self.owner.get_mut(slot as usize) {
                if *o == pair * 2 + side {
                    *o = NO_LEG;
                }
            }
        }
        for (side, slot) in (0u32..).zip(slots) {
            if let Some(o) = self.owner.get_mut(slot as usize) {
                *o = pair * 2 + side;
            }
        }
    }

    /// Apply one control command. Stale generations are counted and ignored.
    pub(crate) fn apply(&mut self, cmd: &Command, now_us: u64) {
        let w = &self.shared.worker;
        match *cmd {
            Command::Update {
                pair,
                generation,
                ref params,
                legs,
            } => {
                let Some(p) = self.pairs.get(pair as usize) else {
                    w.stale_commands.add(1);
                    return;
                };
                let newer = (generation.wrapping_sub(p.generation) as i32) > 0;
                let fresh = newer || (!p.armed() && p.generation == 0 && generation == 0);
                if (fresh || (p.armed() && generation == p.generation)) && p.slots != legs {
                    self.map_legs(pair, legs);
                }
                let w = &self.shared.worker;
                let Some(p) = self.pairs.get_mut(pair as usize) else {
                    return;
                };
                let newer = (generation.wrapping_sub(p.generation) as i32) > 0;
                let armed = p.armed();
                let fresh = newer || (!armed && p.generation == 0 && generation == 0);
                if !(fresh || (armed && generation == p.generation)) {
                    w.stale_commands.add(1);
                    return;
                }
                if fresh {
                    if let (Some(f), Some(lc)) = (
                        self.fast.as_mut(),
                        pair_counters(&self.shared, pair as usize),
                    ) {
                        f.clear(pair as usize, &mut p.legs, lc, w);
                    }
                    p.generation = generation;
                    p.inactive_reported_at = None;
                    for leg in 0..2u32 {
                        if let Some(c) = self.shared.legs.get((pair * 2 + leg) as usize) {
                            c.reset(generation);
                        }
                    }
                    if !armed {
                        w.active_pairs.add(1);
                    }
                }
                // An offer/answer step: either leg's signalled address moved.
                let reopen = p
                    .legs
                    .iter()
                    .zip(params)
                    .any(|(l, q)| l.signalling_moves(q));
                for (i, (leg, prm)) in (0..).zip(p.legs.iter_mut().zip(params)) {
                    leg.apply(prm, fresh, reopen, now_us);
                    leg.armed = true;
                    if fresh {
                        leg.last_rx_us = now_us;
                    }
                    if let Some(c) = self.shared.legs.get((pair * 2 + i) as usize) {
                        c.rtp_clock_rate.set(u64::from(leg.clock_rate));
                        publish_state(c, leg.state());
                    }
                }
                if let (Some(f), Some(lc)) = (
                    self.fast.as_mut(),
                    pair_counters(&self.shared, pair as usize),
                ) {
                    f.sync(pair as usize, p.slots, &mut p.legs, lc, w);
                }
                w.commands.add(1);
            }
            Command::Restore {
                pair,
                generation,
                params,
                legs,
                ref resume,
            } => {
                let update = Command::Update {
                    pair,
                    generation,
                    params,
                    legs,
                };
                self.apply(&update, now_us);
                self.resume(pair, generation, resume);
                // The other node's media stops here: the inactivity clock starts afresh,
                // on a pair restored again too (a standby's pair armed ahead and adopted
                // at the takeover).
                if let Some(p) = self.pairs.get_mut(pair as usize) {
                    if p.armed() && p.generation == generation {
                        p.inactive_reported_at = None;
                        for leg in &mut p.legs {
                            leg.last_rx_us = leg.last_rx_us.max(now_us);
                        }
                    }
                }
            }
            Command::Remove { pair, generation } => {
                match self.pairs.get_mut(pair as usize) {
                    Some(p) if p.armed() && p.generation == generation => {
                        if let (Some(f), Some(lc)) = (
                            self.fast.as_mut(),
                            pair_counters(&self.shared, pair as usize),
                        ) {
                            f.clear(pair as usize, &mut p.legs, lc, w);
                        }
                        // Drop key material and per-leg state now (and the armed flag).
                        p.legs = [Leg::new(), Leg::new()];
                        let slots = p.slots;
                        w.active_pairs.set(w.active_pairs.get().saturating_sub(1));
                        w.commands.add(1);
                        if self.track_removed && self.removed.len() + 2 <= self.removed.capacity() {
                            self.removed.extend(slots);
                        }
                        // The leg slots go back to the control plane's free lists.
                        self.map_legs(pair, [NO_LEG; 2]);
                    }
                    _ => w.stale_commands.add(1),
                }
            }
            Command::Dtmf {
                pair,
                generation,
                side,
                event,
                duration,
            } => {
                let leg = self
                    .pairs
                    .get_mut(pair as usize)
                    .filter(|p| p.armed() && p.generation == generation)
                    .map(|p| &mut p.legs[usize::from(side == Side::B)]);
                match leg.map(|l| l.queue_dtmf(event, duration)) {
                    Some(true) => w.dtmf_queued.add(1),
                    Some(false) => w.dtmf_refused.add(1),
                    None => {
                        w.stale_commands.add(1);
                        w.dtmf_refused.add(1);
                    }
                }
                w.commands.add(1);
            }
            Command::Shutdown | Command::Quiesce { .. } => w.commands.add(1),
        }
    }

    /// Periodic work on the next slice of the pair table: raise inactivity and
    /// SRTP-failure events (RTP statistics are published by the packet path itself).
    /// Each call visits `ceil(pairs / SWEEP_SLICES)` pairs, carrying on where the last
    /// call stopped, so every pair is visited once per [`SWEEP_SLICES`] calls. Not the
    /// whole table at once: a sweep of 20,000 pairs with cold caches takes about 2.5 ms,
    /// a stall every packet queued behind it would feel.
    pub(crate) fn housekeeping(&mut self, now_us: u64) {
        let n = self.pairs.len();
        if n == 0 {
            return;
        }
        let start = self.sweep_next.min(n - 1);
        let end = (start + n.div_ceil(SWEEP_SLICES)).min(n);
        self.sweep_next = if end == n { 0 } else { end };
        let w = &self.shared.worker;
        let mono_ns = if self.fast.is_some() {
            portcullis_xdp::monotonic_now_ns()
        } else {
            0
        };
        for i in start..end {
            let Some(p) = self.pairs.get_mut(i) else {
                break;
            };
            if !p.armed() {
                continue;
            }
            if let Some(f) = self.fast.as_mut() {
                f.poll(i, &mut p.legs, w, now_us, mono_ns);
            }
            let h = make_handle(self.worker, &self.plan, i, p.generation, p.slots);
            let last = p.last_rx_us();
            let inactive = now_us.saturating_sub(last) >= self.inactivity_us;
            if inactive && p.inactive_reported_at != Some(last) {
                p.inactive_reported_at = Some(last);
                if self.events.push(Event::Inactive { handle: h }).is_err() {
                    w.events_lost.add(1);
                }
            }
            for (s, leg) in p.legs.iter_mut().enumerate() {
                if matches!(leg.state(), LegState::Learning { .. }) {
                    let moved = leg.expire(now_us, self.window_us);
                    let lc = self.shared.legs.get(i * 2 + s).map(|c| &**c);
                    if let Some(c) = lc {
                        publish_state(c, leg.state());
                    }
                    if let Some(to) = moved {
                        latched(&self.events, &self.shared, h, s, to);
                    }
                }
                if let Some(c) = self.shared.legs.get(i * 2 + s) {
                    resume::publish(c, leg);
                }
                if leg.srtp_failures - leg.srtp_failures_reported >= self.srtp_fail_threshold {
                    leg.srtp_failures_reported = leg.srtp_failures;
                    let ev = Event::SrtpAuthFailures {
                        handle: h,
                        side: if s == 0 { Side::A } else { Side::B },
                        count: leg.srtp_failures,
                    };
                    if self.events.push(ev).is_err() {
                        w.events_lost.add(1);
                    }
                }
            }
            if let (Some(f), Some(lc)) = (self.fast.as_mut(), pair_counters(&self.shared, i)) {
                f.sync(i, p.slots, &mut p.legs, lc, w);
            }
        }
    }
}

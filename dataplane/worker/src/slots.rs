//! The control plane's bookkeeping of one worker's slots: which pair slots are in use
//! (with their generations) and which leg slots of each realm are free. Only
//! [`crate::Dataplane`] touches it, under its lock; the worker never does.

use crate::realm::SocketPlan;
use crate::types::RealmId;

/// Pair-slot bookkeeping of one worker (control-plane side only).
#[derive(Debug)]
pub(crate) struct SlotTable {
    pub(crate) free: Vec<u32>,
    pub(crate) generation: Vec<u32>,
    pub(crate) in_use: Vec<bool>,
    /// Leg slots of each pair slot's sides A and B (valid while in use).
    pub(crate) legs: Vec<[u32; 2]>,
    /// Free leg slots of each realm.
    pub(crate) free_legs: Vec<Vec<u32>>,
    /// Events-lost counter value already reported as [`Event::RingOverflow`].
    pub(crate) lost_reported: u64,
}

impl SlotTable {
    /// Every pair and leg slot of `plan` free; leg slots handed out lowest first.
    pub(crate) fn new(plan: &SocketPlan, realms: usize) -> SlotTable {
        let pairs = plan.pairs();
        let mut free_legs = vec![Vec::new(); realms];
        for seg in plan.segments() {
            if let Some(f) = free_legs.get_mut(usize::from(seg.realm.0)) {
                f.extend((seg.first_leg..seg.first_leg + seg.legs).rev());
            }
        }
        SlotTable {
            free: (0..pairs).rev().collect(),
            generation: vec![0; pairs as usize],
            in_use: vec![false; pairs as usize],
            legs: vec![[0, 0]; pairs as usize],
            free_legs,
            lost_reported: 0,
        }
    }

    /// Whether a pair with leg A in realm `a` and leg B in realm `b` fits.
    pub(crate) fn fits(&self, a: RealmId, b: RealmId) -> bool {
        let free = |r: RealmId| self.free_legs.get(usize::from(r.0)).map_or(0, Vec::len);
        !self.free.is_empty()
            && if a == b {
                free(a) >= 2
            } else {
                free(a) >= 1 && free(b) >= 1
            }
    }

    /// Take a pair slot and a leg slot per side: (pair, legs, new generation).
    pub(crate) fn take(&mut self, a: RealmId, b: RealmId) -> Option<(u32, [u32; 2], u32)> {
        if !self.fits(a, b) {
            return None;
        }
        let pair = self.free.pop()?;
        let la = self.free_legs.get_mut(usize::from(a.0))?.pop()?;
        let lb = self.free_legs.get_mut(usize::from(b.0))?.pop()?;
        let g = self.mark_taken(pair, [la, lb])?;
        Some((pair, [la, lb], g))
    }

    /// Take a free pair slot and exactly leg slots `legs` (free, in realms `realms`):
    /// (pair, new generation); `Err(side)` names the side whose leg slot is not free.
    pub(crate) fn take_at(
        &mut self,
        realms: [RealmId; 2],
        legs: [u32; 2],
    ) -> Result<(u32, u32), usize> {
        for side in 0..2 {
            let free = self
                .free_legs
                .get(usize::from(realms[side].0))
                .is_some_and(|f| f.contains(&legs[side]));
            if !free || (side == 1 && legs[0] == legs[1]) {
                return Err(side);
            }
        }
        let pair = self.free.pop().ok_or(0usize)?;
        for side in 0..2 {
            if let Some(f) = self.free_legs.get_mut(usize::from(realms[side].0)) {
                f.retain(|&l| l != legs[side]);
            }
        }
        let g = self.mark_taken(pair, legs).ok_or(0usize)?;
        Ok((pair, g))
    }

    /// Record pair slot `pair` as in use with leg slots `legs`: its new generation.
    fn mark_taken(&mut self, pair: u32, legs: [u32; 2]) -> Option<u32> {
        let i = pair as usize;
        let (Some(g), Some(u), Some(l)) = (
            self.generation.get_mut(i),
            self.in_use.get_mut(i),
            self.legs.get_mut(i),
        ) else {
            return None;
        };
        *g = g.wrapping_add(1);
        *u = true;
        *l = legs;
        Some(*g)
    }

    /// Free pair slot `pair` and its leg slots (B first, so A's comes back first).
    pub(crate) fn give_back(&mut self, pair: u32, plan: &SocketPlan) {
        let i = pair as usize;
        let (Some(u), Some(&[la, lb])) = (self.in_use.get_mut(i), self.legs.get(i)) else {
            return;
        };
        if !*u {
            return;
        }
        *u = false;
        self.free.push(pair);
        for leg in [lb, la] {
            if let Some(f) = plan
                .realm_of_leg(leg)
                .and_then(|r| self.free_legs.get_mut(usize::from(r.0)))
            {
                f.push(leg);
            }
        }
    }
}

//! The engine task's side of the pair: export dirty calls after each turn and queue
//! their writes (never waiting), remove ended calls, refresh expiries and SRTP state
//! on a timer, write everything again after Redis came back, restore on takeover.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use portcullis_dataplane::LegResume;
use portcullis_engine::b2bua::B2bua;
use portcullis_engine::ha::RestoreError;
use portcullis_engine::time::Timestamp;
use tokio::sync::mpsc;

use super::store::Write;
use super::{HaRecord, HaShared, ResumeRecord, TakeoverReport};
use crate::runtime::media::{DataplaneMedia, PrearmStream};

/// Calls exported per tick from the retry set or a resync (work budget).
const TICK_BUDGET: usize = 2_000;

/// Calls a standby arms per look at most (work budget; the command rings stay clear
/// of a burst at its first look).
const WARM_BUDGET: usize = 1_000;

/// Keys per expiry refresh write.
const TOUCH_CHUNK: usize = 1_000;

/// One replicated call.
#[derive(Debug, Clone)]
struct Tracked {
    key: String,
    /// The call's takeover count: the high half of its record versions.
    epoch: u64,
    /// Writes so far: the low half.
    seq: u64,
    /// It has SRTP legs (rewritten every `[ha] media_refresh`).
    srtp: bool,
}

/// See the module docs.
#[derive(Debug)]
pub struct HaDriver {
    shared: Arc<HaShared>,
    tx: mpsc::Sender<Write>,
    calls: HashMap<u64, Tracked>,
    /// Calls whose write did not fit the queue, or that a resync rewrites.
    retry: BTreeSet<u64>,
    next_refresh: Instant,
    next_touch: Instant,
    /// A standby's replicated calls not armed yet: new or changed since the last look,
    /// or met a full command ring ([`Self::warm`]).
    unarmed: std::collections::BTreeMap<String, HaRecord>,
}

impl HaDriver {
    /// A driver writing through `tx` (the writer task's queue).
    pub fn new(shared: Arc<HaShared>, tx: mpsc::Sender<Write>) -> Self {
        let now = Instant::now();
        Self {
            next_refresh: now + shared.cfg.media_refresh,
            next_touch: now + shared.cfg.state_ttl / 3,
            shared,
            tx,
            calls: HashMap::new(),
            retry: BTreeSet::new(),
            unarmed: std::collections::BTreeMap::new(),
        }
    }

    /// The pair's shared state.
    pub fn shared(&self) -> &Arc<HaShared> {
        &self.shared
    }

    /// Calls replicated now.
    pub fn replicated(&self) -> usize {
        self.calls.len()
    }

    /// After each engine turn: every dirty call exported and queued.
    pub fn drain(&mut self, b2b: &mut B2bua<DataplaneMedia>) {
        while let Some(call) = b2b.poll_ha_dirty() {
            self.write(b2b, call);
        }
    }

    /// Exports `call` and queues its write; a full queue keeps it for a later tick.
    fn write(&mut self, b2b: &mut B2bua<DataplaneMedia>, call: u64) {
        let Some(snap) = b2b.export_call(call) else {
            return;
        };
        // What the data plane carries over, per stream in line order (the snapshot's).
        let media: Vec<[ResumeRecord; 2]> = match snap.media {
            Some(_) => b2b
                .media_streams_of(call)
                .into_iter()
                .map(|m| {
                    b2b.media()
                        .ha_resume(m)
                        .map_or_else(Default::default, |r| r.map(ResumeRecord::from))
                })
                .collect(),
            None => Vec::new(),
        };
        let srtp = snap.media.as_ref().is_some_and(|m| {
            m.streams.iter().any(|s| {
                s.legs
                    .iter()
                    .any(|l| l.srtp_in.is_some() || l.srtp_out.is_some())
            })
        });
        let epoch = u64::from(snap.takeover.as_ref().map_or(0, |t| t.count));
        let t = self.calls.entry(call).or_insert_with(|| Tracked {
            key: snap.key.clone(),
            epoch,
            seq: 0,
            srtp,
        });
        t.seq += 1;
        t.srtp = srtp;
        let w = Write::Put {
            key: t.key.clone(),
            version: (t.epoch << 32) | (t.seq & 0xffff_ffff),
            record: Box::new(HaRecord { call: snap, media }),
        };
        if self.tx.try_send(w).is_err() {
            self.shared
                .counters
                .queue_full
                .fetch_add(1, Ordering::Relaxed);
            self.retry.insert(call);
        }
    }

    /// A call ended (its CDR is written here): its state leaves Redis, its tombstone
    /// stays. A transfer's segment record is not an end.
    pub fn ended(&mut self, call: u64) {
        self.retry.remove(&call);
        let Some(t) = self.calls.remove(&call) else {
            return;
        };
        // An end must not be lost: when the queue is full it waits in a task.
        let w = Write::Ended { key: t.key };
        if let Err(mpsc::error::TrySendError::Full(w)) = self.tx.try_send(w) {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(w).await;
            });
        }
    }

    /// Periodic work (the engine task's media tick): retries, a resync after Redis
    /// came back, SRTP state refresh, expiry refresh. Budgeted.
    pub fn tick(&mut self, b2b: &mut B2bua<DataplaneMedia>) {
        let now = Instant::now();
        if self.shared.take_resync() {
            self.retry.extend(self.calls.keys().copied());
        }
        if now >= self.next_refresh {
            self.next_refresh = now + self.shared.cfg.media_refresh;
            let srtp: Vec<u64> = self
                .calls
                .iter()
                .filter(|(_, t)| t.srtp)
                .map(|(c, _)| *c)
                .collect();
            self.retry.extend(srtp);
        }
        for _ in 0..TICK_BUDGET {
            let Some(call) = self.retry.pop_first() else {
                break;
            };
            self.write(b2b, call);
        }
        if now >= self.next_touch {
            self.next_touch = now + self.shared.cfg.state_ttl / 3;
            let keys: Vec<String> = self.calls.values().map(|t| t.key.clone()).collect();
            for chunk in keys.chunks(TOUCH_CHUNK) {
                let w = Write::Touch {
                    keys: chunk.to_vec(),
                };
                if self.tx.try_send(w).is_err() {
                    self.shared
                        .counters
                        .queue_full
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// A standby's look at Redis ([`super::warm`]): arms the media pairs of the calls
    /// written since, releases those of the calls gone; calls a full command ring left
    /// unarmed are tried again at the next look. At most `WARM_BUDGET` calls armed per
    /// look. Only while standby.
    pub fn warm(&mut self, b2b: &mut B2bua<DataplaneMedia>, changes: &super::store::Changes) {
        if self.shared.role() == crate::config::HaRole::Active {
            return;
        }
        let media = b2b.media_mut();
        for key in &changes.gone {
            media.unprearm(key);
            self.unarmed.remove(key);
        }
        for (key, rec) in &changes.put {
            self.unarmed.insert(key.clone(), rec.clone());
        }
        let keys: Vec<String> = self.unarmed.keys().take(WARM_BUDGET).cloned().collect();
        for key in keys {
            let Some(rec) = self.unarmed.get(&key) else {
                continue;
            };
            // A record without media or without its legs' realms is left to the takeover.
            let Some((m, realms)) = rec
                .call
                .media
                .as_ref()
                .and_then(|m| Some((m, m.leg_realms()?)))
            else {
                self.unarmed.remove(&key);
                continue;
            };
            let streams: Vec<PrearmStream> = m
                .streams
                .iter()
                .zip(rec.media.iter().map(Some).chain(std::iter::repeat(None)))
                .filter_map(|(s, r)| {
                    let legs = [s.legs[0].params()?, s.legs[1].params()?];
                    let resume = r.map_or_else(Default::default, |r| r.map(LegResume::from));
                    Some((s.ports, legs, resume))
                })
                .collect();
            if !media.prearm(&key, realms, &streams) {
                self.unarmed.remove(&key);
            }
        }
        let n = media.prearmed() as u64;
        self.shared.counters.prearmed.store(n, Ordering::Relaxed);
    }

    /// Restores `records` (a takeover): each call's pair on its ports with its data
    /// plane state, then the call; restored calls are replicated from here on.
    /// Returns what happened and the calls restored (the caller journals them).
    pub fn restore(
        &mut self,
        b2b: &mut B2bua<DataplaneMedia>,
        now: Timestamp,
        records: Vec<(String, HaRecord)>,
    ) -> (TakeoverReport, Vec<u64>) {
        let mut rep = TakeoverReport {
            found: records.len(),
            ..TakeoverReport::default()
        };
        let mut restored = Vec::new();
        for (key, rec) in records {
            // Each stream's pair takes its own state (an older record may lack some: those
            // streams start afresh, SRTP estimated from the packets).
            if let Some(m) = rec.call.media.as_ref() {
                for (s, r) in m.streams.iter().zip(&rec.media) {
                    b2b.media_mut()
                        .stage_resume(s.ports[0], r.map(LegResume::from));
                }
            }
            let res = b2b.restore_call(now, &rec.call);
            b2b.media_mut().clear_staged();
            match res {
                Ok(call) => {
                    rep.restored += 1;
                    restored.push(call);
                    tracing::info!(call, %key, "call taken over");
                }
                Err(RestoreError::Duplicate(_)) => rep.already += 1,
                Err(e) => {
                    rep.failed += 1;
                    tracing::warn!(%key, error = %e, "call not taken over");
                }
            }
        }
        // Pairs armed ahead for calls that ended since the last look.
        b2b.media_mut().release_prearmed();
        self.unarmed.clear();
        self.shared.counters.prearmed.store(0, Ordering::Relaxed);
        let c = &self.shared.counters;
        c.takeovers.fetch_add(1, Ordering::Relaxed);
        c.restored.fetch_add(rep.restored as u64, Ordering::Relaxed);
        c.restore_failed
            .fetch_add(rep.failed as u64, Ordering::Relaxed);
        (rep, restored)
    }
}

//! What a transaction state machine may touch while it runs: the clock, the timer
//! configuration, its own id, and the layer's output queues.

use std::collections::VecDeque;

use super::stats::TxStats;
use super::timer::TimerConfig;
use super::{PeerAddr, Transmit, TxEvent, TxId};
use crate::time::Timestamp;

/// What a state machine may touch while it runs.
pub(crate) struct Ctx<'a> {
    pub now: Timestamp,
    pub cfg: &'a TimerConfig,
    pub id: TxId,
    pub transmits: &'a mut VecDeque<Transmit>,
    pub events: &'a mut VecDeque<TxEvent>,
    pub stats: &'a mut TxStats,
}

impl Ctx<'_> {
    pub fn send(&mut self, dest: &PeerAddr, bytes: Vec<u8>) {
        self.transmits.push_back(Transmit {
            dest: dest.addr,
            transport: dest.transport,
            conn: dest.conn,
            tx: Some(self.id),
            bytes,
        });
    }

    pub fn retransmit(&mut self, dest: &PeerAddr, bytes: Vec<u8>) {
        self.stats.retransmissions += 1;
        self.send(dest, bytes);
    }

    pub fn emit(&mut self, ev: TxEvent) {
        self.events.push_back(ev);
    }
}

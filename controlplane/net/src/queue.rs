//! The two bounded event queues between the drivers and the consumer: one for configured
//! peers (trunks), one for every other source, drained with a weighted share so that a
//! flood from unknown sources never takes a trunk's place.

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};

use crate::event::TransportEvent;

/// When both queues hold events, this many trunk events are served per event of the
/// shared queue (trunks keep at least 4/5 of the consumer; alone, either gets all of it).
pub const TRUNK_SHARE: usize = 4;

/// Which queue an event goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// A configured peer (see [`crate::TrunkSources`]).
    Trunk,
    /// Any other source.
    Other,
}

/// Why [`EventQueues::try_send`] dropped an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue is full.
    Full,
    /// The consumer is gone.
    Closed,
}

/// The sending side, held by every driver task.
#[derive(Debug, Clone)]
pub(crate) struct EventQueues {
    trunk: mpsc::Sender<TransportEvent>,
    other: mpsc::Sender<TransportEvent>,
}

impl EventQueues {
    fn of(&self, class: Class) -> &mpsc::Sender<TransportEvent> {
        match class {
            Class::Trunk => &self.trunk,
            Class::Other => &self.other,
        }
    }

    /// Waits for room (TCP back-pressure). `Err` when the consumer is gone.
    pub(crate) async fn send(&self, class: Class, ev: TransportEvent) -> Result<(), ()> {
        self.of(class).send(ev).await.map_err(|_| ())
    }

    /// Whether the queue of `class` has room now (a later `try_send` may still find it
    /// full: other receive tasks share it).
    pub(crate) fn has_room(&self, class: Class) -> bool {
        self.of(class).capacity() > 0
    }

    /// Never waits (UDP); the event is dropped when its queue is full.
    pub(crate) fn try_send(&self, class: Class, ev: TransportEvent) -> Result<(), Refused> {
        self.of(class).try_send(ev).map_err(|e| match e {
            TrySendError::Full(_) => Refused::Full,
            TrySendError::Closed(_) => Refused::Closed,
        })
    }
}

/// The receiving side returned by [`crate::SipTransports::bind`]: every event of the
/// drivers, from two bounded queues (configured peers, everyone else) served with a
/// weighted share ([`TRUNK_SHARE`] to 1). Events of one connection keep their order.
#[derive(Debug)]
pub struct TransportEvents {
    trunk: mpsc::Receiver<TransportEvent>,
    other: mpsc::Receiver<TransportEvent>,
    /// Trunk events served since the shared queue was last served.
    streak: usize,
}

/// Both queues, each bounded by `capacity`.
pub(crate) fn channel(capacity: usize) -> (EventQueues, TransportEvents) {
    let (trunk, trunk_rx) = mpsc::channel(capacity.max(1));
    let (other, other_rx) = mpsc::channel(capacity.max(1));
    (
        EventQueues { trunk, other },
        TransportEvents {
            trunk: trunk_rx,
            other: other_rx,
            streak: 0,
        },
    )
}

impl TransportEvents {
    fn served(&mut self, class: Class) {
        match class {
            Class::Trunk => self.streak = self.streak.saturating_add(1),
            Class::Other => self.streak = 0,
        }
    }

    fn trunk_first(&self) -> bool {
        self.streak < TRUNK_SHARE
    }

    /// The next event; `None` once the drivers are gone and both queues are empty.
    pub async fn recv(&mut self) -> Option<TransportEvent> {
        let (ev, class) = if self.trunk_first() {
            tokio::select! {
                biased;
                Some(ev) = self.trunk.recv() => (ev, Class::Trunk),
                Some(ev) = self.other.recv() => (ev, Class::Other),
                else => return None,
            }
        } else {
            tokio::select! {
                biased;
                Some(ev) = self.other.recv() => (ev, Class::Other),
                Some(ev) = self.trunk.recv() => (ev, Class::Trunk),
                else => return None,
            }
        };
        self.served(class);
        Some(ev)
    }

    /// The next event if one is waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] when none waits, [`TryRecvError::Disconnected`] once the
    /// drivers are gone and both queues are empty.
    pub fn try_recv(&mut self) -> Result<TransportEvent, TryRecvError> {
        let order = if self.trunk_first() {
            [Class::Trunk, Class::Other]
        } else {
            [Class::Other, Class::Trunk]
        };
        let mut closed = 0;
        for class in order {
            let rx = match class {
                Class::Trunk => &mut self.trunk,
                Class::Other => &mut self.other,
            };
            match rx.try_recv() {
                Ok(ev) => {
                    self.served(class);
                    return Ok(ev);
                }
                Err(TryRecvError::Disconnected) => closed += 1,
                Err(TryRecvError::Empty) => {}
            }
        }
        Err(if closed == 2 {
            TryRecvError::Disconnected
        } else {
            TryRecvError::Empty
        })
    }

    /// Events waiting in the queue of configured peers and in the shared queue.
    pub fn len(&self) -> (usize, usize) {
        (self.trunk.len(), self.other.len())
    }

    /// Whether no event waits.
    pub fn is_empty(&self) -> bool {
        self.trunk.is_empty() && self.other.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::conn::ConnId;

    fn ev(n: u64) -> TransportEvent {
        TransportEvent::KeepalivePong {
            conn: ConnId(n),
            remote: "127.0.0.1:1".parse().expect("literal"),
            received_at: Instant::now(),
        }
    }

    fn id(e: &TransportEvent) -> u64 {
        match e {
            TransportEvent::KeepalivePong { conn, .. } => conn.0,
            _ => u64::MAX,
        }
    }

    #[tokio::test]
    async fn both_busy_trunks_get_their_share_and_the_others_are_not_starved() {
        let (q, mut rx) = channel(100);
        for i in 0..50 {
            q.try_send(Class::Other, ev(1000 + i)).expect("room");
            q.try_send(Class::Trunk, ev(i)).expect("room");
        }
        let mut order = Vec::new();
        for _ in 0..25 {
            order.push(id(&rx.recv().await.expect("event")) < 1000);
        }
        let trunk = order.iter().filter(|t| **t).count();
        assert_eq!(trunk, 20, "4 trunk events per other one: {order:?}");
        // Events of one queue stay in order.
        let mut rest = Vec::new();
        while let Ok(e) = rx.try_recv() {
            rest.push(id(&e));
        }
        let trunks: Vec<u64> = rest.iter().copied().filter(|i| *i < 1000).collect();
        assert!(trunks.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(rest.len(), 75);
    }

    #[tokio::test]
    async fn one_queue_alone_gets_everything_and_close_is_seen() {
        let (q, mut rx) = channel(8);
        for i in 0..8 {
            q.try_send(Class::Other, ev(i)).expect("room");
        }
        assert!(q.try_send(Class::Other, ev(9)).is_err(), "bounded");
        q.try_send(Class::Trunk, ev(100)).expect("own room");
        assert_eq!(rx.len(), (1, 8));
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, 9);
        assert_eq!(rx.try_recv().err(), Some(TryRecvError::Empty));
        drop(q);
        assert!(rx.recv().await.is_none());
        assert_eq!(rx.try_recv().err(), Some(TryRecvError::Disconnected));
    }
}

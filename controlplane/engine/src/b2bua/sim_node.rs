//! [`SimNode`] for the B2BUA, so simulations drive it like any endpoint.

use std::net::SocketAddr;

use super::B2bua;
use crate::media::MediaControl;
use crate::sim::SimNode;
use crate::time::Timestamp;
use crate::transaction::{PeerAddr, Transmit, Transport};

impl<M: MediaControl> SimNode for B2bua<M> {
    /// The first listener's address.
    fn addr(&self) -> SocketAddr {
        self.config()
            .listeners
            .first()
            .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |l| l.addr)
    }

    fn handle_datagram(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        transport: Transport,
        bytes: &[u8],
    ) {
        let peer = PeerAddr {
            transport,
            addr: from,
            conn: None,
        };
        B2bua::handle_datagram(self, now, peer, bytes);
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        B2bua::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        B2bua::poll_transmit(self).map(|t| Transmit {
            dest: t.dest.addr,
            transport: t.dest.transport,
            conn: t.dest.conn,
            tx: t.tx,
            bytes: t.bytes,
        })
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        B2bua::poll_timeout(self)
    }
}

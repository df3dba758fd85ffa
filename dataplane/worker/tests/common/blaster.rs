//! A `sendmmsg` flood generator for the overload tests, on the workers' own batch type.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use portcullis_dataplane::raw::{bind_udp, Batch, BATCH, SOCKET_BUFFER};
use portcullis_dataplane::DataplaneError;

pub use socket2::Socket;

/// A UDP socket with the media sockets' options (large buffers).
pub fn bind_flood(addr: SocketAddr) -> Result<Socket, DataplaneError> {
    bind_udp(addr, SOCKET_BUFFER)
}

/// Copies packets into preallocated buffers and sends them in batches.
pub struct Blaster {
    batch: Batch,
}

impl Default for Blaster {
    fn default() -> Self {
        Blaster {
            batch: Batch::new(),
        }
    }
}

impl Blaster {
    /// Maximum packets per [`send`](Self::send) call.
    pub const BATCH: usize = BATCH;

    /// Sends up to [`Self::BATCH`] packets produced by `fill(i, buf) -> (dest, len)` out of
    /// `sock` in one `sendmmsg`. Returns packets accepted.
    pub fn send(
        &mut self,
        sock: &Socket,
        n: usize,
        mut fill: impl FnMut(usize, &mut [u8]) -> (SocketAddr, usize),
    ) -> usize {
        let fd = sock.as_raw_fd();
        let n = n.min(BATCH);
        for i in 0..n {
            let (dest, len) = match self.batch.buf_mut(i) {
                Some(b) => fill(i, b),
                None => break,
            };
            self.batch.queue(i, 0, dest, len);
        }
        let mut fails = 0;
        self.batch.flush(|_| Some(fd), |_| fails += 1);
        n - fails.min(n)
    }
}

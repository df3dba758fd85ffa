//! Media sockets as io_uring registered ("fixed") files.
//!
//! A registered file lives in the ring's file table, not in the process descriptor table,
//! so it does not count against `RLIMIT_NOFILE`: the kernel only caps each ring's table at
//! `RLIMIT_NOFILE` entries (`io_sqe_files_register`: more is `EMFILE`). The worker thread
//! that owns the ring (`IORING_SETUP_SINGLE_ISSUER`: registration must come from it)
//! registers a sparse table, then binds its sockets a few at a time, installs each in its
//! slot (slot = socket index in the slice) with `IORING_REGISTER_FILES_UPDATE` and closes the
//! descriptor. The ring holds the socket, and with it the port (`SO_REUSEPORT` as before),
//! until the table is unregistered at shutdown. Sockets beyond the table, when a slice is
//! larger than the limit, stay ordinary descriptors: the hybrid slice.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use io_uring::IoUring;
use socket2::Socket;

use crate::sock;
use crate::types::DataplaneError;
use crate::worker::WorkerCtx;

/// Sockets bound and installed per registration call: descriptors held at once while
/// binding, well inside the descriptor check's reserve (`FD_RESERVE`).
pub(crate) const INSTALL_BATCH: usize = 16;

/// How a submission names socket `sock` of the slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SockRef {
    /// Slot in the ring's registered-file table.
    Fixed(u32),
    /// An ordinary descriptor (beyond the table).
    Fd(i32),
}

/// Registered-file slots for a slice of `sockets` under the soft descriptor limit `limit`
/// (`None`: unlimited): the kernel refuses a table larger than the limit.
#[must_use]
pub(crate) fn table_size(sockets: u32, limit: Option<u64>) -> u32 {
    limit.map_or(sockets, |l| {
        sockets.min(u32::try_from(l).unwrap_or(u32::MAX))
    })
}

/// Sockets of a slice that stay ordinary descriptors (beyond the registered table).
#[must_use]
pub(crate) fn overflow(sockets: u32, limit: Option<u64>) -> u32 {
    sockets - table_size(sockets, limit)
}

/// Bind socket `index` of the worker's slice (port `base_port + index`).
pub(crate) fn bind_index(
    ip: std::net::IpAddr,
    base_port: u16,
    index: u32,
) -> Result<Socket, DataplaneError> {
    let port = u16::try_from(u32::from(base_port) + index)
        .map_err(|_| DataplaneError::Config("port overflow"))?;
    sock::bind_udp(SocketAddr::new(ip, port), sock::SOCKET_BUFFER)
}

/// Bind the worker's whole slice: sockets `0..table` into `ring`'s registered-file table,
/// the rest as ordinary descriptors in `ctx.sockets`. Sets `ctx.fixed`. The table gets
/// room after the slice's sockets, where the limit allows, for one connected companion
/// per RTP port plus some slack ([`crate::companion`]); returns that number of slots.
///
/// On error the table may hold some sockets; the caller unregisters it.
pub(crate) fn bind_slice(ring: &IoUring, ctx: &mut WorkerCtx) -> Result<u32, DataplaneError> {
    let n = ctx.relay.sockets();
    let limit = sock::nofile_limit();
    let table = table_size(n, limit);
    let companions = if table == n {
        table_size(n + n / 2 + crate::companion::SLACK, limit) - n
    } else {
        0
    };
    if table + companions > 0 {
        ring.submitter()
            .register_files_sparse(table + companions)
            .map_err(|e| DataplaneError::io("register fixed-file table", e))?;
    }
    let mut held: Vec<Socket> = Vec::with_capacity(INSTALL_BATCH);
    let mut fds = [-1; INSTALL_BATCH];
    let mut next = 0u32;
    while next < table {
        let end = next.saturating_add(INSTALL_BATCH as u32).min(table);
        held.clear();
        for s in next..end {
            held.push(bind_index(ctx.bind_ip, ctx.base_port, s)?);
        }
        for (fd, s) in fds.iter_mut().zip(&held) {
            *fd = s.as_raw_fd();
        }
        let want = held.len();
        let done = ring
            .submitter()
            .register_files_update(next, fds.get(..want).unwrap_or(&[]))
            .map_err(|e| DataplaneError::io("install fixed file", e))?;
        if done != want {
            return Err(DataplaneError::io(
                "install fixed file",
                std::io::Error::other(format!("kernel installed {done} of {want}")),
            ));
        }
        // The table holds its own references: closing the descriptors keeps the sockets.
        held.clear();
        next = end;
    }
    ctx.fixed = table;
    ctx.sockets.clear();
    ctx.sockets.reserve_exact((n - table) as usize);
    for s in table..n {
        let sock = bind_index(ctx.bind_ip, ctx.base_port, s)?;
        ctx.sockets.push(sock);
    }
    Ok(companions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_capped_by_the_limit_and_the_rest_overflows() {
        assert_eq!(table_size(4000, Some(20_000)), 4000);
        assert_eq!(overflow(4000, Some(20_000)), 0);
        assert_eq!(table_size(20_500, Some(20_000)), 20_000);
        assert_eq!(overflow(20_500, Some(20_000)), 500);
        assert_eq!(table_size(700, None), 700);
        assert_eq!(overflow(700, Some(510)), 190);
    }
}

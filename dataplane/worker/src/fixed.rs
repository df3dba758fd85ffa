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
//! larger than the limit, stay ordinary descriptors: the hybrid slice. The io_uring backend
//! binds its slice this way (`crate::uring::bind_slice`), each socket at the address its
//! realm gives it ([`crate::realm::SocketPlan::bind`]).

/// Sockets bound and installed per registration call: descriptors held at once while
/// binding, well inside the descriptor check's reserve (`FD_RESERVE`).
pub(crate) const INSTALL_BATCH: usize = 16;

/// How a submission names socket `sock` of the slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockRef {
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

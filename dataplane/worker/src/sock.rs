//! Socket setup and `sockaddr` conversions: the small part of the kernel interface the
//! safe crates do not cover for the batched paths.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::types::DataplaneError;

/// Socket buffer size requested for every media socket (the kernel caps it at
/// `net.core.rmem_max` / `wmem_max`).
pub const SOCKET_BUFFER: usize = 4 << 20;

/// Bind a non-blocking UDP socket with `SO_REUSEPORT` (so an upgraded worker can take the
/// port over) and large kernel buffers.
pub fn bind_udp(addr: SocketAddr, buffer: usize) -> Result<Socket, DataplaneError> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| DataplaneError::io("socket", e))?;
    s.set_reuse_port(true)
        .map_err(|e| DataplaneError::io("SO_REUSEPORT", e))?;
    // Best effort: a capped buffer is still a working socket.
    let _ = s.set_recv_buffer_size(buffer);
    let _ = s.set_send_buffer_size(buffer);
    s.set_nonblocking(true)
        .map_err(|e| DataplaneError::io("O_NONBLOCK", e))?;
    s.bind(&SockAddr::from(addr))
        .map_err(|source| DataplaneError::Bind { addr, source })?;
    Ok(s)
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit (every media port is a socket).
pub fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if got == 0 && lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit read back from the kernel just above.
        let _ = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
}

/// The soft `RLIMIT_NOFILE` (`None` when it cannot be read or is unlimited).
#[must_use]
pub fn nofile_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (got == 0 && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// Descriptors this process has open now (0 when /proc is unavailable).
#[must_use]
pub fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// An all-zero `sockaddr_storage`, big enough for any address family.
#[must_use]
pub fn zero_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid (AF_UNSPEC) value.
    unsafe { std::mem::zeroed() }
}

/// Decode a kernel-written source address; a v4-mapped IPv6 address (an IPv4 peer of a
/// dual-stack socket) comes back as IPv4. `None` for families other than IPv4/IPv6 or a
/// length too short for the family.
#[must_use]
pub fn from_storage(s: &libc::sockaddr_storage, len: usize) -> Option<SocketAddr> {
    match i32::from(s.ss_family) {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, the length covers it,
            // and sockaddr_storage is sized and aligned for every sockaddr type.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            // An IPv4 peer of a dual-stack socket: handled as the IPv4 address it is.
            if let Some(v4) = ip.to_ipv4_mapped() {
                return Some(SocketAddr::V4(SocketAddrV4::new(
                    v4,
                    u16::from_be(a.sin6_port),
                )));
            }
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Encode `addr` into `s`; returns the length to pass to the kernel.
pub fn to_storage(addr: SocketAddr, s: &mut libc::sockaddr_storage) -> libc::socklen_t {
    let sa = SockAddr::from(addr);
    let len = (sa.len() as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
    // SAFETY: `sa.as_ptr()` points at `sa.len()` initialised bytes, `s` is a distinct
    // sockaddr_storage with room for any address, and `len` is clamped to its size.
    unsafe {
        std::ptr::copy_nonoverlapping(
            sa.as_ptr().cast::<u8>(),
            (s as *mut libc::sockaddr_storage).cast::<u8>(),
            len,
        );
    }
    libc::socklen_t::try_from(len).unwrap_or(0)
}

/// Kernel thread id of the calling thread.
#[must_use]
pub fn gettid() -> u64 {
    // SAFETY: gettid has no preconditions and cannot fail.
    let t = unsafe { libc::gettid() };
    u64::try_from(t).unwrap_or(0)
}

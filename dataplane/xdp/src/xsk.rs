//! The program's side of the AF_XDP worker backend: which ports go up to which worker's
//! AF_XDP socket (`xsk_ports`), and the sockets themselves (`xsks`, an XSKMAP).
//!
//! A worker binds one AF_XDP socket to one queue of each interface that holds one of its
//! realms' addresses, puts it in the XSKMAP ([`XskRegistry::set_socket`]), then claims
//! every port of its slice on that address ([`XskRegistry::claim`]). From then on the
//! program redirects a packet for a claimed address and port to that socket when it
//! arrives on the socket's interface and queue, after the fast path had its say; anything
//! else (a port nobody claimed, another queue) goes to the kernel's stack unchanged, where
//! the worker's UDP socket for that port takes it.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use aya::maps::{HashMap, Map, MapData, XskMap};

use aya::maps::IterableMap;

use crate::maps::{addr_bytes, family};
use crate::{map_err, FastPathError};

/// Sockets the `xsks` map holds (`PC_MAX_XSKS`).
pub const MAX_SOCKETS: u32 = 256;

/// Key of `xsk_ports` (`struct pc_xsk_key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct XskKey {
    addr: [u8; 16],
    /// Host order.
    port: u16,
    family: u8,
    pad: u8,
}

const _: () = assert!(std::mem::size_of::<XskKey>() == 20);

// SAFETY: `repr(C)`, a byte array and integers without padding (16 + 2 + 1 + 1 = 20 bytes,
// asserted above and in the C file); any bit pattern is valid.
unsafe impl aya::Pod for XskKey {}

impl XskKey {
    fn new(local: SocketAddr) -> XskKey {
        XskKey {
            addr: addr_bytes(local.ip()),
            port: local.port(),
            family: family(local),
            pad: 0,
        }
    }
}

/// Value of `xsk_ports` (`struct pc_xsk_port`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct XskPort {
    ifindex: u32,
    queue: u32,
    index: u32,
}

const _: () = assert!(std::mem::size_of::<XskPort>() == 12);

// SAFETY: `repr(C)`, three `u32` (12 bytes, asserted above and in the C file); any bit
// pattern is valid.
unsafe impl aya::Pod for XskPort {}

/// Where a claimed port's packets go: the socket at `index` in the XSKMAP, bound to
/// queue `queue` of interface `ifindex`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XskTarget {
    /// Interface the socket is bound to.
    pub ifindex: u32,
    /// Queue of that interface.
    pub queue: u32,
    /// Slot in the XSKMAP (below [`MAX_SOCKETS`]).
    pub index: u32,
}

/// Handles on the program's AF_XDP maps (see the module doc).
pub struct XskRegistry {
    ports: HashMap<MapData, XskKey, XskPort>,
    sockets: XskMap<MapData>,
    /// A second descriptor of `xsks` (an `XskMap` does not lend its own), for `try_clone`.
    sockets_fd: OwnedFd,
}

impl std::fmt::Debug for XskRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskRegistry").finish_non_exhaustive()
    }
}

impl XskRegistry {
    /// Handles on the program's `xsk_ports` and `xsks` maps.
    pub(crate) fn new(ports: Map, sockets: Map) -> Result<XskRegistry, FastPathError> {
        let ports = HashMap::try_from(ports).map_err(map_err("xsk_ports"))?;
        XskRegistry::with_ports(ports, sockets)
    }

    fn with_ports(
        ports: HashMap<MapData, XskKey, XskPort>,
        sockets: Map,
    ) -> Result<XskRegistry, FastPathError> {
        let Map::XskMap(data) = &sockets else {
            return Err(FastPathError::Map {
                map: "xsks",
                reason: "not an XSKMAP".to_owned(),
            });
        };
        let sockets_fd = data
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(map_err("xsks"))?;
        Ok(XskRegistry {
            ports,
            sockets: XskMap::try_from(sockets).map_err(map_err("xsks"))?,
            sockets_fd,
        })
    }

    /// Another handle on the same maps (new map descriptors).
    pub fn try_clone(&self) -> Result<XskRegistry, FastPathError> {
        let fd = self.sockets_fd.try_clone().map_err(map_err("xsks"))?;
        let data = MapData::from_fd(fd).map_err(map_err("xsks"))?;
        let sockets = Map::from_map_data(data).map_err(map_err("xsks"))?;
        XskRegistry::with_ports(crate::table::dup(self.ports.map(), "xsk_ports")?, sockets)
    }

    /// Puts an AF_XDP socket (bound to the queue its claims name) at `index`.
    pub fn set_socket(&mut self, index: u32, socket: &impl AsRawFd) -> Result<(), FastPathError> {
        self.sockets
            .set(index, socket.as_raw_fd(), 0)
            .map_err(map_err("xsks"))
    }

    /// Takes the socket at `index` out: its claimed ports go to the kernel's stack again.
    pub fn unset_socket(&mut self, index: u32) {
        let _ = self.sockets.unset(index);
    }

    /// Sends the packets for `local` (our address and port) to the socket `to` names.
    pub fn claim(&mut self, local: SocketAddr, to: XskTarget) -> Result<(), FastPathError> {
        let v = XskPort {
            ifindex: to.ifindex,
            queue: to.queue,
            index: to.index,
        };
        self.ports
            .insert(XskKey::new(local), v, 0)
            .map_err(map_err("xsk_ports"))
    }

    /// Gives `local` back to the kernel's stack.
    pub fn release(&mut self, local: SocketAddr) {
        let _ = self.ports.remove(&XskKey::new(local));
    }

    /// Ports claimed now (all workers).
    #[must_use]
    pub fn claimed(&self) -> usize {
        self.ports.keys().filter(Result::is_ok).count()
    }
}

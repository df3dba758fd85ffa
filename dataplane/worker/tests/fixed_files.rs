//! io_uring media sockets as registered files: a slice of 2,000 ports binds every port and
//! relays through it while the process descriptor table stays nearly unchanged; shutdown
//! releases the ports. Ports 9000-10999: no other test uses them.

mod common;

use std::time::Duration;

use common::fixed::{open_fds, port_in_use, relay_through};
use common::*;
use portcullis_dataplane::{Backend, DataplaneConfig};

const BASE: u16 = 9000;
const PORTS: u16 = 2000;

#[test]
fn io_uring_ports_live_in_the_ring_not_in_the_descriptor_table() {
    let before = open_fds();
    let dp = start_with(DataplaneConfig {
        port_min: BASE,
        port_max: BASE + PORTS - 1,
        backend: Backend::IoUring,
        ..DataplaneConfig::default()
    });
    let during = open_fds();
    // The ring, its eventfd doorbell, the worker thread: a handful, not 2,000.
    assert!(
        during < before + 16,
        "{PORTS} ports took {} descriptors ({before} → {during})",
        during - before
    );
    for port in [
        BASE,
        BASE + 1,
        BASE + 1001,
        BASE + PORTS - 2,
        BASE + PORTS - 1,
    ] {
        assert!(port_in_use(port), "port {port} not bound");
    }
    let handles: Vec<_> = (0..PORTS / 4)
        .map(|_| dp.allocate_pair().expect("pair"))
        .collect();
    for (i, h) in [0usize, 250, 499]
        .into_iter()
        .filter_map(|i| handles.get(i).map(|h| (i, h)))
    {
        relay_through(&dp, h, 0x5100 + i as u32);
    }
    drop(dp);
    // Unregistering the table at shutdown closes the sockets: the ports are free again.
    assert!(
        wait_until(Duration::from_secs(10), || {
            !port_in_use(BASE) && !port_in_use(BASE + PORTS - 1)
        }),
        "ports still bound after shutdown"
    );
    assert!(open_fds() <= before + 2, "descriptors leaked");
}

//! io_uring media sockets as registered files: a slice of 2,000 ports binds every port and
//! relays through it while the process descriptor table stays nearly unchanged; shutdown
//! releases the ports. A port held by another socket fails the start on both backends,
//! naming the port, and leaves nothing bound. Ports 9000-10999: no other test uses them.

mod common;

use std::time::Duration;

use common::fixed::{open_fds, port_in_use, relay_through};
use common::*;
use portcullis_dataplane::{Backend, Dataplane, DataplaneConfig, DataplaneError};

const BASE: u16 = 9000;
const PORTS: u16 = 1900;
/// Range of the bind-conflict test (10900-10999).
const CONFLICT_BASE: u16 = 10900;

/// The tests of this binary count the process's descriptors: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn io_uring_ports_live_in_the_ring_not_in_the_descriptor_table() {
    let _serial = serial();
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
    for (i, h) in [0usize, 250, 474]
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

#[test]
fn a_port_held_elsewhere_fails_the_start_naming_it_and_binds_nothing() {
    let _serial = serial();
    let held_port = CONFLICT_BASE + 50;
    // No SO_REUSEPORT: the data plane's sockets cannot join it.
    let _holder = std::net::UdpSocket::bind((LO, held_port)).expect("hold the port");
    for backend in [Backend::IoUring, Backend::Mmsg] {
        let r = Dataplane::start(DataplaneConfig {
            port_min: CONFLICT_BASE,
            port_max: CONFLICT_BASE + 99,
            backend,
            ..DataplaneConfig::default()
        });
        match r {
            Err(e @ DataplaneError::Bind { addr, .. }) => {
                assert_eq!(addr, to(held_port), "{backend:?}");
                let msg = e.to_string();
                assert!(
                    msg.contains(&format!("bind media port 127.0.0.1:{held_port}"))
                        && msg.contains("in use"),
                    "{backend:?}: {msg}"
                );
            }
            Err(e) => panic!("{backend:?}: wrong error {e}"),
            Ok(_) => panic!("{backend:?} started over a port held elsewhere"),
        }
        // The ports bound before the conflict are released (io_uring: its ring's table).
        assert!(
            wait_until(Duration::from_secs(10), || !port_in_use(CONFLICT_BASE)
                && !port_in_use(held_port - 1)),
            "{backend:?}: ports left bound after the failed start"
        );
    }
}

/// Restart/upgrade overlap: a second data plane binds the same range while the first still
/// holds it (`SO_REUSEPORT` on registered sockets as on descriptors), and relays once the
/// first is gone. Ports 10800-10899.
#[test]
fn a_second_data_plane_takes_the_ports_over_with_reuseport() {
    let _serial = serial();
    let cfg = |backend| DataplaneConfig {
        port_min: 10800,
        port_max: 10899,
        backend,
        ..DataplaneConfig::default()
    };
    for second in [Backend::IoUring, Backend::Mmsg] {
        let old = start_with(cfg(Backend::IoUring));
        let new = start_with(cfg(second));
        drop(old);
        let h = new.allocate_pair().expect("pair");
        relay_through(&new, &h, 0x0c00);
    }
}

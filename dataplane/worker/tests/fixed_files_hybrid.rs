//! The hybrid slice: with `RLIMIT_NOFILE` at 510 (soft and hard, for this whole test
//! process, which is why this is a binary of its own), a one-worker io_uring data plane
//! over 700 ports registers 510 sockets in its ring and keeps the other 190 as ordinary
//! descriptors, and relays through pairs in the fixed region, in the descriptor region and
//! across the boundary. The mmsg backend, which needs a descriptor per port, refuses the
//! same range with the numbers. Ports 8100-8799: no other test uses them.

mod common;

use common::fixed::{open_fds, port_in_use, relay_through};
use common::*;
use portcullis_dataplane::{Backend, Dataplane, DataplaneConfig, DataplaneError};

const BASE: u16 = 8100;
const PORTS: u16 = 700;
const LIMIT: u64 = 510;

fn lower_nofile(limit: u64) {
    let lim = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: `lim` is a valid rlimit; lowering the limits needs no privilege.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

fn cfg(backend: Backend) -> DataplaneConfig {
    DataplaneConfig {
        port_min: BASE,
        port_max: BASE + PORTS - 1,
        backend,
        ..DataplaneConfig::default()
    }
}

#[test]
fn a_slice_beyond_the_limit_relays_from_both_regions_and_mmsg_refuses_it() {
    lower_nofile(LIMIT);
    // mmsg: 700 sockets cannot fit 510 descriptors.
    match Dataplane::start(cfg(Backend::Mmsg)) {
        Err(e @ DataplaneError::TooFewDescriptors { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("510") && msg.contains("LimitNOFILE"), "{msg}");
        }
        Err(e) => panic!("mmsg refused with the wrong error: {e}"),
        Ok(_) => panic!("mmsg started 700 sockets under a 510 descriptor limit"),
    }
    assert!(!port_in_use(BASE), "the refused start bound a port");

    let before = open_fds();
    let dp = start_with(cfg(Backend::IoUring));
    let overflow = usize::from(PORTS) - LIMIT as usize;
    let during = open_fds();
    assert!(
        during >= before + overflow && during < before + overflow + 16,
        "expected {overflow} overflow descriptors, {before} → {during}"
    );
    // Fixed region 8100-8609, descriptors 8610-8799.
    for port in [BASE, BASE + 509, BASE + 510, BASE + PORTS - 1] {
        assert!(port_in_use(port), "port {port} not bound");
    }
    let handles: Vec<_> = (0..PORTS / 4)
        .map(|_| dp.allocate_pair().expect("pair"))
        .collect();
    // Pair 0: fixed. Pair 127 (ports 8608-8611): A fixed, B a descriptor. Pairs 128 and
    // 174: descriptors.
    for i in [0usize, 127, 128, 174] {
        let h = handles.get(i).expect("handle");
        relay_through(&dp, h, 0x7700 + i as u32);
    }
    drop(dp);
    assert!(
        wait_until(std::time::Duration::from_secs(10), || {
            !port_in_use(BASE) && !port_in_use(BASE + PORTS - 1)
        }),
        "ports still bound after shutdown"
    );
}

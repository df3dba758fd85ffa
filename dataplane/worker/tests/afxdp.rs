//! The af_xdp backend at the data plane's door: without the XDP program that feeds its
//! sockets it is refused with its own error (its traffic is tested through the appliance
//! in network namespaces, `appliance/tests/afxdp_netns.rs`).

use portcullis_dataplane::{Backend, Dataplane, DataplaneConfig, DataplaneError};

#[test]
fn af_xdp_without_its_program_is_refused() {
    let cfg = DataplaneConfig {
        port_min: 15000,
        port_max: 15127,
        backend: Backend::AfXdp,
        ..DataplaneConfig::default()
    };
    let e = Dataplane::start(cfg).expect_err("af_xdp without a program");
    assert!(matches!(e, DataplaneError::AfXdp(_)), "{e}");
    assert!(e.to_string().starts_with("af_xdp backend: "), "{e}");
}

//! `media.backend`: every data plane backend by name (`af_xdp` included), `auto` by
//! default, anything else refused at the value's line and column. Whether `af_xdp` can run
//! is decided at start, where the program and the queues are (`afxdp_netns.rs`).

mod common_config;

use portcullis::config::{Backend, LineCol};

use common_config::{load, BASE};

fn with_backend(v: &str) -> String {
    BASE.replace("cores = [0]", &format!("cores = [0]\nbackend = \"{v}\""))
}

#[test]
fn every_backend_by_name_and_auto_by_default() {
    let cfg = load(BASE).unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(cfg.media.backend, Backend::Auto);
    for (v, b) in [
        ("auto", Backend::Auto),
        ("io_uring", Backend::IoUring),
        ("mmsg", Backend::Mmsg),
        ("af_xdp", Backend::AfXdp),
    ] {
        let cfg = load(&with_backend(v)).unwrap_or_else(|d| panic!("{v}: {d:#?}"));
        assert_eq!(cfg.media.backend, b, "{v}");
    }
}

#[test]
fn an_unknown_backend_is_refused_at_its_position() {
    for bad in ["afxdp", "AF_XDP", "xdp", "dpdk"] {
        let src = with_backend(bad);
        let d = load(&src).expect_err(bad);
        let at = src.find(&format!("\"{bad}\"")).expect("in source");
        assert_eq!(
            d[0].location,
            Some(LineCol::from_offset(&src, at)),
            "{bad}: {d:#?}"
        );
        let msg = format!("{}", d[0]);
        assert!(msg.contains("af_xdp"), "the choices are named: {msg}");
    }
}

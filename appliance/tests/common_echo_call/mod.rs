//! A call carrying RTP both ways through the appliance, shared by `ops_metrics.rs` and
//! `run_signals.rs` (both also include `sipp_harness`, which this builds on).
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use crate::sipp_harness::{sipp_args, Ports, Sipp};

/// Starts `sipp -sn uas -rtp_echo` on trunk `right` (named `uas_name`), then, once it
/// listens, `sipp -sn uac_pcap` (named `uac_name`) calling `target` from `uac_port`.
/// Returns `(uas, uac)`; one call each (`-m 1`).
pub fn start_echo_call(
    dir: &Path,
    p: Ports,
    target: &str,
    uac_port: u16,
    (uas_name, uac_name): (&str, &str),
) -> (Sipp, Sipp) {
    let uas = Sipp::start(
        uas_name,
        dir,
        &sipp_args(
            "127.0.0.1",
            p.right,
            p.sipp_media + 100,
            &["-sn", "uas", "-rtp_echo", "-m", "1"],
        ),
    );
    std::thread::sleep(Duration::from_millis(300));
    let uac = Sipp::start(
        uac_name,
        dir,
        &sipp_args(
            "127.0.0.1",
            uac_port,
            p.sipp_media,
            &["-sn", "uac_pcap", target, "-m", "1"],
        ),
    );
    (uas, uac)
}

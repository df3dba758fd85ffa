//! The AF_XDP worker backend through the appliance: the real `portcullis` binary runs in
//! its own network namespace with `[media] backend = "af_xdp"` (and the XDP fast path
//! off, so the workers carry every packet), its peers in other namespaces on one bridged
//! segment.
//!
//! - A plain call (sipp signalling, media sent by the test both ways): every media packet
//!   reaches the worker through its AF_XDP socket (the worker's receive counter equals
//!   the AF_XDP one), the replies leave through AF_XDP once the next hop is learned, an
//!   attacker spraying the call's ports from another address gets nothing and nothing of
//!   its is forwarded, and the CDR counts every packet sent.
//! - The same call with the XDP fast path on too (one program for both): once the call is
//!   promoted the kernel forwards its media, what the program passes up (the attacker's
//!   packets) still reaches the worker through AF_XDP, and the counts stay exact.
//! - An SDES-SRTP caller bridged to a plain-RTP callee (the load generator on both ends):
//!   no SRTP error, no packet lost mid-stream, all through AF_XDP.
//! - Where it cannot run (the media address on no named interface, more workers than the
//!   interface has queues), the appliance does not start and says why.

mod common_netns;
mod sipp_harness;

use std::path::Path;
use std::time::Duration;

use common_netns::call::{
    call_lan, drain, first_cdr, forwarded, full_checksums, lone_veth, map_entries, metrics, rtp,
    sa, sample, sipp_call, start_appliance, worker_rx, xdp_on_bridge_end, Heard, APPLIANCE,
    ATTACKER, CALLEE, CALLEE_RTP, CALLER, CALLER_RTP, LONE, SIP, UAC_SIP, UAS_SIP,
};
use common_netns::{Lan, Netns, Proc};
use sipp_harness::{end_kind, loadtest_bin, note, serial};

/// The appliance's configuration: `media_a` / `media_b` are the trunks' media kinds.
fn config(cores: &str, media_a: &str, media_b: &str, extra_media: &str) -> String {
    common_netns::call::config(
        "afxdp-test",
        &format!("cores = {cores}\nbackend = \"af_xdp\"\n{extra_media}"),
        &format!("media = \"{media_a}\""),
        &format!("media = \"{media_b}\""),
    )
}

/// The worker's packet totals and the AF_XDP backend's frames.
#[derive(Debug, Clone, Copy)]
struct Io {
    /// Packets the XDP fast path forwarded (program verdicts `tx` and `redirect`).
    forwarded: u64,
    worker_rx: u64,
    worker_tx: u64,
    xsk_rx: u64,
    xsk_tx: u64,
    kernel_tx: u64,
}

fn io(sbc: &Netns) -> Io {
    let m = metrics(sbc);
    let frames = |p: &str| {
        sample(
            &m,
            "portcullis_dataplane_afxdp_frames_total",
            &format!("path=\"{p}\""),
        )
    };
    assert!(
        m.contains("portcullis_dataplane_info{backend=\"af_xdp\""),
        "not the af_xdp backend:\n{m}"
    );
    Io {
        forwarded: forwarded(&m),
        worker_rx: worker_rx(&m),
        worker_tx: sample(&m, "portcullis_dataplane_packets_total", "direction=\"tx\""),
        xsk_rx: frames("rx"),
        xsk_tx: frames("tx"),
        kernel_tx: frames("kernel_tx"),
    }
}

/// Starts the appliance in `ns` with `toml`, waits for it to be ready, its AF_XDP
/// sockets bound.
fn start_af_xdp(ns: &Netns, dir: &Path, toml: &str) -> Proc {
    let (app, text) = start_appliance(ns, dir, toml);
    assert!(text.contains("AF_XDP socket bound"), "{text}");
    app
}

#[test]
fn af_xdp_relays_a_call_both_ways_refuses_an_attacker_and_counts_every_packet() {
    call_through(false);
}

#[test]
fn af_xdp_beside_the_xdp_fast_path_takes_what_the_program_passes_up() {
    call_through(true);
}

/// A call with media both ways and an attacker, through the af_xdp backend, with or
/// without the XDP fast path.
fn call_through(fast_path: bool) {
    let _serial = serial();
    let lan = call_lan(&[CALLER, ATTACKER]);
    let (caller_ns, sbc, callee_ns) = (&lan.parties[0], &lan.parties[1], &lan.parties[2]);
    // A veth takes the frames its peer sends with XDP_TX only when it runs XDP itself: the
    // bridge's end of the appliance's veth gets the program with nothing promoted.
    let _bridge_end = fast_path.then(|| xdp_on_bridge_end(&lan));
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let extra = if fast_path { "fast_path = \"xdp\"" } else { "" };
    let _app = start_af_xdp(sbc, d, &config("\"auto:1\"", "rtp", "rtp", extra));
    // Every port of the worker's slice is claimed for its AF_XDP socket.
    assert_eq!(map_entries(sbc, "a0", "xsk_ports"), Some(256));

    let caller = caller_ns.udp(sa(CALLER, CALLER_RTP));
    let attacker = caller_ns.udp(sa(ATTACKER, CALLER_RTP));
    let callee = callee_ns.udp(sa(CALLEE, CALLEE_RTP));
    let mut call = sipp_call(caller_ns, callee_ns, d, "afxdp", "60s", &[]);
    let (a, b) = (call.a, call.b);
    let before = io(sbc);

    // Media both ways every 20 ms for 4 s; from the second second on, the attacker
    // sprays all four ports of the call each round.
    let ports = [a.port(), a.port() + 1, b.port(), b.port() + 1];
    let (mut sent_caller, mut sent_callee, mut attack_a, mut attack_b) = (0u64, 0, 0, 0);
    let (mut heard_caller, mut heard_callee, mut heard_attacker) =
        (Heard::default(), Heard::default(), Heard::default());
    for seq in 0..200u16 {
        caller
            .send_to(&rtp(seq, 0xca11, b"caller"), a)
            .expect("caller send");
        sent_caller += 1;
        callee
            .send_to(&rtp(seq, 0xb0b, b"callee"), b)
            .expect("callee send");
        sent_callee += 1;
        if seq >= 50 && seq % 2 == 0 {
            for (i, port) in ports.iter().enumerate() {
                attacker
                    .send_to(&rtp(seq, 0x6600, b"attack"), sa(APPLIANCE, *port))
                    .expect("attack");
                if i < 2 {
                    attack_a += 1;
                } else {
                    attack_b += 1;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
        drain(&caller, &mut heard_caller);
        drain(&callee, &mut heard_callee);
        drain(&attacker, &mut heard_attacker);
    }
    std::thread::sleep(Duration::from_millis(300));
    drain(&caller, &mut heard_caller);
    drain(&callee, &mut heard_callee);
    drain(&attacker, &mut heard_attacker);
    let after = io(sbc);
    note(&format!(
        "sent caller {sent_caller} callee {sent_callee}, attack A {attack_a} B {attack_b}; \
         heard caller {heard_caller:?} callee {heard_callee:?}; {before:?} -> {after:?}"
    ));

    // Every packet was forwarded by the kernel (fast path) or received by the worker, and
    // everything the worker received came through AF_XDP; what it sent left through
    // AF_XDP, or through its UDP socket before the next hop was learned.
    let received = sent_caller + sent_callee + attack_a + attack_b;
    let forwarded = after.forwarded - before.forwarded;
    assert_eq!(
        after.worker_rx - before.worker_rx + forwarded,
        received,
        "{after:?}"
    );
    assert_eq!(
        after.xsk_rx - before.xsk_rx,
        after.worker_rx - before.worker_rx,
        "{after:?}"
    );
    assert_eq!(
        after.worker_tx - before.worker_tx,
        (after.xsk_tx - before.xsk_tx) + (after.kernel_tx - before.kernel_tx),
        "{after:?}"
    );
    if fast_path {
        // Promoted within the first second: the kernel carried most of the call.
        assert!(forwarded > (sent_caller + sent_callee) / 2, "{after:?}");
        // The attacker's packets were passed up, to the worker's AF_XDP socket.
        assert!(
            after.xsk_rx - before.xsk_rx >= attack_a + attack_b,
            "{after:?}"
        );
    } else {
        assert_eq!(forwarded, 0);
        assert!(
            after.xsk_tx - before.xsk_tx > (sent_caller + sent_callee) / 2,
            "most replies through AF_XDP: {after:?}"
        );
    }
    assert!(
        after.kernel_tx - before.kernel_tx < 20,
        "only the first packets through the kernel: {after:?}"
    );
    // Media both ways, every packet, nothing of the attacker's.
    let all = |total| Heard { total, attack: 0 };
    assert_eq!(heard_callee, all(sent_caller), "caller -> callee");
    assert_eq!(heard_caller, all(sent_callee), "callee -> caller");
    assert_eq!(heard_attacker.total, 0, "the attacker received media");

    // The caller hangs up (8 s after the answer, after the media stopped).
    call.wait_ok(d);
    let cdr = first_cdr(d);
    assert_eq!(end_kind(&cdr), "normal_clearing", "{cdr}");
    let leg = |side: &str, key: &str| cdr["media"][side][key].as_u64().unwrap_or(u64::MAX);
    assert_eq!(leg("a", "rx_packets"), sent_caller + attack_a, "{cdr}");
    assert_eq!(leg("b", "rx_packets"), sent_callee + attack_b, "{cdr}");
    assert_eq!(leg("a", "tx_packets"), heard_caller.total, "{cdr}");
    assert_eq!(leg("b", "tx_packets"), heard_callee.total, "{cdr}");
    // The attacker's packets to the RTP ports are refused for their source.
    assert!(leg("a", "rtp_source_rejected") >= attack_a / 2, "{cdr}");
    assert!(leg("b", "rtp_source_rejected") >= attack_b / 2, "{cdr}");
    assert_eq!((leg("a", "lost"), leg("b", "lost")), (0, 0), "{cdr}");
}

#[test]
fn af_xdp_bridges_an_srtp_caller_to_a_plain_rtp_callee() {
    let _serial = serial();
    let peer_addrs = [format!("{CALLER}/24"), format!("{CALLEE}/24")];
    let lan = Lan::new(&[
        ("peers", "p0", &peer_addrs.each_ref().map(String::as_str)),
        ("sbc", "a0", &[&format!("{APPLIANCE}/24")]),
    ]);
    let (peers, sbc) = (&lan.parties[0], &lan.parties[1]);
    full_checksums(peers, "p0");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let _app = start_af_xdp(sbc, d, &config("\"auto:1\"", "srtp", "rtp", ""));
    let before = io(sbc);
    let report = d.join("load.json");
    let out = peers
        .command(loadtest_bin().to_str().expect("path"))
        .args([
            "--target",
            &format!("{APPLIANCE}:{SIP}"),
            "--uac",
            &format!("{CALLER}:{UAC_SIP}"),
            "--uas",
            &format!("{CALLEE}:{UAS_SIP}"),
            "--calls",
            "4",
            "--max-calls",
            "4",
            "--cps",
            "10",
            "--hold",
            "4",
            "--duration",
            "8",
            "--ptime",
            "20",
            "--srtp",
            "caller",
            "--quiet",
            "--report",
        ])
        .arg(&report)
        .output()
        .expect("run the load generator");
    assert!(
        out.status.success(),
        "load generator: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    let after = io(sbc);
    note(&format!("media {}; {before:?} -> {after:?}", r["media"]));
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(u64::MAX);
    assert_eq!(n(&r["calls_completed"]), 4, "{r}");
    assert_eq!(n(&r["srtp_errors"]), 0, "{r}");
    let m = &r["media"];
    assert!(n(&m["sent"]) >= 4 * 2 * 150, "{m}");
    // Only packets before a stream's first arrival or after its last may be missing.
    assert_eq!(
        n(&m["lost"]),
        n(&m["lost_head"]) + n(&m["lost_tail"]),
        "loss mid-stream: {m}"
    );
    assert!(n(&m["received"]) * 10 >= n(&m["sent"]) * 9, "{m}");
    // Every packet the worker took came through AF_XDP, and the SRTP ones authenticated.
    assert_eq!(
        after.worker_rx - before.worker_rx,
        after.xsk_rx - before.xsk_rx
    );
    assert!(
        after.xsk_rx - before.xsk_rx >= n(&m["received"]),
        "{after:?}"
    );
    assert!(
        after.xsk_tx - before.xsk_tx > n(&m["received"]) / 2,
        "{after:?}"
    );
    let text = metrics(sbc);
    assert_eq!(
        sample(
            &text,
            "portcullis_dataplane_drops_total",
            "reason=\"srtp_auth\""
        ),
        0
    );
}

/// `backend = "af_xdp"` where it cannot run: the appliance does not start and says why.
#[test]
fn af_xdp_refuses_to_start_where_it_cannot_run() {
    let ns = lone_veth();
    let dir = tempfile::tempdir().expect("tempdir");
    let refused = |toml: String| {
        common_netns::call::refused(&ns, dir.path(), &toml.replace(&APPLIANCE.to_string(), LONE))
    };
    // The media address on none of the named interfaces.
    let err = refused(config("\"auto:1\"", "rtp", "rtp", "interfaces = [\"lo\"]"));
    assert!(
        err.contains("backend = \"af_xdp\" needs the XDP program")
            && err.contains("none of media.interfaces [\"lo\"] holds the media address 192.0.2.9"),
        "{err}"
    );
    // Two workers, one queue on the veth: the second worker has no queue of its own.
    let err = refused(config("[0, 1]", "rtp", "rtp", ""));
    assert!(
        err.contains("af_xdp backend") && err.contains("queue 1"),
        "{err}"
    );
    // Nothing left attached.
    assert!(!ns.ip(&["-d", "link", "show", "d0"]).contains("prog/xdp"));
}

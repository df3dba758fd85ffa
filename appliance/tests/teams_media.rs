//! Microsoft Teams Direct Routing end to end, media and transfers: the real `portcullis`
//! binary against the mock Teams proxies of `teams_mock`, calls driven by sipp over UDP
//! on the trunk side.
//!
//! - plain RTP from the trunk reaches the mock Teams as SRTP that libsrtp
//!   (`teams_mock/srtp_peer.py`, pylibsrtp) decrypts to the trunk's payloads, and SRTP
//!   that libsrtp encrypts reaches the trunk as plain RTP with the same payloads;
//! - a REFER from Teams (202, NOTIFY sipfrag 200, Teams leg released with BYE) leaves
//!   the trunk caller talking to the transfer target (a sipp UAS echoing RTP).
//!
//! Needs `sipp` and `/usr/bin/python3` with pylibsrtp (Debian packages `sip-tester` and
//! `python3-pylibsrtp`).
#![allow(clippy::print_stderr)]

mod common_teams;
mod sipp_harness;
mod teams_mock;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common_teams::{config, world, Ports, World};
use sipp_harness::{serial, Appliance, Sipp};
use teams_mock::{header, wait_for, MockProxy};

/// sipp's message trace of the caller (`uac_teams_media.xml`) in `dir`.
fn caller_trace(dir: &std::path::Path) -> Option<String> {
    let log = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("uac_teams_media") && n.ends_with("_messages.log"))
        })?;
    std::fs::read_to_string(log).ok()
}

/// The first `200 OK` in sipp's message trace in `dir` (up to the next message).
fn trunk_answer(dir: &std::path::Path) -> Option<String> {
    let text = caller_trace(dir)?;
    let rest = &text[text.find("SIP/2.0 200 OK")?..];
    Some(rest[..rest.find("\n----").unwrap_or(rest.len())].to_owned())
}

/// `m=audio` port of the first `200 OK` to the INVITE in sipp's message trace in `dir`.
fn answered_port(dir: &std::path::Path) -> Option<u16> {
    let ok = trunk_answer(dir)?;
    let m = ok.find("m=audio ")?;
    ok[m + 8..].split_whitespace().next()?.parse().ok()
}

/// (seq, payload) of the `rx`/`tx` lines of the SRTP peer's output.
fn peer_lines(out: &str, kind: &str) -> Vec<(u16, Vec<u8>)> {
    out.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            (it.next()? == kind).then_some(())?;
            let seq = it.next()?.parse().ok()?;
            let hex = it.next().unwrap_or("");
            let bytes = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .ok()?;
            Some((seq, bytes))
        })
        .collect()
}

/// `world` with an appliance started on it, once sip has answered an OPTIONS; sip
/// answers calls with SRTP (the mock's key) on the returned port.
fn world_answering_calls(p: Ports) -> (World, Appliance, u16) {
    let w = world(p);
    let mock_rtp = p.proxies[0] + 10;
    w.mocks[0].set_answer(Box::new(move |offer| {
        teams_mock::default_answer(offer, mock_rtp)
    }));
    let app = Appliance::start(&config(p, &w.sbc, &w.pki.ca_pem, "2s", 2));
    wait_for("sip answered an OPTIONS", Duration::from_secs(20), || {
        !w.mocks[0].seen().options.is_empty()
    });
    (w, app, mock_rtp)
}

/// A call from the carrier (sipp `uac_teams_media.xml`, named `name`) to 0198765432
/// whose RTP the test sends and receives itself on the returned socket; returns once
/// its INVITE has reached `sip`.
fn media_call(dir: &std::path::Path, p: Ports, sip: &MockProxy, name: &str) -> (UdpSocket, Sipp) {
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("trunk RTP socket");
    rtp.set_read_timeout(Some(Duration::from_millis(10)))
        .expect("timeout");
    let rtp_port = rtp.local_addr().expect("addr").port();
    let scen = sipp_harness::scenario(dir, "uac_teams_media.xml");
    let args: Vec<String> = vec![
        "-sf".into(),
        scen.display().to_string(),
        format!("127.0.0.1:{}", p.sip),
        "-i".into(),
        "127.0.0.1".into(),
        "-p".into(),
        p.carrier.to_string(),
        "-mp".into(),
        p.sipp_media.to_string(),
        "-s".into(),
        "0198765432".into(),
        "-key".into(),
        "rtp_port".into(),
        rtp_port.to_string(),
        "-m".into(),
        "1".into(),
        "-trace_msg".into(),
        "-nostdin".into(),
        "-timeout".into(),
        "40s".into(),
        "-timeout_error".into(),
    ];
    let sipp = Sipp::start(name, dir, &args);
    wait_for("the INVITE reaches sip", Duration::from_secs(15), || {
        !sip.seen().invites.is_empty()
    });
    (rtp, sipp)
}

/// Where the appliance takes the trunk's RTP: the port of its 200 OK in sipp's trace.
fn trunk_media_addr(dir: &std::path::Path) -> SocketAddr {
    let mut trunk_port = None;
    wait_for(
        "sipp's trace shows the 200 OK",
        Duration::from_secs(10),
        || {
            trunk_port = answered_port(dir);
            trunk_port.is_some()
        },
    );
    SocketAddr::from(([127, 0, 0, 1], trunk_port.unwrap_or(0)))
}

/// For `within`, sends `count` plain RTP packets (PCMU, 20 ms apart, sequence numbers
/// from `seq0`, SSRC `ssrc`, packet `i` carrying `payload(i)`) from `rtp` to `to`, and
/// collects the payloads of the RTP packets that arrive. Returns (sent, got).
fn exchange_rtp(
    rtp: &UdpSocket,
    to: SocketAddr,
    within: Duration,
    count: u32,
    seq0: u16,
    ssrc: u32,
    payload: impl Fn(u32) -> Vec<u8>,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    let mut i: u32 = 0;
    while start.elapsed() < within {
        if i < count && start.elapsed() >= Duration::from_millis(20 * u64::from(i)) {
            let mut pkt = vec![0x80, 0];
            pkt.extend_from_slice(&(seq0 + i as u16).to_be_bytes());
            pkt.extend_from_slice(&(160 * i).to_be_bytes());
            pkt.extend_from_slice(&ssrc.to_be_bytes());
            let payload = payload(i);
            pkt.extend_from_slice(&payload);
            rtp.send_to(&pkt, to).expect("send RTP");
            sent.push(payload);
            i += 1;
        }
        if let Ok((n, _)) = rtp.recv_from(&mut buf) {
            if n > 12 && buf[0] >> 6 == 2 {
                got.push(buf[12..n].to_vec());
            }
        }
    }
    (sent, got)
}

#[test]
fn media_is_srtp_toward_teams_and_plain_rtp_toward_the_trunk() {
    let _lock = serial();
    let p = Ports::for_test(3);
    let (w, app, mock_rtp) = world_answering_calls(p);
    let dir = app.dir.path();
    let (rtp, mut sipp) = media_call(dir, p, &w.mocks[0], "media");
    let invite = w.mocks[0].seen().invites[0].text.clone();
    let offer = invite
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    assert!(offer.contains("RTP/SAVP"), "SRTP toward Teams:\n{offer}");
    let (_, suite, sbc_key) = teams_mock::offer_crypto(&offer).expect("a=crypto in the offer");
    assert_eq!(suite, "AES_CM_128_HMAC_SHA1_80");
    let sbc_port: u16 = offer
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("m=audio port in the offer");
    // The Teams side: libsrtp decrypts what arrives and sends SRTP back.
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/teams_mock/srtp_peer.py");
    let peer = Command::new("/usr/bin/python3")
        .arg(&script)
        .args([
            mock_rtp.to_string(),
            sbc_key,
            teams_mock::MOCK_KEY_B64.to_owned(),
            "127.0.0.1".to_owned(),
            sbc_port.to_string(),
            "100".to_owned(),
            "4".to_owned(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 with pylibsrtp (Debian python3-pylibsrtp)");
    let trunk = trunk_media_addr(dir);
    // Teams answered with rtcp-mux; the trunk offered none, so its answer has none
    // (RFC 5761 §5.1.1).
    let answer = trunk_answer(dir).expect("the trunk's 200 OK");
    assert!(answer.contains("m=audio "), "{answer}");
    assert!(!answer.contains("a=rtcp-mux"), "{answer}");
    // The trunk side: plain RTP (PCMU) out, plain RTP in.
    let (sent, got) = exchange_rtp(
        &rtp,
        trunk,
        Duration::from_millis(3500),
        100,
        2000,
        0x1234_5678,
        |i| (0..160u32).map(|k| (i * 7 + k) as u8).collect(),
    );
    let out = peer.wait_with_output().expect("SRTP peer");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "SRTP peer failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = sipp.wait(Duration::from_secs(30));
    assert!(st.success(), "sipp: {}", sipp.output());
    eprintln!(
        "trunk sent {} RTP, Teams decrypted {}; Teams sent {} SRTP, trunk got {} RTP",
        sent.len(),
        peer_lines(&stdout, "rx").len(),
        peer_lines(&stdout, "tx").len(),
        got.len()
    );
    // Trunk → Teams: libsrtp authenticates and decrypts the trunk's payloads.
    assert!(!stdout.contains("rx-fail"), "SRTP failures:\n{stdout}");
    let rx = peer_lines(&stdout, "rx");
    assert!(
        rx.len() >= 50,
        "Teams got {} of 100 packets:\n{stdout}",
        rx.len()
    );
    for (seq, payload) in &rx {
        assert!(
            sent.contains(payload),
            "seq {seq}: payload not one the trunk sent"
        );
    }
    // Teams → trunk: plain RTP with the payloads libsrtp encrypted.
    let tx: Vec<Vec<u8>> = peer_lines(&stdout, "tx")
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(tx.len(), 100, "{stdout}");
    assert!(
        got.len() >= 50,
        "the trunk got {} of 100 packets",
        got.len()
    );
    for g in &got {
        assert!(
            tx.contains(g),
            "a packet the trunk got is not one Teams sent (still encrypted?)"
        );
    }
    drop(app);
}

#[test]
fn refer_from_teams_leaves_the_caller_talking_to_the_target() {
    let _lock = serial();
    let p = Ports::for_test(4);
    let (w, app, _) = world_answering_calls(p);
    let dir = app.dir.path();
    // The transfer target: a sipp UAS echoing the RTP it gets.
    let uas_args: Vec<String> = [
        "-sn",
        "uas",
        "-i",
        "127.0.0.1",
        "-p",
        &p.target.to_string(),
        "-mp",
        &(p.sipp_media + 50).to_string(),
        "-rtp_echo",
        "-m",
        "1",
        "-nostdin",
        "-timeout",
        "40s",
        "-timeout_error",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut uas = Sipp::start("target", dir, &uas_args);
    let (rtp, mut uac) = media_call(dir, p, &w.mocks[0], "caller");
    let trunk = trunk_media_addr(dir);
    // Teams transfers the caller to +4930123456 (routed from the teams peer to `target`).
    let invite = w.mocks[0].seen().invites[0].text.clone();
    let refer = teams_mock::refer_for(
        &invite,
        "sip:+4930123456@sip.pstnhub.microsoft.com",
        p.proxies[0],
    );
    assert!(w.mocks[0].send(refer), "the mock has the call's connection");
    wait_for("202 to the REFER", Duration::from_secs(5), || {
        w.mocks[0]
            .seen()
            .responses
            .iter()
            .any(|r| r.text.starts_with("SIP/2.0 202") && r.text.contains("REFER"))
    });
    // Responses toward Teams carry X-MS-SBC like our requests.
    for r in w.mocks[0].seen().responses {
        assert!(
            header(&r.text, "x-ms-sbc").is_some_and(|v| v.starts_with("Portcullis/")),
            "{}",
            r.text
        );
    }
    wait_for(
        "NOTIFY sipfrag 200 to Teams",
        Duration::from_secs(10),
        || {
            w.mocks[0]
                .seen()
                .notifies
                .iter()
                .any(|n| n.text.contains("SIP/2.0 200"))
        },
    );
    wait_for(
        "the Teams leg released with BYE",
        Duration::from_secs(10),
        || w.mocks[0].seen().byes >= 1,
    );
    // The caller now talks to the target: its RTP comes back echoed by the target.
    let (sent, got) = exchange_rtp(
        &rtp,
        trunk,
        Duration::from_millis(2000),
        75,
        3000,
        0x2345_6789,
        |i| (0..160u32).map(|k| (i * 11 + k * 3) as u8).collect(),
    );
    eprintln!(
        "after the transfer: sent {} RTP, {} came back from the target",
        sent.len(),
        got.len()
    );
    let echoed = got.iter().filter(|g| sent.contains(g)).count();
    assert!(
        echoed >= 35,
        "only {echoed} of {} packets came back from the target",
        sent.len()
    );
    let st = uac.wait(Duration::from_secs(30));
    assert!(st.success(), "caller sipp: {}", uac.output());
    let st = uas.wait(Duration::from_secs(30));
    assert!(st.success(), "target sipp: {}", uas.output());
    drop(app);
}

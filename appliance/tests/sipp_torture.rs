//! RFC 4475 torture messages sent over UDP to the running appliance: invalid requests
//! get a `400` (or nothing where no response can be formed: no usable Via, or the
//! message is a response), valid ones never crash it, and a sipp call still succeeds
//! afterwards.

mod sipp_harness;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sipp_harness::*;

fn vectors() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/vectors/sip-torture/rfc4475"
    ))
}

/// The Call-ID header value of a message (long or compact form), if any.
fn call_id(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i"))
            .then(|| value.trim().to_owned())
    })
}

/// `(status, Call-ID)` of every response arriving on `socks` within `window`.
fn responses(socks: &[&UdpSocket], window: Duration) -> Vec<(u16, Option<String>)> {
    let mut out = Vec::new();
    let deadline = Instant::now() + window;
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        for s in socks {
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(buf.get(..n).unwrap_or(&[]));
                if let Some(code) = text
                    .strip_prefix("SIP/2.0 ")
                    .and_then(|r| r.get(..3))
                    .and_then(|c| c.parse().ok())
                {
                    out.push((code, call_id(&text)));
                }
            }
        }
    }
    out
}

#[test]
fn rfc4475_messages_then_a_call_still_works() {
    let _serial = serial();
    let p = Ports::for_test(6);
    let mut app = Appliance::start(&config(p, ROUTE_LEFT_RIGHT));
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(vectors().join("manifest.json")).expect("RFC 4475 manifest"),
    )
    .expect("manifest JSON");
    let entries = manifest.as_array().expect("manifest array");
    assert!(entries.len() >= 40, "manifest too small");
    // Responses follow the Via (RFC 3261 §18.2.2): sent-by port, else 5060, at the source IP.
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let via_5060 = UdpSocket::bind("127.0.0.1:5060").expect("bind 127.0.0.1:5060 for responses");
    for s in [&sender, &via_5060] {
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    }
    let target = format!("127.0.0.1:{}", p.sip);
    let mut answered_400 = 0;
    for e in entries {
        let file = e["file"].as_str().unwrap();
        let bytes = std::fs::read(vectors().join(file)).unwrap();
        sender.send_to(&bytes, &target).unwrap();
        // Only responses to this message: earlier INVITEs may still be answered late.
        let own = call_id(&String::from_utf8_lossy(&bytes));
        let got: Vec<u16> = responses(&[&sender, &via_5060], Duration::from_millis(300))
            .into_iter()
            .filter(|(_, cid)| own.is_none() || *cid == own)
            .map(|(code, _)| code)
            .collect();
        let is_response = bytes.starts_with(b"SIP/");
        if e["parser_expectation"] == "reject" {
            let liberal = e["liberal_acceptance_permitted_by_rfc"] == true;
            if is_response {
                assert!(got.is_empty(), "{file}: a response was answered: {got:?}");
            } else if !liberal {
                // No usable Via (none at all, or badinv01's garbage): nothing can be sent back.
                let text = String::from_utf8_lossy(&bytes);
                let has_via = text.lines().any(|l| {
                    l.split_once(':').is_some_and(|(n, _)| {
                        n.trim().eq_ignore_ascii_case("via") || n.trim().eq_ignore_ascii_case("v")
                    })
                });
                let no_via = !has_via || file.ends_with("badinv01.dat");
                let ok = got
                    .iter()
                    .all(|&c| c == 400 || (c == 505 && file.ends_with("badvers.dat")));
                assert!(ok, "{file}: expected 400, got {got:?}");
                assert!(no_via || !got.is_empty(), "{file}: no 400 sent");
                if got.contains(&400) {
                    answered_400 += 1;
                }
            } else {
                // Liberal acceptance allowed: anything but a 2xx to a broken request.
                assert!(
                    got.iter().all(|c| !(200..300).contains(c)),
                    "{file}: {got:?}"
                );
            }
        }
        let alive = app.child.try_wait().expect("try_wait").is_none();
        assert!(alive, "portcullis died on {file}:\n{}", app.log());
    }
    note(&format!("{answered_400} invalid requests answered 400"));

    // The appliance still carries calls.
    let dir = app.dir.path();
    let _uas = Sipp::start(
        "uas",
        dir,
        &sipp_args("127.0.0.1", p.right, p.sipp_media + 100, &["-sn", "uas"]),
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut uac = Sipp::start(
        "uac",
        dir,
        &sipp_args(
            "127.0.0.1",
            p.left,
            p.sipp_media,
            &["-sn", "uac", &target, "-m", "3"],
        ),
    );
    let st = uac.wait(Duration::from_secs(40));
    assert!(
        st.success(),
        "call after the torture run failed ({st}):\n{}",
        uac.output()
    );
}

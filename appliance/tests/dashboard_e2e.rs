//! The dashboard of the real `portcullis` binary in a real headless Chromium: sipp places
//! a G.711 call with RTP (uac streaming → portcullis → uas echoing the media); the page, signed in
//! with the admin token, loads with no console error, lists a request refused by policy
//! among the failures and the call with its codec,
//! packet counters and MOS estimate, charts it; "End call" ends it (both sipp peers get
//! their BYE) and the page shows it gone without a reload; the CDR search finds it.
//!
//! A screenshot of the page with the live call is kept as a test artifact
//! (`target/test-artifacts/dashboard-e2e.png`); with `PORTCULLIS_UPDATE_SCREENSHOT=1` it
//! also replaces `docs/dashboard.png` (the README's).
//!
//! Needs `sipp` and `chromium` (Debian packages `sip-tester` and `chromium`; CI installs
//! them): a missing tool fails the test.

mod common_browser;
mod sipp_harness;

use std::path::Path;
use std::time::Duration;

use common_browser::{artifact_dir, Browser};
use sipp_harness::*;

const TOKEN: &str = "dashboard-e2e-token-0123456789";
const WAIT: Duration = Duration::from_secs(30);

/// The row of the live call to `2000`.
const ROW: &str = "[...document.querySelectorAll('#calls tbody tr')].find(r => r.querySelector('td.called').textContent === '2000')";

#[test]
fn live_call_is_shown_ended_from_the_page_and_found_in_cdrs() {
    let _serial = serial();
    let p = Ports::for_test(35);
    let toml = config(p, ROUTE_LEFT_RIGHT).replacen(
        &format!("listen = \"127.0.0.1:{}\"", p.admin),
        &format!("listen = \"127.0.0.1:{}\"\ntoken = \"{TOKEN}\"", p.admin),
        1,
    );
    assert!(toml.contains(TOKEN));
    let app = Appliance::start(&toml);
    let dir = app.dir.path().to_path_buf();
    // One second of A-law silence, streamed in a loop by the UAC until the call ends.
    std::fs::write(dir.join("tone.alaw"), [0xD5u8; 8000]).unwrap_or_else(|e| panic!("{e}"));
    let scen = scenario(&dir, "uac_rtp_wait_bye.xml");

    let mut b = Browser::start(1400, 1000);
    b.navigate(&format!("http://127.0.0.1:{}/", p.admin));
    b.wait_for(
        "!document.getElementById('signin').hidden",
        WAIT,
        "sign-in form",
    );
    b.eval(&format!(
        "document.getElementById('token').value = '{TOKEN}'; document.getElementById('signin-button').click(); true"
    ));
    b.wait_for(
        "document.getElementById('node').textContent === 'sipp-test'",
        WAIT,
        "signed in, node name shown",
    );
    b.wait_for(
        "!document.getElementById('calls-empty').hidden",
        WAIT,
        "no live call yet",
    );
    b.eval("window.__marker = 'no reload'; true");

    // A request from a source no trunk owns is refused: listed among the failures.
    let stranger = std::net::UdpSocket::bind("127.0.0.5:0").unwrap_or_else(|e| panic!("{e}"));
    let port = stranger.local_addr().map(|a| a.port()).unwrap_or(0);
    let invite = format!(
        "INVITE sip:2000@127.0.0.1:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.5:{port};branch=z9hG4bK-dash-1\r\nFrom: <sip:stranger@127.0.0.5>;tag=s1\r\nTo: <sip:2000@127.0.0.1>\r\nCall-ID: dash-stranger-1\r\nCSeq: 1 INVITE\r\nContact: <sip:stranger@127.0.0.5:{port}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        sip = p.sip
    );
    stranger
        .send_to(invite.as_bytes(), ("127.0.0.1", p.sip))
        .unwrap_or_else(|e| panic!("{e}"));
    b.wait_for(
        "document.querySelector('#failures tbody').textContent.includes('127.0.0.5')",
        WAIT,
        "the refused request among the failures",
    );
    let failure = b.eval("document.querySelector('#failures tbody tr').innerText");
    assert!(
        failure
            .as_str()
            .is_some_and(|f| f.contains("refused") && f.contains("40")),
        "{failure}"
    );

    let mut uas = start_uas(&dir, p, &["-sn", "uas", "-rtp_echo", "-m", "1"]);
    let target = sip_target(p);
    let scen = scen.display().to_string();
    let mut uac = start_uac(&dir, p, &["-sf", &scen, &target, "-m", "1", "-s", "2000"]);

    // The call appears, answered, with its codec on both legs.
    b.wait_for(
        &format!(
            "(() => {{ const r = {ROW}; return r && r.textContent.includes('answered'); }})()"
        ),
        WAIT,
        "the sipp call listed as answered",
    );
    // RTP measured on both legs: packet counters and a MOS estimate.
    b.wait_for(
        &format!(
            "(() => {{ const r = {ROW}; return r && [...r.querySelectorAll('td.leg')].filter(c => /MOS \\d\\.\\d\\d/.test(c.textContent)).length === 2; }})()"
        ),
        WAIT,
        "MOS estimate on both legs",
    );
    let row = b.eval(&format!("{ROW}.innerText"));
    let row = row.as_str().unwrap_or_default().to_owned();
    assert!(row.contains("PCMA/8000"), "{row}");
    assert!(row.contains("left \u{2192} right"), "{row}");
    assert!(row.contains("sipp"), "{row}");
    let pkts = b.eval(&format!(
        "Math.min(...[...{ROW}.querySelectorAll('td.leg')].map(c => Number((c.textContent.match(/in (\\d+) pkts/) || [0, 0])[1])))"
    ));
    assert!(
        pkts.as_u64().is_some_and(|n| n > 0),
        "packets on both legs: {row}"
    );
    // The charts have points (one per 5 s), the call among them.
    b.wait_for(
        "document.querySelectorAll('#chart-active circle').length >= 3 && document.getElementById('calls-active').textContent === '1'",
        WAIT,
        "concurrent calls charted",
    );
    // The data plane relays the stream: packets per second on its worker.
    b.wait_for(
        "[...document.querySelectorAll('#workers tbody tr')].some(r => parseFloat(r.cells[5].textContent) > 0)",
        WAIT,
        "data plane packet rate",
    );
    // The trunk that answered is up.
    b.wait_for(
        "[...document.querySelectorAll('#trunks tbody tr')].some(r => r.cells[0].textContent === 'right' && r.cells[5].textContent.startsWith('up'))",
        WAIT,
        "trunk right up",
    );
    let shot = artifact_dir().join("dashboard-e2e.png");
    b.screenshot(&shot);
    if std::env::var_os("PORTCULLIS_UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/dashboard.png");
        std::fs::copy(&shot, &docs).unwrap_or_else(|e| panic!("{}: {e}", docs.display()));
    }

    // End the call from the page: arm, confirm. Both peers get a BYE and finish.
    b.eval(&format!("{ROW}.querySelector('button').click(); true"));
    b.eval(&format!("{ROW}.querySelector('button').click(); true"));
    b.wait_for(
        &format!("{ROW} === undefined && !document.getElementById('calls-empty').hidden"),
        WAIT,
        "the ended call gone from the page",
    );
    assert_eq!(b.eval("window.__marker"), "no reload");
    uac.wait_ok(Duration::from_secs(20), "sipp uac did not get its BYE");
    uas.wait_ok(Duration::from_secs(20), "sipp uas did not get its BYE");
    let cdrs = app.wait_cdrs(1, Duration::from_secs(10));
    assert_eq!(end_kind(&cdrs[0]), "terminated", "{}", cdrs[0]);

    // The CDR search on the page finds it.
    b.eval("document.getElementById('cdr-number').value = '2000'; document.getElementById('cdr-search').click(); true");
    b.wait_for(
        "document.querySelector('#cdrs tbody').textContent.includes('terminated')",
        WAIT,
        "the call found by the CDR search",
    );

    b.pump(Duration::from_millis(500));
    let errors = b.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    drop(b);
}

//! The dashboard in a real headless Chromium (Debian's `chromium`) against the admin
//! server over a fake backend: sign-in with the token, every value from SIP headers shown
//! as text (a calling number made of HTML and script runs nothing), no console error under
//! the page's Content-Security-Policy, "End call" sends the DELETE with the token and the
//! page updates without a reload; read-only without a token.
//!
//! Needs `chromium` (CI installs it): a missing browser fails the test.

mod common_browser;
mod common_dashboard;

use std::time::Duration;

use common_browser::{artifact_dir, Browser};
use common_dashboard::{call, Fake, Running, TOKEN};
use portcullis::admin::Failure;

/// HTML and script a caller can put in a From header.
const HOSTILE: &str = r#"<script>window.__xss=1</script><img src=x onerror="window.__xss=2">"#;

const WAIT: Duration = Duration::from_secs(30);

fn js_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn hostile_values_render_as_text_and_end_call_updates_the_page() {
    let fake = Fake::default();
    {
        let mut st = fake.st();
        st.calls = vec![call(41, HOSTILE, "+4930555"), call(42, "1000", "2000")];
        st.failures = vec![Failure {
            at_ms: 1_700_000_000_000,
            call: Some(3),
            calling: Some(HOSTILE.into()),
            called: Some("2001".into()),
            inbound_trunk: Some("pbx".into()),
            outbound_trunk: Some("carrier".into()),
            status: Some(486),
            reason: "Busy Here".into(),
            end_reason: "rejected".into(),
            source: None,
        }];
    }
    let srv = Running::start(fake.clone(), Some(TOKEN));
    let mut b = Browser::start(1400, 1000);
    b.navigate(&srv.url("/"));

    // Token required: the page asks for it and shows no data before.
    b.wait_for(
        "!document.getElementById('signin').hidden",
        WAIT,
        "sign-in form",
    );
    assert_eq!(b.eval("document.getElementById('main').hidden"), true);
    assert_eq!(b.eval("sessionStorage.length"), 0);
    b.eval(&format!(
        "document.getElementById('token').value = {}; document.getElementById('signin-button').click(); true",
        js_str(TOKEN)
    ));
    b.wait_for(
        "document.querySelectorAll('#calls tbody tr').length === 2",
        WAIT,
        "two live calls listed",
    );
    // The token stays in the tab's session storage, not in the URL.
    assert_eq!(b.eval("location.search + location.hash"), "");
    assert_eq!(
        b.eval("sessionStorage.getItem('portcullis.admin.token')"),
        TOKEN
    );

    // The hostile number is the cell's text, nothing of it ran or became an element.
    assert_eq!(
        b.eval("document.querySelector('#calls tr[data-call=\"41\"] td.calling').textContent"),
        HOSTILE
    );
    assert_eq!(b.eval("typeof window.__xss"), "undefined");
    assert_eq!(
        b.eval("document.querySelectorAll('main img, main script').length"),
        0
    );
    b.wait_for(
        "document.querySelector('#failures tbody').textContent.includes('Busy Here')",
        WAIT,
        "recent failure listed",
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#failures img').length"),
        0
    );

    // Media, quality, trunks, Teams, workers and the header are filled in.
    let text = b.eval("document.body.innerText");
    let text = text.as_str().unwrap_or_default().to_owned();
    for want in [
        "PCMA/8000",
        "SRTP",
        "MOS 4.",
        "sbc-fra-1",
        "held off",
        "sip2.pstnhub.microsoft.com",
        "io_uring",
        "AES_CM_128_HMAC_SHA1_80",
    ] {
        assert!(text.contains(want), "{want:?} not on the page:\n{text}");
    }
    b.wait_for(
        "document.querySelectorAll('#workers tbody tr').length === 2",
        WAIT,
        "two workers",
    );

    // End call 41 (two clicks: arm, confirm); the list updates with no page reload.
    b.eval("window.__marker = 7; true");
    b.eval("document.querySelector('#calls tr[data-call=\"41\"] button').click(); true");
    b.eval("document.querySelector('#calls tr[data-call=\"41\"] button').click(); true");
    b.wait_for(
        "document.querySelectorAll('#calls tbody tr').length === 1 && !document.querySelector('#calls tr[data-call=\"41\"]')",
        WAIT,
        "ended call gone from the list",
    );
    assert_eq!(fake.st().deleted, vec![41]);
    assert_eq!(b.eval("window.__marker"), 7, "the page was reloaded");

    // Reload configuration: generation 2 shown.
    b.eval("document.getElementById('reload').click(); true");
    b.wait_for(
        "document.getElementById('generation').textContent === '2'",
        WAIT,
        "generation 2 after reload",
    );
    assert_eq!(fake.st().reloads, 1);

    b.pump(Duration::from_millis(500));
    let errors = b.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    assert!(b.dialogs().is_empty(), "dialogs: {:?}", b.dialogs());
    b.screenshot(&artifact_dir().join("dashboard-fake.png"));

    // Sign out while a poll is in flight (the backend holds its answer): data hidden, token
    // forgotten, and the late answer does not show the data again.
    const HOLD: Duration = Duration::from_secs(3);
    let started = {
        let mut st = fake.st();
        st.calls_delay = Some(HOLD);
        st.calls_started
    };
    let deadline = std::time::Instant::now() + WAIT;
    while fake.st().calls_started == started {
        assert!(std::time::Instant::now() < deadline, "no poll started");
        b.pump(Duration::from_millis(50));
    }
    b.eval("document.getElementById('signout').click(); true");
    b.wait_for(
        "document.getElementById('main').hidden && sessionStorage.length === 0",
        WAIT,
        "signed out",
    );
    b.pump(HOLD + Duration::from_secs(1));
    assert_eq!(
        b.eval("document.getElementById('main').hidden"),
        true,
        "a poll answered after sign-out showed the data again"
    );
    drop(b);
    srv.stop();
}

#[test]
fn open_api_shows_a_read_only_dashboard() {
    let fake = Fake::default();
    fake.st().calls = vec![call(5, "1000", "2000")];
    let srv = Running::start(fake.clone(), None);
    let mut b = Browser::start(1200, 900);
    b.navigate(&srv.url("/"));
    b.wait_for(
        "document.querySelectorAll('#calls tbody tr').length === 1",
        WAIT,
        "call listed without a token",
    );
    // Read-only: no End button, no reload, until someone signs in.
    assert_eq!(
        b.eval("document.querySelectorAll('#calls button').length"),
        0
    );
    assert_eq!(b.eval("document.getElementById('reload').hidden"), true);
    assert!(b
        .eval("document.getElementById('mode').textContent")
        .as_str()
        .is_some_and(|m| m.contains("read-only")));
    let errors = b.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    assert!(fake.st().deleted.is_empty());
    drop(b);
    srv.stop();
}

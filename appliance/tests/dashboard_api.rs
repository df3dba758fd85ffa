//! The dashboard's routes against an in-process fake backend: the page and its assets
//! (open, with their security headers, no inline script), the token on every data route,
//! and the JSON of the routes only the dashboard uses (overview, history, data plane
//! rates, failures, CDR search with its filters and limits). The browser tests are in
//! `dashboard_browser.rs` (fake backend) and `dashboard_e2e.rs` (real appliance).

mod common_dashboard;

use std::io::Write;
use std::time::{Duration, Instant};

use common_dashboard::{call, header, http, Fake, Running, TOKEN};
use portcullis::admin::{CallInfo, CdrSearch, Failure, HistoryPoint, WorkerLoad};
use serde_json::Value;

fn fake_with_calls() -> Fake {
    let f = Fake::default();
    f.st().calls = vec![call(7, "+4930123", "2000")];
    f
}

#[test]
fn page_and_assets_are_open_with_security_headers() {
    let srv = Running::start(fake_with_calls(), Some(TOKEN));
    let (code, h, body) = http("GET", &srv.url("/"), None);
    assert_eq!(code, 200, "{body}");
    assert!(header(&h, "content-type").is_some_and(|v| v.starts_with("text/html")));
    let csp = header(&h, "content-security-policy").unwrap_or_else(|| panic!("no CSP: {h:?}"));
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(header(&h, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(&h, "x-frame-options"), Some("DENY"));
    assert_eq!(header(&h, "referrer-policy"), Some("no-referrer"));
    // The page holds no data and no inline script: only the external one.
    assert!(body.contains(r#"<script src="/dashboard/app.js" defer></script>"#));
    assert_eq!(body.matches("<script").count(), 1, "{body}");
    assert!(!body.contains("+4930123"));
    assert!(
        !body.contains(" style="),
        "inline styles would need 'unsafe-inline'"
    );

    let (code, h, js) = http("GET", &srv.url("/dashboard/app.js"), None);
    assert_eq!(code, 200);
    assert!(header(&h, "content-type").is_some_and(|v| v.starts_with("text/javascript")));
    assert!(!js.contains("innerHTML"), "values must be rendered as text");
    assert!(!js.contains("eval("));
    let (code, h, _) = http("GET", &srv.url("/dashboard/app.css"), None);
    assert_eq!(code, 200);
    assert!(header(&h, "content-type").is_some_and(|v| v.starts_with("text/css")));

    let (code, _, body) = http("GET", &srv.url("/dashboard/auth"), None);
    assert_eq!((code, body.as_str()), (200, r#"{"token_required":true}"#));
    srv.stop();

    let open = Running::start(fake_with_calls(), None);
    let (code, _, body) = http("GET", &open.url("/dashboard/auth"), None);
    assert_eq!((code, body.as_str()), (200, r#"{"token_required":false}"#));
    // Without a token the API is open, as before: data comes without one.
    assert_eq!(http("GET", &open.url("/api/v1/overview"), None).0, 200);
    open.stop();
}

#[test]
fn data_routes_need_the_token() {
    let srv = Running::start(fake_with_calls(), Some(TOKEN));
    for path in [
        "/api/v1/overview",
        "/api/v1/history",
        "/api/v1/dataplane",
        "/api/v1/failures",
        "/api/v1/cdrs",
        "/api/v1/calls",
        "/api/v1/trunks",
    ] {
        let (code, h, _) = http("GET", &srv.url(path), None);
        assert_eq!(code, 401, "{path}");
        assert!(header(&h, "www-authenticate").is_some(), "{path}");
        assert_eq!(
            http("GET", &srv.url(path), Some("wrong-token-wrong-token-0000")).0,
            401,
            "{path}"
        );
        let (code, h, body) = http("GET", &srv.url(path), Some(TOKEN));
        assert_eq!(code, 200, "{path}: {body}");
        assert!(
            header(&h, "content-type").is_some_and(|v| v.contains("json")),
            "{path}"
        );
    }
    srv.stop();
}

#[test]
fn overview_calls_with_media_and_trunk_health() {
    let srv = Running::start(fake_with_calls(), Some(TOKEN));
    let (_, h, body) = http("GET", &srv.url("/api/v1/overview"), Some(TOKEN));
    assert_eq!(header(&h, "cache-control"), Some("no-store"));
    let o: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(o["node"], "sbc-fra-1");
    assert_eq!(o["ready"], true);
    assert_eq!(o["calls_active"], 1);
    assert_eq!(o["dataplane_backend"], "io_uring");
    assert_eq!(o["version"], env!("CARGO_PKG_VERSION"));

    let (_, _, body) = http("GET", &srv.url("/api/v1/calls"), Some(TOKEN));
    let calls: Vec<CallInfo> = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    let m = calls[0]
        .media
        .as_ref()
        .unwrap_or_else(|| panic!("media: {body}"));
    assert_eq!(m.a.codec.as_deref(), Some("PCMA/8000"));
    assert_eq!(m.b.srtp.as_deref(), Some("AES_CM_128_HMAC_SHA1_80"));
    let (qa, qb) = (
        m.a.quality.unwrap_or_else(|| panic!("quality a")),
        m.b.quality.unwrap_or_else(|| panic!("quality b")),
    );
    assert!(qa.mos > qb.mos, "the lossy leg scores lower: {qa:?} {qb:?}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    assert!(v[0]["media"]["b"]["quality"]["mos"].is_f64(), "{body}");

    let (_, _, body) = http("GET", &srv.url("/api/v1/trunks"), Some(TOKEN));
    let t: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t[2]["health"]["state"], "held_off");
    assert_eq!(t[2]["health"]["held_off_s"], 240);
    srv.stop();
}

#[test]
fn history_and_dataplane_rates_from_the_sampler() {
    let srv = Running::start(fake_with_calls(), Some(TOKEN));
    // The sampler takes one sample a second; a history point closes every 5 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    let points = loop {
        let (_, _, body) = http("GET", &srv.url("/api/v1/history"), Some(TOKEN));
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["period_s"], 5);
        let p: Vec<HistoryPoint> =
            serde_json::from_value(v["points"].clone()).unwrap_or_else(|e| panic!("{e}"));
        if !p.is_empty() {
            break p;
        }
        assert!(Instant::now() < deadline, "no history point within 30 s");
        std::thread::sleep(Duration::from_millis(250));
    };
    // Three calls per sample, samples about a second apart (a timer may fire a little
    // early or late).
    let p = points[0];
    assert!(
        p.calls_per_second > 0.0 && p.calls_per_second <= 3.0 * 1.1,
        "{p:?}"
    );
    assert_eq!(p.calls_active, 1);
    assert!(p.t_ms > 1_600_000_000_000, "wall-clock time: {p:?}");

    let (_, _, body) = http("GET", &srv.url("/api/v1/dataplane"), Some(TOKEN));
    let w: Vec<WorkerLoad> = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(w.len(), 2);
    assert_eq!(w[1].core, Some(3));
    assert!(w[0].rx_pps > 0.0, "{w:?}");
    assert!(w[0].rx_bps > w[0].rx_pps, "{w:?}");
    assert!(w[0].cpu_pct.is_some_and(|c| c > 0.0), "{w:?}");
    srv.stop();
}

#[test]
fn failures_are_listed() {
    let fake = fake_with_calls();
    fake.st().failures = vec![Failure {
        at_ms: 1_700_000_000_000,
        call: Some(3),
        calling: Some("1000".into()),
        called: Some("2000".into()),
        inbound_trunk: Some("pbx".into()),
        outbound_trunk: Some("carrier".into()),
        status: Some(486),
        reason: "Busy Here".into(),
        end_reason: "rejected".into(),
        source: None,
    }];
    let srv = Running::start(fake, Some(TOKEN));
    let (_, _, body) = http("GET", &srv.url("/api/v1/failures"), Some(TOKEN));
    let f: Vec<Failure> = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].status, f[0].reason.as_str()),
        (Some(486), "Busy Here")
    );
    srv.stop();
}

fn cdr_line(id: u64, calling: &str, trunk_b: &str, end_ms: u64, answered: bool) -> String {
    let answer = if answered {
        (end_ms - 60_000).to_string()
    } else {
        "null".to_owned()
    };
    let status = if answered { 200 } else { 486 };
    format!(
        r#"{{"call_id":{id},"a_leg":{{"call_id":"a","from":"f","to":"t","trunk":"pbx","remote":"127.0.0.1:5060"}},"b_leg":{{"call_id":"b","from":"f","to":"t","trunk":"{trunk_b}","remote":"127.0.0.1:5062"}},"calling":{{"original":"{calling}","translated":"{calling}"}},"called":{{"original":"2000","translated":"2000"}},"route":"r","setup_at_ms":{s},"answer_at_ms":{answer},"end_at_ms":{end_ms},"end_reason":{{"kind":"normal_clearing","by":"caller"}},"final_status":{status},"media":null,"node":"n"}}"#,
        s = end_ms - 70_000
    ) + "\n"
}

#[test]
fn cdr_search_filters_and_refuses_bad_queries() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("cdr.jsonl");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
    let mut f = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut text = cdr_line(1, "1000", "carrier", now - 2 * 86_400_000, true);
    text += "{\"record\":\"journal\",\"call_id\":2}\n";
    text += &cdr_line(2, "1000", "carrier", now - 3_600_000, true);
    text += &cdr_line(3, "1001", "backup", now - 1_800_000, false);
    text += &cdr_line(4, "1000", "carrier", now - 60_000, true);
    f.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    drop(f);
    let fake = fake_with_calls();
    fake.st().cdr_files = vec![dir.path().join("cdr.jsonl.1"), path];
    let srv = Running::start(fake, Some(TOKEN));
    let search = |q: &str| -> CdrSearch {
        let (code, _, body) = http("GET", &srv.url(&format!("/api/v1/cdrs{q}")), Some(TOKEN));
        assert_eq!(code, 200, "{q}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    };
    let ids = |r: &CdrSearch| r.records.iter().map(|h| h.call_id).collect::<Vec<_>>();
    let all = search("");
    assert_eq!(
        ids(&all),
        vec![4, 3, 2],
        "newest first, nothing older than a day"
    );
    assert_eq!(all.skipped, 1, "the journal line is skipped: {all:?}");
    assert_eq!(ids(&search("?number=1001")), vec![3]);
    assert_eq!(ids(&search("?trunk=carrier")), vec![4, 2]);
    assert_eq!(ids(&search("?failed=true")), vec![3]);
    assert_eq!(
        ids(&search(&format!("?since_ms={}", now - 2_000_000))),
        vec![4, 3]
    );
    let one = search("?limit=1");
    assert_eq!((ids(&one), one.truncated), (vec![4], true));
    assert_eq!(all.records[0].duration_ms, Some(60_000));

    for bad in [
        "?limit=many",
        "?nope=1",
        "?since_ms=-5",
        &format!("?number={}", "9".repeat(129)),
    ] {
        let (code, _, body) = http("GET", &srv.url(&format!("/api/v1/cdrs{bad}")), Some(TOKEN));
        assert_eq!(code, 400, "{bad}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{bad}: {e}: {body}"));
        assert!(v["error"].is_string(), "{bad}: {body}");
    }
    srv.stop();
}

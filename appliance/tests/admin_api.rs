//! Admin HTTP API against an in-process fake backend: routes, status codes, bearer token,
//! the exposition (validated by `promtool check metrics`), the calls/s gauge and the CLI
//! client functions. The end-to-end tests against the real binary are in `admin_e2e.rs`.

mod common_admin;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis::admin::client::{
    cmd_calls, cmd_log_level, cmd_status, ClientOptions, StatusReport,
};
use portcullis::admin::metrics::all_families;
use portcullis::admin::{
    spawn, AdminBackend, AdminServer, AdminServerConfig, CallInfo, Health, MetricsSnapshot,
    RegistrationInfo, SipCounters, TeamsMetrics, TeamsProxyStatus, TrunkCounters, TrunkInfo,
};
use portcullis_dataplane::{RingDepth, WorkerStats};
use portcullis_net::NetCountersSnapshot;

use common_admin::promtool_check;

const TOKEN: &str = "test-token-0123456789abcdef";

#[derive(Debug, Default)]
struct FakeState {
    ready: bool,
    calls: Vec<CallInfo>,
    reload_ok: bool,
    generation: u64,
    log_filter: String,
}

#[derive(Debug, Clone, Default)]
struct Fake {
    state: Arc<Mutex<FakeState>>,
    samples: Arc<AtomicU64>,
}

impl Fake {
    fn st(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn call(id: u64, called: &str) -> CallInfo {
    CallInfo {
        id,
        inbound_trunk: "left".into(),
        outbound_trunk: Some("right".into()),
        calling: "1000".into(),
        called: called.into(),
        answered: true,
        duration_s: 61,
        media: None,
    }
}

/// A snapshot where every counter is nonzero, with hostile label values.
fn full_snapshot() -> MetricsSnapshot {
    let mut trunks = BTreeMap::new();
    let mut outcomes = BTreeMap::new();
    outcomes.insert("answered", 3);
    trunks.insert(
        "we\"ird\\trunk\nname".to_owned(),
        TrunkCounters {
            active: 1,
            inbound: 4,
            outbound: 2,
            outcomes,
        },
    );
    let mut requests_in = BTreeMap::new();
    requests_in.insert("INVITE", 4);
    let mut requests_out = BTreeMap::new();
    requests_out.insert("BYE", 1);
    let net = NetCountersSnapshot {
        messages_in: [1, 2, 3, 4],
        messages_out: [1, 1, 1, 1],
        bytes_in: [500, 1, 1, 1],
        bytes_out: [400, 1, 1, 1],
        connections_open: 1,
        connections_total: 1,
        connections_refused: 1,
        idle_closes: 1,
        oversize_drops: 1,
        framing_errors: 1,
        tls_handshake_failures: 1,
        tls_name_rejections: 1,
        keepalives: 1,
        event_queue_drops: 1,
        trunk_queue_drops: 1,
        send_failures: 1,
        banned_drops: 1,
        source_rate_drops: 1,
        rate_limited: 1,
        buffer_closes: 1,
        slow_closes: 1,
        reserve_refusals: 1,
    };
    let mut drops = [0; portcullis_dataplane::DROP_REASONS];
    drops[0] = 1;
    drops[portcullis_dataplane::DropReason::RtpSourceRejected as usize] = 7;
    let w = WorkerStats {
        rx_packets: 10,
        tx_packets: 9,
        rx_bytes: 1720,
        tx_bytes: 1548,
        drops,
        srtp_failures: 1,
        active_pairs: 1,
        commands: 4,
        stale_commands: 1,
        events_lost: 1,
        rearms: 1,
        enobufs: 1,
        connected_sockets: 1,
        send_only_sockets: 1,
        connect_failures: 1,
        fast_ports: 2,
        fast_packets: 50,
        fast_bytes: 8600,
        fast_errors: 1,
        dtmf_detected: 1,
        dtmf_queued: 1,
        dtmf_refused: 1,
        xsk_rx: 3,
        xsk_tx: 2,
        xsk_kernel_tx: 1,
        xsk_rx_dropped: 1,
        ..WorkerStats::default()
    };
    MetricsSnapshot {
        config_generation: 2,
        calls_total: 4,
        calls_active: 1,
        trunks,
        sip: SipCounters {
            requests_in,
            requests_out,
            responses_in: [0, 1, 2, 0, 1, 0, 0],
            responses_out: [0, 3, 2, 0, 0, 0, 0],
            transaction_timeouts: 1,
            parse_errors: 1,
            policy_rejects: 1,
            auth_replays: 1,
            codec_rejects: 1,
            header_rules_applied: 1,
            delayed_offer_reoffers: 1,
            dtmf_to_info: 1,
            dtmf_to_rfc4733: 1,
            dtmf_failed: 1,
            bans: 1,
            dropped: 1,
            rejected: [
                ((403, "Forbidden"), 2),
                ((481, "Call/Transaction Does Not Exist"), 1),
            ]
            .into_iter()
            .collect(),
            limit_rejects: [("transactions", 1), ("calls", 1)].into_iter().collect(),
            options_unavailable: [("draining", 1), ("overload", 2)].into_iter().collect(),
            transactions: 3,
            bans_active: 1,
        },
        net: Some(net),
        workers: vec![w, WorkerStats::default()],
        dataplane_backend: "mmsg".into(),
        media_events_lost: 1,
        media_errors: 1,
        media_bypassed: 1,
        cdr_written: 3,
        cdr_errors: 1,
        capture: Some((5, 1)),
        cdr_queue_depth: 5,
        cdr_backpressure: true,
        cdr_backpressure_rejects: 2,
        cdr_recovered: 3,
        log_lines_dropped: 7,
        rings: vec![
            RingDepth {
                commands: 2,
                events: 1,
                capacity: 1024,
                command_overflows: 1,
            },
            RingDepth::default(),
        ],
        log_filter: Some("info,portcullis_net=debug".into()),
        ng: Some(portcullis::ng::NgStats {
            commands: vec![("offer", "ok", 3), ("answer", "error", 1)],
            errors: vec![("unsupported", 1)],
            sessions: 2,
            timeouts: 1,
            retransmissions: 1,
        }),
        fast_path: Some(portcullis_xdp::FastPathStats([3; portcullis_xdp::STATS])),
        traces: Some(portcullis::traces::TraceCounts {
            exported: 12,
            dropped_queue_full: 1,
            dropped_export_failed: 4,
        }),
        teams: Some(TeamsMetrics {
            proxies: vec![
                teams_proxy("sip.pstnhub.microsoft.com", "down", false, None),
                teams_proxy("sip2.pstnhub.microsoft.com", "up", true, Some(30)),
            ],
            failovers: 1,
        }),
        trunk_targets: vec![portcullis::runtime::trunk_status::TrunkTargetsStatus {
            trunk: "carrier".into(),
            strategy: "weighted".into(),
            pinged: true,
            domain: Some("carrier.example".into()),
            resolution: "resolved".into(),
            error: None,
            ttl_s: Some(30),
            failovers: 2,
            unavailable: 1,
            targets: vec![portcullis::runtime::trunk_status::TargetStatus {
                address: "192.0.2.7:5060".into(),
                priority: 10,
                weight: 5,
                state: "up".into(),
                usable: true,
                misses: 0,
                held_off_s: None,
                last_status: Some(200),
                calls: 1,
                calls_total: 7,
                options_sent: 9,
                options_answered: 8,
                options_missed: 1,
            }],
        }],
        registrations: registrations(),
        ha: Some(portcullis::ha::HaStatus {
            role: portcullis::config::HaRole::Active,
            peer: "sbc-b".into(),
            degraded: true,
            last_error: Some("redis: connection refused".into()),
            writes: 40,
            errors: 2,
            queue_full: 1,
            takeovers: 1,
            restored: 12,
            restore_failed: 1,
            journal_deferred: 0,
            prearmed: 0,
        }),
    }
}

fn registrations() -> Vec<RegistrationInfo> {
    vec![RegistrationInfo {
        trunk: "carrier".into(),
        aor: "sip:+4930123@carrier.example".into(),
        registrar: "198.51.100.7:5060".into(),
        state: "failed".into(),
        expires_in_s: Some(12),
        next_attempt_in_s: Some(8),
        last_status: Some(403),
        last_error: Some("403 Forbidden".into()),
        attempts: 7,
        successes: 1,
        failures: 3,
    }]
}

fn teams_proxy(name: &str, state: &str, selected: bool, held: Option<u64>) -> TeamsProxyStatus {
    TeamsProxyStatus {
        proxy: name.into(),
        address: "127.0.0.1:15061".into(),
        state: state.into(),
        selected,
        misses: 3,
        held_off_s: held,
        last_answer_s: Some(2),
        last_status: Some(200),
        options_sent: 9,
        options_answered: 6,
        options_missed: 3,
    }
}

impl AdminBackend for Fake {
    fn log_filter(&self) -> Option<String> {
        Some(self.st().log_filter.clone())
    }
    fn set_log_filter(&self, filter: &str) -> Result<String, portcullis::logging::LogError> {
        portcullis::logging::parse_filter(filter)?;
        filter.trim().clone_into(&mut self.st().log_filter);
        Ok(filter.trim().to_owned())
    }
    async fn health(&self) -> Health {
        let ready = self.st().ready;
        Health {
            ready,
            reasons: if ready {
                vec![]
            } else {
                vec!["draining".into()]
            },
        }
    }
    async fn metrics(&self) -> MetricsSnapshot {
        let mut s = full_snapshot();
        s.config_generation = self.st().generation;
        s
    }
    async fn calls_total(&self) -> u64 {
        // Five new calls between two samples: the gauge must read 5/s.
        self.samples.fetch_add(5, Ordering::Relaxed)
    }
    async fn calls(&self) -> Vec<CallInfo> {
        self.st().calls.clone()
    }
    async fn terminate(&self, id: u64) -> bool {
        let mut st = self.st();
        let before = st.calls.len();
        st.calls.retain(|c| c.id != id);
        st.calls.len() != before
    }
    async fn registrations(&self) -> Vec<RegistrationInfo> {
        registrations()
    }
    async fn trunks(&self) -> Vec<TrunkInfo> {
        vec![TrunkInfo {
            name: "left".into(),
            address: "127.0.0.1:5070".into(),
            transport: "udp".into(),
            media: "rtp".into(),
            max_calls: Some(10),
            active_calls: self.st().calls.len() as u64,
            health: None,
            targets: None,
        }]
    }
    async fn reload(&self) -> Result<u64, Vec<String>> {
        let mut st = self.st();
        if st.reload_ok {
            st.generation += 1;
            Ok(st.generation)
        } else {
            Err(vec!["cfg.toml:3:1: trunk.address: bad address".into()])
        }
    }
}

/// The admin server on its own runtime, over a `fake(ready)` backend.
struct Running {
    rt: tokio::runtime::Runtime,
    fake: Fake,
    srv: AdminServer,
}

impl Running {
    /// Binds the server on a free loopback port; `token` is the bearer token it requires.
    fn start(ready: bool, token: Option<&str>) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let fake = fake(ready);
        let srv = rt
            .block_on(spawn(
                AdminServerConfig {
                    listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
                    token: token.map(str::to_owned),
                },
                fake.clone(),
            ))
            .unwrap_or_else(|e| panic!("bind: {e}"));
        Self { rt, fake, srv }
    }

    /// `http://<server><path>`.
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.srv.local_addr())
    }

    /// CLI client options pointing at the server, with the right token.
    fn client(&self) -> ClientOptions {
        ClientOptions {
            admin: self.srv.local_addr().to_string(),
            token: Some(TOKEN.into()),
        }
    }

    fn stop(self) {
        self.rt.block_on(self.srv.stop());
    }
}

/// `(status, body)` of a request; `token` adds the bearer header.
fn http(method: &str, url: &str, token: Option<&str>) -> (u16, String) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let mut req = agent.request(method, url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    status_and_body(req.call(), &format!("{method} {url}"))
}

/// `(status, body)` of a finished request, error statuses included; panics on a transport
/// error, naming `what`.
fn status_and_body(r: Result<ureq::Response, ureq::Error>, what: &str) -> (u16, String) {
    match r {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{what}: {e}"),
    }
}

fn fake(ready: bool) -> Fake {
    let f = Fake::default();
    {
        let mut st = f.st();
        st.ready = ready;
        st.generation = 1;
        st.log_filter = "info".into();
        st.calls = vec![call(7, "2000"), call(9, "2001")];
    }
    f
}

#[test]
fn health_is_open_and_reports_reasons() {
    let srv = Running::start(false, Some(TOKEN));
    let (code, body) = http("GET", &srv.url("/health"), None);
    assert_eq!(code, 503, "{body}");
    let h: Health = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(h.reasons, vec!["draining".to_owned()]);
    srv.fake.st().ready = true;
    let (code, body) = http("GET", &srv.url("/health"), None);
    assert_eq!(
        (code, body.as_str()),
        (200, r#"{"ready":true,"reasons":[]}"#)
    );
    srv.stop();
}

#[test]
fn token_is_enforced_on_every_other_route() {
    let srv = Running::start(true, Some(TOKEN));
    for (m, p) in [
        ("GET", "/metrics"),
        ("GET", "/api/v1/calls"),
        ("DELETE", "/api/v1/calls/7"),
        ("GET", "/api/v1/trunks"),
        ("GET", "/api/v1/registrations"),
        ("POST", "/api/v1/reload"),
        ("GET", "/api/v1/log-level"),
        ("PUT", "/api/v1/log-level"),
    ] {
        let url = srv.url(p);
        assert_eq!(http(m, &url, None).0, 401, "{m} {p} without token");
        assert_eq!(http(m, &url, Some("wrong")).0, 401, "{m} {p} wrong token");
    }
    // Nothing was executed by the refused requests.
    assert_eq!(srv.fake.st().calls.len(), 2);
    assert_eq!(srv.fake.st().generation, 1);
    assert_eq!(srv.fake.st().log_filter, "info");
    assert_eq!(http("GET", &srv.url("/api/v1/calls"), Some(TOKEN)).0, 200);
    srv.stop();
}

#[test]
fn no_token_configured_means_open() {
    let srv = Running::start(true, None);
    let (code, _) = http("GET", &srv.url("/metrics"), None);
    assert_eq!(code, 200);
    srv.stop();
}

#[test]
fn calls_list_and_terminate() {
    let srv = Running::start(true, Some(TOKEN));
    let (code, body) = http("GET", &srv.url("/api/v1/calls"), Some(TOKEN));
    assert_eq!(code, 200);
    let calls: Vec<CallInfo> = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(calls, vec![call(7, "2000"), call(9, "2001")]);
    let (code, body) = http("DELETE", &srv.url("/api/v1/calls/7"), Some(TOKEN));
    assert_eq!((code, body.as_str()), (200, r#"{"terminated":7}"#));
    assert_eq!(
        http("DELETE", &srv.url("/api/v1/calls/7"), Some(TOKEN)).0,
        404
    );
    assert_eq!(
        http("DELETE", &srv.url("/api/v1/calls/abc"), Some(TOKEN)).0,
        400
    );
    let (_, body) = http("GET", &srv.url("/api/v1/calls"), Some(TOKEN));
    let calls: Vec<CallInfo> = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(calls, vec![call(9, "2001")]);
    srv.stop();
}

#[test]
fn reload_reports_generation_or_errors() {
    let srv = Running::start(true, Some(TOKEN));
    let url = srv.url("/api/v1/reload");
    let (code, body) = http("POST", &url, Some(TOKEN));
    assert_eq!(code, 422, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["errors"][0], "cfg.toml:3:1: trunk.address: bad address");
    assert_eq!(srv.fake.st().generation, 1);
    srv.fake.st().reload_ok = true;
    let (code, body) = http("POST", &url, Some(TOKEN));
    assert_eq!((code, body.as_str()), (200, r#"{"generation":2}"#));
    // GET is not a reload.
    assert_eq!(http("GET", &url, Some(TOKEN)).0, 405);
    srv.stop();
}

#[test]
fn metrics_exposition_is_valid_and_complete() {
    let srv = Running::start(true, Some(TOKEN));
    let url = srv.url("/metrics");
    // Wait for two sampler ticks, so the calls/s gauge has a rate (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !http("GET", &url, Some(TOKEN))
        .1
        .lines()
        .any(|l| l.starts_with("portcullis_calls_per_second ") && !l.ends_with(" 0"))
    {
        assert!(std::time::Instant::now() < deadline, "calls/s never moved");
        std::thread::sleep(Duration::from_millis(100));
    }
    let resp = ureq::get(&url)
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = resp.into_string().unwrap_or_else(|e| panic!("{e}"));
    promtool_check(&text);
    // Every declared family is rendered from a full snapshot, once, with HELP and TYPE.
    for fam in all_families() {
        assert_eq!(
            text.matches(&format!("# TYPE {} ", fam.name)).count(),
            1,
            "{}",
            fam.name
        );
        assert!(
            text.contains(&format!("# HELP {} ", fam.name)),
            "{}",
            fam.name
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with(fam.name) && !l.ends_with(" 0")),
            "{} has no nonzero sample",
            fam.name
        );
    }
    // Registrations: one state series per state name, 1 for the current one.
    for (state, v) in [("failed", 1), ("registered", 0), ("unregistered", 0)] {
        let line =
            format!("portcullis_registration_state{{trunk=\"carrier\",state=\"{state}\"}} {v}");
        assert!(text.lines().any(|l| l == line), "{line}");
    }
    assert!(text
        .lines()
        .any(|l| l == "portcullis_registration_failures_total{trunk=\"carrier\"} 3"));
    // Hostile label value escaped per the format.
    assert!(
        text.contains(r#"portcullis_trunk_calls_active{trunk="we\"ird\\trunk\nname"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"portcullis_dataplane_drops_total{worker="0",reason="no_stream"} 1"#));
    assert!(text.contains(r#"portcullis_dataplane_rtp_source_rejected_total{worker="0"} 7"#));
    assert!(text.contains(r#"portcullis_sip_requests_total{method="INVITE",direction="in"} 4"#));
    assert!(text.contains(r#"portcullis_dataplane_info{backend="mmsg",workers="2"} 1"#));
    assert!(text.contains(r#"portcullis_fastpath_promoted_ports{worker="0"} 2"#));
    assert!(
        text.contains(r#"portcullis_fastpath_program_packets_total{verdict="peer_mismatch"} 3"#)
    );
    srv.stop();
}

#[test]
fn calls_per_second_gauge_follows_the_sampler() {
    let srv = Running::start(true, None);
    std::thread::sleep(Duration::from_millis(3300));
    let (_, text) = http("GET", &srv.url("/metrics"), None);
    let v: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_calls_per_second "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no calls/s sample:\n{text}"));
    assert!((4.0..=6.0).contains(&v), "calls/s = {v}");
    srv.stop();
}

#[test]
fn cli_client_functions() {
    let srv = Running::start(true, Some(TOKEN));
    let opts = srv.client();
    let mut out = Vec::new();
    let ready = cmd_status(&opts, true, &mut out).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(ready);
    let rep: StatusReport = serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rep.calls_active, 2);
    assert_eq!(rep.trunks[0].name, "left");
    assert_eq!(rep.registrations, registrations());
    // The table: one row per registration, its state and why it failed.
    let mut out = Vec::new();
    cmd_status(&opts, false, &mut out).unwrap_or_else(|e| panic!("{e:#}"));
    let text = String::from_utf8_lossy(&out);
    let row = text
        .lines()
        .find(|l| l.starts_with("carrier "))
        .unwrap_or_else(|| panic!("{text}"));
    for want in [
        "sip:+4930123@carrier.example",
        "failed",
        "7/1/3",
        "403 Forbidden",
    ] {
        assert!(row.contains(want), "{want} in {row}");
    }
    let mut out = Vec::new();
    cmd_calls(&opts, false, &mut out).unwrap_or_else(|e| panic!("{e:#}"));
    let text = String::from_utf8_lossy(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "ID  FROM  TO     CALLING  CALLED  STATE     DURATION"
    );
    assert_eq!(
        lines[1],
        "7   left  right  1000     2000    answered  0:01:01"
    );
    assert_eq!(lines[3], "2 call(s)");
    // Wrong token: a clear error, not a panic or a table.
    let bad = ClientOptions {
        token: Some("nope".into()),
        ..opts
    };
    let err = cmd_calls(&bad, false, &mut Vec::new())
        .err()
        .map(|e| format!("{e:#}"));
    assert!(err.is_some_and(|e| e.contains("401")));
    srv.stop();
}

/// `(status, body)` of a PUT with a body.
fn put(url: &str, body: &str) -> (u16, String) {
    let r = ureq::put(url)
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .timeout(Duration::from_secs(5))
        .send_string(body);
    status_and_body(r, &format!("PUT {url}"))
}

#[test]
fn log_level_is_read_and_set() {
    let srv = Running::start(true, Some(TOKEN));
    let url = srv.url("/api/v1/log-level");
    let (code, body) = http("GET", &url, Some(TOKEN));
    assert_eq!((code, body.as_str()), (200, r#"{"level":"info"}"#));
    let (code, body) = put(&url, r#"{"level":"debug"}"#);
    assert_eq!((code, body.as_str()), (200, r#"{"level":"debug"}"#));
    assert_eq!(srv.fake.st().log_filter, "debug");
    let (code, body) = put(&url, "warn,portcullis_net=trace\n");
    assert_eq!(
        (code, body.as_str()),
        (200, r#"{"level":"warn,portcullis_net=trace"}"#)
    );
    // Refused with the reason; the filter in force stays.
    for bad in ["verbose", r#"{"lvl":"debug"}"#, "{", ""] {
        let (code, body) = put(&url, bad);
        assert_eq!(code, 400, "{bad}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    }
    assert_eq!(srv.fake.st().log_filter, "warn,portcullis_net=trace");
    assert_eq!(http("POST", &url, Some(TOKEN)).0, 405);
    srv.stop();
}

#[test]
fn cli_log_level() {
    let srv = Running::start(true, Some(TOKEN));
    let opts = srv.client();
    let mut out = Vec::new();
    cmd_log_level(&opts, None, &mut out).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(String::from_utf8_lossy(&out), "info\n");
    let mut out = Vec::new();
    cmd_log_level(&opts, Some("debug,portcullis_net=trace"), &mut out)
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        String::from_utf8_lossy(&out),
        "debug,portcullis_net=trace\n"
    );
    assert_eq!(srv.fake.st().log_filter, "debug,portcullis_net=trace");
    // A bad filter: the reason, not a panic; the filter stays.
    let err = cmd_log_level(&opts, Some("chatty"), &mut Vec::new())
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(
        err.contains("400") && err.contains("invalid log filter"),
        "{err}"
    );
    assert_eq!(srv.fake.st().log_filter, "debug,portcullis_net=trace");
    srv.stop();
}

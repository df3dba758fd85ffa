//! `[otel]`: traces of call setup exported over OTLP/HTTP, through the real binary.
//!
//! - A stub collector (axum on loopback) decodes every `ExportTraceServiceRequest`
//!   (protobuf, `opentelemetry-proto`). One sipp call that fails over (the first trunk
//!   answers 503, the second answers) is one trace: the root span `call` with the
//!   call's identities and outcome, and children `route`, two `b-leg attempt`s and
//!   `answer`, linked to it; the Call-IDs are the CDR's.
//! - Over HTTPS, the collector's certificate is checked against the trust store
//!   (`SSL_CERT_FILE` names the test CA) and a call's spans arrive.
//! - With the collector unreachable, a call goes through all the same and its spans
//!   are counted as dropped (`portcullis_trace_spans_dropped_total{reason="export_failed"}`).
//!
//! Needs `sipp` (Debian `sip-tester`) and `promtool` (Debian `prometheus`).

mod common_admin;
mod sipp_harness;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use common_admin::{promtool_check, sample};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use sipp_harness::*;

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct Got {
    trace: Vec<u8>,
    span: Vec<u8>,
    parent: Vec<u8>,
    name: String,
    kind: i32,
    /// Status code (0 unset, 1 ok, 2 error).
    status: i32,
    attrs: BTreeMap<String, String>,
    resource: BTreeMap<String, String>,
}

fn attrs(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Any::StringValue(s)) => s.clone(),
                Some(Any::IntValue(i)) => i.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

type Received = Arc<Mutex<Vec<Got>>>;

async fn traces(State(got): State<Received>, body: Bytes) -> (StatusCode, Vec<u8>) {
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    let mut got = got.lock().unwrap_or_else(PoisonError::into_inner);
    for rs in req.resource_spans {
        let resource = rs
            .resource
            .as_ref()
            .map(|r| attrs(&r.attributes))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                got.push(Got {
                    trace: s.trace_id,
                    span: s.span_id,
                    parent: s.parent_span_id,
                    name: s.name,
                    kind: s.kind,
                    status: s.status.map_or(0, |st| st.code),
                    attrs: attrs(&s.attributes),
                    resource: resource.clone(),
                });
            }
        }
    }
    // An empty ExportTraceServiceResponse (full success).
    (StatusCode::OK, Vec::new())
}

/// A stub OTLP/HTTP collector on a loopback port, on its own runtime thread.
struct Collector {
    port: u16,
    got: Received,
}

impl Collector {
    /// Plain HTTP (`tls`: `None`) or HTTPS with this server configuration.
    fn start(tls: Option<rustls::ServerConfig>) -> Self {
        let got: Received = Arc::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind collector");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let app = axum::Router::new()
            .route("/v1/traces", post(traces))
            .with_state(got.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).expect("listener");
                let Some(tls) = tls else {
                    let _ = axum::serve(l, app).await;
                    return;
                };
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
                while let Ok((tcp, _)) = l.accept().await {
                    let (acceptor, app) = (acceptor.clone(), app.clone());
                    tokio::spawn(async move {
                        let Ok(stream) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(
                                hyper_util::rt::TokioIo::new(stream),
                                hyper_util::service::TowerToHyperService::new(app),
                            )
                            .await;
                    });
                }
            });
        });
        Self { port, got }
    }

    /// Waits until `n` spans arrived (bounded); returns them.
    fn wait_spans(&self, n: usize, within: Duration) -> Vec<Got> {
        let deadline = Instant::now() + within;
        loop {
            let got = self
                .got
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn otel_section(endpoint_port: u16) -> String {
    otel_section_url(&format!("http://127.0.0.1:{endpoint_port}"))
}

fn otel_section_url(endpoint: &str) -> String {
    format!(
        r#"
[otel]
endpoint = "{endpoint}"
service_name = "portcullis-test"
sample_ratio = 1.0
queue_spans = 256
timeout = "2s"
"#
    )
}

const FAILOVER: &str = r#"[[route]]
name = "left-to-right-then-right2"
from = ["left"]
targets = ["right", "right2"]
"#;

fn scrape(p: Ports) -> String {
    let url = format!("http://127.0.0.1:{}/metrics", p.admin);
    let text = ureq::get(&url)
        .timeout(Duration::from_secs(5))
        .call()
        .unwrap_or_else(|e| panic!("GET /metrics: {e}"))
        .into_string()
        .unwrap_or_else(|e| panic!("{e}"));
    promtool_check(&text);
    text
}

/// `uas_reply_status.xml` answering `status`, written into `dir`.
fn refusing_uas(dir: &Path, status: u16) -> String {
    let text = std::fs::read_to_string(scenario(dir, "uas_reply_status.xml"))
        .expect("scenario")
        .replace("__STATUS__", &status.to_string());
    let dst = dir.join(format!("{status}-uas_reply_status.xml"));
    std::fs::write(&dst, text).expect("write scenario");
    dst.to_string_lossy().into_owned()
}

fn keys(g: &Got) -> Vec<&str> {
    g.attrs.keys().map(String::as_str).collect()
}

#[test]
fn a_failed_over_call_is_one_trace_with_its_setup_phases() {
    let _serial = serial();
    let p = Ports::for_test_range2(8);
    let collector = Collector::start(None);
    let toml = format!("{}{}", config(p, FAILOVER), otel_section(collector.port));
    let app = Appliance::start(&toml);
    let dir = app.dir.path();
    let refuse = refusing_uas(dir, 503);
    let mut uas = Sipp::peer(
        "uas503",
        dir,
        "127.0.0.1",
        p.right,
        p.sipp_media + 100,
        &["-sf", &refuse, "-m", "1"],
    );
    let mut uas2 = Sipp::peer(
        "uas2",
        dir,
        "127.0.0.1",
        p.right2,
        p.sipp_media + 150,
        &["-sn", "uas", "-m", "1"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let target = sip_target(p);
    let mut uac = start_uac(dir, p, &["-sn", "uac", "-m", "1", &target]);
    uac.wait_ok(Duration::from_secs(40), "uac");
    uas.wait_ok(Duration::from_secs(20), "uas 503");
    uas2.wait_ok(Duration::from_secs(20), "uas2");
    let cdrs = app.wait_cdrs(1, Duration::from_secs(10));
    let cdr = cdrs
        .first()
        .unwrap_or_else(|| panic!("no CDR:\n{}", app.log()));
    assert_eq!(end_kind(cdr), "normal_clearing", "{cdr}");

    let spans = collector.wait_spans(5, Duration::from_secs(20));
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(spans.len(), 5, "spans: {names:?}\n{}", app.log());
    let one = |name: &str| -> Vec<&Got> { spans.iter().filter(|s| s.name == name).collect() };
    let root = *one("call")
        .first()
        .unwrap_or_else(|| panic!("no root: {names:?}"));
    assert!(root.parent.is_empty(), "the root has no parent");
    assert_eq!(root.trace.len(), 16);
    for s in &spans {
        assert_eq!(s.trace, root.trace, "{} in another trace", s.name);
        if s.name != "call" {
            assert_eq!(s.parent, root.span, "{} is a child of call", s.name);
        }
        assert_eq!(s.resource["service.name"], "portcullis-test");
        assert_eq!(s.resource["service.instance.id"], "sipp-test");
    }
    // OTLP SpanKind: 2 server, 3 client.
    assert_eq!(root.kind, 2);
    let a_call_id = cdr["a_leg"]["call_id"].as_str().unwrap_or_default();
    let b_call_id = cdr["b_leg"]["call_id"].as_str().unwrap_or_default();
    assert!(!a_call_id.is_empty() && !b_call_id.is_empty(), "{cdr}");
    let call = cdr["call_id"].to_string();
    for (k, v) in [
        ("call", call.as_str()),
        ("a_call_id", a_call_id),
        ("b_call_id", b_call_id),
        ("inbound_trunk", "left"),
        ("outbound_trunk", "right2"),
        (
            "calling",
            cdr["calling"]["original"].as_str().unwrap_or("?"),
        ),
        ("called", cdr["called"]["original"].as_str().unwrap_or("?")),
        ("route", "left-to-right-then-right2"),
        ("final_status", "200"),
        ("end_reason", "normal_clearing"),
    ] {
        assert_eq!(root.attrs.get(k).map(String::as_str), Some(v), "call.{k}");
    }
    // Identities and outcomes only: the attribute sets are exactly these.
    assert_eq!(
        keys(root),
        [
            "a_call_id",
            "b_call_id",
            "call",
            "called",
            "calling",
            "end_reason",
            "final_status",
            "inbound_trunk",
            "outbound_trunk",
            "route"
        ]
    );
    assert_eq!(root.status, 0, "an answered call is no error");

    let route = one("route")[0];
    assert_eq!(route.attrs["route"], "left-to-right-then-right2");
    let mut attempts = one("b-leg attempt");
    attempts.sort_by_key(|s| s.attrs["attempt"].clone());
    assert_eq!(attempts.len(), 2, "{names:?}");
    let (first, second) = (attempts[0], attempts[1]);
    assert_eq!(first.kind, 3);
    assert_eq!(
        keys(first),
        ["attempt", "b_call_id", "status", "target", "trunk"]
    );
    assert_eq!(first.attrs["trunk"], "right");
    assert_eq!(first.attrs["target"], format!("127.0.0.1:{}", p.right));
    assert_eq!(first.attrs["status"], "503");
    assert_eq!(first.status, 2, "a refused attempt is an error");
    assert_ne!(
        first.attrs["b_call_id"], b_call_id,
        "each attempt its own leg"
    );
    assert_eq!(second.attrs["trunk"], "right2");
    assert_eq!(second.attrs["target"], format!("127.0.0.1:{}", p.right2));
    assert_eq!(second.attrs["status"], "200");
    assert_eq!(second.attrs["b_call_id"], b_call_id);
    let answer = one("answer")[0];
    assert_eq!(answer.attrs["outbound_trunk"], "right2");
    assert!(answer.attrs["setup_ms"].parse::<u64>().is_ok());

    let text = scrape(p);
    assert_eq!(
        sample(&text, "portcullis_trace_spans_exported_total"),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"portcullis_trace_spans_dropped_total{reason="export_failed"}"#
        ),
        Some(0.0)
    );
}

#[test]
fn calls_go_through_while_the_collector_is_down_and_spans_are_counted_dropped() {
    let _serial = serial();
    let p = Ports::for_test_range2(9);
    // A loopback port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let toml = format!("{}{}", config(p, ROUTE_LEFT_RIGHT), otel_section(dead));
    let app = Appliance::start(&toml);
    let dir = app.dir.path();
    let mut uas = start_uas(dir, p, &["-sn", "uas", "-m", "2"]);
    let target = sip_target(p);
    let mut uac = start_uac(dir, p, &["-sn", "uac", "-m", "2", "-l", "1", &target]);
    uac.wait_ok(Duration::from_secs(40), "uac");
    uas.wait_ok(Duration::from_secs(20), "uas");
    let cdrs = app.wait_cdrs(2, Duration::from_secs(10));
    assert_eq!(cdrs.len(), 2, "{}", app.log());
    for c in &cdrs {
        assert_eq!(end_kind(c), "normal_clearing", "{c}");
    }
    // call, route, b-leg attempt and answer of each call, once their exports failed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = scrape(p);
        let dropped = sample(
            &text,
            r#"portcullis_trace_spans_dropped_total{reason="export_failed"}"#,
        )
        .unwrap_or(0.0);
        if dropped >= 8.0 {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "spans not counted dropped:\n{text}\n{}",
            app.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(
        sample(
            &text,
            r#"portcullis_trace_spans_dropped_total{reason="export_failed"}"#
        ),
        Some(8.0),
        "every span once"
    );
    assert_eq!(
        sample(&text, "portcullis_trace_spans_exported_total"),
        Some(0.0)
    );
    assert!(
        app.log().contains("traces not exported"),
        "the outage is logged:\n{}",
        app.log()
    );
}

/// A test CA (written to `dir/ca.pem`) and a server configuration for 127.0.0.1 that
/// it signed.
fn tls_for_loopback(dir: &Path) -> rustls::ServerConfig {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).expect("CA");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write CA");
    let key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("leaf params")
        .signed_by(&key, &ca, &ca_key)
        .expect("leaf");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
        .expect("server config")
}

#[test]
fn spans_go_to_an_https_collector_whose_certificate_checks() {
    let _serial = serial();
    let p = Ports::for_test_range2(7);
    let pki = tempfile::tempdir().expect("tempdir");
    let collector = Collector::start(Some(tls_for_loopback(pki.path())));
    // The exporter's trust store (rustls-native-certs) is this file alone; the other
    // tests of this binary hold the same lock and do not use TLS.
    std::env::set_var("SSL_CERT_FILE", pki.path().join("ca.pem"));
    let url = format!("https://127.0.0.1:{}", collector.port);
    let toml = format!("{}{}", config(p, ROUTE_LEFT_RIGHT), otel_section_url(&url));
    let app = Appliance::start(&toml);
    std::env::remove_var("SSL_CERT_FILE");
    let dir = app.dir.path();
    let mut uas = start_uas(dir, p, &["-sn", "uas", "-m", "1"]);
    let target = sip_target(p);
    let mut uac = start_uac(dir, p, &["-sn", "uac", "-m", "1", &target]);
    uac.wait_ok(Duration::from_secs(40), "uac");
    uas.wait_ok(Duration::from_secs(20), "uas");
    let spans = collector.wait_spans(4, Duration::from_secs(20));
    let mut names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["answer", "b-leg attempt", "call", "route"],
        "{}",
        app.log()
    );
    assert!(!app.log().contains("traces not exported"), "{}", app.log());
}

//! `[otel]`: defaults, the traces URL, and every bound refused with its path and the
//! line:col of the offending value.

mod common_config;

use std::time::Duration;

use common_config::{load, pos, BASE};

#[test]
fn absent_is_off_and_defaults_fill_the_rest() {
    let cfg = load(BASE).unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(cfg.otel.is_none());
    let src = format!("{BASE}\n[otel]\nendpoint = \"https://otel.example.net/otlp/\"\n");
    let o = load(&src)
        .unwrap_or_else(|d| panic!("{d:#?}"))
        .otel
        .unwrap_or_else(|| panic!("[otel] set"));
    assert_eq!(o.traces_url, "https://otel.example.net/otlp/v1/traces");
    assert_eq!(o.service_name, "portcullis");
    assert!((o.sample_ratio - 1.0).abs() < f64::EPSILON);
    assert_eq!(o.queue_spans, 2048);
    assert_eq!(o.timeout, Duration::from_secs(10));
    // An integer ratio is a number too.
    let src = format!("{BASE}\n[otel]\nendpoint = \"http://[::1]:4318\"\nsample_ratio = 0\n");
    let o = load(&src).unwrap_or_else(|d| panic!("{d:#?}")).otel;
    assert_eq!(o.map(|o| o.sample_ratio), Some(0.0));
}

#[test]
fn bad_values_are_reported_each_with_its_position() {
    let src = format!(
        r#"{BASE}
[otel]
endpoint = "grpc://127.0.0.1:4317"
service_name = "my service"
sample_ratio = 1.5
queue_spans = 10
timeout = "2m"
"#
    );
    let d = load(&src).err().unwrap_or_else(|| panic!("loaded"));
    let by_path = |p: &str| {
        d.iter()
            .find(|x| x.path == p)
            .unwrap_or_else(|| panic!("no error at {p}: {d:#?}"))
    };
    for (path, value, words) in [
        ("otel.endpoint", "\"grpc://", "http or https"),
        ("otel.service_name", "\"my service\"", "printable"),
        ("otel.sample_ratio", "1.5", "between 0 and 1"),
        ("otel.queue_spans", "10", "between 64 and 1048576"),
        ("otel.timeout", "\"2m\"", "at most"),
    ] {
        let e = by_path(path);
        assert_eq!(e.location, Some(pos(&src, value)), "{e}");
        assert!(e.message.contains(words), "{e}");
    }
    assert_eq!(d.len(), 5, "{d:#?}");

    // A URL with credentials is refused (they would show in logs).
    let src = format!("{BASE}\n[otel]\nendpoint = \"http://u:p@127.0.0.1:4318\"\n");
    let d = load(&src).err().unwrap_or_else(|| panic!("loaded"));
    assert!(
        d[0].message.contains("OTEL_EXPORTER_OTLP_HEADERS"),
        "{d:#?}"
    );
    // The endpoint is required; unknown keys are refused.
    let src = format!("{BASE}\n[otel]\nsample_ratio = 0.5\n");
    assert!(load(&src).is_err());
    let src = format!("{BASE}\n[otel]\nendpoint = \"http://127.0.0.1:4318\"\nheaders = 1\n");
    let d = load(&src).err().unwrap_or_else(|| panic!("loaded"));
    assert!(d[0].message.contains("unknown field `headers`"), "{d:#?}");
}

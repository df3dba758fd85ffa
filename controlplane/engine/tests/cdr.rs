//! CDR JSON lines: field order, one line, round trip through serde_json.

use portcullis_engine::cdr::{
    CdrRecord, EndReason, LegRecord, MediaRecord, MediaSideRecord, NumberRecord, Party,
};
use serde_json::Value;

fn leg(call_id: &str, trunk: &str, remote: &str) -> LegRecord {
    LegRecord {
        call_id: call_id.into(),
        from: "sip:+4930111@a.example;user=phone".into(),
        to: "sip:+4930222@b.example".into(),
        trunk: trunk.into(),
        remote: remote.parse().unwrap(),
    }
}

fn sample() -> CdrRecord {
    CdrRecord {
        call_id: 42,
        a_leg: leg("a\"b\ncall@x", "pbx", "192.0.2.1:5060"),
        b_leg: Some(leg("b-leg@sbc", "carrier", "[2001:db8::1]:5061")),
        calling: NumberRecord::new("030111", "+4930111"),
        called: NumberRecord::same("+4930222"),
        route: Some("to-carrier".into()),
        setup_at_ms: 1_700_000_000_000,
        answer_at_ms: Some(1_700_000_002_500),
        end_at_ms: 1_700_000_062_500,
        end_reason: EndReason::NormalClearing { by: Party::Callee },
        final_status: Some(200),
        media: Some(MediaRecord {
            a: MediaSideRecord {
                rx_packets: 3000,
                rx_bytes: 516_000,
                tx_packets: 2990,
                tx_bytes: 514_280,
                lost: Some(3),
                jitter_us: Some(1250),
                rtp_source_rejected: 17,
            },
            b: MediaSideRecord::default(),
        }),
        takeover: None,
    }
}

#[test]
fn one_line_newline_terminated() {
    let line = sample().to_json_line();
    assert!(line.ends_with('\n'));
    assert_eq!(line.matches('\n').count(), 1, "{line}");
    assert!(!line.contains('\r'));
    // The embedded newline of the hostile Call-ID is escaped, not raw.
    assert!(line.contains("a\\\"b\\ncall@x"), "{line}");
}

#[test]
fn field_order_is_fixed() {
    let line = sample().to_json_line();
    let keys = [
        "\"call_id\":42",
        "\"a_leg\"",
        "\"b_leg\"",
        "\"calling\"",
        "\"called\"",
        "\"route\"",
        "\"setup_at_ms\"",
        "\"answer_at_ms\"",
        "\"end_at_ms\"",
        "\"end_reason\"",
        "\"final_status\"",
        "\"media\"",
    ];
    let pos: Vec<usize> = keys
        .iter()
        .map(|k| {
            line.find(k)
                .unwrap_or_else(|| panic!("{k} missing: {line}"))
        })
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{pos:?} in {line}");
    // Deterministic: same record, same bytes.
    assert_eq!(line, sample().to_json_line());
}

#[test]
fn json_value_round_trip() {
    let rec = sample();
    let v: Value = serde_json::from_str(&rec.to_json_line()).unwrap();
    assert_eq!(v["call_id"], 42);
    assert_eq!(v["a_leg"]["trunk"], "pbx");
    assert_eq!(v["a_leg"]["remote"], "192.0.2.1:5060");
    assert_eq!(v["b_leg"]["remote"], "[2001:db8::1]:5061");
    assert_eq!(v["calling"]["original"], "030111");
    assert_eq!(v["calling"]["translated"], "+4930111");
    assert_eq!(v["called"]["original"], v["called"]["translated"]);
    assert_eq!(v["route"], "to-carrier");
    assert_eq!(v["answer_at_ms"], 1_700_000_002_500u64);
    assert_eq!(v["end_reason"]["kind"], "normal_clearing");
    assert_eq!(v["end_reason"]["by"], "callee");
    assert_eq!(v["final_status"], 200);
    assert_eq!(v["media"]["a"]["lost"], 3);
    assert_eq!(v["media"]["a"]["jitter_us"], 1250);
    assert_eq!(v["media"]["b"]["lost"], Value::Null);
    assert_eq!(v["media"]["a"]["rtp_source_rejected"], 17);
    // A line written before the field existed still reads (as 0).
    let mut old = v.clone();
    old["media"]["a"]
        .as_object_mut()
        .unwrap()
        .remove("rtp_source_rejected");
    let older: CdrRecord = serde_json::from_value(old).unwrap();
    assert_eq!(older.media.unwrap().a.rtp_source_rejected, 0);
    let back: CdrRecord = serde_json::from_value(v).unwrap();
    assert_eq!(back, rec);
    assert_eq!(CdrRecord::from_json_line(&rec.to_json_line()).unwrap(), rec);
}

#[test]
fn unanswered_and_end_reasons() {
    let mut rec = sample();
    rec.b_leg = None;
    rec.route = None;
    rec.answer_at_ms = None;
    rec.media = None;
    rec.final_status = Some(404);
    rec.end_reason = EndReason::NoRoute;
    let v: Value = serde_json::from_str(&rec.to_json_line()).unwrap();
    assert_eq!(v["b_leg"], Value::Null);
    assert_eq!(v["answer_at_ms"], Value::Null);
    assert_eq!(v["end_reason"], serde_json::json!({"kind": "no_route"}));
    assert_eq!(rec.duration_ms(), None);
    assert_eq!(rec.setup_ms(), 62_500);
    let s = sample();
    assert_eq!(s.duration_ms(), Some(60_000));
    assert_eq!(s.setup_ms(), 2_500);
    for (reason, json) in [
        (
            EndReason::Rejected { status: 486 },
            r#"{"kind":"rejected","status":486}"#,
        ),
        (EndReason::Cancelled, r#"{"kind":"cancelled"}"#),
        (EndReason::Timeout, r#"{"kind":"timeout"}"#),
        (EndReason::MediaInactivity, r#"{"kind":"media_inactivity"}"#),
        (EndReason::SessionExpired, r#"{"kind":"session_expired"}"#),
        (EndReason::Shutdown, r#"{"kind":"shutdown"}"#),
        (EndReason::Terminated, r#"{"kind":"terminated"}"#),
        (
            EndReason::NormalClearing { by: Party::Caller },
            r#"{"kind":"normal_clearing","by":"caller"}"#,
        ),
    ] {
        assert_eq!(serde_json::to_string(&reason).unwrap(), json);
        assert_eq!(serde_json::from_str::<EndReason>(json).unwrap(), reason);
    }
}

#[test]
fn media_stats_convert_with_loss_figures_where_measured() {
    use portcullis_engine::media::{LegMediaStats, MediaStats};
    let m: MediaRecord = MediaStats {
        a: LegMediaStats {
            rx_packets: 1,
            rx_bytes: 2,
            tx_packets: 3,
            tx_bytes: 4,
            rtp_lost: Some(9),
            rtp_jitter_us: Some(1250),
            rtp_source_rejected: 11,
        },
        b: LegMediaStats {
            rx_packets: 5,
            rx_bytes: 6,
            tx_packets: 7,
            tx_bytes: 8,
            rtp_lost: None,
            rtp_jitter_us: None,
            rtp_source_rejected: 0,
        },
    }
    .into();
    assert_eq!(
        (m.a.rx_packets, m.a.rx_bytes, m.a.tx_packets, m.a.tx_bytes),
        (1, 2, 3, 4)
    );
    assert_eq!(
        (m.b.rx_packets, m.b.rx_bytes, m.b.tx_packets, m.b.tx_bytes),
        (5, 6, 7, 8)
    );
    assert_eq!((m.a.lost, m.a.jitter_us), (Some(9), Some(1250)));
    assert_eq!((m.b.lost, m.b.jitter_us), (None, None));
    assert_eq!((m.a.rtp_source_rejected, m.b.rtp_source_rejected), (11, 0));
}

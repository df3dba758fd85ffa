//! OPTIONS answers for a load balancer in front of a farm (Kamailio's dispatcher probes
//! with OPTIONS and takes a destination out of rotation on anything but a 2xx): 200 while
//! new calls are welcome, 503 + Retry-After from `overload_calls` live calls on and while
//! draining, the load in `X-Portcullis-Load` on every answer.

#[path = "b2bua_harness.rs"]
mod harness;

use std::sync::Arc;

use harness::*;
use portcullis_engine::b2bua::{Availability, B2bua, EndReason, Party, LOAD_HEADER};
use portcullis_engine::config::ConfigError;
use portcullis_engine::entropy::SeededEntropy;
use portcullis_engine::transaction::{Method, SipMsg};

/// Trunk A sends an out-of-dialog OPTIONS (`n` makes its Call-ID unique); returns the
/// answer.
fn options(h: &mut H, n: u32) -> SipMsg {
    let now = h.now;
    let via = h.a.via();
    let mut req = SipMsg::request(Method::Options, format!("sip:{SBC}"));
    req.push_header("Via", via.to_string());
    req.push_header("From", format!("<sip:ping@10.0.0.2>;tag=p{n}"));
    req.push_header("To", format!("<sip:{SBC}>"));
    req.push_header("Call-ID", format!("probe-{n}"));
    req.push_header("CSeq", format!("{n} OPTIONS"));
    req.push_header("Max-Forwards", "70");
    let before = h.a.responses().len();
    h.a.send(now, req);
    h.pump();
    let rs = h.a.responses();
    assert_eq!(rs.len(), before + 1, "one answer to the OPTIONS");
    rs.last().cloned().expect("an answer")
}

fn load(r: &SipMsg) -> String {
    r.header(LOAD_HEADER)
        .unwrap_or_else(|| panic!("no {LOAD_HEADER} in {r:?}"))
        .to_owned()
}

#[test]
fn open_engine_answers_200_with_its_load() {
    let mut h = H::new();
    let r = options(&mut h, 1);
    assert_eq!(r.status(), Some(200));
    assert_eq!(load(&r), "calls=0");
    assert!(r.header("Retry-After").is_none());
    assert!(r.header("Allow").unwrap().contains("INVITE"));
    // A call in setup counts.
    h.start("100", Some(&sdp("192.168.1.10", 10_000, "")));
    let r = options(&mut h, 2);
    assert_eq!((r.status(), load(&r).as_str()), (Some(200), "calls=1"));
    assert_eq!(h.sbc.availability(), Availability::Open);
}

#[test]
fn overload_answers_503_but_still_admits_calls_up_to_max_calls() {
    let mut h = H::with(|c| {
        c.policy.max_calls = Some(3);
        c.policy.overload_calls = Some(2);
    });
    let r = options(&mut h, 1);
    assert_eq!(r.status(), Some(200));
    assert_eq!(load(&r), "calls=0;max=3;overload=2");
    let (_, _, btx1, binv1) = h.start("101", Some(&sdp("192.168.1.10", 10_000, "")));
    assert_eq!(options(&mut h, 2).status(), Some(200), "one call: under");
    let (_, _, btx2, binv2) = h.start("102", Some(&sdp("192.168.1.10", 10_002, "")));
    // Two live calls: at the threshold.
    let r = options(&mut h, 3);
    assert_eq!(r.status(), Some(503));
    assert_eq!(
        r.as_owned().reason(),
        Some("Service Unavailable (overload)")
    );
    assert!(r.header("Retry-After").is_some(), "503 carries Retry-After");
    assert_eq!(load(&r), "calls=2;max=3;overload=2");
    assert_eq!(h.sbc.availability(), Availability::Overloaded);
    // A call already on its way (sent before the balancer's next probe) is admitted ...
    h.start("103", Some(&sdp("192.168.1.10", 10_004, "")));
    assert_eq!(h.sbc.active_calls(), 3);
    assert_eq!(h.b1.requests("INVITE").len(), 3);
    // ... up to max_calls.
    h.invite_from(A, "104", Some(&sdp("192.168.1.10", 10_006, "")));
    assert_eq!(h.sbc.active_calls(), 3);
    assert_eq!(h.sbc.stats().call_limit_rejects, 1);
    assert_eq!(load(&options(&mut h, 4)), "calls=3;max=3;overload=2");
    // Calls end: under the threshold again, 200.
    h.reply(B1, btx1, &binv1, 486, "busy1", None);
    h.reply(B1, btx2, &binv2, 486, "busy2", None);
    let r = options(&mut h, 5);
    assert_eq!(r.status(), Some(200));
    assert_eq!(load(&r), "calls=1;max=3;overload=2");
    assert_eq!(h.sbc.stats().options_overloaded, 2);
    assert_eq!(h.sbc.stats().options_draining, 0);
}

#[test]
fn draining_answers_503_to_options_and_invites_while_calls_finish() {
    let mut h = H::with(|c| c.policy.overload_calls = Some(10));
    let (mut da, _db, _atx, _ainv) = h.answered();
    h.sbc.start_drain();
    assert_eq!(h.sbc.availability(), Availability::Draining);
    let r = options(&mut h, 1);
    assert_eq!(r.status(), Some(503));
    assert_eq!(
        r.as_owned().reason(),
        Some("Service Unavailable (draining)")
    );
    assert!(r.header("Retry-After").is_some());
    assert_eq!(load(&r), "calls=1;overload=10");
    // A new INVITE is refused, the answered call goes on and ends normally.
    h.invite_from(A, "200", Some(&sdp("192.168.1.10", 10_010, "")));
    assert_eq!(h.sbc.stats().drain_rejects, 1);
    assert_eq!(h.sbc.active_calls(), 1);
    h.in_dialog(A, &mut da, Method::Bye, None);
    let (btx, bye) = h.b1.last_request("BYE");
    h.reply(B1, btx, &bye, 200, "x", None);
    assert_eq!(h.sbc.active_calls(), 0);
    let cdrs = h.cdrs();
    assert_eq!(cdrs.len(), 1);
    assert_eq!(
        cdrs[0].end_reason,
        EndReason::NormalClearing { by: Party::Caller },
        "{cdrs:?}"
    );
    // Still draining with no call left: 503, never 200 again.
    let r = options(&mut h, 2);
    assert_eq!(
        (r.status(), load(&r).as_str()),
        (Some(503), "calls=0;overload=10")
    );
    assert_eq!(h.sbc.stats().options_draining, 2);
}

#[test]
fn overload_calls_must_be_positive_and_at_most_max_calls() {
    let make = |max: Option<u32>, overload: Option<u32>| {
        let mut c = config();
        c.policy.max_calls = max;
        c.policy.overload_calls = overload;
        B2bua::new(Arc::new(c), FakeMedia::default(), SeededEntropy::new(1)).map(|_| ())
    };
    assert!(matches!(make(None, Some(0)), Err(ConfigError::Limit(_))));
    assert!(matches!(
        make(Some(10), Some(11)),
        Err(ConfigError::Limit(_))
    ));
    assert!(make(Some(10), Some(10)).is_ok());
    assert!(make(None, Some(1)).is_ok());
    assert!(make(Some(10), None).is_ok());
}

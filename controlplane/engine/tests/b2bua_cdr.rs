//! B2BUA and the CDR driver: back-pressure from a slow CDR writer, the record
//! journalled at answer, wall-clock offsets refreshed per input.

#[path = "b2bua_harness.rs"]
mod harness;

use harness::*;
use portcullis_engine::b2bua::{CallEvent, EndReason, Party};
use portcullis_engine::transaction::Method;

#[test]
fn cdr_backpressure_refuses_new_calls_keeps_existing() {
    let mut h = H::new();
    let (mut da, _db, _atx, _ainv) = h.answered();
    assert!(!h.sbc.cdr_backpressure());
    h.sbc.set_cdr_backpressure(true);
    assert!(h.sbc.cdr_backpressure());
    let invites_before = h.b1.requests("INVITE").len();
    h.invite_from(A, "200", Some(&sdp("192.168.1.10", 10_010, "")));
    let r = h.a.responses().into_iter().last().unwrap();
    assert_eq!(r.status(), Some(503));
    assert!(r.header("Retry-After").is_some(), "503 without Retry-After");
    assert_eq!(h.b1.requests("INVITE").len(), invites_before, "B was tried");
    assert_eq!(h.sbc.stats().cdr_rejects, 1);
    assert_eq!(h.sbc.stats().drain_rejects, 0);
    assert!(h
        .events
        .iter()
        .any(|e| matches!(e, CallEvent::Rejected { status: 503, .. })));
    // The call in progress runs on and still ends with its record.
    assert_eq!(h.sbc.active_calls(), 1);
    h.in_dialog(A, &mut da, Method::Bye, None);
    let (btx, bye) = h.b1.last_request("BYE");
    h.reply(B1, btx, &bye, 200, "", None);
    let cdrs = h.cdrs();
    assert_eq!(cdrs.len(), 1);
    assert_eq!(
        cdrs[0].end_reason,
        EndReason::NormalClearing { by: Party::Caller }
    );
    // Writer caught up: new calls are routed again.
    h.sbc.set_cdr_backpressure(false);
    h.invite_from(A, "300", Some(&sdp("192.168.1.10", 10_020, "")));
    assert_eq!(h.b1.requests("INVITE").len(), invites_before + 1);
    assert_eq!(h.sbc.stats().cdr_rejects, 1);
}

#[test]
fn open_record_exists_from_answer_to_end() {
    let mut h = H::new();
    let a_sdp = sdp("192.168.1.10", 10_000, "");
    let (atx, ainv, btx, binv) = h.start("100", Some(&a_sdp));
    let call = h.sbc.calls()[0].call;
    let now = h.now;
    assert_eq!(
        h.sbc.open_record(now, call),
        None,
        "ringing: nothing to journal"
    );
    h.b1_rings_and_answers(btx, &binv, "btag");
    let resp = h.a.first_response(200).unwrap();
    let mut da = h.a.ack(atx, &ainv, &resp, None);
    h.pump();
    let open = h.sbc.open_record(h.now, call).expect("answered call");
    assert_eq!(open.call_id, call);
    assert_eq!(open.end_reason, EndReason::Restart);
    assert_eq!(open.final_status, Some(200));
    assert_eq!(open.media, None);
    assert!(open.answer_at_ms.is_some());
    assert!(open.b_leg.is_some());
    h.in_dialog(A, &mut da, Method::Bye, None);
    let (btx, bye) = h.b1.last_request("BYE");
    h.reply(B1, btx, &bye, 200, "", None);
    assert_eq!(h.sbc.open_record(h.now, call), None, "ended");
    // The journalled record names the same call as the final one.
    let done = &h.cdrs()[0];
    assert_eq!(done.a_leg, open.a_leg);
    assert_eq!(done.b_leg, open.b_leg);
    assert_eq!(done.calling, open.calling);
    assert_eq!(done.called, open.called);
    assert_eq!(done.setup_at_ms, open.setup_at_ms);
    assert_eq!(done.answer_at_ms, open.answer_at_ms);
}

#[test]
fn record_times_follow_the_offset_in_force_when_it_is_made() {
    const HOUR_MS: u64 = 3_600_000;
    let mut h = H::new();
    let base = 1_700_000_000_000;
    h.sbc.set_epoch_offset_ms(base);
    let (mut da, _db, _atx, _ainv) = h.answered();
    let call = h.sbc.calls()[0].call;
    let setup = h.sbc.calls()[0].setup_at.as_millis();
    h.advance(std::time::Duration::from_secs(5));
    // The wall clock steps forward an hour (NTP sync) while the call is up.
    h.sbc.set_epoch_offset_ms(base + HOUR_MS);
    let open = h.sbc.open_record(h.now, call).unwrap();
    assert_eq!(open.end_at_ms, h.now.as_millis() + base + HOUR_MS);
    h.in_dialog(A, &mut da, Method::Bye, None);
    let (btx, bye) = h.b1.last_request("BYE");
    h.reply(B1, btx, &bye, 200, "", None);
    let cdr = &h.cdrs()[0];
    assert_eq!(cdr.end_at_ms, h.now.as_millis() + base + HOUR_MS);
    assert_eq!(cdr.setup_at_ms, setup + base + HOUR_MS);
    // Durations come from the monotonic `now`, untouched by the step.
    assert_eq!(cdr.end_at_ms - cdr.setup_at_ms, h.now.as_millis() - setup);
}

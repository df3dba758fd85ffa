//! Active/standby pair, engine side: an answered call exported mid-dialog (through
//! its JSON form) and restored into a fresh B2BUA answers the next BYE, re-INVITE
//! or session refresh from either side as if nothing happened, with its timers
//! re-armed and one CDR marked with the takeover.

#[path = "b2bua_harness.rs"]
mod harness;

use std::sync::Arc;
use std::time::Duration;

use harness::*;
use portcullis_engine::b2bua::B2bua;
use portcullis_engine::cdr::{EndReason, Party};
use portcullis_engine::entropy::SeededEntropy;
use portcullis_engine::ha::{CallSnapshot, RestoreError, TimerSnapshot, CSEQ_JUMP};
use portcullis_engine::transaction::Method;

/// The active node dies: `h` goes on with a fresh B2BUA (another random stream, the
/// same configuration) holding only the restored call. Returns the snapshot.
fn take_over(h: &mut H) -> CallSnapshot {
    let call = h.sbc.poll_ha_dirty().expect("the answered call is dirty");
    let snap = h.sbc.export_call(call).expect("answered call exported");
    let json = serde_json::to_string(&snap).unwrap();
    let back: CallSnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, snap, "the JSON form carries everything");
    let cfg = Arc::clone(h.sbc.config());
    h.sbc = B2bua::new(cfg, FakeMedia::default(), SeededEntropy::new(99)).unwrap();
    h.sbc.set_ha(true);
    h.sbc.restore_call(h.now, &back).expect("restored");
    assert_eq!(h.sbc.active_calls(), 1);
    back
}

fn answered_with_ha() -> (
    H,
    portcullis_engine::dialog::Dialog,
    portcullis_engine::dialog::Dialog,
) {
    let mut h = H::new();
    h.sbc.set_ha(true);
    let (da, db, _, _) = h.answered();
    (h, da, db)
}

#[test]
fn bye_from_caller_after_takeover() {
    let (mut h, mut da, _db) = answered_with_ha();
    let b_cseq_before = h.b1.acks().last().unwrap().cseq().unwrap().seq;
    let snap = take_over(&mut h);
    // The pair is re-created on the ports the SDP advertised, with the same peers.
    let m = snap.media.as_ref().unwrap();
    assert_eq!(h.sbc.media().restored.len(), 1);
    assert_eq!(h.sbc.media().restored[0].1, m.streams[0].ports);
    let (_, pa, pb) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(pa.peer_rtp, Some(sa("192.168.1.10:10000")));
    assert_eq!(pb.peer_rtp, Some(sa("172.16.0.20:20000")));

    h.in_dialog(A, &mut da, Method::Bye, None);
    assert_eq!(
        h.a.statuses().last(),
        Some(&200),
        "BYE answered by the new node"
    );
    let (btx, bye) = h.b1.last_request("BYE");
    assert_eq!(bye.call_id().unwrap(), snap.b.call_id, "B's own Call-ID");
    assert_eq!(bye.from_tag().unwrap(), Some(snap.b.tag.as_str()));
    assert_eq!(bye.to_tag().unwrap(), Some("btag"));
    assert!(bye.cseq().unwrap().seq > b_cseq_before + CSEQ_JUMP - 1);
    h.reply(B1, btx, &bye, 200, "", None);
    assert_eq!(h.sbc.active_calls(), 0);
    let cdrs = h.cdrs();
    assert_eq!(cdrs.len(), 1, "one CDR for the call");
    assert_eq!(
        cdrs[0].end_reason,
        EndReason::NormalClearing { by: Party::Caller }
    );
    let t = cdrs[0].takeover.as_ref().expect("marked with the takeover");
    assert_eq!(t.origin_call_id, snap.call_id);
    assert_eq!(t.count, 1);
    assert_eq!(cdrs[0].answer_at_ms, Some(snap.answer_at_ms));
    assert!(cdrs[0].to_json_line().contains("\"takeover\":{"));
    assert_eq!(h.sbc.media().live.len(), 0, "media released");
}

#[test]
fn reinvite_and_bye_from_callee_after_takeover() {
    let (mut h, _da, mut db) = answered_with_ha();
    let a_origin = {
        let r200 = h.a.first_response(200).unwrap();
        let body = String::from_utf8(r200.body().to_vec()).unwrap();
        body.lines()
            .find(|l| l.starts_with("o="))
            .unwrap()
            .to_owned()
    };
    take_over(&mut h);
    // B puts the call on hold: relayed to A with our SDP, same origin, next version.
    let hold = sdp("172.16.0.20", 20_000, "a=sendonly\r\n");
    let (rtx, _) = h.in_dialog(B1, &mut db, Method::Invite, Some(&hold));
    let (itx, reinv) = h.a.last_request("INVITE");
    let body = String::from_utf8(reinv.body().to_vec()).unwrap();
    let o = body.lines().find(|l| l.starts_with("o=")).unwrap();
    let (keep, ver) = o.rsplit_once(" IN ").unwrap().0.rsplit_once(' ').unwrap();
    let (keep0, ver0) = a_origin
        .rsplit_once(" IN ")
        .unwrap()
        .0
        .rsplit_once(' ')
        .unwrap();
    assert_eq!(keep, keep0, "same o= session id toward A (RFC 3264 §8)");
    assert_eq!(
        ver.parse::<u64>().unwrap(),
        ver0.parse::<u64>().unwrap() + 1
    );
    assert!(body.contains("a=sendonly"), "{body}");
    let answer = sdp("192.168.1.10", 10_000, "a=recvonly\r\n");
    h.reply(A, itx, &reinv, 200, "", Some(&answer));
    let r =
        h.b1.last_response(200)
            .expect("B got the 200 to its re-INVITE");
    assert!(String::from_utf8_lossy(r.body()).contains("a=recvonly"));
    h.b1.ack_reinvite(rtx, &db, &r, None);
    h.pump();
    assert_eq!(h.a.acks().len(), 1, "A's 200 to the re-INVITE was ACKed");
    // Then B hangs up.
    h.in_dialog(B1, &mut db, Method::Bye, None);
    assert_eq!(h.b1.statuses().last(), Some(&200));
    let (atx, bye) = h.a.last_request("BYE");
    h.reply(A, atx, &bye, 200, "", None);
    let cdrs = h.cdrs();
    assert_eq!(cdrs.len(), 1);
    assert_eq!(
        cdrs[0].end_reason,
        EndReason::NormalClearing { by: Party::Callee }
    );
    assert!(cdrs[0].takeover.is_some());
}

#[test]
fn session_refresh_rearmed_after_takeover() {
    let (mut h, _da, _db) = answered_with_ha();
    h.advance(Duration::from_secs(100));
    let snap = take_over(&mut h);
    let refresh_at = snap
        .timers
        .iter()
        .find_map(|t| match t {
            TimerSnapshot::RefreshB { at_ms } => Some(*at_ms),
            _ => None,
        })
        .expect("B-leg refresh stored");
    assert!(h.b1.requests("UPDATE").is_empty());
    // Just before the stored deadline nothing; after it the new node refreshes B.
    let now = h.now.as_millis();
    h.advance(Duration::from_millis(refresh_at - now - 1_000));
    assert!(
        h.b1.requests("UPDATE").is_empty(),
        "not before the deadline"
    );
    h.advance(Duration::from_secs(2));
    let (utx, upd) = h.b1.last_request("UPDATE");
    assert_eq!(upd.call_id().unwrap(), snap.b.call_id);
    h.reply(B1, utx, &upd, 200, "btag", None);
    assert_eq!(h.sbc.active_calls(), 1, "refreshed call lives on");
}

#[test]
fn restore_refuses_what_it_cannot_carry() {
    let (mut h, _da, _db) = answered_with_ha();
    let call = h.sbc.poll_ha_dirty().unwrap();
    let snap = h.sbc.export_call(call).unwrap();
    // Already live here (the same key).
    assert!(matches!(
        h.sbc.restore_call(h.now, &snap),
        Err(RestoreError::Duplicate(_))
    ));
    let cfg = Arc::clone(h.sbc.config());
    let mut fresh = B2bua::new(cfg, FakeMedia::default(), SeededEntropy::new(5)).unwrap();
    let mut bad = snap.clone();
    bad.format += 1;
    assert!(matches!(
        fresh.restore_call(h.now, &bad),
        Err(RestoreError::Format(_))
    ));
    let mut bad = snap.clone();
    bad.b.trunk = "nowhere".into();
    assert!(matches!(
        fresh.restore_call(h.now, &bad),
        Err(RestoreError::UnknownTrunk(_))
    ));
    let mut bad = snap.clone();
    let m = bad.media.as_mut().unwrap();
    let extra = m.streams[0].clone();
    m.streams.push(extra);
    assert!(matches!(
        fresh.restore_call(h.now, &bad),
        Err(RestoreError::Streams(2))
    ));
    assert_eq!(fresh.active_calls(), 0, "nothing half-restored");
    assert!(fresh.media().live.is_empty());
    // A call not answered is never exported.
    let mut h2 = H::new();
    h2.sbc.set_ha(true);
    h2.start("100", Some(&sdp("192.168.1.10", 10_000, "")));
    assert!(h2.sbc.poll_ha_dirty().is_none());
    assert!(h2.sbc.export_call(1).is_none());
}

#[test]
fn snapshot_debug_never_prints_keys() {
    let mut h = H::with(|c| {
        c.trunks[0].media = portcullis_engine::config::MediaMode::Srtp;
    });
    h.sbc.set_ha(true);
    let key = "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
    let offer = sdp(
        "192.168.1.10",
        10_000,
        &format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 {key}\r\n"),
    )
    .replace("RTP/AVP", "RTP/SAVP");
    let (atx, ainv, btx, binv) = h.start("100", Some(&offer));
    h.b1_rings_and_answers(btx, &binv, "btag");
    let r = h.a.first_response(200).unwrap();
    h.a.ack(atx, &ainv, &r, None);
    h.pump();
    let call = h.sbc.poll_ha_dirty().unwrap();
    let snap = h.sbc.export_call(call).unwrap();
    let leg = &snap.media.as_ref().unwrap().streams[0].legs[0];
    assert!(leg.srtp_in.is_some() && leg.srtp_out.is_some());
    let dbg = format!("{snap:?}");
    assert!(!dbg.contains("WVNfX19zZW1jdGwg"), "{dbg}");
    assert!(!dbg.contains(&leg.srtp_out.as_ref().unwrap().key), "{dbg}");
}

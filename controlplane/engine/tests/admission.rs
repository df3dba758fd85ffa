//! Admission under flood: unknown sources are answered statelessly and keep no
//! state, the transaction table's bounds (total, per source) and the global call
//! limit answer `503` + `Retry-After`, requests for dialogs we do not hold get
//! `481`, and every refusal is counted by status and reason.

#[path = "b2bua_harness.rs"]
mod harness;

use std::sync::Arc;
use std::time::Duration;

use harness::*;
use portcullis_engine::b2bua::{B2bua, CallEvent, Transmit};
use portcullis_engine::config::UnknownSource;
use portcullis_engine::transaction::{parse_message, Method, SipMsg};

/// A request from `src` as raw bytes (`to_tag`: in-dialog).
fn raw(method: &str, src: &str, branch: &str, call_id: &str, to_tag: Option<&str>) -> Vec<u8> {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let cseq = format!("1 {method}");
    format!(
        "{method} sip:100@{SBC} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {src};branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:scanner@{src}>;tag=f{branch}\r\n\
         To: <sip:100@{SBC}>{to_tag}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq}\r\n\
         Contact: <sip:scanner@{src}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn drain(sbc: &mut B2bua<FakeMedia>) -> Vec<Transmit> {
    std::iter::from_fn(|| sbc.poll_transmit()).collect()
}

fn status(t: &Transmit) -> Option<u16> {
    parse_message(&t.bytes).ok().and_then(|m| m.status())
}

fn parsed(t: &Transmit) -> SipMsg {
    parse_message(&t.bytes).unwrap()
}

#[test]
fn unknown_invite_gets_one_stateless_403_and_keeps_nothing() {
    let mut h = H::new();
    let src = sa("192.0.2.50:5062");
    let invite = raw("INVITE", "192.0.2.50:5062", "u1", "scan-1", None);
    h.sbc.handle_datagram(h.now, udp(src), &invite);
    let out = drain(&mut h.sbc);
    assert_eq!(out.len(), 1, "one packet out for one in (no 100 Trying)");
    assert_eq!(status(&out[0]), Some(403));
    assert_eq!(out[0].tx, None, "stateless");
    assert_eq!(out[0].dest.addr, src);
    let r = parsed(&out[0]);
    assert!(r.to_tag().unwrap().is_some(), "§8.2.6.2: a To tag");
    assert!(r.header("Via").unwrap().contains("branch=z9hG4bKu1"));
    assert_eq!(r.call_id().unwrap(), "scan-1");
    assert_eq!(h.sbc.transactions(), 0, "no transaction kept");
    // Its retransmission gets one more 403, never a timer-driven resend.
    h.sbc.handle_datagram(h.now, udp(src), &invite);
    assert_eq!(drain(&mut h.sbc).len(), 1);
    // Its ACK is absorbed; Timer G/H never fire for it.
    let ack = raw("ACK", "192.0.2.50:5062", "u1", "scan-1", Some("x"));
    h.sbc.handle_datagram(h.now, udp(src), &ack);
    assert!(drain(&mut h.sbc).is_empty(), "no response to an ACK");
    h.advance(Duration::from_secs(40));
    assert!(h.sbc.poll_transmit().is_none());
    assert_eq!(h.sbc.transactions(), 0);
    let st = h.sbc.stats();
    assert_eq!(st.rejected.get(&(403, "Forbidden")), Some(&2));
    assert_eq!(st.absorbed_acks, 1);
    assert_eq!(h.sbc.tx_stats().stateless_responses, 2);
    let rejected = h
        .events
        .iter()
        .chain(
            std::iter::from_fn(|| h.sbc.poll_event())
                .collect::<Vec<_>>()
                .iter(),
        )
        .filter(|e| matches!(e, CallEvent::Rejected { status: 403, .. }))
        .count();
    assert_eq!(rejected, 2);
}

#[test]
fn unknown_source_in_drop_mode_gets_nothing() {
    let mut h = H::with(|c| c.policy.unknown_source = UnknownSource::Drop);
    let src = sa("192.0.2.51:5060");
    h.sbc.handle_datagram(
        h.now,
        udp(src),
        &raw("INVITE", "192.0.2.51:5060", "d1", "d-1", None),
    );
    assert!(drain(&mut h.sbc).is_empty());
    assert_eq!(h.sbc.transactions(), 0);
}

/// 3,600 unknown INVITEs a second from sources that each stay under the ban
/// threshold, with a transaction table of 200: every trunk call still gets
/// through (before, the 403 transactions filled the table and trunk calls got 503).
#[test]
fn unknown_flood_below_the_ban_threshold_never_blocks_trunk_calls() {
    let mut h = H::with(|c| {
        c.policy.max_transactions = 200;
        c.policy.rate_limit_per_source = Some(50);
    });
    let mut sent = 0u32;
    for call in 0..20u32 {
        for _ in 0..250 {
            sent += 1;
            let src = format!("198.18.{}.{}:5060", sent / 250, sent % 250);
            let bytes = raw(
                "INVITE",
                &src,
                &format!("f{sent}"),
                &format!("flood-{sent}"),
                None,
            );
            h.sbc.handle_datagram(h.now, udp(sa(&src)), &bytes);
        }
        // 250 INVITEs every 70 ms ≈ 3,600/s.
        h.advance(Duration::from_millis(70));
        let now = h.now;
        h.a.invite(
            now,
            &format!("2{call:03}"),
            Some(&sdp("192.168.1.10", 10_000, "")),
        );
        h.pump();
        assert!(h.sbc.transactions() <= 200, "{}", h.sbc.transactions());
    }
    assert_eq!(sent, 5_000);
    assert_eq!(h.b1.requests("INVITE").len(), 20, "every trunk call routed");
    assert!(!h.a.statuses().contains(&503), "{:?}", h.a.statuses());
    assert_eq!(h.sbc.tx_stats().overload_rejects, 0);
    assert_eq!(
        h.sbc.stats().rejected.get(&(403, "Forbidden")),
        Some(&5_000)
    );
    assert_eq!(h.sbc.bans(), 0, "each source stayed under the threshold");
}

#[test]
fn per_source_transaction_cap_applies_to_trunks_with_503_retry_after() {
    let mut h = H::with(|c| c.policy.max_transactions_per_source = 3);
    for i in 0..4 {
        h.invite_from(A, &format!("30{i}"), Some(&sdp("192.168.1.10", 10_000, "")));
    }
    assert_eq!(h.b1.requests("INVITE").len(), 3);
    let busy = h.a.last_response(503).expect("fourth INVITE refused");
    assert_eq!(busy.header("Retry-After"), Some("5"));
    assert_eq!(h.sbc.tx_stats().source_limit_rejects, 1);
    assert_eq!(h.sbc.tx_stats().overload_rejects, 0);
    // Another trunk is not held back by A's share.
    h.invite_from(B2, "400", Some(&sdp("192.168.2.10", 12_000, "")));
    assert_eq!(h.a.requests("INVITE").len(), 1);
}

#[test]
fn global_max_calls_counts_every_trunk_and_answers_503_retry_after() {
    let mut h = H::with(|c| c.policy.max_calls = Some(2));
    let (_atx, _ainv, btx, binv) = h.start("500", Some(&sdp("192.168.1.10", 10_000, "")));
    // A call from the other direction takes the second slot.
    h.invite_from(B2, "501", Some(&sdp("192.168.2.10", 12_000, "")));
    assert_eq!(h.sbc.active_calls(), 2);
    h.invite_from(A, "502", Some(&sdp("192.168.1.10", 10_002, "")));
    let busy = h.a.last_response(503).expect("third call refused");
    assert!(busy.header("Retry-After").is_some());
    let st = h.sbc.stats();
    assert_eq!(st.call_limit_rejects, 1);
    assert_eq!(
        st.rejected.get(&(503, "Service Unavailable (call limit)")),
        Some(&1)
    );
    assert_eq!(h.sbc.active_calls(), 2);
    // Both calls end (busy): their slots are free again.
    h.reply(B1, btx, &binv, 486, "busy", None);
    let (tx2, inv2) = h.a.last_request("INVITE");
    h.reply(A, tx2, &inv2, 486, "busy2", None);
    assert_eq!(h.sbc.active_calls(), 0);
    h.invite_from(A, "503", Some(&sdp("192.168.1.10", 10_004, "")));
    assert_eq!(h.sbc.active_calls(), 1);
    assert_eq!(h.sbc.stats().call_limit_rejects, 1);
}

#[test]
fn bye_for_a_dialog_we_do_not_hold_gets_481_and_its_ack_nothing() {
    // A restart: a fresh engine gets the BYE of a dialog its predecessor held.
    let mut h = H::new();
    let src = sa(A);
    h.sbc.handle_datagram(
        h.now,
        udp(src),
        &raw("BYE", A, "b1", "old-call", Some("gone")),
    );
    let out = drain(&mut h.sbc);
    assert_eq!(out.iter().filter_map(status).collect::<Vec<_>>(), vec![481]);
    assert_eq!(
        h.sbc
            .stats()
            .rejected
            .get(&(481, "Call/Transaction Does Not Exist")),
        Some(&1)
    );
    // A stale re-INVITE too (its final response is retransmitted until ACKed).
    h.sbc.handle_datagram(
        h.now,
        udp(src),
        &raw("INVITE", A, "b2", "old-call", Some("gone")),
    );
    let statuses: Vec<u16> = drain(&mut h.sbc).iter().filter_map(status).collect();
    assert!(statuses.contains(&481), "{statuses:?}");
    // An ACK for an unknown dialog is absorbed: no response to an ACK, ever.
    h.sbc.handle_datagram(
        h.now,
        udp(src),
        &raw("ACK", A, "b3", "other-call", Some("gone")),
    );
    assert!(drain(&mut h.sbc).is_empty());
    h.advance(Duration::from_secs(1));
}

#[test]
fn dialog_of_a_source_no_longer_claimed_still_works() {
    let mut h = H::new();
    let (mut da, _db, _atx, _ainv) = h.answered();
    // Reload: trunk "a" moves elsewhere, so A's address is now an unknown source.
    let mut cfg = (**h.sbc.config()).clone();
    cfg.trunks[0].address = sa("10.0.0.9:5060");
    h.sbc.set_config(Arc::new(cfg)).unwrap();
    h.in_dialog(A, &mut da, Method::Bye, None);
    assert_eq!(h.a.statuses().last(), Some(&200), "{:?}", h.a.statuses());
    assert_eq!(h.sbc.active_calls(), 0);
    // A new INVITE from it is refused statelessly.
    let now = h.now;
    h.a.invite(now, "600", None);
    h.pump();
    assert_eq!(h.a.statuses().last(), Some(&403));
}

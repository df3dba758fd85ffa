//! Codec policy per trunk: allow/order and deny lists, telephone-event added,
//! payload numbers kept on each leg, and `488` with `Warning: 305` when the
//! policies leave no codec (no transcoding).

#[path = "b2bua_harness.rs"]
mod harness;

use harness::*;
use portcullis_engine::b2bua::EndReason;
use portcullis_engine::config::EngineConfig;
use portcullis_engine::transaction::{Method, SipMsg};
use portcullis_engine::trunk_policy::{CodecName, CodecPolicy, TelephoneEvent};
use portcullis_sip::sdp::SessionDescription;

fn codecs(allow: &[&str], deny: &[&str], te: TelephoneEvent) -> CodecPolicy {
    CodecPolicy {
        allow: allow.iter().map(|c| CodecName::parse(c).unwrap()).collect(),
        deny: deny.iter().map(|c| CodecName::parse(c).unwrap()).collect(),
        telephone_event: te,
    }
}

/// Trunk `i` (0 = a, 1 = b1, 2 = b2) gets `p`.
fn with_codecs(cfg: &mut EngineConfig, i: usize, p: CodecPolicy) {
    cfg.trunks[i].policy.codecs = p;
}

/// An offer from A with `formats` and their rtpmaps.
fn offer(formats: &str, maps: &str) -> String {
    format!(
        "v=0\r\no=peer 77 1 IN IP4 192.168.1.10\r\ns=call\r\nc=IN IP4 192.168.1.10\r\nt=0 0\r\nm=audio 10000 RTP/AVP {formats}\r\n{maps}"
    )
}

const MAPS: &str = "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\na=rtpmap:101 telephone-event/8000\r\n";

fn formats(m: &SipMsg) -> Vec<String> {
    SessionDescription::parse(m.body()).unwrap().media[0]
        .formats
        .clone()
}

#[test]
fn allow_list_filters_and_orders_toward_the_trunk() {
    let mut h = H::with(|c| {
        with_codecs(
            c,
            1,
            codecs(&["opus", "PCMA", "G722"], &[], TelephoneEvent::Keep),
        );
    });
    let (_, _, _, binv) = h.start("100", Some(&offer("0 8 9 96 101", MAPS)));
    assert_eq!(formats(&binv), ["96", "8", "9", "101"]);
    let text = String::from_utf8_lossy(binv.body()).into_owned();
    assert!(!text.contains("PCMU"), "{text}");
    assert!(text.contains("a=fmtp:96 useinbandfec=1"), "{text}");
}

#[test]
fn deny_list_of_either_trunk_removes_a_codec() {
    // The caller's trunk denies G722, the callee's PCMU.
    let mut h = H::with(|c| {
        with_codecs(c, 0, codecs(&[], &["G722"], TelephoneEvent::Keep));
        with_codecs(c, 1, codecs(&[], &["pcmu"], TelephoneEvent::Keep));
    });
    let (_, _, _, binv) = h.start("100", Some(&offer("0 8 9 101", MAPS)));
    assert_eq!(formats(&binv), ["8", "101"]);
}

#[test]
fn telephone_event_added_toward_b_and_kept_out_of_the_callers_answer() {
    let mut h = H::with(|c| with_codecs(c, 1, codecs(&[], &[], TelephoneEvent::Add)));
    let (_, _, btx, binv) = h.start("100", Some(&offer("0 8", MAPS)));
    assert_eq!(formats(&binv), ["0", "8", "101"]);
    assert!(String::from_utf8_lossy(binv.body()).contains("a=rtpmap:101 telephone-event/8000"));
    // B answers with telephone-event; A never offered it, so its answer lacks it.
    let answer = sdp("172.16.0.20", 20_000, "");
    h.reply(B1, btx, &binv, 200, "btag", Some(&answer));
    let ok = h.a.first_response(200).unwrap();
    assert_eq!(formats(&ok), ["0", "8"]);
}

#[test]
fn payload_numbers_cross_unchanged_both_ways() {
    let mut h = H::with(|c| {
        with_codecs(c, 1, codecs(&["opus", "PCMA"], &[], TelephoneEvent::Keep));
    });
    let (_, _, btx, binv) = h.start("100", Some(&offer("0 8 96 101", MAPS)));
    assert_eq!(formats(&binv), ["96", "8", "101"]);
    let answer = offer("96 101", MAPS).replace("192.168.1.10", "172.16.0.20");
    h.reply(B1, btx, &binv, 200, "btag", Some(&answer));
    let ok = h.a.first_response(200).unwrap();
    assert_eq!(
        formats(&ok),
        ["96", "101"],
        "the offer's numbering on A's leg"
    );
    assert!(String::from_utf8_lossy(ok.body()).contains("a=rtpmap:96 opus/48000/2"));
}

#[test]
fn no_common_codec_is_refused_488_with_the_reason() {
    let mut h = H::with(|c| {
        for i in [1, 2] {
            with_codecs(c, i, codecs(&["G722", "opus"], &[], TelephoneEvent::Keep));
        }
    });
    h.invite_from(A, "100", Some(&offer("0 101", MAPS)));
    assert!(h.b1.requests("INVITE").is_empty() && h.b2.requests("INVITE").is_empty());
    let r = h.a.last_response(488).expect("488");
    assert_eq!(
        r.header("Warning"),
        Some("305 sbc1 \"No common codec: offered PCMU, allowed G722, opus\"")
    );
    let cdr = &h.cdrs()[0];
    assert_eq!(cdr.end_reason, EndReason::Rejected { status: 488 });
    assert_eq!(h.sbc.stats().codec_rejects, 1);
    assert!(h.sbc.media().live.is_empty(), "media released");
    assert_eq!(h.sbc.active_calls(), 0);
}

#[test]
fn a_target_whose_policy_takes_nothing_is_skipped() {
    let mut h = H::with(|c| with_codecs(c, 1, codecs(&["G722"], &[], TelephoneEvent::Keep)));
    h.invite_from(A, "100", Some(&offer("0 8 101", MAPS)));
    assert!(h.b1.requests("INVITE").is_empty());
    let (_, inv) = h.b2.last_request("INVITE");
    assert_eq!(formats(&inv), ["0", "8", "101"]);
    assert_eq!(h.sbc.stats().codec_rejects, 0);
}

#[test]
fn the_callers_own_trunk_policy_refuses_at_once() {
    let mut h = H::with(|c| with_codecs(c, 0, codecs(&["G722"], &[], TelephoneEvent::Keep)));
    h.invite_from(A, "100", Some(&offer("0 8 101", MAPS)));
    let r = h.a.last_response(488).expect("488");
    assert!(r
        .header("Warning")
        .unwrap()
        .contains("offered PCMU, PCMA, allowed G722"));
    assert!(h.b1.requests("INVITE").is_empty());
}

#[test]
fn in_dialog_offer_without_common_codec_gets_488_and_the_call_goes_on() {
    let mut h =
        H::with(|c| with_codecs(c, 1, codecs(&["PCMU", "PCMA"], &[], TelephoneEvent::Keep)));
    let (mut da, _db, _atx, _ainv) = h.answered();
    let before = h.b1.requests("INVITE").len();
    h.in_dialog(A, &mut da, Method::Invite, Some(&offer("9 101", MAPS)));
    let r = h.a.last_response(488).expect("488");
    assert!(r.header("Warning").unwrap().starts_with("305 "));
    assert_eq!(h.b1.requests("INVITE").len(), before, "not relayed");
    assert_eq!(h.sbc.active_calls(), 1);
    // A later acceptable re-INVITE is relayed: nothing was left pending.
    h.in_dialog(A, &mut da, Method::Invite, Some(&offer("8 101", MAPS)));
    assert_eq!(h.b1.requests("INVITE").len(), before + 1);
}

#[test]
fn our_own_offer_follows_the_targets_allow_list() {
    let mut h =
        H::with(|c| with_codecs(c, 1, codecs(&["G722", "PCMA"], &[], TelephoneEvent::Keep)));
    let (_, _, _, binv) = h.start("100", None);
    assert_eq!(formats(&binv), ["9", "8", "101"]);
}

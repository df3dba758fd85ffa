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
use portcullis_engine::dialog::Dialog;
use portcullis_engine::entropy::SeededEntropy;
use portcullis_engine::ha::{CallSnapshot, RestoreError, TimerSnapshot, CSEQ_JUMP, MAX_STREAMS};
use portcullis_engine::media::{RealmId, StreamKind};
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
    for i in 1..=MAX_STREAMS {
        let mut extra = m.streams[0].clone();
        extra.mline = u32::try_from(i).unwrap();
        m.streams.push(extra);
    }
    assert!(matches!(
        fresh.restore_call(h.now, &bad),
        Err(RestoreError::Streams(n)) if n == MAX_STREAMS + 1
    ));
    bad.media.as_mut().unwrap().streams.clear();
    assert!(matches!(
        fresh.restore_call(h.now, &bad),
        Err(RestoreError::Streams(0))
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

/// An audio+video call with SDES-SRTP toward the callee, its legs in two media realms:
/// the snapshot carries both streams (ports, peers, keys per stream, the realm of each
/// leg) through its JSON form, the fresh node re-creates both pairs on their ports in
/// those realms, a re-INVITE after the takeover keeps both lines on their ports with
/// their keys, and the BYE releases both.
#[test]
fn every_stream_of_an_audio_video_call_is_taken_over() {
    let mut h = H::with(|c| {
        c.trunks[1].media = portcullis_engine::config::MediaMode::Srtp;
        c.trunks[1].realm = RealmId(1);
    });
    let realm_ips: Vec<std::net::IpAddr> =
        vec![MEDIA_IP.parse().unwrap(), "10.9.9.9".parse().unwrap()];
    h.sbc.media_mut().realm_ips = realm_ips.clone();
    h.sbc.set_ha(true);
    let head =
        "v=0\r\no=peer 77 1 IN IP4 192.168.1.10\r\ns=call\r\nc=IN IP4 192.168.1.10\r\nt=0 0\r\n";
    let offer = format!(
        "{head}m=audio 10000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\nm=video 10002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    );
    let (atx, ainv, btx, binv) = h.start("100", Some(&offer));
    let keys = |m: &portcullis_engine::transaction::SipMsg| {
        String::from_utf8_lossy(m.body())
            .lines()
            .filter(|l| l.starts_with("a=crypto:"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let offered_keys = keys(&binv);
    assert_eq!(offered_keys.len(), 2, "one SDES key per stream toward B");
    let b_key_audio = "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
    let b_key_video = "inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIz";
    let answer = format!(
        "v=0\r\no=b 1 1 IN IP4 172.16.0.20\r\ns=-\r\nc=IN IP4 172.16.0.20\r\nt=0 0\r\n\
m=audio 20000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 {b_key_audio}\r\n\
m=video 20002 RTP/SAVP 96\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 {b_key_video}\r\n"
    );
    h.reply(B1, btx, &binv, 200, "btag", Some(&answer));
    let ok = h.a.first_response(200).unwrap();
    let mut da = h.a.ack(atx, &ainv, &ok, None);
    h.pump();
    let mut db = Dialog::from_uas(&binv, "btag", &h.b1.contact(), true).unwrap();
    let before: Vec<_> = h
        .sbc
        .media()
        .updates
        .iter()
        .rev()
        .take(2)
        .cloned()
        .collect();
    assert_eq!(h.sbc.media().live.len(), 2, "audio and video anchored");

    // The active node dies; a fresh node with the same realms restores the call.
    let call = h.sbc.poll_ha_dirty().expect("the answered call is dirty");
    let snap = h.sbc.export_call(call).expect("exported");
    let m = snap.media.as_ref().unwrap();
    assert_eq!(m.streams.len(), 2, "both streams in the snapshot");
    assert_eq!(m.realms, Some([0, 1]), "the realm of each leg");
    assert_ne!(m.streams[0].ports, m.streams[1].ports);
    let back: CallSnapshot = serde_json::from_str(&serde_json::to_string(&snap).unwrap()).unwrap();
    assert_eq!(back, snap, "the JSON form carries every stream");
    let cfg = Arc::clone(h.sbc.config());
    h.sbc = B2bua::new(cfg, FakeMedia::default(), SeededEntropy::new(7)).unwrap();
    h.sbc.media_mut().realm_ips = realm_ips;
    h.sbc.set_ha(true);
    h.sbc.restore_call(h.now, &back).expect("restored");
    let restored = h.sbc.media().restored.clone();
    assert_eq!(restored.len(), 2, "a pair per stream");
    for (i, (_, ports, realms)) in restored.iter().enumerate() {
        assert_eq!(*ports, m.streams[i].ports, "stream {i} on its ports");
        assert_eq!(
            *realms,
            [RealmId(0), RealmId(1)],
            "stream {i} in its realms"
        );
    }
    // Each pair programmed as before the crash: peers and keys per stream.
    let live: Vec<_> = h
        .sbc
        .media()
        .updates
        .iter()
        .rev()
        .take(2)
        .cloned()
        .collect();
    for ((_, a0, b0), (_, a1, b1)) in before.iter().zip(&live) {
        assert_eq!(a1.peer_rtp, a0.peer_rtp);
        assert_eq!(b1.peer_rtp, b0.peer_rtp);
        assert_eq!(b1.srtp_in, b0.srtp_in);
        assert_eq!(b1.srtp_out, b0.srtp_out);
        assert!(b1.srtp_in.is_some() && b1.srtp_out.is_some());
        assert!(
            a1.srtp_in.is_none() && a1.srtp_out.is_none(),
            "A stays plain"
        );
    }
    let peers: Vec<_> = live
        .iter()
        .rev()
        .map(|(_, a, b)| (a.peer_rtp, b.peer_rtp))
        .collect();
    assert_eq!(
        peers,
        vec![
            (
                Some(sa("192.168.1.10:10000")),
                Some(sa("172.16.0.20:20000"))
            ),
            (
                Some(sa("192.168.1.10:10002")),
                Some(sa("172.16.0.20:20002"))
            ),
        ]
    );
    assert_ne!(live[0].2.srtp_in, live[1].2.srtp_in, "a key per stream");

    // B re-INVITEs with both lines: A's re-INVITE keeps both our ports toward A.
    let (rtx, _) = h.in_dialog(B1, &mut db, Method::Invite, Some(&answer));
    let (itx, reinv) = h.a.last_request("INVITE");
    let sdp_a = String::from_utf8_lossy(reinv.body()).into_owned();
    for st in &m.streams {
        assert!(
            sdp_a.contains(&format!("m=audio {} ", st.ports[0]))
                || sdp_a.contains(&format!("m=video {} ", st.ports[0])),
            "{sdp_a}"
        );
    }
    h.reply(A, itx, &reinv, 200, "", Some(&offer));
    let r = h.b1.last_response(200).expect("B got its 200");
    let b_sdp = String::from_utf8_lossy(r.body()).into_owned();
    assert!(
        b_sdp.contains(&format!("m=audio {} RTP/SAVP", m.streams[0].ports[1])),
        "{b_sdp}"
    );
    assert!(
        b_sdp.contains(&format!("m=video {} RTP/SAVP", m.streams[1].ports[1])),
        "{b_sdp}"
    );
    assert_eq!(keys(&r), offered_keys, "our keys toward B kept per stream");
    h.b1.ack_reinvite(rtx, &db, &r, None);
    h.pump();
    assert_eq!(h.sbc.media().live.len(), 2, "no stream re-allocated");

    h.in_dialog(A, &mut da, Method::Bye, None);
    let (btx, bye) = h.b1.last_request("BYE");
    h.reply(B1, btx, &bye, 200, "", None);
    assert_eq!(h.sbc.active_calls(), 0);
    assert!(h.sbc.media().live.is_empty(), "both pairs released");
    let cdrs = h.cdrs();
    assert_eq!(cdrs.len(), 1);
    assert!(cdrs[0].takeover.is_some());
}

/// A stream whose ports cannot be re-created fails the whole restore: no call is
/// carried on with a stream missing, and the pairs already re-created are released.
#[test]
fn a_stream_that_cannot_be_restored_refuses_the_call_whole() {
    let mut h = H::new();
    h.sbc.set_ha(true);
    let head =
        "v=0\r\no=peer 77 1 IN IP4 192.168.1.10\r\ns=call\r\nc=IN IP4 192.168.1.10\r\nt=0 0\r\n";
    let offer = format!("{head}m=audio 10000 RTP/AVP 0\r\nm=video 10002 RTP/AVP 96\r\n");
    let (atx, ainv, btx, binv) = h.start("100", Some(&offer));
    let answer = "v=0\r\no=b 1 1 IN IP4 172.16.0.20\r\ns=-\r\nc=IN IP4 172.16.0.20\r\nt=0 0\r\n\
m=audio 20000 RTP/AVP 0\r\nm=video 20002 RTP/AVP 96\r\n";
    h.reply(B1, btx, &binv, 200, "btag", Some(answer));
    let ok = h.a.first_response(200).unwrap();
    h.a.ack(atx, &ainv, &ok, None);
    h.pump();
    let call = h.sbc.poll_ha_dirty().unwrap();
    let snap = h.sbc.export_call(call).unwrap();
    let cfg = Arc::clone(h.sbc.config());
    let mut fresh = B2bua::new(cfg, FakeMedia::default(), SeededEntropy::new(5)).unwrap();
    // The second stream's pair cannot be had.
    fresh.media_mut().restore_capacity = Some(1);
    assert!(matches!(
        fresh.restore_call(h.now, &snap),
        Err(RestoreError::Media(_))
    ));
    assert_eq!(fresh.active_calls(), 0);
    assert!(fresh.media().live.is_empty(), "the first pair released");
    // Streams out of line order are refused too.
    let mut bad = snap.clone();
    bad.media.as_mut().unwrap().streams.swap(0, 1);
    assert!(matches!(
        fresh.restore_call(h.now, &bad),
        Err(RestoreError::Corrupt(_))
    ));
}

/// A T.38 stream (UDPTL) beside the audio comes back as UDPTL, and a held stream as held.
#[test]
fn a_fax_stream_comes_back_as_udptl() {
    let mut h = H::new();
    h.sbc.set_ha(true);
    let head =
        "v=0\r\no=peer 77 1 IN IP4 192.168.1.10\r\ns=call\r\nc=IN IP4 192.168.1.10\r\nt=0 0\r\n";
    let offer = format!(
        "{head}a=sendonly\r\nm=audio 10000 RTP/AVP 0\r\nm=image 10004 udptl t38\r\na=T38FaxVersion:0\r\n"
    );
    let (atx, ainv, btx, binv) = h.start("100", Some(&offer));
    let answer = "v=0\r\no=b 1 1 IN IP4 172.16.0.20\r\ns=-\r\nc=IN IP4 172.16.0.20\r\nt=0 0\r\n\
a=recvonly\r\nm=audio 20000 RTP/AVP 0\r\nm=image 20004 udptl t38\r\na=T38FaxVersion:0\r\n";
    h.reply(B1, btx, &binv, 200, "btag", Some(answer));
    let ok = h.a.first_response(200).unwrap();
    h.a.ack(atx, &ainv, &ok, None);
    h.pump();
    let call = h.sbc.poll_ha_dirty().unwrap();
    let snap = h.sbc.export_call(call).unwrap();
    let back: CallSnapshot = serde_json::from_str(&serde_json::to_string(&snap).unwrap()).unwrap();
    let cfg = Arc::clone(h.sbc.config());
    h.sbc = B2bua::new(cfg, FakeMedia::default(), SeededEntropy::new(3)).unwrap();
    h.sbc.restore_call(h.now, &back).expect("restored");
    let ups = h.sbc.media().updates.clone();
    let (audio, fax) = (&ups[ups.len() - 2], &ups[ups.len() - 1]);
    for p in [&fax.1, &fax.2] {
        assert_eq!(p.kind, StreamKind::Udptl, "{p:?}");
    }
    for p in [&audio.1, &audio.2] {
        assert_eq!(p.kind, StreamKind::Rtp);
        assert!(p.held, "held as before the takeover: {p:?}");
    }
    assert_eq!(fax.2.peer_rtp, Some(sa("172.16.0.20:20004")));
}

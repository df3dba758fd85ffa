use super::*;

#[test]
fn header_helpers() {
    assert_eq!(
        user_of("<sip:+15550000012@127.0.0.1:5060>;tag=x"),
        Some("+15550000012")
    );
    assert_eq!(
        uri_of("<sip:uas@127.0.0.1:5080>;expires=3"),
        "sip:uas@127.0.0.1:5080"
    );
    assert_eq!(tag_of("<sip:a@b>;tag=abc;x=y"), Some("abc"));
    assert_eq!(tag_of("<sip:a@b>"), None);
    assert_eq!(user_of("garbage"), None);
}

fn cfg(hold_s: u64) -> SipConfig {
    SipConfig {
        target: "127.0.0.1:5080".parse().unwrap(),
        uac_addr: "127.0.0.1:5070".parse().unwrap(),
        uas_addr: "127.0.0.1:5080".parse().unwrap(),
        media_a: vec!["127.0.0.1:4000".parse().unwrap()],
        media_b: vec!["127.0.0.1:4002".parse().unwrap()],
        hold_ns: hold_s * 1_000_000_000,
        refresh_ns: 0,
        share_reinvite: 0.25,
        share_cancel: 0.25,
        share_callee_bye: 0.25,
        pt: 0,
        ptime_ms: 20,
        media: true,
        srtp_caller: false,
        srtp_callee: false,
        run: 7,
    }
}

/// Virtual-time harness: UAC and UAS talk straight to each other; `drop` decides
/// which datagrams (by running count) are lost.
fn simulate(calls: usize, drop: impl Fn(u64, &[u8]) -> bool) -> (Population, i64) {
    let (p, media, _) = simulate_with(cfg(2), calls, drop);
    (p, media)
}

/// [`simulate`] with a given configuration; also returns every media command issued.
fn simulate_with(
    c: SipConfig,
    calls: usize,
    drop: impl Fn(u64, &[u8]) -> bool,
) -> (Population, i64, Vec<Out>) {
    let mut p = Population::new(c).unwrap();
    let mut cmds = Vec::new();
    let mut now = 0u64;
    let mut out = Vec::new();
    let mut media: i64 = 0;
    let mut n = 0u64;
    for _ in 0..calls {
        p.start_call(now, &mut out);
    }
    let step = 10_000_000;
    while now < 120_000_000_000 {
        let mut pending: Vec<Out> = std::mem::take(&mut out);
        while !pending.is_empty() {
            for o in pending.drain(..) {
                match o {
                    Out::Send { side, bytes, .. } => {
                        n += 1;
                        if drop(n, &bytes) {
                            continue;
                        }
                        let (to, from) = match side {
                            Side::Uac => (Side::Uas, p.cfg.uac_addr),
                            Side::Uas => (Side::Uac, p.cfg.uas_addr),
                        };
                        p.handle(now, to, from, &bytes, &mut out);
                    }
                    o @ Out::MediaAdd { .. } => {
                        media += 1;
                        cmds.push(o);
                    }
                    Out::MediaRemove { .. } => media -= 1,
                    o @ Out::MediaExpect { .. } => cmds.push(o),
                }
            }
            pending = std::mem::take(&mut out);
        }
        if p.up == 0 {
            break;
        }
        now += step;
        p.poll_timers(now, usize::MAX, &mut out);
    }
    (p, media, cmds)
}

#[test]
fn srtp_both_sides_key_every_stream_with_the_peers_sdes_key() {
    let mut c = cfg(2);
    c.srtp_caller = true;
    c.srtp_callee = true;
    let (p, media, cmds) = simulate_with(c, 40, |_, _| false);
    assert_eq!(p.stats.completed, 40, "failures: {:?}", p.stats.failures);
    assert_eq!(media, 0);
    let answered = p.stats.answered as usize;
    let mut adds = 0;
    let mut expects = 0;
    for o in &cmds {
        match o {
            Out::MediaAdd {
                socket, ssrc, srtp, ..
            } => {
                adds += 1;
                // Caller stream (socket 0) of call i has SSRC 2i+1, the callee's 2i+2.
                let idx = ((ssrc - 1) / 2) as usize;
                let side = u8::from(*socket == 1);
                assert_eq!(*srtp, Some(call_key(idx, side)), "ssrc {ssrc}");
            }
            Out::MediaExpect { ssrc, key, .. } => {
                expects += 1;
                // Each side decrypts with the key the other side offered/answered.
                let idx = ((ssrc - 1) / 2) as usize;
                let sender = u8::from(ssrc % 2 == 0);
                assert_eq!(*key, call_key(idx, sender), "ssrc {ssrc}");
            }
            _ => {}
        }
    }
    assert_eq!(adds, 2 * answered);
    assert_eq!(expects, 2 * answered);
    assert_ne!(call_key(0, 0), call_key(0, 1));
    assert_ne!(call_key(0, 0), call_key(1, 0));
}

#[test]
fn srtp_sdp_round_trips_the_key() {
    let key = call_key(7, 1);
    let sdp = sdp_for("127.0.0.1:4000".parse().unwrap(), 0, 20, 1, Some((3, &key)));
    let text = String::from_utf8(sdp.clone()).unwrap();
    assert!(text.contains("m=audio 4000 RTP/SAVP 0\r\n"), "{text}");
    assert!(
        text.contains("a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{text}"
    );
    assert_eq!(sdp_crypto(&sdp), Some((3, key)));
    let plain = sdp_for("127.0.0.1:4000".parse().unwrap(), 0, 20, 1, None);
    assert_eq!(sdp_crypto(&plain), None);
    assert_eq!(call_index_of("+1555000012343"), Some(1234));
    assert_eq!(call_index_of("+1444000012343"), None);
}

#[test]
fn all_call_kinds_complete_without_loss() {
    let (p, media) = simulate(40, |_, _| false);
    assert_eq!(p.stats.started, 40);
    assert_eq!(p.stats.completed, 40, "failures: {:?}", p.stats.failures);
    assert_eq!(p.stats.failed(), 0);
    let kinds: Vec<Kind> = (0..40).map(|i| p.kind_for(i)).collect();
    let count = |k: Kind| kinds.iter().filter(|&&x| x == k).count() as u64;
    for k in [Kind::Normal, Kind::ReInvite, Kind::Cancel, Kind::CalleeBye] {
        assert!((8..=12).contains(&count(k)), "{k:?}: {}", count(k));
    }
    // Cancelled calls are never answered.
    assert_eq!(p.stats.answered, 40 - count(Kind::Cancel));
    assert_eq!(p.stats.reinvites_ok, count(Kind::ReInvite));
    assert_eq!(p.stats.retransmissions, 0);
    assert_eq!(media, 0, "every started stream is stopped");
    assert_eq!(p.up, 0);
}

#[test]
fn lost_requests_and_responses_are_retransmitted() {
    // Drop every 4th datagram: INVITEs, 200s, ACKs, BYEs and CANCELs all get hit.
    let (p, media) = simulate(40, |n, _| n % 4 == 0);
    assert_eq!(p.stats.completed, 40, "failures: {:?}", p.stats.failures);
    assert!(p.stats.retransmissions > 0);
    assert_eq!(media, 0);
}

#[test]
fn silent_peer_times_out_after_64_t1() {
    let (p, _) = simulate(3, |_, b| b.starts_with(b"INVITE"));
    assert_eq!(p.stats.failures.get("timeout INVITE"), Some(&3));
    // Timer A: T1, 2T1, 4T1, ... below 64·T1 = 6 retransmissions per call.
    assert_eq!(p.stats.retransmissions, 18);
}

#[test]
fn garbage_is_counted_not_fatal() {
    let mut p = Population::new(cfg(1)).unwrap();
    let mut out = Vec::new();
    let from = p.cfg.uas_addr;
    for junk in [
        &b"\x00\xff"[..],
        b"SIP/2.0 200 OK\r\n\r\n",
        b"INVITE x SIP/2.0\r\n\r\n",
    ] {
        p.handle(0, Side::Uac, from, junk, &mut out);
        p.handle(0, Side::Uas, from, junk, &mut out);
    }
    assert!(p.stats.stray > 0);
}

/// The requests the UAC sent, as text, that start with `method`.
fn sent(out: &[Out], method: &str) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Out::Send {
                side: Side::Uac,
                bytes,
                ..
            } => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        })
        .filter(|t| t.starts_with(method))
        .collect()
}

#[test]
fn in_dialog_requests_follow_the_record_route_of_the_answer() {
    let mut c = cfg(1);
    c.media = false;
    (c.share_reinvite, c.share_cancel, c.share_callee_bye) = (0.0, 0.0, 0.0);
    let mut p = Population::new(c).unwrap();
    let mut out = Vec::new();
    p.start_call(0, &mut out);
    let invite = sent(&out, "INVITE").pop().expect("INVITE sent");
    let line = |name: &str| {
        invite
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {invite}"))
            .to_owned()
    };
    // A proxy record-routed the dialog (two hops): the 2xx lists them nearest-callee first.
    let ok = format!(
        "SIP/2.0 200 OK\r\n{}\r\n{}\r\n{};tag=callee\r\n{}\r\n{}\r\n\
         Record-Route: <sip:p2.example;lr>\r\nRecord-Route: <sip:p1.example;lr;ftag=x>\r\n\
         Contact: <sip:callee@192.0.2.7:5060>\r\nContent-Length: 0\r\n\r\n",
        line("Via:"),
        line("From:"),
        line("To:"),
        line("Call-ID:"),
        line("CSeq:")
    );
    out.clear();
    let from = p.cfg.target;
    p.handle(1_000, Side::Uac, from, ok.as_bytes(), &mut out);
    let routes = |req: &str| -> Vec<String> {
        req.lines()
            .filter(|l| l.starts_with("Route:"))
            .map(str::to_owned)
            .collect()
    };
    // RFC 3261 §12.1.2: the UAC's route set is the Record-Route in reverse order.
    let want = vec![
        "Route: <sip:p1.example;lr;ftag=x>".to_owned(),
        "Route: <sip:p2.example;lr>".to_owned(),
    ];
    let ack = sent(&out, "ACK").pop().expect("ACK sent");
    assert!(ack.starts_with("ACK sip:callee@192.0.2.7:5060 "), "{ack}");
    assert_eq!(routes(&ack), want, "{ack}");
    // The hold ends: the BYE goes to the remote target through the same route set.
    out.clear();
    p.poll_timers(5_000_000_000, usize::MAX, &mut out);
    p.poll_timers(6_000_000_000, usize::MAX, &mut out);
    let bye = sent(&out, "BYE").pop().expect("BYE sent");
    assert!(bye.starts_with("BYE sip:callee@192.0.2.7:5060 "), "{bye}");
    assert_eq!(routes(&bye), want, "{bye}");
}

#[test]
fn runs_use_their_own_call_ids_tags_and_branches() {
    let invite = |run: u32| {
        let mut c = cfg(1);
        c.run = run;
        let mut p = Population::new(c).unwrap();
        let mut out = Vec::new();
        p.start_call(0, &mut out);
        sent(&out, "INVITE").pop().expect("INVITE sent")
    };
    let (a, b) = (invite(1), invite(2));
    for h in ["Via:", "From:", "Call-ID:"] {
        let line = |t: &str| t.lines().find(|l| l.starts_with(h)).map(str::to_owned);
        assert_ne!(line(&a), line(&b), "{h} repeats across runs");
    }
}

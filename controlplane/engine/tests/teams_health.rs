//! Teams proxy health in virtual time: pings, misses, demotion, recovery,
//! 503 Retry-After hold-off and failover order.

use std::time::Duration;

use portcullis_engine::entropy::SeededEntropy;
use portcullis_engine::teams::{
    HealthConfig, HealthEvent, PingTransmit, ProxyHealth, ProxyId, ProxyState, ProxyTarget,
    TeamsError,
};
use portcullis_engine::time::Timestamp;
use portcullis_sip::{HeaderName, Message, Response};

const INTERVAL: Duration = Duration::from_secs(60);

fn targets() -> Vec<ProxyTarget> {
    ["sip", "sip2", "sip3"]
        .iter()
        .enumerate()
        .map(|(i, h)| ProxyTarget {
            host: format!("{h}.pstnhub.microsoft.com"),
            port: 5061,
            addr: format!("127.0.0.1:{}", 15061 + i).parse().unwrap(),
        })
        .collect()
}

fn monitor(threshold: u32) -> ProxyHealth {
    let mut cfg = HealthConfig::new("sbc1.example.com", INTERVAL);
    cfg.miss_threshold = threshold;
    cfg.answer_timeout = Duration::from_secs(10);
    ProxyHealth::new(cfg, targets(), Timestamp::ZERO, SeededEntropy::new(7)).unwrap()
}

fn t(s: u64) -> Timestamp {
    Timestamp::from_millis(s * 1000)
}

fn drain(h: &mut ProxyHealth) -> Vec<PingTransmit> {
    std::iter::from_fn(|| h.poll_transmit()).collect()
}

/// What a proxy answers to a ping.
fn answer(ping: &PingTransmit, status: u16, retry_after: Option<u32>) -> Vec<u8> {
    let req = Message::parse(&ping.bytes).unwrap();
    let mut r = Response::to(&req, status, "X");
    r.set_to_tag("ms");
    if let Some(s) = retry_after {
        r.push(HeaderName::RetryAfter, &s.to_string());
    }
    r.to_bytes()
}

/// Runs the monitor from `from` to `to` second by second; proxies in `alive`
/// answer `200` right away.
fn run(h: &mut ProxyHealth, from: u64, to: u64, alive: &[usize]) -> usize {
    let mut sent = 0;
    for s in from..=to {
        if h.poll_timeout().is_some_and(|d| d <= t(s)) {
            h.handle_timeout(t(s));
        }
        for p in drain(h) {
            sent += 1;
            if alive.contains(&p.proxy.0) {
                h.handle_answer(t(s), &answer(&p, 200, None)).unwrap();
            }
        }
    }
    sent
}

#[test]
fn pings_every_interval_with_fqdn_contact() {
    let mut h = monitor(3);
    assert_eq!(h.poll_timeout(), Some(Timestamp::ZERO));
    h.handle_timeout(Timestamp::ZERO);
    let first = drain(&mut h);
    assert_eq!(first.len(), 3, "one ping per proxy at start");
    for (i, p) in first.iter().enumerate() {
        assert_eq!(p.proxy, ProxyId(i));
        assert_eq!(p.server_name, targets()[i].host);
        let m = Message::parse(&p.bytes).unwrap();
        portcullis_sip::validate_request(&m).unwrap();
        let text = String::from_utf8_lossy(&p.bytes);
        assert!(text.starts_with(&format!(
            "OPTIONS sip:{}:5061;transport=tls SIP/2.0\r\n",
            targets()[i].host
        )));
        assert!(text.contains("Contact: <sip:sbc1.example.com:5061;transport=tls>\r\n"));
        assert!(text.contains("From: <sip:sbc1.example.com:5061>;tag="));
        assert!(text.contains("Max-Forwards: 70\r\n"));
        assert!(text.contains("\r\nUser-Agent: Portcullis/"));
        assert!(text.contains("\r\nX-MS-SBC: Portcullis/SBC/"));
        assert!(!text.contains("127.0.0.1"), "no IP anywhere: {text}");
        h.handle_answer(t(0), &answer(p, 200, None)).unwrap();
    }
    // Nothing until the interval elapses, then exactly one more round.
    assert_eq!(h.poll_timeout(), Some(t(60)));
    h.handle_timeout(t(59));
    assert!(drain(&mut h).is_empty());
    h.handle_timeout(t(60));
    let second = drain(&mut h);
    assert_eq!(second.len(), 3);
    // CSeq advances, Call-ID stays per proxy.
    let a = Message::parse(&first[0].bytes).unwrap();
    let b = Message::parse(&second[0].bytes).unwrap();
    assert_eq!(a.call_id(), b.call_id());
    assert_eq!(b.cseq().unwrap().seq, a.cseq().unwrap().seq + 1);
    assert_ne!(a.top_via().unwrap().branch(), b.top_via().unwrap().branch());
    // Ten minutes: ten more rounds.
    let sent = run(&mut h, 61, 660, &[0, 1, 2]);
    assert_eq!(sent, 30);
}

#[test]
fn demoted_after_threshold_misses_and_back_on_answer() {
    let mut h = monitor(2);
    run(&mut h, 0, 0, &[0, 1, 2]);
    assert_eq!(h.pick(t(0)), Some(ProxyId(0)));
    // Proxy 0 stops answering: first miss at 70 s (ping at 60 + 10 s timeout).
    run(&mut h, 1, 70, &[1, 2]);
    assert_eq!(h.state(ProxyId(0)), Some(ProxyState::Up));
    assert_eq!(h.status()[0].misses, 1);
    assert_eq!(h.poll_event(), None);
    // Second miss at 130 s: Down, calls go to sip2.
    run(&mut h, 71, 129, &[1, 2]);
    assert_eq!(h.state(ProxyId(0)), Some(ProxyState::Up));
    run(&mut h, 130, 130, &[1, 2]);
    assert_eq!(h.state(ProxyId(0)), Some(ProxyState::Down));
    assert_eq!(h.poll_event(), Some(HealthEvent::ProxyDown(ProxyId(0))));
    assert_eq!(h.pick(t(130)), Some(ProxyId(1)));
    assert_eq!(h.failover_order(t(130)), vec![ProxyId(1), ProxyId(2)]);
    // Misses keep being counted in total but saturate at the threshold.
    run(&mut h, 131, 400, &[1, 2]);
    let st = &h.status()[0];
    assert_eq!(st.misses, 2);
    assert!(st.misses_total >= 6, "{st:?}");
    assert_eq!(h.poll_event(), None, "one Down event only");
    // It answers again: back up on the next ping (within one interval).
    run(&mut h, 401, 460, &[0, 1, 2]);
    assert_eq!(h.state(ProxyId(0)), Some(ProxyState::Up));
    assert_eq!(h.poll_event(), Some(HealthEvent::ProxyUp(ProxyId(0))));
    assert_eq!(h.pick(t(460)), Some(ProxyId(0)));
    assert_eq!(h.status()[0].misses, 0);
}

#[test]
fn late_answer_is_not_ours_and_transport_error_is_a_miss() {
    let mut h = monitor(1);
    h.handle_timeout(t(0));
    let pings = drain(&mut h);
    // Proxy 1's connection fails: immediate miss, threshold 1 → Down.
    h.handle_transport_error(t(1), ProxyId(1));
    assert_eq!(h.state(ProxyId(1)), Some(ProxyState::Down));
    // An answer arriving after the failure matches nothing.
    assert_eq!(
        h.handle_answer(t(2), &answer(&pings[1], 200, None)),
        Err(TeamsError::NotOurs)
    );
    assert_eq!(h.state(ProxyId(1)), Some(ProxyState::Down));
    // A second transport error without an outstanding ping counts nothing.
    h.handle_transport_error(t(3), ProxyId(1));
    assert_eq!(h.status()[1].misses_total, 1);
    // Garbage is an error, never a panic.
    assert!(matches!(
        h.handle_answer(t(3), b"SIP/2.0 200\r\n\r\n"),
        Err(TeamsError::Malformed(_))
    ));
    // Provisional answers keep the ping outstanding.
    h.handle_answer(t(3), &answer(&pings[0], 100, None))
        .unwrap();
    h.handle_timeout(t(10));
    assert_eq!(h.state(ProxyId(0)), Some(ProxyState::Down));
}

#[test]
fn retry_after_503_holds_a_proxy_off_until_it_expires() {
    let mut h = monitor(3);
    h.handle_timeout(t(0));
    let pings = drain(&mut h);
    h.handle_answer(t(0), &answer(&pings[0], 503, Some(30)))
        .unwrap();
    h.handle_answer(t(0), &answer(&pings[1], 200, None))
        .unwrap();
    h.handle_answer(t(0), &answer(&pings[2], 200, None))
        .unwrap();
    assert_eq!(
        h.state(ProxyId(0)),
        Some(ProxyState::Up),
        "503 is an answer"
    );
    assert_eq!(h.pick(t(1)), Some(ProxyId(1)));
    assert_eq!(h.pick(t(29)), Some(ProxyId(1)));
    assert_eq!(
        h.next_hold_expiry(t(29)),
        Some(t(30)),
        "the driver re-picks then"
    );
    assert_eq!(h.pick(t(30)), Some(ProxyId(0)));
    assert_eq!(h.next_hold_expiry(t(30)), None);
    // A call answered 503 Retry-After by sip2 moves calls on to sip3.
    h.handle_call_response(t(31), ProxyId(0), 503, Some(120));
    h.handle_call_response(t(31), ProxyId(1), 503, Some(120));
    assert_eq!(h.failover_order(t(31)), vec![ProxyId(2)]);
    // 503 without Retry-After, or other failures, do not hold off.
    h.handle_call_response(t(31), ProxyId(2), 503, None);
    h.handle_call_response(t(31), ProxyId(2), 500, Some(60));
    assert_eq!(h.pick(t(31)), Some(ProxyId(2)));
    h.handle_call_response(t(31), ProxyId(2), 503, Some(5));
    assert_eq!(h.pick(t(32)), None, "every proxy held off");
    assert_eq!(h.pick(t(36)), Some(ProxyId(2)));
    assert_eq!(
        h.proxy_by_addr("127.0.0.1:15062".parse().unwrap()),
        Some(ProxyId(1))
    );
}

#[test]
fn misconfiguration_is_refused() {
    let cfg = HealthConfig::new("sbc1.example.com", INTERVAL);
    assert!(ProxyHealth::new(cfg.clone(), vec![], Timestamp::ZERO, SeededEntropy::new(1)).is_err());
    let mut ip = cfg.clone();
    ip.identity = portcullis_engine::teams::SbcIdentity::new("192.0.2.1");
    assert!(ProxyHealth::new(ip, targets(), Timestamp::ZERO, SeededEntropy::new(1)).is_err());
    let mut zero = cfg;
    zero.miss_threshold = 0;
    assert!(ProxyHealth::new(zero, targets(), Timestamp::ZERO, SeededEntropy::new(1)).is_err());
}

#[test]
fn identifiers_are_deterministic_per_seed() {
    let mk = |seed| {
        let mut h = ProxyHealth::new(
            HealthConfig::new("sbc1.example.com", INTERVAL),
            targets(),
            Timestamp::ZERO,
            SeededEntropy::new(seed),
        )
        .unwrap();
        h.handle_timeout(Timestamp::ZERO);
        drain(&mut h)
            .into_iter()
            .map(|p| p.bytes)
            .collect::<Vec<_>>()
    };
    assert_eq!(mk(1), mk(1));
    assert_ne!(mk(1), mk(2));
    assert!(ProxyHealth::is_ping_answer(
        b"SIP/2.0 200 OK\r\nCall-ID: tmopt-0-1@x\r\n\r\n"
    ));
    assert!(!ProxyHealth::is_ping_answer(b"OPTIONS sip:x SIP/2.0\r\n"));
}

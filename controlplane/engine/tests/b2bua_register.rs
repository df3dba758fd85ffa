//! Registration toward a carrier through the B2BUA (virtual time): REGISTER with
//! digest to a scripted registrar, refresh before expiry, back-off after refusals,
//! un-REGISTER on shutdown, and calls to the registered Contact recognised as the
//! trunk only from the registrar or the trunk's sources.

#[path = "b2bua_harness.rs"]
mod harness;

use std::collections::HashSet;
use std::time::Duration;

use harness::*;
use portcullis_engine::b2bua::CallEvent;
use portcullis_engine::config::Credentials;
use portcullis_engine::digest::DigestServer;
use portcullis_engine::registration::{RegState, RegistrationConfig};
use portcullis_engine::transaction::{make_response, Transport, TxEvent, TxId};
use portcullis_sip::header::{Auth, HeaderName};

/// Trunk b1 registers at the registrar b2 as `pc-b1`.
fn registering(password: &str, expires: u64) -> H {
    let password = password.to_owned();
    H::with(move |c| {
        c.registrations.push(RegistrationConfig {
            trunk: "b1".into(),
            registrar: sa(B2),
            tls_server_name: None,
            transport: Transport::Udp,
            registrar_uri: "sip:carrier.example".into(),
            aor: "sip:+4930123@carrier.example".into(),
            contact_user: "pc-b1".into(),
            expires: Duration::from_secs(expires),
            credentials: Some(Credentials {
                username: "alice".into(),
                password,
                realm: None,
            }),
            retry_min: Duration::from_secs(2),
            retry_max: Duration::from_secs(16),
        });
    })
}

/// The registrar (peer b2): digest for alice/s3cret, grants what is asked (≤ 60 s).
struct Registrar {
    server: DigestServer,
    answered: HashSet<TxId>,
    /// (time, Expires asked, granted) of each accepted REGISTER.
    accepted: Vec<(u64, String, bool)>,
    refused: usize,
}

impl Registrar {
    fn new() -> Self {
        Self {
            server: DigestServer::new("carrier.example", [9; 32], Duration::from_secs(30)),
            answered: HashSet::new(),
            accepted: Vec::new(),
            refused: 0,
        }
    }

    /// Answers every REGISTER b2 has not answered yet.
    fn serve(&mut self, h: &mut H) {
        let now = h.now;
        let reqs: Vec<_> =
            h.b2.events
                .iter()
                .filter_map(|e| match e {
                    TxEvent::Request { tx, request, .. }
                        if request.method().map(|m| m.as_str()) == Some("REGISTER") =>
                    {
                        Some((*tx, request.clone()))
                    }
                    _ => None,
                })
                .filter(|(tx, _)| !self.answered.contains(tx))
                .collect();
        for (tx, req) in reqs {
            self.answered.insert(tx);
            let ok = req.header("Authorization").is_some_and(|v| {
                let a = Auth::parse(v, HeaderName::Authorization).unwrap();
                self.server
                    .verify(now, &a, "REGISTER", req.request_uri(), "alice", "s3cret")
                    .is_ok()
            });
            let mut r;
            if ok {
                let asked = req.header("Expires").unwrap_or("").to_owned();
                r = make_response(&req, 200, "OK", Some("reg"));
                let granted = asked.parse::<u64>().unwrap_or(0).min(60);
                r.push_header(
                    "Contact",
                    format!("{};expires={granted}", req.header("Contact").unwrap()),
                );
                self.accepted
                    .push((now.as_millis() / 1000, asked, granted > 0));
            } else {
                if req.header("Authorization").is_some() {
                    self.refused += 1;
                }
                r = make_response(&req, 401, "Unauthorized", Some("reg"));
                for c in self.server.challenges(now, 5, false) {
                    r.push_header("WWW-Authenticate", c);
                }
            }
            h.b2.layer.respond(now, tx, &r).unwrap();
        }
        h.pump();
    }

    /// Runs virtual time for `d` in 100 ms steps, answering as it goes.
    fn run(&mut self, h: &mut H, d: Duration) {
        let steps = d.as_millis() / 100;
        for _ in 0..steps {
            h.advance(Duration::from_millis(100));
            self.serve(h);
        }
    }
}

#[test]
fn registers_with_digest_and_refreshes_before_expiry() {
    let mut h = registering("s3cret", 40);
    let mut reg = Registrar::new();
    reg.run(&mut h, Duration::from_secs(1));
    let st = h.sbc.registrations(h.now);
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].trunk, "b1");
    assert!(
        matches!(st[0].state, RegState::Registered { .. }),
        "{:?}",
        st[0]
    );
    assert_eq!(st[0].stats.attempts, 2, "REGISTER, then with credentials");
    // The REGISTER on the wire: our listener in Via and Contact, the AOR in From/To.
    let (_, first) = h.b2.requests("REGISTER")[0].clone();
    assert!(first.header("Via").unwrap().contains(SBC));
    assert_eq!(
        first.header("Contact"),
        Some(format!("<sip:pc-b1@{SBC}>").as_str())
    );
    assert_eq!(first.header("To"), Some("<sip:+4930123@carrier.example>"));
    // 40 s granted: refreshed after 20 s, before the binding lapses, again and again.
    reg.run(&mut h, Duration::from_secs(100));
    let times: Vec<u64> = reg.accepted.iter().map(|a| a.0).collect();
    assert!(times.len() >= 5, "{times:?}");
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        assert!((19..=21).contains(&gap), "refresh every 20 s: {times:?}");
    }
    let st = &h.sbc.registrations(h.now)[0];
    assert!(matches!(st.state, RegState::Registered { .. }));
    assert!(st.bound_until.is_some());
    assert_eq!(st.stats.failures, 0);
    // Shutdown: un-REGISTER (Expires: 0 for our Contact), answered, then nothing more.
    let now = h.now;
    h.sbc.unregister_all(now);
    h.pump();
    assert!(h.sbc.registrations_pending());
    reg.run(&mut h, Duration::from_secs(1));
    assert!(!h.sbc.registrations_pending());
    let last = reg.accepted.last().unwrap();
    assert_eq!(last.1, "0", "Expires: 0");
    let st = &h.sbc.registrations(h.now)[0];
    assert_eq!(st.state, RegState::Unregistered);
    let n = h.b2.requests("REGISTER").len();
    reg.run(&mut h, Duration::from_secs(120));
    assert_eq!(h.b2.requests("REGISTER").len(), n, "nothing after shutdown");
}

#[test]
fn a_refused_password_shows_failed_and_backs_off() {
    let mut h = registering("wrong", 40);
    let mut reg = Registrar::new();
    reg.run(&mut h, Duration::from_secs(40));
    let st = &h.sbc.registrations(h.now)[0];
    assert!(matches!(st.state, RegState::Failed { .. }), "{st:?}");
    assert_eq!(st.last_status, Some(401));
    assert_eq!(st.last_error.as_deref(), Some("401: credentials refused"));
    assert!(st.bound_until.is_none());
    // Attempts at 0, 2, 6, 14, 30 s (back-off 2, 4, 8, 16, 16 s): five, not one per second.
    assert_eq!(reg.refused, 5, "{st:?}");
    assert_eq!(st.stats.failures, 5);
    assert!(reg.accepted.is_empty());
    // Calls keep flowing meanwhile.
    let (_, _) = h.invite_from(A, "100", Some(&sdp("192.168.1.10", 10_000, "")));
    assert_eq!(h.b1.requests("INVITE").len(), 1);
}

#[test]
fn calls_to_the_contact_are_the_trunks_only_from_its_registrar_or_sources() {
    let mut h = registering("s3cret", 60);
    let mut reg = Registrar::new();
    reg.run(&mut h, Duration::from_secs(1));
    // From the registrar's address (b2's own address): classified as b1, routed b1 → a.
    let offer = sdp("172.16.0.9", 20_000, "");
    h.invite_from(B2, "pc-b1", Some(&offer));
    let started: Vec<String> = h
        .events
        .iter()
        .filter_map(|e| match e {
            CallEvent::CallStarted { inbound_trunk, .. } => Some(inbound_trunk.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        started,
        ["b1"],
        "the Contact names the trunk, not the source"
    );
    assert_eq!(h.a.requests("INVITE").len(), 1);
    // Another user from b2: b2's own call.
    h.invite_from(B2, "100", Some(&offer));
    let last = h.events.iter().rev().find_map(|e| match e {
        CallEvent::CallStarted { inbound_trunk, .. } => Some(inbound_trunk.clone()),
        _ => None,
    });
    assert_eq!(last.as_deref(), Some("b2"));
    // From a source neither the registrar nor the trunk accepts: refused, whatever the URI.
    let stranger = sa("10.9.9.9:5060");
    let mut p = Peer::new("10.9.9.9:5060", 77);
    let now = h.now;
    let (_, _) = p.invite(now, "pc-b1", Some(&offer));
    let bytes = p.layer.poll_transmit().unwrap().bytes;
    assert!(bytes.starts_with(format!("INVITE sip:pc-b1@{SBC} ").as_bytes()));
    h.sbc.handle_datagram(now, udp(stranger), &bytes);
    let mut answered = None;
    while let Some(t) = h.sbc.poll_transmit() {
        if t.dest.addr == stranger {
            answered = Some(String::from_utf8_lossy(&t.bytes).into_owned());
        }
    }
    let answered = answered.expect("an answer to the stranger");
    assert!(answered.starts_with("SIP/2.0 403"), "{answered}");
}

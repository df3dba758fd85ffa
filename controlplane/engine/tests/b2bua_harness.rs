//! Shared harness for the B2BUA tests: scripted peers over real transaction
//! layers, a perfect in-memory network at one virtual instant, and a fake
//! MediaControl that records every call. Included with `#[path]` by each test.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_engine::b2bua::{B2bua, CallEvent, CdrRecord};
use portcullis_engine::config::{
    EngineConfig, ListenerInfo, MediaMode, NodeSettings, PolicyConfig, RedirectMode, RouteConfig,
    TimerSettings, TrunkConfig,
};
use portcullis_engine::dialog::Dialog;
use portcullis_engine::entropy::SeededEntropy;
use portcullis_engine::media::{
    DtmfEvent, MediaAllocation, MediaControl, MediaError, MediaId, MediaLegParams, MediaStats,
    RealmId, Side,
};
use portcullis_engine::time::Timestamp;
use portcullis_engine::transaction::{
    make_response, Method, PeerAddr, SipMsg, TransactionLayer, Transport, TxConfig, TxEvent, TxId,
    Via,
};

pub const SBC: &str = "10.0.0.1:5060";
pub const A: &str = "10.0.0.2:5060";
pub const B1: &str = "10.0.0.3:5060";
pub const B2: &str = "10.0.0.4:5060";
pub const MEDIA_IP: &str = "203.0.113.1";

pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// `addr` over UDP, no connection.
pub fn udp(addr: SocketAddr) -> PeerAddr {
    PeerAddr {
        transport: Transport::Udp,
        addr,
        conn: None,
    }
}

/// A MediaControl that records everything.
#[derive(Debug, Default)]
pub struct FakeMedia {
    next: u64,
    pub live: BTreeSet<MediaId>,
    pub allocated: u64,
    pub released: Vec<MediaId>,
    pub updates: Vec<(MediaId, MediaLegParams, MediaLegParams)>,
    pub capacity: Option<usize>,
    /// DTMF events asked for (`MediaControl::dtmf`).
    pub dtmf: Vec<(MediaId, Side, DtmfEvent)>,
    /// Pairs re-created by a takeover: (id, ports A and B, realms A and B).
    pub restored: Vec<(MediaId, [u16; 2], [RealmId; 2])>,
    /// Advertised address of each media realm (empty: every realm is `MEDIA_IP`).
    pub realm_ips: Vec<std::net::IpAddr>,
    /// The realms of every allocation (A, B).
    pub realms: Vec<[RealmId; 2]>,
    /// Pairs a takeover may re-create before `restore` refuses (`None`: no limit).
    pub restore_capacity: Option<usize>,
}

impl FakeMedia {
    /// The advertised address of realm `r`.
    fn realm_ip(&self, r: RealmId) -> std::net::IpAddr {
        self.realm_ips
            .get(usize::from(r.0))
            .copied()
            .unwrap_or_else(|| MEDIA_IP.parse().unwrap())
    }
}

impl MediaControl for FakeMedia {
    fn allocate(&mut self, realms: [RealmId; 2]) -> Result<MediaAllocation, MediaError> {
        if self.capacity.is_some_and(|c| self.live.len() >= c) {
            return Err(MediaError::NoCapacity);
        }
        self.next += 1;
        let id = MediaId(self.next);
        self.live.insert(id);
        self.allocated += 1;
        // Ports repeat every 2,000 allocations (a fake: only the ids must be unique).
        let base = 40_000 + u16::try_from(self.next % 2_000).unwrap() * 2;
        self.realms.push(realms);
        Ok(MediaAllocation {
            id,
            a_port: base,
            b_port: base + 20_000,
            a_ip: self.realm_ip(realms[0]),
            b_ip: self.realm_ip(realms[1]),
        })
    }
    fn update(
        &mut self,
        id: MediaId,
        a: &MediaLegParams,
        b: &MediaLegParams,
    ) -> Result<(), MediaError> {
        assert!(
            self.live.contains(&id),
            "update of a released/unknown stream {id:?}"
        );
        self.updates.push((id, a.clone(), b.clone()));
        Ok(())
    }
    fn release(&mut self, id: MediaId) {
        assert!(self.live.remove(&id), "double release of {id:?}");
        self.released.push(id);
    }
    fn stats(&self, _id: MediaId) -> Option<MediaStats> {
        Some(MediaStats::default())
    }
    fn dtmf(&mut self, id: MediaId, to: Side, event: DtmfEvent) -> Result<(), MediaError> {
        assert!(self.live.contains(&id), "DTMF on a released stream {id:?}");
        self.dtmf.push((id, to, event));
        Ok(())
    }

    fn restore(
        &mut self,
        realms: [RealmId; 2],
        ports: [u16; 2],
        a: &MediaLegParams,
        b: &MediaLegParams,
    ) -> Result<MediaAllocation, MediaError> {
        if self
            .restore_capacity
            .is_some_and(|c| self.restored.len() >= c)
        {
            return Err(MediaError::Other(format!("port {} taken", ports[0])));
        }
        self.next += 1;
        let id = MediaId(self.next);
        self.live.insert(id);
        self.restored.push((id, ports, realms));
        self.updates.push((id, a.clone(), b.clone()));
        Ok(MediaAllocation {
            id,
            a_port: ports[0],
            b_port: ports[1],
            a_ip: self.realm_ip(realms[0]),
            b_ip: self.realm_ip(realms[1]),
        })
    }
}

pub fn trunk(name: &str, addr: &str, media: MediaMode) -> TrunkConfig {
    TrunkConfig {
        name: name.into(),
        address: sa(addr),
        transport: Transport::Udp,
        media,
        acl: Vec::new(),
        max_calls: None,
        auth_inbound: None,
        auth_outbound: None,
        tls_server_name: None,
        fqdn_contact: None,
        learning: Default::default(),
        targets: Default::default(),
        policy: portcullis_engine::trunk_policy::TrunkPolicy::default(),
        realm: Default::default(),
        listener: None,
    }
}

/// A → (b1, b2) for every number; b1/b2 → a.
pub fn config() -> EngineConfig {
    EngineConfig {
        node: NodeSettings {
            name: "sbc1".into(),
            fqdn: None,
            user_agent: "Portcullis-test".into(),
        },
        listeners: vec![ListenerInfo {
            transport: Transport::Udp,
            addr: sa(SBC),
        }],
        trunks: vec![
            trunk("a", A, MediaMode::Rtp),
            trunk("b1", B1, MediaMode::Rtp),
            trunk("b2", B2, MediaMode::Rtp),
        ],
        routes: vec![
            RouteConfig {
                name: "out".into(),
                from_trunks: vec!["a".into()],
                called_prefix: String::new(),
                strip: 0,
                prepend: String::new(),
                targets: vec!["b1".into(), "b2".into()],
                redirect: RedirectMode::Follow,
            },
            RouteConfig {
                name: "in".into(),
                from_trunks: vec!["b1".into(), "b2".into()],
                called_prefix: String::new(),
                strip: 0,
                prepend: String::new(),
                targets: vec!["a".into()],
                redirect: RedirectMode::Relay,
            },
        ],
        route_rules: Vec::new(),
        policy: PolicyConfig::default(),
        timers: TimerSettings::default(),
        teams: None,
        registrations: Vec::new(),
    }
}

/// A scripted peer: a transaction layer plus a log of what it was told.
#[derive(Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    pub layer: TransactionLayer,
    pub events: Vec<TxEvent>,
    /// Every datagram it received.
    pub wire: Vec<Vec<u8>>,
    /// Every datagram it sent.
    pub sent: Vec<Vec<u8>>,
    n: u64,
}

impl Peer {
    pub fn new(addr: &str, seed: u64) -> Self {
        Self {
            addr: sa(addr),
            layer: TransactionLayer::new(TxConfig::default(), SeededEntropy::new(seed)),
            events: Vec::new(),
            wire: Vec::new(),
            sent: Vec::new(),
            n: 0,
        }
    }

    pub fn via(&mut self) -> Via {
        let b = self.layer.new_branch();
        Via::new(
            Transport::Udp,
            self.addr.ip().to_string(),
            Some(self.addr.port()),
            &b,
        )
    }

    pub fn contact(&self) -> String {
        format!("<sip:peer@{}>", self.addr)
    }

    /// Requests received (new server transactions) with `method`.
    pub fn requests(&self, method: &str) -> Vec<(TxId, SipMsg)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                TxEvent::Request { tx, request, .. }
                    if request.method().map(|m| m.as_str()) == Some(method) =>
                {
                    Some((*tx, request.clone()))
                }
                _ => None,
            })
            .collect()
    }

    pub fn last_request(&self, method: &str) -> (TxId, SipMsg) {
        self.requests(method)
            .pop()
            .unwrap_or_else(|| panic!("{} got no {method}; events: {:#?}", self.addr, self.events))
    }

    /// Responses received (client side), in order.
    pub fn responses(&self) -> Vec<SipMsg> {
        self.events
            .iter()
            .filter_map(|e| match e {
                TxEvent::Response { response, .. } => Some(response.clone()),
                _ => None,
            })
            .collect()
    }

    /// The first response received with `status`.
    pub fn first_response(&self, status: u16) -> Option<SipMsg> {
        self.responses()
            .into_iter()
            .find(|r| r.status() == Some(status))
    }

    /// The last response received with `status`.
    pub fn last_response(&self, status: u16) -> Option<SipMsg> {
        self.responses()
            .into_iter()
            .rfind(|r| r.status() == Some(status))
    }

    pub fn statuses(&self) -> Vec<u16> {
        self.responses().iter().filter_map(SipMsg::status).collect()
    }

    pub fn acks(&self) -> Vec<SipMsg> {
        self.events
            .iter()
            .filter_map(|e| match e {
                TxEvent::Ack { request, .. } | TxEvent::StrayAck { request, .. } => {
                    Some(request.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// Answers server transaction `tx`.
    pub fn respond(
        &mut self,
        now: Timestamp,
        tx: TxId,
        req: &SipMsg,
        status: u16,
        tag: &str,
        sdp: Option<&str>,
    ) -> SipMsg {
        let mut r = make_response(req, status, "X", Some(tag));
        if (101..300).contains(&status) {
            r.push_header("Contact", self.contact());
            r.push_header(
                "Record-Route",
                format!("<sip:rr.{}.hidden;lr>", self.addr.ip()),
            );
        }
        if let Some(s) = sdp {
            r.push_header("Content-Type", "application/sdp");
            r.set_body(s.as_bytes().to_vec());
        }
        self.layer.respond(now, tx, &r).unwrap();
        r
    }

    /// A new INVITE from this peer to the SBC.
    pub fn invite(&mut self, now: Timestamp, user: &str, sdp: Option<&str>) -> (TxId, SipMsg) {
        self.invite_with(now, user, sdp, &[])
    }

    /// [`Self::invite`] with extra headers.
    pub fn invite_with(
        &mut self,
        now: Timestamp,
        user: &str,
        sdp: Option<&str>,
        extra: &[(&str, &str)],
    ) -> (TxId, SipMsg) {
        self.n += 1;
        let via = self.via();
        let mut req = SipMsg::request(Method::Invite, format!("sip:{user}@{SBC}"));
        req.push_header("Via", via.to_string());
        req.push_header(
            "Record-Route",
            format!("<sip:rr.{}.hidden;lr>", self.addr.ip()),
        );
        req.push_header("Max-Forwards", "70");
        req.push_header(
            "From",
            format!(
                "\"Alice\" <sip:+4930111@{}>;tag=atag{}x{}",
                self.addr,
                self.addr.ip(),
                self.n
            ),
        );
        req.push_header("To", format!("<sip:{user}@{SBC}>"));
        req.push_header(
            "Call-ID",
            format!(
                "acallid-{}-{}@{}",
                self.n,
                self.layer.next_random(),
                self.addr.ip()
            ),
        );
        req.push_header("CSeq", "1 INVITE");
        req.push_header("Contact", self.contact());
        req.push_header("X-Secret", "internal");
        req.push_header("User-Agent", "PeerAgent/1.0");
        for (n, v) in extra {
            req.push_header(n, v);
        }
        if let Some(s) = sdp {
            req.push_header("Content-Type", "application/sdp");
            req.set_body(s.as_bytes().to_vec());
        }
        let tx = self.send(now, req.clone());
        (tx, req)
    }

    /// ACKs a 2xx to `invite` and returns the confirmed dialog.
    pub fn ack(
        &mut self,
        invite_tx: TxId,
        invite: &SipMsg,
        resp: &SipMsg,
        body: Option<&str>,
    ) -> Dialog {
        let d = Dialog::from_uac(invite, resp).unwrap();
        self.send_ack(invite_tx, &d, d.invite_cseq.unwrap_or(1), body);
        d
    }

    /// ACKs the 2xx `ok` to re-INVITE `tx` sent in dialog `d`.
    pub fn ack_reinvite(&mut self, tx: TxId, d: &Dialog, ok: &SipMsg, body: Option<&str>) {
        self.send_ack(tx, d, ok.cseq().unwrap().seq, body);
    }

    /// Sends the ACK of CSeq `seq` in `d` for INVITE transaction `tx`, with SDP `body`.
    fn send_ack(&mut self, tx: TxId, d: &Dialog, seq: u32, body: Option<&str>) {
        let via = self.via();
        let mut ack = d.ack(seq, &via);
        if let Some(b) = body {
            ack.push_header("Content-Type", "application/sdp");
            ack.set_body(b.as_bytes().to_vec());
        }
        self.layer.send_ack(Some(tx), udp(sa(SBC)), &ack);
    }

    /// Sends `req` to the SBC in a new client transaction.
    pub fn send(&mut self, now: Timestamp, req: SipMsg) -> TxId {
        self.layer.send_request(now, udp(sa(SBC)), req).unwrap()
    }

    /// Sends an in-dialog request to the SBC.
    pub fn send_in_dialog(
        &mut self,
        now: Timestamp,
        d: &mut Dialog,
        method: Method,
        sdp: Option<&str>,
    ) -> (TxId, SipMsg) {
        let via = self.via();
        let mut req = d.request(method, &via).unwrap();
        if let Some(s) = sdp {
            req.push_header("Content-Type", "application/sdp");
            req.set_body(s.as_bytes().to_vec());
        }
        let tx = self.send(now, req.clone());
        (tx, req)
    }
}

pub fn sdp(ip: &str, port: u16, extra: &str) -> String {
    format!(
        "v=0\r\no=peer 77 1 IN IP4 {ip}\r\ns=call\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=rtcp:{}\r\n{extra}",
        port + 1
    )
}

/// The SBC, three peers, a perfect network at one instant, virtual time.
#[derive(Debug)]
pub struct H {
    pub now: Timestamp,
    pub sbc: B2bua<FakeMedia>,
    pub a: Peer,
    pub b1: Peer,
    pub b2: Peer,
    pub events: Vec<CallEvent>,
    /// Datagrams dropped by `drop_to` filters.
    pub drop_to: Vec<SocketAddr>,
    /// (destination, listener to send from) of every datagram the SBC sent.
    pub sent_from: Vec<(SocketAddr, Option<SocketAddr>)>,
}

impl Default for H {
    fn default() -> Self {
        Self::new()
    }
}

impl H {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    pub fn with(f: impl FnOnce(&mut EngineConfig)) -> Self {
        Self::with_entropy(f, SeededEntropy::new(42))
    }

    /// [`Self::with`], the SBC drawing its randomness from `entropy`.
    pub fn with_entropy(
        f: impl FnOnce(&mut EngineConfig),
        entropy: impl portcullis_engine::entropy::Entropy + 'static,
    ) -> Self {
        let mut cfg = config();
        f(&mut cfg);
        Self {
            now: Timestamp::from_millis(1_000),
            sbc: B2bua::new(Arc::new(cfg), FakeMedia::default(), entropy).unwrap(),
            a: Peer::new(A, 1),
            b1: Peer::new(B1, 2),
            b2: Peer::new(B2, 3),
            events: Vec::new(),
            drop_to: Vec::new(),
            sent_from: Vec::new(),
        }
    }

    fn peer(&mut self, addr: SocketAddr) -> Option<&mut Peer> {
        [&mut self.a, &mut self.b1, &mut self.b2]
            .into_iter()
            .find(|p| p.addr == addr)
    }

    /// The peer at `addr` (`A`, `B1` or `B2`).
    pub fn peer_at(&mut self, addr: &str) -> &mut Peer {
        self.peer(sa(addr))
            .unwrap_or_else(|| panic!("no peer at {addr}"))
    }

    /// The peer at `addr` sends a new INVITE to `user`; the network settles.
    pub fn invite_from(&mut self, addr: &str, user: &str, sdp: Option<&str>) -> (TxId, SipMsg) {
        let now = self.now;
        let sent = self.peer_at(addr).invite(now, user, sdp);
        self.pump();
        sent
    }

    /// The peer at `addr` sends an in-dialog `method` in `d`; the network settles.
    pub fn in_dialog(
        &mut self,
        addr: &str,
        d: &mut Dialog,
        method: Method,
        sdp: Option<&str>,
    ) -> (TxId, SipMsg) {
        let now = self.now;
        let sent = self.peer_at(addr).send_in_dialog(now, d, method, sdp);
        self.pump();
        sent
    }

    /// The peer at `addr` answers its server transaction `tx` (request `req`);
    /// the network settles.
    pub fn reply(
        &mut self,
        addr: &str,
        tx: TxId,
        req: &SipMsg,
        status: u16,
        tag: &str,
        sdp: Option<&str>,
    ) -> SipMsg {
        let now = self.now;
        let r = self.peer_at(addr).respond(now, tx, req, status, tag, sdp);
        self.pump();
        r
    }

    /// Delivers everything until quiet (same instant).
    pub fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(t) = self.sbc.poll_transmit() {
                moved = true;
                self.sent_from.push((t.dest.addr, t.local));
                if self.drop_to.contains(&t.dest.addr) {
                    continue;
                }
                let now = self.now;
                if let Some(p) = self.peer(t.dest.addr) {
                    p.wire.push(t.bytes.clone());
                    p.layer.handle_datagram(now, udp(sa(SBC)), &t.bytes);
                    while let Some(e) = p.layer.poll_event() {
                        p.events.push(e);
                    }
                }
            }
            for i in 0..3 {
                let now = self.now;
                let p = match i {
                    0 => &mut self.a,
                    1 => &mut self.b1,
                    _ => &mut self.b2,
                };
                let from = p.addr;
                let mut out = Vec::new();
                while let Some(t) = p.layer.poll_transmit() {
                    out.push(t);
                }
                for t in out {
                    moved = true;
                    p.sent.push(t.bytes.clone());
                    if t.dest == sa(SBC) {
                        self.sbc.handle_datagram(now, udp(from), &t.bytes);
                    }
                }
            }
            while let Some(e) = self.sbc.poll_event() {
                self.events.push(e);
            }
            if !moved {
                return;
            }
        }
        panic!("pump did not settle");
    }

    /// Advances virtual time by `d`, firing every timer on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..1_000_000 {
            self.pump();
            let next = [
                self.sbc.poll_timeout(),
                self.a.layer.poll_timeout(),
                self.b1.layer.poll_timeout(),
                self.b2.layer.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(at) if at <= end => {
                    self.now = self.now.max(at);
                    let now = self.now;
                    self.sbc.handle_timeout(now);
                    for p in [&mut self.a, &mut self.b1, &mut self.b2] {
                        p.layer.handle_timeout(now);
                        while let Some(e) = p.layer.poll_event() {
                            p.events.push(e);
                        }
                    }
                }
                _ => {
                    self.now = end;
                    self.pump();
                    return;
                }
            }
        }
    }

    pub fn cdrs(&self) -> Vec<CdrRecord> {
        self.events
            .iter()
            .filter_map(|e| match e {
                CallEvent::CallEnded { cdr } => Some((**cdr).clone()),
                _ => None,
            })
            .collect()
    }

    /// A calls `user`; B1 gets the INVITE. Returns (a_tx, a_invite, b_tx, b_invite).
    pub fn start(&mut self, user: &str, a_sdp: Option<&str>) -> (TxId, SipMsg, TxId, SipMsg) {
        let now = self.now;
        let (atx, ainv) = self.a.invite(now, user, a_sdp);
        self.pump();
        let (btx, binv) = self.b1.last_request("INVITE");
        (atx, ainv, btx, binv)
    }

    /// B1 rings (180) and answers (200, SDP at 172.16.0.20:20000) its INVITE
    /// transaction `btx` (request `binv`) at one instant with to-tag `tag`; the
    /// network settles. Returns the 200.
    pub fn b1_rings_and_answers(&mut self, btx: TxId, binv: &SipMsg, tag: &str) -> SipMsg {
        let now = self.now;
        self.b1.respond(now, btx, binv, 180, tag, None);
        let answer = sdp("172.16.0.20", 20_000, "");
        let r200 = self.b1.respond(now, btx, binv, 200, tag, Some(&answer));
        self.pump();
        r200
    }

    /// B1 answers its INVITE transaction `btx` (request `binv`) with a `status`
    /// `reason` response (to-tag `t`) carrying the header `(name, value)`; the
    /// network settles.
    pub fn b1_answers_with_header(
        &mut self,
        btx: TxId,
        binv: &SipMsg,
        status: u16,
        reason: &str,
        (name, value): (&str, &str),
    ) {
        let now = self.now;
        let mut r = make_response(binv, status, reason, Some("t"));
        r.push_header(name, value);
        self.b1.layer.respond(now, btx, &r).unwrap();
        self.pump();
    }

    /// A full answered call; returns (A dialog, B dialog, a_tx, a_invite).
    pub fn answered(&mut self) -> (Dialog, Dialog, TxId, SipMsg) {
        let a_sdp = sdp("192.168.1.10", 10_000, "");
        let (atx, ainv, btx, binv) = self.start("100", Some(&a_sdp));
        let r200 = self.b1_rings_and_answers(btx, &binv, "btag");
        let resp = self.a.first_response(200).expect("A got 200");
        let da = self.a.ack(atx, &ainv, &resp, None);
        self.pump();
        let db = Dialog::from_uas(&binv, "btag", &self.b1.contact(), true).unwrap();
        let _ = r200;
        (da, db, atx, ainv)
    }
}

/// Panics when any byte string of `needles` occurs in any of `hay`.
pub fn assert_absent(hay: &[Vec<u8>], needles: &[&str], what: &str) {
    for (i, msg) in hay.iter().enumerate() {
        let text = String::from_utf8_lossy(msg);
        for n in needles {
            assert!(!n.is_empty());
            assert!(
                !text.contains(n),
                "{what}: message {i} leaks {n:?}:\n{text}"
            );
        }
    }
}

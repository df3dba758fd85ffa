//! A scripted user agent (UAC and UAS core) over the transaction and dialog
//! layers, for simulations.
//!
//! As UAS, the user part of the Request-URI picks the behaviour:
//! `answer` (180 then 200), `busy` (486), `ring` (180, then 487 when
//! cancelled); any non-INVITE gets 200 (BYE: 200 in a dialog, else 481).
//! As UAC, [`SimUa::start`] runs one [`Scenario`] and records its [`Outcome`].
//! Everything the transaction layer tells the TU is checked for duplicates.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use super::SimNode;
use crate::dialog::{Dialog, DialogId, DialogTable};
use crate::entropy::SeededEntropy;
use crate::time::Timestamp;
use crate::transaction::{
    make_response, Method, PeerAddr, SipMsg, Timer, TransactionLayer, Transmit, Transport,
    TxConfig, TxEvent, TxId, Via,
};

/// What a UAC call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// INVITE to `answer`, ACK the 200, BYE after `hold`.
    Answer { hold: Duration },
    /// INVITE to `busy`: expect 486 (the transaction ACKs it).
    Busy,
    /// INVITE to `ring`, CANCEL on the 180: expect 487.
    Cancel,
    /// OPTIONS: expect 200.
    Options,
}

/// How a UAC call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    /// 200, ACK, BYE answered 200.
    Completed,
    /// 486 received.
    Busy,
    /// 487 received after our CANCEL.
    Cancelled,
    /// 200 to OPTIONS.
    OptionsOk,
    /// A client transaction timed out `after` its request was sent (or its CANCEL, §9.1).
    TimedOut {
        method: &'static str,
        timer: Timer,
        after: Duration,
    },
    /// Anything else (unexpected status, transport error).
    Failed(u16),
}

#[derive(Debug)]
struct UacCall {
    scenario: Scenario,
    remote: PeerAddr,
    outcome: Outcome,
    invite: Option<(TxId, SipMsg, Timestamp)>,
    cancel_at: Option<Timestamp>,
    dialog: Option<DialogId>,
    bye: Option<(TxId, Timestamp)>,
    options: Option<(TxId, Timestamp)>,
}

/// What the UA observed (checked by tests).
#[derive(Debug, Default)]
pub struct UaLog {
    /// Events the TU saw twice (must stay empty).
    pub duplicates: Vec<String>,
    /// New server transactions per (Call-ID, CSeq, method): must all be 1.
    pub requests: BTreeMap<(String, u32, String), u32>,
    /// INVITE server transactions whose 2xx was ACKed.
    pub acks: u64,
    /// INVITE server transactions whose 2xx never saw an ACK (Timer L).
    pub ack_timeouts: u64,
    /// ACKs passed as stray (late retransmissions after Timer L).
    pub stray_acks: u64,
    /// BYEs answered 481 (no dialog).
    pub bye_481: u64,
}

/// The scripted UA. See the module docs.
#[derive(Debug)]
pub struct SimUa {
    pub addr: SocketAddr,
    /// Transport of every request this UA sends (reliable ones disable retransmission).
    pub transport: Transport,
    pub layer: TransactionLayer,
    pub dialogs: DialogTable,
    pub log: UaLog,
    calls: Vec<UacCall>,
    /// TU timers: (when, call index) → send BYE.
    byes_due: BTreeSet<(Timestamp, usize)>,
    /// UAS: INVITE transactions still ringing.
    ringing: BTreeSet<TxId>,
    /// UAS no-answer timers: a ringing INVITE gets 480 after [`RING_TIMEOUT`].
    ring_until: BTreeSet<(Timestamp, TxId)>,
    /// UAS: dialog created by each answered INVITE transaction.
    answered: BTreeMap<TxId, DialogId>,
    seen: BTreeSet<String>,
}

/// How long the simulated UAS lets an unanswered INVITE ring before 480.
pub const RING_TIMEOUT: Duration = Duration::from_secs(60);

impl SimUa {
    /// A UA at `addr` whose branches, tags and Call-IDs come from a source seeded with `seed`
    /// ([`SeededEntropy`]: the same seed replays the same run).
    #[must_use]
    pub fn new(addr: SocketAddr, seed: u64, cfg: TxConfig) -> Self {
        Self {
            addr,
            transport: Transport::Udp,
            layer: TransactionLayer::new(cfg, SeededEntropy::new(seed)),
            dialogs: DialogTable::new(),
            log: UaLog::default(),
            calls: Vec::new(),
            byes_due: BTreeSet::new(),
            ringing: BTreeSet::new(),
            ring_until: BTreeSet::new(),
            answered: BTreeMap::new(),
            seen: BTreeSet::new(),
        }
    }

    /// Outcomes of the calls started with [`Self::start`], in order.
    pub fn outcomes(&self) -> impl Iterator<Item = (Scenario, Outcome)> + '_ {
        self.calls.iter().map(|c| (c.scenario, c.outcome))
    }

    fn peer(&self, addr: SocketAddr) -> PeerAddr {
        PeerAddr {
            transport: self.transport,
            addr,
            conn: None,
        }
    }

    fn via(&mut self) -> Via {
        let branch = self.layer.new_branch();
        Via::new(
            self.transport,
            self.addr.ip().to_string(),
            Some(self.addr.port()),
            &branch,
        )
    }

    fn contact(&self) -> String {
        format!("<sip:ua@{}>", self.addr)
    }

    /// Starts a UAC call towards `remote`.
    pub fn start(&mut self, now: Timestamp, remote: SocketAddr, scenario: Scenario) {
        let idx = self.calls.len();
        let user = match scenario {
            Scenario::Answer { .. } => "answer",
            Scenario::Busy => "busy",
            Scenario::Cancel => "ring",
            Scenario::Options => "options",
        };
        let method = if scenario == Scenario::Options {
            Method::Options
        } else {
            Method::Invite
        };
        let via = self.via();
        let mut req = SipMsg::request(method.clone(), format!("sip:{user}@{remote}"));
        req.push_header("Via", via.to_string());
        req.push_header("Max-Forwards", "70");
        req.push_header(
            "From",
            format!(
                "<sip:caller@{}>;tag=f{:x}",
                self.addr,
                self.layer.next_random()
            ),
        );
        req.push_header("To", format!("<sip:{user}@{remote}>"));
        req.push_header(
            "Call-ID",
            format!("{:x}-{idx}@sim", self.layer.next_random()),
        );
        req.push_header("CSeq", format!("1 {method}"));
        req.push_header("Contact", self.contact());
        let mut call = UacCall {
            scenario,
            remote: self.peer(remote),
            outcome: Outcome::Pending,
            invite: None,
            cancel_at: None,
            dialog: None,
            bye: None,
            options: None,
        };
        match self.layer.send_request(now, self.peer(remote), req.clone()) {
            Ok(tx) if method == Method::Invite => call.invite = Some((tx, req, now)),
            Ok(tx) => call.options = Some((tx, now)),
            Err(_) => call.outcome = Outcome::Failed(0),
        }
        self.calls.push(call);
    }

    fn once(&mut self, key: String) {
        if !self.seen.insert(key.clone()) {
            self.log.duplicates.push(key);
        }
    }

    fn call_of(&self, tx: TxId) -> Option<usize> {
        self.calls.iter().position(|c| {
            c.invite.as_ref().is_some_and(|(t, _, _)| *t == tx)
                || c.bye.is_some_and(|(t, _)| t == tx)
                || c.options.is_some_and(|(t, _)| t == tx)
        })
    }

    fn process_events(&mut self, now: Timestamp) {
        // Bounded: each event handled once; handling may queue more, but only finitely.
        for _ in 0..100_000 {
            let Some(ev) = self.layer.poll_event() else {
                return;
            };
            match ev {
                TxEvent::Request {
                    tx,
                    from,
                    request,
                    cancels,
                } => self.on_request(now, tx, from, &request, cancels),
                TxEvent::Response { tx, response } => self.on_response(now, tx, &response),
                TxEvent::Ack { tx, .. } => {
                    self.once(format!("ack {tx}"));
                    self.answered.remove(&tx);
                    self.log.acks += 1;
                }
                TxEvent::StrayAck { .. } => self.log.stray_acks += 1,
                TxEvent::Timeout { tx, timer } => {
                    self.once(format!("timeout {tx}"));
                    if timer == Timer::L {
                        // §13.3.1.4 wants a BYE; the simulated UAS just forgets the dialog.
                        self.log.ack_timeouts += 1;
                        if let Some(id) = self.answered.remove(&tx) {
                            self.dialogs.remove(&id);
                        }
                    }
                    self.on_timeout(now, tx, timer);
                }
                TxEvent::TransportError { tx } => {
                    if let Some(i) = self.call_of(tx) {
                        if let Some(c) = self.calls.get_mut(i) {
                            c.outcome = Outcome::Failed(0);
                        }
                    }
                }
            }
        }
    }

    fn on_timeout(&mut self, now: Timestamp, tx: TxId, timer: Timer) {
        let Some(i) = self.call_of(tx) else { return };
        let Some(c) = self.calls.get_mut(i) else {
            return;
        };
        let (method, started) = match (&c.invite, c.bye, c.options) {
            (_, Some((t, at)), _) if t == tx => ("BYE", at),
            (_, _, Some((t, at))) if t == tx => ("OPTIONS", at),
            (Some((_, _, at)), _, _) => ("INVITE", c.cancel_at.unwrap_or(*at)),
            _ => return,
        };
        c.outcome = Outcome::TimedOut {
            method,
            timer,
            after: now - started,
        };
        if let Some(id) = c.dialog.take() {
            self.dialogs.remove(&id);
        }
    }

    fn on_request(
        &mut self,
        now: Timestamp,
        tx: TxId,
        _from: PeerAddr,
        req: &SipMsg,
        cancels: Option<TxId>,
    ) {
        let (Ok(cseq), Ok(call_id)) = (req.cseq(), req.call_id()) else {
            return;
        };
        *self
            .log
            .requests
            .entry((call_id.to_owned(), cseq.seq, cseq.method.to_string()))
            .or_insert(0) += 1;
        let user = req
            .request_uri()
            .and_then(|u| u.strip_prefix("sip:"))
            .and_then(|u| u.split('@').next())
            .unwrap_or("");
        let tag = format!("t{:x}", self.layer.next_random());
        let contact = self.contact();
        let reply = |layer: &mut TransactionLayer, status: u16, reason: &str, tag: Option<&str>| {
            let mut r = make_response(req, status, reason, tag);
            if (101..300).contains(&status) && tag.is_some() {
                r.push_header("Contact", contact.clone());
            }
            // An error here means the transaction already ended: nothing to do.
            let _ = layer.respond(now, tx, &r);
        };
        match (req.method(), user) {
            (Some(Method::Invite), "answer") => {
                reply(&mut self.layer, 180, "Ringing", Some(&tag));
                reply(&mut self.layer, 200, "OK", Some(&tag));
                if let Ok(d) = Dialog::from_uas(req, &tag, &self.contact(), true) {
                    let id = self.dialogs.insert(d);
                    self.answered.insert(tx, id);
                }
            }
            (Some(Method::Invite), "busy") => reply(&mut self.layer, 486, "Busy Here", Some(&tag)),
            (Some(Method::Invite), _) => {
                reply(&mut self.layer, 180, "Ringing", Some(&tag));
                self.ringing.insert(tx);
                self.ring_until.insert((now + RING_TIMEOUT, tx));
            }
            (Some(Method::Cancel), _) => match cancels {
                Some(itx) => {
                    reply(&mut self.layer, 200, "OK", Some(&tag));
                    self.ring_until.retain(|(_, t)| *t != itx);
                    if self.ringing.remove(&itx) {
                        if let Some(invite) = self.layer.request(itx).cloned() {
                            let r = make_response(&invite, 487, "Request Terminated", Some(&tag));
                            let _ = self.layer.respond(now, itx, &r);
                        }
                    }
                }
                None => reply(
                    &mut self.layer,
                    481,
                    "Call/Transaction Does Not Exist",
                    Some(&tag),
                ),
            },
            (Some(Method::Bye), _) => {
                let ok = self
                    .dialogs
                    .for_request(req)
                    .map(|d| d.on_request(req).is_ok());
                match ok {
                    Some(true) => {
                        reply(&mut self.layer, 200, "OK", None);
                        if let Ok(Some(id)) = DialogId::of_incoming_request(req) {
                            self.dialogs.remove(&id);
                        }
                    }
                    Some(false) => reply(&mut self.layer, 500, "Server Internal Error", None),
                    None => {
                        self.log.bye_481 += 1;
                        reply(
                            &mut self.layer,
                            481,
                            "Call/Transaction Does Not Exist",
                            None,
                        );
                    }
                }
            }
            _ => reply(&mut self.layer, 200, "OK", Some(&tag)),
        }
    }

    fn on_response(&mut self, now: Timestamp, tx: TxId, resp: &SipMsg) {
        let status = resp.status().unwrap_or(0);
        let to_tag = resp.to_tag().ok().flatten().unwrap_or("").to_owned();
        // RFC 3261 §17.1.1.2 passes every provisional up; finals must arrive once.
        if status >= 200 {
            self.once(format!("response {tx} {status} {to_tag}"));
        }
        let Some(i) = self.call_of(tx) else { return };
        let via = self.via();
        let Some(c) = self.calls.get_mut(i) else {
            return;
        };
        if c.options.is_some_and(|(t, _)| t == tx) {
            if status >= 200 {
                c.outcome = if status == 200 {
                    Outcome::OptionsOk
                } else {
                    Outcome::Failed(status)
                };
            }
            return;
        }
        if let Some((bye_tx, _)) = c.bye {
            if bye_tx == tx && status >= 200 {
                c.outcome = if status == 200 {
                    Outcome::Completed
                } else {
                    Outcome::Failed(status)
                };
                if let Some(id) = c.dialog.take() {
                    self.dialogs.remove(&id);
                }
            }
            return;
        }
        let Some((itx, invite, _)) = c.invite.clone() else {
            return;
        };
        match status {
            100..=199 => {
                if c.dialog.is_none() && !to_tag.is_empty() {
                    if let Ok(d) = Dialog::from_uac(&invite, resp) {
                        c.dialog = Some(self.dialogs.insert(d));
                    }
                }
                if c.scenario == Scenario::Cancel
                    && c.cancel_at.is_none()
                    && self.layer.send_cancel(now, itx).is_ok()
                {
                    c.cancel_at = Some(now);
                }
            }
            200..=299 => {
                let id = match c
                    .dialog
                    .clone()
                    .and_then(|id| self.dialogs.get_mut(&id).map(|d| (id, d)))
                {
                    Some((id, d)) if d.id.remote_tag == to_tag => {
                        d.on_response(&Method::Invite, resp);
                        Some(id)
                    }
                    _ => Dialog::from_uac(&invite, resp)
                        .ok()
                        .map(|d| self.dialogs.insert(d)),
                };
                c.dialog = id.clone();
                let ack = id
                    .and_then(|id| self.dialogs.get(&id))
                    .map(|d| d.ack(d.invite_cseq.unwrap_or(1), &via));
                if let Some(ack) = ack {
                    self.layer.send_ack(Some(itx), c.remote, &ack);
                }
                match c.scenario {
                    Scenario::Answer { hold } => {
                        self.byes_due.insert((now + hold, i));
                    }
                    _ => c.outcome = Outcome::Failed(status),
                }
            }
            300..=699 => {
                if let Some(id) = c.dialog.take() {
                    self.dialogs.remove(&id);
                }
                c.outcome = match (c.scenario, status) {
                    (Scenario::Busy, 486) => Outcome::Busy,
                    (Scenario::Cancel, 487) => Outcome::Cancelled,
                    _ => Outcome::Failed(status),
                };
            }
            _ => {}
        }
    }

    fn answer_due_rings(&mut self, now: Timestamp) {
        while let Some(&(at, tx)) = self.ring_until.first() {
            if at > now {
                break;
            }
            self.ring_until.remove(&(at, tx));
            if self.ringing.remove(&tx) {
                if let Some(invite) = self.layer.request(tx).cloned() {
                    let r =
                        make_response(&invite, 480, "Temporarily Unavailable", Some("noanswer"));
                    let _ = self.layer.respond(now, tx, &r);
                }
            }
        }
    }

    fn send_due_byes(&mut self, now: Timestamp) {
        while let Some(&(at, i)) = self.byes_due.first() {
            if at > now {
                break;
            }
            self.byes_due.remove(&(at, i));
            let via = self.via();
            let Some(c) = self.calls.get_mut(i) else {
                continue;
            };
            let bye = c
                .dialog
                .clone()
                .and_then(|id| self.dialogs.get_mut(&id))
                .and_then(|d| d.request(Method::Bye, &via).ok());
            match bye.map(|b| self.layer.send_request(now, c.remote, b)) {
                Some(Ok(tx)) => c.bye = Some((tx, now)),
                _ => c.outcome = Outcome::Failed(0),
            }
        }
    }
}

impl SimNode for SimUa {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn handle_datagram(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        transport: Transport,
        bytes: &[u8],
    ) {
        self.layer.handle_datagram(
            now,
            PeerAddr {
                transport,
                addr: from,
                conn: None,
            },
            bytes,
        );
        self.process_events(now);
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        self.layer.handle_timeout(now);
        self.process_events(now);
        self.send_due_byes(now);
        self.answer_due_rings(now);
        self.process_events(now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.layer.poll_transmit()
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        let bye = self.byes_due.first().map(|(at, _)| *at);
        let ring = self.ring_until.first().map(|(at, _)| *at);
        [self.layer.poll_timeout(), bye, ring]
            .into_iter()
            .flatten()
            .min()
    }
}

//! Registrations toward carriers in the B2BUA: the [`Registration`] state
//! machines driven by the engine's clock, their REGISTERs sent as client
//! non-INVITE transactions of the engine's transaction layer, and the
//! classification of requests to a registered Contact.
//!
//! Classification rule: a request whose Request-URI user is a registration's
//! `contact_user` belongs to that registration's trunk when it comes from the
//! registrar's address or from a source the trunk itself accepts (its address,
//! or its ACL). It wins over address classification, so several registrations
//! with one carrier (same source addresses) are told apart by their Contact.
//! Knowing the Contact alone is never enough: from any other source the request
//! is classified as before (unknown sources are refused).
//!
//! On reload, a registration whose settings are unchanged keeps its binding;
//! a changed or removed one is un-REGISTERed (the new one registers afresh).

use std::net::SocketAddr;

use super::B2bua;
use crate::config::{EngineConfig, TrunkId};
use crate::media::MediaControl;
use crate::registration::{request_uri_user, Next, RegState, Registration, RegistrationStats};
use crate::time::Timestamp;
use crate::transaction::{PeerAddr, SipMsg, TxId};

/// One registration as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationStatus {
    pub trunk: String,
    pub aor: String,
    pub registrar: SocketAddr,
    pub state: RegState,
    /// When the binding we hold lapses.
    pub bound_until: Option<Timestamp>,
    /// When the next REGISTER (refresh or retry) is due.
    pub next_attempt: Option<Timestamp>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub stats: RegistrationStats,
}

/// A registration and its REGISTER in flight.
#[derive(Debug)]
pub(super) struct Slot {
    reg: Registration,
    tx: Option<TxId>,
    /// Removed or changed by a reload: un-REGISTERed, dropped once done.
    retiring: bool,
    /// Retiring, its un-REGISTER not sent yet (sent at the next timeout).
    unregister_due: bool,
}

/// The engine's registrations.
#[derive(Debug, Default)]
pub(super) struct Registrations {
    slots: Vec<Slot>,
    /// Shut down ([`B2bua::unregister_all`]): nothing new is sent.
    stopped: bool,
}

impl Registrations {
    fn find_tx(&self, tx: TxId) -> Option<usize> {
        self.slots.iter().position(|s| s.tx == Some(tx))
    }

    /// When the next REGISTER is due.
    pub(super) fn poll_timeout(&self) -> Option<Timestamp> {
        if self.stopped {
            return None;
        }
        if self.slots.iter().any(|s| s.unregister_due) {
            return Some(Timestamp::ZERO);
        }
        self.slots
            .iter()
            .filter(|s| !s.retiring && s.tx.is_none())
            .filter_map(|s| s.reg.due())
            .min()
    }

    /// The trunk of a request (bytes, before parsing) from `src` (see the module docs).
    pub(super) fn classify(
        &self,
        cfg: &EngineConfig,
        bytes: &[u8],
        src: SocketAddr,
    ) -> Option<TrunkId> {
        if self.slots.is_empty() {
            return None;
        }
        let user = request_uri_user(bytes)?;
        let ip = src.ip().to_canonical();
        self.slots
            .iter()
            .filter(|s| !s.retiring)
            .map(|s| s.reg.config())
            .filter(|c| c.contact_user == user)
            .find_map(|c| {
                let id = cfg.trunk_by_name(&c.trunk)?;
                let trunk = cfg.trunk(id)?;
                let from_registrar = c.registrar.ip().to_canonical() == ip;
                (from_registrar || trunk.matches_source(ip)).then_some(id)
            })
    }

    /// The TLS name toward `dest` when it is a registrar.
    pub(super) fn tls_name(&self, dest: SocketAddr) -> Option<String> {
        self.slots
            .iter()
            .map(|s| s.reg.config())
            .find(|c| c.registrar == dest)
            .and_then(|c| c.tls_server_name.clone())
    }
}

impl<M: MediaControl> B2bua<M> {
    /// Registrations of `cfg` (a reload keeps those whose settings did not change;
    /// the others are un-REGISTERed at the next timeout).
    pub(super) fn set_registrations(&mut self, cfg: &EngineConfig) {
        let mut old = std::mem::take(&mut self.registrations.slots);
        let mut slots = Vec::with_capacity(cfg.registrations.len() + old.len());
        for rc in &cfg.registrations {
            match old.iter().position(|s| !s.retiring && s.reg.config() == rc) {
                Some(i) => slots.push(old.swap_remove(i)),
                None => {
                    let call_id = format!(
                        "{:016x}{:016x}",
                        self.txn.next_random(),
                        self.txn.next_random()
                    );
                    let tag = format!("{:x}", self.txn.next_random());
                    slots.push(Slot {
                        reg: Registration::new(rc.clone(), call_id, tag),
                        tx: None,
                        retiring: false,
                        unregister_due: false,
                    });
                }
            }
        }
        for mut s in old {
            if !s.retiring {
                s.retiring = true;
                s.unregister_due = true;
            }
            slots.push(s);
        }
        self.registrations.slots = slots;
    }

    /// Sends the REGISTERs that are due at `now`.
    pub(super) fn drive_registrations(&mut self, now: Timestamp) {
        if self.registrations.stopped {
            return;
        }
        for i in 0..self.registrations.slots.len() {
            let due = self
                .registrations
                .slots
                .get_mut(i)
                .is_some_and(|s| std::mem::take(&mut s.unregister_due));
            if due {
                self.unregister_one(now, i);
            }
            let Some(slot) = self.registrations.slots.get_mut(i) else {
                continue;
            };
            if slot.retiring || slot.tx.is_some() {
                continue;
            }
            let (transport, trunk) = (slot.reg.config().transport, slot.reg.config().trunk.clone());
            let hp = Self::register_hostport(&self.cfg, &trunk, transport);
            let Some(slot) = self.registrations.slots.get_mut(i) else {
                continue;
            };
            if let Some(req) = slot.reg.start(now, &hp) {
                self.send_register(now, i, req);
            }
        }
        self.drop_retired();
    }

    /// Un-REGISTERs every registration (shutdown): `Expires: 0` for each binding we
    /// may hold; nothing is sent for them afterwards.
    pub fn unregister_all(&mut self, now: Timestamp) {
        self.registrations.stopped = true;
        for i in 0..self.registrations.slots.len() {
            if let Some(s) = self.registrations.slots.get_mut(i) {
                s.unregister_due = false;
            }
            self.unregister_one(now, i);
        }
        self.drop_retired();
        self.process(now);
    }

    /// Whether an un-REGISTER (or any REGISTER) is still in flight.
    #[must_use]
    pub fn registrations_pending(&self) -> bool {
        self.registrations.slots.iter().any(|s| s.tx.is_some())
    }

    /// The registrations, for the admin API.
    #[must_use]
    pub fn registrations(&self, now: Timestamp) -> Vec<RegistrationStatus> {
        self.registrations
            .slots
            .iter()
            .map(|s| {
                let c = s.reg.config();
                RegistrationStatus {
                    trunk: c.trunk.clone(),
                    aor: c.aor.clone(),
                    registrar: c.registrar,
                    state: s.reg.state(),
                    bound_until: s.reg.bound_until(now),
                    next_attempt: s.reg.due().filter(|_| !s.retiring),
                    last_status: s.reg.last_status(),
                    last_error: s.reg.last_error().map(str::to_owned),
                    stats: s.reg.stats(),
                }
            })
            .collect()
    }

    fn unregister_one(&mut self, now: Timestamp, i: usize) {
        let Some(slot) = self.registrations.slots.get(i) else {
            return;
        };
        let (transport, trunk) = (slot.reg.config().transport, slot.reg.config().trunk.clone());
        let hp = Self::register_hostport(&self.cfg, &trunk, transport);
        let Some(slot) = self.registrations.slots.get_mut(i) else {
            return;
        };
        if let Some(req) = slot.reg.unregister(now, &hp) {
            // A REGISTER in flight is superseded (its CSeq is lower): its answer is ignored.
            slot.tx = None;
            self.send_register(now, i, req);
        }
    }

    /// Our `ip:port` in a registration's Contact: the listener of its trunk (its own, else
    /// the first of its transport; the carrier reaches it without DNS).
    fn register_hostport(
        cfg: &EngineConfig,
        trunk: &str,
        transport: crate::transaction::Transport,
    ) -> String {
        let listener = match cfg.trunk_by_name(trunk) {
            Some(id) => cfg.trunk_listener(id, transport),
            None => cfg.listener(transport),
        };
        listener.map_or_else(|| String::from("0.0.0.0"), |l| l.addr.to_string())
    }

    fn send_register(&mut self, now: Timestamp, i: usize, mut req: SipMsg) {
        let Some(c) = self
            .registrations
            .slots
            .get(i)
            .map(|s| s.reg.config().clone())
        else {
            return;
        };
        let cfg = self.cfg.clone();
        let via = self.via_listener(cfg.trunk_by_name(&c.trunk), c.transport);
        req.push_header("Via", via.to_string());
        req.push_header("User-Agent", &self.cfg.node.user_agent);
        let dest = PeerAddr {
            transport: c.transport,
            addr: c.registrar,
            conn: None,
        };
        match self.txn.send_request(now, dest, req) {
            Ok(tx) => {
                if let Some(s) = self.registrations.slots.get_mut(i) {
                    s.tx = Some(tx);
                }
            }
            Err(e) => {
                let before = self.state_name(i);
                if let Some(s) = self.registrations.slots.get_mut(i) {
                    s.reg.on_failure(now, &format!("cannot send: {e}"));
                }
                self.note_change(i, before);
            }
        }
    }

    /// A response to one of our REGISTERs (true when it was one).
    pub(super) fn on_register_response(&mut self, now: Timestamp, tx: TxId, resp: &SipMsg) -> bool {
        let Some(i) = self.registrations.find_tx(tx) else {
            return false;
        };
        if resp.status().is_none_or(|s| s < 200) {
            return true;
        }
        let random = self.txn.next_random();
        let before = self.state_name(i);
        let Some(slot) = self.registrations.slots.get_mut(i) else {
            return true;
        };
        slot.tx = None;
        match slot.reg.on_response(now, resp, random) {
            Next::Send(req) => self.send_register(now, i, req),
            Next::Idle => {
                self.note_change(i, before);
                self.drop_retired();
            }
        }
        true
    }

    /// Timer F or a transport failure of one of our REGISTERs (true when it was one).
    pub(super) fn on_register_failure(&mut self, now: Timestamp, tx: TxId, why: &str) -> bool {
        let Some(i) = self.registrations.find_tx(tx) else {
            return false;
        };
        let before = self.state_name(i);
        if let Some(slot) = self.registrations.slots.get_mut(i) {
            slot.tx = None;
            slot.reg.on_failure(now, why);
        }
        self.note_change(i, before);
        self.drop_retired();
        true
    }

    /// Reports a state change of registration `i` (from `before`).
    fn note_change(&mut self, i: usize, before: &'static str) {
        let Some(s) = self.registrations.slots.get(i) else {
            return;
        };
        let state = s.reg.state().name();
        // A refresh that succeeded changes nothing worth reporting.
        let refreshed = before == "refreshing" && state == "registered";
        if state != before && !refreshed {
            self.events
                .push_back(super::CallEvent::RegistrationChanged {
                    trunk: s.reg.config().trunk.clone(),
                    state,
                    error: s.reg.last_error().map(str::to_owned),
                });
        }
    }

    fn state_name(&self, i: usize) -> &'static str {
        self.registrations
            .slots
            .get(i)
            .map_or("", |s| s.reg.state().name())
    }

    /// Retired registrations go once their un-REGISTER ended.
    fn drop_retired(&mut self) {
        self.registrations
            .slots
            .retain(|s| !s.retiring || s.unregister_due || s.tx.is_some());
    }
}

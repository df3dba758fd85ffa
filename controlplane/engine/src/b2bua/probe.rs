//! Trunk targets in the B2BUA: OPTIONS health pings, DNS answers pushed in,
//! the choice of a target per attempt and what calls teach about targets.
//!
//! Pings are ordinary non-INVITE client transactions (RFC 3261 §11, §17.1.2:
//! retransmitted over UDP by Timer E); the [`crate::routing::Probe`] of the
//! target counts a miss when no final answer came within its answer window,
//! whatever the transaction does later. The table is
//! [`crate::routing::TargetTable`]; this file is its glue.

use std::net::SocketAddr;

use super::route::Target;
use super::{B2bua, CallEvent};
use crate::media::MediaControl;
use crate::routing::{TargetTable, TargetUpdate, Transition, TrunkTargets};
use crate::time::Timestamp;
use crate::transaction::{Method, PeerAddr, SipMsg, TxId};

/// A ping in flight: trunk name, target, probe token.
#[derive(Clone, Debug)]
pub(super) struct PingTx {
    trunk: String,
    target: SocketAddr,
    token: u64,
}

impl<M: MediaControl> B2bua<M> {
    /// A DNS answer (or failure) for trunk `name`'s domain (RFC 3263), from the
    /// appliance's resolver. New calls use the new targets at once; kept targets
    /// keep their health. `false` when no trunk of that name resolves by DNS.
    pub fn set_trunk_targets(&mut self, now: Timestamp, name: &str, update: TargetUpdate) -> bool {
        self.last_now = self.last_now.max(now);
        self.targets.set_resolved(name, update, now)
    }

    /// Every trunk's targets, their health and counters (admin status, metrics).
    #[must_use]
    pub fn trunk_targets(&self) -> &TargetTable {
        &self.targets
    }

    /// One trunk's targets.
    #[must_use]
    pub fn trunk_target_status(&self, name: &str) -> Option<&TrunkTargets> {
        self.targets.trunk(name)
    }

    /// The earliest ping due or ping answer deadline.
    pub(super) fn probe_timeout(&self) -> Option<Timestamp> {
        self.targets
            .iter()
            .flat_map(|(_, t)| t.entries.iter())
            .filter_map(|e| e.probe.poll_timeout())
            .min()
    }

    /// Expires overdue pings and sends the pings that are due.
    pub(super) fn run_probes(&mut self, now: Timestamp) {
        let mut due = Vec::new();
        let mut changes = Vec::new();
        let names: Vec<String> = self.targets.iter().map(|(n, _)| n.to_owned()).collect();
        for name in names {
            let Some(tt) = self.targets.trunk_mut(&name) else {
                continue;
            };
            let policy = tt.policy;
            for e in &mut tt.entries {
                if let Some(t) = e.probe.expire(&policy, now) {
                    changes.push((name.clone(), e.spec.addr, t));
                }
                if e.probe.ping_due(now) {
                    due.push((name.clone(), e.spec.addr));
                }
            }
        }
        for (name, addr, t) in changes {
            self.target_changed(&name, addr, t);
        }
        for (name, addr) in due {
            self.send_ping(now, &name, addr);
        }
    }

    fn send_ping(&mut self, now: Timestamp, name: &str, addr: SocketAddr) {
        let cfg = self.cfg.clone();
        let Some((id, tcfg)) = cfg
            .trunk_by_name(name)
            .and_then(|id| cfg.trunk(id).map(|t| (id, t)))
        else {
            return;
        };
        let transport = tcfg.transport;
        let via = self.via_listener(Some(id), transport);
        let our = Self::our_hostport(&cfg, id, transport);
        let host = tcfg
            .tls_server_name
            .as_ref()
            .map_or_else(|| addr.to_string(), |n| format!("{n}:{}", addr.port()));
        let tparam = match transport {
            crate::transaction::Transport::Udp => "",
            crate::transaction::Transport::Tcp => ";transport=tcp",
            crate::transaction::Transport::Tls => ";transport=tls",
        };
        let mut req = SipMsg::request(Method::Options, format!("sip:{host}{tparam}"));
        req.push_header("Via", via.to_string());
        req.push_header("Max-Forwards", "70");
        let tag = self.random_hex();
        req.push_header("From", format!("<sip:ping@{our}>;tag={tag}"));
        req.push_header("To", format!("<sip:{host}>"));
        let call_id = format!("{}@{our}", self.random_hex());
        req.push_header("Call-ID", call_id);
        req.push_header("CSeq", "1 OPTIONS");
        req.push_header("Contact", format!("<sip:ping@{our}{tparam}>"));
        req.push_header("User-Agent", &cfg.node.user_agent);
        req.push_header("Accept", "application/sdp");
        self.ping_token += 1;
        let token = self.ping_token;
        let Some(policy) = self.targets.policy(name) else {
            return;
        };
        let dest = PeerAddr {
            transport,
            addr,
            conn: None,
        };
        let sent = self.txn.send_request(now, dest, req);
        if let Some(e) = self.targets.entry_mut(name, addr) {
            e.probe.ping_sent(&policy, now, token);
        }
        match sent {
            Ok(tx) => {
                self.ping_txs.insert(
                    tx,
                    PingTx {
                        trunk: name.to_owned(),
                        target: addr,
                        token,
                    },
                );
            }
            Err(_) => {
                let t = self
                    .targets
                    .entry_mut(name, addr)
                    .and_then(|e| e.probe.ping_failed(&policy, token));
                if let Some(t) = t {
                    self.target_changed(name, addr, t);
                }
            }
        }
    }

    /// A response to one of our pings: `true` when `tx` was a ping (consumed).
    pub(super) fn on_ping_response(&mut self, now: Timestamp, tx: TxId, resp: &SipMsg) -> bool {
        let status = resp.status().unwrap_or(0);
        if status < 200 {
            return self.ping_txs.contains_key(&tx);
        }
        let Some(p) = self.ping_txs.remove(&tx) else {
            return false;
        };
        let retry = super::headers::retry_after(resp).map(|s| u32::try_from(s).unwrap_or(u32::MAX));
        let Some(policy) = self.targets.policy(&p.trunk) else {
            return true;
        };
        let t = self
            .targets
            .entry_mut(&p.trunk, p.target)
            .and_then(|e| e.probe.answered(&policy, now, p.token, status, retry).ok())
            .flatten();
        if let Some(t) = t {
            self.target_changed(&p.trunk, p.target, t);
        }
        true
    }

    /// A ping transaction timed out or could not be sent: `true` when `tx` was a ping.
    pub(super) fn on_ping_failure(&mut self, tx: TxId) -> bool {
        let Some(p) = self.ping_txs.remove(&tx) else {
            return false;
        };
        let Some(policy) = self.targets.policy(&p.trunk) else {
            return true;
        };
        let t = self
            .targets
            .entry_mut(&p.trunk, p.target)
            .and_then(|e| e.probe.ping_failed(&policy, p.token));
        if let Some(t) = t {
            self.target_changed(&p.trunk, p.target, t);
        }
        true
    }

    fn target_changed(&mut self, trunk: &str, target: SocketAddr, t: Transition) {
        self.events.push_back(CallEvent::TargetHealth {
            trunk: trunk.to_owned(),
            target,
            up: t == Transition::Up,
        });
    }

    /// Chooses the target of an attempt of `call` on `target.trunk` (a followed
    /// 3xx keeps its Contact). `false`: the trunk has no usable target left for this call.
    /// `fresh`: a new leg of an established call (a transfer) may use any target.
    pub(super) fn pick_target(
        &mut self,
        now: Timestamp,
        call: u64,
        target: &mut Target,
        fresh: bool,
    ) -> bool {
        if target.redirect.is_some() {
            return true;
        }
        let Some(c) = self.calls.get(&call) else {
            return false;
        };
        let Some(name) = c.cfg.trunk(target.trunk).map(|t| t.name.clone()) else {
            return false;
        };
        let tried = if fresh { Vec::new() } else { c.tried.clone() };
        let txn = &mut self.txn;
        match self
            .targets
            .select(&name, now, &tried, || txn.next_random())
        {
            Some(addr) => {
                target.addr = Some(addr);
                true
            }
            None => false,
        }
    }

    /// An attempt of `call` went to `addr` on trunk `name`.
    pub(super) fn bind_target(&mut self, call: u64, name: &str, addr: SocketAddr) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.tried.push(addr);
            c.bound.push((name.to_owned(), addr));
            self.targets.call_bound(name, addr);
        }
    }

    /// The attempt of `call` toward `addr` is over (failed or moved on).
    pub(super) fn unbind_target(&mut self, call: u64, addr: SocketAddr) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some(i) = c.bound.iter().position(|(_, a)| *a == addr) {
            let (name, addr) = c.bound.swap_remove(i);
            self.targets.call_unbound(&name, addr);
        }
    }

    /// What a failed attempt teaches about its target: a `503` with
    /// `Retry-After` holds it off; a timeout (no answer at all) marks a pinged
    /// target down. Returns whether another target of the same trunk is worth
    /// trying for this call (408/5xx, and one is left).
    pub(super) fn learn_from_failure(
        &mut self,
        now: Timestamp,
        call: u64,
        (trunk, addr): (&str, SocketAddr),
        status: u16,
        retry_after: Option<u64>,
        timed_out: bool,
    ) -> bool {
        if let (503, Some(secs)) = (status, retry_after) {
            self.targets
                .hold_off(trunk, addr, now, std::time::Duration::from_secs(secs));
        }
        if timed_out {
            if let Some(t) = self.targets.call_timed_out(trunk, addr) {
                self.target_changed(trunk, addr, t);
            }
        }
        if let Some(tt) = self.targets.trunk_mut(trunk) {
            tt.failovers += 1;
        }
        let tried = self
            .calls
            .get(&call)
            .map(|c| c.tried.clone())
            .unwrap_or_default();
        self.targets.trunk(trunk).is_some_and(|t| {
            t.entries
                .iter()
                .any(|e| e.probe.usable(now) && !tried.contains(&e.spec.addr))
        })
    }

    /// The TLS name of the trunk one of whose targets is `addr`.
    pub(super) fn tls_name_of_target(&self, addr: SocketAddr) -> Option<String> {
        let name = self.targets.trunk_of(addr)?;
        let id = self.cfg.trunk_by_name(name)?;
        self.cfg.trunk(id)?.tls_server_name.clone()
    }
}

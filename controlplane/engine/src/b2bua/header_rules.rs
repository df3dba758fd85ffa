//! What crosses between legs beyond the fixed set of `headers`, for every
//! message the B2BUA relays (initial INVITE, responses, in-dialog requests and
//! their responses):
//!
//! - RFC 3325 trust domain: `P-Asserted-Identity` crosses only from a trusted
//!   trunk to a trusted trunk, `P-Preferred-Identity` only toward a trusted
//!   trunk; both leave the trust domain never, whatever `Privacy` says, and
//!   `Privacy` itself always crosses, so `Privacy: id` (RFC 3325 §9.3) is
//!   honoured inside the domain by its members and outside it by us. Each
//!   identity keeps its display name and user (translated by the route's
//!   calling-number rules on the routed direction), with our host.
//! - Diversion (RFC 5806) and History-Info (RFC 7044) cross with each
//!   entry's user translated by the route's called-number rules (toward
//!   the target's trunk) on the routed direction, our host instead of
//!   theirs, parameters and the History-Info `?Reason=` kept.
//! - `User-to-User` (RFC 7433) crosses unchanged.
//! - Then the trunks' rules ([`crate::trunk_policy::headers`]): the inbound
//!   rules of the trunk the message came from, the outbound rules of the
//!   trunk it goes to.

use portcullis_sip::grammar::CommaSplit;

use super::headers::{display_of, name_addr, user_of};
use super::B2bua;
use crate::config::{EngineConfig, TrunkId};
use crate::media::{MediaControl, Side};
use crate::routing::Translations;
use crate::transaction::message::addr_uri;
use crate::transaction::SipMsg;
use crate::trunk_policy::headers::apply;
use crate::trunk_policy::template::header_safe;
use crate::trunk_policy::Vars;

/// Our host in URIs toward `trunk` (as in the initial INVITE's From): the
/// trunk's `fqdn_contact`, else the node FQDN, else our listener's address.
pub(super) fn host_toward(cfg: &EngineConfig, trunk: TrunkId) -> String {
    let t = cfg.trunk(trunk);
    t.and_then(|t| t.fqdn_contact.clone())
        .or_else(|| cfg.node.fqdn.clone())
        .unwrap_or_else(|| {
            let transport = t.map_or(crate::transaction::Transport::Udp, |t| t.transport);
            cfg.trunk_listener(trunk, transport)
                .map_or_else(|| String::from("0.0.0.0"), |l| l.addr.to_string())
        })
}

/// Headers the default set passes unchanged (besides `headers`' whitelist).
const PASSED: &[&str] = &["User-to-User"];

/// One relayed message: where it comes from and goes, and the call's values.
pub(super) struct Crossing<'a> {
    pub cfg: &'a EngineConfig,
    pub from: TrunkId,
    pub to: TrunkId,
    /// The route's translations when the message goes the routed way (caller
    /// to callee); `None` the other way or before routing.
    pub numbers: Option<&'a Translations>,
    /// Our host in URIs on the outgoing leg.
    pub host: &'a str,
    /// `${calling}` / `${called}` as sent on the outgoing leg.
    pub calling: &'a str,
    pub called: &'a str,
}

impl Crossing<'_> {
    fn trusted(&self, t: TrunkId) -> bool {
        self.cfg.trunk(t).is_some_and(|t| t.policy.trusted)
    }

    /// Adds to `out` what crosses from `src` (see the module docs); returns
    /// the number of trunk rules that changed it.
    pub fn apply(&self, src: &SipMsg, out: &mut SipMsg) -> usize {
        let (from_trusted, to_trusted) = (self.trusted(self.from), self.trusted(self.to));
        if to_trusted {
            if from_trusted {
                for v in src.header_values("P-Asserted-Identity") {
                    if let Some(id) = self.identity(v) {
                        out.push_header("P-Asserted-Identity", id);
                    }
                }
            }
            for v in src.header_values("P-Preferred-Identity") {
                if let Some(id) = self.identity(v) {
                    out.push_header("P-Preferred-Identity", id);
                }
            }
        }
        for name in ["Diversion", "History-Info"] {
            let entries: Vec<String> = src
                .header_values(name)
                .flat_map(CommaSplit::new)
                .filter_map(|e| self.redirect_entry(e))
                .collect();
            for e in entries {
                out.push_header(name, e);
            }
        }
        for name in PASSED {
            for v in src.header_values(name) {
                out.push_header(name, header_safe(v));
            }
        }
        let trunk_name = |t: TrunkId| self.cfg.trunk(t).map_or("", |t| t.name.as_str());
        let vars = Vars {
            calling: self.calling,
            called: self.called,
            trunk: trunk_name(self.from),
        };
        let mut changed = 0;
        if let Some(t) = self.cfg.trunk(self.from) {
            changed += apply(&t.policy.headers, true, src, out, &vars);
        }
        if let Some(t) = self.cfg.trunk(self.to) {
            changed += apply(&t.policy.headers, false, src, out, &vars);
        }
        changed
    }

    /// An identity (`["name"] <uri>`) rebuilt with our host, its user
    /// translated as a calling number on the routed way. `None` without user.
    fn identity(&self, v: &str) -> Option<String> {
        let user = user_of(v);
        if user.is_empty() {
            return None;
        }
        let user = self
            .numbers
            .map_or_else(|| user.to_owned(), |n| n.calling(user));
        Some(name_addr(display_of(v), &user, self.host))
    }

    /// A Diversion / History-Info entry with its user translated as a called
    /// number on the routed way, our host, its parameters (and a
    /// History-Info `?Reason=`) kept. `None` when it names no user.
    fn redirect_entry(&self, e: &str) -> Option<String> {
        let e = e.trim();
        let uri = addr_uri(e);
        let user = user_of(uri);
        if user.is_empty() {
            return None;
        }
        let user = self
            .numbers
            .map_or_else(|| user.to_owned(), |n| n.called(self.to, user));
        let headers = uri
            .split_once('?')
            .map(|(_, h)| h)
            .filter(|h| h.to_ascii_lowercase().starts_with("reason="));
        let params = match e.split_once('>') {
            Some((_, p)) => p.trim(),
            None => e.split_once(';').map_or("", |(_, p)| p),
        };
        let base = name_addr(display_of(e), &user, self.host);
        let mut out = match headers {
            Some(h) => format!("{}?{h}>", base.trim_end_matches('>')),
            None => base,
        };
        if !params.is_empty() {
            if !params.starts_with(';') {
                out.push(';');
            }
            out.push_str(params);
        }
        Some(header_safe(&out))
    }
}

impl<M: MediaControl> B2bua<M> {
    /// Adds to `out` (going to `to` of `call`) what crosses from `src`
    /// (received on the other side): trust domain, Diversion, History-Info,
    /// the trunks' header rules (`header_rules`).
    pub(super) fn cross_headers(&mut self, call: u64, to: Side, src: &SipMsg, out: &mut SipMsg) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let (Some(from_t), Some(to_t)) = (Self::leg_trunk(c, to.other()), Self::leg_trunk(c, to))
        else {
            return;
        };
        let host = host_toward(&c.cfg, to_t);
        let (calling, called) = match to {
            Side::B => (
                c.calling.as_str(),
                c.b.as_ref()
                    .map_or(c.called.as_str(), |b| b.target.called.as_str()),
            ),
            Side::A => (c.a_calling.as_str(), c.called.as_str()),
        };
        let x = Crossing {
            cfg: &c.cfg,
            from: from_t,
            to: to_t,
            numbers: c.numbers.as_ref().filter(|_| to == Side::B),
            host: &host,
            calling,
            called,
        };
        self.stats.header_rules_applied += x.apply(src, out) as u64;
    }
}

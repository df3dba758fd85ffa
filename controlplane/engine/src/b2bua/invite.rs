//! Initial INVITE: the A leg arrives, the B leg is tried target after target
//! (failures: `failover.rs`). The first 2xx wins: later 2xx from other forks (§13.2.2.4) are ACKed
//! and BYE'd. CANCEL (§9.2) ends the call at once; a B 2xx racing our CANCEL
//! is ACKed and BYE'd (the ended call lingers 64·T1 for it).

use std::collections::{BTreeMap, VecDeque};

use portcullis_sip::sdp::SessionDescription;

use super::answer::Unwanted;
use super::call::{ALeg, BLeg, Call, CallState, CallTimer, ClientRole};
use super::failover::default_reason;
use super::headers::{copy_safe, display_of, has_sdp, name_addr, unsupported_required, user_of};
use super::route::Target;
use super::sdp_rewrite::MediaState;
use super::stats::Outcome;
use super::{B2bua, CallEvent};

/// Reason phrase of a refusal to put a party on a side whose media ports are in
/// another realm than its trunk's.
pub(super) const REALM_MISMATCH: &str = "Media Realm Mismatch";
use crate::cdr::EndReason;
use crate::config::{MediaMode, RedirectMode};
use crate::dialog::Dialog;
use crate::media::{MediaControl, Side};
use crate::routing::RouteReject;
use crate::time::Timestamp;
use crate::transaction::{Method, PeerAddr, SipMsg, TxId};

impl<M: MediaControl> B2bua<M> {
    /// A new INVITE (no To tag) from a classified source.
    pub(super) fn on_new_invite(
        &mut self,
        now: Timestamp,
        tx: TxId,
        from: PeerAddr,
        trunk: crate::config::TrunkId,
        req: &SipMsg,
    ) {
        if self.draining {
            self.stats.drain_rejects += 1;
            self.reject(now, tx, req, from, 503, "Service Unavailable");
            return;
        }
        if self
            .cfg
            .policy
            .max_calls
            .is_some_and(|max| self.live_calls >= max as usize)
        {
            // All trunks together, bypassed calls included: the engine's own bound.
            self.stats.call_limit_rejects += 1;
            self.reject(now, tx, req, from, 503, "Service Unavailable (call limit)");
            return;
        }
        if self.cdr_backpressure {
            self.stats.cdr_rejects += 1;
            self.reject(now, tx, req, from, 503, "Service Unavailable");
            return;
        }
        if req
            .header("Max-Forwards")
            .and_then(|m| m.trim().parse::<u32>().ok())
            == Some(0)
        {
            self.reject(now, tx, req, from, 483, "Too Many Hops");
            return;
        }
        if let super::auth::Inbound::Answered =
            self.check_inbound_auth(now, tx, req, trunk, from.addr.ip())
        {
            return;
        }
        if let Some(se) = req
            .header("Session-Expires")
            .and_then(|v| v.split(';').next())
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            let min = self.cfg.timers.min_se.as_secs();
            if se < min {
                // RFC 4028 §8.1: too small an interval.
                let mut r = self.response(req, 422, "Session Interval Too Small", Some("se"));
                r.push_header("Min-SE", min.to_string());
                self.send_response(now, tx, &r);
                return;
            }
        }
        let unsupported = unsupported_required(req);
        if !unsupported.is_empty() {
            let mut r = self.response(req, 420, "Bad Extension", Some("bx"));
            r.push_header("Unsupported", unsupported.join(", "));
            self.send_response(now, tx, &r);
            return;
        }
        if let Some(v) = req.header("Replaces").map(str::to_owned) {
            self.on_invite_replaces(now, tx, from, trunk, req, &v);
            return;
        }
        let cfg = self.cfg.clone();
        let inbound_name = Self::trunk_name(&cfg, trunk);
        let called = user_of(req.request_uri().unwrap_or("")).to_owned();
        let calling = user_of(req.header("From").unwrap_or("")).to_owned();
        self.stats.calls_total += 1;
        self.stats.trunk(&inbound_name).inbound += 1;
        let id = self.next_call;
        self.next_call += 1;
        let a_tag = self.random_hex();
        let a_contact = super::identity::leg_contact(&cfg, trunk, from.transport);
        let a_call_id = req.call_id().unwrap_or("").to_owned();
        let call = Call {
            id,
            cfg: cfg.clone(),
            state: CallState::Proceeding,
            a: ALeg {
                peer: from,
                trunk,
                invite_tx: tx,
                invite: req.clone(),
                tag: a_tag.clone(),
                contact: a_contact,
                dialog: None,
                final_sent: false,
            },
            b: None,
            route: String::new(),
            numbers: None,
            targets: VecDeque::new(),
            redirect: RedirectMode::Follow,
            a_calling: calling.clone(),
            calling: calling.clone(),
            called: called.clone(),
            media: None,
            a_offer: None,
            offer_from: None,
            reinvite_pending: false,
            deferred_ack: None,
            answer_in_ack: None,
            timers: BTreeMap::new(),
            session: [None, None],
            setup_at: now,
            answer_at: None,
            end_reason: None,
            final_status: None,
            dialog_keys: vec![(a_call_id.clone(), a_tag.clone())],
            held_trunks: Vec::new(),
            tried: Vec::new(),
            bound: Vec::new(),
            last_failure: None,
            codec_refusal: None,
            client_txs: Vec::new(),
            server_txs: vec![tx],
            redirects: 0,
            a_rseq: 0,
            prack_map: Vec::new(),
            rel1xx: None,
            transfer: None,
            join: None,
            ha: None,
        };
        self.calls.insert(id, call);
        self.live_calls += 1;
        self.by_dialog.insert((a_call_id, a_tag), (id, Side::A));
        self.by_invite_tx.insert(tx, (id, Side::A));
        self.events.push_back(CallEvent::CallStarted {
            call: id,
            inbound_trunk: inbound_name.clone(),
            calling: calling.clone(),
            called: called.clone(),
        });
        // Inbound trunk limit.
        if !self.acquire_trunk(id, trunk) {
            self.stats.trunk_limit_rejects += 1;
            self.stats.outcome(&inbound_name, Outcome::Refused);
            self.end_call(
                now,
                id,
                EndReason::Rejected { status: 503 },
                Some((503, "Service Unavailable")),
            );
            return;
        }
        let decision = match self.router.route(trunk, &called, &calling) {
            Ok(d) => d,
            Err(rej) => {
                let status = rej.status();
                let (reason, outcome) = match rej {
                    RouteReject::NoRoute => (EndReason::NoRoute, Outcome::NoRoute),
                    _ => (EndReason::Rejected { status }, Outcome::Failed),
                };
                self.stats.outcome(&inbound_name, outcome);
                self.end_call(now, id, reason, Some((status, default_reason(status))));
                return;
            }
        };
        let offer = if has_sdp(req) {
            match SessionDescription::parse(req.body()) {
                Ok(s) => Some(s),
                Err(_) => {
                    self.stats.outcome(&inbound_name, Outcome::Failed);
                    self.end_call(
                        now,
                        id,
                        EndReason::Rejected { status: 488 },
                        Some((488, "Not Acceptable Here")),
                    );
                    return;
                }
            }
        } else {
            None
        };
        // Media bypass: every trunk the call may use is `bypass` and the caller
        // offers SDP (a delayed offer needs our own offer, so it is anchored).
        let bypass = offer.is_some()
            && std::iter::once(trunk)
                .chain(decision.targets.iter().map(|t| t.trunk))
                .all(|t| cfg.trunk(t).is_some_and(|t| t.media == MediaMode::Bypass));
        // Each side's ports are in its trunk's media realm; the targets of a route share
        // one (checked with the configuration), a target in another is skipped.
        let realms = [
            cfg.trunk_realm(trunk),
            decision
                .targets
                .first()
                .map_or_else(|| cfg.trunk_realm(trunk), |t| cfg.trunk_realm(t.trunk)),
        ];
        let alloc = if bypass {
            None
        } else if let Ok(a) = self.media.allocate(realms) {
            Some(a)
        } else {
            self.stats.media_errors += 1;
            self.stats.outcome(&inbound_name, Outcome::Refused);
            self.end_call(
                now,
                id,
                EndReason::Rejected { status: 503 },
                Some((503, "Service Unavailable")),
            );
            return;
        };
        let sids = [self.txn.next_random() >> 2, self.txn.next_random() >> 2];
        let a_mode = cfg.trunk(trunk).map_or(MediaMode::Rtp, |t| t.media);
        if let Some(alloc) = &alloc {
            self.by_media.insert(alloc.id, id);
        } else {
            self.stats.media_bypassed += 1;
        }
        let no_answer = now + cfg.timers.no_answer;
        if let Some(c) = self.calls.get_mut(&id) {
            c.media = alloc.map(|alloc| MediaState::new(alloc, realms, sids));
            if offer.is_some() {
                c.offer_from = Some(Side::A);
            }
            c.a_offer = offer;
            c.numbers = self.router.translations(&decision.route);
            self.events.push_back(CallEvent::CallRouted {
                call: id,
                route: decision.route.clone(),
            });
            c.route = decision.route;
            c.calling = decision.calling;
            c.redirect = decision.redirect;
            c.targets = decision
                .targets
                .into_iter()
                .map(|t| Target {
                    trunk: t.trunk,
                    called: t.called,
                    redirect: None,
                    addr: None,
                })
                .collect();
        }
        if let Some(o) = self.calls.get(&id).and_then(|c| c.a_offer.clone()) {
            self.anchor_streams(id, &o);
            if let Some(ms) = self.calls.get_mut(&id).and_then(|c| c.media.as_mut()) {
                ms.learn(Side::A, &o, a_mode);
            }
        }
        self.set_leg_teams(id, Side::A, trunk);
        if let Err(why) = self.offer_codecs(id, Side::A, req) {
            // Nothing the inbound trunk may use: no target could take it.
            self.refuse_call_codecs(now, id, &why.to_string());
            return;
        }
        self.set_timer(id, CallTimer::NoAnswer, no_answer);
        self.next_target(now, id);
    }

    /// Whether a party reached through `trunk` may take `side` of `call`: the side's ports
    /// are in that trunk's media realm (always, for a call whose media is not anchored).
    pub(super) fn realm_fits(&self, call: u64, side: Side, trunk: crate::config::TrunkId) -> bool {
        self.calls.get(&call).is_none_or(|c| {
            c.media
                .as_ref()
                .is_none_or(|m| m.realms[super::sdp_rewrite::ix(side)] == c.cfg.trunk_realm(trunk))
        })
    }

    /// Takes a call slot on `trunk` (false when at its limit).
    pub(super) fn acquire_trunk(&mut self, call: u64, trunk: crate::config::TrunkId) -> bool {
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        let Some(t) = c.cfg.trunk(trunk) else {
            return false;
        };
        if !self.trunk_calls.try_acquire(t) {
            return false;
        }
        c.held_trunks.push(trunk);
        true
    }

    /// Gives back one slot of `trunk` held by `call`.
    pub(super) fn release_trunk(&mut self, call: u64, trunk: crate::config::TrunkId) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some(pos) = c.held_trunks.iter().position(|t| *t == trunk) {
            c.held_trunks.remove(pos);
            if let Some(t) = c.cfg.trunk(trunk) {
                self.trunk_calls.release(&t.name);
            }
        }
    }

    /// Tries the next usable target, or fails the call when none is left.
    pub(super) fn next_target(&mut self, now: Timestamp, call: u64) {
        loop {
            let Some(c) = self.calls.get_mut(&call) else {
                return;
            };
            let Some(mut target) = c.targets.pop_front() else {
                let (status, reason) = c
                    .last_failure
                    .clone()
                    .unwrap_or((503, String::from("Service Unavailable")));
                if let (488, Some(why)) = (status, c.codec_refusal.clone()) {
                    self.refuse_call_codecs(now, call, &why);
                    return;
                }
                let inbound = Self::trunk_name(&c.cfg.clone(), c.a.trunk);
                self.stats.outcome(&inbound, Outcome::Failed);
                self.end_call(
                    now,
                    call,
                    EndReason::Rejected { status },
                    Some((status, &reason)),
                );
                return;
            };
            if c.cfg.trunk(target.trunk).is_none() {
                continue;
            }
            if !self.realm_fits(call, Side::B, target.trunk) {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.last_failure
                        .get_or_insert_with(|| (503, String::from(REALM_MISMATCH)));
                }
                continue;
            }
            if !self.pick_target(now, call, &mut target, false) {
                // Every target of the trunk is down, held off or already tried.
                if let Some(c) = self.calls.get_mut(&call) {
                    if c.last_failure.is_none() {
                        c.last_failure = Some((503, String::from("Service Unavailable")));
                    }
                }
                continue;
            }
            if !self.acquire_trunk(call, target.trunk) {
                self.stats.trunk_limit_rejects += 1;
                if let Some(c) = self.calls.get_mut(&call) {
                    c.last_failure = Some((503, String::from("Service Unavailable")));
                }
                continue;
            }
            if self.start_attempt(now, call, target) {
                return;
            }
        }
    }

    /// The headers of an initial INVITE toward `target` for `call` (no body):
    /// (request, destination, Call-ID, our From tag, our Contact).
    /// `caller`: the calling user when it is not the A party's (a transfer
    /// referred by A: the B party calls the target).
    pub(super) fn build_b_invite(
        &mut self,
        call: u64,
        target: &Target,
        caller: Option<&str>,
    ) -> Option<(SipMsg, PeerAddr, String, String, String)> {
        let c = self.calls.get(&call)?;
        let cfg = c.cfg.clone();
        let tcfg = cfg.trunk(target.trunk)?;
        let transport = tcfg.transport;
        let dest_addr = target.redirect.or(target.addr).unwrap_or(tcfg.address);
        let dest = PeerAddr {
            transport,
            addr: dest_addr,
            conn: None,
        };
        let our_host = tcfg
            .fqdn_contact
            .clone()
            .or_else(|| cfg.node.fqdn.clone())
            .unwrap_or_else(|| Self::our_hostport(&cfg, target.trunk, transport));
        let teams_out = cfg.is_teams_trunk(target.trunk);
        let a_trunk = c.a.trunk;
        let numbers = c.numbers.clone();
        // Toward Teams our Contact is always an FQDN (Direct Routing refuses IPs).
        let contact = super::identity::leg_contact(&cfg, target.trunk, transport);
        let their_host = super::identity::target_hostport(
            &cfg,
            target.trunk,
            dest_addr,
            target.redirect.is_some(),
        );
        let tparam = super::identity::transport_param(transport);
        let a_inv = c.a.invite.clone();
        let calling = caller.map_or_else(|| c.calling.clone(), str::to_owned);
        let b_call_id = format!("{}@{}", self.random_hex(), our_host);
        let b_tag = self.random_hex();
        let via = self.via_on(&cfg, target.trunk, transport);
        let uri = format!("sip:{}@{}{}", target.called, their_host, tparam);
        let mut inv = SipMsg::request(Method::Invite, &uri);
        inv.push_header("Via", via.to_string());
        let mf = a_inv
            .header("Max-Forwards")
            .and_then(|m| m.trim().parse::<u32>().ok())
            .map_or(70, |m| m.saturating_sub(1).min(70));
        inv.push_header("Max-Forwards", mf.to_string());
        let from_display =
            display_of(a_inv.header("From").unwrap_or("")).filter(|_| caller.is_none());
        inv.push_header(
            "From",
            format!(
                "{};tag={b_tag}",
                name_addr(from_display, &calling, &our_host)
            ),
        );
        inv.push_header("To", name_addr(None, &target.called, &their_host));
        inv.push_header("Call-ID", &b_call_id);
        inv.push_header("CSeq", "1 INVITE");
        inv.push_header("Contact", &contact);
        inv.push_header("User-Agent", &cfg.node.user_agent);
        copy_safe(&a_inv, &mut inv, false);
        let x = super::header_rules::Crossing {
            cfg: &cfg,
            from: a_trunk,
            to: target.trunk,
            numbers: numbers.as_ref(),
            host: &our_host,
            calling: &calling,
            called: &target.called,
        };
        let mut src = a_inv.clone();
        if caller.is_some() {
            // The B party calls the target: the caller's identity is not its own.
            src.remove_header("P-Asserted-Identity");
            src.remove_header("P-Preferred-Identity");
        }
        let applied = x.apply(&src, &mut inv);
        self.stats.header_rules_applied += applied as u64;
        if teams_out {
            inv.push_header("X-MS-SBC", super::x_ms_sbc());
        }
        inv.push_header("Supported", "timer");
        if super::prack::has_100rel(&a_inv, "Supported") {
            inv.push_header("Supported", "100rel");
        }
        if super::prack::has_100rel(&a_inv, "Require") {
            inv.push_header("Require", "100rel");
        }
        inv.push_header(
            "Session-Expires",
            cfg.timers.session_expires.as_secs().to_string(),
        );
        inv.push_header("Min-SE", cfg.timers.min_se.as_secs().to_string());
        Some((inv, dest, b_call_id, b_tag, contact))
    }

    /// Sends the INVITE of a new B leg. False when it could not be sent.
    fn start_attempt(&mut self, now: Timestamp, call: u64, target: Target) -> bool {
        let Some((mut inv, dest, b_call_id, b_tag, contact)) =
            self.build_b_invite(call, &target, None)
        else {
            return false;
        };
        let Some(c) = self.calls.get(&call) else {
            return false;
        };
        let cfg = c.cfg.clone();
        let Some(tcfg) = cfg.trunk(target.trunk) else {
            return false;
        };
        let a_offer = c.a_offer.clone();
        let b_mode = tcfg.media;
        let trunk_name = tcfg.name.clone();
        // Body: the caller's offer rewritten, or our own offer (no delayed offer toward B).
        // A new attempt: Teams flags, ICE credentials and codec policy for this target only.
        self.set_leg_teams(call, Side::B, target.trunk);
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        let refused = match (&a_offer, c.media.as_ref()) {
            (Some(o), Some(ms)) => ms.check_offer(Side::A, o).err(),
            _ => None,
        };
        if let Some(why) = refused {
            // This target's trunk takes none of the caller's codecs: the next one may.
            c.last_failure = Some((488, String::from("Not Acceptable Here")));
            c.codec_refusal = Some(why.to_string());
            self.release_trunk(call, target.trunk);
            return false;
        }
        let body = match c.media.as_mut() {
            Some(ms) => {
                let entropy = self.txn.entropy();
                let mut nk = || Self::new_key(&mut *entropy);
                Some(match &a_offer {
                    Some(o) => ms.rewrite_for(Side::B, o, b_mode, false, &mut nk),
                    None => ms.own_offer(Side::B, b_mode, &mut nk),
                })
            }
            // Bypass: the caller's offer as it came.
            None => has_sdp(&c.a.invite).then(|| c.a.invite.body().to_vec()),
        };
        if let Some(body) = body {
            inv.push_header("Content-Type", "application/sdp");
            inv.set_body(body);
        }
        if a_offer.is_none() {
            c.offer_from = Some(Side::B);
        }
        // Replace the previous attempt (its dialog key goes away).
        if let Some(old) = c.b.take() {
            self.by_dialog.remove(&(old.call_id, old.tag));
        }
        self.update_media(call);
        self.stats.trunk(&trunk_name).outbound += 1;
        let Some(tx) = self.send_on(now, call, dest, inv.clone(), ClientRole::Invite { dest })
        else {
            self.release_trunk(call, target.trunk);
            return false;
        };
        self.by_dialog
            .insert((b_call_id.clone(), b_tag.clone()), (call, Side::B));
        if target.redirect.is_none() {
            self.bind_target(call, &trunk_name, dest.addr);
        }
        self.events.push_back(CallEvent::AttemptStarted {
            call,
            trunk: trunk_name,
            target: dest.addr,
            b_call_id: b_call_id.clone(),
        });
        if let Some(c) = self.calls.get_mut(&call) {
            c.dialog_keys.push((b_call_id.clone(), b_tag.clone()));
            c.b = Some(BLeg::new(target, dest, b_call_id, b_tag, contact, inv).calling(tx));
        }
        true
    }

    /// A response to an initial INVITE we sent on a B leg.
    pub(super) fn on_b_invite_response(
        &mut self,
        now: Timestamp,
        call: u64,
        tx: TxId,
        dest: PeerAddr,
        resp: &SipMsg,
    ) {
        let status = resp.status().unwrap_or(0);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let current = c.state != CallState::Ended
            && c.b
                .as_ref()
                .is_some_and(|b| b.invite_tx == Some(tx) && !b.cancelled);
        if !current {
            // Ended, cancelled or superseded attempt.
            if (200..300).contains(&status) {
                self.ack_unwanted(now, call, tx, dest, resp, Unwanted::Bye { remember: true });
            } else if (101..200).contains(&status) {
                let pending =
                    c.b.as_mut()
                        .filter(|b| b.invite_tx == Some(tx) && b.cancel_pending);
                if let Some(b) = pending {
                    b.cancel_pending = false;
                    if let Ok(ctx) = self.txn.send_cancel(now, tx) {
                        self.by_client_tx.insert(ctx, (call, ClientRole::Own));
                    }
                }
            }
            return;
        }
        match status {
            100 => {}
            101..=199 => self.on_b_provisional(now, call, resp),
            200..=299 => {
                if c.state == CallState::Answered {
                    // Another fork answered too (§13.2.2.4): ACK it, then BYE it.
                    self.stats.forked_answers_released += 1;
                    let what = Unwanted::Bye { remember: false };
                    self.ack_unwanted(now, call, tx, dest, resp, what);
                } else {
                    self.on_b_answer(now, call, tx, dest, resp);
                }
            }
            _ if c.state == CallState::Answered => {}
            401 | 407 if self.answer_challenge(now, call, resp) => {}
            422 if self.retry_after_422(now, call, resp) => {}
            _ => self.on_b_failure(now, call, status, Some(resp)),
        }
    }

    /// 18x from B: relay to A (SDP rewritten), create the early dialogs.
    fn on_b_provisional(&mut self, now: Timestamp, call: u64, resp: &SipMsg) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(b) = c.b.as_mut() else {
            return;
        };
        b.provisional = true;
        if let Ok(Some(tag)) = resp.to_tag() {
            let same = b.dialog.as_ref().is_some_and(|d| d.id.remote_tag == tag);
            if !same {
                if let Ok(d) = Dialog::from_uac(&b.invite, resp) {
                    b.dialog = Some(d);
                }
            }
        }
        let status = resp.status().unwrap_or(180);
        let reason = resp
            .as_owned()
            .reason()
            .unwrap_or("Session Progress")
            .to_owned();
        let reliable =
            super::prack::has_100rel(resp, "Require") && super::prack::rseq_of(resp).is_some();
        let mut r = self.a_response(call, status, &reason, resp, reliable);
        if reliable {
            self.reliable_provisional(now, call, resp, &mut r);
        }
        if let Some(c) = self.calls.get_mut(&call) {
            if c.a.dialog.is_none() {
                c.a.dialog = Dialog::from_uas(&c.a.invite, &c.a.tag, &c.a.contact, false).ok();
            }
            r.push_header("Contact", c.a.contact.clone());
            let tx = c.a.invite_tx;
            self.send_response(now, tx, &r);
        }
    }

    /// Builds the response to A's INVITE relaying `resp` (whitelist + SDP rewrite).
    fn a_response(
        &mut self,
        call: u64,
        status: u16,
        reason: &str,
        resp: &SipMsg,
        completes: bool,
    ) -> SipMsg {
        let (inv, tag) = match self.calls.get(&call) {
            Some(c) => (c.a.invite.clone(), c.a.tag.clone()),
            None => return SipMsg::response(status, reason),
        };
        let mut r = self.response(&inv, status, reason, Some(&tag));
        let body = self.relay_sdp(call, Side::B, resp, completes);
        copy_safe(resp, &mut r, body.is_some());
        self.cross_headers(call, Side::A, resp, &mut r);
        if let Some(b) = body {
            if r.header("Content-Type").is_none() {
                r.push_header("Content-Type", "application/sdp");
            }
            r.set_body(b);
            self.update_media(call);
        }
        r
    }

    /// 2xx from B: ACK it, relay it to A, the call is answered.
    fn on_b_answer(&mut self, now: Timestamp, call: u64, tx: TxId, dest: PeerAddr, resp: &SipMsg) {
        self.ack_b_answer(call, tx, dest, resp);
        let reason = resp.as_owned().reason().unwrap_or("OK").to_owned();
        let status = resp.status().unwrap_or(200);
        let mut r = self.a_response(call, status, &reason, resp, true);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.rel1xx = None;
        r.push_header("Contact", c.a.contact.clone());
        match c.a.dialog.as_mut() {
            Some(d) => d.confirm(),
            None => c.a.dialog = Dialog::from_uas(&c.a.invite, &c.a.tag, &c.a.contact, true).ok(),
        }
        c.a.final_sent = true;
        c.state = CallState::Answered;
        c.answer_at = Some(now);
        let a_tx = c.a.invite_tx;
        let out_trunk = c.b.as_ref().map(|b| b.target.trunk);
        let cfg = c.cfg.clone();
        let in_trunk = c.a.trunk;
        self.session_on_answer(now, call, resp, &mut r);
        self.send_response(now, a_tx, &r);
        self.stop_timer(call, CallTimer::NoAnswer);
        let inbound = Self::trunk_name(&cfg, in_trunk);
        self.stats.outcome(&inbound, Outcome::Answered);
        self.events.push_back(CallEvent::CallAnswered {
            call,
            outbound_trunk: out_trunk
                .map(|t| Self::trunk_name(&cfg, t))
                .unwrap_or_default(),
        });
    }

    /// CANCEL from A (RFC 3261 §9.2): 200 to the CANCEL, 487 to the INVITE, B cancelled.
    pub(super) fn on_cancel(
        &mut self,
        now: Timestamp,
        tx: TxId,
        req: &SipMsg,
        cancels: Option<TxId>,
    ) {
        let Some(itx) = cancels else {
            self.reply(now, tx, req, 481, "Call/Transaction Does Not Exist", None);
            return;
        };
        let call = self.by_invite_tx.get(&itx).map(|(c, _)| *c);
        let tag = call
            .and_then(|c| self.calls.get(&c))
            .map(|c| c.a.tag.clone());
        self.reply(now, tx, req, 200, "OK", tag.as_deref());
        let Some(call) = call else {
            return;
        };
        let proceeding = self
            .calls
            .get(&call)
            .is_some_and(|c| c.state == CallState::Proceeding && c.a.invite_tx == itx);
        if proceeding {
            if let Some(c) = self.calls.get(&call) {
                let inbound = Self::trunk_name(&c.cfg.clone(), c.a.trunk);
                self.stats.outcome(&inbound, Outcome::Cancelled);
            }
            self.end_call(
                now,
                call,
                EndReason::Cancelled,
                Some((487, "Request Terminated")),
            );
        }
    }
}

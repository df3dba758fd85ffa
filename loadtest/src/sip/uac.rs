//! The caller side: INVITE/BYE/CANCEL client transactions and the caller's dialog.

use std::net::SocketAddr;

use portcullis_sip::sdp::SessionDescription;
use portcullis_sip::{HeaderName, Message, Method, OwnedMessage, Request};

use super::{
    call_key, sdp_crypto, ssrcs, tag_of, uri_of, Action, Kind, Out, Population, Retx, RetxOutcome,
    Side, UacState, MEDIA_DRAIN_NS, T1_NS, T2_NS,
};

impl Population {
    pub(super) fn uac_timer(&mut self, now: u64, idx: usize, out: &mut Vec<Out>) {
        let w = idx % self.workers();
        let Some(c) = self.uac.get_mut(idx) else {
            return;
        };
        if c.state == UacState::Done {
            return;
        }
        match Self::retx_fire(&mut c.retx, now, Side::Uac, out) {
            RetxOutcome::Sent(next) => {
                self.stats.retransmissions += 1;
                self.arm(Side::Uac, idx, next);
            }
            RetxOutcome::TimedOut(what) => {
                self.finish_uac(idx, now, Some(format!("timeout {what}")), out);
                return;
            }
            RetxOutcome::Idle => {}
        }
        let Some(c) = self.uac.get_mut(idx) else {
            return;
        };
        let Some((at, action)) = c.action else { return };
        if at > now {
            return;
        }
        c.action = None;
        match action {
            Action::StopMedia => {
                if c.media {
                    c.media = false;
                    out.push(Out::MediaRemove {
                        worker: w,
                        ssrc: ssrcs(idx).0,
                    });
                }
                if c.kind == Kind::CalleeBye {
                    // The callee hangs up; give it a generous deadline.
                    c.action = Some((now + 64 * T1_NS, Action::GiveUp));
                    self.arm(Side::Uac, idx, now + 64 * T1_NS);
                } else {
                    c.action = Some((now + MEDIA_DRAIN_NS, Action::SendBye));
                    self.arm(Side::Uac, idx, now + MEDIA_DRAIN_NS);
                }
                if self.established > 0 {
                    self.established -= 1;
                }
            }
            Action::SendBye => {
                c.cseq += 1;
                c.state = UacState::Terminating;
                let req = self.uac_in_dialog(idx, Method::Bye, None);
                self.send_uac_nict(idx, now, req, "BYE", out);
            }
            Action::SendCancel => {
                let a = self.cfg.uac_addr;
                let mut req = Request::builder(Method::Cancel, &c.ruri);
                req.push(
                    HeaderName::Via,
                    &format!("SIP/2.0/UDP {a};branch={};rport", c.invite_branch),
                )
                .push(HeaderName::MaxForwards, "70")
                .push(HeaderName::From, &c.from)
                .push(HeaderName::To, &c.to)
                .push(HeaderName::CallId, &c.call_id)
                .push(HeaderName::CSeq, &format!("{} CANCEL", c.invite_cseq));
                self.send_uac_nict(idx, now, req.to_bytes(), "CANCEL", out);
                if let Some(c) = self.uac.get_mut(idx) {
                    c.action = Some((now + 64 * T1_NS, Action::GiveUp));
                }
                self.arm(Side::Uac, idx, now + 64 * T1_NS);
            }
            Action::ReInvite => {
                c.cseq += 1;
                c.invite_cseq = c.cseq;
                let v = c.cseq;
                let media_addr = self
                    .cfg
                    .media_a
                    .get(w)
                    .copied()
                    .unwrap_or(self.cfg.uac_addr);
                let key = call_key(idx, 0);
                let crypto = self.cfg.srtp_caller.then_some((1, &key));
                let body = self.sdp(media_addr, v, crypto);
                let req = self.uac_in_dialog(idx, Method::Invite, Some(body));
                let t = self.cfg.target;
                out.push(Out::Send {
                    side: Side::Uac,
                    to: t,
                    bytes: req.clone(),
                });
                if let Some(c) = self.uac.get_mut(idx) {
                    c.retx = Some(Retx {
                        bytes: req,
                        to: t,
                        next: now + T1_NS,
                        interval: T1_NS,
                        give_up: now + 64 * T1_NS,
                        cap: u64::MAX,
                        what: "re-INVITE",
                    });
                }
                self.arm(Side::Uac, idx, now + T1_NS);
            }
            Action::GiveUp => {
                let why = match c.state {
                    UacState::Confirmed => "callee never hung up",
                    _ => "no final response",
                };
                self.finish_uac(idx, now, Some(why.to_string()), out);
            }
        }
    }

    pub(super) fn send_uac_nict(
        &mut self,
        idx: usize,
        now: u64,
        bytes: Vec<u8>,
        what: &'static str,
        out: &mut Vec<Out>,
    ) {
        let t = self.cfg.target;
        out.push(Out::Send {
            side: Side::Uac,
            to: t,
            bytes: bytes.clone(),
        });
        if let Some(c) = self.uac.get_mut(idx) {
            c.retx = Some(Retx {
                bytes,
                to: t,
                next: now + T1_NS,
                interval: T1_NS,
                give_up: now + 64 * T1_NS,
                cap: T2_NS,
                what,
            });
        }
        self.arm(Side::Uac, idx, now + T1_NS);
    }

    /// An in-dialog request from the caller (RFC 3261 §12.2.1.1).
    pub(super) fn uac_in_dialog(
        &mut self,
        idx: usize,
        method: Method,
        sdp: Option<Vec<u8>>,
    ) -> Vec<u8> {
        let branch = self.branch();
        let a = self.cfg.uac_addr;
        let Some(c) = self.uac.get(idx) else {
            return Vec::new();
        };
        let target = c.remote_target.clone().unwrap_or_else(|| c.ruri.clone());
        let mut req = Request::builder(method, &target);
        req.push(
            HeaderName::Via,
            &format!("SIP/2.0/UDP {a};branch={branch};rport"),
        )
        .push(HeaderName::MaxForwards, "70")
        .push(HeaderName::From, &c.from)
        .push(HeaderName::To, &c.to)
        .push(HeaderName::CallId, &c.call_id)
        .push(HeaderName::CSeq, &format!("{} {}", c.cseq, method.as_str()));
        for r in &c.route_set {
            req.push(HeaderName::Route, r);
        }
        if method == Method::Invite {
            req.push(HeaderName::Contact, &format!("<sip:lt@{a}>"));
        }
        if let Some(b) = sdp {
            req.set_body_with_type("application/sdp", b);
        }
        req.to_bytes()
    }

    pub(super) fn ack(&mut self, idx: usize, branch: Option<String>, cseq: u32) -> Vec<u8> {
        let branch = branch.unwrap_or_else(|| self.branch());
        let a = self.cfg.uac_addr;
        let Some(c) = self.uac.get(idx) else {
            return Vec::new();
        };
        let target = c.remote_target.clone().unwrap_or_else(|| c.ruri.clone());
        let mut req = Request::builder(Method::Ack, &target);
        req.push(
            HeaderName::Via,
            &format!("SIP/2.0/UDP {a};branch={branch};rport"),
        )
        .push(HeaderName::MaxForwards, "70")
        .push(HeaderName::From, &c.from)
        .push(HeaderName::To, &c.to)
        .push(HeaderName::CallId, &c.call_id)
        .push(HeaderName::CSeq, &format!("{cseq} ACK"));
        for r in &c.route_set {
            req.push(HeaderName::Route, r);
        }
        req.to_bytes()
    }

    pub(super) fn finish_uac(
        &mut self,
        idx: usize,
        _now: u64,
        failure: Option<String>,
        out: &mut Vec<Out>,
    ) {
        let w = idx % self.workers();
        let Some(c) = self.uac.get_mut(idx) else {
            return;
        };
        if c.state == UacState::Done {
            return;
        }
        if c.media {
            out.push(Out::MediaRemove {
                worker: w,
                ssrc: ssrcs(idx).0,
            });
        }
        if c.state == UacState::Confirmed && c.action.is_some_and(|(_, a)| a != Action::SendBye) {
            self.established = self.established.saturating_sub(1);
        }
        c.media = false;
        c.state = UacState::Done;
        c.retx = None;
        c.action = None;
        self.up = self.up.saturating_sub(1);
        match failure {
            None => self.stats.completed += 1,
            Some(r) => self.fail(r),
        }
    }

    pub(super) fn uac_index(&self, call_id: &str) -> Option<usize> {
        let rest = call_id.strip_prefix('c')?;
        let n: usize = rest.split('-').next()?.parse().ok()?;
        let c = self.uac.get(n)?;
        (c.call_id == call_id).then_some(n)
    }

    pub(super) fn uac_response(
        &mut self,
        now: u64,
        msg: &Message<'_>,
        code: u16,
        out: &mut Vec<Out>,
    ) {
        let Some(idx) = msg.call_id().and_then(|id| self.uac_index(id)) else {
            self.stats.stray += 1;
            return;
        };
        let Ok(cseq) = msg.cseq() else { return };
        let (method, seq) = (cseq.method.to_string(), cseq.seq);
        let to = msg.get(HeaderName::To).unwrap_or("").to_string();
        let contact = msg.get(HeaderName::Contact).map(|v| uri_of(v).to_string());
        let mut record_route: Vec<String> = msg
            .elements(HeaderName::RecordRoute)
            .map(|e| e.trim().to_string())
            .collect();
        record_route.reverse();
        let body = msg.body().to_vec();
        let workers = self.workers();
        let hold = self.cfg.hold_ns;
        let Some(c) = self.uac.get_mut(idx) else {
            return;
        };
        if c.state == UacState::Done {
            // A retransmitted 2xx after we finished: ACK it again below if INVITE.
            if method == "INVITE" && (200..300).contains(&code) {
                let ack = self.ack(idx, None, seq);
                out.push(Out::Send {
                    side: Side::Uac,
                    to: self.cfg.target,
                    bytes: ack,
                });
            }
            return;
        }
        match method.as_str() {
            "INVITE" if seq == c.invite_cseq => {
                if code < 200 {
                    if c.state == UacState::Calling {
                        c.state = UacState::Proceeding;
                        c.retx = None;
                        if c.kind == Kind::Cancel {
                            c.action = Some((now + 300_000_000, Action::SendCancel));
                            self.arm(Side::Uac, idx, now + 300_000_000);
                        } else {
                            c.action = Some((now + 64 * T1_NS, Action::GiveUp));
                            self.arm(Side::Uac, idx, now + 64 * T1_NS);
                        }
                    }
                    return;
                }
                let first = seq == 1;
                if (200..300).contains(&code) {
                    if tag_of(&c.to).is_none() {
                        c.to = to;
                    }
                    if let Some(ct) = contact {
                        c.remote_target = Some(ct);
                    }
                    let was_confirmed = c.state == UacState::Confirmed;
                    if first && !was_confirmed {
                        // RFC 3261 §12.1.2: the dialog's route set, fixed at its start.
                        c.route_set = record_route;
                    }
                    c.retx = None;
                    // The far end's SRTP key, announced to the media worker before the ACK
                    // (whose arrival lets the callee start sending).
                    let mut srtp_missing = false;
                    if self.cfg.srtp_caller && self.cfg.media && c.state != UacState::Terminating {
                        match sdp_crypto(&body) {
                            Some((_, key)) if c.rx_key != Some(key) => {
                                c.rx_key = Some(key);
                                out.push(Out::MediaExpect {
                                    worker: idx % workers,
                                    ssrc: ssrcs(idx).1,
                                    key,
                                });
                            }
                            Some(_) => {}
                            None => srtp_missing = first && !was_confirmed,
                        }
                    }
                    let ack = self.ack(idx, None, seq);
                    out.push(Out::Send {
                        side: Side::Uac,
                        to: self.cfg.target,
                        bytes: ack,
                    });
                    let Some(c) = self.uac.get_mut(idx) else {
                        return;
                    };
                    if srtp_missing {
                        self.finish_uac(idx, now, Some("answer without SDES crypto".into()), out);
                        return;
                    }
                    if first && !was_confirmed && c.state != UacState::Terminating {
                        c.state = UacState::Confirmed;
                        self.stats.answered += 1;
                        self.established += 1;
                        let setup = (now.saturating_sub(c.invite_sent) / 1000).max(1);
                        let _ = self.stats.setup_us.record(setup);
                        if self.cfg.media {
                            let dest = SessionDescription::parse(&body)
                                .ok()
                                .and_then(|s| s.rtp_destination(0));
                            match dest {
                                Some(dest) => {
                                    c.media = true;
                                    out.push(Out::MediaAdd {
                                        worker: idx % workers,
                                        socket: 0,
                                        ssrc: ssrcs(idx).0,
                                        dest,
                                        srtp: self.cfg.srtp_caller.then(|| call_key(idx, 0)),
                                    });
                                }
                                None => {
                                    self.finish_uac(idx, now, Some("bad answer SDP".into()), out);
                                    return;
                                }
                            }
                        }
                        let Some(c) = self.uac.get_mut(idx) else {
                            return;
                        };
                        let refresh = self.cfg.refresh_ns;
                        let next = if c.kind == Kind::ReInvite && hold > 0 {
                            (now + hold / 2, Action::ReInvite)
                        } else if refresh > 0 && refresh < hold {
                            (now + refresh, Action::ReInvite)
                        } else {
                            (now + hold, Action::StopMedia)
                        };
                        c.action = Some(next);
                        self.arm(Side::Uac, idx, next.0);
                    } else if !first {
                        // A re-INVITE answered: schedule the next refresh or the end.
                        self.stats.reinvites_ok += 1;
                        let end = c.invite_sent + hold;
                        let refresh = self.cfg.refresh_ns;
                        let next = if refresh > 0 && now + refresh < end {
                            (now + refresh, Action::ReInvite)
                        } else {
                            (end.max(now), Action::StopMedia)
                        };
                        if c.action.is_none() {
                            c.action = Some(next);
                            self.arm(Side::Uac, idx, next.0);
                        }
                    }
                } else {
                    // Non-2xx final: ACK in the INVITE transaction (RFC 3261 §17.1.1.3).
                    c.to = to;
                    let branch = c.invite_branch.clone();
                    let ack = self.ack(idx, Some(branch), seq);
                    out.push(Out::Send {
                        side: Side::Uac,
                        to: self.cfg.target,
                        bytes: ack,
                    });
                    let Some(c) = self.uac.get_mut(idx) else {
                        return;
                    };
                    if !first {
                        // Failed re-INVITE: the dialog goes on (RFC 3261 §14.1).
                        c.retx = None;
                        *self
                            .stats
                            .failures
                            .entry(format!("re-INVITE {code}"))
                            .or_default() += 1;
                        c.action = Some((now, Action::StopMedia));
                        self.arm(Side::Uac, idx, now);
                    } else if code == 487 && c.kind == Kind::Cancel {
                        self.finish_uac(idx, now, None, out);
                    } else {
                        self.finish_uac(idx, now, Some(code.to_string()), out);
                    }
                }
            }
            "BYE" if code >= 200 => {
                let failure = (!(200..300).contains(&code)).then(|| format!("BYE {code}"));
                self.finish_uac(idx, now, failure, out);
            }
            "CANCEL" if code >= 200 => {
                c.retx = None;
            }
            _ => {}
        }
    }

    pub(super) fn uac_request(
        &mut self,
        now: u64,
        from: SocketAddr,
        msg: &Message<'_>,
        out: &mut Vec<Out>,
    ) {
        let resp = OwnedMessage::response_to(msg, 200, "OK").to_bytes();
        out.push(Out::Send {
            side: Side::Uac,
            to: from,
            bytes: resp,
        });
        if msg.method() == Some("BYE") {
            if let Some(idx) = msg.call_id().and_then(|id| self.uac_index(id)) {
                let failure = match self.uac.get(idx).map(|c| c.kind) {
                    Some(Kind::CalleeBye) => None,
                    _ => Some("unexpected BYE from callee".to_string()),
                };
                self.finish_uac(idx, now, failure, out);
            }
        }
    }
}

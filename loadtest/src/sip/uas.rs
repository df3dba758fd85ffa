//! The callee side: answering, 2xx/487 retransmission until ACK (RFC 3261 §13.3.1.4),
//! CANCEL (§9.2), re-INVITE and BYE.

use std::net::SocketAddr;

use portcullis_sip::sdp::SessionDescription;
use portcullis_sip::{HeaderName, Message, Method, OwnedMessage, Request, Response};

use super::{
    call_index_of, call_key, sdp_crypto, ssrcs, tag_of, uri_of, user_of, Action, Kind, Out,
    Population, Retx, RetxOutcome, Side, UasCall, MEDIA_DRAIN_NS, T1_NS, T2_NS,
};

impl Population {
    pub(super) fn uas_response(&mut self, msg: &Message<'_>) {
        // 200 to our BYE ends the callee side.
        let Some(&idx) = msg.call_id().and_then(|id| self.uas_by_id.get(id)) else {
            return;
        };
        if let Some(c) = self.uas.get_mut(idx) {
            if msg.status().is_some_and(|s| s >= 200) {
                c.retx = None;
                c.done = true;
            }
        }
    }

    pub(super) fn uas_request(
        &mut self,
        now: u64,
        from: SocketAddr,
        msg: &Message<'_>,
        out: &mut Vec<Out>,
    ) {
        let Some(call_id) = msg.call_id() else { return };
        let method = msg.method().unwrap_or("");
        let existing = self.uas_by_id.get(call_id).copied();
        match (method, existing) {
            ("INVITE", None) => self.uas_new_invite(now, from, msg, call_id, out),
            ("INVITE", Some(idx)) => {
                let to_tagged = msg.get(HeaderName::To).and_then(tag_of).is_some();
                let Some(c) = self.uas.get_mut(idx) else {
                    return;
                };
                if !to_tagged {
                    // Retransmission of the initial INVITE: repeat the last response.
                    if let Some(r) = &c.last_response {
                        out.push(Out::Send {
                            side: Side::Uas,
                            to: from,
                            bytes: r.clone(),
                        });
                    }
                    return;
                }
                // re-INVITE: answer with the same SDP, retransmit until ACK.
                let w = c.worker;
                let uac_idx = c.uac_idx;
                let media = self
                    .cfg
                    .media_b
                    .get(w)
                    .copied()
                    .unwrap_or(self.cfg.uas_addr);
                let offered = sdp_crypto(msg.body());
                let key = uac_idx.map(|i| call_key(i, 1));
                let crypto = match (self.cfg.srtp_callee, offered, key.as_ref()) {
                    (true, Some((tag, rx)), Some(k)) => {
                        if c.rx_key != Some(rx) && c.media {
                            c.rx_key = Some(rx);
                            if let Some(i) = uac_idx {
                                out.push(Out::MediaExpect {
                                    worker: w,
                                    ssrc: ssrcs(i).0,
                                    key: rx,
                                });
                            }
                        }
                        Some((tag, k))
                    }
                    _ => None,
                };
                let sdp = self.sdp(media, 2, crypto);
                let mut ok = Response::to(msg, 200, "OK");
                ok.push(
                    HeaderName::Contact,
                    &format!("<sip:uas@{}>", self.cfg.uas_addr),
                );
                ok.set_body_with_type("application/sdp", sdp);
                self.uas_send_2xx(idx, now, from, ok.to_bytes(), out);
            }
            ("ACK", Some(idx)) => {
                let Some(c) = self.uas.get_mut(idx) else {
                    return;
                };
                c.retx = None;
                if !c.confirmed && c.kind != Kind::Cancel {
                    c.confirmed = true;
                    if let Some((dest, srtp)) = c.pending_media.take() {
                        c.media = true;
                        out.push(Out::MediaAdd {
                            worker: c.worker,
                            socket: 1,
                            ssrc: c.tx_ssrc,
                            dest,
                            srtp,
                        });
                    }
                    let at = now + self.cfg.hold_ns;
                    c.action = Some((at, Action::StopMedia));
                    self.arm(Side::Uas, idx, at);
                }
            }
            ("CANCEL", Some(idx)) => {
                out.push(Out::Send {
                    side: Side::Uas,
                    to: from,
                    bytes: Response::to(msg, 200, "OK").to_bytes(),
                });
                let Some(c) = self.uas.get(idx) else { return };
                if c.confirmed || c.last_response.is_none() {
                    return;
                }
                // 487 to the INVITE (RFC 3261 §9.2), retransmitted until ACK.
                let inv = c.last_response.clone().unwrap_or_default();
                let Ok(ringing) = Message::parse(&inv) else {
                    return;
                };
                let mut r = OwnedMessage::from_message(&ringing);
                r.set_status(487, "Request Terminated");
                r.clear_body();
                self.uas_send_2xx(idx, now, from, r.to_bytes(), out);
            }
            ("BYE", Some(idx)) => {
                out.push(Out::Send {
                    side: Side::Uas,
                    to: from,
                    bytes: Response::to(msg, 200, "OK").to_bytes(),
                });
                self.uas_stop_media(idx, out);
                if let Some(c) = self.uas.get_mut(idx) {
                    c.done = true;
                    c.action = None;
                    c.retx = None;
                }
            }
            ("ACK", None) => {}
            (_, _) => {
                let code = if existing.is_some() { 200 } else { 481 };
                out.push(Out::Send {
                    side: Side::Uas,
                    to: from,
                    bytes: Response::to(msg, code, "OK").to_bytes(),
                });
            }
        }
    }

    pub(super) fn uas_new_invite(
        &mut self,
        now: u64,
        from: SocketAddr,
        msg: &Message<'_>,
        call_id: &str,
        out: &mut Vec<Out>,
    ) {
        let to_v = msg.get(HeaderName::To).unwrap_or("");
        let kind = user_of(to_v)
            .and_then(|u| u.as_bytes().last().copied())
            .map(Kind::from_digit)
            .unwrap_or(Kind::Normal);
        let idx = self.uas.len();
        let w = idx % self.workers();
        let tag = format!("u{idx}");
        let remote_sdp = SessionDescription::parse(msg.body())
            .ok()
            .and_then(|s| s.rtp_destination(0));
        let uac_idx = user_of(to_v).and_then(call_index_of);
        let offered = sdp_crypto(msg.body());
        let local = format!("{to_v};tag={tag}");
        let remote = msg.get(HeaderName::From).unwrap_or("").to_string();
        let remote_target = msg
            .get(HeaderName::Contact)
            .map(|v| uri_of(v).to_string())
            .unwrap_or_else(|| format!("sip:{from}"));
        self.uas_by_id.insert(call_id.to_string(), idx);
        self.uas.push(UasCall {
            kind,
            peer: from,
            call_id: call_id.to_string(),
            local,
            remote,
            remote_target,
            cseq: 0,
            last_response: None,
            retx: None,
            action: None,
            media: false,
            confirmed: false,
            done: false,
            worker: w,
            uac_idx,
            rx_key: None,
            pending_media: None,
            tx_ssrc: ssrcs(uac_idx.unwrap_or(idx)).1,
        });
        let mut ringing = Response::to(msg, 180, "Ringing");
        ringing.set_to_tag(&tag);
        let ringing = ringing.to_bytes();
        out.push(Out::Send {
            side: Side::Uas,
            to: from,
            bytes: ringing.clone(),
        });
        if kind == Kind::Cancel {
            if let Some(c) = self.uas.get_mut(idx) {
                c.last_response = Some(ringing);
            }
            return;
        }
        let mut crypto = None;
        if self.cfg.srtp_callee {
            // SRTP toward the callee: the offer must carry a key, and the caller's SSRC
            // (hence its index, from the called number) must be known to key its stream.
            let (Some((tag, rx)), Some(i)) = (offered, uac_idx) else {
                let r = Response::to(msg, 488, "Not Acceptable Here");
                out.push(Out::Send {
                    side: Side::Uas,
                    to: from,
                    bytes: r.to_bytes(),
                });
                self.fail("offer without SDES crypto".to_string());
                return;
            };
            crypto = Some((tag, call_key(i, 1)));
            if self.cfg.media {
                if let Some(c) = self.uas.get_mut(idx) {
                    c.rx_key = Some(rx);
                }
                out.push(Out::MediaExpect {
                    worker: w,
                    ssrc: ssrcs(i).0,
                    key: rx,
                });
            }
        }
        if self.cfg.media {
            let Some(dest) = remote_sdp else {
                let r = Response::to(msg, 488, "Not Acceptable Here");
                out.push(Out::Send {
                    side: Side::Uas,
                    to: from,
                    bytes: r.to_bytes(),
                });
                return;
            };
            if let Some(c) = self.uas.get_mut(idx) {
                c.pending_media = Some((dest, crypto.map(|(_, k)| k)));
            }
        }
        let media = self
            .cfg
            .media_b
            .get(w)
            .copied()
            .unwrap_or(self.cfg.uas_addr);
        let mut ok = Response::to(msg, 200, "OK");
        ok.set_to_tag(&tag).push(
            HeaderName::Contact,
            &format!("<sip:uas@{}>", self.cfg.uas_addr),
        );
        let body = self.sdp(media, 1, crypto.as_ref().map(|(t, k)| (*t, k)));
        ok.set_body_with_type("application/sdp", body);
        self.uas_send_2xx(idx, now, from, ok.to_bytes(), out);
    }

    pub(super) fn uas_send_2xx(
        &mut self,
        idx: usize,
        now: u64,
        to: SocketAddr,
        bytes: Vec<u8>,
        out: &mut Vec<Out>,
    ) {
        out.push(Out::Send {
            side: Side::Uas,
            to,
            bytes: bytes.clone(),
        });
        if let Some(c) = self.uas.get_mut(idx) {
            c.last_response = Some(bytes.clone());
            c.retx = Some(Retx {
                bytes,
                to,
                next: now + T1_NS,
                interval: T1_NS,
                give_up: now + 64 * T1_NS,
                cap: T2_NS,
                what: "ACK (callee)",
            });
        }
        self.arm(Side::Uas, idx, now + T1_NS);
    }

    pub(super) fn uas_stop_media(&mut self, idx: usize, out: &mut Vec<Out>) {
        if let Some(c) = self.uas.get_mut(idx) {
            if c.media {
                c.media = false;
                out.push(Out::MediaRemove {
                    worker: c.worker,
                    ssrc: c.tx_ssrc,
                });
            }
        }
    }

    pub(super) fn uas_timer(&mut self, now: u64, idx: usize, out: &mut Vec<Out>) {
        let Some(c) = self.uas.get_mut(idx) else {
            return;
        };
        if c.done {
            return;
        }
        match Self::retx_fire(&mut c.retx, now, Side::Uas, out) {
            RetxOutcome::Sent(next) => {
                self.stats.retransmissions += 1;
                self.arm(Side::Uas, idx, next);
            }
            RetxOutcome::TimedOut(what) => {
                self.fail(format!("timeout {what}"));
                self.uas_stop_media(idx, out);
                if let Some(c) = self.uas.get_mut(idx) {
                    c.done = true;
                }
                return;
            }
            RetxOutcome::Idle => {}
        }
        let Some(c) = self.uas.get_mut(idx) else {
            return;
        };
        let Some((at, action)) = c.action else { return };
        if at > now {
            return;
        }
        c.action = None;
        match action {
            Action::StopMedia => {
                let bye = c.kind == Kind::CalleeBye;
                self.uas_stop_media(idx, out);
                if bye {
                    if let Some(c) = self.uas.get_mut(idx) {
                        c.action = Some((now + MEDIA_DRAIN_NS, Action::SendBye));
                    }
                    self.arm(Side::Uas, idx, now + MEDIA_DRAIN_NS);
                }
            }
            Action::SendBye => {
                let branch = self.branch();
                let a = self.cfg.uas_addr;
                let Some(c) = self.uas.get_mut(idx) else {
                    return;
                };
                c.cseq += 1;
                let mut req = Request::builder(Method::Bye, &c.remote_target);
                req.push(
                    HeaderName::Via,
                    &format!("SIP/2.0/UDP {a};branch={branch};rport"),
                )
                .push(HeaderName::MaxForwards, "70")
                .push(HeaderName::From, &c.local)
                .push(HeaderName::To, &c.remote)
                .push(HeaderName::CallId, &c.call_id)
                .push(HeaderName::CSeq, &format!("{} BYE", c.cseq));
                let bytes = req.to_bytes();
                let to = c.peer;
                out.push(Out::Send {
                    side: Side::Uas,
                    to,
                    bytes: bytes.clone(),
                });
                c.retx = Some(Retx {
                    bytes,
                    to,
                    next: now + T1_NS,
                    interval: T1_NS,
                    give_up: now + 64 * T1_NS,
                    cap: T2_NS,
                    what: "BYE (callee)",
                });
                self.arm(Side::Uas, idx, now + T1_NS);
            }
            _ => {}
        }
    }
}

//! Inbound messages: a datagram is classified (trunk, registration), checked by the
//! admission policy, handed to the transaction layer, and the transaction events are
//! dispatched to the call logic (initial requests, in-dialog requests, responses).

use super::*;

impl<M: MediaControl> B2bua<M> {
    /// One datagram or framed stream message from `from`.
    pub fn handle_datagram(&mut self, now: Timestamp, from: PeerAddr, bytes: &[u8]) {
        self.handle_datagram_with_names(now, from, None, bytes);
    }

    /// As [`Self::handle_datagram`], for TLS connections whose peer certificate
    /// names (verified by the driver) take part in trunk classification.
    pub fn handle_datagram_with_names(
        &mut self,
        now: Timestamp,
        from: PeerAddr,
        tls_peer_names: Option<&[String]>,
        bytes: &[u8],
    ) {
        self.stats.count_wire(bytes, true);
        self.last_now = self.last_now.max(now);
        let trunk = self
            .registrations
            .classify(&self.cfg, bytes, from.addr)
            .or_else(|| {
                route::classify(
                    &self.cfg,
                    &self.router,
                    &self.targets,
                    from.addr,
                    from.transport,
                    tls_peer_names,
                )
            });
        // Policy before any parsing: drops and bans cost nothing, scanners learn nothing.
        match self.policy.check_request(now, from.addr.ip(), trunk) {
            PolicyVerdict::Allow => {}
            PolicyVerdict::Reject403 => {
                self.on_unknown_source(now, from, bytes);
                return;
            }
            PolicyVerdict::Drop => {
                self.stats.dropped += 1;
                self.stats.policy_rejects += 1;
                return;
            }
            PolicyVerdict::RateLimited { until, new_ban } => {
                self.stats.dropped += 1;
                self.stats.policy_rejects += 1;
                if new_ban {
                    self.stats.bans += 1;
                    self.events.push_back(CallEvent::PolicyBan {
                        ip: from.addr.ip(),
                        duration: until.saturating_duration_since(now),
                    });
                }
                return;
            }
        }
        self.current_trunk = trunk;
        self.txn.handle_datagram(now, from, bytes);
        self.sync_parse_errors();
        self.process(now);
        self.current_trunk = None;
    }

    /// A datagram from a source no trunk claims, in reject mode: answered
    /// statelessly, once, with no transaction kept (RFC 3261 §8.2.6; a `403`
    /// costs one packet out and no memory, whatever the flood). Its ACK is
    /// absorbed; a response goes to the transaction layer (it matches a client
    /// transaction or is dropped, no state either way); a request inside a
    /// dialog we hold (a trunk's address changed on reload) is handled as usual.
    pub(super) fn on_unknown_source(&mut self, now: Timestamp, from: PeerAddr, bytes: &[u8]) {
        let msg = match crate::transaction::parse_message(bytes) {
            Ok(m) => m,
            Err(_) => {
                // Counted and answered 400 (when possible) statelessly by the layer.
                self.txn.handle_datagram(now, from, bytes);
                self.sync_parse_errors();
                return;
            }
        };
        let known_dialog = match (msg.call_id(), msg.to_tag()) {
            (Ok(id), Ok(Some(tag))) => self
                .by_dialog
                .contains_key(&(id.to_owned(), tag.to_owned())),
            _ => false,
        };
        if msg.method().is_none() || known_dialog {
            self.txn.handle_message(now, from, msg);
            self.sync_parse_errors();
            self.process(now);
            return;
        }
        if msg.method() == Some(&Method::Ack) {
            self.stats.absorbed_acks += 1;
            return;
        }
        let ua = self.cfg.node.user_agent.clone();
        if self
            .txn
            .respond_stateless(from, &msg, 403, "Forbidden", &[("Server", &ua)])
        {
            self.stats.policy_rejects += 1;
            self.count_rejected(from, 403, "Forbidden");
        } else {
            self.sync_parse_errors();
        }
    }

    /// Handles every pending transaction event (bounded).
    pub(super) fn process(&mut self, now: Timestamp) {
        for _ in 0..EVENT_BUDGET {
            let Some(ev) = self.txn.poll_event() else {
                return;
            };
            match ev {
                TxEvent::Request {
                    tx,
                    from,
                    request,
                    cancels,
                } => {
                    self.note_teams_request(tx);
                    self.on_request(now, tx, from, request, cancels);
                }
                TxEvent::Response { tx, response } => {
                    if !self.on_register_response(now, tx, &response) {
                        self.on_response(now, tx, &response);
                    }
                }
                TxEvent::Ack { tx, request, .. } => self.on_ack(now, tx, &request),
                TxEvent::StrayAck { .. } => {}
                TxEvent::Timeout { tx, timer } => {
                    self.stats.transaction_timeouts += 1;
                    if !self.on_register_failure(now, tx, "no answer (Timer F)") {
                        self.on_tx_failure(now, tx, timer == Timer::L, 408);
                    }
                }
                TxEvent::TransportError { tx } => {
                    if !self.on_register_failure(now, tx, "transport error") {
                        self.on_tx_failure(now, tx, false, 503);
                    }
                }
            }
        }
    }

    pub(super) fn on_request(
        &mut self,
        now: Timestamp,
        tx: TxId,
        from: PeerAddr,
        req: SipMsg,
        cancels: Option<TxId>,
    ) {
        let method = req.method().cloned().unwrap_or(Method::Ack);
        if method == Method::Cancel {
            self.on_cancel(now, tx, &req, cancels);
            return;
        }
        match req.to_tag() {
            Ok(Some(tag)) => {
                let key = (req.call_id().unwrap_or("").to_owned(), tag.to_owned());
                match self.by_dialog.get(&key).copied() {
                    Some((call, side)) => self.on_in_dialog(now, call, side, tx, req),
                    // §12.2.2: a request for a dialog we do not hold (a BYE after a
                    // restart, a stale re-INVITE) is answered, never left to retransmit.
                    None => self.reject(now, tx, &req, from, 481, DIALOG_UNKNOWN),
                }
            }
            _ => self.on_out_of_dialog(now, tx, from, &req),
        }
    }

    /// Requests without a To tag: INVITE starts a call, OPTIONS is answered here.
    pub(super) fn on_out_of_dialog(
        &mut self,
        now: Timestamp,
        tx: TxId,
        from: PeerAddr,
        req: &SipMsg,
    ) {
        let Some(trunk) = self.current_trunk else {
            self.stats.policy_rejects += 1;
            self.reject(now, tx, req, from, 403, "Forbidden");
            return;
        };
        match req.method() {
            Some(Method::Invite) => self.on_new_invite(now, tx, from, trunk, req),
            Some(Method::Options) => self.on_options(now, tx, req),
            _ => {
                let mut r = self.response(req, 405, "Method Not Allowed", Some("na"));
                r.push_header("Allow", ALLOW);
                self.send_response(now, tx, &r);
            }
        }
    }
}

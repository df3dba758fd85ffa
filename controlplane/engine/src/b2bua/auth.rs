//! Digest authentication on both legs (RFC 3261 §22, RFC 7616/8760 via
//! [`crate::digest`]).
//!
//! Inbound: a trunk with `auth_inbound` gets its INVITEs challenged (401 +
//! WWW-Authenticate, stateless HMAC nonces bound to the client's IP address,
//! valid [`NONCE_LIFETIME`]); the retried INVITE must carry a valid
//! `Authorization` for the configured user (wrong credentials → 403; expired
//! or forgotten nonce → a new challenge with `stale=true`; a nonce not issued
//! to this address → a new challenge). Replays are refused: per nonce the
//! nonce count must strictly increase and a nonce without `qop` is single-use
//! ([`crate::digest::NonceCountGuard`], at most
//! [`crate::digest::NONCE_GUARD_CAPACITY`] nonces), so a
//! captured INVITE or its `Authorization` on a new call gets a new challenge,
//! never a call (counted in `EngineStats::auth_replays`).
//! Outbound: a 401/407 from a target trunk with `auth_outbound` is answered
//! once per attempt: the INVITE is resent with `Authorization` /
//! `Proxy-Authorization`, CSeq + 1, a new branch, same Call-ID and tags
//! (§22.2).

use std::net::IpAddr;
use std::time::Duration;

use portcullis_sip::header::{Auth, HeaderName};

use super::call::ClientRole;
use super::B2bua;
use crate::config::TrunkId;
use crate::digest::{
    answer, cnonce, select_challenge, ChallengeKind, ClientRequest, DigestError, DigestServer,
};

use crate::media::MediaControl;
use crate::time::Timestamp;
use crate::transaction::{SipMsg, TxId};

/// Nonce lifetime of our challenges: long enough to answer a 401, short enough
/// that a captured nonce is soon worthless.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(30);

/// The secret of our nonces' MAC; `Debug` never prints it.
#[derive(Clone, Copy)]
pub(super) struct DigestSecret(pub(super) [u8; 32]);

impl std::fmt::Debug for DigestSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DigestSecret(..)")
    }
}

/// Result of the inbound check.
pub(super) enum Inbound {
    /// No auth configured, or valid credentials.
    Pass,
    /// Answered (401 challenge or 403): stop.
    Answered,
}

impl<M: MediaControl> B2bua<M> {
    /// Our digest server for `realm`, its nonces bound to `client`. The secret is
    /// drawn once per engine from the secret source.
    fn digest_server(&self, realm: &str, client: IpAddr) -> DigestServer {
        DigestServer::new(realm, self.digest_secret.0, NONCE_LIFETIME).bound_to(client)
    }

    /// Challenges or verifies an INVITE from `trunk`, received from `client`
    /// (RFC 3261 §22.1, §22.4; RFC 7616 §3.4 nonce count).
    pub(super) fn check_inbound_auth(
        &mut self,
        now: Timestamp,
        tx: TxId,
        req: &SipMsg,
        trunk: TrunkId,
        client: IpAddr,
    ) -> Inbound {
        let Some(creds) = self.cfg.trunk(trunk).and_then(|t| t.auth_inbound.clone()) else {
            return Inbound::Pass;
        };
        let realm = creds
            .realm
            .clone()
            .or_else(|| self.cfg.node.fqdn.clone())
            .unwrap_or_else(|| self.cfg.node.name.clone());
        let server = self.digest_server(&realm, client);
        let stale = match req.header("Authorization") {
            None => false,
            Some(v) => {
                let verdict = Auth::parse(v, HeaderName::Authorization)
                    .map_err(|_| DigestError::Malformed)
                    .and_then(|a| {
                        server.verify(
                            now,
                            &a,
                            "INVITE",
                            req.request_uri(),
                            &creds.username,
                            &creds.password,
                        )
                    })
                    .and_then(|v| self.nonce_guard.accept(now, &v));
                match verdict {
                    Ok(()) => return Inbound::Pass,
                    Err(e) if e.is_stale() => true,
                    // Not our nonce for this address (another client's, a restart's):
                    // a fresh challenge, nothing learned.
                    Err(DigestError::BadNonce) => false,
                    Err(DigestError::Replay) => {
                        self.stats.auth_replays += 1;
                        self.stats.policy_rejects += 1;
                        false
                    }
                    Err(_) => {
                        self.stats.policy_rejects += 1;
                        self.reply(now, tx, req, 403, "Forbidden", None);
                        return Inbound::Answered;
                    }
                }
            }
        };
        self.stats.auth_challenges += 1;
        let salt = self.txn.next_random();
        let tag = format!("{:x}", self.txn.next_random());
        let mut r = self.response(req, 401, "Unauthorized", Some(&tag));
        for c in server.challenges(now, salt, stale) {
            r.push_header("WWW-Authenticate", c);
        }
        self.send_response(now, tx, &r);
        Inbound::Answered
    }

    /// Answers a 401/407 on the current B attempt once. True when the INVITE
    /// was resent (the failure is absorbed).
    pub(super) fn answer_challenge(&mut self, now: Timestamp, call: u64, resp: &SipMsg) -> bool {
        let Some(kind) = resp.status().and_then(ChallengeKind::from_status) else {
            return false;
        };
        let Some(c) = self.calls.get(&call) else {
            return false;
        };
        let Some(b) = c.b.as_ref() else {
            return false;
        };
        if b.auth_tried {
            return false;
        }
        let Some(creds) = c
            .cfg
            .trunk(b.target.trunk)
            .and_then(|t| t.auth_outbound.clone())
        else {
            return false;
        };
        let (chal_name, cred_name) = match kind {
            ChallengeKind::Www => ("WWW-Authenticate", "Authorization"),
            ChallengeKind::Proxy => ("Proxy-Authenticate", "Proxy-Authorization"),
        };
        let challenges: Vec<Auth<'_>> = resp
            .header_values(chal_name)
            .filter_map(|v| Auth::parse(v, kind.challenge_header()).ok())
            .collect();
        let Some((chal, _)) = select_challenge(&challenges) else {
            return false;
        };
        let mut inv = b.invite.clone();
        let uri = inv.request_uri().unwrap_or("").to_owned();
        let cn = cnonce(self.txn.next_random());
        let Ok(value) = answer(
            chal,
            &ClientRequest {
                method: "INVITE",
                uri: &uri,
                username: &creds.username,
                password: &creds.password,
                cnonce: &cn,
                nc: 1,
            },
        ) else {
            return false;
        };
        inv.remove_header(cred_name);
        inv.push_header(cred_name, value);
        if !self.resend_invite(now, call, inv) {
            return false;
        }
        self.stats.auth_challenges += 1;
        if let Some(b) = self.calls.get_mut(&call).and_then(|c| c.b.as_mut()) {
            b.auth_tried = true;
        }
        true
    }
}

impl<M: MediaControl> B2bua<M> {
    /// Resends the current B INVITE, edited: CSeq + 1, fresh branch, same
    /// Call-ID and tags (RFC 3261 §22.2, RFC 4028 §7.4 after a 422).
    pub(super) fn resend_invite(&mut self, now: Timestamp, call: u64, mut inv: SipMsg) -> bool {
        let Some(dest) = self
            .calls
            .get(&call)
            .and_then(|c| c.b.as_ref())
            .map(|b| b.dest)
        else {
            return false;
        };
        let seq = inv.cseq().map(|c| c.seq).unwrap_or(1).saturating_add(1);
        inv.set_header("CSeq", format!("{seq} INVITE"));
        let via = self.via_to(call, dest);
        if inv.set_top_via(&via).is_err() {
            return false;
        }
        let Some(tx) = self.send_on(now, call, dest, inv.clone(), ClientRole::Invite { dest })
        else {
            return false;
        };
        if let Some(b) = self.calls.get_mut(&call).and_then(|c| c.b.as_mut()) {
            b.invite = inv;
            b.invite_tx = Some(tx);
            b.provisional = false;
            b.final_received = false;
        }
        true
    }

    /// 422 from B (RFC 4028 §6): retry once with its Min-SE as Session-Expires.
    pub(super) fn retry_after_422(&mut self, now: Timestamp, call: u64, resp: &SipMsg) -> bool {
        let Some(min_se) = resp
            .header("Min-SE")
            .and_then(|v| v.split(';').next())
            .and_then(|v| v.trim().parse::<u64>().ok())
        else {
            return false;
        };
        let Some(b) = self.calls.get_mut(&call).and_then(|c| c.b.as_mut()) else {
            return false;
        };
        if b.retried_422 || min_se > 86_400 {
            return false;
        }
        b.retried_422 = true;
        let mut inv = b.invite.clone();
        inv.set_header("Session-Expires", min_se.to_string());
        inv.set_header("Min-SE", min_se.to_string());
        self.resend_invite(now, call, inv)
    }
}

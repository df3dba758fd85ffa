//! Digest authentication on both legs (RFC 3261 §22, RFC 7616/8760 via
//! [`crate::digest`]).
//!
//! Inbound: a trunk with `auth_inbound` gets its INVITEs challenged (401 +
//! WWW-Authenticate, stateless HMAC nonces); the retried INVITE must carry a
//! valid `Authorization` for the configured user (wrong credentials → 403,
//! expired nonce → a new challenge with `stale=true`).
//! Outbound: a 401/407 from a target trunk with `auth_outbound` is answered
//! once per attempt: the INVITE is resent with `Authorization` /
//! `Proxy-Authorization`, CSeq + 1, a new branch, same Call-ID and tags
//! (§22.2).

use std::time::Duration;

use portcullis_sip::header::{Auth, HeaderName};
use sha2::{Digest, Sha256};

use super::call::ClientRole;
use super::B2bua;
use crate::config::TrunkId;
use crate::digest::{answer, cnonce, select_challenge, ChallengeKind, ClientRequest, DigestServer};
use crate::media::MediaControl;
use crate::time::Timestamp;
use crate::transaction::{SipMsg, TxId};

/// Nonce lifetime of our challenges.
const NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// Result of the inbound check.
pub(super) enum Inbound {
    /// No auth configured, or valid credentials.
    Pass,
    /// Answered (401 challenge or 403): stop.
    Answered,
}

impl<M: MediaControl> B2bua<M> {
    fn digest_server(&self, realm: &str) -> DigestServer {
        let mut h = Sha256::new();
        h.update(b"portcullis-digest-nonce");
        h.update(self.seed.to_le_bytes());
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&h.finalize());
        DigestServer::new(realm, secret, NONCE_LIFETIME)
    }

    /// Challenges or verifies an INVITE from `trunk` (RFC 3261 §22.1, §22.4).
    pub(super) fn check_inbound_auth(
        &mut self,
        now: Timestamp,
        tx: TxId,
        req: &SipMsg,
        trunk: TrunkId,
    ) -> Inbound {
        let Some(creds) = self.cfg.trunk(trunk).and_then(|t| t.auth_inbound.clone()) else {
            return Inbound::Pass;
        };
        let realm = creds
            .realm
            .clone()
            .or_else(|| self.cfg.node.fqdn.clone())
            .unwrap_or_else(|| self.cfg.node.name.clone());
        let server = self.digest_server(&realm);
        let stale = match req.header("Authorization") {
            None => false,
            Some(v) => {
                let verdict = Auth::parse(v, HeaderName::Authorization)
                    .map_err(|_| crate::digest::DigestError::Malformed)
                    .and_then(|a| {
                        server.verify(
                            now,
                            &a,
                            "INVITE",
                            req.request_uri(),
                            &creds.username,
                            &creds.password,
                        )
                    });
                match verdict {
                    Ok(_) => return Inbound::Pass,
                    Err(e) if e.is_stale() => true,
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
        let mut r = self.response(req, 401, "Unauthorized", Some(&format!("{salt:x}")));
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
        let via = self.via(dest.transport);
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

//! Failures of a B attempt: failover, redirects, relaying the final failure.
//!
//! RFC 3261 §16.7-style target handling done by a UA core: 408/5xx/timeout
//! (Timer B) or a transport error → another target of the same trunk, then
//! the next trunk; a 503 with Retry-After holds that target off for its
//! duration; no answer at all marks a pinged target down; 3xx followed (Contact as a new target,
//! at most a few times) or relayed, per route; 6xx and other 4xx relayed.

use super::headers::{copy_safe, retry_after, socket_of, user_of};
use super::route::Target;
use super::stats::Outcome;
use super::B2bua;
use crate::cdr::EndReason;
use crate::config::RedirectMode;
use crate::media::MediaControl;
use crate::time::Timestamp;
use crate::transaction::SipMsg;

/// Most 3xx redirects followed per call (loop protection).
const MAX_REDIRECTS: usize = 3;

impl<M: MediaControl> B2bua<M> {
    /// A final failure (or Timer B / transport error as 408/503) on the B leg.
    pub(super) fn on_b_failure(
        &mut self,
        now: Timestamp,
        call: u64,
        status: u16,
        resp: Option<&SipMsg>,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(b) = c.b.as_mut() else {
            return;
        };
        b.final_received = true;
        let trunk = b.target.trunk;
        let called = b.target.called.clone();
        let target_addr = b.target.redirect.is_none().then_some(b.dest.addr);
        let reason = resp
            .and_then(|r| r.as_owned().reason().map(str::to_owned))
            .unwrap_or_else(|| default_reason(status).to_owned());
        c.last_failure = Some((status, reason.clone()));
        self.events
            .push_back(super::CallEvent::AttemptFailed { call, status });
        let cfg = c.cfg.clone();
        let trunk_name = Self::trunk_name(&cfg, trunk);
        self.release_trunk(call, trunk);
        if let Some(addr) = target_addr {
            self.unbind_target(call, addr);
        }
        match status {
            300..=399 => {
                let follow = self.calls.get(&call).is_some_and(|c| {
                    c.redirect == RedirectMode::Follow && c.redirects < MAX_REDIRECTS
                });
                let target = resp.and_then(|r| r.contact_uri()).and_then(|u| {
                    let port = cfg
                        .trunk(trunk)
                        .map_or(5060, |t| t.transport.default_port());
                    socket_of(u, port).map(|addr| (addr, user_of(u).to_owned()))
                });
                if let (true, Some((addr, user))) = (follow, target) {
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.redirects += 1;
                        let called = if user.is_empty() {
                            c.called.clone()
                        } else {
                            user
                        };
                        c.targets.push_front(Target {
                            trunk,
                            called,
                            redirect: Some(addr),
                            addr: None,
                        });
                    }
                    self.next_target(now, call);
                } else {
                    self.fail_call(now, call, status, &reason, resp);
                }
            }
            408 | 500..=599 => {
                // No response at all (Timer B, transport error): the target is silent.
                let silent = resp.is_none();
                let retry = resp.and_then(retry_after);
                let again = target_addr.is_some_and(|addr| {
                    self.learn_from_failure(now, call, (&trunk_name, addr), status, retry, silent)
                });
                if again {
                    // Another target of the same trunk first (RFC 3263 §4.3).
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.targets.push_front(Target {
                            trunk,
                            called,
                            redirect: None,
                            addr: None,
                        });
                    }
                }
                self.stats.failovers += 1;
                self.next_target(now, call);
            }
            _ => self.fail_call(now, call, status, &reason, resp),
        }
    }

    /// Relays a final failure to A and ends the call.
    pub(super) fn fail_call(
        &mut self,
        now: Timestamp,
        call: u64,
        status: u16,
        reason: &str,
        resp: Option<&SipMsg>,
    ) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let inbound = Self::trunk_name(&c.cfg.clone(), c.a.trunk);
        self.stats.outcome(&inbound, Outcome::Failed);
        if let Some(resp) = resp {
            let mut r = match self.calls.get(&call) {
                Some(c) => {
                    self.response(&c.a.invite.clone(), status, reason, Some(&c.a.tag.clone()))
                }
                None => return,
            };
            copy_safe(resp, &mut r, false);
            self.cross_headers(call, crate::media::Side::A, resp, &mut r);
            if (300..400).contains(&status) {
                if let Some(ct) = resp.header("Contact") {
                    r.push_header("Contact", ct);
                }
            }
            if let Some(c) = self.calls.get_mut(&call) {
                c.a.final_sent = true;
                let tx = c.a.invite_tx;
                self.send_response(now, tx, &r);
            }
        }
        self.end_call(
            now,
            call,
            EndReason::Rejected { status },
            Some((status, reason)),
        );
    }
}

/// Reason phrase for statuses we synthesise.
pub(super) fn default_reason(status: u16) -> &'static str {
    match status {
        404 => "Not Found",
        484 => "Address Incomplete",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

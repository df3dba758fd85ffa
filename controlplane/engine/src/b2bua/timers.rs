//! Call timers: no-answer, RFC 4028 session timers, linger.
//!
//! Session timers are negotiated per leg. B leg: our INVITE asks for
//! `Session-Expires: <cfg>` with `Supported: timer`; the 2xx says who refreshes
//! (`refresher=uac` → us); a 2xx without Session-Expires leaves the timer to us
//! (RFC 4028 §7.4). A leg: when the caller supports timers (Supported: timer or
//! Session-Expires), our 2xx carries `Session-Expires: max(its, Min-SE);
//! refresher=uac|uas` and `Require: timer` (§9): the caller refreshes unless it
//! asked us to. A refresher's UPDATE goes at half the interval (§10); the side
//! we watch must refresh before `interval - min(32 s, interval/3)` or the call
//! is torn down with BYE both ways (end reason SessionExpired).

use std::time::Duration;

use super::call::{CallState, CallTimer, ClientRole, SessionLeg};
use super::sdp_rewrite::ix;
use super::B2bua;
use crate::cdr::EndReason;
use crate::media::{MediaControl, Side};
use crate::time::Timestamp;
use crate::transaction::{Method, SipMsg};

/// Parses `Session-Expires: <delta>[;refresher=uac|uas]` (RFC 4028 §4).
fn session_expires(msg: &SipMsg) -> Option<(Duration, Option<String>)> {
    let v = msg.header("Session-Expires")?;
    let mut parts = v.split(';');
    let secs: u64 = parts.next()?.trim().parse().ok()?;
    let refresher = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("refresher")
            .then(|| v.trim().to_ascii_lowercase())
    });
    Some((Duration::from_secs(secs), refresher))
}

/// When the watching side gives up (RFC 4028 §10).
fn expiry_after(interval: Duration) -> Duration {
    interval.saturating_sub(Duration::from_secs(32).min(interval / 3))
}

impl<M: MediaControl> B2bua<M> {
    /// Fires the call timers due at `now` (bounded by the index size).
    pub(super) fn fire_call_timers(&mut self, now: Timestamp) {
        for _ in 0..super::EVENT_BUDGET {
            let Some(&(at, call, kind)) = self.timers.first() else {
                return;
            };
            if at > now {
                return;
            }
            self.timers.remove(&(at, call, kind));
            let valid = self
                .calls
                .get(&call)
                .is_some_and(|c| c.timers.get(&kind) == Some(&at));
            if !valid {
                continue;
            }
            if let Some(c) = self.calls.get_mut(&call) {
                c.timers.remove(&kind);
            }
            match kind {
                CallTimer::NoAnswer => {
                    let ringing = self
                        .calls
                        .get(&call)
                        .is_some_and(|c| c.state == CallState::Proceeding);
                    if ringing {
                        self.stats.no_answer_timeouts += 1;
                        self.end_call(
                            now,
                            call,
                            EndReason::Timeout,
                            Some((480, "Temporarily Unavailable")),
                        );
                    }
                }
                CallTimer::Refresh(side) => self.send_refresh(now, call, side),
                CallTimer::SessionExpiry => {
                    self.stats.session_expiries += 1;
                    self.end_call(now, call, EndReason::SessionExpired, None);
                }
                CallTimer::Rel1xx => self.retransmit_rel1xx(now, call),
                CallTimer::Linger => self.remove_call(call),
            }
        }
    }

    /// Negotiates both legs' session timers when B answers; adds the A leg's
    /// Session-Expires/Require to `r` (the 2xx toward A).
    pub(super) fn session_on_answer(
        &mut self,
        now: Timestamp,
        call: u64,
        b_resp: &SipMsg,
        r: &mut SipMsg,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let t = c.cfg.timers;
        // B leg (we are UAC).
        c.session[ix(Side::B)] = Some(match session_expires(b_resp) {
            Some((iv, refresher)) => SessionLeg {
                interval: iv.max(Duration::from_secs(90)),
                we_refresh: refresher.as_deref() != Some("uas"),
            },
            None => SessionLeg {
                interval: t.session_expires,
                we_refresh: true,
            },
        });
        // A leg (we are UAS).
        let a_inv = &c.a.invite;
        let supports = a_inv
            .header_values("Supported")
            .any(|o| o.trim().eq_ignore_ascii_case("timer"));
        let asked = session_expires(a_inv);
        c.session[ix(Side::A)] = if supports || asked.is_some() {
            let (iv, refresher) = asked.unwrap_or((t.session_expires, None));
            let iv = iv.max(t.min_se);
            let we_refresh = refresher.as_deref() == Some("uas");
            let who = if we_refresh { "uas" } else { "uac" };
            r.push_header(
                "Session-Expires",
                format!("{};refresher={who}", iv.as_secs()),
            );
            if supports {
                r.push_header("Require", "timer");
            }
            Some(SessionLeg {
                interval: iv,
                we_refresh,
            })
        } else {
            None
        };
        for side in [Side::A, Side::B] {
            self.arm_session(now, call, side);
        }
    }

    /// (Re)arms the refresh or the expiry watch of one leg.
    pub(super) fn arm_session(&mut self, now: Timestamp, call: u64, side: Side) {
        let Some(leg) = self.calls.get(&call).and_then(|c| c.session[ix(side)]) else {
            return;
        };
        if leg.we_refresh {
            self.set_timer(call, CallTimer::Refresh(side), now + leg.interval / 2);
        } else {
            // One expiry watch per call: the earliest of the legs' deadlines.
            let at = now + expiry_after(leg.interval);
            let earlier = self
                .calls
                .get(&call)
                .and_then(|c| c.timers.get(&CallTimer::SessionExpiry).copied())
                .filter(|cur| *cur < at && side == Side::B);
            if earlier.is_none() {
                self.stop_timer(call, CallTimer::SessionExpiry);
                self.set_timer(call, CallTimer::SessionExpiry, at);
            }
        }
    }

    /// A 2xx to a re-INVITE/UPDATE that `from` sent: its session was refreshed.
    pub(super) fn session_refreshed(&mut self, now: Timestamp, call: u64, from: Side) {
        self.arm_session(now, call, from);
        // The relayed request refreshed the other leg too.
        self.arm_session(now, call, from.other());
    }

    /// Sends our refresh (UPDATE without SDP, RFC 4028 §9 / RFC 3311) on `side`.
    fn send_refresh(&mut self, now: Timestamp, call: u64, side: Side) {
        let Some(leg) = self.calls.get(&call).and_then(|c| c.session[ix(side)]) else {
            return;
        };
        if let Some((mut req, dest)) = self.dialog_request(call, side, Method::Update) {
            req.push_header(
                "Session-Expires",
                format!("{};refresher=uac", leg.interval.as_secs()),
            );
            req.push_header("Supported", "timer");
            self.send_on(now, call, dest, req, ClientRole::Refresh(side));
        }
    }

    /// Outcome of our refresh on `side`.
    pub(super) fn on_refresh_response(
        &mut self,
        now: Timestamp,
        call: u64,
        side: Side,
        status: u16,
    ) {
        let live = self
            .calls
            .get(&call)
            .is_some_and(|c| c.state == CallState::Answered);
        if !live {
            return;
        }
        match status {
            200..=299 => self.arm_session(now, call, side),
            // RFC 4028 §10 / RFC 5057: the dialog is gone.
            408 | 481 => {
                self.stats.session_expiries += 1;
                self.end_call(now, call, EndReason::SessionExpired, None);
            }
            // UPDATE refused (405/501/491...): keep refreshing, the peer is alive.
            _ => self.arm_session(now, call, side),
        }
    }
}

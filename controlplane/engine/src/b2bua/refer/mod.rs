//! Call transfer: REFER (RFC 3515) with message/sipfrag NOTIFYs (RFC 3420),
//! Replaces (RFC 3891) in a Refer-To or on an INVITE.
//!
//! Blind transfer. A REFER on either leg of an answered call (Teams Direct
//! Routing transfers this way) is answered `202 Accepted`; the user part of
//! the Refer-To URI is routed as a new call from the referring leg's trunk
//! (408/5xx from a target: the next target, as for calls), and a new leg is
//! INVITEd with the remaining party's last SDP (made
//! `sendrecv`) rewritten for our port on the referrer's side. The same media
//! allocation is kept: when the target sends early media (a 18x with SDP)
//! or answers, its SDP is learned as the referrer side's peer and the data
//! plane reprogrammed (a failed attempt puts the referrer back), so the remaining
//! party talks to the target without a re-INVITE (its view of our address
//! and port does not change) unless it was left on hold, which one re-INVITE
//! with the target's SDP undoes. Progress goes to the referrer as NOTIFY
//! (`Event: refer`, `SIP/2.0 100 Trying`, then the final status line, RFC
//! 3515 §2.4.4–2.4.5); on a 2xx the referrer's leg is BYE'd after the final
//! NOTIFY and the new leg takes its place (a new leg on side A is held as the
//! A leg); on a failure the call stays as it was (media state restored).
//! A Refer-To Replaces naming a dialog that is not ours is passed to the
//! target as a `Replaces` header (with `Require: replaces`).
//!
//! Attended transfer, both calls through us (the Teams consult transfer):
//! the REFER's Refer-To Replaces names a leg of *another* call of ours. The
//! party left on that call is re-INVITEd toward our port on the referrer's
//! side of the REFER's call (same `o=` session continued); on its 2xx its
//! leg moves onto that side, the referrer and the replaced leg are BYE'd and
//! the other call ends (CDR `Transferred`). An INVITE carrying Replaces that
//! names a leg of ours: its offer is sent to the party on the other side in
//! a re-INVITE, that party's answer goes back in our 2xx and the new dialog
//! takes the replaced leg's place (which is BYE'd). Replaces naming no dialog
//! of ours gets `481` on an INVITE, and on a REFER whose Call-ID is ours.
//!
//! Media bypass: transfers work on the anchored media (the remaining party
//! keeps talking to our port), so a REFER on a bypassed call, a REFER whose
//! Replaces names one, and an INVITE with Replaces naming one are refused
//! `403` ([`BYPASS_NO_TRANSFER`]); the call goes on unchanged.
//!
//! CDRs: a completed transfer emits a [`crate::cdr::CdrRecord`] for the
//! segment before the transfer (same call number, the leg that left, end
//! reason `Transferred`, no media stats); the continuing call emits its own
//! record when it ends. Invariants: at most one transfer or join per call, and
//! none while a re-INVITE is pending (`491`).
//!
//! Module map: `blind` (blind transfer), `join` (Replaces handled locally:
//! attended transfer through us, INVITE with Replaces), `legs` (a leg leaving
//! and taking a slot, segment CDRs, taking a party off hold); the responses
//! to the INVITEs of each kind share `answer` with the initial INVITE.

mod blind;
mod join;
mod legs;

use portcullis_sip::percent_decode;

use super::call::{CallState, ClientRole, NewLeg};
use super::headers::user_of;
use super::B2bua;
use crate::media::{MediaControl, Side};
use crate::time::Timestamp;
use crate::transaction::{Method, SipMsg, TxId};

/// Reason phrase of the `403` refusing a transfer involving a bypassed call.
pub(crate) const BYPASS_NO_TRANSFER: &str = "Transfer Not Possible With Media Bypass";

/// The URI inside a Refer-To value (`<sip:...>` or a bare URI), headers kept.
fn refer_uri(value: &str) -> &str {
    match value.split_once('<') {
        Some((_, rest)) => rest.split('>').next().unwrap_or(""),
        None => value.split(';').next().unwrap_or("").trim(),
    }
}

/// A Replaces value (RFC 3891 §6.1): the dialog as seen by the recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Replaces {
    pub call_id: String,
    pub to_tag: String,
    pub from_tag: String,
    pub early_only: bool,
}

/// Parses `callid;to-tag=x;from-tag=y[;early-only]`.
pub(crate) fn parse_replaces(v: &str) -> Option<Replaces> {
    let mut parts = v.split(';');
    let call_id = parts.next()?.trim().to_owned();
    if call_id.is_empty() {
        return None;
    }
    let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
    for p in parts {
        let (k, val) = p
            .split_once('=')
            .map_or((p.trim(), ""), |(k, v)| (k.trim(), v.trim()));
        if k.eq_ignore_ascii_case("to-tag") {
            to_tag = Some(val.to_owned());
        } else if k.eq_ignore_ascii_case("from-tag") {
            from_tag = Some(val.to_owned());
        } else if k.eq_ignore_ascii_case("early-only") {
            early_only = true;
        }
    }
    Some(Replaces {
        call_id,
        to_tag: to_tag.filter(|t| !t.is_empty())?,
        from_tag: from_tag.filter(|t| !t.is_empty())?,
        early_only,
    })
}

/// Splits a Refer-To URI from its `?` headers: (URI, raw Replaces value
/// percent-decoded when the URI carries one).
fn split_refer_to(uri: &str) -> (&str, Option<String>) {
    let Some((base, headers)) = uri.split_once('?') else {
        return (uri, None);
    };
    let replaces = headers.split('&').find_map(|h| {
        let (k, v) = h.split_once('=').unwrap_or((h, ""));
        k.trim()
            .eq_ignore_ascii_case("replaces")
            .then(|| String::from_utf8_lossy(&percent_decode(v)).into_owned())
    });
    (base, replaces)
}

impl<M: MediaControl> B2bua<M> {
    /// REFER inside the dialog of `side` (RFC 3515 §2.4.2): refused while the
    /// call is not answered or busy (`491`) or bypassed (`403`); a Refer-To
    /// Replaces naming a leg of another call of ours is a join (`join`), any
    /// other Refer-To a blind transfer (`blind`).
    pub(super) fn on_refer(
        &mut self,
        now: Timestamp,
        call: u64,
        side: Side,
        tx: TxId,
        req: &SipMsg,
    ) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.state != CallState::Answered || c.busy() {
            self.reply(now, tx, req, 491, "Request Pending", None);
            return;
        }
        if c.bypassed() {
            self.reply(now, tx, req, 403, BYPASS_NO_TRANSFER, None);
            return;
        }
        let value = req
            .header("Refer-To")
            .or_else(|| req.header("r"))
            .unwrap_or("")
            .to_owned();
        let (base, replaces) = split_refer_to(refer_uri(&value));
        let called = user_of(base).to_owned();
        let replaces = match replaces.as_deref().map(|v| (v, parse_replaces(v))) {
            None => None,
            Some((_, None)) => {
                self.reply(now, tx, req, 400, "Bad Replaces", None);
                return;
            }
            Some((raw, Some(r))) => Some((raw.to_owned(), r)),
        };
        if let Some((_, r)) = &replaces {
            if let Some((other, replaced)) = self.find_replaced(r) {
                self.refer_join(now, call, side, tx, req, other, replaced);
                return;
            }
            if self.by_dialog.keys().any(|(id, _)| *id == r.call_id) {
                // Our Call-ID, but no such dialog (any more).
                self.reply(now, tx, req, 481, "Call/Transaction Does Not Exist", None);
                return;
            }
        }
        let extra = NewLeg {
            replaces: replaces.map(|(raw, _)| raw),
            ..NewLeg::default()
        };
        self.refer_blind(now, call, side, tx, req, &called, extra);
    }

    /// The leg of ours a Replaces names (either tag order), as (call, side).
    pub(super) fn find_replaced(&self, r: &Replaces) -> Option<(u64, Side)> {
        for (ours, theirs) in [(&r.to_tag, &r.from_tag), (&r.from_tag, &r.to_tag)] {
            let key = (r.call_id.clone(), ours.clone());
            if let Some(&(call, side)) = self.by_dialog.get(&key) {
                let matches = self
                    .calls
                    .get(&call)
                    .filter(|c| c.state != CallState::Ended)
                    .and_then(|c| c.dialog(side))
                    .is_some_and(|d| d.id.remote_tag == *theirs);
                if matches {
                    return Some((call, side));
                }
            }
        }
        None
    }

    /// NOTIFY with a message/sipfrag body on `side` (RFC 3515 §2.4.4, RFC 3420).
    fn notify(
        &mut self,
        now: Timestamp,
        call: u64,
        side: Side,
        refer_cseq: u32,
        frag: &str,
        last: bool,
    ) {
        let Some((mut req, dest)) = self.dialog_request(call, side, Method::Notify) else {
            return;
        };
        req.push_header("Event", format!("refer;id={refer_cseq}"));
        req.push_header(
            "Subscription-State",
            if last {
                "terminated;reason=noresource"
            } else {
                "active;expires=60"
            },
        );
        req.push_header("Content-Type", "message/sipfrag;version=2.0");
        req.set_body(format!("{frag}\r\n").into_bytes());
        self.send_on(now, call, dest, req, ClientRole::Own);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_in_refer_to() {
        let uri = refer_uri(
            "<sip:+4930777@sbc.example.com?Replaces=abc%40host%3Bto-tag%3D12%3Bfrom-tag%3D34&Require=replaces>",
        );
        let (base, rep) = split_refer_to(uri);
        assert_eq!(base, "sip:+4930777@sbc.example.com");
        let rep = rep.unwrap();
        assert_eq!(rep, "abc@host;to-tag=12;from-tag=34");
        let r = parse_replaces(&rep).unwrap();
        assert_eq!(r.call_id, "abc@host");
        assert_eq!(r.to_tag, "12");
        assert_eq!(r.from_tag, "34");
        assert!(!r.early_only);
        assert!(parse_replaces("abc;to-tag=1").is_none());
        assert!(parse_replaces(";to-tag=1;from-tag=2").is_none());
        assert!(
            parse_replaces("x;to-tag=1;from-tag=2;early-only")
                .unwrap()
                .early_only
        );
        assert_eq!(split_refer_to("sip:1@h").1, None);
    }
}

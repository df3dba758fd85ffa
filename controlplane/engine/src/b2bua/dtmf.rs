//! DTMF interworking: RFC 4733 `telephone-event` packets <-> SIP INFO
//! (`application/dtmf-relay`, `application/dtmf`), per trunk
//! ([`DtmfMode`]). The mode of the trunk a digit goes *to* decides its form.
//!
//! - Events toward an `info` trunk, or a `both` trunk whose leg did not
//!   negotiate `telephone-event`: the leg they come from is flagged for
//!   detection with the payload type it sends them in (the one in the SDP we
//!   sent it, RFC 3264 §5.1). The data plane reports each ended event once
//!   (retransmitted end packets de-duplicated) and does not relay the event
//!   packets; we send an INFO on the other leg with `Signal=<digit>` and
//!   `Duration=<ms>` (the event's duration in its clock's units, RFC 4733
//!   §2.5.1.5, converted to milliseconds).
//! - INFO toward an `rfc4733` trunk whose leg negotiated `telephone-event`:
//!   answered `200` by us, not relayed; the data plane plays the event toward
//!   that leg in its payload type (the one in the leg's own SDP) inside the
//!   stream relayed to it, keeping that stream's SSRC, sequence and
//!   timestamps. An INFO body we cannot read is answered `400`.
//! - Anything else (`passthrough`, or both legs speaking the same form) is
//!   relayed as it comes; a leg with no flag costs the data plane nothing.
//!
//! For the detection to have events to detect, an answer toward a party that
//! offered `telephone-event` keeps it when the other side's trunk takes INFO
//! (`info`, `both`), and an offer toward an `rfc4733` or `both` trunk gains it
//! when missing (as the `telephone_event = "add"` codec policy does). For events
//! to be played toward an `rfc4733` party whatever side it calls from, an answer
//! toward such a party that offered `telephone-event` keeps it too (RFC 3264
//! §6.1: the answer names the payload type of the offer).

use portcullis_sip::sdp::{Attribute, MediaDescription, SessionDescription};

use super::call::{CallState, ClientRole};
use super::sdp_rewrite::{audio_index, ix, MediaState};
use super::streams::telephone_event;
use super::B2bua;
use crate::media::{DtmfEvent, DtmfLeg, MediaControl, MediaError, Side};
use crate::time::Timestamp;
use crate::transaction::{Method, SipMsg, TxId};
use crate::trunk_policy::codecs;
use crate::trunk_policy::DtmfMode;

/// Duration of a digit whose INFO names none (`application/dtmf`), ms.
pub(crate) const DEFAULT_DURATION_MS: u32 = 250;
/// Shortest and longest durations played from an INFO, ms.
pub(crate) const DURATION_MS: std::ops::RangeInclusive<u32> = 40..=5000;

/// The RFC 4733 event of a DTMF digit (`0`-`9`, `*`, `#`, `A`-`D`).
pub(crate) fn event_of(digit: char) -> Option<u8> {
    Some(match digit.to_ascii_uppercase() {
        d @ '0'..='9' => d as u8 - b'0',
        '*' => 10,
        '#' => 11,
        d @ 'A'..='D' => d as u8 - b'A' + 12,
        _ => return None,
    })
}

/// The digit of an RFC 4733 DTMF event (0-15).
pub(crate) fn digit_of(event: u8) -> Option<char> {
    Some(match event {
        0..=9 => char::from(b'0' + event),
        10 => '*',
        11 => '#',
        12..=15 => char::from(b'A' + event - 12),
        _ => return None,
    })
}

/// A `Signal` value: a digit, or its event number (`10` for `*`, as some
/// stacks send).
fn signal(v: &str) -> Option<u8> {
    let v = v.trim();
    let mut chars = v.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => event_of(c),
        _ => v.parse::<u8>().ok().filter(|e| *e <= 15),
    }
}

/// Reads a DTMF INFO body: `(event, duration ms)`. `None` when `content_type`
/// is not a DTMF one; `Some(None)` when it is but the body is unreadable.
pub(crate) fn parse_info(content_type: &str, body: &[u8]) -> Option<Option<(u8, u32)>> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    let text = std::str::from_utf8(body).ok();
    if ct.eq_ignore_ascii_case("application/dtmf-relay") {
        let mut event = None;
        let mut ms = DEFAULT_DURATION_MS;
        for line in text.unwrap_or("").lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k.trim() {
                k if k.eq_ignore_ascii_case("signal") => event = signal(v),
                k if k.eq_ignore_ascii_case("duration") => match v.trim().parse() {
                    Ok(d) => ms = d,
                    Err(_) => return Some(None),
                },
                _ => {}
            }
        }
        return Some(event.map(|e| (e, ms.clamp(*DURATION_MS.start(), *DURATION_MS.end()))));
    }
    if ct.eq_ignore_ascii_case("application/dtmf") {
        return Some(text.and_then(signal).map(|e| (e, DEFAULT_DURATION_MS)));
    }
    None
}

/// Keeps `telephone-event` on the audio line `m` toward `to` where the other
/// side's DTMF needs it (see the module docs).
pub(super) fn keep_telephone_event(
    modes: [DtmfMode; 2],
    to: Side,
    m: &mut MediaDescription,
    offered: Option<&MediaDescription>,
    answer: bool,
) {
    if m.is_rejected() || telephone_event(m).is_some() {
        return;
    }
    if !answer {
        if matches!(modes[ix(to)], DtmfMode::Rfc4733 | DtmfMode::Both) {
            codecs::add_telephone_event(m);
        }
        return;
    }
    // An answer keeps it where we detect the events `to` sends (the other side takes
    // INFO) or play events toward `to` (its own trunk takes RFC 4733 only).
    let detect = matches!(modes[ix(to.other())], DtmfMode::Info | DtmfMode::Both);
    let play = modes[ix(to)] == DtmfMode::Rfc4733;
    if !detect && !play {
        return;
    }
    let Some((pt, rate)) = offered.and_then(telephone_event) else {
        return;
    };
    let map = Attribute::parse(&format!("rtpmap:{pt} telephone-event/{rate}"));
    let fmtp = Attribute::parse(&format!("fmtp:{pt} 0-16"));
    if let (Ok(map), Ok(fmtp)) = (map, fmtp) {
        m.formats.push(pt.to_string());
        m.attributes.push(map);
        m.attributes.push(fmtp);
    }
}

/// `telephone-event` of line `i` of `sdp`.
fn te_at(sdp: Option<&SessionDescription>, i: usize) -> Option<(u8, u32)> {
    sdp.and_then(|s| s.media.get(i)).and_then(telephone_event)
}

/// The DTMF line of a call: the first audio line of the last SDP either side sent.
fn dtmf_line(ms: &MediaState) -> Option<usize> {
    [Side::A, Side::B]
        .into_iter()
        .find_map(|s| ms.last_from(s).and_then(audio_index))
}

/// Sets the DTMF flags of every leg of `ms` from both sides' modes and the
/// SDP exchanged (see the module docs).
pub(super) fn program(ms: &mut MediaState) {
    for st in &mut ms.streams {
        for p in &mut st.params {
            p.dtmf = DtmfLeg::default();
        }
    }
    let Some(i) = dtmf_line(ms) else {
        return;
    };
    // Per side: the event type in the SDP we sent it (what it sends us) and in
    // the SDP it sent (what it takes).
    let te = [Side::A, Side::B].map(|s| {
        let sent = ms.sent_to(s);
        (te_at(sent.as_ref(), i), te_at(ms.last_from(s), i))
    });
    let negotiated = te.map(|(sent, from)| sent.is_some() && from.is_some());
    let modes = ms.dtmf;
    let Some(st) = ms.streams.get_mut(i) else {
        return;
    };
    for x in [Side::A, Side::B] {
        let y = x.other();
        let detect = match modes[ix(y)] {
            DtmfMode::Info => negotiated[ix(x)],
            DtmfMode::Both => negotiated[ix(x)] && !negotiated[ix(y)],
            DtmfMode::Passthrough | DtmfMode::Rfc4733 => false,
        };
        if detect {
            st.params[ix(x)].dtmf.detect = te[ix(x)].0.map(|(pt, _)| pt);
            st.params[ix(x)].dtmf.drop_events = true;
        }
        if modes[ix(y)] == DtmfMode::Rfc4733 && negotiated[ix(y)] {
            st.params[ix(y)].dtmf.generate = te[ix(y)].1.map(|(pt, _)| pt);
        }
    }
}

impl<M: MediaControl> B2bua<M> {
    /// An event the data plane detected on `from`'s leg: an INFO on the other leg.
    pub(super) fn on_dtmf_event(&mut self, now: Timestamp, call: u64, from: Side, ev: DtmfEvent) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let rate = c
            .media
            .as_ref()
            .and_then(|ms| {
                let i = dtmf_line(ms)?;
                te_at(ms.sent_to(from).as_ref(), i)
            })
            .map_or(8000, |(_, r)| r.max(1));
        let answered = c.state == CallState::Answered;
        let Some(digit) = digit_of(ev.event).filter(|_| answered) else {
            self.stats.dtmf_failed += 1;
            return;
        };
        let ms = u64::from(ev.duration) * 1000 / u64::from(rate);
        let Some((mut req, dest)) = self.dialog_request(call, from.other(), Method::Info) else {
            self.stats.dtmf_failed += 1;
            return;
        };
        req.push_header("Content-Type", "application/dtmf-relay");
        req.set_body(format!("Signal={digit}\r\nDuration={ms}\r\n").into_bytes());
        self.send_on(now, call, dest, req, ClientRole::Own);
        self.stats.dtmf_to_info += 1;
    }

    /// An INFO from `from`: played as events toward the other leg when its
    /// trunk takes RFC 4733 only (true: answered here, not to be relayed).
    pub(super) fn info_to_events(
        &mut self,
        now: Timestamp,
        call: u64,
        from: Side,
        tx: TxId,
        req: &SipMsg,
    ) -> bool {
        let to = from.other();
        let Some(ms) = self.calls.get(&call).and_then(|c| c.media.as_ref()) else {
            return false;
        };
        let Some(parsed) = parse_info(req.header("Content-Type").unwrap_or(""), req.body()) else {
            return false;
        };
        let target = ms
            .streams
            .iter()
            .enumerate()
            .find_map(|(i, st)| st.params[ix(to)].dtmf.generate.map(|_| (i, st.alloc.id)));
        let Some((i, id)) = target.filter(|_| ms.dtmf[ix(to)] == DtmfMode::Rfc4733) else {
            return false;
        };
        let Some((event, dur_ms)) = parsed else {
            self.stats.dtmf_failed += 1;
            self.reply(now, tx, req, 400, "Bad Request (unreadable DTMF)", None);
            return true;
        };
        let rate = te_at(ms.last_from(to), i).map_or(8000, |(_, r)| r);
        let ts = u64::from(dur_ms) * u64::from(rate) / 1000;
        let ev = DtmfEvent {
            event,
            duration: u16::try_from(ts).unwrap_or(u16::MAX),
        };
        match self.media.dtmf(id, to, ev) {
            Ok(()) => {
                self.stats.dtmf_to_rfc4733 += 1;
                self.reply(now, tx, req, 200, "OK", None);
            }
            Err(e) => {
                self.stats.dtmf_failed += 1;
                let mut r = self.response(req, 500, "Server Internal Error (DTMF)", None);
                if e == MediaError::RingFull {
                    r.push_header("Retry-After", "1");
                }
                self.send_response(now, tx, &r);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_and_events_map_both_ways() {
        for (d, e) in [
            ('0', 0),
            ('9', 9),
            ('*', 10),
            ('#', 11),
            ('A', 12),
            ('D', 15),
        ] {
            assert_eq!(event_of(d), Some(e));
            assert_eq!(digit_of(e), Some(d));
        }
        assert_eq!(event_of('d'), Some(15));
        assert_eq!(event_of('E'), None);
        assert_eq!(digit_of(16), None);
    }

    /// The answer toward A (which offered `telephone-event` 101) when B answered
    /// without it, per `[A's mode, B's mode]`.
    #[test]
    fn answers_keep_telephone_event_to_detect_or_to_play() {
        use DtmfMode::{Both, Info, Passthrough, Rfc4733};
        let sdp = |m: &str| {
            let text = format!(
                "v=0\r\no=x 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n{m}"
            );
            SessionDescription::parse(text.as_bytes()).unwrap()
        };
        let offer = sdp("m=audio 10000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n");
        let answer = sdp("m=audio 20000 RTP/AVP 0\r\n");
        for (modes, kept) in [
            ([Passthrough, Passthrough], false),
            ([Passthrough, Rfc4733], false),
            ([Info, Passthrough], false),
            ([Both, Passthrough], false),
            // B takes INFO: A's events are detected.
            ([Passthrough, Info], true),
            ([Passthrough, Both], true),
            // A takes events only: B's INFO digits are played toward it.
            ([Rfc4733, Passthrough], true),
            ([Rfc4733, Rfc4733], true),
        ] {
            let mut m = answer.media[0].clone();
            keep_telephone_event(modes, Side::A, &mut m, Some(&offer.media[0]), true);
            assert_eq!(
                telephone_event(&m),
                kept.then_some((101, 8000)),
                "{modes:?}"
            );
        }
        // A party that did not offer it gets none.
        let mut m = answer.media[0].clone();
        keep_telephone_event(
            [Rfc4733, Passthrough],
            Side::A,
            &mut m,
            Some(&answer.media[0]),
            true,
        );
        assert_eq!(telephone_event(&m), None);
    }

    #[test]
    fn info_bodies() {
        let relay = "application/dtmf-relay";
        assert_eq!(
            parse_info(relay, b"Signal=5\r\nDuration=160\r\n"),
            Some(Some((5, 160)))
        );
        assert_eq!(
            parse_info(relay, b"signal= #\r\nduration= 300\r\n"),
            Some(Some((11, 300)))
        );
        assert_eq!(parse_info(relay, b"Signal=10\r\n"), Some(Some((10, 250))));
        // Durations are clamped to what the data plane plays.
        assert_eq!(
            parse_info(relay, b"Signal=1\r\nDuration=1\r\n"),
            Some(Some((1, 40)))
        );
        assert_eq!(
            parse_info(relay, b"Signal=1\r\nDuration=99999\r\n"),
            Some(Some((1, 5000)))
        );
        assert_eq!(parse_info(relay, b"Signal=X\r\n"), Some(None));
        assert_eq!(parse_info(relay, b"Signal=1\r\nDuration=x\r\n"), Some(None));
        assert_eq!(parse_info(relay, b""), Some(None));
        assert_eq!(
            parse_info("Application/DTMF; x=y", b"7\r\n"),
            Some(Some((7, 250)))
        );
        assert_eq!(parse_info("application/dtmf", b"77"), Some(None));
        assert_eq!(parse_info("text/plain", b"Signal=1"), None);
    }
}

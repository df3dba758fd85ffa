//! Codec policy of a trunk: which codecs its leg may use, in which order, and
//! whether `telephone-event` (RFC 4733 DTMF) is added to offers toward it.
//!
//! Codecs are named as in `a=rtpmap` (`PCMA`, `G722`, `opus`), case-insensitive,
//! optionally with the clock rate (`opus/48000`); static payload types without
//! an rtpmap are named from RFC 3551 §6. An offer crossing from one trunk to
//! another keeps the codecs both trunks allow (allow list, when set, and not
//! denied), ordered by the receiving trunk's allow list; `telephone-event` is
//! governed by [`TelephoneEvent`] alone and comfort noise like any codec.
//! Payload type numbers are never changed, so the numbering of each leg stays
//! the one its offer set (an answer only holds numbers its offer held).
//! There is no transcoding: an offer left with no codec is refused (`488`).

use std::fmt;

use portcullis_sip::sdp::{Attribute, MediaDescription};

/// What to do with `telephone-event` in offers toward a trunk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TelephoneEvent {
    /// As offered (our own offers carry it).
    #[default]
    Keep,
    /// Added at 8000 Hz (payload type 101, or the first free dynamic one)
    /// when an offer toward the trunk lacks it.
    Add,
}

/// A codec name, with an optional clock rate (`opus/48000`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecName {
    name: String,
    rate: Option<u32>,
}

impl CodecName {
    /// Parses `NAME` or `NAME/rate` (an rtpmap encoding token).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (name, rate) = match s.split_once('/') {
            Some((n, r)) => (
                n,
                Some(
                    r.parse::<u32>()
                        .ok()
                        .filter(|r| *r > 0)
                        .ok_or_else(|| format!("{s:?}: the clock rate is not a number"))?,
                ),
            ),
            None => (s, None),
        };
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.!%*+`'~".contains(&b));
        if !token {
            return Err(format!("{s:?} is not a codec name like PCMA or opus/48000"));
        }
        Ok(Self {
            name: name.to_owned(),
            rate,
        })
    }

    /// Whether this names `encoding` at `rate` (names case-insensitive).
    #[must_use]
    pub fn matches(&self, encoding: &str, rate: u32) -> bool {
        self.name.eq_ignore_ascii_case(encoding) && self.rate.is_none_or(|r| r == rate)
    }

    /// Whether every codec `other` names is one this names too.
    #[must_use]
    pub fn covers(&self, other: &Self) -> bool {
        self.name.eq_ignore_ascii_case(&other.name)
            && (self.rate.is_none() || self.rate == other.rate)
    }

    /// `telephone-event`, at any rate.
    #[must_use]
    pub fn is_telephone_event(&self) -> bool {
        self.name.eq_ignore_ascii_case(TELEPHONE_EVENT)
    }
}

impl fmt::Display for CodecName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rate {
            Some(r) => write!(f, "{}/{r}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

const TELEPHONE_EVENT: &str = "telephone-event";

/// The codec policy of one trunk (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodecPolicy {
    /// Allowed codecs in preference order; empty: every codec, order kept.
    pub allow: Vec<CodecName>,
    /// Codecs never used, whatever `allow` says.
    pub deny: Vec<CodecName>,
    /// `telephone-event` in offers toward the trunk.
    pub telephone_event: TelephoneEvent,
}

/// An offer the two trunks' policies leave without a codec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoCommonCodec {
    /// The codecs offered (`NAME`, in offer order).
    pub offered: Vec<String>,
    /// What the policies allow (`NAME`, receiving trunk first), or `any but ...`.
    pub allowed: Vec<String>,
}

impl fmt::Display for NoCommonCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[String]| {
            if v.is_empty() {
                String::from("none")
            } else {
                v.join(", ")
            }
        };
        write!(
            f,
            "No common codec: offered {}, allowed {}",
            list(&self.offered),
            list(&self.allowed)
        )
    }
}

impl CodecPolicy {
    /// True when the policy changes nothing.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.allow.is_empty()
            && self.deny.is_empty()
            && self.telephone_event == TelephoneEvent::Keep
    }

    fn allows(&self, encoding: &str, rate: u32) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|c| c.matches(encoding, rate)))
            && !self.deny.iter().any(|c| c.matches(encoding, rate))
    }

    /// Rank of a codec in the allow list (unlisted: after every listed one).
    fn rank(&self, encoding: &str, rate: u32) -> usize {
        self.allow
            .iter()
            .position(|c| c.matches(encoding, rate))
            .unwrap_or(usize::MAX)
    }

    fn describe(&self) -> Vec<String> {
        if self.allow.is_empty() {
            if self.deny.is_empty() {
                return vec![String::from("any")];
            }
            let denied: Vec<String> = self.deny.iter().map(ToString::to_string).collect();
            return vec![format!("any but {}", denied.join(" "))];
        }
        self.allow
            .iter()
            .filter(|c| !c.is_telephone_event())
            .filter(|c| !self.deny.iter().any(|d| d.covers(c)))
            .map(ToString::to_string)
            .collect()
    }
}

/// `(encoding, rate)` of format `f` of `m`: its rtpmap, else RFC 3551's static table.
fn codec_of(m: &MediaDescription, f: &str) -> Option<(String, u32)> {
    let pt = f.parse::<u8>().ok()?;
    if let Some(map) = m.rtpmap(pt) {
        return Some((map.encoding.clone(), map.clock_rate));
    }
    let (name, rate) = match pt {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        4 => ("G723", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        13 => ("CN", 8000),
        18 => ("G729", 8000),
        _ => return None,
    };
    Some((name.to_owned(), rate))
}

fn is_te(codec: Option<&(String, u32)>) -> bool {
    codec.is_some_and(|(n, _)| n.eq_ignore_ascii_case(TELEPHONE_EVENT))
}

/// Filters and orders the formats of audio section `m` of an offer from a
/// trunk with policy `from` toward a trunk with policy `to` (module docs),
/// and adds `telephone-event` when `to` asks for it. `Err` when no codec
/// but `telephone-event` would be left (`m` is then unchanged).
pub fn filter_offer(
    m: &mut MediaDescription,
    from: &CodecPolicy,
    to: &CodecPolicy,
) -> Result<(), NoCommonCodec> {
    if m.is_rejected() || (from.is_open() && to.is_open()) {
        return Ok(());
    }
    let codecs: Vec<(String, Option<(String, u32)>)> = m
        .formats
        .iter()
        .map(|f| (f.clone(), codec_of(m, f)))
        .collect();
    let keep = |c: &Option<(String, u32)>| match c {
        Some((n, _)) if n.eq_ignore_ascii_case(TELEPHONE_EVENT) => true,
        Some((n, r)) => from.allows(n, *r) && to.allows(n, *r),
        // A dynamic type without rtpmap cannot be named: kept only without an allow list.
        None => from.allow.is_empty() && to.allow.is_empty(),
    };
    let voice = codecs
        .iter()
        .filter(|(_, c)| !is_te(c.as_ref()) && keep(c))
        .count();
    if voice == 0 {
        let offered = codecs
            .iter()
            .filter(|(_, c)| !is_te(c.as_ref()))
            .map(|(f, c)| {
                c.as_ref()
                    .map_or_else(|| format!("PT {f}"), |(n, _)| n.clone())
            })
            .collect();
        let mut allowed = to.describe();
        for a in from.describe() {
            if !allowed.contains(&a) && a != "any" {
                allowed.push(a);
            }
        }
        if allowed.len() > 1 {
            allowed.retain(|a| a != "any");
        }
        return Err(NoCommonCodec { offered, allowed });
    }
    let mut order: Vec<(usize, usize, String)> = codecs
        .iter()
        .enumerate()
        .filter(|(_, (_, c))| keep(c))
        .map(|(i, (f, c))| {
            let rank = match c {
                Some((n, r)) if !is_te(c.as_ref()) => {
                    if to.allow.is_empty() {
                        from.rank(n, *r)
                    } else {
                        to.rank(n, *r)
                    }
                }
                _ => usize::MAX,
            };
            (rank, i, f.clone())
        })
        .collect();
    order.sort();
    let kept: Vec<String> = order.into_iter().map(|(_, _, f)| f).collect();
    m.retain_formats(|f, _| kept.iter().any(|k| k == f));
    m.formats = kept;
    if to.telephone_event == TelephoneEvent::Add && !codecs.iter().any(|(_, c)| is_te(c.as_ref())) {
        add_telephone_event(m);
    }
    Ok(())
}

/// Appends `telephone-event/8000` with payload type 101, or the first
/// dynamic type (96..=127) `m` does not use.
pub fn add_telephone_event(m: &mut MediaDescription) {
    let used: Vec<u8> = m.payload_types().collect();
    let Some(pt) = std::iter::once(101u8)
        .chain(96..=127)
        .find(|pt| !used.contains(pt))
    else {
        return;
    };
    if let Ok(a) = Attribute::parse(&format!("rtpmap:{pt} {TELEPHONE_EVENT}/8000")) {
        m.formats.push(pt.to_string());
        m.attributes.push(a);
    }
    if let Ok(a) = Attribute::parse(&format!("fmtp:{pt} 0-16")) {
        m.attributes.push(a);
    }
}

/// Keeps, in the audio section `m` of an answer toward a party, only the
/// formats that party offered in `offer` (by payload type, or by codec name
/// when the answerer renumbered): an answer never carries what the offer did
/// not (RFC 3264 §6.1), such as a `telephone-event` we added toward the
/// answerer.
pub fn restrict_answer(m: &mut MediaDescription, offer: &MediaDescription) {
    if m.is_rejected() {
        return;
    }
    let offered: Vec<(String, Option<(String, u32)>)> = offer
        .formats
        .iter()
        .map(|f| (f.clone(), codec_of(offer, f)))
        .collect();
    let codecs: Vec<(String, Option<(String, u32)>)> = m
        .formats
        .iter()
        .map(|f| (f.clone(), codec_of(m, f)))
        .collect();
    let keep: Vec<String> = codecs
        .into_iter()
        .filter(|(f, c)| {
            offered.iter().any(|(of, oc)| {
                of == f
                    || matches!((c, oc), (Some((n, r)), Some((on, or))) if n.eq_ignore_ascii_case(on) && r == or)
            })
        })
        .map(|(f, _)| f)
        .collect();
    if keep.is_empty() {
        return;
    }
    m.retain_formats(|f, _| keep.iter().any(|k| k == f));
}

/// Codecs we can put in an offer of our own, by name: (payload type, rtpmap).
const KNOWN: &[(&str, u8, &str)] = &[
    ("PCMU", 0, "PCMU/8000"),
    ("PCMA", 8, "PCMA/8000"),
    ("G722", 9, "G722/8000"),
    ("G729", 18, "G729/8000"),
    ("GSM", 3, "GSM/8000"),
    ("opus", 111, "opus/48000/2"),
    ("iLBC", 97, "iLBC/8000"),
    ("AMR-WB", 98, "AMR-WB/16000"),
];

/// The codecs of an offer of our own toward a trunk with policy `to` (a
/// delayed offer is never propagated): its allow list in order (the codecs
/// we know how to describe), else PCMU and PCMA; minus denied ones; then
/// `telephone-event`. `(payload type, rtpmap value)` pairs.
#[must_use]
pub fn own_offer_codecs(to: &CodecPolicy) -> Vec<(u8, String)> {
    let mut out: Vec<(u8, String)> = Vec::new();
    let wanted: Vec<&(&str, u8, &str)> = if to.allow.is_empty() {
        KNOWN.iter().take(2).collect()
    } else {
        to.allow
            .iter()
            .filter_map(|c| {
                KNOWN.iter().find(|(n, _, map)| {
                    let rate = map
                        .split('/')
                        .nth(1)
                        .and_then(|r| r.parse().ok())
                        .unwrap_or(8000);
                    c.matches(n, rate)
                })
            })
            .collect()
    };
    for (name, pt, map) in wanted {
        let rate = map
            .split('/')
            .nth(1)
            .and_then(|r| r.parse().ok())
            .unwrap_or(8000);
        if to.deny.iter().any(|d| d.matches(name, rate)) || out.iter().any(|(p, _)| p == pt) {
            continue;
        }
        out.push((*pt, (*map).to_owned()));
    }
    out.push((101, format!("{TELEPHONE_EVENT}/8000")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_sip::sdp::SessionDescription;

    fn audio(formats: &str, maps: &str) -> MediaDescription {
        let text = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP {formats}\r\n{maps}"
        );
        SessionDescription::parse(text.as_bytes())
            .unwrap()
            .media
            .remove(0)
    }

    fn policy(allow: &[&str], deny: &[&str], te: TelephoneEvent) -> CodecPolicy {
        CodecPolicy {
            allow: allow.iter().map(|c| CodecName::parse(c).unwrap()).collect(),
            deny: deny.iter().map(|c| CodecName::parse(c).unwrap()).collect(),
            telephone_event: te,
        }
    }

    const MAPS: &str = "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\na=rtpmap:101 telephone-event/8000\r\n";

    #[test]
    fn allow_orders_and_deny_removes_with_their_attributes() {
        let mut m = audio("0 8 9 111 101", MAPS);
        let to = policy(&["opus", "PCMA", "g722"], &[], TelephoneEvent::Keep);
        let from = policy(&[], &["G722"], TelephoneEvent::Keep);
        filter_offer(&mut m, &from, &to).unwrap();
        assert_eq!(m.formats, ["111", "8", "101"]);
        assert!(m.rtpmap(0).is_none() && m.rtpmap(9).is_none());
        assert!(m
            .attributes
            .iter()
            .any(|a| a.to_string() == "fmtp:111 useinbandfec=1"));
    }

    #[test]
    fn telephone_event_added_with_a_free_payload_type() {
        let mut m = audio("0 101", "a=rtpmap:101 AMR/8000\r\n");
        let to = policy(&[], &[], TelephoneEvent::Add);
        filter_offer(&mut m, &CodecPolicy::default(), &to).unwrap();
        assert_eq!(m.formats, ["0", "101", "96"]);
        assert_eq!(m.rtpmap(96).unwrap().encoding, "telephone-event");
        // Present already: not added twice.
        let mut m = audio("0 8 101", MAPS);
        filter_offer(&mut m, &CodecPolicy::default(), &to).unwrap();
        assert_eq!(m.formats, ["0", "8", "101"]);
    }

    #[test]
    fn no_common_codec_names_both_sides() {
        let mut m = audio("0 101", MAPS);
        let to = policy(&["G722", "opus"], &[], TelephoneEvent::Keep);
        let e = filter_offer(&mut m, &CodecPolicy::default(), &to).unwrap_err();
        assert_eq!(
            e.to_string(),
            "No common codec: offered PCMU, allowed G722, opus"
        );
        assert_eq!(m.formats, ["0", "101"], "unchanged");
    }

    #[test]
    fn answers_keep_only_what_was_offered() {
        let offer = audio("0 8", MAPS);
        let mut ans = audio("8 101", MAPS);
        restrict_answer(&mut ans, &offer);
        assert_eq!(ans.formats, ["8"]);
        // Renumbered dynamic types are matched by name.
        let offer = audio("0 96", "a=rtpmap:96 telephone-event/8000\r\n");
        let mut ans = audio("0 101", MAPS);
        restrict_answer(&mut ans, &offer);
        assert_eq!(ans.formats, ["0", "101"]);
    }

    #[test]
    fn own_offers_follow_the_allow_list() {
        let p = policy(
            &["G722", "PCMA", "X-UNKNOWN"],
            &["PCMA"],
            TelephoneEvent::Keep,
        );
        let c: Vec<u8> = own_offer_codecs(&p).iter().map(|(pt, _)| *pt).collect();
        assert_eq!(c, [9, 101]);
        let c: Vec<u8> = own_offer_codecs(&CodecPolicy::default())
            .iter()
            .map(|(pt, _)| *pt)
            .collect();
        assert_eq!(c, [0, 8, 101]);
    }
}

//! Scalar and small structured headers: CSeq (§20.16), Max-Forwards (§20.22),
//! Content-Length (§20.14), Expires (§20.19), Content-Type (§20.15), Retry-After
//! (§20.33), Session-Expires / Min-SE (RFC 4028), option-tag and method lists
//! (Allow §20.5, Supported §20.37, Require §20.32) and Date (§20.17).

use nom::bytes::complete::take_while1;

use crate::error::ParseError;
use crate::grammar::{is_lws, parse_u32, sep, sws, token, trim_lws, CommaSplit};
use crate::header::HeaderName;
use crate::params::{params, Params};

/// `CSeq: 1*DIGIT LWS Method`; the number must fit in 32 bits (§8.1.1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// Sequence number.
    pub seq: u32,
    /// Method token (case-sensitive, RFC 3261 §7.1).
    pub method: &'a str,
}

impl<'a> CSeq<'a> {
    /// Parses the value.
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        let bad = || ParseError::BadHeader(HeaderName::CSeq);
        let s = trim_lws(s);
        let (rest, digits) =
            take_while1::<_, _, ()>(|c: char| c.is_ascii_digit())(s).map_err(|_| bad())?;
        let (rest, _) = take_while1::<_, _, ()>(is_lws)(rest).map_err(|_| bad())?;
        let (rest, method) = token(rest).map_err(|_| bad())?;
        if !rest.is_empty() {
            return Err(bad());
        }
        Ok(CSeq {
            seq: parse_u32(digits).ok_or_else(bad)?,
            method,
        })
    }
}

/// Parses a header whose value is `delta-seconds`-like (`1*DIGIT`, fits in u32).
pub fn parse_scalar(s: &str, kind: HeaderName) -> Result<u32, ParseError> {
    parse_u32(trim_lws(s)).ok_or(ParseError::BadHeader(kind))
}

/// `Max-Forwards: 1*DIGIT`, 0..=255 (RFC 3261 §20.22, RFC 4475 §3.1.2.4).
pub fn parse_max_forwards(s: &str) -> Result<u8, ParseError> {
    let v = parse_scalar(s, HeaderName::MaxForwards)?;
    u8::try_from(v).map_err(|_| ParseError::BadHeader(HeaderName::MaxForwards))
}

/// `Content-Length: 1*DIGIT` (negative values are rejected, RFC 4475 §3.1.2.3).
pub fn parse_content_length(s: &str) -> Result<u32, ParseError> {
    parse_u32(trim_lws(s)).ok_or(ParseError::BadContentLength)
}

/// `media-type = m-type SLASH m-subtype *(SEMI m-parameter)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaType<'a> {
    /// `application`.
    pub mtype: &'a str,
    /// `sdp`.
    pub subtype: &'a str,
    /// Parameters (`boundary`, `charset`).
    pub params: Params<'a>,
}

impl<'a> MediaType<'a> {
    /// Parses a Content-Type value.
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        let bad = || ParseError::BadHeader(HeaderName::ContentType);
        let s = trim_lws(s);
        let (i, mtype) = token(s).map_err(|_| bad())?;
        let (i, _) = sep('/')(i).map_err(|_| bad())?;
        let (i, subtype) = token(i).map_err(|_| bad())?;
        let (i, params) = params(i).map_err(|_| bad())?;
        if !i.is_empty() {
            return Err(bad());
        }
        Ok(MediaType {
            mtype,
            subtype,
            params,
        })
    }

    /// Whether this is `application/sdp` (case-insensitive).
    pub fn is_sdp(&self) -> bool {
        self.mtype.eq_ignore_ascii_case("application") && self.subtype.eq_ignore_ascii_case("sdp")
    }
}

/// `Retry-After: delta-seconds [ comment ] *( SEMI retry-param )`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter<'a> {
    /// Seconds.
    pub seconds: u32,
    /// The comment without parentheses.
    pub comment: Option<&'a str>,
    /// Parameters (`duration`).
    pub params: Params<'a>,
}

impl<'a> RetryAfter<'a> {
    /// Parses the value.
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        let bad = || ParseError::BadHeader(HeaderName::RetryAfter);
        let s = trim_lws(s);
        let (i, digits) =
            take_while1::<_, _, ()>(|c: char| c.is_ascii_digit())(s).map_err(|_| bad())?;
        let seconds = parse_u32(digits).ok_or_else(bad)?;
        let (i, _) = sws(i).map_err(|_| bad())?;
        let (i, comment) = if let Some(body) = i.strip_prefix('(') {
            // Comments nest (RFC 3261 §25.1); find the matching ')'.
            let mut depth = 1usize;
            let mut end = None;
            for (k, c) in body.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(k);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let e = end.ok_or_else(bad)?;
            (&body[e + 1..], Some(&body[..e]))
        } else {
            (i, None)
        };
        let (i, params) = params(i).map_err(|_| bad())?;
        if !trim_lws(i).is_empty() {
            return Err(bad());
        }
        if let Some(d) = params.get("duration") {
            d.and_then(parse_u32).ok_or_else(bad)?;
        }
        Ok(RetryAfter {
            seconds,
            comment,
            params,
        })
    }
}

/// `Session-Expires: delta-seconds *(SEMI se-params)` (RFC 4028 §4); also Min-SE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires<'a> {
    /// Interval in seconds.
    pub delta: u32,
    /// Parameters (`refresher`).
    pub params: Params<'a>,
}

/// Who refreshes the session (RFC 4028 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// `refresher=uac`.
    Uac,
    /// `refresher=uas`.
    Uas,
}

impl<'a> SessionExpires<'a> {
    /// Parses a Session-Expires or Min-SE value (`kind` labels the error).
    pub fn parse(s: &'a str, kind: HeaderName) -> Result<Self, ParseError> {
        let bad = || ParseError::BadHeader(kind);
        let s = trim_lws(s);
        let (i, digits) =
            take_while1::<_, _, ()>(|c: char| c.is_ascii_digit())(s).map_err(|_| bad())?;
        let (i, params) = params(i).map_err(|_| bad())?;
        if !i.is_empty() {
            return Err(bad());
        }
        let se = SessionExpires {
            delta: parse_u32(digits).ok_or_else(bad)?,
            params,
        };
        if se.params.get("refresher").is_some() && se.refresher().is_none() {
            return Err(bad());
        }
        Ok(se)
    }

    /// `refresher` parameter.
    pub fn refresher(&self) -> Option<Refresher> {
        match self.params.value("refresher")? {
            r if r.eq_ignore_ascii_case("uac") => Some(Refresher::Uac),
            r if r.eq_ignore_ascii_case("uas") => Some(Refresher::Uas),
            _ => None,
        }
    }
}

/// Iterates the tokens of an Allow / Supported / Require / Proxy-Require value.
pub fn tokens(s: &str) -> CommaSplit<'_> {
    CommaSplit::new(s)
}

/// Checks a `token *(COMMA token)` list (empty allowed).
pub fn check_token_list(s: &str, kind: HeaderName) -> Result<(), ParseError> {
    for t in CommaSplit::new(s) {
        if t.is_empty() || !t.chars().all(crate::grammar::is_token_char) {
            return Err(ParseError::BadHeader(kind));
        }
    }
    Ok(())
}

/// Checks `rfc1123-date` with `GMT` (RFC 3261 §20.17; RFC 4475 §3.1.2.12).
pub fn check_date(s: &str) -> Result<(), ParseError> {
    let bad = ParseError::BadHeader(HeaderName::Date);
    let s = trim_lws(s);
    let parts: Vec<&str> = s.split(' ').collect();
    let [wk, day, mon, year, time, zone] = parts.as_slice() else {
        return Err(bad);
    };
    let wk_ok = ["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"].contains(wk);
    let day_ok = day.len() == 2 && parse_u32(day).is_some_and(|d| (1..=31).contains(&d));
    let mon_ok = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .contains(mon);
    let year_ok = year.len() == 4 && parse_u32(year).is_some();
    let t: Vec<&str> = time.split(':').collect();
    let time_ok = t.len() == 3
        && t.iter().all(|x| x.len() == 2 && parse_u32(x).is_some())
        && t.first().and_then(|h| parse_u32(h)).is_some_and(|h| h < 24)
        && t.get(1).and_then(|m| parse_u32(m)).is_some_and(|m| m < 60)
        && t.get(2).and_then(|x| parse_u32(x)).is_some_and(|x| x < 61);
    if wk_ok && day_ok && mon_ok && year_ok && time_ok && *zone == "GMT" {
        Ok(())
    } else {
        Err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq() {
        assert_eq!(
            CSeq::parse("0009\r\n  INVITE").unwrap(),
            CSeq {
                seq: 9,
                method: "INVITE"
            }
        );
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("1INVITE").is_err());
        assert!(CSeq::parse("1 INVITE x").is_err());
        assert_eq!(CSeq::parse("4294967295 ACK").unwrap().seq, u32::MAX);
    }

    #[test]
    fn scalars() {
        assert_eq!(parse_max_forwards("0068"), Ok(68));
        assert!(parse_max_forwards("300").is_err());
        assert_eq!(parse_content_length(" 150 "), Ok(150));
        assert_eq!(
            parse_content_length("-999"),
            Err(ParseError::BadContentLength)
        );
        assert_eq!(parse_scalar("3600", HeaderName::Expires), Ok(3600));
        assert!(parse_scalar("1000000000000000000000", HeaderName::Expires).is_err());
    }

    #[test]
    fn media_type() {
        let m = MediaType::parse("multipart/mixed;boundary=7a9cbec02ceef655").unwrap();
        assert_eq!((m.mtype, m.subtype), ("multipart", "mixed"));
        assert_eq!(m.params.value("boundary"), Some("7a9cbec02ceef655"));
        assert!(MediaType::parse("Application/SDP").unwrap().is_sdp());
        assert!(MediaType::parse("application").is_err());
    }

    #[test]
    fn retry_after() {
        let r = RetryAfter::parse("120 (I'm in a meeting) ;duration=3600").unwrap();
        assert_eq!(r.seconds, 120);
        assert_eq!(r.comment, Some("I'm in a meeting"));
        assert_eq!(r.params.value("duration"), Some("3600"));
        assert_eq!(RetryAfter::parse("5").unwrap().comment, None);
        assert!(RetryAfter::parse("949302838503028349304023988").is_err());
        assert!(RetryAfter::parse("5 (unclosed").is_err());
    }

    #[test]
    fn session_expires() {
        let s = SessionExpires::parse("1800;refresher=uac", HeaderName::SessionExpires).unwrap();
        assert_eq!(s.delta, 1800);
        assert_eq!(s.refresher(), Some(Refresher::Uac));
        assert_eq!(
            SessionExpires::parse("90", HeaderName::MinSe)
                .unwrap()
                .delta,
            90
        );
        assert!(SessionExpires::parse("90;refresher=me", HeaderName::SessionExpires).is_err());
    }

    #[test]
    fn token_lists() {
        assert!(check_token_list("INVITE, ACK ,BYE", HeaderName::Allow).is_ok());
        assert!(check_token_list("", HeaderName::Supported).is_ok());
        assert!(check_token_list("timer,,100rel", HeaderName::Supported).is_err());
        assert_eq!(
            tokens("timer, 100rel").collect::<Vec<_>>(),
            vec!["timer", "100rel"]
        );
    }

    #[test]
    fn dates() {
        assert!(check_date("Sat, 15 Oct 2005 04:44:56 GMT").is_ok());
        assert!(check_date("Fri, 01 Jan 2010 16:00:00 EST").is_err());
        assert!(check_date("Fri, 1 Jan 2010 16:00:00 GMT").is_err());
    }
}

//! OPTIONS messages in the form Microsoft Teams Direct Routing expects.
//!
//! Teams' SIP proxies decide whether an SBC is "active" from the OPTIONS the
//! SBC sends them: the request must name the SBC by its FQDN (never an IP) in
//! `Contact: <sip:FQDN:5061;transport=tls>`, in `From` and in the Via sent-by,
//! and carry `Max-Forwards` (RFC 3261 §8.1.1.6), a `User-Agent` and an
//! `X-MS-SBC: vendor/model/version` header. Over TLS the request is sent once:
//! a reliable transport never retransmits (RFC 3261 §17.1.2.2, Timer E is not
//! used) and the transaction ends by Timer F (64·T1), which we cap at the ping
//! interval.

use portcullis_sip::{HeaderName, Message, OwnedMessage, Request, Response};

use super::TeamsError;

/// Methods the SBC accepts toward Teams (`Allow` of our OPTIONS and of our 200 to theirs).
pub const TEAMS_ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, REFER, NOTIFY, UPDATE, INFO";

/// Extensions the SBC announces toward Teams (`Supported`).
pub const TEAMS_SUPPORTED: &str = "timer, replaces";

/// Port of the SBC's TLS listener as written in our Contact (Teams dials it back).
pub const SBC_TLS_PORT: u16 = 5061;

/// The identity an OPTIONS ping carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SbcIdentity {
    /// The SBC FQDN paired in the tenant (`sbc1.example.com`).
    pub fqdn: String,
    /// Port in Contact/Via/From (5061 unless the listener differs).
    pub port: u16,
    /// `User-Agent` value (`Portcullis/0.1.0`).
    pub user_agent: String,
    /// `X-MS-SBC` value, `vendor/model/version` (`Portcullis/SBC/0.1.0`).
    pub x_ms_sbc: String,
}

impl SbcIdentity {
    /// An identity with the product name and version of this build.
    #[must_use]
    pub fn new(fqdn: &str) -> Self {
        let version = env!("CARGO_PKG_VERSION");
        Self {
            fqdn: fqdn.to_owned(),
            port: SBC_TLS_PORT,
            user_agent: format!("Portcullis/{version}"),
            x_ms_sbc: format!("Portcullis/SBC/{version}"),
        }
    }

    /// `<sip:FQDN:PORT;transport=tls>`: the Contact Teams dials back.
    #[must_use]
    pub fn contact(&self) -> String {
        format!("<sip:{}:{};transport=tls>", self.fqdn, self.port)
    }
}

/// Identifiers of one OPTIONS ping, used to match its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PingIds {
    pub call_id: String,
    pub cseq: u32,
    pub branch: String,
    pub from_tag: String,
}

/// Builds an OPTIONS ping to the proxy `proxy_host:proxy_port` (an FQDN).
///
/// RFC 3261 §11.1 (OPTIONS), §8.1.1 (mandatory headers). Request-URI and To
/// name the proxy by FQDN; From, Via sent-by and Contact name the SBC by FQDN.
#[must_use]
pub fn build_options(
    me: &SbcIdentity,
    proxy_host: &str,
    proxy_port: u16,
    ids: &PingIds,
) -> OwnedMessage {
    let ruri = format!("sip:{proxy_host}:{proxy_port};transport=tls");
    let mut m = Request::builder(portcullis_sip::Method::Options, &ruri);
    m.push(
        HeaderName::Via,
        &format!(
            "SIP/2.0/TLS {}:{};branch={};rport",
            me.fqdn, me.port, ids.branch
        ),
    )
    .push(HeaderName::MaxForwards, "70")
    .push(
        HeaderName::From,
        &format!("<sip:{}:{}>;tag={}", me.fqdn, me.port, ids.from_tag),
    )
    .push(HeaderName::To, &format!("<sip:{proxy_host}:{proxy_port}>"))
    .push(HeaderName::CallId, &ids.call_id)
    .push(HeaderName::CSeq, &format!("{} OPTIONS", ids.cseq))
    .push(HeaderName::Contact, &me.contact())
    .push(HeaderName::Allow, TEAMS_ALLOW)
    .push(HeaderName::Supported, TEAMS_SUPPORTED)
    .push_named("User-Agent", &me.user_agent)
    .push_named("X-MS-SBC", &me.x_ms_sbc);
    m
}

/// The parts of a response the health logic needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PingAnswer {
    pub call_id: String,
    pub cseq: u32,
    pub status: u16,
    /// `Retry-After` seconds, when present and well formed.
    pub retry_after: Option<u32>,
}

/// Reads a response to an OPTIONS ping. Errors when `bytes` is not a
/// well-formed response to an OPTIONS request (peer sent garbage).
pub fn parse_answer(bytes: &[u8]) -> Result<PingAnswer, TeamsError> {
    let msg = Message::parse(bytes).map_err(|e| TeamsError::Malformed(e.to_string()))?;
    let status = msg
        .status()
        .ok_or(TeamsError::Malformed("not a response".into()))?;
    let call_id = msg
        .call_id()
        .ok_or(TeamsError::Malformed("no Call-ID".into()))?;
    let cseq = msg
        .cseq()
        .map_err(|e| TeamsError::Malformed(e.to_string()))?;
    if !cseq.method.eq_ignore_ascii_case("OPTIONS") {
        return Err(TeamsError::NotOurs);
    }
    let retry_after = msg.retry_after().and_then(Result::ok).map(|r| r.seconds);
    Ok(PingAnswer {
        call_id: call_id.to_owned(),
        cseq: cseq.seq,
        status,
        retry_after,
    })
}

/// Our `200 OK` to an OPTIONS from Teams (RFC 3261 §11.2): `Allow`,
/// `Supported`, `Accept: application/sdp`, the FQDN Contact, our User-Agent
/// as `Server` and `X-MS-SBC`.
#[must_use]
pub fn answer_options(me: &SbcIdentity, req: &Message<'_>, to_tag: &str) -> OwnedMessage {
    let mut r = Response::to(req, 200, "OK");
    r.set_to_tag(to_tag);
    r.push(HeaderName::Contact, &me.contact())
        .push(HeaderName::Allow, TEAMS_ALLOW)
        .push(HeaderName::Supported, TEAMS_SUPPORTED)
        .push_named("Accept", "application/sdp")
        .push_named("Server", &me.user_agent)
        .push_named("X-MS-SBC", &me.x_ms_sbc);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> PingIds {
        PingIds {
            call_id: "tm-1-7@sbc1.example.com".into(),
            cseq: 7,
            branch: "z9hG4bKabc".into(),
            from_tag: "f1".into(),
        }
    }

    #[test]
    fn options_names_the_fqdn_everywhere() {
        let me = SbcIdentity::new("sbc1.example.com");
        let m = build_options(&me, "sip.pstnhub.microsoft.com", 5061, &ids());
        let bytes = m.to_bytes();
        let p = Message::parse(&bytes).unwrap();
        portcullis_sip::validate_request(&p).unwrap();
        assert_eq!(
            p.request_uri().unwrap().to_string(),
            "sip:sip.pstnhub.microsoft.com:5061;transport=tls"
        );
        assert_eq!(
            m.get(HeaderName::Contact),
            Some("<sip:sbc1.example.com:5061;transport=tls>")
        );
        assert_eq!(
            m.get(HeaderName::From),
            Some("<sip:sbc1.example.com:5061>;tag=f1")
        );
        assert_eq!(p.max_forwards().unwrap().unwrap(), 70);
        assert!(m
            .get_by_name("User-Agent")
            .unwrap()
            .starts_with("Portcullis/"));
        assert!(m
            .get_by_name("X-MS-SBC")
            .unwrap()
            .starts_with("Portcullis/SBC/"));
        assert_eq!(p.top_via().unwrap().branch(), Some("z9hG4bKabc"));
    }

    #[test]
    fn answer_parses_status_and_retry_after() {
        let wire = b"SIP/2.0 503 Service Unavailable\r\n\
Via: SIP/2.0/TLS sbc1.example.com:5061;branch=z9hG4bKabc\r\n\
From: <sip:sbc1.example.com:5061>;tag=f1\r\nTo: <sip:sip.pstnhub.microsoft.com:5061>;tag=x\r\n\
Call-ID: tm-1-7@sbc1.example.com\r\nCSeq: 7 OPTIONS\r\nRetry-After: 30\r\nContent-Length: 0\r\n\r\n";
        let a = parse_answer(wire).unwrap();
        assert_eq!(a.status, 503);
        assert_eq!(a.retry_after, Some(30));
        assert_eq!(a.cseq, 7);
        assert!(parse_answer(b"garbage").is_err());
        let invite = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS a:5061;branch=z9hG4bK1\r\n\
From: <sip:a>;tag=1\r\nTo: <sip:b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse_answer(invite), Err(TeamsError::NotOurs));
    }

    #[test]
    fn answers_teams_options_with_allow_and_supported() {
        let wire = b"OPTIONS sip:sbc1.example.com:5061;transport=tls SIP/2.0\r\n\
Via: SIP/2.0/TLS 52.114.148.0:5061;branch=z9hG4bKms1\r\nMax-Forwards: 70\r\n\
From: <sip:sip.pstnhub.microsoft.com>;tag=m1\r\nTo: <sip:sbc1.example.com>\r\n\
Call-ID: ms-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let req = Message::parse(wire).unwrap();
        let me = SbcIdentity::new("sbc1.example.com");
        let r = answer_options(&me, &req, "t9");
        assert_eq!(r.status(), Some(200));
        assert!(r.get(HeaderName::Allow).unwrap().contains("REFER"));
        assert_eq!(r.get(HeaderName::Supported), Some(TEAMS_SUPPORTED));
        assert_eq!(r.call_id(), Some("ms-1"));
        assert!(r.get(HeaderName::To).unwrap().contains("tag=t9"));
    }
}

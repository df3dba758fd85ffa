//! Transaction matching keys (RFC 3261 §17.1.3, §17.2.3).

use super::message::{Method, SipMsg};
use super::via::Via;
use super::MsgError;

/// Method used for matching: ACK matches the INVITE transaction (§17.2.3).
fn match_method(m: &Method) -> Method {
    match m {
        Method::Ack => Method::Invite,
        other => other.clone(),
    }
}

/// Client transaction key: top Via branch + CSeq method (§17.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey {
    pub branch: String,
    pub method: Method,
}

impl ClientKey {
    /// Key of a response (top Via branch, CSeq method).
    pub fn of_response(msg: &SipMsg) -> Result<Self, MsgError> {
        let via = msg.top_via()?;
        let branch = via.branch().ok_or(MsgError::Missing("branch"))?.to_owned();
        Ok(Self {
            branch,
            method: msg.cseq()?.method,
        })
    }
}

/// Server transaction key (§17.2.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ServerKey {
    /// Magic-cookie branch: branch + sent-by + method (ACK → INVITE).
    Rfc3261 {
        branch: String,
        sent_by: String,
        method: Method,
    },
    /// RFC 2543 fallback: Request-URI, To tag, From tag, Call-ID, CSeq, top Via.
    Rfc2543 {
        request_uri: String,
        to_tag: Option<String>,
        from_tag: Option<String>,
        call_id: String,
        cseq: u32,
        method: Method,
        top_via: String,
    },
}

impl ServerKey {
    /// Key of a request as it names its own transaction. For ACK this is the
    /// INVITE transaction key (RFC 2543 style: To tag of the ACK must equal the
    /// tag the server put in its response, indexed separately).
    pub fn of_request(msg: &SipMsg, via: &Via) -> Result<Self, MsgError> {
        let method = match_method(msg.method().ok_or(MsgError::Syntax("not a request"))?);
        Self::with_method(msg, via, method)
    }

    /// Key of the INVITE transaction a CANCEL refers to (§9.2: same key, method INVITE).
    pub fn cancel_target(msg: &SipMsg, via: &Via) -> Result<Self, MsgError> {
        let mut key = Self::with_method(msg, via, Method::Invite)?;
        if let Self::Rfc2543 { to_tag, .. } = &mut key {
            // A CANCEL carries the To of the INVITE (no tag, §9.1).
            *to_tag = None;
        }
        Ok(key)
    }

    fn with_method(msg: &SipMsg, via: &Via, method: Method) -> Result<Self, MsgError> {
        if let Some(branch) = via.rfc3261_branch() {
            return Ok(Self::Rfc3261 {
                branch: branch.to_owned(),
                sent_by: via.sent_by(),
                method,
            });
        }
        let uri = msg.request_uri().ok_or(MsgError::Syntax("not a request"))?;
        Ok(Self::Rfc2543 {
            request_uri: uri.to_owned(),
            to_tag: msg.to_tag()?.map(str::to_owned),
            from_tag: msg.from_tag()?.map(str::to_owned),
            call_id: msg.call_id()?.to_owned(),
            cseq: msg.cseq()?.seq,
            method,
            top_via: format!(
                "{}/{};branch={}",
                via.transport,
                via.sent_by(),
                via.branch().unwrap_or("")
            ),
        })
    }

    /// The same key with a different To tag (RFC 2543 ACK matching).
    pub fn with_to_tag(&self, tag: Option<&str>) -> Self {
        let mut k = self.clone();
        if let Self::Rfc2543 { to_tag, .. } = &mut k {
            *to_tag = tag.map(str::to_owned);
        }
        k
    }
}

/// Index of INVITE server transactions in RFC 6026 Accepted state, for the
/// 2xx ACK (which carries a new branch): Call-ID, CSeq number, From tag, To tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct AckKey {
    pub call_id: String,
    pub cseq: u32,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
}

impl AckKey {
    pub fn of(msg: &SipMsg) -> Result<Self, MsgError> {
        Ok(Self {
            call_id: msg.call_id()?.to_owned(),
            cseq: msg.cseq()?.seq,
            from_tag: msg.from_tag()?.map(str::to_owned),
            to_tag: msg.to_tag()?.map(str::to_owned),
        })
    }
}

//! Messages the transaction layer builds from others: responses (§8.2.6.2),
//! CANCEL (§9.1) and the ACK of a non-2xx final response (§17.1.1.3).

use super::message::{same_header, Method, SipMsg};

/// Builds a response to `request` (RFC 3261 §8.2.6.2): Via (all, in order), From,
/// To (with `to_tag` added when it has none), Call-ID, CSeq copied; Record-Route
/// copied for 101-299 so the UAC learns the route set (§12.1.1).
#[must_use]
pub fn make_response(request: &SipMsg, status: u16, reason: &str, to_tag: Option<&str>) -> SipMsg {
    let mut resp = SipMsg::response(status, reason);
    for (n, v) in request.headers() {
        let copy = ["Via", "From", "To", "Call-ID", "CSeq"]
            .iter()
            .any(|h| same_header(n, h))
            || ((101..300).contains(&status) && same_header(n, "Record-Route"));
        if copy {
            resp.push_header(n, v);
        }
    }
    if let Some(tag) = to_tag {
        if matches!(resp.to_tag(), Ok(None)) {
            // Cannot fail: To was copied and checked above.
            let _ = resp.set_to_tag(tag);
        }
    }
    resp
}

/// Copies the headers CANCEL and non-2xx ACK share with their INVITE.
fn copy_for(
    request: &SipMsg,
    method: &Method,
    uri: &str,
    to: Option<&str>,
) -> Result<SipMsg, super::MsgError> {
    let cseq = request.cseq()?;
    let mut msg = SipMsg::request(method.clone(), uri);
    msg.push_header("Via", request.top_via()?.to_string());
    for (n, v) in request.headers() {
        if same_header(n, "Route") || same_header(n, "Max-Forwards") {
            msg.push_header(n, v);
        }
    }
    msg.push_header(
        "From",
        request
            .header("From")
            .ok_or(super::MsgError::Missing("From"))?,
    );
    let to = to
        .or_else(|| request.header("To"))
        .ok_or(super::MsgError::Missing("To"))?;
    msg.push_header("To", to);
    msg.push_header("Call-ID", request.call_id()?);
    msg.push_header("CSeq", format!("{} {}", cseq.seq, method));
    Ok(msg)
}

/// Builds the CANCEL for a request per RFC 3261 §9.1: same Request-URI, Call-ID,
/// To, From, CSeq number and single top Via (branch) as the request, Route copied.
pub fn build_cancel(request: &SipMsg) -> Result<SipMsg, super::MsgError> {
    let uri = request
        .request_uri()
        .ok_or(super::MsgError::Syntax("not a request"))?;
    copy_for(request, &Method::Cancel, uri, None)
}

/// Builds the ACK for a non-2xx final response per RFC 3261 §17.1.1.3.
pub(super) fn build_non2xx_ack(request: &SipMsg, response: &SipMsg) -> SipMsg {
    let uri = request.request_uri().unwrap_or("");
    copy_for(request, &Method::Ack, uri, response.header("To"))
        .unwrap_or_else(|_| SipMsg::request(Method::Ack, uri))
}

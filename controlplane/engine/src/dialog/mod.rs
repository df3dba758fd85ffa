//! SIP dialogs (RFC 3261 §12), one per call leg.
//!
//! A [`Dialog`] holds what §12.1 says a dialog is: its id (Call-ID, local tag,
//! remote tag), local and remote sequence numbers, local and remote URIs,
//! the remote target (from Contact) and the route set (from Record-Route).
//! It builds in-dialog requests ([`Dialog::request`], [`Dialog::ack`]) with
//! the Request-URI and Route of §12.2.1.1 (loose routing, strict-routing
//! fallback), checks the CSeq order of incoming requests (§12.2.2, 500 on a
//! lower CSeq) and refreshes the remote target on 2xx to re-INVITE/UPDATE
//! (§12.2.1.2, RFC 6141 §3.3). Early dialogs come from 1xx with a To tag
//! (§12.1.2) and are confirmed, recomputing the route set, by the 2xx.
//!
//! Invariants: `id.call_id`, `id.local_tag` and `id.remote_tag` never change;
//! `local_cseq` only grows; `remote_cseq` only grows.

mod table;

use crate::transaction::message::{addr_uri, uri_has_lr, with_header_param};
use crate::transaction::{Method, MsgError, SipMsg, Via};

pub use table::DialogTable;

/// Dialog identifier (RFC 3261 §12).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

impl DialogId {
    /// Id of the dialog an incoming request belongs to (UAS view: To tag is ours).
    pub fn of_incoming_request(req: &SipMsg) -> Result<Option<Self>, MsgError> {
        let Some(local) = req.to_tag()? else {
            return Ok(None);
        };
        let remote = req.from_tag()?.unwrap_or("");
        Ok(Some(Self {
            call_id: req.call_id()?.to_owned(),
            local_tag: local.to_owned(),
            remote_tag: remote.to_owned(),
        }))
    }

    /// Id of the dialog an incoming response belongs to (UAC view: From tag is ours).
    pub fn of_incoming_response(resp: &SipMsg) -> Result<Option<Self>, MsgError> {
        let Some(remote) = resp.to_tag()? else {
            return Ok(None);
        };
        let local = resp.from_tag()?.unwrap_or("");
        Ok(Some(Self {
            call_id: resp.call_id()?.to_owned(),
            local_tag: local.to_owned(),
            remote_tag: remote.to_owned(),
        }))
    }
}

/// Dialog states (RFC 3261 §12: early and confirmed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DialogState {
    Early,
    Confirmed,
    Terminated,
}

/// Which side created the dialog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Role {
    Uac,
    Uas,
}

/// Dialog errors; [`DialogError::status`] gives the response to send.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    #[error("bad message: {0}")]
    Message(#[from] MsgError),
    #[error("response without a To tag cannot create a dialog (§12.1.2)")]
    NoRemoteTag,
    #[error("CSeq {got} is lower than the remote sequence number {remote} (§12.2.2)")]
    CSeqOutOfOrder { got: u32, remote: u32 },
    #[error("the dialog is terminated")]
    Terminated,
    #[error("local CSeq space exhausted")]
    CSeqExhausted,
    #[error(
        "{0} is not built by Dialog::request (ACK: Dialog::ack; CANCEL: the transaction layer)"
    )]
    WrongMethod(&'static str),
}

impl DialogError {
    /// Response status for an incoming request that failed with this error.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::CSeqOutOfOrder { .. } | Self::CSeqExhausted | Self::WrongMethod(_) => 500,
            Self::Terminated => 481,
            Self::Message(_) | Self::NoRemoteTag => 400,
        }
    }
}

/// One dialog (RFC 3261 §12.1). Serializable: an active/standby pair carries it
/// across a takeover ([`crate::ha`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Dialog {
    pub id: DialogId,
    pub role: Role,
    pub state: DialogState,
    /// Our URI as name-addr without tag (From of our requests).
    pub local_uri: String,
    /// Peer URI as name-addr without tag (To of our requests).
    pub remote_uri: String,
    /// Where in-dialog requests go (Contact of the peer, §12.1.1, §12.1.2).
    pub remote_target: String,
    /// Route set, in the order our requests must list it (name-addr values).
    pub route_set: Vec<String>,
    /// Last CSeq we used; `None` until our first request (UAS side).
    pub local_cseq: Option<u32>,
    /// Highest CSeq received from the peer; `None` until its first request (UAC side).
    pub remote_cseq: Option<u32>,
    /// Our Contact header value.
    pub local_contact: String,
    /// CSeq of the last INVITE we sent (the 2xx ACK reuses it, §13.2.2.4).
    pub invite_cseq: Option<u32>,
    /// Request-URI was SIPS and the request came over TLS (§12.1.1).
    pub secure: bool,
}

/// Strips a `tag` parameter from a From/To value (the tag lives in the id).
fn without_tag(value: &str) -> String {
    let uri_part_end = value
        .rfind('>')
        .map_or_else(|| value.find(';').unwrap_or(value.len()), |i| i + 1);
    let (head, params) = value.split_at(uri_part_end);
    let mut out = head.trim().to_owned();
    for p in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let k = p.split_once('=').map_or(p, |(k, _)| k).trim();
        if !k.eq_ignore_ascii_case("tag") {
            out.push(';');
            out.push_str(p);
        }
    }
    out
}

/// A URI as allowed in a Request-URI: no `method` parameter and no headers
/// (RFC 3261 §19.1.1 table, §12.2.1.1 strict routing).
fn request_uri_form(uri: &str) -> String {
    let no_headers = uri.split('?').next().unwrap_or(uri);
    let mut parts = no_headers.split(';');
    let mut out = parts.next().unwrap_or("").to_owned();
    for p in parts {
        let k = p.split_once('=').map_or(p, |(k, _)| k).trim();
        if !k.eq_ignore_ascii_case("method") {
            out.push(';');
            out.push_str(p);
        }
    }
    out
}

/// Normalises a Record-Route / Route value to `<uri>` plus header params.
fn route_value(v: &str) -> String {
    if v.contains('<') {
        v.trim().to_owned()
    } else {
        format!("<{}>", v.trim())
    }
}

impl Dialog {
    /// UAC side: a dialog created by a 1xx (with To tag) or 2xx to `request` (§12.1.2).
    /// The route set is the response's Record-Route in reverse order.
    pub fn from_uac(request: &SipMsg, response: &SipMsg) -> Result<Self, DialogError> {
        let remote_tag = response
            .to_tag()?
            .ok_or(DialogError::NoRemoteTag)?
            .to_owned();
        let local_tag = request.from_tag()?.unwrap_or("").to_owned();
        let status = response.status().unwrap_or(0);
        let cseq = request.cseq()?;
        let mut route_set: Vec<String> = response
            .header_values("Record-Route")
            .map(route_value)
            .collect();
        route_set.reverse();
        let remote_target = response
            .contact_uri()
            .or_else(|| request.request_uri())
            .unwrap_or("")
            .to_owned();
        Ok(Self {
            id: DialogId {
                call_id: request.call_id()?.to_owned(),
                local_tag,
                remote_tag,
            },
            role: Role::Uac,
            state: if (200..300).contains(&status) {
                DialogState::Confirmed
            } else {
                DialogState::Early
            },
            local_uri: without_tag(request.header("From").ok_or(MsgError::Missing("From"))?),
            remote_uri: without_tag(request.header("To").ok_or(MsgError::Missing("To"))?),
            remote_target,
            route_set,
            local_cseq: Some(cseq.seq),
            remote_cseq: None,
            local_contact: request.header("Contact").unwrap_or("").to_owned(),
            invite_cseq: (cseq.method == Method::Invite).then_some(cseq.seq),
            secure: request
                .request_uri()
                .is_some_and(|u| u.to_ascii_lowercase().starts_with("sips:")),
        })
    }

    /// UAS side: the dialog our 1xx/2xx (carrying `local_tag`) creates (§12.1.1).
    /// The route set is the request's Record-Route in order. `confirmed` is true
    /// when the response is a 2xx.
    pub fn from_uas(
        request: &SipMsg,
        local_tag: &str,
        local_contact: &str,
        confirmed: bool,
    ) -> Result<Self, DialogError> {
        let cseq = request.cseq()?;
        let route_set = request
            .header_values("Record-Route")
            .map(route_value)
            .collect();
        Ok(Self {
            id: DialogId {
                call_id: request.call_id()?.to_owned(),
                local_tag: local_tag.to_owned(),
                remote_tag: request.from_tag()?.unwrap_or("").to_owned(),
            },
            role: Role::Uas,
            state: if confirmed {
                DialogState::Confirmed
            } else {
                DialogState::Early
            },
            local_uri: without_tag(request.header("To").ok_or(MsgError::Missing("To"))?),
            remote_uri: without_tag(request.header("From").ok_or(MsgError::Missing("From"))?),
            remote_target: request.contact_uri().unwrap_or("").to_owned(),
            route_set,
            local_cseq: None,
            remote_cseq: Some(cseq.seq),
            local_contact: local_contact.to_owned(),
            invite_cseq: None,
            secure: request
                .request_uri()
                .is_some_and(|u| u.to_ascii_lowercase().starts_with("sips:")),
        })
    }

    /// UAC: a response inside this dialog for a request with `method` (§12.2.1.2, §13.2.2.4).
    /// A 2xx confirms an early dialog (route set recomputed from the 2xx) and a 2xx
    /// to INVITE/UPDATE refreshes the remote target; a non-2xx final response to
    /// the initial INVITE terminates an early dialog; 481/408 terminate (§12.2.1.2).
    pub fn on_response(&mut self, method: &Method, response: &SipMsg) {
        let status = response.status().unwrap_or(0);
        match status {
            200..=299 => {
                if self.state == DialogState::Early
                    && self.role == Role::Uac
                    && *method == Method::Invite
                {
                    let mut rs: Vec<String> = response
                        .header_values("Record-Route")
                        .map(route_value)
                        .collect();
                    rs.reverse();
                    self.route_set = rs;
                }
                if self.state == DialogState::Early {
                    self.state = DialogState::Confirmed;
                }
                if matches!(method, Method::Invite | Method::Update) {
                    if let Some(c) = response.contact_uri() {
                        self.remote_target = c.to_owned();
                    }
                }
            }
            300..=699 if self.state == DialogState::Early && *method == Method::Invite => {
                self.state = DialogState::Terminated;
            }
            408 | 481 => self.state = DialogState::Terminated,
            _ => {}
        }
    }

    /// UAS: our 2xx confirms an early dialog (§12.1.1).
    pub fn confirm(&mut self) {
        if self.state == DialogState::Early {
            self.state = DialogState::Confirmed;
        }
    }

    /// Marks the dialog terminated (BYE sent or received, final non-2xx...).
    pub fn terminate(&mut self) {
        self.state = DialogState::Terminated;
    }

    /// UAS side of an in-dialog request (§12.2.2): enforces CSeq order and
    /// records the remote sequence number. ACK and CANCEL reuse the INVITE's CSeq
    /// and are accepted when equal.
    pub fn on_request(&mut self, request: &SipMsg) -> Result<(), DialogError> {
        if self.state == DialogState::Terminated {
            return Err(DialogError::Terminated);
        }
        let got = request.cseq()?.seq;
        if let Some(remote) = self.remote_cseq {
            if got < remote {
                return Err(DialogError::CSeqOutOfOrder { got, remote });
            }
        }
        self.remote_cseq = Some(got);
        Ok(())
    }

    /// UAS: we accepted a target refresh (2xx to re-INVITE/UPDATE): take the new Contact
    /// (RFC 3261 §12.2.2, RFC 6141 §3.3).
    pub fn accept_target_refresh(&mut self, request: &SipMsg) {
        if let Some(c) = request.contact_uri() {
            self.remote_target = c.to_owned();
        }
    }

    /// Next local CSeq (§12.2.1.1: strictly increasing by one).
    fn next_cseq(&mut self) -> Result<u32, DialogError> {
        let next = match self.local_cseq {
            Some(c) => c.checked_add(1).ok_or(DialogError::CSeqExhausted)?,
            None => 1,
        };
        self.local_cseq = Some(next);
        Ok(next)
    }

    /// Request-URI and Route values per §12.2.1.1.
    fn target_and_routes(&self) -> (String, Vec<String>) {
        let Some(first) = self.route_set.first() else {
            return (self.remote_target.clone(), Vec::new());
        };
        if uri_has_lr(addr_uri(first)) {
            return (self.remote_target.clone(), self.route_set.clone());
        }
        // Strict router: its URI becomes the Request-URI, the remote target goes last.
        let mut routes: Vec<String> = self.route_set.iter().skip(1).cloned().collect();
        routes.push(format!("<{}>", self.remote_target));
        (request_uri_form(addr_uri(first)), routes)
    }

    fn build(&self, method: Method, cseq: u32, via: &Via) -> SipMsg {
        let (uri, routes) = self.target_and_routes();
        let cseq_value = format!("{cseq} {method}");
        let with_contact = !matches!(method, Method::Ack | Method::Bye | Method::Cancel);
        let mut m = SipMsg::request(method, uri);
        m.push_header("Via", via.to_string());
        m.push_header("Max-Forwards", "70");
        for r in routes {
            m.push_header("Route", r);
        }
        m.push_header(
            "From",
            with_header_param(&self.local_uri, "tag", &self.id.local_tag),
        );
        let to = if self.id.remote_tag.is_empty() {
            self.remote_uri.clone()
        } else {
            with_header_param(&self.remote_uri, "tag", &self.id.remote_tag)
        };
        m.push_header("To", to);
        m.push_header("Call-ID", self.id.call_id.clone());
        m.push_header("CSeq", cseq_value);
        if with_contact && !self.local_contact.is_empty() {
            m.push_header("Contact", self.local_contact.clone());
        }
        m
    }

    /// Builds an in-dialog request (BYE, re-INVITE, UPDATE, INFO, ...) with the next
    /// local CSeq (§12.2.1.1). `via` carries a fresh branch. Use [`Self::ack`] for ACK.
    pub fn request(&mut self, method: Method, via: &Via) -> Result<SipMsg, DialogError> {
        if self.state == DialogState::Terminated {
            return Err(DialogError::Terminated);
        }
        match method {
            Method::Ack => return Err(DialogError::WrongMethod("ACK")),
            Method::Cancel => return Err(DialogError::WrongMethod("CANCEL")),
            _ => {}
        }
        let cseq = self.next_cseq()?;
        if method == Method::Invite {
            self.invite_cseq = Some(cseq);
        }
        Ok(self.build(method, cseq, via))
    }

    /// Builds the ACK for a 2xx to our INVITE: CSeq number of that INVITE, method
    /// ACK (§13.2.2.4). `via` carries a fresh branch.
    pub fn ack(&self, invite_cseq: u32, via: &Via) -> SipMsg {
        self.build(Method::Ack, invite_cseq, via)
    }

    /// A 2xx to our re-INVITE: the dialog takes it in (target refresh) and the ACK for it
    /// is returned.
    pub fn ack_answer(&mut self, response: &SipMsg, via: &Via) -> SipMsg {
        self.on_response(&Method::Invite, response);
        self.ack(response.cseq().map_or(1, |c| c.seq), via)
    }

    /// The URI the driver must resolve to send `request` (top Route, else Request-URI; RFC 3261 §8.1.2).
    #[must_use]
    pub fn next_hop(request: &SipMsg) -> Option<&str> {
        request
            .header("Route")
            .map(addr_uri)
            .or_else(|| request.request_uri())
    }
}

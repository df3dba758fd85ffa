//! What a trunk lets through besides numbers: its place in the RFC 3325 trust
//! domain, its header rules ([`headers`]) and its codec policy ([`codecs`]).
//!
//! Defaults (no rule configured) are what `b2bua::headers` describes: the
//! end-to-end headers cross, Diversion (RFC 5806) and History-Info (RFC 7044)
//! cross with their numbers translated by the route's called-number rules,
//! `P-Asserted-Identity`/`P-Preferred-Identity` cross only between trusted
//! trunks, and every codec passes in the order offered.
//!
//! Everything here is compiled at configuration load (regexes, templates) and
//! immutable afterwards; applying it reads the call's values only.

pub mod codecs;
pub mod headers;
pub mod template;

pub use codecs::{CodecName, CodecPolicy, NoCommonCodec, TelephoneEvent};
pub use headers::{HeaderAction, HeaderPattern, HeaderRule, RuleDirection, RuleError};
pub use template::{Template, TemplateError, Vars};

/// The policy of one trunk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrunkPolicy {
    /// A member of our RFC 3325 trust domain: asserted identities
    /// (`P-Asserted-Identity`) from it are believed and passed on to other
    /// trusted trunks; toward it `P-Asserted-Identity` and
    /// `P-Preferred-Identity` are sent. Never toward an untrusted trunk.
    pub trusted: bool,
    /// Header rules, in the order written.
    pub headers: Vec<HeaderRule>,
    /// Codec policy.
    pub codecs: CodecPolicy,
    /// How the trunk takes DTMF ([`DtmfMode`]).
    pub dtmf: DtmfMode,
}

/// How a trunk takes DTMF: RFC 4733 `telephone-event` packets in the media,
/// SIP INFO (`application/dtmf-relay`), or whatever the far side sends.
///
/// The mode of the trunk a digit goes *to* decides its form (see
/// `b2bua::dtmf`): events from the other side toward an `info` trunk (or a
/// `both` trunk that did not negotiate `telephone-event`) are detected in the
/// data plane and sent as INFO; INFO from the other side toward an `rfc4733`
/// trunk that negotiated `telephone-event` is answered `200` by the SBC and
/// played as events in the stream toward the trunk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DtmfMode {
    /// DTMF is relayed as the other side sends it (events and INFO untouched).
    #[default]
    Passthrough,
    /// RFC 4733 events only: INFO from the other side becomes events.
    Rfc4733,
    /// SIP INFO only: events from the other side become INFO and are not relayed.
    Info,
    /// Either: events when the trunk negotiated `telephone-event`, else INFO.
    Both,
}

impl DtmfMode {
    /// Whether digits toward the trunk may go as SIP INFO.
    #[must_use]
    pub const fn takes_info(self) -> bool {
        !matches!(self, Self::Rfc4733)
    }
}

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
}

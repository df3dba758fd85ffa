//! The serde layer of a trunk's policy keys (`trusted`, `codecs`, `codecs_deny`,
//! `telephone_event`, `[[trunk.headers]]`), checked by `super::check_policy`.

use serde::Deserialize;

/// `action` of a `[[trunk.headers]]` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawHeaderAction {
    /// Copy the header from the received message.
    Keep,
    /// Remove the header.
    Drop,
    /// Append a header with `value`.
    Add,
    /// Replace the value of the headers `match` matches with `value`.
    Rewrite,
}

/// `direction` of a `[[trunk.headers]]` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawRuleDirection {
    /// Messages received from the trunk.
    Inbound,
    /// Messages sent to the trunk.
    Outbound,
    /// Both.
    #[default]
    Both,
}

/// `[[trunk.headers]]`: one header rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderRule {
    /// keep | drop | add | rewrite
    pub action: RawHeaderAction,
    /// Header name, or a prefix ending in `*` (`X-*`).
    pub name: String,
    /// Value template (`add`, `rewrite`): `${calling}`, `${called}`, `${trunk}`, `${1}`..`${9}`.
    pub value: Option<String>,
    /// Regular expression the whole value must match (`rewrite`).
    #[serde(rename = "match")]
    pub pattern: Option<String>,
    /// inbound | outbound | both
    #[serde(default)]
    pub direction: RawRuleDirection,
}

/// `dtmf` of a trunk: how it takes DTMF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawDtmf {
    /// As the other side sends it.
    #[default]
    Passthrough,
    /// RFC 4733 events only.
    Rfc4733,
    /// SIP INFO only.
    Info,
    /// Events when negotiated, else INFO.
    Both,
}

/// `telephone_event` of a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawTelephoneEvent {
    /// As offered.
    #[default]
    Keep,
    /// Added to offers toward the trunk that lack it.
    Add,
}

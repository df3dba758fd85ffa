//! Errors of the SDP layer (one enum per layer, see STYLE.md).
//!
//! Every parse error names the 1-based line of the session description where it was
//! found and a typed reason. All of them blame the peer: the description it sent is not
//! structurally valid SDP (RFC 8866 §9 grammar) or a typed attribute is malformed.

use thiserror::Error;

/// A structurally invalid session description: which line and why.
///
/// `line` is 1-based and counts every line of the input (including blank ones). For
/// errors about something missing at the end of the input, it is the number of the
/// last line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("SDP line {line}: {kind}")]
pub struct SdpError {
    /// 1-based line number in the input.
    pub line: usize,
    /// What is wrong with it.
    pub kind: SdpErrorKind,
}

impl SdpError {
    pub(crate) fn new(line: usize, kind: SdpErrorKind) -> Self {
        Self { line, kind }
    }

    /// The SIP status for a request whose body failed to parse: `400` (RFC 3261
    /// §21.4.1, the request is malformed). SDP that parses but cannot be accepted
    /// is the caller's `488 Not Acceptable Here` decision, not a parse error.
    pub fn status(&self) -> u16 {
        400
    }

    /// The reason phrase to send with [`SdpError::status`].
    pub fn reason(&self) -> &'static str {
        "Bad Request (malformed SDP)"
    }
}

/// Why a session description was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpErrorKind {
    /// The input holds no line at all.
    #[error("empty session description")]
    Empty,
    /// RFC 8866 §5: a line is `<type>=<value>` with a single lower-case letter type.
    #[error("line is not of the form <letter>=<value>")]
    MalformedLine,
    /// RFC 8866 §5: the description must start with `v=`.
    #[error("session description does not start with v=")]
    MissingVersion,
    /// RFC 8866 §5.1: only version 0 exists.
    #[error("unsupported protocol version {0:?}")]
    UnsupportedVersion(String),
    /// A mandatory session-level line (`o=` or `s=`) is absent before the first `m=`.
    #[error("missing mandatory {0}= line")]
    MissingLine(char),
    /// A line that may appear at most once in its section appears again.
    #[error("duplicate {0}= line")]
    DuplicateLine(char),
    /// A line type that is only valid at session level appears inside a media section.
    #[error("{0}= line is not allowed in a media section")]
    NotAllowedInMedia(char),
    /// A field of a known line or attribute is absent.
    #[error("{line_type}: missing field {field}")]
    MissingField {
        /// The line type or attribute name (`o`, `m`, `rtpmap`, ...).
        line_type: &'static str,
        /// The name of the absent field as in the RFC grammar.
        field: &'static str,
    },
    /// A field of a known line or attribute has a value outside its grammar.
    #[error("{line_type}: invalid {field} {value:?}")]
    InvalidField {
        /// The line type or attribute name (`o`, `m`, `rtpmap`, ...).
        line_type: &'static str,
        /// The name of the field as in the RFC grammar.
        field: &'static str,
        /// The offending text (truncated to 64 bytes).
        value: String,
    },
    /// A known line or attribute carries more fields than its grammar allows.
    #[error("{0}: unexpected trailing fields")]
    TrailingFields(&'static str),
}

/// Builds an [`SdpErrorKind::InvalidField`], truncating the offending value so a hostile
/// peer cannot make error messages arbitrarily large.
pub(crate) fn invalid(line_type: &'static str, field: &'static str, value: &str) -> SdpErrorKind {
    let mut end = value.len().min(64);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    SdpErrorKind::InvalidField {
        line_type,
        field,
        value: value.get(..end).unwrap_or_default().to_owned(),
    }
}

/// Builds an [`SdpErrorKind::MissingField`].
pub(crate) fn missing(line_type: &'static str, field: &'static str) -> SdpErrorKind {
    SdpErrorKind::MissingField { line_type, field }
}

/// Errors of the SDES key helpers (RFC 4568): the crypto attribute parsed, but its key
/// material is not usable for the suite it names.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CryptoKeyError {
    /// The crypto attribute has no `inline:` key parameter.
    #[error("no inline key parameter")]
    NoInlineKey,
    /// The suite is not one this codec knows the key/salt sizes of.
    #[error("unknown crypto suite {0:?}")]
    UnknownSuite(String),
    /// The key||salt text is not valid base64.
    #[error("key||salt is not valid base64")]
    BadBase64,
    /// The decoded key||salt has the wrong length for the suite.
    #[error("key||salt is {got} bytes, suite needs {expected}")]
    WrongLength {
        /// Bytes required by the suite (key + salt).
        expected: usize,
        /// Bytes decoded.
        got: usize,
    },
}

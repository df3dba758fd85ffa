//! Errors of the SIP wire codec (one enum per layer, see STYLE.md).
//!
//! Every [`ParseError`] blames the peer and maps to the SIP status a UAS answers
//! with (RFC 3261 §8.2, §21.4) and a reason phrase that says what was wrong.

use crate::header::HeaderName;
use thiserror::Error;

/// Why a URI was refused (RFC 3261 §25.1, RFC 3966, RFC 5118).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum UriError {
    /// No `scheme:` prefix.
    #[error("missing or invalid URI scheme")]
    MissingScheme,
    /// A character that may not appear.
    #[error("invalid character in URI")]
    BadChar,
    /// `%` not followed by two hex digits.
    #[error("invalid %-escape in URI")]
    BadEscape,
    /// Invalid user or password part.
    #[error("invalid URI user part")]
    BadUser,
    /// Invalid host (includes IPv6 without brackets and malformed IPv6).
    #[error("invalid URI host")]
    BadHost,
    /// Invalid port.
    #[error("invalid URI port")]
    BadPort,
    /// Invalid URI parameter.
    #[error("invalid URI parameter")]
    BadParam,
    /// Invalid URI headers part.
    #[error("invalid URI headers")]
    BadHeaders,
    /// Invalid TEL number.
    #[error("invalid telephone number")]
    BadTelNumber,
    /// A SIP/SIPS URI was required.
    #[error("not a SIP or SIPS URI")]
    NotSip,
}

/// A message or header the peer sent is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// No empty line ends the header section (RFC 3261 §7).
    #[error("header section not terminated")]
    Unterminated,
    /// The buffer held only CRLFs or nothing.
    #[error("empty message")]
    Empty,
    /// Header section is not UTF-8 (RFC 3261 §7.3.1 TEXT-UTF8).
    #[error("header section is not valid UTF-8")]
    InvalidUtf8,
    /// Malformed Request-Line (RFC 3261 §7.1, §25.1: single SP separators).
    #[error("malformed Request-Line")]
    BadRequestLine,
    /// Malformed Status-Line (RFC 3261 §7.2).
    #[error("malformed Status-Line")]
    BadStatusLine,
    /// Status code outside 100..=699.
    #[error("invalid status code")]
    BadStatusCode,
    /// SIP-Version other than SIP/2.0 (RFC 3261 §8.2.2 → 505).
    #[error("SIP version not supported")]
    VersionNotSupported,
    /// Request-URI unacceptable (RFC 3261 §19.1.1: no headers, no LWS, no brackets).
    #[error("bad Request-URI: {0}")]
    BadRequestUri(UriError),
    /// A header line without colon, with a bad name, or a bare CR/LF.
    #[error("malformed header line")]
    BadHeaderLine,
    /// Content-Length not a number (RFC 3261 §20.14).
    #[error("invalid Content-Length")]
    BadContentLength,
    /// Body shorter than Content-Length in a datagram (RFC 3261 §18.3).
    #[error("Content-Length mismatch")]
    ContentLengthMismatch,
    /// A header is syntactically invalid.
    #[error("malformed {0} header")]
    BadHeader(HeaderName),
    /// A mandatory header is missing (RFC 3261 §8.1.1).
    #[error("missing {0} header")]
    MissingHeader(HeaderName),
    /// A single-valued header appears more than once (RFC 3261 §7.3.1).
    #[error("multiple {0} headers")]
    DuplicateHeader(HeaderName),
    /// CSeq method differs from the request method (RFC 3261 §8.1.1.5).
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch,
    /// Header section larger than the configured limit.
    #[error("header section too large")]
    HeadersTooLarge,
    /// Body larger than the configured limit.
    #[error("body too large")]
    BodyTooLarge,
}

impl ParseError {
    /// The status code a UAS answers with (RFC 3261 §21).
    pub fn status(&self) -> u16 {
        match self {
            ParseError::VersionNotSupported => 505,
            ParseError::HeadersTooLarge | ParseError::BodyTooLarge => 513,
            _ => 400,
        }
    }

    /// A reason phrase for the response, e.g. `Bad Request (Content-Length mismatch)`.
    pub fn reason(&self) -> String {
        match self {
            ParseError::VersionNotSupported => "Version Not Supported".to_owned(),
            ParseError::HeadersTooLarge | ParseError::BodyTooLarge => {
                format!("Message Too Large ({self})")
            }
            _ => format!("Bad Request ({self})"),
        }
    }
}

/// Failure to serialise into a caller buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("buffer too small: {needed} bytes needed")]
pub struct BufferTooSmall {
    /// Bytes the message needs.
    pub needed: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_to_status_and_reason() {
        assert_eq!(ParseError::ContentLengthMismatch.status(), 400);
        assert_eq!(
            ParseError::ContentLengthMismatch.reason(),
            "Bad Request (Content-Length mismatch)"
        );
        assert_eq!(ParseError::VersionNotSupported.status(), 505);
        assert_eq!(
            ParseError::VersionNotSupported.reason(),
            "Version Not Supported"
        );
        assert_eq!(
            ParseError::MissingHeader(HeaderName::CallId).reason(),
            "Bad Request (missing Call-ID header)"
        );
        assert_eq!(ParseError::BodyTooLarge.status(), 513);
    }
}

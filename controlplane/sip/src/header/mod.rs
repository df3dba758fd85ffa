//! Header fields as slices of the receive buffer, and their typed views.
//!
//! Each typed view has a `parse(&str)` taking one header *element* (for headers
//! that allow comma lists, one element of [`crate::grammar::CommaSplit`]).

mod addr;
mod auth;
mod misc;
mod name;
mod via;

pub use addr::{Contact, NameAddr};
pub use auth::{Auth, Replaces};
pub use misc::{CSeq, MediaType, RetryAfter, SessionExpires};
pub use name::HeaderName;
pub use via::{RPort, Via};

/// One header field as received.
///
/// Invariant: `value` is trimmed of LWS; interior folding (CRLF + SP/HTAB) is kept
/// and counts as white space for every typed parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The name as written (`v`, `ViA`, `X-Foo`).
    pub name: &'a str,
    /// The recognised name.
    pub kind: HeaderName,
    /// The raw value.
    pub value: &'a str,
}

impl<'a> Header<'a> {
    /// The comma-separated elements of the value (RFC 3261 §7.3.1).
    pub fn elements(&self) -> crate::grammar::CommaSplit<'a> {
        crate::grammar::CommaSplit::new(self.value)
    }

    /// Whether this header has the given unknown-or-known name (case-insensitive,
    /// compact forms recognised for known names).
    pub fn is(&self, kind: HeaderName, name: &str) -> bool {
        if kind == HeaderName::Other {
            self.kind == HeaderName::Other && self.name.eq_ignore_ascii_case(name)
        } else {
            self.kind == kind
        }
    }
}

pub(crate) use auth::valid_call_id;
pub use auth::AuthParam;
pub(crate) use misc::parse_content_length as misc_parse_content_length;
pub use misc::{
    check_date, check_token_list, parse_content_length, parse_max_forwards, parse_scalar, tokens,
    Refresher,
};

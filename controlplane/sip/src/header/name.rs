//! Header names: the known ones as an enum, with RFC 3261 §7.3.3 compact forms.

use std::fmt;

macro_rules! header_names {
    ($( $(#[$doc:meta])* $var:ident => $canon:literal $(, $compact:literal)? ; )*) => {
        /// A header field name. Known names are recognised case-insensitively in
        /// long and compact form; anything else is [`HeaderName::Other`] and the
        /// name text is kept verbatim by the message.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName {
            $( $(#[$doc])* $var, )*
            /// Any header not listed; its name is kept as written.
            Other,
        }

        impl HeaderName {
            /// Canonical long form (`Call-ID`, `CSeq`, ...); empty for [`HeaderName::Other`].
            pub fn as_str(self) -> &'static str {
                match self {
                    $( HeaderName::$var => $canon, )*
                    HeaderName::Other => "",
                }
            }

            /// The compact form (RFC 3261 §7.3.3 and extensions), if any.
            pub fn compact(self) -> Option<char> {
                match self {
                    $( $( HeaderName::$var => Some($compact), )? )*
                    _ => None,
                }
            }

            fn lookup_long(name: &str) -> HeaderName {
                $( if name.eq_ignore_ascii_case($canon) { return HeaderName::$var; } )*
                HeaderName::Other
            }

            fn lookup_compact(c: u8) -> HeaderName {
                match c.to_ascii_lowercase() {
                    $( $( x if char::from(x) == $compact => HeaderName::$var, )? )*
                    _ => HeaderName::Other,
                }
            }
        }
    };
}

header_names! {
    /// `Via` (§20.42).
    Via => "Via", 'v';
    /// `From` (§20.20).
    From => "From", 'f';
    /// `To` (§20.39).
    To => "To", 't';
    /// `Call-ID` (§20.8).
    CallId => "Call-ID", 'i';
    /// `CSeq` (§20.16).
    CSeq => "CSeq";
    /// `Max-Forwards` (§20.22).
    MaxForwards => "Max-Forwards";
    /// `Contact` (§20.10).
    Contact => "Contact", 'm';
    /// `Route` (§20.34).
    Route => "Route";
    /// `Record-Route` (§20.30).
    RecordRoute => "Record-Route";
    /// `Content-Length` (§20.14).
    ContentLength => "Content-Length", 'l';
    /// `Content-Type` (§20.15).
    ContentType => "Content-Type", 'c';
    /// `Content-Encoding` (§20.12).
    ContentEncoding => "Content-Encoding", 'e';
    /// `Expires` (§20.19).
    Expires => "Expires";
    /// `Allow` (§20.5).
    Allow => "Allow";
    /// `Supported` (§20.37).
    Supported => "Supported", 'k';
    /// `Require` (§20.32).
    Require => "Require";
    /// `Proxy-Require` (§20.29).
    ProxyRequire => "Proxy-Require";
    /// `Unsupported` (§20.40).
    Unsupported => "Unsupported";
    /// `Session-Expires` (RFC 4028).
    SessionExpires => "Session-Expires", 'x';
    /// `Min-SE` (RFC 4028).
    MinSe => "Min-SE";
    /// `WWW-Authenticate` (§20.44).
    WwwAuthenticate => "WWW-Authenticate";
    /// `Proxy-Authenticate` (§20.27).
    ProxyAuthenticate => "Proxy-Authenticate";
    /// `Authorization` (§20.7).
    Authorization => "Authorization";
    /// `Proxy-Authorization` (§20.28).
    ProxyAuthorization => "Proxy-Authorization";
    /// `Refer-To` (RFC 3515).
    ReferTo => "Refer-To", 'r';
    /// `Referred-By` (RFC 3892).
    ReferredBy => "Referred-By", 'b';
    /// `Replaces` (RFC 3891).
    Replaces => "Replaces";
    /// `P-Asserted-Identity` (RFC 3325).
    PAssertedIdentity => "P-Asserted-Identity";
    /// `P-Preferred-Identity` (RFC 3325).
    PPreferredIdentity => "P-Preferred-Identity";
    /// `Privacy` (RFC 3323).
    Privacy => "Privacy";
    /// `Retry-After` (§20.33).
    RetryAfter => "Retry-After";
    /// `Subject` (§20.36).
    Subject => "Subject", 's';
    /// `Event` (RFC 6665).
    Event => "Event", 'o';
    /// `Allow-Events` (RFC 6665).
    AllowEvents => "Allow-Events", 'u';
    /// `Identity` (RFC 8224).
    Identity => "Identity", 'y';
    /// `Accept` (§20.1).
    Accept => "Accept";
    /// `Date` (§20.17).
    Date => "Date";
    /// `Timestamp` (§20.38).
    Timestamp => "Timestamp";
    /// `User-Agent` (§20.41).
    UserAgent => "User-Agent";
    /// `Server` (§20.35).
    Server => "Server";
    /// `Reason` (RFC 3326).
    Reason => "Reason";
    /// `Warning` (§20.43).
    Warning => "Warning";
    /// `RSeq` (RFC 3262).
    RSeq => "RSeq";
    /// `RAck` (RFC 3262).
    RAck => "RAck";
}

impl HeaderName {
    /// Recognises a header name (long or compact form, any case).
    ///
    /// RFC 4475 §3.1.1.5: `C%6Fntact` is not `Contact`; no unescaping happens here.
    #[inline]
    pub fn from_name(name: &str) -> HeaderName {
        match name.as_bytes() {
            [c] => Self::lookup_compact(*c),
            _ => Self::lookup_long(name),
        }
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderName::Other => f.write_str("extension"),
            n => f.write_str(n.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_forms_rfc3261_7_3_3() {
        for (c, n) in [
            ("i", HeaderName::CallId),
            ("M", HeaderName::Contact),
            ("e", HeaderName::ContentEncoding),
            ("l", HeaderName::ContentLength),
            ("c", HeaderName::ContentType),
            ("f", HeaderName::From),
            ("T", HeaderName::To),
            ("v", HeaderName::Via),
            ("s", HeaderName::Subject),
            ("k", HeaderName::Supported),
            ("o", HeaderName::Event),
            ("u", HeaderName::AllowEvents),
            ("r", HeaderName::ReferTo),
            ("b", HeaderName::ReferredBy),
            ("x", HeaderName::SessionExpires),
            ("y", HeaderName::Identity),
        ] {
            assert_eq!(HeaderName::from_name(c), n, "{c}");
            assert_eq!(
                n.compact(),
                c.chars().next().map(|c| c.to_ascii_lowercase())
            );
        }
        assert_eq!(HeaderName::from_name("q"), HeaderName::Other);
    }

    #[test]
    fn long_forms_case_insensitive() {
        assert_eq!(
            HeaderName::from_name("MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_name("call-id"), HeaderName::CallId);
        assert_eq!(HeaderName::from_name("C%6Fntact"), HeaderName::Other);
        assert_eq!(HeaderName::CallId.to_string(), "Call-ID");
    }
}

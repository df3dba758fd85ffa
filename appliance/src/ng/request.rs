//! An ng request dictionary → a checked [`Request`].
//!
//! Keys and flags are matched the way rtpengine matches them: case-insensitively, with
//! spaces, hyphens and underscores equivalent (`transport protocol`, `transport-protocol`;
//! `trust address`, `trust-address`). Every key, flag and value this node does not
//! implement is an error naming it ([`NgError::Unsupported`]); informational keys
//! (`label`, `metadata`, `supports`, …) are accepted and ignored. Nothing unknown is ever
//! silently dropped, so Kamailio never hands a caller an SDP that ignored what it asked.

use std::net::IpAddr;

use portcullis_sip::sdp::Proto;

use super::bencode::Value;
use super::NgError;

/// The commands this node answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Command {
    /// `ping` → `pong`.
    Ping,
    /// `offer`: an SDP offer from the `from-tag` side.
    Offer,
    /// `answer`: the SDP answer of the `to-tag` side.
    Answer,
    /// `delete`: tear the call down.
    Delete,
    /// `query`: a call's state and counters.
    Query,
    /// `list`: the call-ids of the live calls.
    List,
}

impl Command {
    /// Every command, in metric order.
    pub const ALL: [Command; 6] = [
        Command::Ping,
        Command::Offer,
        Command::Answer,
        Command::Delete,
        Command::Query,
        Command::List,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Ping => "ping",
            Command::Offer => "offer",
            Command::Answer => "answer",
            Command::Delete => "delete",
            Command::Query => "query",
            Command::List => "list",
        }
    }
}

/// What the `offer`/`answer` options ask of the SDP rewrite and of the legs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `replace: origin`: our address in `o=`.
    pub replace_origin: bool,
    /// `replace: session-connection`: our address in the session-level `c=`.
    pub replace_session_connection: bool,
    /// `ICE: remove`: strip every ICE attribute.
    pub ice_remove: bool,
    /// `transport-protocol`: the profile toward the receiver of the SDP.
    pub transport: Option<Proto>,
    /// `asymmetric`: do not learn the peer from packets (no latching).
    pub asymmetric: bool,
    /// `SIP-source-address`: the peer's media address is the SIP source (`received-from`).
    pub sip_source: bool,
    /// `received-from`: the address the SIP message came from.
    pub received_from: Option<IpAddr>,
    /// `media-address`: the peer's media address, overriding the SDP.
    pub media_address: Option<IpAddr>,
    /// `address-family`: `IP4` (false) or `IP6` (true), when given.
    pub ipv6: Option<bool>,
    /// `direction`: interface names (checked by the call table against the config).
    pub direction: Vec<String>,
}

/// A checked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The command.
    pub command: Command,
    /// `call-id`.
    pub call_id: Option<String>,
    /// `from-tag`.
    pub from_tag: Option<String>,
    /// `to-tag`.
    pub to_tag: Option<String>,
    /// `sdp`.
    pub sdp: Option<Vec<u8>>,
    /// SDP and leg options (offer, answer).
    pub opts: Options,
    /// `delete` flag `fatal`: an unknown call is an error, not a warning.
    pub fatal: bool,
    /// `list` `limit`.
    pub limit: Option<i64>,
    /// `supports: [load limit]`: a refusal for load is answered `result: load limit`.
    pub load_limit: bool,
}

/// The canonical spelling of a key or flag: ASCII lower case, `-` for space and `_`.
pub fn canon(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .chars()
        .map(|c| match c {
            ' ' | '_' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Keys that carry nothing this node acts on (labels, metadata, the proxy's features).
const IGNORED_KEYS: &[&str] = &[
    "label",
    "from-label",
    "to-label",
    "set-label",
    "metadata",
    "sip-message-type",
    "sip-code",
    "xmlrpc-callback",
];

/// Flags that ask for what this node always does.
const NO_OP_FLAGS: &[&str] = &[
    // The peer address from the SDP is the default.
    "trust-address",
    // Symmetric RTP (latching) is the default.
    "symmetric",
    // Local ports are kept across re-offers anyway.
    "port-latching",
    // `a=rtcp` is never written (RTCP is on RTP + 1 or muxed).
    "no-rtcp-attribute",
];

fn text(v: &Value, key: &str) -> Result<String, NgError> {
    let b = v
        .as_bytes()
        .ok_or_else(|| NgError::Malformed(format!("{key} is not a string")))?;
    String::from_utf8(b.to_vec()).map_err(|_| NgError::Malformed(format!("{key} is not UTF-8")))
}

fn strings(v: &Value, key: &str) -> Result<Vec<String>, NgError> {
    match v {
        Value::List(l) => l.iter().map(|x| text(x, key)).collect(),
        // A lone string where a list is expected: rtpengine takes it as a one-item list.
        Value::Bytes(_) => Ok(vec![text(v, key)?]),
        _ => Err(NgError::Malformed(format!("{key} is not a list"))),
    }
}

fn ip(s: &str, key: &str) -> Result<IpAddr, NgError> {
    s.parse()
        .map_err(|_| NgError::Malformed(format!("{key}: {s:?} is not an IP address")))
}

fn unsupported(what: impl Into<String>) -> NgError {
    NgError::Unsupported(what.into())
}

/// Parses and checks a decoded request dictionary.
///
/// # Errors
/// Not a dictionary, no or unknown `command`, a malformed value, or a key, flag or value
/// this node does not implement (the error names it).
pub fn parse(v: &Value) -> Result<Request, NgError> {
    let Value::Dict(entries) = v else {
        return Err(NgError::Malformed("the request is not a dictionary".into()));
    };
    let command = match v.get("command").map(|c| text(c, "command")).transpose()? {
        None => return Err(NgError::Malformed("no command".into())),
        Some(c) => match canon(c.as_bytes()).as_str() {
            "ping" => Command::Ping,
            "offer" => Command::Offer,
            "answer" => Command::Answer,
            "delete" => Command::Delete,
            "query" => Command::Query,
            "list" => Command::List,
            _ => return Err(unsupported(format!("command {c:?}"))),
        },
    };
    let mut r = Request {
        command,
        call_id: None,
        from_tag: None,
        to_tag: None,
        sdp: None,
        opts: Options::default(),
        fatal: false,
        limit: None,
        load_limit: false,
    };
    for (k, val) in entries {
        let key = canon(k);
        match key.as_str() {
            "command" => {}
            "call-id" => r.call_id = Some(text(val, "call-id")?),
            "from-tag" => r.from_tag = Some(text(val, "from-tag")?),
            "to-tag" => r.to_tag = Some(text(val, "to-tag")?),
            // Branches are not told apart: a call's B side follows its latest answer.
            "via-branch" => {
                text(val, "via-branch")?;
            }
            "sdp" => {
                r.sdp = Some(
                    val.as_bytes()
                        .ok_or_else(|| NgError::Malformed("sdp is not a string".into()))?
                        .to_vec(),
                )
            }
            "flags" => {
                for f in strings(val, "flags")? {
                    flag(&mut r, &f)?;
                }
            }
            "replace" => {
                for f in strings(val, "replace")? {
                    match canon(f.as_bytes()).as_str() {
                        "origin" => r.opts.replace_origin = true,
                        "session-connection" => r.opts.replace_session_connection = true,
                        _ => return Err(unsupported(format!("replace {f:?}"))),
                    }
                }
            }
            "ice" => {
                let s = text(val, "ICE")?;
                match canon(s.as_bytes()).as_str() {
                    "remove" => r.opts.ice_remove = true,
                    _ => return Err(unsupported(format!("ICE={s} (only ICE=remove)"))),
                }
            }
            "transport-protocol" => {
                let s = text(val, "transport-protocol")?;
                r.opts.transport = Some(match s.as_str() {
                    "RTP/AVP" => Proto::RtpAvp,
                    "RTP/SAVP" => Proto::RtpSavp,
                    "RTP/AVPF" => Proto::RtpAvpf,
                    "RTP/SAVPF" => Proto::RtpSavpf,
                    _ => return Err(unsupported(format!("transport-protocol {s}"))),
                });
            }
            "direction" => r.opts.direction = strings(val, "direction")?,
            "received-from" => {
                let l = strings(val, "received-from")?;
                let addr = l.get(1).ok_or_else(|| {
                    NgError::Malformed("received-from needs [family, address]".into())
                })?;
                r.opts.received_from = Some(ip(addr, "received-from")?);
            }
            "media-address" => r.opts.media_address = Some(ip(&text(val, &key)?, &key)?),
            "address-family" => {
                let s = text(val, &key)?;
                r.opts.ipv6 = Some(match s.as_str() {
                    "IP4" => false,
                    "IP6" => true,
                    _ => return Err(NgError::Malformed(format!("address-family {s:?}"))),
                });
            }
            "record-call" => {
                let s = text(val, &key)?;
                if !matches!(canon(s.as_bytes()).as_str(), "no" | "off") {
                    return Err(unsupported(format!("record-call={s}")));
                }
            }
            "dtls" => {
                let s = text(val, "DTLS")?;
                if !matches!(canon(s.as_bytes()).as_str(), "off" | "no" | "disable") {
                    return Err(unsupported(format!("DTLS={s}")));
                }
            }
            "supports" => {
                r.load_limit = strings(val, "supports")?
                    .iter()
                    .any(|s| canon(s.as_bytes()) == "load-limit");
            }
            "limit" => match val {
                Value::Int(n) => r.limit = Some(*n),
                _ => return Err(NgError::Malformed("limit is not an integer".into())),
            },
            "delete-delay" => match val {
                // Deleted at once; a delay is a no-op only when it is zero.
                Value::Int(0) => {}
                _ => return Err(unsupported("delete-delay (calls are deleted at once)")),
            },
            k if IGNORED_KEYS.contains(&k) => {}
            _ => return Err(unsupported(format!("key {:?}", String::from_utf8_lossy(k)))),
        }
    }
    Ok(r)
}

/// Applies one entry of the `flags` list.
fn flag(r: &mut Request, f: &str) -> Result<(), NgError> {
    let c = canon(f.as_bytes());
    match c.as_str() {
        c if NO_OP_FLAGS.contains(&c) => {}
        "asymmetric" => r.opts.asymmetric = true,
        "sip-source-address" => r.opts.sip_source = true,
        "fatal" => r.fatal = true,
        // Kamailio spells replace/ICE/transport options as flags in some versions.
        "replace-origin" => r.opts.replace_origin = true,
        "replace-session-connection" => r.opts.replace_session_connection = true,
        "ice-remove" => r.opts.ice_remove = true,
        "rtp/avp" => r.opts.transport = Some(Proto::RtpAvp),
        "rtp/savp" => r.opts.transport = Some(Proto::RtpSavp),
        "record-call-no" | "record-call-off" => {}
        _ => return Err(unsupported(format!("flag {f:?}"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ng::bencode::decode;

    fn req(wire: &[u8]) -> Result<Request, NgError> {
        parse(&decode(wire).unwrap())
    }

    #[test]
    fn kamailio_offer_is_understood() {
        // Captured from Kamailio 5.6's rtpengine_manage("replace-origin
        // replace-session-connection ICE=remove trust-address symmetric").
        let wire = b"d8:supportsl10:load limite3:sdp3:v=03:ICE6:remove5:flagsl13:trust-address9:symmetrice7:replacel6:origin18:session-connectione7:call-id4:c-1113:received-froml3:IP49:127.0.0.1e8:from-tag2:ft7:command5:offere";
        let r = req(wire).unwrap();
        assert_eq!(r.command, Command::Offer);
        assert_eq!(r.call_id.as_deref(), Some("c-11"));
        assert_eq!(r.from_tag.as_deref(), Some("ft"));
        assert!(r.opts.replace_origin && r.opts.replace_session_connection);
        assert!(r.opts.ice_remove && !r.opts.asymmetric && r.load_limit);
        assert_eq!(r.opts.received_from, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(r.sdp.as_deref(), Some(&b"v=0"[..]));
    }

    #[test]
    fn spellings_with_spaces_and_case_are_the_same_key() {
        let r =
            req(b"d7:command5:offer18:transport protocol8:RTP/SAVP11:record call2:noe").unwrap();
        assert_eq!(r.opts.transport, Some(Proto::RtpSavp));
        let r = req(b"d7:command6:answer5:flagsl10:asymmetric18:SIP source addressee").unwrap();
        assert!(r.opts.asymmetric && r.opts.sip_source);
    }

    #[test]
    fn what_is_not_implemented_is_named() {
        for (wire, name) in [
            (
                &b"d7:command5:offer5:flagsl13:strict-sourceee"[..],
                "strict-source",
            ),
            (b"d7:command5:offer3:ICE5:forcee", "ICE=force"),
            (b"d7:command5:offer11:record-call3:yese", "record-call=yes"),
            (
                b"d7:command5:offer18:transport-protocol17:UDP/TLS/RTP/SAVPFe",
                "UDP/TLS",
            ),
            (b"d7:command15:start recordinge", "start recording"),
            (b"d7:command5:offer5:codecd5:stripl4:PCMUeee", "codec"),
            (b"d7:command5:offer7:replacel8:usernameee", "username"),
            (b"d7:command5:offer4:DTLS7:passivee", "DTLS=passive"),
        ] {
            match req(wire) {
                Err(NgError::Unsupported(m)) => assert!(m.contains(name), "{m} vs {name}"),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_requests_are_errors() {
        for wire in [
            &b"le"[..],
            b"d4:call2:ide",
            b"d7:commandi3ee",
            b"d7:command5:offer5:flagsi1ee",
            b"d7:command5:offer13:received-froml3:IP43:abcee",
        ] {
            assert!(
                matches!(req(wire), Err(NgError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(wire)
            );
        }
    }
}

//! Conformance: RFC 4475 and RFC 5118 torture messages held to their manifests
//! (`../shared/vectors/sip-torture/*/manifest.json`, see MANIFEST.md there).
//!
//! accept → `Message::parse` succeeds and the start line, Call-ID(s), CSeq(s),
//! Content-Length header(s), header count and body match the manifest facts;
//! reject → `Message::parse` or the validation a UA core runs
//! (`validate_request` / `validate_response`) refuses it with a status code.
//! Liberal acceptance is permitted by the RFC for some rejects; this codec is
//! strict and rejects all of them (asserted). The RFC 5118 §4.10 three-colon case
//! ("reject-or-tolerate") is rejected because `2001:db8:::192.0.2.1` is not an
//! RFC 4291 address.

use portcullis_sip::{
    error_response, validate_request, validate_response, ErrorAction, HeaderName, Message,
    ParseError,
};
use serde_json::Value;
use std::path::PathBuf;

fn vectors() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/vectors/sip-torture"
    ))
}

fn load(set: &str) -> Vec<Value> {
    let path = vectors().join(set).join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    match serde_json::from_str::<Value>(&text).expect("manifest is JSON") {
        Value::Array(a) => a,
        other => panic!("unexpected manifest shape: {other}"),
    }
}

/// Values of a fact that may be one value or a list (multi01, mcl01).
fn many(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

fn as_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Validation a UA core applies, returning the status it would answer or drop with.
fn validate(msg: &Message<'_>) -> Result<(), ParseError> {
    if msg.is_request() {
        validate_request(msg)
    } else {
        validate_response(msg)
    }
}

fn check_accept(name: &str, bytes: &[u8], facts: &Value) -> Result<Message<'static>, String> {
    // Leak is confined to the test: lets the message outlive this function.
    let bytes: &'static [u8] = Box::leak(bytes.to_vec().into_boxed_slice());
    let msg = Message::parse(bytes).map_err(|e| format!("{name}: parse failed: {e}"))?;
    if let Some(m) = facts.get("method").and_then(Value::as_str) {
        if msg.method() != Some(m) {
            return Err(format!("{name}: method {:?} != {m}", msg.method()));
        }
    }
    if let Some(u) = facts.get("request_uri").and_then(Value::as_str) {
        let got = msg.request_uri().map(|u| u.as_str());
        if got != Some(u) {
            return Err(format!("{name}: Request-URI {got:?} != {u}"));
        }
    }
    if let Some(code) = facts.get("status_code") {
        let want: u16 = as_string(code)
            .parse()
            .map_err(|_| format!("{name}: bad fact"))?;
        if msg.status() != Some(want) {
            return Err(format!("{name}: status {:?} != {want}", msg.status()));
        }
    }
    if let Some(reason) = facts.get("reason_phrase").and_then(Value::as_str) {
        if msg.reason() != Some(reason) {
            return Err(format!("{name}: reason {:?} != {reason}", msg.reason()));
        }
    }
    match facts.get("call_id") {
        Some(c) => {
            let want: Vec<String> = many(c).iter().map(as_string).collect();
            let got: Vec<String> = msg
                .headers_of(HeaderName::CallId)
                .map(|h| h.value.to_owned())
                .collect();
            if got != want {
                return Err(format!("{name}: Call-ID {got:?} != {want:?}"));
            }
        }
        None => {
            if msg.call_id().is_some() {
                return Err(format!("{name}: unexpected Call-ID"));
            }
        }
    }
    if let Some(c) = facts.get("cseq") {
        let want: Vec<(u64, String)> = many(c)
            .iter()
            .map(|x| {
                (
                    x.get("seq").and_then(Value::as_u64).unwrap_or(u64::MAX),
                    x.get("method")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                )
            })
            .collect();
        let mut got = Vec::new();
        for h in msg.headers_of(HeaderName::CSeq) {
            let c = portcullis_sip::CSeq::parse(h.value)
                .map_err(|e| format!("{name}: CSeq typed parse failed: {e}"))?;
            got.push((u64::from(c.seq), c.method.to_owned()));
        }
        if got != want {
            return Err(format!("{name}: CSeq {got:?} != {want:?}"));
        }
    }
    if let Some(cl) = facts.get("content_length_header") {
        let want: Vec<String> = many(cl).iter().map(as_string).collect();
        let got: Vec<String> = msg
            .headers_of(HeaderName::ContentLength)
            .map(|h| h.value.to_owned())
            .collect();
        if got != want {
            return Err(format!("{name}: Content-Length {got:?} != {want:?}"));
        }
        // Body: truncated to Content-Length in a datagram (RFC 3261 §18.3), or
        // the rest of the datagram when the length is ambiguous (mcl01).
        if let [single] = want.as_slice() {
            let n: usize = single.parse().map_err(|_| format!("{name}: bad CL fact"))?;
            if msg.body().len() != n {
                return Err(format!(
                    "{name}: body {} != Content-Length {n}",
                    msg.body().len()
                ));
            }
        }
    } else if let Some(n) = facts
        .get("bytes_after_header_block")
        .and_then(Value::as_u64)
    {
        // No Content-Length over UDP: the body is the rest of the datagram.
        if msg.body().len() as u64 != n {
            return Err(format!("{name}: body {} != {n}", msg.body().len()));
        }
    }
    if let Some(n) = facts.get("header_field_count").and_then(Value::as_u64) {
        if msg.headers().len() as u64 != n {
            return Err(format!(
                "{name}: {} header fields != {n}",
                msg.headers().len()
            ));
        }
    }
    if let Some(n) = facts.get("body_bytes").and_then(Value::as_u64) {
        // RFC 5118 vectors: the datagram holds `body_bytes` after the header block;
        // three carry a smaller Content-Length and must be truncated to it.
        let cl = facts
            .get("content_length_header")
            .and_then(Value::as_u64)
            .unwrap_or(n);
        if msg.body().len() as u64 != cl.min(n) {
            return Err(format!(
                "{name}: body {} != min(CL {cl}, {n})",
                msg.body().len()
            ));
        }
    }
    Ok(msg)
}

/// The status the element answers a rejected message with, or `None` for drop.
fn reject_status(bytes: &[u8]) -> Result<(Option<u16>, ParseError), String> {
    let err = match Message::parse(bytes) {
        Err(e) => e,
        Ok(msg) => match validate(&msg) {
            Ok(()) => return Err("accepted".into()),
            Err(e) => e,
        },
    };
    let status = err.status();
    if !(400..=699).contains(&status) {
        return Err(format!("status {status} out of range"));
    }
    Ok(match error_response(bytes, &err) {
        ErrorAction::Respond(resp) => {
            let r =
                Message::parse(&resp).map_err(|e| format!("own error response unparsable: {e}"))?;
            if r.status() != Some(status) {
                return Err("error response status differs".into());
            }
            (Some(status), err)
        }
        ErrorAction::Drop => (None, err),
    })
}

struct Counts {
    accepted: usize,
    rejected: usize,
    total: usize,
}

fn run(set: &str, expect_key: &str) -> (Counts, Vec<String>) {
    let mut c = Counts {
        accepted: 0,
        rejected: 0,
        total: 0,
    };
    let mut failures = Vec::new();
    for entry in load(set) {
        let file = entry.get("file").and_then(Value::as_str).expect("file");
        let expect = entry
            .get(expect_key)
            .and_then(Value::as_str)
            .expect("expectation");
        let path = vectors().join(set).join(file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        c.total += 1;
        let name = format!("{set}/{file}");
        match expect {
            "accept" => {
                let facts = entry.get("facts").cloned().unwrap_or(Value::Null);
                match check_accept(&name, &bytes, &facts) {
                    Ok(msg) => {
                        c.accepted += 1;
                        extra_accept_checks(&name, file, &msg, &mut failures);
                    }
                    Err(e) => failures.push(e),
                }
            }
            "reject" | "reject-or-tolerate" => match reject_status(&bytes) {
                Ok((status, err)) => {
                    c.rejected += 1;
                    let action =
                        status.map_or("drop".to_string(), |s| format!("{s} {}", err.reason()));
                    println!("{name}: rejected: {action}");
                    if let Some(Some(want)) = entry.get("expected_status").map(Value::as_u64) {
                        if status.map(u64::from) != Some(want) {
                            failures.push(format!("{name}: status {status:?} != {want}"));
                        }
                    }
                }
                Err(e) => failures.push(format!("{name}: expected reject: {e}")),
            },
            other => failures.push(format!("{name}: unknown expectation {other}")),
        }
    }
    (c, failures)
}

/// What the RFC says beyond "it parses" for some accepted messages.
fn extra_accept_checks(name: &str, file: &str, msg: &Message<'_>, failures: &mut Vec<String>) {
    let v = validate(msg);
    let want_ok = file.starts_with("valid/")
        || file.starts_with("rfc5118")
        || !matches!(
            file,
            "application/insuf.dat" | "application/multi01.dat" | "application/mcl01.dat"
        );
    match (file, &v) {
        ("application/insuf.dat", Err(ParseError::MissingHeader(_)))
        | ("application/multi01.dat", Err(ParseError::DuplicateHeader(_)))
        | ("application/mcl01.dat", Err(ParseError::DuplicateHeader(HeaderName::ContentLength))) => {
        }
        (_, Ok(())) if want_ok => {}
        _ => failures.push(format!("{name}: validation gave {v:?}")),
    }
    if file == "valid/wsinv.dat" {
        let via = msg.top_via();
        if via.as_ref().map(|v| v.branch()) != Ok(Some("390skdjuw")) {
            failures.push(format!("{name}: top Via {via:?}"));
        }
        if msg.max_forwards() != Some(Ok(68)) || msg.vias().count() != 3 {
            failures.push(format!("{name}: Max-Forwards/Via count"));
        }
    }
    if file == "valid/esc02.dat" && msg.contacts().count() != 2 {
        failures.push(format!("{name}: C%6Fntact must not be a Contact"));
    }
}

#[test]
fn rfc4475_torture() {
    let (c, failures) = run("rfc4475", "parser_expectation");
    println!(
        "rfc4475: accepted={} rejected={} total={}",
        c.accepted, c.rejected, c.total
    );
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    assert_eq!(
        c.total, 51,
        "manifest entries (50 files + the baddn variant)"
    );
    assert_eq!(c.accepted + c.rejected, c.total);
}

#[test]
fn rfc5118_torture() {
    let (c, failures) = run("rfc5118", "parser_expectation");
    println!(
        "rfc5118: accepted={} rejected={} total={}",
        c.accepted, c.rejected, c.total
    );
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    assert_eq!(c.total, 12, "manifest entries");
    assert_eq!(c.accepted + c.rejected, c.total);
}

/// The same messages through the TCP/TLS framer, three bytes at a time: every
/// accepted message with one Content-Length comes out as exactly the bytes the
/// datagram parser used; RFC 4475 §3.3.9 (two Content-Lengths) and §3.4.1 (none)
/// break the stream; trailing octets stay buffered for the next message.
#[test]
fn torture_messages_through_stream_framer() {
    use portcullis_sip::{Frame, FramingError, StreamFramer};
    let mut framed = 0;
    for set in ["rfc4475", "rfc5118"] {
        for entry in load(set) {
            if entry.get("parser_expectation").and_then(Value::as_str) != Some("accept") {
                continue;
            }
            let file = entry.get("file").and_then(Value::as_str).expect("file");
            let bytes = std::fs::read(vectors().join(set).join(file)).expect("vector");
            let msg = Message::parse(&bytes).expect("accepted above");
            let cls = msg.headers_of(HeaderName::ContentLength).count();
            let mut f = StreamFramer::default();
            let mut got: Option<Result<Vec<u8>, FramingError>> = None;
            for chunk in bytes.chunks(3) {
                f.push(chunk);
                match f.next_frame() {
                    Ok(Some(Frame::Message(m))) => {
                        got = Some(Ok(m.to_vec()));
                        break;
                    }
                    Ok(Some(other)) => panic!("{file}: unexpected {other:?}"),
                    Ok(None) => {}
                    Err(e) => {
                        got = Some(Err(e));
                        break;
                    }
                }
            }
            match (cls, got) {
                (1, Some(Ok(m))) => {
                    assert_eq!(&m[..], &bytes[..msg.wire_len()], "{file}");
                    framed += 1;
                }
                (0, Some(Err(FramingError::MissingContentLength))) => {}
                (2, Some(Err(FramingError::ConflictingContentLength))) => {}
                (n, other) => {
                    panic!("{set}/{file}: {n} Content-Length headers, framer gave {other:?}")
                }
            }
        }
    }
    println!("stream framer: {framed} torture messages framed");
    assert!(framed >= 35, "only {framed} framed");
}

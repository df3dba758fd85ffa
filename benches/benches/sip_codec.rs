//! SIP codec benchmark: parse + typed access of the transaction keys + serialise,
//! for a typical INVITE with SDP and a 200 OK, side by side with `rsip` (another
//! maintained Rust SIP parser from crates.io) doing the same work.
//!
//! Run: `cargo bench -p portcullis-benches --bench sip_codec`.
//! After criterion's report a bounded manual timing loop prints one line per case:
//! `sip_codec: case=<name> ours_ns=<ns/msg> other_ns=<ns/msg> ratio=<other/ours>`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use portcullis_sip::{Message, OwnedMessage};
use rsip::prelude::*;

const INVITE: &[u8] = b"INVITE sip:+15551234567@trunk.example.net:5060;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---f4a5e2d3c1b0a9f8;rport\r\n\
Max-Forwards: 70\r\n\
Record-Route: <sip:192.0.2.1:5060;lr>\r\n\
Contact: <sip:alice@192.0.2.10:5060;transport=udp>\r\n\
To: <sip:+15551234567@trunk.example.net>\r\n\
From: \"Alice\" <sip:+15557654321@pbx.example.com>;tag=9fxced76sl\r\n\
Call-ID: 3848276298220188511@pbx.example.com\r\n\
CSeq: 1 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY\r\n\
Supported: replaces, timer, 100rel\r\n\
Session-Expires: 1800;refresher=uac\r\n\
User-Agent: ExamplePBX/1.0\r\n\
P-Asserted-Identity: <sip:+15557654321@pbx.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 284\r\n\
\r\n\
v=0\r\n\
o=- 1234567890 1234567890 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 40000 RTP/AVP 0 8 9 18 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

const OK200: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---f4a5e2d3c1b0a9f8;rport=5060;received=192.0.2.10\r\n\
Record-Route: <sip:192.0.2.1:5060;lr>\r\n\
Contact: <sip:+15551234567@198.51.100.7:5060>\r\n\
To: <sip:+15551234567@trunk.example.net>;tag=as6151ad25\r\n\
From: \"Alice\" <sip:+15557654321@pbx.example.com>;tag=9fxced76sl\r\n\
Call-ID: 3848276298220188511@pbx.example.com\r\n\
CSeq: 1 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n\
Supported: replaces, timer\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 157\r\n\
\r\n\
v=0\r\n\
o=- 42 42 IN IP4 198.51.100.7\r\n\
s=-\r\n\
c=IN IP4 198.51.100.7\r\n\
t=0 0\r\n\
m=audio 20000 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

/// Ours: borrowed parse, typed Via/From/To/Call-ID/CSeq, owned copy, serialise.
fn ours(bytes: &[u8]) -> usize {
    let Ok(m) = Message::parse(bytes) else {
        return 0;
    };
    let via = m.top_via().ok();
    black_box(via.and_then(|v| v.branch()));
    black_box(m.from().ok().and_then(|f| f.tag()));
    black_box(m.to().ok().and_then(|t| t.tag()));
    black_box(m.call_id());
    black_box(m.cseq().ok());
    OwnedMessage::from_message(&m).to_bytes().len()
}

/// rsip: the same work with its API.
fn other(bytes: &[u8]) -> usize {
    let Ok(m) = rsip::SipMessage::try_from(bytes) else {
        return 0;
    };
    black_box(
        m.via_header()
            .ok()
            .and_then(|v| v.typed().ok())
            .map(|v| v.branch().cloned()),
    );
    black_box(
        m.from_header()
            .ok()
            .and_then(|f| f.typed().ok())
            .map(|f| f.tag().cloned()),
    );
    black_box(
        m.to_header()
            .ok()
            .and_then(|t| t.typed().ok())
            .map(|t| t.tag().cloned()),
    );
    black_box(m.call_id_header().ok().map(|c| c.value().to_owned()));
    black_box(m.cseq_header().ok().and_then(|c| c.typed().ok()));
    let out: Vec<u8> = m.into();
    out.len()
}

const CASES: [(&str, &[u8]); 2] = [("invite_sdp", INVITE), ("ok200_sdp", OK200)];

fn bench(c: &mut Criterion) {
    for (name, bytes) in CASES {
        let mut g = c.benchmark_group(format!("sip_codec/{name}"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::new("portcullis", name), bytes, |b, m| {
            b.iter(|| ours(black_box(m)))
        });
        g.bench_with_input(BenchmarkId::new("rsip", name), bytes, |b, m| {
            b.iter(|| other(black_box(m)))
        });
        g.finish();
    }
}

/// ns per call of `f`, best of 5 rounds of about 200 ms each (bounded).
fn time_ns(f: impl Fn(&[u8]) -> usize, bytes: &[u8]) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_millis(200) && n < 10_000_000 {
            for _ in 0..100 {
                black_box(f(black_box(bytes)));
            }
            n += 100;
        }
        let ns = start.elapsed().as_nanos() as f64 / n as f64;
        best = best.min(ns);
    }
    best
}

fn main() {
    for (name, bytes) in CASES {
        assert!(ours(bytes) > 0, "{name}: portcullis failed to parse");
        assert!(other(bytes) > 0, "{name}: rsip failed to parse");
    }
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    for (name, bytes) in CASES {
        let o = time_ns(ours, bytes);
        let r = time_ns(other, bytes);
        println!(
            "sip_codec: case={name} ours_ns={o:.0} other_ns={r:.0} ratio={:.2}",
            r / o
        );
    }
}

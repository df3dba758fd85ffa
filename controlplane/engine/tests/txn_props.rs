//! Property tests: peer bytes never panic the transaction layer, and mutated
//! valid traffic leaves no transaction without a way to terminate.

use std::net::SocketAddr;

use portcullis_engine::entropy::SeededEntropy;
use portcullis_engine::time::Timestamp;
use portcullis_engine::transaction::{
    make_response, PeerAddr, TransactionLayer, Transport, TxConfig, TxEvent,
};
use proptest::prelude::*;

const INVITE: &str = "INVITE sip:bob@192.0.2.20 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKabc;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@192.0.2.10>;tag=a1\r\n\
To: <sip:bob@192.0.2.20>\r\n\
Call-ID: c1@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@192.0.2.10>\r\n\
Content-Length: 0\r\n\r\n";

const RESPONSE: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKabc\r\n\
From: <sip:alice@192.0.2.10>;tag=a1\r\n\
To: <sip:bob@192.0.2.20>;tag=b\r\n\
Call-ID: c1@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n";

fn peer() -> PeerAddr {
    let addr: SocketAddr = "192.0.2.10:5060".parse().expect("address");
    PeerAddr {
        transport: Transport::Udp,
        addr,
        conn: None,
    }
}

/// Feeds `datagrams`, then runs every timer; the layer must end empty.
fn feed_and_drain(datagrams: &[Vec<u8>]) {
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(9));
    for (i, d) in datagrams.iter().enumerate() {
        let now = Timestamp::from_millis(i as u64);
        l.handle_datagram(now, peer(), d);
        // Server transactions wait for their TU by design: answer every one.
        while let Some(ev) = l.poll_event() {
            if let TxEvent::Request { tx, request, .. } = ev {
                l.respond(
                    now,
                    tx,
                    &make_response(&request, 500, "Server Internal Error", Some("x")),
                )
                .expect("a fresh server transaction accepts a final response");
            }
        }
        while l.poll_transmit().is_some() {}
    }
    let mut guard = 0;
    while let Some(at) = l.poll_timeout() {
        l.handle_timeout(at);
        guard += 1;
        assert!(guard < 10_000, "timer livelock");
    }
    assert!(l.is_empty(), "{} transactions never terminated", l.len());
    let st = l.stats();
    assert_eq!(st.created, st.terminated);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        feed_and_drain(&[bytes]);
    }

    #[test]
    fn mutated_messages_never_panic(
        which in 0usize..2,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let base = if which == 0 { INVITE } else { RESPONSE };
        let mut b = base.as_bytes().to_vec();
        for (idx, byte) in &edits {
            let i = idx.index(b.len());
            b[i] = *byte;
        }
        let truncated = b[..cut.index(b.len() + 1).min(b.len())].to_vec();
        feed_and_drain(&[b, truncated, base.as_bytes().to_vec()]);
    }
}

//! RFC 4475 torture messages through the transaction layer, driven by the
//! shared manifest: what a conforming parser must accept creates exactly one
//! server transaction (or is a stray response); what it must reject never
//! reaches the TU.

use std::net::SocketAddr;

use portcullis_engine::entropy::SeededEntropy;
use portcullis_engine::time::Timestamp;
use portcullis_engine::transaction::{PeerAddr, TransactionLayer, Transport, TxConfig, TxEvent};

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/vectors/sip-torture/rfc4475"
);

fn manifest() -> Vec<serde_json::Value> {
    let path = format!("{DIR}/manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("missing conformance manifest {path}: {e}"));
    serde_json::from_str(&text).expect("manifest is JSON")
}

fn feed(file: &str) -> (TransactionLayer, Vec<TxEvent>) {
    let path = format!("{DIR}/{file}");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("missing vector {path}: {e}"));
    let addr: SocketAddr = "192.0.2.1:5060".parse().expect("address");
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(1));
    l.handle_datagram(
        Timestamp::ZERO,
        PeerAddr {
            transport: Transport::Udp,
            addr,
            conn: None,
        },
        &bytes,
    );
    let evs = std::iter::from_fn(|| l.poll_event()).collect();
    (l, evs)
}

#[test]
fn rfc4475_vectors_through_the_transaction_layer() {
    let entries = manifest();
    assert!(
        entries.len() >= 40,
        "manifest lists {} vectors",
        entries.len()
    );
    let mut checked = 0;
    for e in &entries {
        let file = e["file"].as_str().expect("file");
        let expect = e["parser_expectation"].as_str().unwrap_or("");
        let category = e["category"].as_str().unwrap_or("");
        let liberal = e["liberal_acceptance_permitted_by_rfc"]
            .as_bool()
            .unwrap_or(false);
        let (l, evs) = feed(file);
        let st = l.stats();
        match (category, expect) {
            ("valid" | "transaction" | "backward-compat", "accept") => {
                match e["facts"]["kind"].as_str() {
                    Some("request") => {
                        let [TxEvent::Request { request, .. }] = evs.as_slice() else {
                            panic!(
                                "{file}: expected one new server transaction, got {evs:?} ({st:?})"
                            )
                        };
                        assert_eq!(
                            request.call_id().ok(),
                            e["facts"]["call_id"].as_str(),
                            "{file}"
                        );
                        let seq = e["facts"]["cseq"]["seq"]
                            .as_u64()
                            .and_then(|s| u32::try_from(s).ok());
                        assert_eq!(request.cseq().ok().map(|c| c.seq), seq, "{file}");
                    }
                    _ => {
                        assert!(evs.is_empty(), "{file}: {evs:?}");
                        assert_eq!(
                            st.stray_responses, 1,
                            "{file}: response with no client transaction"
                        );
                    }
                }
                assert_eq!(st.malformed, 0, "{file}");
            }
            (_, "reject") if !liberal => {
                assert!(
                    evs.is_empty(),
                    "{file}: rejected message reached the TU: {evs:?}"
                );
                assert_eq!(st.malformed, 1, "{file}");
            }
            _ => {
                // Application-level or liberal: either a transaction or a counted rejection.
                let created = evs
                    .iter()
                    .filter(|e| matches!(e, TxEvent::Request { .. }))
                    .count() as u64;
                assert_eq!(
                    created + st.malformed + st.stray_responses,
                    1,
                    "{file}: {evs:?} {st:?}"
                );
            }
        }
        checked += 1;
    }
    assert_eq!(checked, entries.len());
}

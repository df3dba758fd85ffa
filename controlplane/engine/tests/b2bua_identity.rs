//! Record-Route as a B2BUA does it: we never add one (our Contact is each dialog's
//! remote target), a 18x/2xx echoes the request's own Record-Route on its leg
//! (RFC 3261 §12.1.1: the caller's proxies stay on its dialog), and nothing of one
//! leg's route set reaches the other.

#[path = "b2bua_harness.rs"]
mod harness;

use harness::*;
use portcullis_engine::transaction::Method;

#[test]
fn responses_echo_their_legs_record_route_and_we_add_none() {
    let mut h = H::new();
    let (_da, mut db, _atx, ainv) = h.answered();
    let rr_a = ainv
        .header("Record-Route")
        .expect("the caller's proxy recorded its route");
    let ok = h.a.first_response(200).unwrap();
    let echoed: Vec<&str> = ok.header_values("Record-Route").collect();
    assert_eq!(echoed, [rr_a], "the caller's own route set, nothing more");
    let ringing = h.a.first_response(180).unwrap();
    assert_eq!(ringing.header("Record-Route"), Some(rr_a));
    // Nothing of ours toward B, and B's route set stays on B's leg.
    let (_, binv) = h.b1.last_request("INVITE");
    assert!(binv.header("Record-Route").is_none());
    assert!(!ok.to_bytes().windows(11).any(|w| w == b"rr.10.0.0.3"));
    // The caller's route set is used for our requests on its leg (BYE toward A goes
    // through its proxy: a Route header naming it).
    h.in_dialog(B1, &mut db, Method::Bye, None);
    let (_, bye) = h.a.last_request("BYE");
    assert!(
        bye.header("Route")
            .is_some_and(|r| r.contains("rr.10.0.0.2")),
        "{bye:?}"
    );
}

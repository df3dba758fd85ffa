//! CDR times follow the wall clock in force when each record is made.

use std::sync::Arc;

use portcullis_engine::b2bua::CallEvent;
use portcullis_engine::entropy::SeededEntropy;
use portcullis_engine::media::{
    MediaAllocation, MediaControl, MediaError, MediaId, MediaLegParams, MediaStats,
};
use portcullis_engine::transaction::{PeerAddr, Transport as TxTransport};

use super::*;
use crate::config::{Config, LoadOptions};
use crate::runtime::clock::WallClock;
use crate::runtime::convert;

#[derive(Debug, Default)]
struct NoMedia(u64);

impl MediaControl for NoMedia {
    fn allocate(
        &mut self,
        _realms: [portcullis_engine::media::RealmId; 2],
    ) -> Result<MediaAllocation, MediaError> {
        self.0 += 1;
        Ok(MediaAllocation {
            id: MediaId(self.0),
            a_port: 40_000,
            b_port: 40_002,
            a_ip: "127.0.0.1".parse().unwrap(),
            b_ip: "127.0.0.1".parse().unwrap(),
        })
    }
    fn update(
        &mut self,
        _: MediaId,
        _: &MediaLegParams,
        _: &MediaLegParams,
    ) -> Result<(), MediaError> {
        Ok(())
    }
    fn release(&mut self, _: MediaId) {}
    fn stats(&self, _: MediaId) -> Option<MediaStats> {
        None
    }
}

fn invite(n: u32) -> Vec<u8> {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0\r\n";
    format!(
        "INVITE sip:100@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-wall-{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:200@127.0.0.1:5070>;tag=a{n}\r\n\
         To: <sip:100@127.0.0.1:5060>\r\n\
         Call-ID: wall-{n}@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:200@127.0.0.1:5070>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

fn ended(b2b: &mut B2bua<NoMedia>) -> Vec<CdrRecord> {
    let mut out = Vec::new();
    while let Some(ev) = b2b.poll_event() {
        if let CallEvent::CallEnded { cdr } = ev {
            out.push(*cdr);
        }
    }
    out
}

#[test]
fn cdr_times_follow_a_stepped_wall_clock() {
    const T0: u64 = 1_700_000_000_000;
    const HOUR: u64 = 3_600_000;
    let cfg = Config::embedded_default(&LoadOptions::default()).unwrap();
    let ec = convert::engine_config(&cfg).unwrap();
    let mut b2b = B2bua::new(Arc::new(ec), NoMedia::default(), SeededEntropy::new(7)).unwrap();
    let wall = WallClock::manual(T0);
    let clock = Clock::with_wall(wall.clone());
    let left = PeerAddr {
        transport: TxTransport::Udp,
        addr: "127.0.0.1:5070".parse().unwrap(),
        conn: None,
    };
    for (n, step) in [(1, 0), (2, HOUR), (3, 2 * HOUR)] {
        wall.set_ms(T0 + step);
        let now = engine_now(&clock, &mut b2b);
        b2b.handle_datagram(now, left, &invite(n));
        let call = b2b.calls().last().expect("call routed").call;
        let now = engine_now(&clock, &mut b2b);
        assert!(b2b.terminate(now, call));
        let cdrs = ended(&mut b2b);
        assert_eq!(cdrs.len(), 1, "call {n}");
        // Made while the wall clock read T0 + step: stamped so, whatever the start.
        assert_eq!(cdrs[0].end_at_ms, T0 + step, "call {n}");
        assert!(cdrs[0].setup_at_ms <= cdrs[0].end_at_ms);
        assert!(cdrs[0].setup_at_ms + 60_000 > cdrs[0].end_at_ms, "call {n}");
    }
}

//! RTP/RTCP views and demultiplexing on arbitrary datagrams.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_rtp::rtp::{classify, rtcp_sender_ssrc, PacketKind, RtpPacket};

fuzz_target!(|data: &[u8]| {
    let kind = classify(data);
    let ssrc = rtcp_sender_ssrc(data);
    if kind == PacketKind::Rtcp {
        assert!(data.len() >= 8);
    }
    if ssrc.is_some() {
        assert_eq!(kind, PacketKind::Rtcp);
    }
    for p in [
        RtpPacket::new_checked(data),
        RtpPacket::new_header_checked(data),
    ]
    .into_iter()
    .flatten()
    {
        assert!(p.header_len() + p.payload().len() <= data.len());
        assert_eq!(p.version(), 2);
        let _ = (
            p.extension_header(),
            p.csrc(0),
            p.csrc(15),
            p.ssrc(),
            p.timestamp(),
            p.sequence(),
        );
    }
});

//! SRTP interop with ffmpeg's SRTP sender (libavformat `srtp://`, AES_CM_128_HMAC_SHA1_80):
//! one second of G.711 µ-law goes through an SRTP→RTP leg and comes out as valid RTP with
//! no authentication failure. Needs `ffmpeg` on PATH (`apt-get install ffmpeg`); the test
//! fails with that message when it is missing.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use portcullis_dataplane::{Backend, DropReason, StreamParams};
use portcullis_rtp::rtp::RtpPacket;

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn ffmpeg_into_srtp_leg(backend: Backend, base: u16) {
    let dp = start(backend, base, 2);
    let h = dp.allocate_pair().expect("pair");
    let pb = peer();
    let k = keys(33);
    // ffmpeg sends from a port of its own choosing, told as if signalled in its SDP.
    let ffmpeg_port = base + 50;
    let a = StreamParams {
        srtp_in: Some(k),
        ..plain(Some(to(ffmpeg_port)))
    };
    dp.update(&h, a, plain(Some(addr(&pb)))).expect("update");
    std::thread::sleep(Duration::from_millis(50));
    let mut ks = k.master_key.to_vec();
    ks.extend_from_slice(&k.master_salt);
    let url = format!("srtp://127.0.0.1:{}?localrtpport={ffmpeg_port}", h.port_a);
    let mut child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=8000:duration=1",
            "-c:a",
            "pcm_mulaw",
            "-ar",
            "8000",
            "-ac",
            "1",
            "-f",
            "rtp",
            "-srtp_out_suite",
            "AES_CM_128_HMAC_SHA1_80",
            "-srtp_out_params",
            &base64(&ks),
            &url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("ffmpeg not runnable ({e}): install ffmpeg"));
    let mut got = 0;
    let mut bytes = 0;
    let mut ssrc = None;
    let end = Instant::now() + Duration::from_secs(10);
    pb.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    while Instant::now() < end {
        let Some((pkt, _)) = recv(&pb) else {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            continue;
        };
        let Ok(p) = RtpPacket::new_checked(&pkt) else {
            continue; // decrypted SRTCP sender reports also arrive here
        };
        assert_eq!(p.payload_type(), 0, "PCMU");
        assert!(!p.payload().is_empty());
        assert_eq!(*ssrc.get_or_insert(p.ssrc()), p.ssrc());
        got += 1;
        bytes += p.payload().len();
    }
    let out = child.wait_with_output().expect("ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One second of 8 kHz µ-law is 8000 payload bytes (ffmpeg packs ~1 KB per packet).
    assert!(
        got >= 5 && bytes >= 7900,
        "only {got} RTP packets / {bytes} payload bytes came out of the SRTP→RTP leg"
    );
    let s = dp.stats(&h).expect("stats");
    assert_eq!(s.a.dropped(DropReason::SrtpAuth), 0, "auth failures: {s:?}");
}

#[test]
fn ffmpeg_srtp_mmsg() {
    ffmpeg_into_srtp_leg(Backend::Mmsg, 13200);
}

#[test]
fn ffmpeg_srtp_io_uring() {
    ffmpeg_into_srtp_leg(Backend::IoUring, 13300);
}

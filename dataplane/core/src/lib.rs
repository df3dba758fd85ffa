//! Sans-IO RTP, RTCP, STUN and SRTP for the Portcullis data plane.
//!
//! Nothing in this crate touches a socket or a clock: packets come in as byte
//! slices, time comes in as a parameter (RTP clock units for [`stats`]), and every
//! transform works in place on the caller's buffer without heap allocation.
//!
//! * [`rtp`]: RTP packet views, RFC 7983 / RFC 5761 demultiplexing.
//! * [`srtp`]: RFC 3711 SRTP/SRTCP with `AES_CM_128_HMAC_SHA1_80` and `_32`.
//! * [`stun`]: an ICE-lite Binding responder (RFC 8489, RFC 8445 §2.5).
//! * [`stats`]: RFC 3550 Appendix A.1 loss and A.8 jitter.
#![forbid(unsafe_code)]

mod bytes;
pub mod rtp;
pub mod srtp;
pub mod stats;
pub mod stun;

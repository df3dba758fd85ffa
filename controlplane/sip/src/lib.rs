//! Sans-IO SIP wire codec (RFC 3261) and SDP codec (RFC 8866)
#![forbid(unsafe_code)]
pub mod sdp;

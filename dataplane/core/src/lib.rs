//! Sans-IO RTP, RTCP, STUN and SRTP for the Portcullis data plane
#![forbid(unsafe_code)]

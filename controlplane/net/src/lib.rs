//! Tokio drivers for SIP over UDP, TCP, TLS and mTLS
#![forbid(unsafe_code)]

//! Tokio drivers for SIP over UDP, TCP, TLS and mTLS (RFC 3261 §18, RFC 5626 §3.5.1,
//! RFC 5630).
#![forbid(unsafe_code)]

mod config;
mod counters;
mod error;
mod event;
mod stream;
pub mod tls;
mod transports;
mod udp;

pub use config::{
    ClientCertificate, Limits, ListenerConfig, TlsClientSettings, TlsServerSettings, Transport,
    TransportConfig,
};
pub use counters::{NetCounters, NetCountersSnapshot, TransportCounters};
pub use error::{NetError, TlsConfigError};
pub use event::{CloseReason, ConnId, Inbound, Outbound, TransportEvent};
pub use transports::SipTransports;

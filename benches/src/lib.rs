//! Shared helpers for the benchmarks, and the raw baseline forwarder ([`rawfwd`], the
//! `portcullis-rawfwd` binary) that the forwarding benchmark and the load test compare
//! the relay against. Tools, not product: nothing here ships in the appliance.

pub mod rawfwd;

//! Portcullis appliance library: provisioning, wiring of the planes, admin API.
#![forbid(unsafe_code)]

pub mod notify;

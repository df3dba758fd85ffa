//! Portcullis appliance library: provisioning, wiring of the planes, admin API.
#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod entropy;
pub mod ha;
pub mod logging;
pub mod ng;
pub mod notify;
pub mod runtime;
pub mod traces;

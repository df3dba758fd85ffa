//! Sans-IO SIP transactions, dialogs, B2BUA call logic, routing and policy.
//!
//! Nothing in this crate touches a socket or a clock: every input carries
//! `now: Timestamp`, every output is pulled.
#![forbid(unsafe_code)]

pub mod dialog;
pub mod time;
pub mod transaction;

#[doc(hidden)]
pub mod sim;

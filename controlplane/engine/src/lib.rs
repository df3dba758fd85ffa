//! Sans-IO SIP transactions, dialogs, B2BUA call logic, routing and policy
#![forbid(unsafe_code)]

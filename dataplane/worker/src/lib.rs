//! Pinned-core RTP/SRTP relay workers over io_uring and recvmmsg.
//!
//! `unsafe` lives only where the kernel interface needs it (io_uring submissions
//! and buffer rings, socket options); each block names its invariant.

//! Big-endian field reads shared by the RTP, SRTP and STUN views.

/// Read a big-endian `u16` at `at`, 0 if out of range (never reached for checked views).
pub(crate) fn be16(buf: &[u8], at: usize) -> u16 {
    match buf.get(at..at + 2) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => 0,
    }
}

/// Read a big-endian `u32` at `at`, 0 if out of range (never reached for checked views).
pub(crate) fn be32(buf: &[u8], at: usize) -> u32 {
    match buf.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

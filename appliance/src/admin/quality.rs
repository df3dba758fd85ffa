//! A MOS-like quality estimate of one received RTP stream from its loss and jitter: the
//! simplified ITU-T G.107 E-model (as popularised by Cole and Rosenbluth, "Voice over IP
//! performance monitoring", ACM SIGCOMM CCR 31(2), 2001).
//!
//! ```text
//! d      = delay + 2·jitter + 10 ms             effective latency (10 ms: codec/packetisation)
//! Id     = d / 40              when d < 160 ms   delay impairment
//!        = (d − 120) / 10      otherwise
//! Ie_eff = 2.5 · loss%                            loss impairment (G.711, random loss)
//! R      = 93.2 − Id − Ie_eff                     clamped to [0, 100]
//! MOS    = 1                                      when R = 0
//!        = 4.5                                    when R = 100
//!        = 1 + 0.035·R + 7·10⁻⁶·R·(R − 60)·(100 − R)   otherwise (G.107 Annex B)
//! ```
//!
//! `delay` is the one-way network delay; the appliance does not measure it (it relays
//! RTCP without terminating it), so it is taken as 0 and the estimate is an upper bound
//! that falls with loss and jitter only. `loss%` is `lost / (received + lost) · 100` of the
//! stream from the leg's peer; `jitter` is its RFC 3550 §6.4.1 interarrival jitter. A
//! perfect stream scores R = 92.95, MOS ≈ 4.41.

use serde::{Deserialize, Serialize};

/// The estimate of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// Packets lost, percent of those expected.
    pub loss_pct: f64,
    /// E-model transmission rating factor, 0 to 100.
    pub r: f64,
    /// Mean opinion score estimate, 1 to 4.5.
    pub mos: f64,
}

/// R of a stream with `loss_pct` percent loss, `jitter_ms` jitter and `delay_ms` one-way
/// delay (see the module docs).
#[must_use]
pub fn r_factor(loss_pct: f64, jitter_ms: f64, delay_ms: f64) -> f64 {
    let d = delay_ms.max(0.0) + 2.0 * jitter_ms.max(0.0) + 10.0;
    let id = if d < 160.0 {
        d / 40.0
    } else {
        (d - 120.0) / 10.0
    };
    let ie = 2.5 * loss_pct.clamp(0.0, 100.0);
    (93.2 - id - ie).clamp(0.0, 100.0)
}

/// MOS of a rating factor (ITU-T G.107 Annex B).
#[must_use]
pub fn mos(r: f64) -> f64 {
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r)
    }
}

/// The estimate of a stream of which `received` packets arrived and `lost` were lost, with
/// `jitter_us` interarrival jitter; `None` when nothing was measured.
#[must_use]
pub fn estimate(received: u64, lost: Option<u64>, jitter_us: Option<u32>) -> Option<Quality> {
    let lost = lost?;
    let expected = received.saturating_add(lost);
    if expected == 0 {
        return None;
    }
    // Packet counts stay far below 2^53: the conversions are exact.
    #[allow(clippy::cast_precision_loss)]
    let loss_pct = lost as f64 * 100.0 / expected as f64;
    let jitter_ms = f64::from(jitter_us.unwrap_or(0)) / 1000.0;
    let r = r_factor(loss_pct, jitter_ms, 0.0);
    Some(Quality {
        loss_pct,
        r,
        mos: mos(r),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 0.01
    }

    #[test]
    fn perfect_stream() {
        let q = estimate(1000, Some(0), Some(0)).unwrap_or_else(|| panic!("measured"));
        assert!(close(q.r, 92.95), "{q:?}");
        assert!(close(q.mos, 4.41), "{q:?}");
        assert!(close(q.loss_pct, 0.0));
    }

    #[test]
    fn loss_and_jitter_lower_the_score() {
        // 5 % loss: R = 93.2 - 0.25 - 12.5 = 80.45 -> MOS 4.04.
        let q = estimate(950, Some(50), Some(0)).unwrap_or_else(|| panic!("measured"));
        assert!(close(q.loss_pct, 5.0), "{q:?}");
        assert!(close(q.r, 80.45), "{q:?}");
        assert!(close(q.mos, 4.04), "{q:?}");
        // 100 ms jitter: d = 210 ms, Id = 9, R = 84.2.
        assert!(close(r_factor(0.0, 100.0, 0.0), 84.2));
        // 30 ms jitter: d = 70 ms, Id = 1.75.
        assert!(close(r_factor(0.0, 30.0, 0.0), 91.45));
        let worse = estimate(800, Some(200), Some(80_000)).unwrap_or_else(|| panic!("m"));
        assert!(worse.mos < q.mos && worse.mos >= 1.0, "{worse:?}");
    }

    #[test]
    fn bounds_and_unmeasured() {
        assert!(close(mos(0.0), 1.0));
        assert!(close(mos(-5.0), 1.0));
        assert!(close(mos(100.0), 4.5));
        assert!(close(r_factor(100.0, 0.0, 0.0), 0.0));
        assert_eq!(estimate(0, Some(0), Some(0)), None);
        assert_eq!(estimate(10, None, None), None);
    }
}

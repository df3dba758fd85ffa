//! `/metrics` family of the AF_XDP worker backend (`[media] backend = "af_xdp"`): the
//! frames each worker received and sent through its AF_XDP sockets, and those it sent
//! through its UDP sockets instead. Zero for the other backends.

use super::metrics::{fam, Encoder, Family, Kind, Value};
use super::MetricsSnapshot;

/// The backend's families (declared beside [`super::metrics::FAMILIES`]).
pub const FAMILIES: &[Family] = &[fam(
    "portcullis_dataplane_afxdp_frames_total",
    Kind::Counter,
    "Media frames of the af_xdp backend, per worker and path: rx (received through AF_XDP), \
     tx (sent through AF_XDP), kernel_tx (received through AF_XDP, sent through the UDP \
     socket: next hop not learned yet, over the MTU, or the TX ring full), rx_dropped \
     (dropped by the kernel before the AF_XDP RX ring: no free chunk, or the ring full).",
)];

/// Renders the backend's family.
pub(crate) fn render(e: &mut Encoder, snap: &MetricsSnapshot) {
    e.family("portcullis_dataplane_afxdp_frames_total");
    for (id, w) in snap.workers.iter().enumerate() {
        let id = id.to_string();
        for (path, v) in [
            ("rx", w.xsk_rx),
            ("tx", w.xsk_tx),
            ("kernel_tx", w.xsk_kernel_tx),
            ("rx_dropped", w.xsk_rx_dropped),
        ] {
            e.sample(&[("worker", id.as_str()), ("path", path)], Value::Int(v));
        }
    }
}

//! Start-up of the XDP fast path (`[media] fast_path`, `interfaces`).
//!
//! The program takes packets addressed to our media address and sends them from it, so
//! it needs that address on the interfaces it is attached to: `bind_ip` when it is a
//! specific address, else `advertised_ip` (an appliance bound to `0.0.0.0` that
//! advertises its own address). `interfaces` defaults to the interface holding it.
//! `xdp` refuses to start without the fast path and says why; `auto` logs why it is
//! off and goes on with the workers alone.

use std::net::IpAddr;
use std::sync::Arc;

use portcullis_dataplane::FastPathConfig;
use portcullis_xdp::{FastPathSetting, Interface};

use crate::config::{FastPathMode, MediaConfig};

/// Why the fast path cannot run with this configuration on this host.
#[derive(Debug, thiserror::Error)]
pub enum FastPathStartError {
    /// No address to forward for.
    #[error(
        "media fast path: no interface holds the media address {0} (set media.bind_ip to \
         the address of the media interface)"
    )]
    NoInterface(IpAddr),
    /// None of the listed interfaces holds the media address.
    #[error("media fast path: none of media.interfaces {names:?} holds the media address {ip}")]
    NotOnInterfaces {
        /// The media address.
        ip: IpAddr,
        /// `media.interfaces`.
        names: Vec<String>,
    },
    /// The kernel refused the program (privileges).
    #[error("media fast path: {0} (loading it needs CAP_BPF and CAP_NET_ADMIN)")]
    Load(portcullis_xdp::FastPathError),
    /// The program could not be had otherwise (not built in, not attached).
    #[error("media fast path: {0}")]
    Xdp(portcullis_xdp::FastPathError),
}

/// The address the fast path forwards for.
fn local_ip(m: &MediaConfig) -> IpAddr {
    if m.bind_ip.is_unspecified() {
        m.advertised_ip
    } else {
        m.bind_ip
    }
}

/// Starts the fast path as `[media]` asks: `Ok(None)` when it is off (configured so, or
/// `auto` and unavailable: logged), the error when `xdp` cannot be had.
///
/// # Errors
/// [`FastPathStartError`] with `fast_path = "xdp"` only.
pub fn start(m: &MediaConfig) -> Result<Option<FastPathConfig>, FastPathStartError> {
    let setting = match m.fast_path {
        FastPathMode::Off => return Ok(None),
        FastPathMode::Auto => FastPathSetting::Auto,
        FastPathMode::Xdp => FastPathSetting::Xdp,
    };
    match attach(m, setting) {
        Ok(Some(cfg)) => {
            for Interface { name, mode, .. } in cfg.program.interfaces() {
                tracing::info!(interface = %name, ?mode, local_ip = %cfg.local_ip, "media fast path on (XDP)");
            }
            Ok(Some(cfg))
        }
        Ok(None) => Ok(None),
        Err(e) if setting == FastPathSetting::Auto => {
            tracing::warn!(reason = %e, "media fast path off");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn attach(
    m: &MediaConfig,
    setting: FastPathSetting,
) -> Result<Option<FastPathConfig>, FastPathStartError> {
    let ip = local_ip(m);
    let holders = portcullis_xdp::interfaces_holding(ip);
    let names = if m.interfaces.is_empty() {
        if holders.is_empty() {
            return Err(FastPathStartError::NoInterface(ip));
        }
        holders
    } else {
        if !m.interfaces.iter().any(|n| holders.contains(n)) {
            return Err(FastPathStartError::NotOnInterfaces {
                ip,
                names: m.interfaces.clone(),
            });
        }
        m.interfaces.clone()
    };
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let fp = portcullis_xdp::start(setting, &refs).map_err(|e| match e {
        portcullis_xdp::FastPathError::Load(_) => FastPathStartError::Load(e),
        e => FastPathStartError::Xdp(e),
    })?;
    Ok(fp.map(|fp| FastPathConfig {
        program: Arc::new(fp),
        local_ip: ip,
    }))
}

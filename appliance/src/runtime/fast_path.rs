//! Start-up of the XDP fast path (`[media] fast_path`, `interfaces`).
//!
//! The program takes packets addressed to our media address and sends them from it, so
//! it needs that address on the interfaces it is attached to: for each media realm, its
//! `bind_ip` when it is a specific address, else its `advertised_ip` (an appliance bound
//! to `0.0.0.0` that advertises its own address). `interfaces` defaults to the
//! interfaces holding those addresses; a realm whose address none of the attached
//! interfaces holds is left to the workers (logged). `xdp` refuses to start when no
//! realm can have the fast path and says why; `auto` logs why it is off and goes on with
//! the workers alone.
//!
//! `[media] backend = "af_xdp"` needs the same program on the same interfaces (its
//! AF_XDP redirect feeds the workers): it shares the fast path's when that is on, and
//! attaches it otherwise (with nothing promoted); when it cannot be had the appliance does
//! not start, whatever `fast_path` says.

use std::net::IpAddr;
use std::sync::Arc;

use portcullis_dataplane::FastPathConfig;
use portcullis_xdp::{FastPathSetting, Interface};

use crate::config::{Backend, FastPathMode, MediaConfig, MediaRealm};

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

/// The program the `af_xdp` backend takes packets from (`None` for the other backends):
/// the fast path's `fast` when it is on, else the program attached for the workers alone.
///
/// # Errors
/// [`FastPathStartError`] (as `fast_path = "xdp"` would give) when the program cannot be
/// attached.
pub fn start_af_xdp(
    m: &MediaConfig,
    fast: Option<&FastPathConfig>,
) -> Result<Option<FastPathConfig>, FastPathStartError> {
    if m.backend != Backend::AfXdp {
        return Ok(None);
    }
    if let Some(f) = fast {
        return Ok(Some(f.clone()));
    }
    let cfg = attach(m, FastPathSetting::Xdp)?;
    if let Some(c) = &cfg {
        for Interface { name, mode, .. } in c.program.interfaces() {
            tracing::info!(interface = %name, ?mode, "XDP program on for the af_xdp backend");
        }
    }
    Ok(cfg)
}

/// The address the fast path forwards for in realm `r`.
fn local_ip(r: &MediaRealm) -> IpAddr {
    if r.bind_ip.is_unspecified() {
        r.advertised_ip
    } else {
        r.bind_ip
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
                tracing::info!(interface = %name, ?mode, "media fast path on (XDP)");
            }
            for (r, ip) in m.realms.iter().zip(&cfg.local_ips) {
                match ip {
                    Some(ip) => {
                        tracing::info!(realm = %r.name, local_ip = %ip, "media realm on the fast path")
                    }
                    None => tracing::warn!(
                        realm = %r.name,
                        local_ip = %local_ip(r),
                        "media realm off the fast path: no attached interface holds its address"
                    ),
                }
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
    // The interfaces holding each realm's address, realm by realm.
    let holders: Vec<(IpAddr, Vec<String>)> = m
        .realms
        .iter()
        .map(|r| {
            let ip = local_ip(r);
            (ip, portcullis_xdp::interfaces_holding(ip))
        })
        .collect();
    let (names, local_ips) = choose(&holders, &m.interfaces)?;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let fp = portcullis_xdp::start(setting, &refs).map_err(|e| match e {
        portcullis_xdp::FastPathError::Load(_) => FastPathStartError::Load(e),
        e => FastPathStartError::Xdp(e),
    })?;
    Ok(fp.map(|fp| FastPathConfig {
        program: Arc::new(fp),
        local_ips,
    }))
}

/// The interfaces to attach to (`configured`, else every interface holding a realm's
/// address) and each realm's address for the program (`None` when no attached interface
/// holds it), from `holders`: each realm's address and the interfaces holding it.
fn choose(
    holders: &[(IpAddr, Vec<String>)],
    configured: &[String],
) -> Result<(Vec<String>, Vec<Option<IpAddr>>), FastPathStartError> {
    // For messages: the first realm's address.
    let first = holders
        .first()
        .map_or(IpAddr::from([0, 0, 0, 0]), |(ip, _)| *ip);
    let names = if configured.is_empty() {
        let mut names: Vec<String> = Vec::new();
        for n in holders.iter().flat_map(|(_, h)| h) {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        if names.is_empty() {
            return Err(FastPathStartError::NoInterface(first));
        }
        names
    } else {
        if !holders
            .iter()
            .any(|(_, h)| configured.iter().any(|n| h.contains(n)))
        {
            return Err(FastPathStartError::NotOnInterfaces {
                ip: first,
                names: configured.to_vec(),
            });
        }
        configured.to_vec()
    };
    let local_ips = holders
        .iter()
        .map(|(ip, h)| h.iter().any(|n| names.contains(n)).then_some(*ip))
        .collect();
    Ok((names, local_ips))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(ip: &str, on: &[&str]) -> (IpAddr, Vec<String>) {
        (
            ip.parse().unwrap(),
            on.iter().map(|n| (*n).to_owned()).collect(),
        )
    }

    #[test]
    fn every_realm_s_interface_is_attached_and_each_realm_forwards_on_its_address() {
        let holders = [
            held("192.0.2.1", &["eth0"]),
            held("2001:db8::1", &["eth1"]),
            held("198.51.100.1", &["eth0"]),
        ];
        let (names, ips) = choose(&holders, &[]).unwrap();
        assert_eq!(names, ["eth0", "eth1"]);
        assert_eq!(
            ips,
            holders.iter().map(|(ip, _)| Some(*ip)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_realm_off_the_named_interfaces_stays_with_the_workers() {
        let holders = [held("192.0.2.1", &["eth0"]), held("2001:db8::1", &["eth1"])];
        let (names, ips) = choose(&holders, &["eth0".to_owned()]).unwrap();
        assert_eq!(names, ["eth0"]);
        assert_eq!(ips, [Some(holders[0].0), None]);
        // A realm on no interface at all, beside one that is.
        let holders = [held("192.0.2.1", &["eth0"]), held("203.0.113.9", &[])];
        assert_eq!(choose(&holders, &[]).unwrap().1, [Some(holders[0].0), None]);
    }

    #[test]
    fn no_realm_on_an_interface_is_an_error_naming_the_first_address() {
        let holders = [held("192.0.2.1", &[]), held("2001:db8::1", &[])];
        assert!(matches!(
            choose(&holders, &[]),
            Err(FastPathStartError::NoInterface(ip)) if ip == holders[0].0
        ));
        let holders = [held("192.0.2.1", &["eth0"])];
        assert!(matches!(
            choose(&holders, &["eth9".to_owned()]),
            Err(FastPathStartError::NotOnInterfaces { ip, .. }) if ip == holders[0].0
        ));
    }
}

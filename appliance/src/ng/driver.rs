//! The tokio driver of the ng server: one task owning the UDP socket and the
//! [`NgServer`], one datagram at a time, and a one-second timer for idle calls and
//! deferred data-plane removals.
//!
//! The only queue is the socket's receive buffer (bounded by the kernel); a request is
//! answered before the next one is read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use portcullis_dataplane::Dataplane;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::calls::{Fill, NgCalls, NgSettings, Now};
use super::counters::NgCounters;
use super::server::NgServer;
use crate::config::{Config, NgConfig};
use crate::runtime::media::DataplaneMedia;

/// Timer period (idle calls, removal retries, events).
const TICK: Duration = Duration::from_secs(1);

/// Bytes read per datagram: the largest UDP payload fits.
const RECV_BUF: usize = 65_536;

/// SRTP keys from the OS CSPRNG.
fn os_fill() -> Fill {
    Box::new(|buf: &mut [u8]| {
        if let Err(e) = getrandom::fill(buf) {
            // The kernel's CSPRNG does not fail once the system is up; never go on with
            // a predictable key.
            tracing::error!(error = %e, "getrandom failed");
            std::process::abort();
        }
    })
}

/// The ng server for `config` over the running data plane.
pub fn server(
    config: &Config,
    ng: &NgConfig,
    dp: Arc<Dataplane>,
    counters: Arc<NgCounters>,
) -> NgServer<DataplaneMedia> {
    let media = DataplaneMedia::new(dp, crate::runtime::convert::realm_addresses(config));
    let settings = NgSettings {
        max_sessions: ng.max_sessions as usize,
        timeout: ng.timeout,
        silent_timeout: ng.silent_timeout,
        interfaces: ng.interfaces.clone(),
        advertised_ip: config.media.advertised_ip,
    };
    let calls = NgCalls::new(media, settings, os_fill(), counters.clone());
    NgServer::new(calls, ng.max_message_size as usize, counters)
}

/// Binds the ng listener.
///
/// # Errors
/// The address cannot be bound.
pub async fn bind(listen: SocketAddr) -> anyhow::Result<UdpSocket> {
    let sock = UdpSocket::bind(listen)
        .await
        .with_context(|| format!("ng listener {listen}"))?;
    tracing::info!(addr = %sock.local_addr().unwrap_or(listen), "ng listener up");
    Ok(sock)
}

/// Serves ng requests on `sock` until `stop` turns true. `owns_events`: this server is
/// the only user of the data plane (a media node), so it drains the workers' event rings
/// (nothing else would); beside the engine it leaves them to the engine.
pub async fn run(
    sock: UdpSocket,
    mut server: NgServer<DataplaneMedia>,
    owns_events: bool,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; RECV_BUF];
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut notes = Vec::new();
    loop {
        tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, src)) => {
                    let Some(datagram) = buf.get(..n) else { continue };
                    if let Some(reply) = server.handle(Now::system(), datagram) {
                        if let Err(e) = sock.send_to(&reply, src).await {
                            tracing::debug!(%src, error = %e, "ng reply not sent");
                        }
                    }
                }
                // ICMP errors of earlier replies surface here; the socket stays usable.
                Err(e) => tracing::debug!(error = %e, "ng receive error"),
            },
            _ = tick.tick() => {
                server.poll(Now::system());
                let media = server.calls_mut().media_mut();
                if owns_events {
                    media.poll_events(&mut notes);
                    notes.clear();
                } else {
                    media.retry_removals();
                }
            }
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    break;
                }
            }
        }
    }
    let live = server.calls().len();
    if live > 0 {
        tracing::info!(calls = live, "ng server stopped with calls still anchored");
    }
}

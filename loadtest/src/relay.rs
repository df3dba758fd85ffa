//! The relays we compare against, driven without SIP: rtpengine and a Portcullis media
//! node (`portcullis media-node`) through rtpengine's ng control protocol, and the raw
//! baseline forwarder `portcullis-rawfwd`.
//!
//! The ng protocol is bencode over UDP: each datagram is `<cookie> <bencoded dict>` and the
//! reply echoes the cookie. `offer` takes the caller's SDP and returns the SDP to hand to
//! the callee (the relay's port for the callee to send to); `answer` takes the callee's
//! SDP and returns the one for the caller; `delete` tears the call down. Both ng relays
//! get the same requests, so one run compares them as ng media relays on the same core.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
pub use serde_bencode::value::Value as Bencode;

use crate::run::{RunConfig, Spawned};

/// A request or reply dictionary.
pub type Dict = HashMap<Vec<u8>, Bencode>;

/// Errors of the ng client.
#[derive(Debug, thiserror::Error)]
pub enum NgError {
    /// Socket error.
    #[error("ng socket: {0}")]
    Io(#[from] std::io::Error),
    /// The reply did not decode.
    #[error("ng reply is not bencode: {0:?}")]
    Malformed(String),
    /// The relay answered with an error.
    #[error("relay: {0}")]
    Refused(String),
    /// No reply after retries.
    #[error("the relay did not answer")]
    Timeout,
}

/// A byte-string value.
pub fn s(v: &str) -> Bencode {
    Bencode::Bytes(v.as_bytes().to_vec())
}

/// The byte-string value of `key` in a reply dictionary.
fn get_str<'a>(d: &'a Bencode, key: &str) -> Option<&'a [u8]> {
    match d {
        Bencode::Dict(d) => match d.get(key.as_bytes())? {
            Bencode::Bytes(b) => Some(b),
            _ => None,
        },
        _ => None,
    }
}

/// A blocking ng client (one outstanding request at a time).
#[derive(Debug)]
pub struct NgClient {
    sock: UdpSocket,
    server: SocketAddr,
    cookie: u64,
}

impl NgClient {
    /// Binds an ephemeral socket for talking to `server`: on loopback for a relay on
    /// loopback (one we start), else on the unspecified address of its family, the route
    /// picking the source (a relay in another network namespace, `--relay-addr`).
    pub fn new(server: SocketAddr) -> Result<Self, NgError> {
        let local: IpAddr = match server.ip() {
            ip if ip.is_loopback() => ip,
            IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let sock = UdpSocket::bind((local, 0))?;
        sock.set_read_timeout(Some(Duration::from_millis(500)))?;
        Ok(Self {
            sock,
            server,
            cookie: 0,
        })
    }

    /// Sends `dict` as a command and returns the reply dictionary (`result` = `ok`).
    pub fn call(&mut self, dict: Dict) -> Result<Bencode, NgError> {
        self.cookie += 1;
        // rtpengine caches replies by cookie alone (to absorb retries), so cookies must be
        // unique across clients: the local port makes them so.
        let port = self.sock.local_addr().map(|a| a.port()).unwrap_or(0);
        let cookie = format!("lt{}-{port}-{}", std::process::id(), self.cookie);
        let mut msg = cookie.clone().into_bytes();
        msg.push(b' ');
        msg.extend(
            serde_bencode::to_bytes(&Bencode::Dict(dict))
                .map_err(|e| NgError::Malformed(e.to_string()))?,
        );
        let mut buf = vec![0u8; 65536];
        for _ in 0..5 {
            self.sock.send_to(&msg, self.server)?;
            loop {
                let n = match self.sock.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break
                    }
                    Err(e) => return Err(e.into()),
                };
                let reply = buf.get(..n).unwrap_or(&[]);
                let Some(sp) = reply.iter().position(|&b| b == b' ') else {
                    continue;
                };
                if reply.get(..sp) != Some(cookie.as_bytes()) {
                    continue; // a late reply to an earlier retry
                }
                let body = reply.get(sp + 1..).unwrap_or(&[]);
                let v: Bencode = serde_bencode::from_bytes(body).map_err(|_| {
                    NgError::Malformed(String::from_utf8_lossy(body).chars().take(80).collect())
                })?;
                return match get_str(&v, "result") {
                    Some(b"ok" | b"pong") => Ok(v),
                    _ => Err(NgError::Refused(
                        String::from_utf8_lossy(
                            get_str(&v, "error-reason")
                                .or_else(|| get_str(&v, "result"))
                                .unwrap_or(b"?"),
                        )
                        .into_owned(),
                    )),
                };
            }
        }
        Err(NgError::Timeout)
    }

    /// `offer` (caller SDP in, SDP for the callee out).
    pub fn offer(&mut self, call_id: &str, from_tag: &str, sdp: &[u8]) -> Result<Vec<u8>, NgError> {
        let mut d = base("offer", call_id, from_tag);
        d.insert(b"sdp".to_vec(), Bencode::Bytes(sdp.to_vec()));
        d.insert(
            b"replace".to_vec(),
            Bencode::List(vec![s("origin"), s("session-connection")]),
        );
        let v = self.call(d)?;
        get_str(&v, "sdp")
            .map(<[u8]>::to_vec)
            .ok_or_else(|| NgError::Malformed("no sdp".into()))
    }

    /// `answer` (callee SDP in, SDP for the caller out).
    pub fn answer(
        &mut self,
        call_id: &str,
        from_tag: &str,
        to_tag: &str,
        sdp: &[u8],
    ) -> Result<Vec<u8>, NgError> {
        let mut d = base("answer", call_id, from_tag);
        d.insert(b"to-tag".to_vec(), s(to_tag));
        d.insert(b"sdp".to_vec(), Bencode::Bytes(sdp.to_vec()));
        d.insert(
            b"replace".to_vec(),
            Bencode::List(vec![s("origin"), s("session-connection")]),
        );
        let v = self.call(d)?;
        get_str(&v, "sdp")
            .map(<[u8]>::to_vec)
            .ok_or_else(|| NgError::Malformed("no sdp".into()))
    }

    /// `delete`.
    pub fn delete(&mut self, call_id: &str, from_tag: &str) -> Result<(), NgError> {
        self.call(base("delete", call_id, from_tag)).map(|_| ())
    }
}

fn base(cmd: &str, call_id: &str, from_tag: &str) -> Dict {
    let mut d = HashMap::new();
    d.insert(b"command".to_vec(), s(cmd));
    d.insert(b"call-id".to_vec(), s(call_id));
    d.insert(b"from-tag".to_vec(), s(from_tag));
    d
}

/// Asks `ng` for `ping` until it answers (bounded).
pub fn wait_for_ping(ng: SocketAddr, what: &str) -> anyhow::Result<()> {
    let mut client = NgClient::new(ng)?;
    for _ in 0..20 {
        let mut d = HashMap::new();
        d.insert(b"command".to_vec(), s("ping"));
        if client.call(d).is_ok() {
            return Ok(());
        }
    }
    bail!("{what} did not answer ng ping on {ng}")
}

/// Starts rtpengine (userspace, one thread) pinned to the relay core; returns the
/// process and its ng address once it answers `ping`.
pub fn spawn_rtpengine(cfg: &RunConfig) -> anyhow::Result<(Spawned, SocketAddr)> {
    let ng: SocketAddr = format!("127.0.0.1:{}", cfg.relay_port).parse()?;
    let child = Command::new("taskset")
        .args(["-c", &cfg.relay_core.to_string()])
        .arg(&cfg.rtpengine_bin)
        .args(["--interface=127.0.0.1", &format!("--listen-ng={ng}")])
        .args([
            "--foreground",
            "--log-stderr",
            "--log-level=3",
            "--num-threads=1",
        ])
        .args(["--port-min=42000", "--port-max=59999", "--table=-1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting rtpengine through taskset (apt: rtpengine-daemon, util-linux)")?;
    let proc = Spawned(child);
    wait_for_ping(ng, "rtpengine")?;
    Ok((proc, ng))
}

/// First media port of a spawned Portcullis media node; its last is the run's
/// `media_port_max`, below the kernel's ephemeral range, so nothing else holds them.
const NODE_PORT_MIN: u32 = 20_000;

/// A media port range of `ports` ports within [`NODE_PORT_MIN`, `max`] that leaves out the
/// ng port and the admin port after it: below them if there is room, else above them.
fn node_port_range(ports: u32, ng: u32, max: u32) -> Option<(u32, u32)> {
    let fits = |lo: u32, hi: u32| (hi >= lo && hi - lo + 1 >= ports).then(|| (lo, lo + ports - 1));
    if ng + 1 < NODE_PORT_MIN || ng > max {
        return fits(NODE_PORT_MIN, max);
    }
    fits(NODE_PORT_MIN, ng.saturating_sub(1)).or_else(|| fits(ng + 2, max))
}

/// The media-node configuration for a run: one data plane worker pinned to the relay
/// core, the ng listener on the relay port, room for every call of the run.
pub fn media_node_config(cfg: &RunConfig) -> anyhow::Result<String> {
    // Four ports per call (two legs, RTP and RTCP each), a margin, at least the minimum
    // a worker needs (64 streams).
    let calls = u32::try_from(cfg.calls).unwrap_or(u32::MAX);
    let ports = calls.saturating_mul(4).saturating_add(256).max(256);
    let (min, max) = node_port_range(ports, u32::from(cfg.relay_port), cfg.media_port_max)
        .with_context(|| {
            format!(
                "--calls {}: {ports} media ports do not fit in {NODE_PORT_MIN}-{} beside the \
                 ng and admin ports ({}, {}){}",
                cfg.calls,
                cfg.media_port_max,
                cfg.relay_port,
                u32::from(cfg.relay_port) + 1,
                if cfg.media_port_max < 60_999 {
                    " (use --netns for more)"
                } else {
                    ""
                }
            )
        })?;
    Ok(format!(
        "[node]\nname = \"loadtest-ng\"\n\n[media]\nadvertised_ip = \"127.0.0.1\"\n\
         bind_ip = \"127.0.0.1\"\nport_min = {min}\nport_max = {max}\n\
         cores = [{core}]\ninactivity_timeout = \"1h\"\n\n[admin]\n\
         listen = \"127.0.0.1:{admin}\"\n\n[log]\nlevel = \"warn\"\n\n[ng]\n\
         listen = \"127.0.0.1:{ng}\"\nmax_sessions = {sessions}\ntimeout = \"1h\"\n",
        core = cfg.relay_core,
        admin = cfg.relay_port.wrapping_add(1),
        ng = cfg.relay_port,
        sessions = cfg.max_calls.max(1),
    ))
}

/// Starts `portcullis media-node` pinned to the relay core (its data plane worker and its
/// control threads, as rtpengine runs there with one thread); returns the process and its
/// ng address once it answers `ping`. The configuration is written into `dir`.
pub fn spawn_media_node(cfg: &RunConfig, dir: &Path) -> anyhow::Result<(Spawned, SocketAddr)> {
    let ng: SocketAddr = format!("127.0.0.1:{}", cfg.relay_port).parse()?;
    let path = dir.join(format!("loadtest-media-node-{}.toml", std::process::id()));
    std::fs::write(&path, media_node_config(cfg)?).with_context(|| path.display().to_string())?;
    let child = Command::new("taskset")
        .args(["-c", &cfg.relay_core.to_string()])
        .arg(&cfg.portcullis_bin)
        .arg("media-node")
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {} media-node", cfg.portcullis_bin.display()))?;
    let proc = Spawned(child);
    wait_for_ping(ng, "portcullis media-node")?;
    Ok((proc, ng))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_encode_as_bencode_with_sorted_keys() {
        let mut d = base("offer", "c1", "f1");
        d.insert(b"n".to_vec(), Bencode::Int(-3));
        let out = serde_bencode::to_bytes(&Bencode::Dict(d)).unwrap();
        assert_eq!(
            out,
            b"d7:call-id2:c17:command5:offer8:from-tag2:f11:ni-3ee".to_vec()
        );
        let back: Bencode = serde_bencode::from_bytes(&out).unwrap();
        assert_eq!(get_str(&back, "command"), Some(&b"offer"[..]));
    }

    #[test]
    fn the_media_port_range_leaves_out_the_ng_and_admin_ports() {
        const MAX: u32 = 32_767;
        // Room below the ng port.
        assert_eq!(node_port_range(1_000, 22_222, MAX), Some((20_000, 20_999)));
        // 2,256 ports do not fit below 22,222: the range goes above the admin port.
        assert_eq!(node_port_range(2_256, 22_222, MAX), Some((22_224, 24_479)));
        // An ng port outside the range's bounds leaves the whole range.
        assert_eq!(node_port_range(12_768, 2_223, MAX), Some((20_000, 32_767)));
        // Too many ports for either side.
        assert_eq!(node_port_range(12_000, 22_222, MAX), None);
        for (ports, ng) in [
            (256, 20_000),
            (4_256, 22_222),
            (9_000, 32_767),
            (100, 19_999),
        ] {
            let (lo, hi) = node_port_range(ports, ng, MAX).unwrap();
            assert_eq!(hi - lo + 1, ports);
            assert!(!(lo..=hi).contains(&ng) && !(lo..=hi).contains(&(ng + 1)));
            assert!(lo >= NODE_PORT_MIN && hi <= MAX);
        }
        // In a namespace of its own the range may reach 60999.
        assert_eq!(
            node_port_range(16_256, 22_222, 60_999),
            Some((22_224, 38_479))
        );
    }
}

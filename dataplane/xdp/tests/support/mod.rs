//! Network namespaces joined by veth pairs for the XDP tests: a caller namespace, the
//! appliance namespace and a callee namespace, created with `ip` and removed on drop.
//! Everything runs as root; a missing tool or capability fails the test.
#![allow(dead_code)]

use std::fs::File;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};

/// Runs `ip` with `args`; panics with its output when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("`ip` (iproute2) must be installed");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Output of `ip` with `args`.
pub fn ip_out(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("`ip` (iproute2) must be installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted (with its veth ends) on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A new namespace with a unique name and loopback up.
    pub fn new(role: &str) -> Netns {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "pcx-{}-{}-{role}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> args`.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// Runs `program args` inside the namespace (`ip netns exec`); panics when it fails.
    pub fn exec(&self, program: &str, args: &[&str]) {
        let mut all = vec!["netns", "exec", self.name.as_str(), program];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// Output of `ip -n <ns> args`.
    pub fn ip_out(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip_out(&all)
    }

    /// Runs `f` on a thread that has joined this namespace (sockets and XDP attachments
    /// made there stay in it whatever thread uses them later).
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let fd = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            setns(&fd, CloneFlags::CLONE_NEWNET).expect("setns (needs CAP_SYS_ADMIN)");
            f()
        })
        .join()
        .expect("thread in namespace panicked")
    }

    /// A UDP socket bound in this namespace, with a read timeout.
    pub fn udp(&self, addr: SocketAddr) -> UdpSocket {
        self.run(move || {
            let s = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            s
        })
    }

    /// `Udp: InCsumErrors` of this namespace (datagrams dropped for a bad checksum).
    pub fn udp_csum_errors(&self) -> u64 {
        self.run(|| {
            let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp").expect("snmp");
            let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
            let (names, values) = (
                udp.next().expect("Udp names"),
                udp.next().expect("Udp values"),
            );
            names
                .split_whitespace()
                .zip(values.split_whitespace())
                .find(|(n, _)| *n == "InCsumErrors")
                .and_then(|(_, v)| v.parse().ok())
                .expect("InCsumErrors")
        })
    }

    /// Waits until this namespace has a resolved neighbour entry for `addr`.
    pub fn wait_neighbour(&self, addr: IpAddr) {
        let a = addr.to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.ip_out(&["neigh", "show", &a]);
            if out.contains("lladdr") && !out.contains("INCOMPLETE") && !out.contains("FAILED") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no neighbour entry for {a}: {out}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Caller ↔ appliance ↔ callee: `c0`–`a0` and `a1`–`b0` veth pairs, the appliance holding
/// one address on each side (as an SBC with an outside and an inside interface).
#[derive(Debug)]
pub struct Topology {
    pub caller: Netns,
    pub appliance: Netns,
    pub callee: Netns,
}

/// Addresses of one family for the topology.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub caller: IpAddr,
    pub attacker: IpAddr,
    pub appliance_a: IpAddr,
    pub appliance_b: IpAddr,
    pub callee: IpAddr,
    pub callee_moved: IpAddr,
    pub prefix: u8,
}

/// Documentation ranges (RFC 5737 / RFC 3849), only ever inside the test's namespaces.
pub const V4: Plan = Plan {
    caller: IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)),
    attacker: IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 66)),
    appliance_a: IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2)),
    appliance_b: IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 2)),
    callee: IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1)),
    callee_moved: IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7)),
    prefix: 24,
};

pub const V6: Plan = Plan {
    caller: IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1)),
    attacker: IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x66)),
    appliance_a: IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2)),
    appliance_b: IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 2)),
    callee: IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1)),
    callee_moved: IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 7)),
    prefix: 64,
};

impl Topology {
    pub fn new(plan: &Plan) -> Topology {
        let t = Topology {
            caller: Netns::new("caller"),
            appliance: Netns::new("sbc"),
            callee: Netns::new("callee"),
        };
        let app = t.appliance.name.as_str();
        t.caller.ip(&[
            "link", "add", "c0", "type", "veth", "peer", "name", "a0", "netns", app,
        ]);
        t.callee.ip(&[
            "link", "add", "b0", "type", "veth", "peer", "name", "a1", "netns", app,
        ]);
        let addr = |ns: &Netns, dev: &str, a: IpAddr| {
            let cidr = format!("{a}/{}", plan.prefix);
            if a.is_ipv6() {
                ns.ip(&["addr", "add", &cidr, "dev", dev, "nodad"]);
            } else {
                ns.ip(&["addr", "add", &cidr, "dev", dev]);
            }
        };
        addr(&t.caller, "c0", plan.caller);
        addr(&t.caller, "c0", plan.attacker);
        addr(&t.appliance, "a0", plan.appliance_a);
        addr(&t.appliance, "a1", plan.appliance_b);
        addr(&t.callee, "b0", plan.callee);
        addr(&t.callee, "b0", plan.callee_moved);
        for (ns, dev) in [
            (&t.caller, "c0"),
            (&t.appliance, "a0"),
            (&t.appliance, "a1"),
            (&t.callee, "b0"),
        ] {
            ns.ip(&["link", "set", dev, "up"]);
        }
        // A veth hands its peer UDP checksums still to be completed (CHECKSUM_PARTIAL,
        // a pseudo-header sum only); a NIC's receive ring holds complete ones. The peers
        // compute theirs in software so the appliance sees what a wire would bring.
        t.caller.exec("ethtool", &["-K", "c0", "tx", "off"]);
        t.callee.exec("ethtool", &["-K", "b0", "tx", "off"]);
        t
    }
}

/// An RTP packet (V=2, PT 0) with a recognisable payload.
pub fn rtp(seq: u16, ssrc: u32, pt: u8, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; 12 + len];
    p[0] = 0x80;
    p[1] = pt & 0x7f;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    for (i, b) in p[12..].iter_mut().enumerate() {
        *b = (i as u8) ^ (seq as u8);
    }
    p
}

/// Receives one datagram (panics after the socket's timeout).
pub fn recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = s
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("nothing received on {:?}: {e}", s.local_addr()));
    (buf[..n].to_vec(), from)
}

/// True when a datagram is waiting on `s` (does not wait).
pub fn pending(s: &UdpSocket) -> bool {
    s.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 2048];
    let got = s.peek_from(&mut buf).is_ok();
    s.set_nonblocking(false).expect("blocking");
    got
}

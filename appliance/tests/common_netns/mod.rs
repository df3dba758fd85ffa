//! Network namespaces for tests that run the appliance and its peers apart: a `lan`
//! namespace with a bridge, and one namespace per party joined to it by a veth pair.
//! Created with `ip` (iproute2), deleted on drop; processes run inside with
//! `ip netns exec`, sockets are made by a thread that joined the namespace. Everything
//! runs as root; a missing tool fails the test.
#![allow(dead_code)]

pub mod call;

use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::{setns, CloneFlags};

/// Runs `program args`; panics with its output when it fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): is it installed?"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
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
            "pct-{}-{}-{role}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> args`.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Runs `program args` inside the namespace and waits for it.
    pub fn exec(&self, program: &str, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", self.name.as_str(), program];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// A command running `program` inside the namespace (`ip netns exec`, which execs
    /// it: the child's pid is the program's).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.name.as_str(), program])
            .stdin(Stdio::null());
        c
    }

    /// Runs `f` on a thread that joined this namespace (sockets made there stay in it).
    pub fn join<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let fd = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            setns(&fd, CloneFlags::CLONE_NEWNET).expect("setns (needs CAP_SYS_ADMIN)");
            f()
        })
        .join()
        .expect("thread in namespace panicked")
    }

    /// A non-blocking UDP socket bound in this namespace.
    pub fn udp(&self, addr: SocketAddr) -> UdpSocket {
        self.join(move || {
            let s = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
            s.set_nonblocking(true).expect("nonblocking");
            s
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A child process killed (and reaped) on drop.
#[derive(Debug)]
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// One L2 segment: a bridge in namespace `lan`, and `parties` namespaces each joined to
/// it by a veth pair (`<dev>` inside the party, `l<i>` on the bridge).
#[derive(Debug)]
pub struct Lan {
    /// The parties, in the order given.
    pub parties: Vec<Netns>,
    /// The bridge's namespace (dropped last).
    pub lan: Netns,
}

impl Lan {
    /// `parties`: (role, device name, addresses with prefix length).
    pub fn new(parties: &[(&str, &str, &[&str])]) -> Lan {
        let lan = Netns::new("lan");
        lan.ip(&["link", "add", "br0", "type", "bridge"]);
        lan.ip(&["link", "set", "br0", "up"]);
        let mut out = Vec::new();
        for (i, (role, dev, addrs)) in parties.iter().enumerate() {
            let ns = Netns::new(role);
            let port = format!("l{i}");
            lan.ip(&[
                "link", "add", &port, "type", "veth", "peer", "name", dev, "netns", &ns.name,
            ]);
            lan.ip(&["link", "set", &port, "master", "br0"]);
            lan.ip(&["link", "set", &port, "up"]);
            for a in *addrs {
                ns.ip(&["addr", "add", a, "dev", dev]);
            }
            ns.ip(&["link", "set", dev, "up"]);
            out.push(ns);
        }
        Lan { parties: out, lan }
    }
}

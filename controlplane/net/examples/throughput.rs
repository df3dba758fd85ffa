//! Loopback throughput of the drivers: clients send SIP OPTIONS, a consumer echoes every
//! message back through `SipTransports::send`, clients count the echoes.
//!
//! `cargo run -p portcullis-net --release --example throughput -- [messages] [clients]`
//!
//! Bounded: at most `messages` (default 100 000, capped at 2 000 000) and 60 s.
#![allow(clippy::print_stderr)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use portcullis_net::{
    ListenerConfig, Outbound, SipTransports, Transport, TransportConfig, TransportEvent,
    TransportEvents,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const WINDOW: usize = 32;

fn msg(i: usize) -> Vec<u8> {
    format!(
        "OPTIONS sip:sbc.example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK{i:08}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:sbc.example.com>\r\n\
         Call-ID: {i:08}@bench\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

async fn echo(net: SipTransports, mut rx: TransportEvents) {
    while let Some(ev) = rx.recv().await {
        if let TransportEvent::Message(m) = ev {
            let mut o = Outbound::new(m.transport, m.remote, m.bytes);
            o.conn = m.conn;
            o.local = Some(m.local);
            let _ = net.send(o);
        }
    }
}

async fn udp_client(server: SocketAddr, n: usize) -> usize {
    let Ok(s) = UdpSocket::bind("127.0.0.1:0").await else {
        return 0;
    };
    let mut buf = vec![0u8; 2048];
    let (mut got, mut sent, mut received) = (0, 0, 0);
    while got < n {
        while sent < n && sent - got < WINDOW {
            if s.send_to(&msg(sent), server).await.is_err() {
                return got;
            }
            sent += 1;
        }
        match tokio::time::timeout(Duration::from_millis(200), s.recv_from(&mut buf)).await {
            Ok(Ok(_)) => {
                got += 1;
                received += 1;
            }
            // Presumed lost (kernel drop): count it as done and move on.
            _ => got += 1,
        }
    }
    received
}

async fn tcp_client(server: SocketAddr, n: usize) -> usize {
    let Ok(mut s) = TcpStream::connect(server).await else {
        return 0;
    };
    let _ = s.set_nodelay(true);
    let len = msg(0).len();
    let mut buf = vec![0u8; len * WINDOW];
    let (mut sent, mut got_bytes) = (0usize, 0usize);
    while got_bytes < n * len {
        while sent < n && sent * len - got_bytes < WINDOW * len {
            if s.write_all(&msg(sent)).await.is_err() {
                return got_bytes / len;
            }
            sent += 1;
        }
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(k) => got_bytes += k,
        }
    }
    got_bytes / len
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let total: usize = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000)
        .min(2_000_000);
    let clients: usize = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(4)
        .clamp(1, 64);
    let per = total / clients;
    let (net, rx) = match SipTransports::bind(TransportConfig {
        listeners: vec![
            ListenerConfig {
                transport: Transport::Udp,
                addr: "127.0.0.1:0".parse().expect("literal"),
                tls: None,
            },
            ListenerConfig {
                transport: Transport::Tcp,
                addr: "127.0.0.1:0".parse().expect("literal"),
                tls: None,
            },
        ],
        ..TransportConfig::default()
    })
    .await
    {
        Ok(x) => x,
        Err(e) => {
            eprintln!("bind: {e}");
            return;
        }
    };
    tokio::spawn(echo(net.clone(), rx));
    for t in [Transport::Udp, Transport::Tcp] {
        let Some(server) = net.local_addr(t) else {
            continue;
        };
        let start = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|_| match t {
                Transport::Udp => tokio::spawn(udp_client(server, per)),
                _ => tokio::spawn(tcp_client(server, per)),
            })
            .collect();
        let mut done = 0;
        let all = async {
            for task in tasks {
                done += task.await.unwrap_or(0);
            }
        };
        if tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .is_err()
        {
            eprintln!("{t:?}: timed out");
            continue;
        }
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "{t:?}: {done} echoes ({clients} clients, window {WINDOW}) in {secs:.2} s = {:.0} msg/s round trips",
            done as f64 / secs
        );
    }
    let c = net.counters().snapshot();
    eprintln!(
        "counters: in udp={} tcp={}, out udp={} tcp={}, queue drops={}",
        c.messages_in(Transport::Udp),
        c.messages_in(Transport::Tcp),
        c.messages_out(Transport::Udp),
        c.messages_out(Transport::Tcp),
        c.event_queue_drops
    );
}

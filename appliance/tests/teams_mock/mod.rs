//! A mock of Microsoft Teams Direct Routing for the end-to-end tests: a test PKI made
//! with rcgen and SIP proxies (`sip`, `sip2`, `sip3`.pstnhub.microsoft.com) listening
//! with TLS on loopback that require a client certificate chaining to the test CA.
//!
//! Each proxy records what reaches it (the OPTIONS with their arrival time, INVITEs,
//! ACKs, BYEs, the names in the client certificates), answers OPTIONS with `200` while
//! `answering` is on (and stays silent otherwise, like a proxy that stopped), and
//! answers calls as a UAS with an SRTP answer (`a=crypto` AES_CM_128_HMAC_SHA1_80,
//! `a=rtcp-mux`) built by a replaceable function. It also acts as a TLS client toward
//! the SBC ([`probe_options`]) to test the inbound side.
//!
//! Every proxy runs on its own small tokio runtime, ended on drop; every wait is bounded.
#![allow(dead_code, clippy::print_stderr)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use portcullis_net::tls::{client_config, leaf_dns_names, server_config};
use portcullis_net::{ClientCertificate, TlsClientSettings, TlsServerSettings, Transport};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The Teams SIP proxies, in failover order.
pub const PROXIES: [&str; 3] = [
    "sip.pstnhub.microsoft.com",
    "sip2.pstnhub.microsoft.com",
    "sip3.pstnhub.microsoft.com",
];

/// The SBC FQDN of the tests.
pub const SBC_FQDN: &str = "sbc1.example.com";

/// A test certificate authority writing PEM files into its own temp dir.
pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The CA certificate (PEM): the "Microsoft roots" / the SBC's trusted roots.
    pub ca_pem: PathBuf,
    cert: Certificate,
    key: KeyPair,
    name: String,
}

/// A leaf certificate and its key on disk.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// Leaf then CA (full chain).
    pub chain_pem: PathBuf,
    pub key_pem: PathBuf,
}

impl Pki {
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = KeyPair::generate().expect("CA key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).expect("CA cert");
        let ca_pem = dir.path().join(format!("{name}-ca.pem"));
        std::fs::write(&ca_pem, cert.pem()).expect("write CA");
        Self {
            dir,
            ca_pem,
            cert,
            key,
            name: name.to_owned(),
        }
    }

    /// A certificate for `names` (SAN DNS), for server and client authentication.
    pub fn leaf(&self, file: &str, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let sans: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let mut p = CertificateParams::new(sans).expect("leaf params");
        p.distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = p.signed_by(&key, &self.cert, &self.key).expect("sign leaf");
        let chain_pem = self.dir.path().join(format!("{}-{file}.pem", self.name));
        let key_pem = self.dir.path().join(format!("{}-{file}.key", self.name));
        std::fs::write(&chain_pem, format!("{}{}", cert.pem(), self.cert.pem()))
            .expect("write leaf");
        std::fs::write(&key_pem, key.serialize_pem()).expect("write key");
        Leaf { chain_pem, key_pem }
    }
}

/// One SIP message the mock received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub text: String,
}

/// What a proxy saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub options: Vec<Received>,
    pub invites: Vec<Received>,
    pub acks: usize,
    pub byes: usize,
    /// NOTIFY requests (transfer progress, RFC 3515 §2.4.4).
    pub notifies: Vec<Received>,
    /// Responses the mock received (to what it sent with [`MockProxy::send`]).
    pub responses: Vec<Received>,
    /// SAN names of each accepted client certificate.
    pub client_names: Vec<Vec<String>>,
    /// TLS handshakes that failed on the mock's side.
    pub handshake_failures: usize,
    /// Connections accepted (TCP).
    pub connections: usize,
}

/// Builds the SDP answer of the mock UAS from the offer.
pub type AnswerFn = Box<dyn Fn(&str) -> String + Send + Sync>;

struct Shared {
    name: String,
    seen: Mutex<Seen>,
    answering: AtomicBool,
    answer: Mutex<AnswerFn>,
    /// Writer of the connection that carried the last INVITE.
    dialog_conn: Mutex<Option<tokio::sync::mpsc::UnboundedSender<String>>>,
    /// Bumped by [`MockProxy::close_connections`]: every open connection closes.
    kick: tokio::sync::watch::Sender<u64>,
}

/// A mock Teams SIP proxy on loopback.
pub struct MockProxy {
    pub name: String,
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    rt: Option<tokio::runtime::Runtime>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MockProxy {
    /// Listens with TLS on `addr` with `cert` (for `name`), requiring a client
    /// certificate chaining to `client_ca`.
    pub fn start(name: &str, addr: SocketAddr, cert: &Leaf, client_ca: &std::path::Path) -> Self {
        let settings = TlsServerSettings {
            cert_chain_pem: cert.chain_pem.clone(),
            key_pem: cert.key_pem.clone(),
            client_ca: Some(client_ca.to_owned()),
            expected_client_names: Vec::new(),
        };
        let cfg = server_config(Transport::Mtls, &settings).expect("mock TLS server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("mock runtime");
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            seen: Mutex::new(Seen::default()),
            answering: AtomicBool::new(true),
            answer: Mutex::new(Box::new(|offer: &str| default_answer(offer, 17999))),
            dialog_conn: Mutex::new(None),
            kick: tokio::sync::watch::channel(0).0,
        });
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .unwrap_or_else(|e| panic!("mock {name} cannot listen on {addr}: {e}"));
        let sh = shared.clone();
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                lock(&sh.seen).connections += 1;
                tokio::spawn(serve_conn(acceptor.clone(), tcp, sh.clone()));
            }
        });
        Self {
            name: name.to_owned(),
            addr,
            shared,
            rt: Some(rt),
        }
    }

    /// Whether OPTIONS get a `200` (off: silence, as a proxy that stopped).
    pub fn set_answering(&self, on: bool) {
        self.shared.answering.store(on, Ordering::SeqCst);
    }

    /// Replaces the SDP answer builder.
    pub fn set_answer(&self, f: AnswerFn) {
        *lock(&self.shared.answer) = f;
    }

    /// Sends `msg` on the connection that carried the last INVITE (in-dialog
    /// requests of the mock, e.g. a REFER); `false` when there is none.
    pub fn send(&self, msg: String) -> bool {
        lock(&self.shared.dialog_conn)
            .as_ref()
            .is_some_and(|tx| tx.send(msg).is_ok())
    }

    /// Closes every open connection (as a proxy restart would); the next request of the
    /// SBC opens a new one, with a new TLS handshake.
    pub fn close_connections(&self) {
        self.shared.kick.send_modify(|g| *g += 1);
    }

    /// A copy of what it saw so far.
    pub fn seen(&self) -> Seen {
        lock(&self.shared.seen).clone()
    }
}

impl Drop for MockProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// An SRTP answer on `port` echoing the offer's first crypto tag, with a fixed key.
pub fn default_answer(offer: &str, port: u16) -> String {
    srtp_answer(offer, port, MOCK_KEY_B64)
}

/// The mock's SRTP master key||salt (30 bytes), base64.
pub const MOCK_KEY_B64: &str = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk";

/// The first `a=crypto` of `sdp`: (tag, suite, base64 key||salt).
pub fn offer_crypto(sdp: &str) -> Option<(String, String, String)> {
    let line = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("a=crypto:"))?;
    let mut it = line.split_whitespace();
    let tag = it.next()?.to_owned();
    let suite = it.next()?.to_owned();
    let key = it.next()?.strip_prefix("inline:")?;
    let key = key.split('|').next()?.to_owned();
    Some((tag, suite, key))
}

/// An SRTP (RTP/SAVP, rtcp-mux) answer on 127.0.0.1:`port` with `key_b64`.
pub fn srtp_answer(offer: &str, port: u16, key_b64: &str) -> String {
    let tag = offer_crypto(offer).map_or_else(|| "1".to_owned(), |c| c.0);
    format!(
        "v=0\r\no=mock 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n\
         a=crypto:{tag} AES_CM_128_HMAC_SHA1_80 inline:{key_b64}|2^31\r\n\
         a=rtcp-mux\r\na=sendrecv\r\n"
    )
}

/// Value of header `name` (case-insensitive; compact form `short` too).
pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    header_all(msg, name).into_iter().next()
}

/// Every value of header `name`.
pub fn header_all<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    let head = msg.split("\r\n\r\n").next().unwrap_or("");
    head.lines()
        .skip(1)
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .collect()
}

fn body(msg: &str) -> &str {
    msg.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// One whole message (or a keep-alive) off the front of `buf`.
enum Frame {
    Ping,
    Crlf,
    Message(String),
}

fn frame(buf: &mut Vec<u8>) -> Option<Frame> {
    if buf.starts_with(b"\r\n\r\n") {
        buf.drain(..4);
        return Some(Frame::Ping);
    }
    if buf.starts_with(b"\r\n") && buf.len() >= 4 && !buf.starts_with(b"\r\n\r\n") {
        buf.drain(..2);
        return Some(Frame::Crlf);
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let cl = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            let k = k.trim();
            (k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("l"))
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    let total = end + 4 + cl;
    if buf.len() < total {
        return None;
    }
    let msg: Vec<u8> = buf.drain(..total).collect();
    Some(Frame::Message(String::from_utf8_lossy(&msg).into_owned()))
}

/// A response to `req` (Via, From, To with a tag, Call-ID, CSeq copied).
pub fn response(req: &str, status: u16, reason: &str, extra: &str, body: &str) -> String {
    let mut r = format!("SIP/2.0 {status} {reason}\r\n");
    for v in header_all(req, "via") {
        r.push_str(&format!("Via: {v}\r\n"));
    }
    for h in ["From", "Call-ID", "CSeq"] {
        if let Some(v) = header(req, h) {
            r.push_str(&format!("{h}: {v}\r\n"));
        }
    }
    if let Some(to) = header(req, "to") {
        if to.contains(";tag=") || status == 100 {
            r.push_str(&format!("To: {to}\r\n"));
        } else {
            r.push_str(&format!("To: {to};tag=mock{status}\r\n"));
        }
    }
    r.push_str(extra);
    if !body.is_empty() {
        r.push_str("Content-Type: application/sdp\r\n");
    }
    r.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    r
}

async fn serve_conn(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    sh: Arc<Shared>,
) {
    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        _ => {
            lock(&sh.seen).handshake_failures += 1;
            return;
        }
    };
    let names = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(leaf_dns_names)
        .unwrap_or_default();
    lock(&sh.seen).client_names.push(names);
    let (mut rd, mut wr) = tokio::io::split(tls);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut kick = sh.kick.subscribe();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            r = rd.read(&mut chunk) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            Some(out) = rx.recv() => {
                if wr.write_all(out.as_bytes()).await.is_err() {
                    return;
                }
                continue;
            }
            _ = kick.changed() => {
                let _ = wr.shutdown().await;
                return;
            }
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(f) = frame(&mut buf) {
            let out = match f {
                Frame::Ping => "\r\n".to_owned(),
                Frame::Crlf => String::new(),
                Frame::Message(m) => {
                    if m.starts_with("INVITE ") {
                        *lock(&sh.dialog_conn) = Some(tx.clone());
                    }
                    handle(&sh, &m)
                }
            };
            if !out.is_empty() && wr.write_all(out.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

/// An in-dialog REFER from the mock (the UAS of `invite`, To tag `mock200`) asking the
/// SBC to transfer the caller to `refer_to` (RFC 3515).
pub fn refer_for(invite: &str, refer_to: &str, via_port: u16) -> String {
    let target = header(invite, "contact")
        .map(|c| {
            c.trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or(c)
                .to_owned()
        })
        .unwrap_or_default();
    let from = header(invite, "from").unwrap_or("");
    let to = header(invite, "to").unwrap_or("");
    let call_id = header(invite, "call-id").unwrap_or("");
    let routes: String = header_all(invite, "record-route")
        .into_iter()
        .map(|r| format!("Route: {r}\r\n"))
        .collect();
    format!(
        "REFER {target} SIP/2.0\r\n\
         Via: SIP/2.0/TLS 127.0.0.1:{via_port};branch=z9hG4bKrefer{via_port}\r\n\
         Max-Forwards: 70\r\n{routes}\
         From: {to};tag=mock200\r\nTo: {from}\r\nCall-ID: {call_id}\r\nCSeq: 2 REFER\r\n\
         Contact: <sip:sip@127.0.0.1:{via_port};transport=tls>\r\n\
         Refer-To: <{refer_to}>\r\nReferred-By: <sip:alice@example.com>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// What the mock sends back for `msg`.
fn handle(sh: &Shared, msg: &str) -> String {
    let now = Instant::now();
    if msg.starts_with("SIP/2.0 ") {
        lock(&sh.seen).responses.push(Received {
            at: now,
            text: msg.to_owned(),
        });
        return String::new();
    }
    let method = msg.split_whitespace().next().unwrap_or("");
    let rec = Received {
        at: now,
        text: msg.to_owned(),
    };
    match method {
        "OPTIONS" => {
            lock(&sh.seen).options.push(rec);
            if sh.answering.load(Ordering::SeqCst) {
                response(
                    msg,
                    200,
                    "OK",
                    "Allow: INVITE, ACK, OPTIONS, CANCEL, BYE, NOTIFY, REFER\r\n",
                    "",
                )
            } else {
                String::new()
            }
        }
        "INVITE" => {
            lock(&sh.seen).invites.push(rec);
            let sdp = (lock(&sh.answer))(body(msg));
            let contact = format!(
                "Contact: <sip:{}@{};transport=tls>\r\n",
                sh.name.split('.').next().unwrap_or("mock"),
                "127.0.0.1"
            );
            let mut out = response(msg, 100, "Trying", "", "");
            out.push_str(&response(msg, 200, "OK", &contact, &sdp));
            out
        }
        "ACK" => {
            lock(&sh.seen).acks += 1;
            String::new()
        }
        "BYE" => {
            lock(&sh.seen).byes += 1;
            response(msg, 200, "OK", "", "")
        }
        "NOTIFY" => {
            lock(&sh.seen).notifies.push(rec);
            response(msg, 200, "OK", "", "")
        }
        _ => response(msg, 200, "OK", "", ""),
    }
}

/// Connects to the SBC's TLS listener at `addr` as a Teams proxy would (SNI
/// `sbc_name`, trusting `roots`, presenting `client`), sends an OPTIONS and returns the
/// answer; `Err` when the handshake fails or the connection closes without an answer
/// within 5 s.
pub fn probe_options(
    addr: SocketAddr,
    sbc_name: &str,
    roots: &std::path::Path,
    client: &Leaf,
) -> Result<String, String> {
    let cfg = client_config(&TlsClientSettings {
        roots: roots.to_owned(),
        client_cert: Some(ClientCertificate {
            cert_chain_pem: client.chain_pem.clone(),
            key_pem: client.key_pem.clone(),
        }),
    })
    .map_err(|e| format!("client config: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("probe runtime");
    let name =
        rustls::pki_types::ServerName::try_from(sbc_name.to_owned()).map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let io = async {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let mut tls = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            let req = format!(
                "OPTIONS sip:{sbc_name}:5061;transport=tls SIP/2.0\r\n\
                 Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bKprobe{n}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:sip.pstnhub.microsoft.com>;tag=p1\r\n\
                 To: <sip:{sbc_name}>\r\nCall-ID: probe-{n}@mock\r\nCSeq: 1 OPTIONS\r\n\
                 Content-Length: 0\r\n\r\n",
                n = addr.port()
            );
            tls.write_all(req.as_bytes())
                .await
                .map_err(|e| format!("write: {e}"))?;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = tls
                    .read(&mut chunk)
                    .await
                    .map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    return Err("closed without an answer".to_owned());
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(Frame::Message(m)) = frame(&mut buf) {
                    return Ok(m);
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), io)
            .await
            .unwrap_or_else(|_| Err("no answer within 5 s".to_owned()))
    })
}

/// Polls `cond` every 50 ms until it holds; panics with `what` after `within`.
pub fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

//! A fake [`AdminBackend`] with everything the dashboard shows (calls with media, trunk
//! health, Teams proxies, workers, failures, a CDR file), served by the real admin server
//! on its own runtime.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use portcullis::admin::quality;
use portcullis::admin::{
    spawn, AdminBackend, AdminServer, AdminServerConfig, CallInfo, CallMedia, Failure, Health,
    LegMedia, MetricsSnapshot, TeamsInfo, TeamsProxyStatus, TrunkHealth, TrunkInfo, WorkerSample,
};

/// The token the fake server wants.
pub const TOKEN: &str = "dashboard-test-token-0123456789";

/// What the fake reports.
#[derive(Debug, Default)]
pub struct FakeState {
    pub calls: Vec<CallInfo>,
    pub failures: Vec<Failure>,
    pub total: u64,
    pub rx: u64,
    pub cdr_files: Vec<PathBuf>,
    pub reloads: u64,
    pub deleted: Vec<u64>,
    /// How many `calls()` requests have started.
    pub calls_started: u64,
    /// Hold each `calls()` answer this long (a slow backend: a poll stays in flight).
    pub calls_delay: Option<Duration>,
}

/// The fake backend.
#[derive(Debug, Clone, Default)]
pub struct Fake {
    pub state: Arc<Mutex<FakeState>>,
}

impl Fake {
    pub fn st(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A leg with `rx` packets received of which `lost` were lost.
pub fn leg(codec: &str, srtp: Option<&str>, rx: u64, lost: u64) -> LegMedia {
    LegMedia {
        codec: Some(codec.into()),
        srtp: srtp.map(str::to_owned),
        rx_packets: rx,
        rx_bytes: rx * 172,
        tx_packets: rx,
        tx_bytes: rx * 172,
        lost: Some(lost),
        jitter_ms: Some(1.5),
        quality: quality::estimate(rx, Some(lost), Some(1500)),
    }
}

/// A live answered call `id` from `calling` to `called`.
pub fn call(id: u64, calling: &str, called: &str) -> CallInfo {
    CallInfo {
        id,
        inbound_trunk: "pbx".into(),
        outbound_trunk: Some("carrier".into()),
        calling: calling.into(),
        called: called.into(),
        answered: true,
        duration_s: 75,
        media: Some(CallMedia {
            a: leg("PCMA/8000", None, 3750, 0),
            b: leg("PCMA/8000", Some("AES_CM_128_HMAC_SHA1_80"), 3700, 40),
        }),
    }
}

impl AdminBackend for Fake {
    async fn health(&self) -> Health {
        Health {
            ready: true,
            reasons: vec![],
        }
    }
    async fn metrics(&self) -> MetricsSnapshot {
        let st = self.st();
        MetricsSnapshot {
            config_generation: 1 + st.reloads,
            calls_total: st.total,
            calls_active: st.calls.len() as u64,
            dataplane_backend: "io_uring".into(),
            ..MetricsSnapshot::default()
        }
    }
    async fn calls_total(&self) -> u64 {
        self.st().total
    }
    async fn call_counts(&self) -> (u64, u64) {
        let mut st = self.st();
        // Three new calls per sample.
        st.total += 3;
        (st.total, st.calls.len() as u64)
    }
    async fn calls(&self) -> Vec<CallInfo> {
        let delay = {
            let mut st = self.st();
            st.calls_started += 1;
            st.calls_delay
        };
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        self.st().calls.clone()
    }
    async fn terminate(&self, id: u64) -> bool {
        let mut st = self.st();
        let before = st.calls.len();
        st.calls.retain(|c| c.id != id);
        st.deleted.push(id);
        st.calls.len() != before
    }
    async fn trunks(&self) -> Vec<TrunkInfo> {
        let t = |name: &str, state: &str, held: Option<u64>, status: Option<u16>| TrunkInfo {
            name: name.into(),
            address: "192.0.2.10:5060".into(),
            transport: "udp".into(),
            media: "rtp".into(),
            max_calls: Some(100),
            active_calls: 1,
            health: Some(TrunkHealth {
                state: state.into(),
                held_off_s: held,
                last_attempt_ms: Some(self.wall_ms() - 12_000),
                last_status: status,
                failures_in_row: u32::from(state == "failing"),
            }),
            targets: None,
        };
        vec![
            t("pbx", "up", None, None),
            t("carrier", "up", None, None),
            t("backup", "held_off", Some(240), Some(503)),
        ]
    }
    async fn reload(&self) -> Result<u64, Vec<String>> {
        let mut st = self.st();
        st.reloads += 1;
        Ok(1 + st.reloads)
    }
    fn node_name(&self) -> String {
        "sbc-fra-1".into()
    }
    async fn workers(&self) -> Vec<WorkerSample> {
        let mut st = self.st();
        st.rx += 50_000;
        (0..2)
            .map(|w| WorkerSample {
                worker: w,
                core: Some(2 + w),
                backend: "io_uring".into(),
                active_pairs: 1,
                rx_packets: st.rx,
                tx_packets: st.rx,
                rx_bytes: st.rx * 172,
                drops: 0,
                cpu_ms: Some(st.rx / 1000),
            })
            .collect()
    }
    fn failures(&self) -> Vec<Failure> {
        self.st().failures.clone()
    }
    fn cdr_files(&self) -> Vec<PathBuf> {
        self.st().cdr_files.clone()
    }
    async fn teams(&self) -> TeamsInfo {
        let p = |proxy: &str, state: &str, selected: bool| TeamsProxyStatus {
            proxy: proxy.into(),
            address: "52.114.14.70:5061".into(),
            state: state.into(),
            selected,
            misses: 0,
            held_off_s: None,
            last_answer_s: Some(12),
            last_status: Some(200),
            options_sent: 60,
            options_answered: 60,
            options_missed: 0,
        };
        TeamsInfo {
            configured: true,
            sbc_fqdn: Some("sbc.example.com".into()),
            selected: Some("sip.pstnhub.microsoft.com".into()),
            proxies: vec![
                p("sip.pstnhub.microsoft.com", "up", true),
                p("sip2.pstnhub.microsoft.com", "up", false),
                p("sip3.pstnhub.microsoft.com", "up", false),
            ],
        }
    }
}

/// The admin server over a fake, on its own runtime.
pub struct Running {
    pub rt: tokio::runtime::Runtime,
    pub fake: Fake,
    pub srv: AdminServer,
}

impl Running {
    /// Serves `fake` on a free loopback port; `token`: the bearer token it wants.
    pub fn start(fake: Fake, token: Option<&str>) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let srv = rt
            .block_on(spawn(
                AdminServerConfig {
                    listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
                    token: token.map(str::to_owned),
                },
                fake.clone(),
            ))
            .unwrap_or_else(|e| panic!("bind: {e}"));
        Self { rt, fake, srv }
    }

    /// `http://<server><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.srv.local_addr())
    }

    pub fn stop(self) {
        self.rt.block_on(self.srv.stop());
    }
}

/// `(status, headers we look at, body)` of a request; `token` adds the bearer header.
pub fn http(method: &str, url: &str, token: Option<&str>) -> (u16, Vec<(String, String)>, String) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let mut req = agent.request(method, url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let r = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let headers = r
        .headers_names()
        .into_iter()
        .filter_map(|n| r.header(&n).map(|v| (n.clone(), v.to_owned())))
        .collect();
    (r.status(), headers, r.into_string().unwrap_or_default())
}

/// A header's value.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

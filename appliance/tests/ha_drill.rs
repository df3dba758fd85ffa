//! Active/standby drill on loopback with real peers: a Redis (password, its own temp
//! dir), two `portcullis` processes taking turns on the same SIP and media ports,
//! sipp callers and callees. Calls answered through node A survive `kill -9` of A:
//! node B, told it is master by the shipped keepalived notify script, restores
//! them, and the caller's BYE ends each with exactly one CDR, marked with the
//! takeover; A's CDR journal, when A comes back, writes no restart record for them.
//! Then the other way (fail back) with the callee hanging up. And Redis down: the
//! active node keeps serving, reports degraded, and writes every call again when
//! Redis is back. And an audio+video call: both its streams flow both ways after the
//! takeover. And the warm standby: it keeps the active node's calls armed, catches up
//! after a restart, lets ended calls go.
//!
//! The standby of the first drill is started only after the calls are up: it catches up
//! from Redis (its warm look, or the takeover's read when that comes first). The measured drill with
//! keepalived moving the addresses between namespaces is `ha_netns.rs`; this one holds
//! every process to loopback. Ports: `Ports::for_test(115)`
//! to `(118)`, Redis on their `right2 + 5`.

#[path = "sipp_harness/mod.rs"]
mod sipp_harness;

#[path = "common_ha/mod.rs"]
mod common_ha;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common_ha::*;
use sipp_harness::{serial, sip_target, start_uac, start_uas, Appliance, Ports, Sipp};

/// A node of the pair on `p` started in a new directory, as `role` with `peer` its peer.
fn start_fresh(p: Ports, redis: u16, shared: &Shared, role: &str, peer: &str) -> Appliance {
    start_node(
        tempfile::tempdir().unwrap(),
        &node_config(p, redis, shared, role, peer),
    )
}

/// Waits up to `within` until Redis holds exactly `n` live calls.
fn calls_in_redis(redis: &Redis, n: usize, within: Duration) -> bool {
    wait_for(within, || redis.keys("portcullis:call:*").len() == n)
}

/// The sipp callees (`uas`, trunk right) and callers (`uac`, trunk left) of a drill,
/// their files in `dir`.
struct Calls {
    dir: tempfile::TempDir,
    uas: Sipp,
    uac: Sipp,
}

impl Calls {
    /// Starts the callees with arguments `uas`, then the callers with arguments `uac`.
    fn start(p: Ports, uas: &[&str], uac: &[&str]) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), p, uas, uac)
    }

    /// [`Calls::start`] in `dir`.
    fn start_in(dir: tempfile::TempDir, p: Ports, uas: &[&str], uac: &[&str]) -> Self {
        let uas = start_uas(dir.path(), p, uas);
        let uac = start_uac(dir.path(), p, uac);
        Self { dir, uas, uac }
    }

    /// The callers end the calls: waits for them (60 s), then for the callees (30 s);
    /// `callers` and `callees` say what failed if one did not succeed.
    fn wait_ok(mut self, callers: &str, callees: &str) {
        self.uac.wait_ok(Duration::from_secs(60), callers);
        self.uas.wait_ok(Duration::from_secs(30), callees);
    }
}

#[test]
fn kill9_takeover_bye_both_ways_one_cdr_and_fail_back() {
    let _lock = serial();
    let p = Ports::for_test(115);
    let redis = Redis::start(p.right2 + 5);
    let shared = Shared::new();
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = start_node(dir_a, &node_config(p, redis.port, &shared, "active", "b"));
    let target = sip_target(p);

    // Phase 1: three calls through A; the caller hangs up after 15 s.
    let calls = Calls::start(
        p,
        &["-sn", "uas", "-m", "3"],
        &[
            "-sn", "uac", "-d", "15000", "-m", "3", "-l", "3", "-r", "10", &target,
        ],
    );
    assert!(
        calls_in_redis(&redis, 3, Duration::from_secs(10)),
        "three answered calls replicated: {:?}\n{}",
        redis.keys("*"),
        a.log()
    );
    let dir_a = kill9(a);
    let b = start_node(dir_b, &node_config(p, redis.port, &shared, "standby", "a"));
    assert_eq!(ha_status(p)["role"], "standby");
    let report = notify_master(p, &shared);
    assert_eq!(report["found"], 3, "{report}");
    assert_eq!(report["restored"], 3, "{report}");
    assert_eq!(ha_status(p)["role"], "active");
    calls.wait_ok(
        "callers hung up through the new node",
        "callees got the BYEs",
    );
    let cdrs = b.wait_cdrs(3, Duration::from_secs(10));
    assert_eq!(cdrs.len(), 3, "{cdrs:?}");
    assert_survivors(&cdrs, "caller");
    assert!(
        redis.keys("portcullis:call:*").is_empty(),
        "ended calls left Redis"
    );
    assert_eq!(redis.keys("portcullis:ended:*").len(), 3, "tombstones");
    let metrics = get(p, "/metrics");
    assert!(
        metrics.contains("portcullis_ha_restored_calls_total{result=\"ok\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("portcullis_ha_active 1"), "{metrics}");

    // A comes back as the standby: its journal held the three calls open, but the pair
    // carried them on, so no restart record here.
    let (a_cfg, _) = second_node_config(p, redis.port, &shared, "standby", "b");
    let a = start_node(dir_a, &a_cfg);
    assert!(a.log().contains("carried on by the pair"), "{}", a.log());
    assert!(a.cdrs().is_empty(), "no restart record: {:?}", a.cdrs());
    let dir_a = kill9(a);

    // Phase 2 (fail back): two calls through B; the callee hangs up after 15 s.
    let mut calls = Calls::start(
        p,
        &[
            "-sf",
            &scenario("uas_callee_bye_d.xml"),
            "-d",
            "15000",
            "-m",
            "2",
        ],
        &[
            "-sf",
            &scenario("uac_wait_bye.xml"),
            "-m",
            "2",
            "-l",
            "2",
            "-r",
            "10",
            &target,
        ],
    );
    assert!(
        calls_in_redis(&redis, 2, Duration::from_secs(10)),
        "two answered calls replicated"
    );
    let dir_b = kill9(b);
    let a = start_node(dir_a, &node_config(p, redis.port, &shared, "standby", "b"));
    let report = notify_master(p, &shared);
    assert_eq!(report["restored"], 2, "{report}");
    // The callees end these calls: wait for them first.
    calls
        .uas
        .wait_ok(Duration::from_secs(60), "callees hung up through node A");
    calls
        .uac
        .wait_ok(Duration::from_secs(30), "callers got the BYEs");
    let cdrs = a.wait_cdrs(2, Duration::from_secs(10));
    assert_eq!(cdrs.len(), 2, "{cdrs:?}");
    assert_survivors(&cdrs, "callee");
    // B comes back: its three records of phase 1 and nothing more.
    let (b_cfg, _) = second_node_config(p, redis.port, &shared, "standby", "a");
    let b = start_node(dir_b, &b_cfg);
    assert_eq!(b.cdrs().len(), 3, "no restart record: {:?}", b.cdrs());
    drop(a);
    drop(b);
}

fn scenario(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn redis_down_calls_go_on_degraded_then_resync() {
    let _lock = serial();
    let p = Ports::for_test(116);
    let redis = Redis::start(p.right2 + 5);
    let port = redis.port;
    let shared = Shared::new();
    let a = start_fresh(p, port, &shared, "active", "b");
    let target = sip_target(p);
    // Two calls 5 s apart, each up 20 s.
    let calls = Calls::start(
        p,
        &["-sn", "uas", "-m", "2"],
        &[
            "-sn", "uac", "-d", "20000", "-m", "2", "-r", "1", "-rp", "5000", &target,
        ],
    );
    assert!(calls_in_redis(&redis, 1, Duration::from_secs(10)));
    let redis_dir = redis.kill();
    // The second call is set up while Redis is down.
    assert!(
        wait_for(Duration::from_secs(15), || ha_status(p)["degraded"] == true),
        "degraded: {}",
        ha_status(p)
    );
    assert!(get(p, "/metrics").contains("portcullis_ha_degraded 1"));
    assert!(
        wait_for(Duration::from_secs(10), || get(p, "/api/v1/calls")
            .matches("\"id\"")
            .count()
            == 2),
        "both calls up without Redis: {}",
        get(p, "/api/v1/calls")
    );
    // Redis back, empty: every live call is written again.
    let redis = Redis::start_in(port, redis_dir);
    assert!(
        calls_in_redis(&redis, 2, Duration::from_secs(15)),
        "resync after Redis came back: {:?}",
        redis.keys("*")
    );
    assert_eq!(ha_status(p)["degraded"], false);
    calls.wait_ok("both calls completed", "callee side completed");
    let cdrs = a.wait_cdrs(2, Duration::from_secs(10));
    assert_eq!(cdrs.len(), 2);
    assert!(cdrs.iter().all(|c| c.get("takeover").is_none()), "{cdrs:?}");
    assert!(
        calls_in_redis(&redis, 0, Duration::from_secs(5)),
        "ended calls left Redis"
    );
}

#[test]
fn notify_script_is_shellcheck_clean_and_acts_only_on_master() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/portcullis-ha-notify");
    let out = Command::new("shellcheck")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("shellcheck is required (apt-get install shellcheck): {e}"));
    assert!(
        out.status.success(),
        "shellcheck: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // BACKUP, FAULT, STOP: nothing to do, nothing contacted (no admin listens there).
    for state in ["BACKUP", "FAULT", "STOP"] {
        let st = Command::new("sh")
            .arg(&script)
            .args(["INSTANCE", "VI_PORTCULLIS", state, "100"])
            .env("PORTCULLIS_ADMIN", "http://127.0.0.1:9")
            .status()
            .expect("notify script");
        assert!(st.success(), "{state}");
    }
    // MASTER with no appliance answering: fails after its tries.
    let out = Command::new("sh")
        .arg(&script)
        .args(["INSTANCE", "VI_PORTCULLIS", "MASTER", "100"])
        .env("PORTCULLIS_ADMIN", "http://127.0.0.1:9")
        .env("PORTCULLIS_TAKEOVER_TRIES", "2")
        .output()
        .expect("notify script");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("takeover failed after 2 tries"));
}

#[test]
fn redis_over_tls_with_a_password_holds_only_sealed_records() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let _lock = serial();
    let p = Ports::for_test(117);
    let certs = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // OpenSSL (redis-server, redis-cli) wants a named CA allowed to sign.
    ca.distinguished_name
        .push(DnType::CommonName, "portcullis drill CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .unwrap();
    let chain = certs.path().join("chain.pem");
    let key = certs.path().join("leaf.key");
    let roots = certs.path().join("ca.pem");
    std::fs::write(&chain, format!("{}{}", leaf.pem(), ca_cert.pem())).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    std::fs::write(&roots, ca_cert.pem()).unwrap();
    let redis = Redis::start_tls(
        p.right2 + 5,
        &chain.display().to_string(),
        &key.display().to_string(),
        &roots,
    );
    let shared = Shared::new();
    let toml = node_config(p, redis.port, &shared, "active", "b")
        .replace("redis_url = \"redis://", "redis_url = \"rediss://")
        .replace(
            "key_file = ",
            &format!("redis_ca_file = \"{}\"\nkey_file = ", roots.display()),
        );
    let a = start_node(tempfile::tempdir().unwrap(), &toml);
    let calls = Calls::start(
        p,
        &["-sn", "uas", "-m", "1"],
        &["-sn", "uac", "-d", "4000", "-m", "1", &sip_target(p)],
    );
    assert!(
        calls_in_redis(&redis, 1, Duration::from_secs(10)),
        "the call replicated over TLS: {}\n{}",
        redis.cli(&["PING"]),
        a.log()
    );
    let k = redis.keys("portcullis:call:*").remove(0);
    let sealed = redis.cli(&["HGET", &k, "s"]);
    for clear in ["m=audio", "PCMU", "INVITE", "sipp"] {
        assert!(!sealed.contains(clear), "{clear} in clear in Redis");
    }
    assert_eq!(ha_status(p)["degraded"], false);
    calls.wait_ok("call completed", "callee side completed");
    assert!(calls_in_redis(&redis, 0, Duration::from_secs(5)));
    assert_eq!(a.wait_cdrs(1, Duration::from_secs(5)).len(), 1);
}

/// The appliance's ports of the `m=audio` and `m=video` lines of the first message
/// starting with `start` in the sipp message trace of scenario `prefix` in `dir`.
fn av_ports(dir: &Path, prefix: &str, start: &str) -> [u16; 2] {
    let find = || -> Option<[u16; 2]> {
        let log = std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix) && n.ends_with("_messages.log"))
            })?;
        let text = std::fs::read_to_string(log).ok()?;
        let rest = &text[text.find(start)?..];
        let port = |line: &str| -> Option<u16> {
            let at = rest.find(line)? + line.len();
            rest[at..].split_whitespace().next()?.parse().ok()
        };
        Some([port("m=audio ")?, port("m=video ")?])
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(p) = find() {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "no {start:?} with SDP in {prefix} trace"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The test's media sockets of an audio+video call: caller audio, caller video, callee
/// audio, callee video.
struct AvPeers {
    socks: [std::net::UdpSocket; 4],
}

impl AvPeers {
    fn new() -> Self {
        let s = || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.set_nonblocking(true).expect("nonblocking");
            s
        };
        Self {
            socks: [s(), s(), s(), s()],
        }
    }

    fn port(&self, i: usize) -> u16 {
        self.socks[i].local_addr().expect("addr").port()
    }

    /// Sends an RTP packet every 20 ms from each socket to the appliance's port facing
    /// it (`targets`, in socket order: caller audio, caller video, callee audio,
    /// callee video) for `within`; returns how many packets each socket received of
    /// its own stream (audio on the audio sockets, video on the video ones), from the
    /// appliance's port facing it.
    fn exchange(&self, targets: [u16; 4], within: Duration) -> [u64; 4] {
        let mut got = [0u64; 4];
        let mut seq = 0u16;
        let mut buf = [0u8; 2048];
        let end = Instant::now() + within;
        while Instant::now() < end {
            seq = seq.wrapping_add(1);
            for (i, s) in self.socks.iter().enumerate() {
                let video = i % 2 == 1;
                let mut pkt = vec![0x80, if video { 96 } else { 0 }];
                pkt.extend_from_slice(&seq.to_be_bytes());
                pkt.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
                pkt.extend_from_slice(&(0x5100_0000u32 + i as u32).to_be_bytes());
                pkt.extend_from_slice(&[u8::from(video); 160]);
                let _ = s.send_to(&pkt, ("127.0.0.1", targets[i]));
            }
            std::thread::sleep(Duration::from_millis(20));
            for (i, s) in self.socks.iter().enumerate() {
                while let Ok((n, from)) = s.recv_from(&mut buf) {
                    let video = i % 2 == 1;
                    if n > 12 && buf[12] == u8::from(video) && from.port() == targets[i] {
                        got[i] += 1;
                    }
                }
            }
        }
        got
    }
}

/// An audio+video call (two anchored streams) answered through node A; A is killed
/// (`kill -9`), B starts as the standby and arms both streams ahead from Redis (they
/// flow through B before the takeover order), B takes over through the notify script,
/// and both streams go on flowing both ways through B on the same ports; the caller's BYE ends the call with one CDR,
/// marked with the takeover. Ports: `Ports::for_test(118)`, Redis on `right2 + 5`.
#[test]
fn both_streams_of_an_audio_video_call_flow_after_takeover() {
    let _lock = serial();
    let p = Ports::for_test(118);
    let redis = Redis::start(p.right2 + 5);
    let shared = Shared::new();
    let a = start_fresh(p, redis.port, &shared, "active", "b");
    let dir = tempfile::tempdir().unwrap();
    let peers = AvPeers::new();
    let keys = |audio: u16, video: u16| {
        [
            "-key".to_owned(),
            "rtp_port".to_owned(),
            audio.to_string(),
            "-key".to_owned(),
            "video_port".to_owned(),
            video.to_string(),
            "-trace_msg".to_owned(),
        ]
    };
    let uas_sf = sipp_harness::scenario(dir.path(), "uas_av_media.xml");
    let mut uas_args = vec![
        "-sf".to_owned(),
        uas_sf.display().to_string(),
        "-m".into(),
        "1".into(),
    ];
    uas_args.extend(keys(peers.port(2), peers.port(3)));
    let uas_args: Vec<&str> = uas_args.iter().map(String::as_str).collect();
    let uac_sf = sipp_harness::scenario(dir.path(), "uac_av_media.xml");
    let mut uac_args = vec![
        "-sf".to_owned(),
        uac_sf.display().to_string(),
        "-m".into(),
        "1".into(),
        "-d".into(),
        "25000".into(),
        sip_target(p),
    ];
    uac_args.extend(keys(peers.port(0), peers.port(1)));
    let uac_args: Vec<&str> = uac_args.iter().map(String::as_str).collect();
    let sipps = Calls::start_in(dir, p, &uas_args, &uac_args);
    let b_ports = av_ports(sipps.dir.path(), "uas_av_media", "INVITE sip:");
    let a_ports = av_ports(sipps.dir.path(), "uac_av_media", "SIP/2.0 200 OK");
    let targets = [a_ports[0], a_ports[1], b_ports[0], b_ports[1]];
    assert!(
        calls_in_redis(&redis, 1, Duration::from_secs(10)),
        "the call replicated"
    );
    let before = peers.exchange(targets, Duration::from_millis(1500));
    assert!(
        before.iter().all(|&n| n > 0),
        "both streams flow both ways through A: {before:?}"
    );

    let _dir_a = kill9(a);
    let b = start_fresh(p, redis.port, &shared, "standby", "a");
    // The standby armed both streams ahead from Redis: media flows through it before
    // the takeover order (here, where it shares the loopback, as soon as it is up).
    assert!(
        wait_for(Duration::from_secs(10), || ha_status(p)["prearmed"] == 2),
        "both streams armed ahead: {}",
        ha_status(p)
    );
    let ahead = peers.exchange(targets, Duration::from_millis(1500));
    assert!(
        ahead.iter().all(|&n| n > 0),
        "both streams relayed by the standby before the takeover: {ahead:?}"
    );
    let report = notify_master(p, &shared);
    assert_eq!(report["restored"], 1, "{report}");
    assert_eq!(ha_status(p)["prearmed"], 0, "adopted by the takeover");
    // Every stream on its ports: the peers send where they always sent.
    let after = peers.exchange(targets, Duration::from_secs(2));
    assert!(
        after.iter().all(|&n| n >= 10),
        "audio and video both ways through B after the takeover \
         (caller audio, caller video, callee audio, callee video): {after:?}\n{}",
        b.log()
    );
    let calls = get(p, "/api/v1/calls");
    assert_eq!(calls.matches("\"id\"").count(), 1, "{calls}");
    sipps.wait_ok("the caller hung up through B", "the callee got the BYE");
    let cdrs = b.wait_cdrs(1, Duration::from_secs(10));
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_survivors(&cdrs, "caller");
}

/// The warm standby follows the active node: a standby (its media sockets on another
/// loopback address, the same port range) arms the pair of the call A carries; killed
/// (`kill -9`) and restarted, it catches up and arms it again; when the call ends on A,
/// the standby releases the pair. One CDR, on A. Ports: `Ports::for_test(118)` (this
/// file's tests hold the sipp lock one at a time).
#[test]
fn a_standby_keeps_the_calls_armed_catches_up_after_a_restart_and_lets_ended_ones_go() {
    let _lock = serial();
    let p = Ports::for_test(118);
    let redis = Redis::start(p.right2 + 5);
    let shared = Shared::new();
    let a = start_fresh(p, redis.port, &shared, "active", "b");
    let (b_cfg, q) = moved_listeners(&node_config(p, redis.port, &shared, "standby", "a"), p);
    let b_cfg = b_cfg.replace("bind_ip = \"127.0.0.1\"", "bind_ip = \"127.0.0.2\"");
    let b = start_node(tempfile::tempdir().unwrap(), &b_cfg);
    let calls = Calls::start(
        p,
        &["-sn", "uas", "-m", "1"],
        &["-sn", "uac", "-d", "12000", "-m", "1", &sip_target(p)],
    );
    assert!(
        wait_for(Duration::from_secs(10), || ha_status(q)["prearmed"] == 1),
        "the standby armed the call's pair: {}",
        ha_status(q)
    );
    let dir_b = kill9(b);
    let b = start_node(dir_b, &b_cfg);
    assert!(
        wait_for(Duration::from_secs(10), || ha_status(q)["prearmed"] == 1),
        "the restarted standby caught up: {}",
        ha_status(q)
    );
    calls.wait_ok("the caller hung up through A", "the callee got the BYE");
    assert!(
        wait_for(Duration::from_secs(10), || ha_status(q)["prearmed"] == 0),
        "the ended call's pair released on the standby: {}",
        ha_status(q)
    );
    assert_eq!(a.wait_cdrs(1, Duration::from_secs(10)).len(), 1);
    assert!(b.cdrs().is_empty(), "{:?}", b.cdrs());
    assert_eq!(ha_status(q)["role"], "standby");
}

//! Redis side of the pair: the connection (password from a file, TLS with the
//! configured CA), the writer task fed by a bounded queue, the loader a takeover
//! reads every live call with, and the check the CDR journal recovery asks.
//!
//! Keys (all under `[ha] key_prefix`): `call:<key>` a hash of `v` (the record's
//! version) and `s` (the sealed record), expiring `[ha] state_ttl` after its last
//! write or refresh; `ended:<key>` a tombstone left for a day when the call ends,
//! which the journal recovery of a node coming back consults and which stops a late
//! write from bringing the call back. A write only lands when its version is above
//! the stored one (a script, atomic in Redis): a node that took the call over writes
//! with a higher epoch than the node it took it from.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::IntoConnectionInfo;
use tokio::sync::mpsc;

use super::{HaRecord, HaShared};

/// Writes taken from the queue per pipelined batch.
pub const BATCH: usize = 256;

/// How long the tombstone of an ended call stays.
pub const TOMBSTONE: Duration = Duration::from_secs(86_400);

/// Keys read per SCAN page by the loader.
const SCAN_COUNT: usize = 1_000;

/// Back-off between reconnection attempts while Redis is unreachable.
const RETRY: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// CAS write: `KEYS[1]` the call, `KEYS[2]` its tombstone; `ARGV` version, sealed
/// record, TTL (ms). Returns 1 when written.
const PUT: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 's', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// One write for the writer task.
#[derive(Debug)]
pub enum Write {
    /// Store a call's record at `version`.
    Put {
        key: String,
        version: u64,
        record: Box<HaRecord>,
    },
    /// The call ended: remove it, leave its tombstone.
    Ended { key: String },
    /// Push the expiry of these live calls back.
    Touch { keys: Vec<String> },
}

/// `prefix` + `call:` + key.
pub fn call_key(prefix: &str, key: &str) -> String {
    format!("{prefix}call:{key}")
}

/// `prefix` + `ended:` + key.
pub fn ended_key(prefix: &str, key: &str) -> String {
    format!("{prefix}ended:{key}")
}

/// Opens a connection to the configured Redis (bounded by `[ha] redis_timeout`).
///
/// # Errors
/// Bad URL, unreadable password or CA file, Redis unreachable, refused AUTH.
pub async fn connect(shared: &HaShared) -> Result<MultiplexedConnection, String> {
    let cfg = &shared.cfg;
    let mut info = cfg
        .redis_url
        .as_str()
        .into_connection_info()
        .map_err(|e| format!("ha.redis_url: {e}"))?;
    if let Some(p) = &cfg.redis_password_file {
        let pw = std::fs::read_to_string(p)
            .map_err(|e| format!("ha.redis_password_file {}: {e}", p.display()))?;
        info.redis.password = Some(pw.trim().to_owned());
    }
    let client = match &cfg.redis_ca_file {
        Some(ca) => {
            let pem =
                std::fs::read(ca).map_err(|e| format!("ha.redis_ca_file {}: {e}", ca.display()))?;
            redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
        }
        None => redis::Client::open(info),
    }
    .map_err(|e| format!("redis: {e}"))?;
    match tokio::time::timeout(
        cfg.redis_timeout.max(Duration::from_millis(500)),
        client.get_multiplexed_async_connection(),
    )
    .await
    {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("redis: {e}")),
        Err(_) => Err("redis: connection timed out".into()),
    }
}

/// The writer task: takes batches of up to [`BATCH`] writes off the queue and sends
/// each as one pipeline; while Redis fails it keeps the batch, marks the pair
/// degraded and retries with back-off (the queue then fills and the engine counts
/// what it could not queue, to write it again later). Ends when the queue closes.
pub async fn writer(shared: Arc<HaShared>, mut rx: mpsc::Receiver<Write>) {
    let mut con: Option<MultiplexedConnection> = None;
    let mut backoff = RETRY.0;
    let mut batch: Vec<Write> = Vec::with_capacity(BATCH);
    loop {
        if batch.is_empty() {
            let Some(first) = rx.recv().await else { return };
            batch.push(first);
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(w) => batch.push(w),
                    Err(_) => break,
                }
            }
        }
        if con.is_none() {
            match connect(&shared).await {
                Ok(c) => con = Some(c),
                Err(e) => {
                    shared.failed(&e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY.1);
                    continue;
                }
            }
        }
        let Some(c) = con.as_mut() else { continue };
        match send(&shared, c, &batch).await {
            Ok(()) => {
                backoff = RETRY.0;
                shared.succeeded();
                batch.clear();
            }
            Err(e) => {
                shared.failed(&e);
                con = None;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY.1);
            }
        }
    }
}

/// One batch as one pipeline.
async fn send(
    shared: &HaShared,
    con: &mut MultiplexedConnection,
    batch: &[Write],
) -> Result<(), String> {
    let cfg = &shared.cfg;
    let ttl_ms = u64::try_from(cfg.state_ttl.as_millis()).unwrap_or(u64::MAX);
    let tomb_ms = u64::try_from(TOMBSTONE.as_millis()).unwrap_or(u64::MAX);
    let mut pipe = redis::pipe();
    let (mut puts, mut ends) = (0u64, 0u64);
    for w in batch {
        match w {
            Write::Put {
                key,
                version,
                record,
            } => {
                let rk = call_key(&cfg.key_prefix, key);
                let json = serde_json::to_vec(record).map_err(|e| e.to_string())?;
                let sealed = shared
                    .sealer
                    .seal(rk.as_bytes(), &json)
                    .map_err(|e| e.to_string())?;
                pipe.cmd("EVAL")
                    .arg(PUT)
                    .arg(2)
                    .arg(&rk)
                    .arg(ended_key(&cfg.key_prefix, key))
                    .arg(*version)
                    .arg(sealed)
                    .arg(ttl_ms)
                    .ignore();
                puts += 1;
            }
            Write::Ended { key } => {
                // The tombstone first: a node asking whether the pair knows the call
                // (`known`) between the two never finds neither.
                pipe.cmd("SET")
                    .arg(ended_key(&cfg.key_prefix, key))
                    .arg(1)
                    .arg("PX")
                    .arg(tomb_ms)
                    .ignore();
                pipe.cmd("DEL").arg(call_key(&cfg.key_prefix, key)).ignore();
                ends += 1;
            }
            Write::Touch { keys } => {
                for k in keys {
                    pipe.cmd("PEXPIRE")
                        .arg(call_key(&cfg.key_prefix, k))
                        .arg(ttl_ms)
                        .ignore();
                }
            }
        }
    }
    let r: Result<redis::RedisResult<()>, _> =
        tokio::time::timeout(cfg.redis_timeout, pipe.query_async(con)).await;
    match r {
        Ok(Ok(())) => {
            let c = &shared.counters;
            c.writes.fetch_add(puts, Ordering::Relaxed);
            c.ended.fetch_add(ends, Ordering::Relaxed);
            Ok(())
        }
        Ok(Err(e)) => Err(format!("redis: {e}")),
        Err(_) => Err("redis: write timed out".into()),
    }
}

/// Every live call stored under the prefix, opened and parsed. Records that do not
/// open (another key) or parse are counted and skipped. Records the standby already
/// holds at the same version ([`refresh`]) are not read again; its copy is emptied
/// (the caller takes the calls over).
///
/// # Errors
/// Redis unreachable or failing.
pub async fn load_all(shared: &HaShared) -> Result<Vec<(String, HaRecord)>, String> {
    let mut con = connect(shared).await?;
    refresh(shared, &mut con).await?;
    // The node is active from here on: the copy is handed over, not kept.
    let cache = std::mem::take(&mut *shared.warm.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(cache.into_iter().map(|(k, (_, r))| (k, r)).collect())
}

/// What changed in Redis since the last refresh: the records written since (opened and
/// parsed) and the keys gone.
#[derive(Debug, Default)]
pub struct Changes {
    pub put: Vec<(String, HaRecord)>,
    pub gone: Vec<String>,
}

/// Brings the standby's copy of the live calls (`HaShared::warm`) up to Redis: the
/// versions of every key (SCAN, pipelined reads), then only the records whose version
/// moved are read and opened. Returns what changed.
///
/// # Errors
/// Redis unreachable or failing.
pub async fn refresh(
    shared: &HaShared,
    con: &mut MultiplexedConnection,
) -> Result<Changes, String> {
    let prefix = format!("{}call:", shared.cfg.key_prefix);
    let pattern = format!("{prefix}*");
    let timeout = shared.cfg.redis_timeout * 4;
    let mut cursor = 0u64;
    let mut versions: HashMap<String, u64> = HashMap::new();
    loop {
        let (next, keys): (u64, Vec<String>) = query(
            timeout,
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(con),
        )
        .await?;
        if !keys.is_empty() {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("HGET").arg(k).arg("v");
            }
            let vals: Vec<Option<u64>> = query(timeout, pipe.query_async(con)).await?;
            for (k, v) in keys.into_iter().zip(vals) {
                if let Some(v) = v {
                    versions.insert(k.trim_start_matches(&prefix).to_owned(), v);
                }
            }
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let (stale, gone): (Vec<String>, Vec<String>) = {
        let cache = shared.warm.lock().unwrap_or_else(PoisonError::into_inner);
        let stale = versions
            .iter()
            .filter(|(k, v)| cache.get(*k).is_none_or(|(have, _)| have != *v))
            .map(|(k, _)| k.clone())
            .collect();
        let gone = cache
            .keys()
            .filter(|k| !versions.contains_key(*k))
            .cloned()
            .collect();
        (stale, gone)
    };
    let mut changes = Changes {
        gone,
        ..Changes::default()
    };
    let mut fresh = Vec::new();
    for chunk in stale.chunks(SCAN_COUNT) {
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.cmd("HMGET")
                .arg(call_key(&shared.cfg.key_prefix, k))
                .arg("v")
                .arg("s");
        }
        let vals: Vec<(Option<u64>, Option<Vec<u8>>)> =
            query(timeout, pipe.query_async(con)).await?;
        for (k, (v, sealed)) in chunk.iter().zip(vals) {
            let (Some(v), Some(sealed)) = (v, sealed) else {
                continue; // ended since the SCAN
            };
            let rk = call_key(&shared.cfg.key_prefix, k);
            let rec = shared
                .sealer
                .open(rk.as_bytes(), &sealed)
                .ok()
                .and_then(|plain| serde_json::from_slice::<HaRecord>(&plain).ok());
            match rec {
                Some(r) => fresh.push((k.clone(), v, r)),
                None => {
                    shared.counters.bad_records.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(key = %rk, "HA record does not open or parse: skipped");
                }
            }
        }
    }
    let mut cache = shared.warm.lock().unwrap_or_else(PoisonError::into_inner);
    for k in &changes.gone {
        cache.remove(k);
    }
    for (k, v, r) in fresh {
        changes.put.push((k.clone(), r.clone()));
        cache.insert(k, (v, r));
    }
    Ok(changes)
}

/// `fut` bounded by `timeout`, its error as text.
async fn query<T>(
    timeout: Duration,
    fut: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| "redis: timed out".to_owned())?
        .map_err(|e| format!("redis: {e}"))
}

/// Of `keys`, those Redis still holds as live or ended calls (the CDR of such a call
/// is or will be written by the node that carried it on).
///
/// # Errors
/// Redis unreachable or failing.
pub async fn known(shared: &HaShared, keys: &[String]) -> Result<HashSet<String>, String> {
    let mut out = HashSet::new();
    if keys.is_empty() {
        return Ok(out);
    }
    let mut con = connect(shared).await?;
    let p = &shared.cfg.key_prefix;
    for chunk in keys.chunks(SCAN_COUNT) {
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.cmd("EXISTS").arg(call_key(p, k)).arg(ended_key(p, k));
        }
        let n: Vec<u64> =
            tokio::time::timeout(shared.cfg.redis_timeout * 4, pipe.query_async(&mut con))
                .await
                .map_err(|_| "redis: timed out".to_owned())?
                .map_err(|e| format!("redis: {e}"))?;
        for (k, n) in chunk.iter().zip(n) {
            if n > 0 {
                out.insert(k.clone());
            }
        }
    }
    Ok(out)
}

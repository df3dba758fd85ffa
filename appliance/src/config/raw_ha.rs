//! The serde layer of `[ha]` (an active/standby pair), checked by `super::check_ha`.

use serde::Deserialize;

/// The role a node starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawHaRole {
    /// Carries calls and replicates them to Redis.
    Active,
    /// Waits for the takeover order (keepalived's notify script).
    Standby,
}

/// `[ha]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHa {
    /// Role at start.
    pub role: RawHaRole,
    /// The other node of the pair (name or address; shown in status).
    pub peer: String,
    /// `redis://host:port/db` or `rediss://` (TLS).
    pub redis_url: String,
    /// File holding the Redis password (AUTH), instead of one in the URL.
    pub redis_password_file: Option<String>,
    /// PEM file of the CA that signs the Redis server's certificate (`rediss://`).
    pub redis_ca_file: Option<String>,
    /// File holding the pair's shared 32-byte key (64 hex digits) sealing call state.
    pub key_file: String,
    /// Prefix of every Redis key this pair writes.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Writes queued for the Redis writer at most.
    #[serde(default = "default_queue")]
    pub queue: u32,
    /// A call's state expires from Redis this long after its last write (or refresh).
    #[serde(default = "default_state_ttl")]
    pub state_ttl: String,
    /// How often calls with SRTP legs are written again (their SRTP indexes).
    #[serde(default = "default_media_refresh")]
    pub media_refresh: String,
    /// A Redis command (a pipelined batch) taking longer is an error.
    #[serde(default = "default_redis_timeout")]
    pub redis_timeout: String,
}

fn default_key_prefix() -> String {
    "portcullis:".into()
}
fn default_queue() -> u32 {
    20_000
}
fn default_state_ttl() -> String {
    "2h".into()
}
fn default_media_refresh() -> String {
    "10s".into()
}
fn default_redis_timeout() -> String {
    "1s".into()
}

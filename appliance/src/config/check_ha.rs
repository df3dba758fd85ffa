//! Semantic checks of `[ha]`: the Redis URL parses, the files are named, the bounds hold.

use std::time::Duration;

use super::checker::Checker;
use super::model::{HaConfig, HaRole};
use super::raw_ha::{RawHa, RawHaRole};

/// `[ha] queue` bounds.
pub const HA_QUEUE_BOUNDS: (u32, u32) = (16, 1_000_000);

/// `[ha]` checked; `Some(None)` without the section, `None` after an error.
pub(super) fn ha(raw: Option<&RawHa>, c: &mut Checker<'_>) -> Option<Option<HaConfig>> {
    let Some(h) = raw else {
        return Some(None);
    };
    let mut ok = true;
    if h.peer.is_empty() || h.peer.len() > 255 || !h.peer.bytes().all(|b| b.is_ascii_graphic()) {
        c.err(
            "ha.peer",
            "must name the other node (1 to 255 printable characters)",
        );
        ok = false;
    }
    let url_ok = redis::parse_redis_url(&h.redis_url).is_some_and(|u| {
        matches!(u.scheme(), "redis" | "rediss") && u.host_str().is_some_and(|h| !h.is_empty())
    });
    if !url_ok {
        c.err(
            "ha.redis_url",
            "must be redis://host[:port][/db] or rediss://host[:port][/db]",
        );
        ok = false;
    }
    if h.redis_ca_file.is_some() && !h.redis_url.starts_with("rediss://") {
        c.err("ha.redis_ca_file", "only with a rediss:// (TLS) URL");
        ok = false;
    }
    if h.key_file.is_empty() {
        c.err("ha.key_file", "the file name is empty");
        ok = false;
    }
    if h.key_prefix.is_empty()
        || h.key_prefix.len() > 64
        || !h.key_prefix.bytes().all(|b| b.is_ascii_graphic())
    {
        c.err("ha.key_prefix", "must be 1 to 64 printable characters");
        ok = false;
    }
    let (lo, hi) = HA_QUEUE_BOUNDS;
    if !(lo..=hi).contains(&h.queue) {
        c.err("ha.queue", format!("must be between {lo} and {hi} writes"));
        ok = false;
    }
    let ttl = c.duration("ha.state_ttl", &h.state_ttl, Duration::from_secs(60));
    let refresh = c.duration("ha.media_refresh", &h.media_refresh, Duration::from_secs(1));
    let timeout = c.duration(
        "ha.redis_timeout",
        &h.redis_timeout,
        Duration::from_millis(10),
    );
    let (ttl, refresh, timeout) = (ttl?, refresh?, timeout?);
    if refresh >= ttl {
        c.err("ha.media_refresh", "must be shorter than ha.state_ttl");
        ok = false;
    }
    ok.then_some(())?;
    Some(Some(HaConfig {
        role: match h.role {
            RawHaRole::Active => HaRole::Active,
            RawHaRole::Standby => HaRole::Standby,
        },
        peer: h.peer.clone(),
        redis_url: h.redis_url.clone(),
        redis_password_file: h.redis_password_file.as_deref().map(|p| c.resolve_path(p)),
        redis_ca_file: h.redis_ca_file.as_deref().map(|p| c.resolve_path(p)),
        key_file: c.resolve_path(&h.key_file),
        key_prefix: h.key_prefix.clone(),
        queue: usize::try_from(h.queue).ok()?,
        state_ttl: ttl,
        media_refresh: refresh,
        redis_timeout: timeout,
    }))
}

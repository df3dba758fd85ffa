//! Checks of `[otel]`: raw strings → [`OtelConfig`].

use std::time::Duration;

use super::checker::Checker;
use super::model::OtelConfig;
use super::raw::RawConfig;

/// Bounds of `otel.queue_spans`.
pub const OTEL_QUEUE_BOUNDS: (u32, u32) = (64, 1 << 20);
/// Bounds of `otel.timeout`.
pub const OTEL_TIMEOUT_BOUNDS: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(60));
/// The OTLP/HTTP path of traces under the collector's base URL.
pub const OTLP_TRACES_PATH: &str = "/v1/traces";

pub(super) fn otel(raw: &RawConfig, c: &mut Checker<'_>) -> Option<Option<OtelConfig>> {
    let Some(o) = &raw.otel else {
        return Some(None);
    };
    let endpoint = traces_url(&o.endpoint).map_err(|e| c.err("otel.endpoint", e));
    let mut ok = true;
    let name = &o.service_name;
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        c.err(
            "otel.service_name",
            format!("{name:?} must be 1 to 64 printable characters without spaces"),
        );
        ok = false;
    }
    if !(0.0..=1.0).contains(&o.sample_ratio) {
        c.err("otel.sample_ratio", "must be between 0 and 1");
        ok = false;
    }
    let (lo, hi) = OTEL_QUEUE_BOUNDS;
    if !(lo..=hi).contains(&o.queue_spans) {
        c.err(
            "otel.queue_spans",
            format!("must be between {lo} and {hi} spans"),
        );
        ok = false;
    }
    let (min, max) = OTEL_TIMEOUT_BOUNDS;
    let timeout = c.duration("otel.timeout", &o.timeout, min);
    if timeout.is_some_and(|t| t > max) {
        c.err("otel.timeout", format!("must be at most {max:?}"));
        ok = false;
    }
    let (endpoint, timeout) = (endpoint.ok()?, timeout?);
    ok.then_some(())?;
    Some(Some(OtelConfig {
        traces_url: endpoint,
        service_name: name.clone(),
        sample_ratio: o.sample_ratio,
        queue_spans: usize::try_from(o.queue_spans).ok()?,
        timeout,
    }))
}

/// The traces URL of a collector base URL: `http(s)://host[:port][/prefix]` +
/// [`OTLP_TRACES_PATH`]. Credentials, queries and fragments are refused (a secret in
/// the URL would end up in logs; authentication headers come from the environment).
fn traces_url(base: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(base)
        .map_err(|e| format!("{base:?} is not a URL like http://127.0.0.1:4318 ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{base:?}: the scheme must be http or https (OTLP/HTTP)"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{base:?} names no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{base:?} holds credentials: give them in OTEL_EXPORTER_OTLP_HEADERS instead"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{base:?}: a query or fragment is not allowed"));
    }
    let path = url.path().trim_end_matches('/');
    let mut out = url.clone();
    out.set_path(&format!("{path}{OTLP_TRACES_PATH}"));
    Ok(out.to_string())
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn traces_url_appends_the_otlp_path() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").as_deref(),
            Ok("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(
            traces_url("https://collector.example.com/otlp/").as_deref(),
            Ok("https://collector.example.com/otlp/v1/traces")
        );
        assert_eq!(
            traces_url("http://[::1]:4318/").as_deref(),
            Ok("http://[::1]:4318/v1/traces")
        );
        for bad in [
            "127.0.0.1:4318",
            "grpc://127.0.0.1:4317",
            "http://user:pw@127.0.0.1:4318",
            "http://127.0.0.1:4318/?x=1",
            "http://127.0.0.1:4318/#f",
            "file:///tmp/x",
        ] {
            assert!(traces_url(bad).is_err(), "{bad}");
        }
    }
}

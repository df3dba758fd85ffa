//! The serde layer of `[otel]` (traces of call setup over OTLP), checked by
//! `super::check_otel`.

use serde::Deserialize;

/// `[otel]`: one trace per call, exported to an OpenTelemetry collector over OTLP/HTTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOtel {
    /// Collector base URL (`http://` or `https://`); traces go to `<endpoint>/v1/traces`.
    pub endpoint: String,
    /// `service.name` of the resource every span carries.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Share of calls traced, 0 to 1 (decided per trace id).
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
    /// Ended spans waiting for export; beyond, new spans are dropped and counted.
    #[serde(default = "default_queue_spans")]
    pub queue_spans: u32,
    /// Longest one export (with its retries) may take.
    #[serde(default = "default_timeout")]
    pub timeout: String,
}

fn default_service_name() -> String {
    "portcullis".to_owned()
}
fn default_sample_ratio() -> f64 {
    1.0
}
fn default_queue_spans() -> u32 {
    2048
}
fn default_timeout() -> String {
    "10s".to_owned()
}

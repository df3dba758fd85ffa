//! Traces of call setup (`[otel]`): the OpenTelemetry SDK's tracer and its OTLP/HTTP
//! exporter, installed once per process. The spans themselves are built by
//! `runtime::call_trace` from the engine's call events.
//!
//! - Export never blocks the engine task. Ending a span only moves it into a bounded
//!   queue (`[otel] queue_spans`); the SDK's batch processor drains it on its own thread
//!   (batches of [`EXPORT_BATCH`] spans, at least every [`EXPORT_INTERVAL`]) and posts
//!   protobuf `ExportTraceServiceRequest`s with reqwest's blocking client (its own
//!   thread; TLS by rustls with ring and the system's trust store), each export bounded
//!   by `[otel] timeout`, retries included.
//! - Every span is accounted for: exported (the collector answered 2xx), dropped because
//!   the queue was full, or dropped because its export failed (collector down, timeout,
//!   refusal). [`counts`] feeds `/metrics`. The queue bound is enforced in front of the
//!   SDK's own queue (`Gate`: a span counts as queued until its export returns), so
//!   the SDK never drops a span uncounted.
//! - Trace and span ids come from the appliance's identifier stream (`OsEntropy`, an
//!   OS-seeded CSPRNG): no other generator in the process.
//! - Export failures are logged once when they start and once when export works again.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator, Sampler, SdkTracer, SdkTracerProvider,
    Span, SpanData, SpanExporter, SpanProcessor,
};
use opentelemetry_sdk::Resource;
use portcullis_engine::entropy::Entropy;

use crate::config::OtelConfig;
use crate::entropy::OsEntropy;

/// Most spans in one export request.
pub const EXPORT_BATCH: usize = 512;
/// Longest a span waits in the queue before its batch is sent.
pub const EXPORT_INTERVAL: Duration = Duration::from_secs(1);
/// Longest [`shutdown`] waits for the last batches at exit.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);
/// Instrumentation scope of every span.
const SCOPE: &str = "portcullis";

/// Why traces cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The OS CSPRNG is unavailable for trace ids.
    #[error(transparent)]
    Entropy(#[from] crate::entropy::EntropyError),
    /// The HTTP client could not be built.
    #[error("OTLP HTTP client: {0}")]
    Client(String),
    /// The exporter refused its settings.
    #[error("OTLP exporter: {0}")]
    Exporter(String),
}

/// The spans' fates so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceCounts {
    /// Spans the collector accepted.
    pub exported: u64,
    /// Spans dropped because the export queue was full.
    pub dropped_queue_full: u64,
    /// Spans dropped because their export failed.
    pub dropped_export_failed: u64,
}

/// Counters and the queue bound, shared by [`Gate`] and [`Counting`].
#[derive(Debug)]
struct Shared {
    /// Spans handed to the SDK whose export has not returned yet.
    pending: AtomicUsize,
    /// Most `pending` spans (`[otel] queue_spans`).
    capacity: usize,
    exported: AtomicU64,
    queue_full: AtomicU64,
    export_failed: AtomicU64,
    /// The last export failed (logged once per outage).
    failing: AtomicBool,
}

impl Shared {
    fn new(capacity: usize) -> Self {
        Self {
            pending: AtomicUsize::new(0),
            capacity,
            exported: AtomicU64::new(0),
            queue_full: AtomicU64::new(0),
            export_failed: AtomicU64::new(0),
            failing: AtomicBool::new(false),
        }
    }

    fn counts(&self) -> TraceCounts {
        TraceCounts {
            exported: self.exported.load(Ordering::Relaxed),
            dropped_queue_full: self.queue_full.load(Ordering::Relaxed),
            dropped_export_failed: self.export_failed.load(Ordering::Relaxed),
        }
    }
}

/// The span processor: enforces the queue bound, then hands spans to `P` (the batch
/// processor).
#[derive(Debug)]
struct Gate<P> {
    inner: P,
    shared: Arc<Shared>,
}

impl<P: SpanProcessor> SpanProcessor for Gate<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        let s = &self.shared;
        if s.pending.fetch_add(1, Ordering::AcqRel) >= s.capacity {
            s.pending.fetch_sub(1, Ordering::AcqRel);
            s.queue_full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The exporter: `E` (OTLP/HTTP), with every batch's fate counted.
#[derive(Debug)]
struct Counting<E> {
    inner: E,
    shared: Arc<Shared>,
}

impl<E: SpanExporter> SpanExporter for Counting<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        let result = self.inner.export(batch).await;
        let s = &self.shared;
        s.pending.fetch_sub(n, Ordering::AcqRel);
        match &result {
            Ok(()) => {
                s.exported.fetch_add(n as u64, Ordering::Relaxed);
                if s.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("traces exported to the OTLP collector again");
                }
            }
            Err(e) => {
                s.export_failed.fetch_add(n as u64, Ordering::Relaxed);
                if !s.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, spans = n, "traces not exported (the OTLP collector failed); dropping them until it answers");
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Trace and span ids from the appliance's identifier stream (never all zero: W3C
/// Trace Context §3.2.2.3/4).
#[derive(Debug)]
struct OsIds(Mutex<OsEntropy>);

impl OsIds {
    fn fill(&self, out: &mut [u8]) {
        let mut e = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            e.fill_id(out);
            if out.iter().any(|b| *b != 0) {
                return;
            }
        }
    }
}

impl IdGenerator for OsIds {
    fn new_trace_id(&self) -> TraceId {
        let mut b = [0u8; 16];
        self.fill(&mut b);
        TraceId::from_bytes(b)
    }

    fn new_span_id(&self) -> SpanId {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        SpanId::from_bytes(b)
    }
}

struct Installed {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    shared: Arc<Shared>,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// A tracer provider exporting through `exporter` with the bounds of `cfg`.
fn provider<E: SpanExporter + 'static>(
    exporter: E,
    cfg: &OtelConfig,
    node: &str,
    shared: &Arc<Shared>,
) -> Result<SdkTracerProvider, TraceError> {
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(cfg.queue_spans)
        .with_max_export_batch_size(EXPORT_BATCH.min(cfg.queue_spans))
        .with_scheduled_delay(EXPORT_INTERVAL)
        .build();
    let counting = Counting {
        inner: exporter,
        shared: shared.clone(),
    };
    let gate = Gate {
        inner: BatchSpanProcessor::builder(counting)
            .with_batch_config(batch)
            .build(),
        shared: shared.clone(),
    };
    let resource = Resource::builder()
        .with_service_name(cfg.service_name.clone())
        .with_attributes([
            KeyValue::new("service.instance.id", node.to_owned()),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        ])
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(gate)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            cfg.sample_ratio,
        ))))
        .with_id_generator(OsIds(Mutex::new(OsEntropy::new()?)))
        .with_resource(resource)
        .build())
}

/// Starts the exporter of `cfg` for node `node` (the resource's
/// `service.instance.id`). Returns `false` when one was already installed (tests):
/// that one stays. Call outside any tokio runtime (reqwest's blocking client).
///
/// # Errors
/// No OS randomness, or the HTTP client or the exporter cannot be built.
pub fn start(cfg: &OtelConfig, node: &str) -> Result<bool, TraceError> {
    if INSTALLED.get().is_some() {
        return Ok(false);
    }
    // reqwest takes the process's default rustls provider: the workspace's (ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::blocking::Client::builder()
        .timeout(cfg.timeout)
        .build()
        .map_err(|e| TraceError::Client(e.to_string()))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(cfg.traces_url.clone())
        .with_timeout(cfg.timeout)
        .build()
        .map_err(|e| TraceError::Exporter(e.to_string()))?;
    let shared = Arc::new(Shared::new(cfg.queue_spans));
    let provider = provider(exporter, cfg, node, &shared)?;
    let tracer = provider.tracer(SCOPE);
    let fresh = INSTALLED
        .set(Installed {
            provider,
            tracer,
            shared,
        })
        .is_ok();
    if fresh {
        tracing::info!(
            endpoint = %cfg.traces_url,
            sample_ratio = cfg.sample_ratio,
            "call traces exported over OTLP/HTTP"
        );
    }
    Ok(fresh)
}

/// The tracer of call spans, `None` without `[otel]`.
#[must_use]
pub fn tracer() -> Option<SdkTracer> {
    INSTALLED.get().map(|i| i.tracer.clone())
}

/// The spans' fates, `None` without `[otel]`.
#[must_use]
pub fn counts() -> Option<TraceCounts> {
    INSTALLED.get().map(|i| i.shared.counts())
}

/// Exports what is queued (waiting `SHUTDOWN_WAIT` at most) and stops the exporter
/// (at exit; later spans are dropped).
pub fn shutdown() {
    if let Some(i) = INSTALLED.get() {
        if let Err(e) = i.provider.shutdown_with_timeout(SHUTDOWN_WAIT) {
            tracing::debug!(error = %e, "trace exporter shutdown");
        }
    }
}

#[cfg(test)]
#[path = "traces_tests.rs"]
mod tests;

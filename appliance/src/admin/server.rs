//! The admin HTTP server (axum): routes, bearer-token check, calls/s sampler.
//!
//! Invariants: `/health` and the dashboard's static page and assets (which carry no data)
//! never require the token; every other route does when one is configured; the token comparison takes time independent of where the
//! first mismatching byte is.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::history::History;
use super::rate::{RateWindow, RATE_WINDOW};
use super::{dashboard, metrics, AdminBackend};
use crate::logging::LogError;

/// Content type of the Prometheus text format 0.0.4.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Period of the calls/s sampler.
const SAMPLE_PERIOD: Duration = Duration::from_secs(1);

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct AdminServerConfig {
    /// Listen address (`[admin] listen`; port 0 picks one).
    pub listen: SocketAddr,
    /// Bearer token required on every route but `/health`.
    pub token: Option<String>,
}

#[derive(Debug)]
pub(super) struct Shared<B> {
    pub(super) backend: B,
    token: Option<String>,
    rate: Mutex<RateWindow>,
    history: Mutex<History>,
    /// CDR searches allowed to run at once.
    pub(super) searches: Arc<tokio::sync::Semaphore>,
}

/// CDR searches that may run at once (each reads a bounded tail of the files).
pub const CDR_SEARCHES: usize = 2;

impl<B> Shared<B> {
    /// Whether the routes but `/health` and the page want a bearer token.
    pub(super) fn token_required(&self) -> bool {
        self.token.is_some()
    }
}

pub(super) type AppState<B> = Arc<Shared<B>>;

/// A running admin server; dropping it leaves the server running, [`AdminServer::stop`] ends it.
#[derive(Debug)]
pub struct AdminServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    serve: JoinHandle<()>,
    sampler: JoinHandle<()>,
}

impl AdminServer {
    /// The bound address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, finishes in-flight requests, stops the sampler.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.sampler.abort();
        let _ = (&mut self.serve).await;
    }
}

/// Binds `cfg.listen` and serves the admin API on the current tokio runtime.
///
/// # Errors
/// The address cannot be bound.
pub async fn spawn<B: AdminBackend>(
    cfg: AdminServerConfig,
    backend: B,
) -> std::io::Result<AdminServer> {
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let local_addr = listener.local_addr()?;
    let state: AppState<B> = Arc::new(Shared {
        backend,
        token: cfg.token.filter(|t| !t.is_empty()),
        rate: Mutex::new(RateWindow::new(RATE_WINDOW, 64)),
        history: Mutex::new(History::default()),
        searches: Arc::new(tokio::sync::Semaphore::new(CDR_SEARCHES)),
    });
    let sampler = tokio::spawn(sample_loop(state.clone()));
    let app = router(state);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let serve = tokio::spawn(async move {
        let res = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                // Only an explicit stop ends the server: a dropped `AdminServer` (sender
                // gone) keeps serving for the life of the runtime.
                if stop_rx.await.is_err() {
                    std::future::pending::<()>().await;
                }
            })
            .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "admin HTTP server failed");
        }
    });
    tracing::info!(%local_addr, "admin HTTP API listening");
    Ok(AdminServer {
        local_addr,
        stop: Some(stop_tx),
        serve,
        sampler,
    })
}

async fn sample_loop<B: AdminBackend>(state: AppState<B>) {
    let mut tick = tokio::time::interval(SAMPLE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (total, active) = state.backend.call_counts().await;
        let now = Instant::now();
        lock_rate(&state).record(now, total);
        let wall_ms = state.backend.wall_ms();
        let workers = state.backend.workers().await;
        let mut h = lock_history(&state);
        h.record_calls(now, wall_ms, total, active);
        h.record_workers(now, workers);
    }
}

pub(super) fn lock_rate<B>(state: &Shared<B>) -> std::sync::MutexGuard<'_, RateWindow> {
    // Plain data: a panic elsewhere cannot leave it inconsistent.
    state.rate.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn lock_history<B>(state: &Shared<B>) -> std::sync::MutexGuard<'_, History> {
    // Plain data, as for the rate.
    state.history.lock().unwrap_or_else(PoisonError::into_inner)
}

fn router<B: AdminBackend>(state: AppState<B>) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics_handler::<B>))
        .route("/api/v1/calls", get(calls::<B>))
        .route("/api/v1/calls/:id", delete(terminate::<B>))
        .route("/api/v1/trunks", get(trunks::<B>))
        .route("/api/v1/teams", get(teams::<B>))
        .route("/api/v1/registrations", get(registrations::<B>))
        .route("/api/v1/reload", post(reload::<B>))
        .route(
            "/api/v1/log-level",
            get(log_level::<B>).put(set_log_level::<B>),
        )
        .merge(dashboard::data_routes::<B>())
        .merge(super::ha::routes::<B>())
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::<B>));
    Router::new()
        .route("/health", get(health::<B>))
        .merge(dashboard::page_routes::<B>())
        .merge(protected)
        .with_state(state)
}

/// Constant-time comparison (`subtle`): the time does not depend on where the bytes
/// differ (only the length, which is not secret, can end it early).
fn token_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a, b))
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, cred) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| cred.trim())
        })
        .is_some_and(|cred| token_eq(cred.as_bytes(), token.as_bytes()))
}

async fn auth<B: AdminBackend>(
    State(state): State<AppState<B>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.token {
        if !authorized(req.headers(), token) {
            let mut resp = (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "missing or wrong bearer token"})),
            )
                .into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portcullis\""),
            );
            return resp;
        }
    }
    next.run(req).await
}

async fn health<B: AdminBackend>(State(state): State<AppState<B>>) -> Response {
    let h = state.backend.health().await;
    let status = if h.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(h)).into_response()
}

async fn metrics_handler<B: AdminBackend>(State(state): State<AppState<B>>) -> Response {
    let snap = state.backend.metrics().await;
    let rate = lock_rate(&state).rate();
    let body = metrics::render(&snap, rate);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(METRICS_CONTENT_TYPE),
        )],
        body,
    )
        .into_response()
}

async fn calls<B: AdminBackend>(State(state): State<AppState<B>>) -> Response {
    Json(state.backend.calls().await).into_response()
}

async fn terminate<B: AdminBackend>(
    State(state): State<AppState<B>>,
    Path(id): Path<u64>,
) -> Response {
    if state.backend.terminate(id).await {
        tracing::info!(call = id, "call terminated by the admin API");
        (StatusCode::OK, Json(json!({"terminated": id}))).into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no live call {id}")})),
        )
            .into_response()
    }
}

async fn trunks<B: AdminBackend>(State(state): State<AppState<B>>) -> Response {
    Json(state.backend.trunks().await).into_response()
}

async fn registrations<B: AdminBackend>(State(state): State<AppState<B>>) -> Response {
    Json(state.backend.registrations().await).into_response()
}

async fn teams<B: AdminBackend>(State(state): State<AppState<B>>) -> Response {
    Json(state.backend.teams().await).into_response()
}

async fn reload<B: AdminBackend>(State(state): State<AppState<B>>) -> Response {
    match state.backend.reload().await {
        Ok(generation) => (StatusCode::OK, Json(json!({"generation": generation}))).into_response(),
        Err(errors) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"errors": errors})),
        )
            .into_response(),
    }
}

async fn log_level<B: AdminBackend>(State(state): State<AppState<B>>) -> Response {
    match state.backend.log_filter() {
        Some(level) => (StatusCode::OK, Json(json!({"level": level}))).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": LogError::NotInitialised.to_string()})),
        )
            .into_response(),
    }
}

/// The filter text of a `PUT /api/v1/log-level` body: `{"level": "..."}` or the bare text.
fn requested_filter(body: &str) -> Result<String, String> {
    let body = body.trim();
    if body.starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(body).map_err(|e| format!("invalid JSON body: {e}"))?;
        return v
            .get("level")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| "JSON body needs a string field \"level\"".to_owned());
    }
    Ok(body.to_owned())
}

async fn set_log_level<B: AdminBackend>(
    State(state): State<AppState<B>>,
    body: String,
) -> Response {
    let filter = match requested_filter(&body) {
        Ok(f) => f,
        Err(e) => return (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response(),
    };
    match state.backend.set_log_filter(&filter) {
        Ok(level) => (StatusCode::OK, Json(json!({"level": level}))).into_response(),
        Err(e @ (LogError::Invalid(_) | LogError::TooLong)) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
        Err(e @ (LogError::NotInitialised | LogError::Reload(_))) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_level_bodies() {
        assert_eq!(requested_filter(" debug\n"), Ok("debug".to_owned()));
        assert_eq!(
            requested_filter(r#"{"level":"info,portcullis_net=debug"}"#),
            Ok("info,portcullis_net=debug".to_owned())
        );
        assert!(requested_filter(r#"{"lvl":"debug"}"#).is_err());
        assert!(requested_filter(r#"{"level":3}"#).is_err());
        assert!(requested_filter("{nope").is_err());
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, "secret-token"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer secret-token"),
        );
        assert!(authorized(&h, "secret-token"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  secret-token "),
        );
        assert!(authorized(&h, "secret-token"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer secret-tokem"),
        );
        assert!(!authorized(&h, "secret-token"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic secret-token"),
        );
        assert!(!authorized(&h, "secret-token"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer secret"),
        );
        assert!(!authorized(&h, "secret-token"));
    }
}

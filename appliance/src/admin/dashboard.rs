//! The operator's web dashboard at `/` of the admin listener, and the JSON routes only it
//! needs.
//!
//! The page (`/`), its script (`/dashboard/app.js`) and stylesheet (`/dashboard/app.css`)
//! are static files embedded in the binary: they carry no data, so they are served without
//! the token (a browser cannot send `Authorization` when it navigates). Neither does
//! `/dashboard/auth`, which says whether the API wants a token (what any `401` says too),
//! so the page asks for the token before it calls a protected route. Every piece of data comes
//! from the token-protected JSON routes, which the script calls with
//! `Authorization: Bearer <token>`; the operator types the token into the page's sign-in
//! form and the script keeps it in `sessionStorage` (gone when the tab closes, never in a
//! URL or a cookie, so neither logs nor cross-site requests can carry it).
//!
//! The script renders every value with `textContent` (never HTML), so numbers and names
//! from SIP headers, which callers control, show as text. The page is served with a
//! Content-Security-Policy that allows only this origin's script and stylesheet (no inline
//! script or style, no framing).
//!
//! Live updates: the script polls the JSON routes every 2 s. It is read-only until the
//! operator has signed in with a token: only then does it offer "End call"
//! (`DELETE /api/v1/calls/{id}`) and "Reload configuration" (`POST /api/v1/reload`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::cdr_search::{self, CdrQuery};
use super::server::{lock_history, lock_rate, AppState};
use super::AdminBackend;

/// The page.
pub const PAGE_HTML: &str = include_str!("assets/dashboard.html");
/// Its script.
pub const PAGE_JS: &str = include_str!("assets/dashboard.js");
/// Its stylesheet.
pub const PAGE_CSS: &str = include_str!("assets/dashboard.css");

/// Content-Security-Policy of the page: its own script, stylesheet and JSON routes only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// `GET /api/v1/overview`: the dashboard's header line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// `[node] name`.
    pub node: String,
    /// Version of the running binary.
    pub version: String,
    /// Readiness (as `/health`).
    pub ready: bool,
    /// Why not ready.
    pub reasons: Vec<String>,
    /// Configuration generation.
    pub config_generation: u64,
    /// Live calls.
    pub calls_active: u64,
    /// Call attempts since the start.
    pub calls_total: u64,
    /// Call attempts per second over the last 10 s.
    pub calls_per_second: f64,
    /// Data plane backend.
    pub dataplane_backend: String,
}

/// Routes of the page and its assets (no token: they hold no data).
pub(super) fn page_routes<B: AdminBackend>() -> Router<AppState<B>> {
    Router::new()
        .route(
            "/",
            get(|| async { asset(PAGE_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/dashboard/app.js",
            get(|| async { asset(PAGE_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/dashboard/app.css",
            get(|| async { asset(PAGE_CSS, "text/css; charset=utf-8") }),
        )
        .route("/dashboard/auth", get(auth_info::<B>))
}

async fn auth_info<B: AdminBackend>(State(state): State<AppState<B>>) -> Response {
    fresh(json!({"token_required": state.token_required()}))
}

/// The JSON routes only the dashboard needs (behind the token like the rest of the API).
pub(super) fn data_routes<B: AdminBackend>() -> Router<AppState<B>> {
    Router::new()
        .route("/api/v1/overview", get(overview::<B>))
        .route("/api/v1/history", get(history::<B>))
        .route("/api/v1/dataplane", get(dataplane::<B>))
        .route("/api/v1/failures", get(failures::<B>))
        .route("/api/v1/cdrs", get(cdrs::<B>))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// JSON that no cache keeps.
fn fresh<T: Serialize>(v: T) -> Response {
    let mut resp = Json(v).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn overview<B: AdminBackend>(State(state): State<AppState<B>>) -> Response {
    let health = state.backend.health().await;
    let snap = state.backend.metrics().await;
    let calls_per_second = lock_rate(&state).rate();
    fresh(Overview {
        node: state.backend.node_name(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ready: health.ready,
        reasons: health.reasons,
        config_generation: snap.config_generation,
        calls_active: snap.calls_active,
        calls_total: snap.calls_total,
        calls_per_second,
        dataplane_backend: snap.dataplane_backend,
    })
}

async fn history<B: AdminBackend>(State(state): State<AppState<B>>) -> Response {
    let points = lock_history(&state).points();
    fresh(json!({
        "period_s": super::history::HISTORY_PERIOD.as_secs(),
        "points": points,
    }))
}

async fn dataplane<B: AdminBackend>(State(state): State<AppState<B>>) -> Response {
    fresh(lock_history(&state).worker_loads())
}

async fn failures<B: AdminBackend>(State(state): State<AppState<B>>) -> Response {
    fresh(state.backend.failures())
}

async fn cdrs<B: AdminBackend>(
    State(state): State<AppState<B>>,
    q: Result<Query<CdrQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": e.body_text()})),
            )
                .into_response()
        }
    };
    if let Err(e) = q.check() {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response();
    }
    // Each search reads up to `TAIL_BYTES` per file: a bounded number run at once.
    let Ok(permit) = state.searches.clone().try_acquire_owned() else {
        let mut resp = (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "too many CDR searches running; retry"})),
        )
            .into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    };
    let files = state.backend.cdr_files();
    let now = state.backend.wall_ms();
    let run = move || {
        let _permit = permit;
        cdr_search::search(&files, &q, now)
    };
    match tokio::task::spawn_blocking(run).await {
        Ok(found) => fresh(found),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": format!("CDR search failed: {e}")})),
        )
            .into_response(),
    }
}

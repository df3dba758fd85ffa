//! `/api/v1/ha` (the pair's status) and `POST /api/v1/ha/takeover` (keepalived's notify
//! script: this node is master now). Both behind the bearer token.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::server::AppState;
use super::AdminBackend;

/// The routes, merged into the protected ones.
pub(super) fn routes<B: AdminBackend>() -> Router<AppState<B>> {
    Router::new()
        .route("/api/v1/ha", get(status::<B>))
        .route("/api/v1/ha/takeover", post(takeover::<B>))
}

async fn status<B: AdminBackend>(State(state): State<AppState<B>>) -> Response {
    match state.backend.ha_status() {
        Some(s) => (StatusCode::OK, Json(json!(s))).into_response(),
        None => not_configured(),
    }
}

async fn takeover<B: AdminBackend>(State(state): State<AppState<B>>) -> Response {
    if state.backend.ha_status().is_none() {
        return not_configured();
    }
    match state.backend.ha_takeover().await {
        Ok(r) => (StatusCode::OK, Json(json!(r))).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": e}))).into_response(),
    }
}

fn not_configured() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "no [ha] section: this node is not part of a pair"})),
    )
        .into_response()
}

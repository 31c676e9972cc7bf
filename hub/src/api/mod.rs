//! The HTTP API under `/api/v1` for the supervision platform and operators,
//! plus `/metrics` and `/healthz`. JSON, RFC 3339 times, bearer-token auth.

mod auth;
mod feed;

use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, head};
use axum::{Json, Router};
use serde_json::json;

use crate::config::MediaConfig;
use crate::ingest::Outgoing;
use crate::media::{self, Blobs, Issuer, Uploads};
use crate::metrics::Metrics;
use crate::store::Store;

/// Shared state of the API handlers.
#[derive(Clone)]
pub struct AppState {
    store: Arc<Mutex<Store>>,
    token_hash: Arc<[u8; 32]>,
    metrics: Arc<Metrics>,
    uploads: Arc<Uploads>,
}

/// What the media data plane of the API needs.
pub struct MediaParts {
    /// The blob store.
    pub blobs: Blobs,
    /// Signs grants and media receipts.
    pub issuer: Arc<Issuer>,
    /// Hands media receipts to the MQTT publisher.
    pub publisher: mpsc::UnboundedSender<Vec<Outgoing>>,
    /// Settings.
    pub cfg: MediaConfig,
}

impl AppState {
    /// Opens a connection to the store at `db` (reads, and the media states
    /// uploads write) and remembers the token's hash.
    pub fn new(
        db: &Path,
        token: &str,
        metrics: Arc<Metrics>,
        media: MediaParts,
    ) -> anyhow::Result<Self> {
        let store = Arc::new(Mutex::new(Store::open(db)?));
        let uploads = Arc::new(Uploads::new(
            media.blobs,
            media.issuer,
            store.clone(),
            media.publisher,
            metrics.clone(),
            media.cfg,
        ));
        Ok(Self {
            store,
            token_hash: Arc::new(auth::hash(token)),
            metrics,
            uploads,
        })
    }

    /// The upload service.
    pub fn uploads(&self) -> &Arc<Uploads> {
        &self.uploads
    }

    /// Runs a blocking read against the store off the async runtime.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let guard = store
                .lock()
                .map_err(|_| anyhow::anyhow!("store lock poisoned"))?;
            f(&guard)
        })
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("read task failed: {e}")))?
        .map_err(ApiError::internal)
    }
}

/// An error answered as `{"error": "..."}` with a status code.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn internal(e: anyhow::Error) -> Self {
        tracing::error!(error = %format!("{e:#}"), "API request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// All routes.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/records", get(feed::list))
        .route("/records/{id}", get(feed::one))
        .route("/records/{id}/media", get(media::serve::media))
        .route("/alerts", get(feed::alerts))
        .route("/devices", get(feed::devices))
        .route("/openapi.json", get(openapi))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        // Uploads carry a grant, not the API token.
        .route(
            "/uploads/{id}",
            head(media::upload::head).patch(media::upload::patch),
        );
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(crate::dashboard::routes())
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let records = state.read(|s| s.record_count()).await?;
    Ok(Json(json!({ "status": "ok", "records": records })))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}

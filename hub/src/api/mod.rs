//! The HTTP API under `/api/v1` for the supervision platform and operators,
//! plus `/metrics` and `/healthz`. JSON, RFC 3339 times, bearer tokens with
//! roles ([`auth`]); every read of evidence is written to the audit log
//! before the evidence is answered.

mod audit;
pub mod auth;
mod coverage;
mod custody;
mod events;
mod extract;
mod feed;
mod fleet;
mod recorder_config;
mod tokens;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, head, post, put};
use axum::{Json, Router};
use evsync_protocol::signing::SigningKey;
use serde_json::json;

use crate::config::MediaConfig;
use crate::ingest::Outgoing;
use crate::media::{self, Blobs, Issuer, Partials, Uploads};
use crate::metrics::Metrics;
use crate::store::{AuditEvent, Officer, Store, Unit};
pub use auth::Caller;

/// Shared state of the API handlers.
#[derive(Clone)]
pub struct AppState {
    store: Arc<Mutex<Store>>,
    key: Arc<SigningKey>,
    bootstrap_hash: Arc<String>,
    metrics: Arc<Metrics>,
    uploads: Arc<Uploads>,
    offline_after: Duration,
    changes: watch::Receiver<u64>,
    hub_id: String,
}

/// What the media data plane of the API needs.
pub struct MediaParts {
    /// The blob store.
    pub blobs: Blobs,
    /// The partial uploads.
    pub partials: Partials,
    /// Signs grants and media receipts.
    pub issuer: Arc<Issuer>,
    /// Hands media receipts to the MQTT publisher.
    pub publisher: mpsc::UnboundedSender<Vec<Outgoing>>,
    /// Settings.
    pub cfg: MediaConfig,
}

/// What the API needs besides the store and media.
pub struct ApiParts {
    /// This hub's id (custody trails name it).
    pub hub_id: String,
    /// The hub key: signs audit entries.
    pub key: Arc<SigningKey>,
    /// The bootstrap (admin) token.
    pub token: String,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// An agent silent this long counts as offline.
    pub offline_after: Duration,
    /// Moves whenever records or alerts were stored (for pushed events).
    pub changes: watch::Receiver<u64>,
}

impl AppState {
    /// Opens a connection to the store at `db` (reads, the audit log, operator
    /// changes, and the media states uploads write).
    pub fn new(
        db: &crate::store::Location,
        parts: ApiParts,
        media: MediaParts,
    ) -> anyhow::Result<Self> {
        let store = Arc::new(Mutex::new(Store::connect(db)?));
        let uploads = Arc::new(Uploads::new(
            media.blobs,
            media.partials,
            media.issuer,
            store.clone(),
            media.publisher,
            parts.metrics.clone(),
            media.cfg,
        ));
        Ok(Self {
            store,
            key: parts.key,
            bootstrap_hash: Arc::new(crate::store::token_hash(&parts.token)),
            metrics: parts.metrics,
            uploads,
            offline_after: parts.offline_after,
            changes: parts.changes,
            hub_id: parts.hub_id,
        })
    }

    /// The hub's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
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
        self.write(move |s| f(s)).await
    }

    /// Runs a blocking change against the store off the async runtime.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = store
                .lock()
                .map_err(|_| anyhow::anyhow!("store lock poisoned"))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("store task failed: {e}")))?
        .map_err(ApiError::internal)
    }

    /// Writes an audit entry for what `caller` does; the request is refused
    /// (500) when the entry cannot be written, so no evidence is read unaudited.
    pub(crate) async fn audit(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
        detail: String,
        records: Vec<i64>,
    ) -> Result<(), ApiError> {
        let key = self.key.clone();
        let ev = AuditEvent {
            actor: caller.name.clone(),
            role: caller.role.as_str().to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            remote: caller.remote.clone(),
            detail,
            records,
        };
        self.write(move |s| s.audit(&key, &ev)).await?;
        self.metrics.audit_entries.inc();
        Ok(())
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
        .route("/whoami", get(tokens::whoami))
        .route("/records", get(feed::list))
        .route("/records/{id}", get(feed::one))
        .route("/records/{id}/media", get(media::serve::media))
        .route("/alerts", get(feed::alerts))
        .route("/coverage", get(coverage::figures))
        .route(
            "/coverage/actions",
            get(coverage::actions).post(coverage::import_actions),
        )
        .route("/coverage/officers", get(coverage::officers))
        .route("/coverage/late", get(coverage::late))
        .route("/coverage/hours", get(coverage::hours))
        .route("/coverage/cells", get(coverage::cells))
        .route("/coverage/duties", post(coverage::import_duties))
        .route("/events", get(events::stream))
        .route("/devices", get(fleet::devices).post(fleet::register))
        .route("/devices/{id}", get(fleet::device))
        .route("/devices/{id}/approve", post(fleet::approve))
        .route("/devices/{id}/revoke", post(fleet::revoke))
        .route("/devices/{id}/assignment", put(fleet::assign))
        .route("/devices/{id}/config", get(recorder_config::show))
        .route(
            "/officers",
            get(fleet::officers).post(fleet::put::<Officer>),
        )
        .route(
            "/officers/import",
            post(fleet::import::<Officer>).layer(DefaultBodyLimit::max(fleet::MAX_IMPORT)),
        )
        .route("/units", get(fleet::units).post(fleet::put::<Unit>))
        .route(
            "/units/import",
            post(fleet::import::<Unit>).layer(DefaultBodyLimit::max(fleet::MAX_IMPORT)),
        )
        .route("/audit", get(audit::list))
        .route("/audit/verify", get(audit::verify))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", delete(tokens::revoke))
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
        .route("/firmware/{sha256}", get(recorder_config::firmware_image))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(crate::dashboard::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), timed))
        .with_state(state)
}

/// Counts every request by route and status, with its duration.
async fn timed(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    // Any token may name a method: only the ones the API knows get a label of their own.
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m,
        _ => "other",
    }
    .to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    state.metrics.api_request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
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

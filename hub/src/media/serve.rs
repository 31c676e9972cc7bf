//! `GET /api/v1/records/{id}/media`: plays a stored recording back with its
//! `Content-Type`, `Content-Length`, `ETag` (the SHA-256) and HTTP Range
//! support (single ranges, `If-Range`, `If-None-Match`), so a supervision
//! platform can seek in a video without downloading it whole.

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use evsync_protocol::record::Kind;

use crate::api::{ApiError, AppState, Caller};
use crate::store::MediaState;

/// The handler.
pub async fn media(
    State(state): State<AppState>,
    Path(id): Path<String>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let lookup = id.clone();
    let (row, kind) = state
        .read(move |s| {
            let row = s.media(&lookup)?;
            let kind = s.record(&lookup)?.map(|r| r.body.kind);
            Ok((row, kind))
        })
        .await?;
    let row = match (row, kind) {
        (Some(row), _) => row,
        (None, Some(Kind::Event)) => {
            return Err(ApiError::not_found(format!(
                "record {id} is an event; only media records have media"
            )))
        }
        (None, _) => return Err(ApiError::not_found(format!("no record with id {id:?}"))),
    };
    match row.state {
        MediaState::Stored => {}
        MediaState::Awaiting => {
            return Err(ApiError::not_found(format!(
                "the recording of record {id} (sha256 {}, {} bytes) has not been uploaded completely to this hub yet",
                row.sha256, row.size
            )))
        }
        MediaState::Failed => {
            return Err(ApiError::not_found(format!(
                "the recording of record {id} failed verification and is not stored: {}",
                row.detail.as_deref().unwrap_or("no detail")
            )))
        }
    }
    let caller = req
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("media read without a caller")))?;
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| format!("range {r}"))
        .unwrap_or_else(|| "whole".into());
    state
        .audit(&caller, "media.read", &id, range, Vec::new())
        .await?;
    state.metrics().media_reads.inc();
    let etag = format!("\"{}\"", row.sha256);
    let etag_value = HeaderValue::from_str(&etag).map_err(|e| ApiError::internal(e.into()))?;
    let headers = req.headers();
    let matches = |v: &HeaderValue| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag || t == "*")
        })
    };
    if headers.get(header::IF_NONE_MATCH).is_some_and(matches) {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        r.headers_mut().insert(header::ETAG, etag_value);
        return Ok(r);
    }
    if headers
        .get(header::IF_RANGE)
        .is_some_and(|v| v.as_bytes() != etag.as_bytes())
    {
        // The client's copy is of other content: send the whole file.
        req.headers_mut().remove(header::RANGE);
    }
    let range = req.headers().get(header::RANGE).cloned();
    let served = state
        .uploads()
        .blobs()
        .serve(&row.sha256, req)
        .await
        .map_err(ApiError::internal)?;
    match served.status() {
        StatusCode::OK | StatusCode::PARTIAL_CONTENT => {}
        StatusCode::NOT_FOUND => {
            return Err(ApiError::internal(anyhow::anyhow!(
                "the recording of record {id} is marked stored but its blob {} is missing",
                row.sha256
            )))
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            // Said in JSON like every other refusal, not labelled as the recording.
            let given = range
                .as_ref()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            let mut r = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!(
                    "Range = {given:?}: expected one range within the {} bytes of the recording (bytes=first-last, bytes=first- or bytes=-suffix)",
                    row.size
                ),
            )
            .into_response();
            if let Some(v) = served.headers().get(header::CONTENT_RANGE) {
                r.headers_mut().insert(header::CONTENT_RANGE, v.clone());
            }
            return Ok(r);
        }
        // Conditional answers (If-Modified-Since, If-Unmodified-Since): as they are, with the ETag.
        _ => {
            let mut r = served;
            r.headers_mut().insert(header::ETAG, etag_value);
            return Ok(r);
        }
    }
    let mut r = served;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&row.mime)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::ETAG, etag_value);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-transform"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(r)
}

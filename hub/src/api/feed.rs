//! The records feed, one record with its verification, alerts and devices.
//!
//! The feed is in hub order (the order records were committed). Its cursor
//! is opaque to consumers; a consumer that keeps passing back the cursor it
//! was given sees every record exactly once, also while records arrive.

use super::extract::{Json, Query};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Extension;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use evsync_protocol::chain::Hash;
use evsync_protocol::record::Kind;
use evsync_protocol::signing::{Context, PublicKey};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, AppState, Caller};
use crate::store::{RecordFilter, StoredRecord};

/// Largest page of the feed.
const MAX_LIMIT: u32 = 1000;

/// Reads of a record listed in its custody trail: the newest (all are in
/// the audit log; `accesses` says how many).
const CUSTODY_ACCESSES: u32 = 100;

/// The opaque cursor of a hub position.
pub(crate) fn encode_cursor(hub_seq: i64) -> String {
    B64URL.encode(format!("evsync:{hub_seq}"))
}

/// The hub position of a cursor; 400 naming it when it is not one of ours.
pub(crate) fn decode_cursor(cursor: &str) -> Result<i64, ApiError> {
    B64URL
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("evsync:").and_then(|n| n.parse().ok()))
        .filter(|n: &i64| *n >= 0)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("after = {cursor:?}: expected a cursor returned by this feed"),
            )
        })
}

/// The feed's JSON for one record.
pub fn record_json(r: &StoredRecord) -> Value {
    let b = &r.body;
    let mut v = json!({
        "id": b.id,
        "device_id": b.device_id,
        "agent_id": b.agent_id,
        "seq": b.seq,
        "kind": b.kind.as_str(),
        "verified": true,
        "hash": r.hash,
        "prev_hash": b.prev_hash,
        "officer_id": b.officer_id,
        "unit_code": b.unit_code,
        "device_time": b.device_time,
        "ingest_time": b.ingest_time,
        "clock_offset_ms": b.clock_offset_ms,
        "received_at": r.received_at,
        "signed": {
            "body": B64.encode(&r.bytes),
            "signature": r.signature_b64(),
            "key": r.signer_key,
            "context": "evsync/v1 record\\0",
        },
    });
    if let (Kind::Media, Some(m)) = (b.kind, &b.media) {
        v["sha256"] = json!(m.sha256);
        v["size"] = json!(m.size);
        v["mime"] = json!(m.mime);
        v["file_name"] = json!(m.file_name);
        v["file_index"] = json!(m.file_index);
        v["started_at"] = json!(m.started_at);
        v["duration_ms"] = json!(m.duration_ms);
        v["media_state"] = json!(r.media_state);
        if let Some(first) = &r.recopy_of {
            v["recopy_of"] = json!(first);
        }
    }
    if let Some(e) = &b.event {
        v["event"] = json!(e);
    }
    if let Some(g) = &b.geo {
        v["geo"] = json!(g);
    }
    v
}

/// Query of the feed: a cursor, a page size, and filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    after: Option<String>,
    limit: Option<u32>,
    order: Option<String>,
    device_id: Option<String>,
    agent_id: Option<String>,
    officer_id: Option<String>,
    unit_code: Option<String>,
    domain: Option<String>,
    kind: Option<String>,
    from: Option<String>,
    to: Option<String>,
    case_number: Option<String>,
}

/// An RFC 3339 time of the query as stored (UTC, milliseconds), or 400 naming the field.
pub(crate) fn time_param(name: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    v.map(|s| {
        crate::store::parse_time(name, &s)
            .map(crate::store::stamp)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))
    })
    .transpose()
}

impl FeedQuery {
    fn filter(&mut self) -> Result<RecordFilter, ApiError> {
        if let Some(k) = &self.kind {
            if k != "media" && k != "event" {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("kind = {k:?}: expected media or event"),
                ));
            }
        }
        Ok(RecordFilter {
            device_id: self.device_id.take(),
            agent_id: self.agent_id.take(),
            officer_id: self.officer_id.take(),
            unit_code: self.unit_code.take(),
            domain: self.domain.take(),
            kind: self.kind.take(),
            from: time_param("from", self.from.take())?,
            to: time_param("to", self.to.take())?,
            case_number: self.case_number.take(),
        })
    }
}

/// `GET /api/v1/records?after=CURSOR&limit=N&order=asc|desc&device_id=&agent_id=&officer_id=&unit_code=&domain=&kind=&from=&to=&case_number=`
///
/// In hub order by default; `order=desc` gives the newest first, and its
/// cursor continues towards older records.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(mut q): Query<FeedQuery>,
) -> Result<Json<Value>, ApiError> {
    let descending = match q.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(o) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("order = {o:?}: expected asc or desc"),
            ))
        }
    };
    let after = match q.after.as_deref() {
        None | Some("") if descending => i64::MAX,
        None | Some("") => 0,
        Some(c) => decode_cursor(c)?,
    };
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("limit = {limit}: expected 1 to {MAX_LIMIT}"),
        ));
    }
    let filter = q.filter()?;
    let described = match filter.describe() {
        f if f.is_empty() => String::new(),
        f => format!("; {f}"),
    };
    let rows = state
        .read(move |s| match descending {
            false => s.records_after(after, limit, &filter),
            true => s.records_before(after, limit, &filter),
        })
        .await?;
    if !rows.is_empty() {
        state
            .audit(
                &caller,
                "records.list",
                "feed",
                format!(
                    "{} records{}{described}",
                    rows.len(),
                    if descending { ", newest first" } else { "" }
                ),
                rows.iter().map(|r| r.hub_seq).collect(),
            )
            .await?;
    }
    let last = match rows.last() {
        Some(r) => r.hub_seq,
        None if after == i64::MAX => 0,
        None => after,
    };
    let records: Vec<Value> = rows.iter().map(record_json).collect();
    Ok(Json(
        json!({ "records": records, "cursor": encode_cursor(last) }),
    ))
}

/// `GET /api/v1/records/{id}`: the record, its signature checked again now, and its chain link.
pub async fn one(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let lookup = id.clone();
    let found = state
        .read(move |s| {
            let Some(r) = s.record(&lookup)? else {
                return Ok(None);
            };
            let predecessor = if r.body.seq > 1 {
                s.hash_at(&r.body.device_id, &r.body.agent_id, r.body.seq - 1)?
            } else {
                Some(evsync_protocol::chain::GENESIS.to_hex())
            };
            let device = s.device(&r.body.agent_id)?;
            Ok(Some((r, predecessor, device)))
        })
        .await?;
    let Some((r, predecessor, device)) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no record with id {id:?}"),
        ));
    };
    let signature = match (
        PublicKey::from_base64(&r.signer_key),
        <[u8; 64]>::try_from(r.signature.as_slice()),
    ) {
        (Ok(key), Ok(sig)) => match key.verify(Context::Record, &r.bytes, &sig, &r.body.agent_id) {
            Ok(()) => "valid".to_owned(),
            Err(e) => format!("invalid: {e}"),
        },
        _ => "invalid: stored key or signature unreadable".to_owned(),
    };
    let hash_ok = Hash::of(&r.bytes).to_hex() == r.hash;
    let chain = match predecessor {
        None => "predecessor missing".to_owned(),
        Some(h) if h == r.body.prev_hash => "intact".to_owned(),
        Some(h) => format!("broken: predecessor stored with hash {h}"),
    };
    state
        .audit(&caller, "record.read", &id, String::new(), Vec::new())
        .await?;
    let (lookup, hub_seq) = (id.clone(), r.hub_seq);
    let (media, (accesses, accesses_total)) = state
        .read(move |s| {
            Ok((
                s.media(&lookup)?,
                s.audit_of_record(&lookup, hub_seq, CUSTODY_ACCESSES)?,
            ))
        })
        .await?;
    let mut v = record_json(&r);
    v["custody"] = json!(super::custody::trail(
        &r,
        &state.hub_id,
        media.as_ref(),
        &accesses
    ));
    v["accesses"] = json!(accesses_total);
    v["verified"] = json!(signature == "valid" && hash_ok);
    v["verification"] = json!({
        "signature": signature,
        "hash_matches_body": hash_ok,
        "chain": chain,
        "signer": r.body.agent_id,
        "signer_state": device.map(|d| d.state),
        "checked_at": crate::store::now(),
    });
    Ok(Json(v))
}

/// Query of the alerts list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    open: Option<bool>,
    limit: Option<u32>,
}

/// `GET /api/v1/alerts?open=true&limit=N`, newest first.
pub async fn alerts(
    State(state): State<AppState>,
    Query(q): Query<AlertQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("limit = {limit}: expected 1 to {MAX_LIMIT}"),
        ));
    }
    let open = q.open.unwrap_or(false);
    let alerts = state.read(move |s| s.alerts(open, limit)).await?;
    Ok(Json(json!({ "alerts": alerts })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)).unwrap(), 42);
        for bad in [
            "42",
            "!!",
            &B64URL.encode("evsync:-1"),
            &B64URL.encode("other:3"),
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad} accepted");
        }
    }
}

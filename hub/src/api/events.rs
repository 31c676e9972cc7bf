//! `GET /api/v1/events`: new records and alerts pushed as server-sent
//! events, so the supervision platform does not have to poll.
//!
//! Event `record` carries a record exactly as the feed shows it; event
//! `alert` an alert as `/api/v1/alerts` shows it. Each event's `id` is a
//! position (`<feed cursor>~<alert point>`): a client that reconnects with
//! `Last-Event-ID` (browsers' EventSource do) continues after the last event
//! it saw, so nothing is missed or repeated. Without it, records start after
//! `after` (a feed cursor; default: from now) and alerts from now. Records
//! pushed are evidence reads: each batch is written to the audit log.

use std::convert::Infallible;
use std::time::Duration;

use super::extract::Query;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use futures_util::stream::Stream;
use serde::Deserialize;

use super::feed::{decode_cursor, encode_cursor, record_json};
use super::{ApiError, AppState, Caller};
use crate::store::{now, RecordFilter};

/// How often alerts that become visible late (after a gap's grace period) are looked for.
const ALERT_POLL: Duration = Duration::from_secs(2);

/// Records or alerts sent per look at the store.
const BATCH: u32 = 200;

/// Query of the stream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    after: Option<String>,
}

/// Where a stream is: the last record sent (hub position); the highest
/// alert id looked at (alerts get ids in commit order: the store has one
/// writer at a time); and until when alerts that became visible late (after
/// a gap's grace) were looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    hub_seq: i64,
    alert_at: String,
    alert_id: i64,
}

impl Position {
    fn id(&self) -> String {
        format!(
            "{}~{}",
            encode_cursor(self.hub_seq),
            B64URL.encode(format!("{}|{}", self.alert_at, self.alert_id))
        )
    }

    fn parse(s: &str) -> Option<Self> {
        let (records, alerts) = s.split_once('~')?;
        let hub_seq = decode_cursor(records).ok()?;
        let alerts = String::from_utf8(B64URL.decode(alerts).ok()?).ok()?;
        let (at, id) = alerts.split_once('|')?;
        Some(Self {
            hub_seq,
            alert_at: at.to_owned(),
            alert_id: id.parse().ok()?,
        })
    }
}

struct Pusher {
    state: AppState,
    caller: Caller,
    at: Position,
    pending: std::collections::VecDeque<Event>,
    changes: tokio::sync::watch::Receiver<u64>,
}

impl Pusher {
    /// Looks at the store and queues what is new; `false` once the hub stops.
    async fn fill(&mut self) -> Result<bool, ApiError> {
        loop {
            let (after, at) = (self.at.hub_seq, self.at.clone());
            let until = now();
            let looked_until = until.clone();
            let token = self.caller.token_id.clone();
            let looked = self
                .state
                .read(move |s| {
                    // A token revoked while its stream is open ends the stream.
                    if let Some(id) = &token {
                        if !s.token_live(id)? {
                            return Ok(None);
                        }
                    }
                    Ok(Some((
                        s.records_after(after, BATCH, &RecordFilter::default())?,
                        s.alerts_to_push(at.alert_id, &at.alert_at, &until, BATCH)?,
                    )))
                })
                .await?;
            let Some((records, (alerts, alert_id))) = looked else {
                tracing::info!(
                    token = self.caller.name,
                    "event stream closed: its token was revoked"
                );
                return Ok(false);
            };
            if !records.is_empty() {
                self.state
                    .audit(
                        &self.caller,
                        "records.list",
                        "events",
                        format!("{} records pushed", records.len()),
                        records.iter().map(|r| r.hub_seq).collect(),
                    )
                    .await?;
            }
            for r in &records {
                self.at.hub_seq = r.hub_seq;
                self.push("record", record_json(r).to_string());
            }
            self.at.alert_at = looked_until;
            self.at.alert_id = alert_id;
            for a in &alerts {
                self.push("alert", serde_json::json!(a).to_string());
            }
            if !self.pending.is_empty() {
                return Ok(true);
            }
            tokio::select! {
                changed = self.changes.changed() => if changed.is_err() { return Ok(false) },
                _ = tokio::time::sleep(ALERT_POLL) => {}
            }
        }
    }

    fn push(&mut self, kind: &str, data: String) {
        self.pending
            .push_back(Event::default().event(kind).id(self.at.id()).data(data));
    }
}

/// The handler.
pub async fn stream(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            Position::parse(v).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("Last-Event-ID = {v:?}: expected an id this stream sent"),
                )
            })
        })
        .transpose()?;
    let at = match resume {
        Some(p) => p,
        None => {
            let after = q.after.filter(|c| !c.is_empty());
            let cursor = after.as_deref().map(decode_cursor).transpose()?;
            let (last, alert_id) = state
                .read(|s| Ok((s.last_hub_seq()?, s.last_alert_id()?)))
                .await?;
            Position {
                hub_seq: cursor.unwrap_or(last),
                alert_at: now(),
                alert_id,
            }
        }
    };
    let pusher = Pusher {
        changes: state.changes.clone(),
        state,
        caller,
        at,
        pending: Default::default(),
    };
    let events = futures_util::stream::unfold(pusher, |mut p| async move {
        if p.pending.is_empty() {
            match p.fill().await {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    tracing::error!(error = e.message, "event stream ended");
                    return None;
                }
            }
        }
        let next = p.pending.pop_front()?;
        Some((Ok(next), p))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_position_round_trips_and_foreign_ids_are_refused() {
        let p = Position {
            hub_seq: 41,
            alert_at: "2026-12-02T01:00:00.000Z".into(),
            alert_id: 7,
        };
        assert_eq!(Position::parse(&p.id()), Some(p));
        assert_eq!(Position::parse("41"), None);
        assert_eq!(Position::parse("x~y"), None);
    }
}

//! Who is asking, and may they: bearer tokens with roles.
//!
//! A token is either the hub's bootstrap token (`http.token`, or the file
//! `<data_dir>/api-token`: role admin) or one created with `evsync-hub
//! tokens create` (kept as its SHA-256 only). Tokens are compared by their
//! SHA-256, so timing says nothing about the token itself. [`allowed`] is
//! the one table of which role may call which endpoint.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::{ApiError, AppState};
use crate::store::{token_hash, Role};

/// The caller of a request, put into its extensions by [`require_token`].
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's name (`bootstrap` for the hub's own token).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The token's id (`None` for the bootstrap token).
    pub token_id: Option<String>,
    /// The peer address of the connection.
    pub remote: String,
}

use Role::{Admin, Auditor, Operator, Platform};

const EVERYONE: &[Role] = &[Admin, Operator, Platform, Auditor];
const READERS_OF_MEDIA: &[Role] = &[Admin, Operator, Platform];
const MANAGERS: &[Role] = &[Admin, Operator];
const AUDITORS: &[Role] = &[Admin, Auditor];
const ADMINS: &[Role] = &[Admin];

/// The roles that may call `method route` (`route` as declared, e.g.
/// `/api/v1/records/{id}`). Unknown routes: nobody.
pub fn allowed(method: &Method, route: &str) -> &'static [Role] {
    let read = method == Method::GET || method == Method::HEAD;
    match route.strip_prefix("/api/v1").unwrap_or("") {
        "/whoami" | "/openapi.json" if read => EVERYONE,
        "/records"
        | "/records/{id}"
        | "/alerts"
        | "/devices"
        | "/devices/{id}"
        | "/devices/{id}/config"
        | "/officers"
        | "/units"
        | "/coverage"
        | "/coverage/actions"
        | "/coverage/officers"
        | "/coverage/late"
        | "/coverage/hours"
        | "/coverage/cells"
            if read =>
        {
            EVERYONE
        }
        "/records/{id}/media" | "/events" if read => READERS_OF_MEDIA,
        "/devices"
        | "/devices/{id}/approve"
        | "/devices/{id}/revoke"
        | "/officers"
        | "/units"
        | "/officers/import"
        | "/units/import"
        | "/coverage/actions"
        | "/coverage/duties"
            if method == Method::POST =>
        {
            MANAGERS
        }
        "/devices/{id}/assignment" if method == Method::PUT => MANAGERS,
        "/audit" | "/audit/verify" if read => AUDITORS,
        "/tokens" if read || method == Method::POST => ADMINS,
        "/tokens/{id}" if method == Method::DELETE => ADMINS,
        _ => &[],
    }
}

/// Resolves the bearer token to a [`Caller`] (401 without a valid one) and
/// checks the route's roles (403 naming the role needed).
pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    let Some(given) = given else {
        state.metrics.reject_api("missing_token");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing Authorization: Bearer <token> (the hub's own token is in its data folder, file api-token; others are made with `evsync-hub tokens create`)",
        ));
    };
    let hash = token_hash(&given);
    let remote = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "unknown".into());
    let caller = if hash == *state.bootstrap_hash {
        Caller {
            name: "bootstrap".into(),
            role: Role::Admin,
            token_id: None,
            remote,
        }
    } else {
        match state.read(move |s| s.token_by_hash(&hash)).await? {
            Some(t) => Caller {
                name: t.name,
                role: t.role,
                token_id: Some(t.id),
                remote,
            },
            None => {
                state.metrics.reject_api("bad_token");
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "the bearer token is not valid (unknown or revoked)",
                ));
            }
        }
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let roles = allowed(req.method(), &route);
    if roles.is_empty() {
        // A route that exists, with a method it does not take.
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} {route}: method not allowed", req.method()),
        ));
    }
    if !roles.contains(&caller.role) {
        state.metrics.reject_api("forbidden");
        let needed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "{} {route}: token {:?} has role {}; this needs {}",
                req.method(),
                caller.name,
                caller.role.as_str(),
                needed.join(" or ")
            ),
        ));
    }
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platform_reads_but_never_changes_and_only_auditors_read_the_audit_log() {
        let get = Method::GET;
        assert!(allowed(&get, "/api/v1/records").contains(&Platform));
        assert!(allowed(&get, "/api/v1/records/{id}/media").contains(&Platform));
        assert!(!allowed(&get, "/api/v1/records/{id}/media").contains(&Auditor));
        assert!(!allowed(&Method::POST, "/api/v1/devices/{id}/approve").contains(&Platform));
        assert!(!allowed(&get, "/api/v1/audit").contains(&Operator));
        assert!(allowed(&get, "/api/v1/audit").contains(&Auditor));
        assert!(!allowed(&Method::POST, "/api/v1/tokens").contains(&Operator));
        assert!(allowed(&Method::DELETE, "/api/v1/records/{id}").is_empty());
        assert!(allowed(&get, "/api/v1/nothing").is_empty());
    }
}

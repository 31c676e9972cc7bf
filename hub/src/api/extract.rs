//! Request extractors whose refusals are JSON errors like every other
//! answer of the API (axum's own answer in plain text), naming what was
//! wrong: a malformed query, a body that is not JSON, a missing field.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::ApiError;

/// A JSON body (refusals: 400, 415, 422 as [`ApiError`]), or a JSON answer.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(e) => Err(json_refusal(e)),
        }
    }
}

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

fn json_refusal(e: JsonRejection) -> ApiError {
    let status = e.status();
    let expected = match &e {
        JsonRejection::MissingJsonContentType(_) => {
            ": expected Content-Type: application/json".to_owned()
        }
        _ => String::new(),
    };
    ApiError::new(status, format!("{}{expected}", e.body_text()))
}

/// A JSON object body that may carry only the `KNOWN` fields: a typo in a
/// field name is refused (422, naming it) instead of silently ignored, and
/// anything but an object (an array, say) is refused too. For types that
/// must stay lenient elsewhere (CSV rows ignore extra columns).
pub struct Strict<T>(pub T);

/// The fields a [`Strict`] body may carry.
pub trait Fields {
    /// Field names.
    const KNOWN: &'static [&'static str];
}

impl<S: Send + Sync, T: DeserializeOwned + Fields> FromRequest<S> for Strict<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(v) = Json::<serde_json::Value>::from_request(req, state).await?;
        let unprocessable = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m);
        let Some(fields) = v.as_object() else {
            return Err(unprocessable(format!(
                "the body is {}: expected a JSON object with fields {}",
                kind(&v),
                T::KNOWN.join(", ")
            )));
        };
        if let Some(unknown) = fields.keys().find(|k| !T::KNOWN.contains(&k.as_str())) {
            return Err(unprocessable(format!(
                "unknown field {unknown:?}: expected {}",
                T::KNOWN.join(", ")
            )));
        }
        serde_json::from_value(v)
            .map(Strict)
            .map_err(|e| unprocessable(format!("the body: {e}")))
    }
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Query parameters; a malformed or unknown one is a 400 [`ApiError`].
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => Err(query_refusal(e)),
        }
    }
}

fn query_refusal(e: QueryRejection) -> ApiError {
    ApiError::new(e.status(), e.body_text())
}

//! The HTTP status of a server function's error.
//!
//! `server_fn` answers **every** error of a server function with 500 (`Res::error_response`), whatever the
//! error says: arguments that cannot be read (a missing field, a form that is not url-encoded, invalid UTF-8)
//! and a bad value a function refuses before it could set a status are the caller's fault, yet came out as
//! server errors. This layer gives such an answer the status of the [`AppError`] in its body (400, 403, 404,
//! 409, 429, 503, ...; [`AppError::Internal`] stays 500). A plain form post is not touched: `server_fn`
//! answers it with a redirect back to the page, carrying the error, so its status is 302, not 500.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flowstate_app::AppError;
use leptos::server_fn::error::SERVER_FN_ERROR_HEADER;

/// The largest error body read (an [`AppError`] in JSON is a few hundred bytes).
const MAX_ERROR_BYTES: usize = 1024 * 1024;

/// The layer (`axum::middleware::from_fn(server_fn_status)`).
pub async fn server_fn_status(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR
        || !response.headers().contains_key(SERVER_FN_ERROR_HEADER)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_ERROR_BYTES).await else {
        tracing::error!("a server function's error could not be read");
        return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(AppError::Internal)).into_response();
    };
    if let Ok(error) = serde_json::from_slice::<AppError>(&bytes) {
        parts.status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    }
    Response::from_parts(parts, Body::from(bytes))
}

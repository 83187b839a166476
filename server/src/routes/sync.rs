//! Sync over HTTP: the upstream end (`POST /sync/v1`, binary) and the local
//! controls (`GET /api/v1/sync/status`, `POST /api/v1/sync/now`).

use crate::access::{Access, Action};
use crate::error::ApiError;
use crate::startup::AppState;
use crate::upstream::{status_json, SyncFailure, SYNC_CONTENT_TYPE};
use actix_web::{web, HttpResponse};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tideline_sync::protocol::{self, CodecError, Limits};

/// Largest compressed sync body accepted. A page carries at most a few MiB
/// of changes (1 MiB by default), which compress well below this.
pub const MAX_SYNC_BODY: usize = 16 * 1024 * 1024;

/// Read a body up to `limit` bytes, refusing (not buffering) anything larger.
async fn read_limited(payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(ApiError::bad_request(
            "bad_body",
            format!("The body could not be read: {e}."),
        )),
        Err(_) => Err(ApiError::too_large(limit)),
    }
}

pub async fn exchange(
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_limited(payload, MAX_SYNC_BODY).await?;
    let records = state.records.clone();
    let upstream = state.upstream.clone();
    let answer = web::block(move || {
        // A panic on hostile peer data must cost this request, not the server.
        catch_unwind(AssertUnwindSafe(|| {
            let request =
                protocol::decode_request(&body, &Limits::default()).map_err(codec_error)?;
            let response = upstream
                .handle(records.as_ref(), request)
                .map_err(ApiError::internal)?;
            protocol::encode_response(&response).map_err(ApiError::internal)
        }))
        .unwrap_or_else(|_| {
            Err(ApiError::bad_request(
                "bad_sync_message",
                "The sync message could not be processed.",
            ))
        })
    })
    .await??;
    Ok(HttpResponse::Ok()
        .content_type(SYNC_CONTENT_TYPE)
        .body(answer))
}

fn codec_error(e: CodecError) -> ApiError {
    match e {
        CodecError::Version(_) => ApiError::bad_request("unsupported_protocol", e.to_string()),
        CodecError::TooLarge(limit) => ApiError::too_large(limit),
        CodecError::BadMagic | CodecError::Corrupt(_) => ApiError::bad_request(
            "bad_sync_message",
            format!("The sync message is not valid: {e}."),
        ),
    }
}

pub async fn status(state: web::Data<AppState>, _: Access) -> Result<HttpResponse, ApiError> {
    let records = state.records.clone();
    let agent = state.agent.clone();
    let body = web::block(move || {
        let upstream = agent.as_ref().map(|a| a.upstream.clone());
        let running = agent.as_ref().is_some_and(|a| a.is_running());
        status_json(&records, upstream.as_deref(), running)
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

pub async fn now(state: web::Data<AppState>, access: Access) -> Result<HttpResponse, ApiError> {
    access.require(Action::Sync)?;
    let Some(agent) = state.agent.clone() else {
        return Err(ApiError::conflict(
            "no_upstream",
            "This instance has no upstream to sync with; start it with --upstream URL.",
        ));
    };
    match agent.sync_now().await {
        Ok(outcome) => Ok(HttpResponse::Ok().json(outcome)),
        Err(e @ SyncFailure::Local(_)) => Err(ApiError::internal(e)),
        Err(e) => Err(ApiError::bad_gateway("upstream_failed", e.to_string())),
    }
}

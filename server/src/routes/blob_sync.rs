//! The resumable upload of attachment files from a downstream, after the
//! records that reference them (docs/SYNC.md, "Attachments"): ask how many
//! bytes the upstream holds, append the rest in chunks from that offset, then
//! ask it to verify the SHA-256 and accept the file.
//!
//! The other way, a downstream fetches a file it lacks with ranged `GET`s of
//! its content, resuming from the bytes it holds.
//!
//! Only enrolled devices call these, and only for files referenced by a
//! record of their own station that the upstream already holds.

use crate::auth::devices::Device;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use tideline_sync::blobs::{BadHash, BlobHash};

/// The largest chunk one append may carry.
pub const MAX_CHUNK: usize = 4 * 1024 * 1024;

fn parse(hash: &str) -> Result<BlobHash, ApiError> {
    hash.parse()
        .map_err(|e: BadHash| ApiError::bad_request("invalid_hash", e.to_string()))
}

/// The file must be referenced by a record of the device's station.
fn check_referenced(state: &AppState, device: &Device, hash: &BlobHash) -> Result<(), ApiError> {
    if state.records.references(hash, Some(&device.station))? {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "not_referenced",
            format!(
                "No record of station {} here references file {hash}; sync the records first.",
                device.station
            ),
        ))
    }
}

/// `GET /sync/v1/blobs/{sha256}` → `{"held", "complete"}`.
pub async fn held(
    state: web::Data<AppState>,
    device: web::ReqData<Device>,
    hash: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let hash = parse(&hash)?;
    let device = device.into_inner();
    let st = state.clone();
    let (held, complete) = web::block(move || -> Result<_, ApiError> {
        check_referenced(&st, &device, &hash)?;
        let held = st.blobs.partial_len(&hash)?;
        Ok((held, st.blobs.has(&hash)))
    })
    .await??;
    Ok(HttpResponse::Ok().json(json!({ "held": held, "complete": complete })))
}

/// `PUT /sync/v1/blobs/{sha256}?offset=N` with a chunk → `{"held"}`. A chunk
/// is appended only when it arrived whole, and only at the bytes held.
pub async fn append(
    state: web::Data<AppState>,
    device: web::ReqData<Device>,
    hash: web::Path<String>,
    query: web::Query<super::params::OffsetQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let hash = parse(&hash)?;
    let device = device.into_inner();
    let bytes = super::params::read_limited(payload, MAX_CHUNK, "chunk").await?;
    let offset = query.offset;
    let limit = state.attachments.max_bytes as u64;
    if offset + bytes.len() as u64 > limit {
        return Err(ApiError::too_large(state.attachments.max_bytes));
    }
    let st = state.clone();
    let held = web::block(move || -> Result<_, ApiError> {
        check_referenced(&st, &device, &hash)?;
        Ok(st.blobs.append(&hash, offset, &bytes)?)
    })
    .await??;
    Ok(HttpResponse::Ok().json(json!({ "held": held })))
}

/// `POST /sync/v1/blobs/{sha256}/finish`: verify and accept the file.
pub async fn finish(
    state: web::Data<AppState>,
    device: web::ReqData<Device>,
    hash: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let hash = parse(&hash)?;
    let device = device.into_inner();
    let st = state.clone();
    let size = web::block(move || -> Result<_, ApiError> {
        check_referenced(&st, &device, &hash)?;
        Ok(st.blobs.finish(&hash)?)
    })
    .await??;
    Ok(HttpResponse::Ok().json(json!({ "size": size })))
}

/// `GET /sync/v1/blobs/{sha256}/content`: the file, for a downstream that
/// lacks it; `Range` resumes a cut download.
pub async fn content(
    state: web::Data<AppState>,
    device: web::ReqData<Device>,
    hash: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let hash = parse(&hash)?;
    let device = device.into_inner();
    let st = state.clone();
    web::block(move || check_referenced(&st, &device, &hash)).await??;
    // Not here either: ask our own upstream, as a person opening it would.
    super::attachments::fetch_from_upstream(&state, hash).await;
    let path = state.blobs.path(&hash).ok_or_else(|| {
        ApiError::not_found(
            "pending",
            format!("File {hash} has not arrived here either."),
        )
    })?;
    super::attachments::serve_file(&path, &req)
}

//! Attaching files to records and serving them back (docs/DESIGN.md §8).
//!
//! The type of a file is decided from its first bytes, never from what the
//! client claims, and checked against the configured list. A blob is readable
//! by whoever may read some record that references it.

use super::params::record_id;
use crate::access::{Access, Action};
use crate::auth::Event;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use tideline_sync::blobs::BlobHash;
use tideline_sync::records::Attachment;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachQuery {
    /// The file's name as the officer knows it.
    name: String,
    /// An image field of the form to put the file's hash in (`photos`).
    field: Option<String>,
}

/// The MIME type of a file from its magic bytes.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    infer::get(bytes).map(|t| t.mime_type())
}

/// `POST /api/v1/records/{id}/attachments?name=&field=` with the file as the body.
pub async fn attach(
    state: web::Data<AppState>,
    access: Access,
    id: web::Path<String>,
    query: web::Query<AttachQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    access.require(Action::WriteRecords)?;
    let id = record_id(&id)?;
    let AttachQuery { name, field } = query.into_inner();
    let limit = state.attachments.max_bytes;
    let bytes = super::params::read_limited(payload, limit, "file").await?;
    let st = state.clone();
    let (view, _) =
        web::block(move || store_attachment(&st, &access, &id, &name, field.as_deref(), &bytes))
            .await??;
    Ok(HttpResponse::Created().json(view))
}

/// Check a file's type from its content, store it, and attach it to record
/// `id` (and to image field `field`); the API, the entry page and finished
/// uploads all come here. Blocking: call it inside `web::block`.
pub(crate) fn store_attachment(
    state: &AppState,
    access: &Access,
    id: &tideline_schemas::RecordId,
    name: &str,
    field: Option<&str>,
    bytes: &[u8],
) -> Result<(Box<serde_json::value::RawValue>, BlobHash), ApiError> {
    if bytes.len() > state.attachments.max_bytes {
        return Err(ApiError::file_too_large(
            name,
            bytes.len() as u64,
            state.attachments.max_bytes,
        ));
    }
    let name = checked_name(name)?;
    let mime = accepted_type(state, name, bytes)?;
    // Scope, role and field first: nothing is stored for a record you cannot change.
    let scoped = access.records(state);
    scoped.check_attachable(id, field)?;
    let hash = state.blobs.put(bytes)?;
    let attachment = Attachment {
        sha256: hash,
        name: name.to_string(),
        mime: mime.to_string(),
        size: bytes.len() as u64,
    };
    let view = scoped.attach(id, &attachment, field)?;
    Ok((view, hash))
}

/// A file name as the officer knows it: 1 to 255 characters, no slashes.
pub(crate) fn checked_name(name: &str) -> Result<&str, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 255 || name.contains(['/', '\\', '\0']) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "name must be a file name of 1 to 255 characters, without slashes.",
        ));
    }
    Ok(name)
}

/// The type of a file from its first bytes, if it is one this instance takes.
pub(crate) fn accepted_type(
    state: &AppState,
    name: &str,
    head: &[u8],
) -> Result<&'static str, ApiError> {
    sniff(head)
        .filter(|m| state.attachments.types.iter().any(|t| t == m))
        .ok_or_else(|| {
            ApiError::unsupported_type(format!(
                "{name}: this file's content is not one of the accepted types ({}).",
                state.attachments.types.join(", ")
            ))
        })
}

/// How long opening a file that is still upstream waits for it to come down
/// before answering that it is on its way.
const FETCH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// What a client is told to wait before asking again for such a file.
const FETCH_RETRY_SECS: u64 = 15;

/// `GET /api/v1/blobs/{sha256}`: the file, with its type, an ETag and ranges.
///
/// A file referenced here but not yet arrived is asked of the upstream
/// (files come down only when someone opens them); small files over a good
/// link are served in the same request, others answer 404 `pending` with a
/// `Retry-After`.
pub async fn blob(
    state: web::Data<AppState>,
    access: Access,
    hash: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    access.require(Action::ReadRecords)?;
    let hash: BlobHash = hash.parse().map_err(|e: tideline_sync::blobs::BadHash| {
        ApiError::bad_request("invalid_hash", e.to_string())
    })?;
    let (st, a) = (state.clone(), access.clone());
    let visible = web::block(move || a.records(&st).references_file(&hash)).await??;
    if !visible {
        return Err(ApiError::not_found(
            "not_found",
            format!("No file {hash} here."),
        ));
    }
    let requested = fetch_from_upstream(&state, hash).await;
    let Some(path) = state.blobs.path(&hash) else {
        let message = if requested {
            format!("File {hash} is on its way from the upstream; ask again shortly.")
        } else {
            format!("File {hash} is referenced but has not arrived here yet.")
        };
        let mut error = ApiError::not_found("pending", message);
        if requested {
            error = error.with_details(json!({
                "requested": true,
                "retry_after_secs": FETCH_RETRY_SECS,
            }));
        }
        return Err(error);
    };
    let st = state.clone();
    web::block(move || {
        access.audit(
            &st,
            Event::new(access.actor(), "blob.view").target(hash.to_hex()),
        )
    })
    .await??;
    serve_file(&path, &req)
}

/// If `hash` is not here and this instance has an upstream, ask the upstream
/// for it and wait a little for it to arrive. Returns whether it was asked
/// for. The sync goes on if the wait ends first, so the file is here for the
/// next request; a station asked by a boat passes the request up the same way.
pub(crate) async fn fetch_from_upstream(state: &AppState, hash: BlobHash) -> bool {
    let Some(agent) = state.agent.as_ref().filter(|_| !state.blobs.has(&hash)) else {
        return false;
    };
    agent.request_file(hash);
    let sync = tokio::spawn({
        let agent = agent.clone();
        async move { agent.sync_now().await }
    });
    let _ = tokio::time::timeout(FETCH_WAIT, sync).await;
    true
}

/// A stored file as an HTTP answer: its type from its first bytes, an ETag,
/// and byte ranges, so a cut download resumes instead of starting again.
pub(crate) fn serve_file(
    path: &std::path::Path,
    req: &HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let head = {
        use std::io::Read;
        let mut buf = [0u8; 64];
        let n = std::fs::File::open(path)
            .and_then(|mut f| f.read(&mut buf))
            .map_err(ApiError::internal)?;
        buf[..n].to_vec()
    };
    let mime: actix_web::mime::Mime = sniff(&head)
        .unwrap_or("application/octet-stream")
        .parse()
        .unwrap_or(actix_web::mime::APPLICATION_OCTET_STREAM);
    let file = actix_files::NamedFile::open(path)
        .map_err(ApiError::internal)?
        .set_content_type(mime)
        .use_last_modified(false);
    Ok(file.into_response(req))
}

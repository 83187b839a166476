//! Attaching files to records and serving them back (docs/DESIGN.md §8).
//!
//! The type of a file is decided from its first bytes, never from what the
//! client claims, and checked against the configured list. A blob is readable
//! by whoever may read some record that references it.

use super::record_id;
use crate::access::{Access, Action};
use crate::auth::Event;
use crate::error::ApiError;
use crate::startup::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use tideline_sync::blobs::{BlobError, BlobHash};
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

fn blob_error(e: BlobError) -> ApiError {
    ApiError::internal(e)
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
    let name = name.trim().to_string();
    if name.is_empty() || name.chars().count() > 255 || name.contains(['/', '\\', '\0']) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "name must be a file name of 1 to 255 characters, without slashes.",
        ));
    }
    let limit = state.attachments.max_bytes;
    let bytes = match payload.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            return Err(ApiError::bad_request(
                "bad_body",
                format!("The file could not be read: {e}."),
            ))
        }
        Err(_) => return Err(ApiError::too_large(limit)),
    };
    let mime = sniff(&bytes)
        .filter(|m| state.attachments.types.iter().any(|t| t == m))
        .ok_or_else(|| {
            ApiError::unsupported_type(format!(
                "This file's content is not one of the accepted types ({}).",
                state.attachments.types.join(", ")
            ))
        })?;
    let st = state.clone();
    let view = web::block(move || -> Result<_, ApiError> {
        // Scope and role first: nothing is stored for a record you cannot change.
        access.records(&st).check_writable(&id)?;
        st.records.check_image_field(&id, field.as_deref())?;
        let hash = st.blobs.put(&bytes).map_err(blob_error)?;
        let attachment = Attachment {
            sha256: hash,
            name,
            mime: mime.to_string(),
            size: bytes.len() as u64,
        };
        let view = st
            .records
            .add_attachment(&id, &attachment, field.as_deref())?;
        access.audit(
            &st,
            Event::new(access.actor(), "record.attach")
                .target(id.to_string())
                .details(json!({ "sha256": hash, "mime": mime, "size": attachment.size })),
        )?;
        Ok(view)
    })
    .await??;
    state.local_change();
    Ok(HttpResponse::Created().json(view))
}

/// `GET /api/v1/blobs/{sha256}`: the file, with its type, an ETag and ranges.
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
    let st = state.clone();
    let path = web::block(move || -> Result<_, ApiError> {
        let visible = st.records.references(&hash, access.station())?;
        let missing = || ApiError::not_found("not_found", format!("No file {hash} here."));
        if !visible {
            return Err(missing());
        }
        let path = st.blobs.path(&hash).ok_or_else(|| {
            ApiError::not_found(
                "pending",
                format!("File {hash} is referenced but has not arrived here yet."),
            )
        })?;
        access.audit(
            &st,
            Event::new(access.actor(), "blob.view").target(hash.to_hex()),
        )?;
        Ok(path)
    })
    .await??;
    let head = {
        use std::io::Read;
        let mut buf = [0u8; 64];
        let n = std::fs::File::open(&path)
            .and_then(|mut f| f.read(&mut buf))
            .map_err(ApiError::internal)?;
        buf[..n].to_vec()
    };
    let mime: actix_web::mime::Mime = sniff(&head)
        .unwrap_or("application/octet-stream")
        .parse()
        .unwrap_or(actix_web::mime::APPLICATION_OCTET_STREAM);
    let file = actix_files::NamedFile::open(&path)
        .map_err(ApiError::internal)?
        .set_content_type(mime)
        .use_last_modified(false);
    Ok(file.into_response(&req))
}

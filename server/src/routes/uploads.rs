//! The entry page's photo uploads (`crate::uploads`): begin one, ask how much
//! is held, append a chunk at that offset. The last chunk completes it: the
//! type is checked from the bytes, and the photo is attached to its record
//! at once, or kept for the report's first save ([`attach_waiting`]).
//!
//! ```text
//! POST  /api/v1/uploads  {"name","size","field","record"|"form"} → 201 {"id","held":0,"chunk_bytes"}
//! GET   /api/v1/uploads/{id}                                     → {"held","size","complete"}
//! PATCH /api/v1/uploads/{id}?offset=N  <chunk>                   → {"held"} | {"held","sha256","attached"}
//! ```

use super::attachments::{accepted_type, checked_name, store_attachment};
use super::params::record_id;
use crate::access::{Access, Action};
use crate::error::ApiError;
use crate::state::AppState;
use crate::uploads::Upload;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value as Json};
use tideline_schemas::{FieldType, Form, RecordId};
use tideline_sync::blobs::BlobHash;
use uuid::Uuid;

/// The chunk size browsers are told to use: one fsync and one round trip
/// per MiB, and little to send again when a link drops mid-chunk.
pub const CHUNK_BYTES: usize = 1024 * 1024;
/// The largest chunk accepted.
const MAX_CHUNK: usize = 4 * 1024 * 1024;
/// Bytes enough to tell every accepted type from its start.
const SNIFF_BYTES: usize = 512;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Begin {
    name: String,
    size: u64,
    field: String,
    /// The saved record the photo is for...
    record: Option<String>,
    /// ...or the form of a report not saved yet.
    form: Option<String>,
}

fn is_image_field(form: &Form, field: &str) -> bool {
    form.fields
        .iter()
        .any(|f| f.name == field && f.field_type == FieldType::Image)
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_id",
            format!("{raw:?} is not a valid upload id (a UUID)."),
        )
    })
}

/// `POST /api/v1/uploads`
pub async fn begin(
    state: web::Data<AppState>,
    access: Access,
    body: web::Json<Begin>,
) -> Result<HttpResponse, ApiError> {
    access.require(Action::WriteRecords)?;
    let Begin {
        name,
        size,
        field,
        record,
        form,
    } = body.into_inner();
    let name = checked_name(&name)?.to_string();
    let limit = state.attachments.max_bytes;
    if size > limit as u64 {
        return Err(ApiError::file_too_large(&name, size, limit));
    }
    if size == 0 {
        return Err(ApiError::bad_request(
            "empty_file",
            format!("{name} is empty."),
        ));
    }
    let record = record.as_deref().map(record_id).transpose()?;
    let st = state.clone();
    let upload = web::block(move || -> Result<Upload, ApiError> {
        match (record, form) {
            (Some(id), _) => {
                access.records(&st).check_attachable(&id, Some(&field))?;
            }
            (None, Some(form)) => {
                let forms = st.records.forms();
                let known = forms.latest(&form).ok_or_else(|| {
                    ApiError::unprocessable(
                        "unknown_form",
                        format!("There is no form called {form:?}."),
                    )
                })?;
                if !is_image_field(known, &field) {
                    return Err(ApiError::unprocessable(
                        "not_an_image_field",
                        format!("{field:?} is not an image field of form {form:?}."),
                    ));
                }
            }
            (None, None) => {
                return Err(ApiError::bad_request(
                    "missing_target",
                    "Say which record (record) or, for a report not saved yet, which form (form) the photo is for.",
                ))
            }
        }
        let upload = Upload {
            id: Uuid::new_v4(),
            owner: access.actor(),
            name,
            size,
            field,
            record,
            sha256: None,
        };
        st.uploads.begin(&upload)?;
        Ok(upload)
    })
    .await??;
    Ok(HttpResponse::Created().json(json!({
        "id": upload.id,
        "held": 0,
        "size": upload.size,
        "chunk_bytes": CHUNK_BYTES,
    })))
}

/// `GET /api/v1/uploads/{id}`
pub async fn status(
    state: web::Data<AppState>,
    access: Access,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let st = state.clone();
    let (upload, held) = web::block(move || -> Result<_, ApiError> {
        let upload = st.uploads.get(&access.actor(), &id)?;
        let held = st.uploads.held(&id)?;
        Ok((upload, held))
    })
    .await??;
    Ok(HttpResponse::Ok().json(json!({
        "held": held,
        "size": upload.size,
        "complete": upload.sha256.is_some(),
        "sha256": upload.sha256,
    })))
}

/// `PATCH /api/v1/uploads/{id}?offset=N` with a chunk.
pub async fn append(
    state: web::Data<AppState>,
    access: Access,
    id: web::Path<String>,
    query: web::Query<super::params::OffsetQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    // A chunk is appended only when it arrived whole.
    let chunk = super::params::read_limited(payload, MAX_CHUNK, "chunk").await?;
    let offset = query.offset;
    let st = state.clone();
    let answer = web::block(move || -> Result<Json, ApiError> {
        let owner = access.actor();
        let upload = st.uploads.get(&owner, &id)?;
        if upload.sha256.is_some() {
            return Err(ApiError::conflict(
                "upload_complete",
                format!("{} is uploaded already.", upload.name),
            ));
        }
        // A file of a refused type is refused as soon as its start is here,
        // not after the whole of it has crossed a slow link.
        let window = upload.size.min(SNIFF_BYTES as u64) as usize;
        if offset == 0 && chunk.len() >= window {
            if let Err(e) = accepted_type(&st, &upload.name, &chunk[..window]) {
                st.uploads.remove(&id)?;
                return Err(e);
            }
        }
        let held = st.uploads.append(&owner, &id, offset, &chunk)?;
        if held < upload.size {
            return Ok(json!({ "held": held }));
        }
        finish(&st, &access, &upload)
    })
    .await??;
    Ok(HttpResponse::Ok().json(answer))
}

/// Every byte is here: attach the photo to its record, or check it and keep
/// it for its report's first save.
fn finish(state: &AppState, access: &Access, upload: &Upload) -> Result<Json, ApiError> {
    let bytes = state.uploads.bytes(&upload.id)?;
    let refused = |e: ApiError| -> ApiError {
        // A refused file is not kept: it would only be refused again.
        if e.status().is_client_error() {
            if let Err(gone) = state.uploads.remove(&upload.id) {
                return ApiError::from(gone);
            }
        }
        e
    };
    match upload.record {
        Some(id) => {
            let (_, hash) = store_attachment(
                state,
                access,
                &id,
                &upload.name,
                Some(&upload.field),
                &bytes,
            )
            .map_err(refused)?;
            state.uploads.remove(&upload.id)?;
            Ok(json!({ "held": upload.size, "sha256": hash, "attached": true }))
        }
        None => {
            accepted_type(state, &upload.name, &bytes).map_err(refused)?;
            let hash = BlobHash::of(&bytes);
            state.uploads.complete(upload, hash)?;
            Ok(json!({ "held": upload.size, "sha256": hash, "attached": false }))
        }
    }
}

/// `owner`'s uploads waiting for a report, as the entry page lists files.
pub(crate) fn waiting_as_attachments(state: &AppState, access: &Access) -> Vec<Json> {
    match state.uploads.waiting(&access.actor()) {
        Ok(list) => list
            .into_iter()
            .map(|u| json!({ "sha256": u.sha256, "name": u.name, "waiting": true }))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "uploads could not be listed");
            Vec::new()
        }
    }
}

/// What [`take_waiting`] found in a report's image fields.
#[derive(Default)]
pub(crate) struct Taken {
    /// Photos uploaded before the report was saved, to attach once it is.
    pub waiting: Vec<Upload>,
    /// Hashes neither attached to the record nor waiting (an upload that
    /// expired, say): field and hash.
    pub missing: Vec<(String, String)>,
}

/// Take out of a report's image fields every hash that is not one of the
/// record's `attached` files: those of photos its author uploaded before it
/// was saved are attached once it is ([`attach_waiting`], which puts them
/// back); any other is dropped and named.
pub(crate) fn take_waiting(
    state: &AppState,
    access: &Access,
    form: &Form,
    attached: &Json,
    fields: &mut Map<String, Json>,
) -> Result<Taken, ApiError> {
    let waiting = state.uploads.waiting(&access.actor())?;
    let is_attached = |hash: &str| {
        attached
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["sha256"].as_str() == Some(hash))
    };
    let mut taken = Taken::default();
    for f in form
        .fields
        .iter()
        .filter(|f| f.field_type == FieldType::Image)
    {
        let Some(value) = fields.get_mut(&f.name) else {
            continue;
        };
        let mut keep = |hash: &Json| {
            let Some(hash) = hash.as_str() else {
                return true;
            };
            if is_attached(hash) {
                return true;
            }
            match waiting
                .iter()
                .find(|u| u.sha256.map(|h| h.to_hex()).as_deref() == Some(hash))
            {
                Some(u) => taken.waiting.push(Upload {
                    field: f.name.clone(),
                    ..u.clone()
                }),
                None => taken.missing.push((f.name.clone(), hash.to_string())),
            }
            false
        };
        let emptied = match value {
            Json::Array(list) => {
                list.retain(|h| keep(h));
                list.is_empty()
            }
            single => !keep(single),
        };
        if emptied {
            fields.remove(&f.name);
        }
    }
    Ok(taken)
}

/// Attach to record `id` the uploads [`take_waiting`] took out; one that
/// cannot be is named in the result, by field, with the reason.
pub(crate) fn attach_waiting(
    state: &AppState,
    access: &Access,
    id: &RecordId,
    uploads: Vec<Upload>,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut problems = Vec::new();
    for upload in uploads {
        let bytes = state.uploads.bytes(&upload.id)?;
        match store_attachment(state, access, id, &upload.name, Some(&upload.field), &bytes) {
            Ok(_) => state.uploads.remove(&upload.id)?,
            Err(e) if e.status().is_client_error() => {
                problems.push((upload.field, e.message().to_string()))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(problems)
}

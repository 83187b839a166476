//! Submissions (`HEAD` and `POST .../submission`): a phone's filled form
//! becomes an ordinary record of this instance, and where ODK stops,
//! Tideline merges and resumes (docs/ODK.md):
//!
//! - the same instance sent again with the same XML (a lost answer, or the
//!   next part of an upload Collect split) adds only the files not yet here;
//! - the same instance with other XML is refused (409): answers are never
//!   silently replaced;
//! - an instance whose `deprecatedID` names one held here is an edit, applied
//!   as a revision of that record (`Records::revise`), so what others changed
//!   meanwhile survives and a field both changed is a conflict.
//!
//! Each instance id maps to its record, the XML's hash, its files and the
//! record's heads after the write (`odk/instance/<id>` in the store).

use super::caller::Caller;
use super::reply::{message, reply, OpenRosaError};
use crate::access::Access;
use crate::error::ApiError;
use crate::routes::attachments::{accepted_type, checked_name};
use crate::routes::params::is_multipart;
use crate::state::AppState;
use actix_web::http::header::HeaderName;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;
use tideline_schemas::submission::{self, InstanceError, MAX_INSTANCE_BYTES};
use tideline_schemas::RecordId;
use tideline_sync::blobs::BlobHash;
use tideline_sync::records::{Attachment, Submission};
use tideline_sync::store::{Commit, StateWrite};
use tideline_sync::{ChangeHash, DocStore, StoreError};

const INSTANCE_PREFIX: &[u8] = b"odk/instance/";
/// Parts of one POST: the XML, the flag, and the files Collect fits under
/// the advertised length.
const MAX_PARTS: usize = 64;
/// Room for the multipart framing around the files and the XML.
const FRAMING: usize = 64 * 1024;
const ACCEPT_HEADER: HeaderName = HeaderName::from_static("x-openrosa-accept-content-length");

/// Submissions are few and quick; taking them one at a time keeps the
/// instance index and its record in step without a lock per instance.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// What Collect may send in one POST; it splits larger uploads.
fn accept(state: &AppState) -> usize {
    state.attachments.max_bytes
}

/// `HEAD .../submission`: Collect sends its files only after a 204.
pub async fn head(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, OpenRosaError> {
    Caller::of(&state, &req).await?;
    Ok(reply(StatusCode::NO_CONTENT)
        .insert_header((ACCEPT_HEADER, accept(&state)))
        .finish())
}

/// One POST as read: the instance XML, the files, and whether more follow.
struct Parts {
    xml: Vec<u8>,
    files: Vec<(String, Vec<u8>)>,
    incomplete: bool,
}

/// `POST .../submission`: multipart with `xml_submission_file` and the files.
pub async fn post(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OpenRosaError> {
    let caller = Caller::of(&state, &req).await?;
    let parts = read_parts(&state, &req, payload).await?;
    let st = state.clone();
    let text = web::block(move || {
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        store(&st, &caller.access, parts)
    })
    .await??;
    Ok(reply(StatusCode::CREATED)
        .insert_header((ACCEPT_HEADER, accept(&state)))
        .body(message("submit_success", &text)))
}

async fn read_parts(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Parts, OpenRosaError> {
    let bad = |m: String| OpenRosaError::from(ApiError::bad_request("bad_submission", m));
    if !is_multipart(req) {
        return Err(bad(
            "A submission is multipart/form-data with the form's answers as xml_submission_file, as ODK Collect sends it.".into(),
        ));
    }
    let file_limit = state.attachments.max_bytes;
    let total_limit = accept(state) + MAX_INSTANCE_BYTES + FRAMING;
    let mut parts = actix_multipart::Multipart::new(req.headers(), payload);
    let mut out = Parts {
        xml: Vec::new(),
        files: Vec::new(),
        incomplete: false,
    };
    let (mut total, mut count, mut has_xml) = (0usize, 0usize, false);
    while let Some(part) = parts.next().await {
        let mut part = part.map_err(|e| bad(format!("The upload could not be read: {e}.")))?;
        count += 1;
        if count > MAX_PARTS {
            return Err(bad(format!(
                "A submission has at most {MAX_PARTS} parts; send fewer files at once."
            )));
        }
        let name = part.name().unwrap_or_default().to_string();
        let filename = part
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .map(str::to_string);
        let (limit, what) = match name.as_str() {
            "xml_submission_file" => (MAX_INSTANCE_BYTES, "The form's answers (XML)".to_string()),
            "*isIncomplete*" => (16, "The incomplete flag".to_string()),
            _ => (file_limit, filename.clone().unwrap_or_else(|| name.clone())),
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = part.next().await {
            let chunk = chunk.map_err(|e| bad(format!("The upload could not be read: {e}.")))?;
            total += chunk.len();
            if total > total_limit {
                return Err(ApiError::too_large(total_limit).into());
            }
            if bytes.len() + chunk.len() > limit {
                return Err(ApiError::over_limit(&what, limit).into());
            }
            bytes.extend_from_slice(&chunk);
        }
        match name.as_str() {
            "xml_submission_file" => {
                out.xml = bytes;
                has_xml = true;
            }
            "*isIncomplete*" => out.incomplete = bytes.trim_ascii() == b"yes",
            _ => out.files.push((filename.unwrap_or(name), bytes)),
        }
    }
    if !has_xml {
        return Err(bad(
            "The submission has no xml_submission_file part with the form's answers.".into(),
        ));
    }
    Ok(out)
}

/// What this instance knows of one ODK instance it received.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Received {
    record: RecordId,
    /// Hex SHA-256 of the instance XML.
    xml: String,
    /// File name → hex SHA-256, every file received for it.
    files: BTreeMap<String, String>,
    /// The record's heads (hex) after the last write for this instance.
    heads: Vec<String>,
}

fn instance_key(instance: &str) -> Vec<u8> {
    [INSTANCE_PREFIX, instance.as_bytes()].concat()
}

fn received(store: &dyn DocStore, instance: &str) -> Result<Option<Received>, StoreError> {
    match store.get_state(&instance_key(instance))? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("ODK instance {instance}"))),
        None => Ok(None),
    }
}

/// Keep what is known of `instance` (None forgets it), durably.
fn note(store: &dyn DocStore, instance: &str, r: Option<&Received>) -> Result<(), ApiError> {
    let value = r
        .map(serde_json::to_vec)
        .transpose()
        .map_err(ApiError::internal)?;
    store
        .commit(Commit {
            records: Vec::new(),
            state: vec![StateWrite {
                key: instance_key(instance),
                value,
            }],
        })
        .map(|_| ())
        .map_err(ApiError::internal)
}

fn heads_of(store: &dyn DocStore, id: &RecordId) -> Result<Vec<String>, ApiError> {
    let summary = store
        .summary(id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal("a record just written is missing"))?;
    Ok(summary
        .change_hashes()
        .iter()
        .map(ChangeHash::to_string)
        .collect())
}

fn parse_heads(heads: &[String]) -> Vec<ChangeHash> {
    heads.iter().filter_map(|h| h.parse().ok()).collect()
}

fn refused(e: InstanceError) -> ApiError {
    ApiError::bad_request(
        "invalid_submission",
        format!("The submission cannot be read: {e}. Nothing was saved."),
    )
}

/// Carry out one POST; returns what the phone is told. Blocking.
fn store(state: &AppState, access: &Access, parts: Parts) -> Result<String, ApiError> {
    let document = submission::parse(&parts.xml).map_err(refused)?;
    let header = document.header();
    if header.instance_id.len() > 256 || header.instance_id.chars().any(char::is_control) {
        return Err(refused(InstanceError::NoInstanceId));
    }
    let forms = state.records.forms();
    let form = match header.version.as_deref() {
        Some(v) => v.parse().ok().and_then(|v| forms.get(&header.form_id, v)),
        None => forms.latest(&header.form_id),
    }
    .ok_or_else(|| {
        ApiError::unprocessable(
            "unknown_form_version",
            format!(
                "This server has no form {:?} version {}. Get the blank form again and fill it anew.",
                header.form_id,
                header.version.as_deref().unwrap_or("(none)")
            ),
        )
    })?;
    // Read the answers before anything is kept, so a broken one changes nothing.
    document.read(form, &|_| None).map_err(refused)?;
    let store = state.records.store().as_ref();
    let scoped = access.records(state);
    let known = received(store, &header.instance_id)
        .map_err(ApiError::internal)?
        .filter(|r| store.summary(&r.record).ok().flatten().is_some());
    let edits = match (&known, &header.deprecated_id) {
        (None, Some(old)) => received(store, old).map_err(ApiError::internal)?,
        _ => None,
    };
    // The record this instance's answers go to: its own, or the one it edits.
    let target = known.as_ref().or(edits.as_ref());
    match target {
        Some(r) => scoped.check_writable(&r.record)?,
        None => scoped.check_creatable()?,
    }
    let xml_hash = BlobHash::of(&parts.xml).to_hex();
    if let Some(r) = &known {
        if r.xml != xml_hash {
            return Err(ApiError::conflict(
                "instance_changed",
                format!(
                    "This form ({}) was already sent with other answers, and answers are never replaced silently. \
                     To change them, edit the record in Tideline, or send it as an edit of this one.",
                    header.instance_id
                ),
            ));
        }
    }
    let files = keep_files(state, &parts.files)?;
    let had: BTreeMap<String, String> = target.map(|r| r.files.clone()).unwrap_or_default();
    let mut all = had.clone();
    for a in &files {
        all.insert(a.name.clone(), a.sha256.to_hex());
    }
    let instance = document
        .read(form, &|name| all.get(name).cloned())
        .map_err(refused)?;
    let new_files: Vec<Attachment> = files
        .into_iter()
        .filter(|a| had.get(&a.name) != Some(&a.sha256.to_hex()))
        .collect();
    let waiting = instance
        .files
        .iter()
        .filter(|n| !all.contains_key(*n))
        .count();
    let (id, what) = match target {
        Some(r) => {
            if known.is_some() && new_files.is_empty() {
                return Ok(format!(
                    "Already received as record {}; nothing more to add.",
                    r.record
                ));
            }
            // Written but not noted (a crash between the two): the record as
            // it is now is what the phone's answers were applied to.
            let base = match r.heads.is_empty() {
                true => heads_of(store, &r.record)?,
                false => r.heads.clone(),
            };
            let written =
                scoped.revise(&r.record, &parse_heads(&base), &instance.fields, &new_files)?;
            let what = if known.is_some() {
                "Files added to"
            } else {
                "Edit applied to"
            };
            (written.id, what)
        }
        None => {
            // The record's id is kept before the record is written, so a
            // resend after a crash between the two finds it.
            let id = RecordId::new();
            let pending = Received {
                record: id,
                xml: xml_hash.clone(),
                files: all.clone(),
                heads: Vec::new(),
            };
            note(store, &header.instance_id, Some(&pending))?;
            let written = scoped.submit(Submission {
                id,
                form: &form.id,
                version: form.version,
                fields: &instance.fields,
                attachments: &new_files,
                instance: &header.instance_id,
            });
            if written.is_err() {
                // Refused: a corrected form may come with the same instance id.
                note(store, &header.instance_id, None)?;
            }
            (written?.id, "Saved as")
        }
    };
    let done = Received {
        record: id,
        xml: xml_hash,
        files: all,
        heads: heads_of(store, &id)?,
    };
    note(store, &header.instance_id, Some(&done))?;
    let mut text = format!("{what} record {id}.");
    if waiting > 0 || parts.incomplete {
        text.push_str(&format!(" {waiting} file(s) still to come."));
    }
    Ok(text)
}

/// Check every file's name and type first, then keep them all: a refused
/// file leaves nothing behind.
fn keep_files(state: &AppState, files: &[(String, Vec<u8>)]) -> Result<Vec<Attachment>, ApiError> {
    let mut checked = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        let name = checked_name(name)?;
        let mime = accepted_type(state, name, bytes)?;
        checked.push((name, mime, bytes));
    }
    checked
        .into_iter()
        .map(|(name, mime, bytes)| {
            Ok(Attachment {
                sha256: state.blobs.put(bytes)?,
                name: name.to_string(),
                mime: mime.to_string(),
                size: bytes.len() as u64,
            })
        })
        .collect()
}

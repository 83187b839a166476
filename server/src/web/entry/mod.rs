//! Entering and editing a record, with the page drawn from the form
//! definition: every field type, repeats with add and remove, the device's
//! position with a manual fallback, and photos.
//!
//! What was typed is the source of truth while the page is open: the posted
//! form (name → values, `f.crew[1].name`) is drawn back exactly as typed,
//! with each problem beside its field. Saving a draft stores whatever types
//! correctly; Submit stores first and then asks for the `submitted` status,
//! so nothing typed is lost when the record is not complete yet. Adding or
//! removing a repeat item redraws the page without saving, so it works
//! without JavaScript.
//!
//! `posted` turns the form into fields and back (pure), `render` draws the
//! page, `multipart` reads the post, `storable` decides what of it can be
//! stored now; the handlers here put them together.

mod multipart;
mod posted;
mod render;
mod storable;

use super::layout::Chrome;
use super::page::{page, PageResult};
use crate::access::{Access, Action};
use crate::error::ApiError;
use crate::links::see_other;
use crate::routes::params::record_id;
use crate::state::AppState;
use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use multipart::{read_multipart, Upload};
use posted::{changed_fields, fields_of, flatten, items, one, Posted};
use render::{entry_page, Drawn};
use serde::Deserialize;
use serde_json::{Map, Value as Json};
use std::collections::BTreeSet;
use storable::Problems;
use tideline_schemas::{Form, RecordId};
use tideline_sync::{Patch, Status};

#[derive(Deserialize)]
pub struct NewQuery {
    form: String,
}

/// Violations from the record service, by path.
fn problems_of(e: &ApiError, problems: &mut Problems) {
    for v in e.details().as_array().into_iter().flatten() {
        let path = v["path"].as_str().unwrap_or_default();
        // `position.lat` is shown at `position`.
        let path = path
            .strip_suffix(".lat")
            .or_else(|| path.strip_suffix(".lon"))
            .unwrap_or(path);
        problems
            .entry(path.to_string())
            .or_default()
            .push(v["message"].as_str().unwrap_or("Not valid.").to_string());
    }
}

/// `GET /records/new?form=ID`
pub async fn new_page(
    state: web::Data<AppState>,
    access: Access,
    query: web::Query<NewQuery>,
) -> PageResult {
    access.require(Action::WriteRecords)?;
    let forms = state.records.forms();
    let form = forms.latest(&query.form).ok_or_else(|| {
        ApiError::not_found(
            "unknown_form",
            format!("There is no form called {:?}.", query.form),
        )
    })?;
    let chrome = Chrome::new(&state, &access);
    Ok(page(entry_page(
        &chrome,
        form,
        &format!("/records/new?form={}", form.id),
        &defaults(form),
        &Problems::new(),
        &Json::Null,
        None,
        None,
        Drawn::Opened,
    )))
}

/// `GET /records/{id}/edit`
pub async fn edit_page(
    state: web::Data<AppState>,
    access: Access,
    id: web::Path<String>,
) -> PageResult {
    let id = record_id(&id)?;
    let chrome = Chrome::new(&state, &access);
    let (view, form) = writable(&state, &access, id).await?;
    let form = &form;
    let mut posted = Posted::new();
    flatten(&form.fields, &view["fields"], "", &mut posted);
    // What the page showed, so that saving sends only what was changed here.
    posted.insert("_orig".into(), vec![view["fields"].to_string()]);
    Ok(page(entry_page(
        &chrome,
        form,
        &format!("/records/{id}/edit"),
        &posted,
        &Problems::new(),
        &view["attachments"],
        None,
        Some(id),
        Drawn::Opened,
    )))
}

/// A record the caller may change, as its view and the form it was made with.
async fn writable(
    state: &web::Data<AppState>,
    access: &Access,
    id: RecordId,
) -> Result<(Json, Form), ApiError> {
    let (st, a) = (state.clone(), access.clone());
    let view = web::block(move || -> Result<_, ApiError> {
        a.records(&st).check_writable(&id)?;
        a.records(&st).get(&id)
    })
    .await??;
    let view: Json = serde_json::from_str(view.get()).map_err(ApiError::internal)?;
    let form = form_of(state, &view)?;
    Ok((view, form))
}

fn form_of(state: &AppState, view: &Json) -> Result<Form, ApiError> {
    state
        .records
        .forms()
        .get(
            view["form"].as_str().unwrap_or_default(),
            view["form_version"].as_u64().unwrap_or(0) as u32,
        )
        .cloned()
        .ok_or_else(|| {
            ApiError::unprocessable(
                "unknown_form_version",
                "This record's form is not known here.",
            )
        })
}

/// `POST /records/new?form=ID`
pub async fn create(
    state: web::Data<AppState>,
    access: Access,
    query: web::Query<NewQuery>,
    body: Multipart,
) -> PageResult {
    access.require(Action::WriteRecords)?;
    let form = state
        .records
        .forms()
        .latest(&query.form)
        .ok_or_else(|| {
            ApiError::not_found(
                "unknown_form",
                format!("There is no form called {:?}.", query.form),
            )
        })?
        .clone();
    save(state, access, form, None, Json::Null, body).await
}

/// `POST /records/{id}/edit`
pub async fn update(
    state: web::Data<AppState>,
    access: Access,
    id: web::Path<String>,
    body: Multipart,
) -> PageResult {
    let id = record_id(&id)?;
    let (view, form) = writable(&state, &access, id).await?;
    save(
        state,
        access,
        form,
        Some(id),
        view["attachments"].clone(),
        body,
    )
    .await
}

/// How a posted entry page is drawn again: its form and frame, and the
/// record it was opened on (if any).
struct Redraw<'a> {
    chrome: Chrome,
    form: &'a Form,
    existing: Option<RecordId>,
}

/// What a page drawn again shows besides the values posted.
struct Shown<'a> {
    problems: &'a Problems,
    attachments: &'a Json,
    notice: Option<&'a str>,
    /// The record the page edits from now on, once something is stored.
    stored: Option<RecordId>,
    status: StatusCode,
}

impl Redraw<'_> {
    fn draw(&self, posted: &Posted, shown: Shown) -> HttpResponse {
        let id = shown.stored.or(self.existing);
        let action = match id {
            Some(id) => format!("/records/{id}/edit"),
            None => format!("/records/new?form={}", self.form.id),
        };
        let mut resp = page(entry_page(
            &self.chrome,
            self.form,
            &action,
            posted,
            shown.problems,
            shown.attachments,
            shown.notice,
            id,
            if shown.stored.is_some() {
                Drawn::Stored
            } else {
                Drawn::Posted
            },
        ));
        *resp.status_mut() = shown.status;
        resp
    }
}

/// What the page's action asks for besides storing: drawing the restored
/// copy again, or one repeat item more or less. Changes `posted`
/// accordingly; false when the action is a save.
fn rearrange(action: &str, posted: &mut Posted) -> bool {
    if action == "restore" {
        return true;
    }
    if let Some(path) = action.strip_prefix("add:") {
        let next = items(posted, path).last().map_or(0, |i| i + 1);
        posted.insert(format!("f.{path}[{next}]._row"), vec!["1".into()]);
        return true;
    }
    if let Some(item) = action.strip_prefix("remove:") {
        let prefix = format!("f.{item}.");
        posted.retain(|k, _| !k.starts_with(&prefix));
        return true;
    }
    false
}

/// What of a posted page is stored now.
struct Prepared {
    /// Every value that can be stored.
    fields: Map<String, Json>,
    /// The top-level fields an edit may write: not those holding a value
    /// that cannot be stored yet, which stay as stored rather than cleared.
    names: Vec<String>,
    /// Every problem, missing, invalid and cross-field, in one round.
    problems: Problems,
}

fn prepare(form: &Form, posted: &Posted, submit: bool) -> Prepared {
    let tz: i32 = one(posted, "_tz").parse().unwrap_or(0);
    let mut unreadable = Problems::new();
    let fields = fields_of(&form.fields, posted, "", tz, &mut unreadable);
    let (storable, problems) = storable::split(form, &fields, &unreadable, submit);
    let held_back: BTreeSet<&str> = unreadable
        .keys()
        .map(|p| storable::top_level(p))
        .chain(
            form.fields
                .iter()
                .map(|f| f.name.as_str())
                .filter(|n| fields.get(*n) != storable.get(*n)),
        )
        .collect();
    let names = form
        .fields
        .iter()
        .map(|f| f.name.clone())
        .filter(|n| !held_back.contains(n.as_str()))
        .collect();
    Prepared {
        fields: storable,
        names,
        problems,
    }
}

/// What storing a page came to.
struct Stored {
    /// The record's id and view, or why it was refused whole.
    written: Result<(RecordId, Box<serde_json::value::RawValue>), ApiError>,
    /// Photos uploaded for the page that could not be attached: field, why.
    refused: Vec<(String, String)>,
    /// Photos the page names that are no longer on the server: field, hash.
    missing: Vec<(String, String)>,
}

/// Create or patch the record with what can be stored, then attach the
/// photos uploaded before this save (which puts their hashes back in their
/// fields). Blocking: call it inside `web::block`.
fn store(
    state: &AppState,
    access: &Access,
    form: &Form,
    existing: Option<RecordId>,
    attached: &Json,
    original: Option<&Map<String, Json>>,
    mut prepared: Prepared,
) -> Result<Stored, ApiError> {
    let taken =
        crate::routes::uploads::take_waiting(state, access, form, attached, &mut prepared.fields)?;
    let scoped = access.records(state);
    let written = match existing {
        None => scoped
            .create(&form.id, &prepared.fields)
            .map(|w| (w.id, w.view)),
        Some(id) => scoped
            .patch(
                &id,
                &Patch {
                    fields: Some(changed_fields(&prepared.names, &prepared.fields, original)),
                    status: None,
                },
            )
            .map(|view| (id, view)),
    };
    let mut stored = Stored {
        written,
        refused: Vec::new(),
        missing: taken.missing,
    };
    if let Ok((id, _)) = &stored.written {
        if !taken.waiting.is_empty() {
            let id = *id;
            stored.refused =
                crate::routes::uploads::attach_waiting(state, access, &id, taken.waiting)?;
            stored.written = scoped.get(&id).map(|view| (id, view));
        }
    }
    Ok(stored)
}

/// The files a page drawn unsaved lists: the record's, and the photos
/// uploaded for a report not saved yet (named as such).
async fn files_listed(
    state: &web::Data<AppState>,
    access: &Access,
    attached: &Json,
) -> Result<Json, ApiError> {
    let (st, a) = (state.clone(), access.clone());
    let waiting =
        web::block(move || crate::routes::uploads::waiting_as_attachments(&st, &a)).await?;
    let mut listed = attached.as_array().cloned().unwrap_or_default();
    listed.extend(waiting);
    Ok(Json::Array(listed))
}

/// Handle a posted entry page: redraw for restore/add/remove, else store,
/// attach the photos uploaded for it (and, from a page without the script,
/// the files posted with it), and submit when asked. `attached` lists the
/// record's files as they were before this save.
async fn save(
    state: web::Data<AppState>,
    access: Access,
    form: Form,
    existing: Option<RecordId>,
    attached: Json,
    body: Multipart,
) -> PageResult {
    let (mut posted, uploads, oversized) =
        read_multipart(body, state.max_body_bytes, state.attachments.max_bytes).await?;
    let redraw = Redraw {
        chrome: Chrome::new(&state, &access),
        form: &form,
        existing,
    };
    let action = one(&posted, "_action").to_string();
    // Drawn again with what was posted (the browser's kept copy, or a
    // repeat item more or less); nothing stored.
    if rearrange(&action, &mut posted) {
        return Ok(redraw.draw(
            &posted,
            Shown {
                problems: &Problems::new(),
                attachments: &files_listed(&state, &access, &attached).await?,
                notice: None,
                stored: None,
                status: StatusCode::OK,
            },
        ));
    }
    let submit = action == "submit";
    let mut prepared = prepare(&form, &posted, submit);
    let mut problems = std::mem::take(&mut prepared.problems);
    let original: Option<Map<String, Json>> = posted
        .get("_orig")
        .and_then(|v| v.first())
        .and_then(|o| serde_json::from_str(o).ok());
    let stored = {
        let (st, a, f, before) = (
            state.clone(),
            access.clone(),
            form.clone(),
            attached.clone(),
        );
        web::block(move || store(&st, &a, &f, existing, &before, original.as_ref(), prepared))
            .await??
    };
    for (field, hash) in stored.missing {
        if let Some(values) = posted.get_mut(&format!("f.{field}")) {
            values.retain(|v| *v != hash);
        }
        problems
            .entry(field)
            .or_default()
            .push("A photo chosen earlier is no longer on the server; choose it again.".into());
    }
    for (field, message) in stored.refused {
        problems.entry(field).or_default().push(message);
    }
    let (id, view) = match stored.written {
        Ok(written) => written,
        // Refused whole (an edit that breaks a rule with a field it did not
        // touch): nothing was stored, everything stays on the page.
        Err(e) if e.status() == StatusCode::UNPROCESSABLE_ENTITY => {
            problems_of(&e, &mut problems);
            return Ok(redraw.draw(
                &posted,
                Shown {
                    problems: &problems,
                    attachments: &files_listed(&state, &access, &attached).await?,
                    notice: Some("Not saved yet: fix the problems below, then save again. What you typed is kept here."),
                    stored: None,
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                },
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let mut view: Json = serde_json::from_str(view.get()).map_err(ApiError::internal)?;
    // From here on the page edits the stored record, as it is stored.
    posted.insert("_orig".into(), vec![view["fields"].to_string()]);
    for o in oversized {
        problems.entry(o.field).or_default().push(format!(
            "{} The report is saved without it: choose a smaller photo.",
            ApiError::file_too_large(&o.name, o.size as u64, state.attachments.max_bytes).message()
        ));
    }
    if let Some(v) = attach_posted(&state, &access, id, uploads, &mut posted, &mut problems).await?
    {
        view = v;
    }
    let notice = match (problems.is_empty(), submit) {
        (true, true) => submitted(&state, &access, id, &mut problems).await?,
        (true, false) => None,
        (false, true) => Some("Saved as a draft. It can be submitted once the problems below are fixed; values marked here are kept as you typed them but not saved yet."),
        (false, false) => Some("Saved as a draft. Values marked below are kept as you typed them but not saved yet."),
    };
    if problems.is_empty() {
        // `saved` tells the page's script that the server has what it kept.
        return Ok(see_other(&format!("/records/{id}?saved=1")));
    }
    Ok(redraw.draw(
        &posted,
        Shown {
            problems: &problems,
            attachments: &view["attachments"],
            notice,
            stored: Some(id),
            status: StatusCode::UNPROCESSABLE_ENTITY,
        },
    ))
}

/// Attach the files posted with the page (from a page without the script);
/// one refused is named beside its field. Returns the record's view after
/// the last one attached.
async fn attach_posted(
    state: &web::Data<AppState>,
    access: &Access,
    id: RecordId,
    uploads: Vec<Upload>,
    posted: &mut Posted,
    problems: &mut Problems,
) -> Result<Option<Json>, ApiError> {
    let mut view = None;
    for Upload { field, name, bytes } in uploads {
        let (st, a) = (state.clone(), access.clone());
        let (f, n) = (field.clone(), name.clone());
        let attached = web::block(move || {
            crate::routes::attachments::store_attachment(&st, &a, &id, &n, Some(&f), &bytes)
        })
        .await?;
        match attached {
            Ok((v, hash)) => {
                view = Some(serde_json::from_str(v.get()).map_err(ApiError::internal)?);
                posted
                    .entry(format!("f.{field}"))
                    .or_default()
                    .push(hash.to_hex());
            }
            Err(e) if e.status().is_client_error() => problems
                .entry(field)
                .or_default()
                .push(format!("{name}: {}", e.message())),
            Err(e) => return Err(e),
        }
    }
    Ok(view)
}

/// Ask for `submitted`, now that the draft is stored whole; what the record
/// still lacks goes into `problems`, with the notice to show.
async fn submitted(
    state: &web::Data<AppState>,
    access: &Access,
    id: RecordId,
    problems: &mut Problems,
) -> Result<Option<&'static str>, ApiError> {
    let (st, a) = (state.clone(), access.clone());
    let submitted = web::block(move || {
        a.records(&st).patch(
            &id,
            &Patch {
                fields: None,
                status: Some(Status::Submitted),
            },
        )
    })
    .await?;
    match submitted {
        Ok(_) => Ok(None),
        Err(e) if e.status() == StatusCode::UNPROCESSABLE_ENTITY => {
            problems_of(&e, problems);
            Ok(Some(
                "Saved as a draft. It can be submitted once these are fixed.",
            ))
        }
        Err(e) => Err(e),
    }
}

/// A new record's inputs, filled with the form's defaults.
fn defaults(form: &tideline_schemas::Form) -> Posted {
    fn collect(fields: &[tideline_schemas::Field], out: &mut serde_json::Map<String, Json>) {
        for f in fields {
            if let Some(value) = &f.default {
                out.insert(f.name.clone(), value.clone());
            } else if f.field_type == tideline_schemas::FieldType::Group {
                let mut inner = serde_json::Map::new();
                collect(&f.fields, &mut inner);
                if !inner.is_empty() {
                    out.insert(f.name.clone(), Json::Object(inner));
                }
            }
        }
    }
    let mut values = serde_json::Map::new();
    collect(&form.fields, &mut values);
    let mut posted = Posted::new();
    flatten(&form.fields, &Json::Object(values), "", &mut posted);
    posted
}

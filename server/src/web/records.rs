//! The records list (filters, search, pages, exports) and the record page
//! (fields, attachments, review, conflicts, history), with the supervisor's
//! actions on it.

use super::layout::{frame, when, Chrome};
use super::page::{page, PageError, PageResult};
use crate::access::Access;
use crate::error::ApiError;
use crate::links::{see_other, urlencode};
use crate::routes::params::record_id;
use crate::routes::records::{parse_status, FilterQuery};
use crate::state::AppState;
use actix_web::web;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value as Json;
use tideline_schemas::{Field, FieldType, Form, RecordId};
use tideline_sync::record::HistoryEntry;
use tideline_sync::records::transition_allowed;
use tideline_sync::{Patch, Status};

/// Records per page of the list.
pub const PAGE_SIZE: usize = 50;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(flatten)]
    filter: FilterQuery,
    page: Option<usize>,
}

/// The query string of a filter, for links that keep it.
fn filter_query(f: &FilterQuery) -> String {
    let pairs = [
        ("form", &f.form),
        ("station", &f.station),
        ("status", &f.status),
        ("q", &f.q),
        ("from", &f.from),
        ("to", &f.to),
    ];
    let mut out = String::new();
    for (k, v) in pairs {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(&urlencode(v));
        }
    }
    out
}

const STATUSES: [&str; 4] = ["draft", "submitted", "reviewed", "closed"];

/// `GET /records`
pub async fn list(
    state: web::Data<AppState>,
    access: Access,
    query: web::Query<ListQuery>,
) -> PageResult {
    let ListQuery {
        filter: fq,
        page: page_no,
    } = query.into_inner();
    let page_no = page_no.unwrap_or(1).max(1);
    let filter = fq.filter()?;
    let chrome = Chrome::new(&state, &access);
    let st = state.clone();
    let offset = (page_no - 1) * PAGE_SIZE;
    let (found, stations) = web::block(move || -> Result<_, ApiError> {
        let page = access.records(&st).list(filter, PAGE_SIZE, offset)?;
        let stations = match access.station() {
            Some(own) => vec![own.to_string()],
            None => crate::auth::stations::list(st.records.store().as_ref())
                .map_err(ApiError::internal)?
                .into_iter()
                .map(|s| s.code)
                .collect(),
        };
        Ok((page, stations))
    })
    .await??;
    let rows: Vec<Json> = found
        .records
        .iter()
        .filter_map(|v| serde_json::from_str(v.get()).ok())
        .collect();
    // When each record happened, as the officer entered it (the form's first
    // date and time: the boarding, the sighting), else when it was recorded.
    let forms = state.records.forms();
    let happened = |r: &Json| -> String {
        let form = forms.get(
            r["form"].as_str().unwrap_or_default(),
            r["form_version"].as_u64().unwrap_or(0) as u32,
        );
        form.and_then(|f| {
            f.fields
                .iter()
                .find(|field| field.field_type == tideline_schemas::FieldType::DateTime)
        })
        .and_then(|field| r["fields"][&field.name].as_str())
        .or_else(|| r["created_at"].as_str())
        .map(when)
        .unwrap_or_default()
    };
    let keep = filter_query(&fq);
    let sel = |v: &Option<String>, x: &str| v.as_deref() == Some(x);
    let last_page = found.total.div_ceil(PAGE_SIZE).max(1);
    let body = html! {
        h1 { "Records" }
        form.filters method="get" action="/records" role="search" {
            div.field {
                label for="q" { "Search" }
                input #q name="q" type="search" value=[fq.q.as_deref()]
                    placeholder="Vessel, crew, evidence tag, findings…";
            }
            div.field {
                label for="f-form" { "Form" }
                select #f-form name="form" {
                    option value="" { "All forms" }
                    @for (id, title) in &chrome.forms {
                        option value=(id) selected[sel(&fq.form, id)] { (title) }
                    }
                }
            }
            div.field {
                label for="f-station" { "Station" }
                select #f-station name="station" {
                    option value="" { "All stations" }
                    @for code in &stations {
                        option value=(code) selected[sel(&fq.station, code)] { (code) }
                    }
                }
            }
            div.field {
                label for="f-status" { "Status" }
                select #f-status name="status" {
                    option value="" { "Any status" }
                    @for s in STATUSES {
                        option value=(s) selected[sel(&fq.status, s)] { (s) }
                    }
                }
            }
            div.field {
                label for="f-from" { "Recorded from" }
                input #f-from name="from" type="date" value=[fq.from.as_deref()];
            }
            div.field {
                label for="f-to" { "to" }
                input #f-to name="to" type="date" value=[fq.to.as_deref()];
            }
            div.buttons {
                button.primary type="submit" { "Filter" }
                a href="/records" { "Clear" }
            }
        }
        @if chrome.can.export {
            p.exports {
                "Export these records: "
                @for (format, label) in [("csv", "CSV"), ("geojson", "GeoJSON"), ("jsonl", "JSON lines"), ("zip", "Archive with files (zip)")] {
                    a.button href=(format!("/api/v1/export?format={format}{}{keep}", if keep.is_empty() { "" } else { "&" })) download { (label) }
                    " "
                }
            }
        }
        p #count {
            @if found.total == 0 { "No records match." }
            @else { "Showing " (offset + 1) "–" (offset + rows.len()) " of " (found.total) " record(s)." }
        }
        @if !rows.is_empty() {
            table.records {
                thead { tr { th { "Vessel" } th { "Form" } th { "Station" } th { "Status" } th title="The time of the boarding or sighting, as entered (when it was recorded, if none was)" { "When" } } }
                tbody {
                    @for r in &rows {
                        @let id = r["id"].as_str().unwrap_or_default();
                        @let vessel = r["fields"]["vessel_name"].as_str().filter(|v| !v.is_empty()).unwrap_or("(no vessel name)");
                        tr {
                            td {
                                a href=(format!("/records/{id}")) { (vessel) }
                                @if let Some(reg) = r["fields"]["vessel_registration"].as_str() { " " span.muted { (reg) } }
                                @if r["conflicts"].as_object().is_some_and(|c| !c.is_empty()) { " " span.badge.conflict { "conflict" } }
                            }
                            td { (form_title(&chrome, r["form"].as_str().unwrap_or_default())) }
                            td { (r["station"].as_str().unwrap_or_default()) }
                            td { span.status data-status=(r["status"].as_str().unwrap_or_default()) { (r["status"].as_str().unwrap_or_default()) } }
                            td { (happened(r)) }
                        }
                    }
                }
            }
        }
        @if last_page > 1 {
            nav.pages aria-label="Pages" {
                @if page_no > 1 {
                    a rel="prev" href=(format!("/records?page={}&{keep}", page_no - 1)) { "← Newer" }
                }
                span { "Page " (page_no) " of " (last_page) }
                @if page_no < last_page {
                    a rel="next" href=(format!("/records?page={}&{keep}", page_no + 1)) { "Older →" }
                }
            }
        }
    };
    Ok(page(frame("Records", &chrome, "records", body)))
}

fn form_title(chrome: &Chrome, id: &str) -> String {
    chrome
        .forms
        .iter()
        .find(|(f, _)| f == id)
        .map(|(_, t)| t.clone())
        .unwrap_or_else(|| id.to_string())
}

/// `GET /records/{id}`
pub async fn show(state: web::Data<AppState>, access: Access, id: web::Path<String>) -> PageResult {
    let id = record_id(&id)?;
    render(state, access, id, None).await
}

/// The record page, with `notice` (why the last action failed) on top.
async fn render(
    state: web::Data<AppState>,
    access: Access,
    id: RecordId,
    notice: Option<String>,
) -> PageResult {
    let chrome = Chrome::new(&state, &access);
    let st = state.clone();
    let (view, history, labels) = web::block(move || -> Result<_, ApiError> {
        let scoped = access.records(&st);
        let view = scoped.get(&id)?;
        let history = scoped.history(&id)?;
        let mut labels = std::collections::HashMap::new();
        for h in &history {
            labels
                .entry(h.author.clone())
                .or_insert_with(|| device_label(&st, &h.author));
        }
        Ok((view, history, labels))
    })
    .await??;
    let view: Json = serde_json::from_str(view.get()).map_err(ApiError::internal)?;
    let forms = state.records.forms();
    let form = forms.get(
        view["form"].as_str().unwrap_or_default(),
        view["form_version"].as_u64().unwrap_or(0) as u32,
    );
    let label = |author: &str| {
        labels
            .get(author)
            .cloned()
            .unwrap_or_else(|| device_label(&state, author))
    };
    let status: Option<Status> = view["status"].as_str().and_then(|s| s.parse().ok());
    let conflicts = view["conflicts"].as_object().cloned().unwrap_or_default();
    let title = format!(
        "{} — {}",
        form.map(|f| f.title.as_str()).unwrap_or("Record"),
        view["fields"]["vessel_name"]
            .as_str()
            .unwrap_or("(no vessel name)")
    );
    let body = html! {
        h1 { (title) }
        @if let Some(n) = &notice { p.error role="alert" #notice { (n) } }
        p.meta {
            "Station " strong { (view["station"].as_str().unwrap_or_default()) }
            " · status " span.status #status data-status=(view["status"].as_str().unwrap_or_default()) { (view["status"].as_str().unwrap_or_default()) }
            " · recorded " (when(view["created_at"].as_str().unwrap_or_default()))
            " · last change " (when(view["updated_at"].as_str().unwrap_or_default()))
        }
        div.actions {
            @if chrome.can.write {
                a.button href=(format!("/records/{id}/edit")) #edit { "Edit" }
            }
            @if let Some(from) = status {
                @for (to, label, needs_review) in [
                    (Status::Submitted, if from == Status::Draft { "Submit" } else { "Reopen for review" }, from != Status::Draft),
                    (Status::Reviewed, if from == Status::Closed { "Reopen" } else { "Mark reviewed" }, true),
                    (Status::Closed, "Close", true),
                    (Status::Draft, "Return for correction", false),
                ] {
                    @if to != from && transition_allowed(from, to) && (if needs_review { chrome.can.review } else { chrome.can.write }) {
                        form.inline method="post" action=(format!("/records/{id}/status")) {
                            input type="hidden" name="to" value=(to.as_str());
                            button type="submit" { (label) }
                        }
                    }
                }
            }
        }
        @if !conflicts.is_empty() {
            section.conflicts #conflicts aria-labelledby="conflicts-h" {
                h2 #conflicts-h { "Conflicts" }
                p { "These fields were changed in two places at once. Every value is kept until someone chooses." }
                @for (path, values) in &conflicts {
                    div.conflict data-path=(path) {
                        h3 { (field_label(form, path)) }
                        ul {
                            @for v in values.as_array().into_iter().flatten() {
                                li {
                                    span.value {
                                        @match field_at(form, path) {
                                            Some(f) => { (show_value(f, &v["value"], &view["attachments"])) }
                                            None => { (show_json(&v["value"])) }
                                        }
                                    }
                                    @let author = v["author"].as_str().unwrap_or_default();
                                    " — by "
                                    @match person_behind(&history, author, path) {
                                        Some(p) => { (p) " on " (label(author)) }
                                        None => { (label(author)) }
                                    }
                                    @if chrome.can.review {
                                        form.inline method="post" action=(format!("/records/{id}/resolve")) {
                                            input type="hidden" name="path" value=(path);
                                            input type="hidden" name="value" value=(v["value"].to_string());
                                            button type="submit" { "Keep this value" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(problems) = view["validation"].as_array().filter(|p| !p.is_empty()) {
            section.problems aria-labelledby="problems-h" {
                h2 #problems-h { "Still to complete" }
                ul { @for p in problems { li { (field_label(form, p["path"].as_str().unwrap_or_default())) ": " (p["message"].as_str().unwrap_or_default()) } } }
            }
        }
        section aria-labelledby="fields-h" {
            h2 #fields-h { "Report" }
            @match form {
                Some(form) => { (fields_table(&form.fields, &view["fields"], &view["attachments"], &conflicts, "")) }
                None => { pre { (serde_json::to_string_pretty(&view["fields"]).unwrap_or_default()) } }
            }
        }
        section aria-labelledby="files-h" {
            h2 #files-h { "Attachments" }
            @if view["attachments"].as_array().is_none_or(|a| a.is_empty()) { p { "No files." } }
            ul.files {
                @for a in view["attachments"].as_array().into_iter().flatten() {
                    li { (attachment(a)) }
                }
            }
        }
        section aria-labelledby="review-h" {
            h2 #review-h { "Review" }
            @if view["review"].as_array().is_none_or(|r| r.is_empty()) { p { "No comments yet." } }
            ul.comments {
                @for c in view["review"].as_array().into_iter().flatten() {
                    li { strong { (c["by"].as_str().unwrap_or_default().trim_start_matches("user:")) } " · " (when(c["at"].as_str().unwrap_or_default())) p { (c["comment"].as_str().unwrap_or_default()) } }
                }
            }
            @if chrome.can.review {
                form method="post" action=(format!("/records/{id}/comment")) {
                    div.field {
                        label for="comment" { "Add a comment" }
                        textarea #comment name="comment" rows="3" maxlength="2000" required {}
                    }
                    button type="submit" { "Add comment" }
                }
            }
        }
        section aria-labelledby="history-h" {
            h2 #history-h { "History" }
            table.history {
                thead { tr { th { "When" } th { "Who" } th { "What" } th { "Fields" } } }
                tbody {
                    @for h in history.iter().rev() {
                        @let device = label(&h.author);
                        @let who = match &h.person {
                            Some(p) => format!("{} on {device}", p.trim_start_matches("user:")),
                            None => device,
                        };
                        (history_row(h, &who, form))
                    }
                }
            }
        }
    };
    Ok(page(frame(&title, &chrome, "records", body)))
}

fn history_row(h: &HistoryEntry, who: &str, form: Option<&Form>) -> Markup {
    let time = chrono::DateTime::from_timestamp(h.time, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    let fields: Vec<String> = h
        .touched
        .iter()
        .filter(|p| !matches!(p.as_str(), "meta" | "status" | "review" | "attachments"))
        .map(|p| field_label(form, p))
        .collect();
    let what = match h.message.as_str() {
        "create" => "created",
        "edit" => "edited",
        "attach" => "attached a file",
        "resolve" => "resolved a conflict",
        "review" => "commented",
        other => other,
    };
    let what = if h.touched.iter().any(|p| p == "status") && h.message == "edit" {
        "changed the status"
    } else {
        what
    };
    html! {
        tr { td { (time) } td { (who) } td { (what) } td { (fields.join(", ")) } }
    }
}

/// Who a device id (an Automerge actor, hex) is, as far as this instance knows.
/// Who wrote a conflicting value: the person of the latest change by that
/// device touching the field (changes carry the person; values only the
/// device that wrote them).
fn person_behind<'h>(
    history: &'h [tideline_sync::record::HistoryEntry],
    author: &str,
    path: &str,
) -> Option<&'h str> {
    history
        .iter()
        .rev()
        .filter(|h| h.author == author)
        .find(|h| {
            h.touched.iter().any(|t| {
                t == path
                    || path.starts_with(&format!("{t}."))
                    || path.starts_with(&format!("{t}["))
            })
        })
        .and_then(|h| h.person.as_deref())
        .map(|p| p.trim_start_matches("user:"))
}

fn device_label(state: &AppState, actor_hex: &str) -> String {
    let short = actor_hex.get(..8).unwrap_or(actor_hex);
    if state.records.identity().actor.to_hex_string() == actor_hex {
        return format!("this instance ({short})");
    }
    let known = uuid::Uuid::parse_str(actor_hex).ok().and_then(|id| {
        crate::auth::devices::get(state.records.store().as_ref(), &id)
            .ok()
            .flatten()
    });
    match known {
        Some(d) => d.label(),
        None => format!("device {short}"),
    }
}

/// The definition of the field at `path` (`crew[1].name` → crew's `name`).
fn field_at<'f>(form: Option<&'f Form>, path: &str) -> Option<&'f Field> {
    let mut fields = &form?.fields;
    let mut found = None;
    for segment in path.split('.') {
        let name = segment.split('[').next().unwrap_or(segment);
        let f = fields.iter().find(|f| f.name == name)?;
        fields = &f.fields;
        found = Some(f);
    }
    found
}

/// The label of a field path (`crew[1].name` → "Crew 2: Name").
pub fn field_label(form: Option<&Form>, path: &str) -> String {
    let Some(form) = form else {
        return path.to_string();
    };
    let mut fields = &form.fields;
    let mut parts = Vec::new();
    for segment in path.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        match fields.iter().find(|f| f.name == name) {
            Some(f) => {
                parts.push(match index {
                    Some(i) if f.field_type == FieldType::Repeat => {
                        format!("{} {}", f.label, i + 1)
                    }
                    _ => f.label.clone(),
                });
                fields = &f.fields;
            }
            None => parts.push(name.to_string()),
        }
    }
    parts.join(": ")
}

fn show_json(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => "(empty)".into(),
        other => other.to_string(),
    }
}

/// One value as a person reads it.
fn show_value(field: &Field, v: &Json, attachments: &Json) -> Markup {
    let choice = |value: &str| {
        field
            .choices
            .iter()
            .find(|c| c.value == value)
            .map(|c| c.label.clone())
            .unwrap_or_else(|| value.to_string())
    };
    html! {
        @match (field.field_type, v) {
            (_, Json::Null) => { span.muted { "—" } }
            (FieldType::Boolean, Json::Bool(b)) => { (if *b { "Yes" } else { "No" }) }
            (FieldType::SelectOne, Json::String(s)) => { (choice(s)) }
            (FieldType::SelectMultiple, Json::Array(items)) => {
                (items.iter().filter_map(Json::as_str).map(choice).collect::<Vec<_>>().join(", "))
            }
            (FieldType::Geopoint, Json::Object(p)) => {
                (format!("{}, {}", p.get("lat").map(Json::to_string).unwrap_or_default(), p.get("lon").map(Json::to_string).unwrap_or_default()))
            }
            (FieldType::DateTime, Json::String(s)) => {
                // The boarding's own local time and offset, as recorded.
                (chrono::DateTime::parse_from_rfc3339(s).map(|t| t.format("%Y-%m-%d %H:%M (UTC%:z)").to_string()).unwrap_or_else(|_| s.clone()))
            }
            (FieldType::Image, Json::String(h)) => { (image_ref(h, attachments)) }
            (FieldType::Image, Json::Array(hs)) => {
                @for h in hs.iter().filter_map(Json::as_str) { (image_ref(h, attachments)) " " }
            }
            (_, Json::Array(items)) => {
                (items.iter().map(show_json).collect::<Vec<_>>().join(", "))
            }
            (FieldType::Text, Json::String(s)) if field.appearance.as_deref() == Some("multiline") => {
                span.multiline { (s) }
            }
            (_, other) => { (show_json(other)) }
        }
    }
}

fn image_ref(hash: &str, attachments: &Json) -> Markup {
    let found = attachments
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["sha256"].as_str() == Some(hash));
    match found {
        Some(a) => attachment(a),
        None => html! { code { (hash.get(..12).unwrap_or(hash)) "…" } },
    }
}

fn attachment(a: &Json) -> Markup {
    let sha = a["sha256"].as_str().unwrap_or_default();
    let name = a["name"].as_str().unwrap_or("file");
    let url = format!("/api/v1/blobs/{sha}");
    let pending = a["pending"].as_bool().unwrap_or(false);
    let image = a["mime"].as_str().is_some_and(|m| m.starts_with("image/"));
    html! {
        @if pending {
            span.pending data-sha=(sha) {
                (name) " — on its way from the upstream. "
                a href=(url) { "Fetch it now" }
            }
        } @else if image {
            a.thumb href=(url) { img src=(url) alt=(name) loading="lazy" width="160"; span { (name) } }
        } @else {
            a href=(url) download=(name) { (name) }
        }
    }
}

/// The fields of a form (or of one repeat item) as a definition list.
fn fields_table(
    fields: &[Field],
    values: &Json,
    attachments: &Json,
    conflicts: &serde_json::Map<String, Json>,
    prefix: &str,
) -> Markup {
    html! {
        dl.fields {
            @for f in fields.iter().filter(|f| f.field_type != FieldType::Note) {
                @let path = format!("{prefix}{}", f.name);
                @let conflicted = conflicts.keys().any(|k| k == &path || k.starts_with(&format!("{path}.")) || k.starts_with(&format!("{path}[")));
                div class=(if conflicted { "conflicted" } else { "" }) data-field=(path) {
                    dt { (f.label) }
                    dd {
                        @if f.field_type == FieldType::Repeat {
                            @let items = values[&f.name].as_array().cloned().unwrap_or_default();
                            @if items.is_empty() { span.muted { "None" } }
                            ol.items {
                                @for (i, item) in items.iter().enumerate() {
                                    li { (fields_table(&f.fields, item, attachments, conflicts, &format!("{path}[{i}]."))) }
                                }
                            }
                        } @else {
                            (show_value(f, &values[&f.name], attachments))
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct ResolveForm {
    path: String,
    value: String,
}

/// `POST /records/{id}/resolve`: keep one of the concurrent values.
pub async fn resolve(
    state: web::Data<AppState>,
    access: Access,
    id: web::Path<String>,
    form: web::Form<ResolveForm>,
) -> PageResult {
    let id = record_id(&id)?;
    let ResolveForm { path, value } = form.into_inner();
    let value: Json = serde_json::from_str(&value).map_err(|_| {
        ApiError::bad_request("invalid_value", "The chosen value could not be read.")
    })?;
    let st = state.clone();
    web::block(move || access.records(&st).resolve(&id, &path, &value)).await??;
    Ok(see_other(&format!("/records/{id}")))
}

#[derive(Deserialize)]
pub struct StatusForm {
    to: String,
}

/// `POST /records/{id}/status`: submit, review, close, return or reopen.
pub async fn status(
    state: web::Data<AppState>,
    access: Access,
    id: web::Path<String>,
    form: web::Form<StatusForm>,
) -> PageResult {
    let id = record_id(&id)?;
    let to = parse_status(&form.to)?;
    let st = state.clone();
    let access2 = access.clone();
    let result = web::block(move || {
        access2.records(&st).patch(
            &id,
            &Patch {
                fields: None,
                status: Some(to),
            },
        )
    })
    .await?;
    match result {
        Ok(_) => Ok(see_other(&format!("/records/{id}"))),
        // Shown on the record, beside what is missing.
        Err(e) if e.status().is_client_error() && e.status().as_u16() != 404 => {
            let mut resp = render(state, access, id, Some(e.message().to_string())).await?;
            *resp.status_mut() = e.status();
            Ok(resp)
        }
        Err(e) => Err(PageError(e)),
    }
}

#[derive(Deserialize)]
pub struct CommentForm {
    comment: String,
}

/// `POST /records/{id}/comment`
pub async fn comment(
    state: web::Data<AppState>,
    access: Access,
    id: web::Path<String>,
    form: web::Form<CommentForm>,
) -> PageResult {
    let id = record_id(&id)?;
    let text = form.into_inner().comment.trim().to_string();
    if text.is_empty() || text.chars().count() > 2000 {
        return Err(
            ApiError::bad_request("invalid_comment", "A comment is 1 to 2000 characters.").into(),
        );
    }
    let st = state.clone();
    web::block(move || access.records(&st).comment(&id, &text)).await??;
    Ok(see_other(&format!("/records/{id}#review-h")))
}

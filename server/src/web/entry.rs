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

use super::layout::{frame, Chrome};
use super::records::field_label;
use super::{page, see_other, PageResult};
use crate::access::{Access, Action};
use crate::error::ApiError;
use crate::routes::record_id;
use crate::startup::AppState;
use actix_multipart::Multipart;
use actix_web::web;
use futures_util::StreamExt;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet};
use tideline_schemas::{Field, FieldType, Form, RecordId};
use tideline_sync::{Patch, Status};

/// The form as posted: input name → every value given for it.
type Posted = BTreeMap<String, Vec<String>>;
use super::storable::{self, Problems};

/// A file chosen in an image field.
struct Upload {
    field: String,
    name: String,
    bytes: Vec<u8>,
}

/// Largest text part of a posted form; long findings fit many times over.
const MAX_TEXT_PART: usize = 256 * 1024;

#[derive(Deserialize)]
pub struct NewQuery {
    form: String,
}

fn input_id(path: &str) -> String {
    let mut id = String::from("f-");
    for c in path.chars() {
        id.push(if c.is_ascii_alphanumeric() { c } else { '-' });
    }
    id
}

fn one<'a>(posted: &'a Posted, name: &str) -> &'a str {
    posted
        .get(name)
        .and_then(|v| v.first())
        .map(String::as_str)
        .unwrap_or("")
}

/// Every value posted for `name` (checkboxes, kept photos).
fn all<'a>(posted: &'a Posted, name: &str) -> Vec<&'a str> {
    posted
        .get(name)
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect()
}

/// Indices of the items of repeat `path` present in the posted form.
fn items(posted: &Posted, path: &str) -> Vec<usize> {
    let prefix = format!("f.{path}[");
    let found: BTreeSet<usize> = posted
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter_map(|(k, _)| k[prefix.len()..].split(']').next()?.parse().ok())
        .collect();
    found.into_iter().collect()
}

/// A record's fields as the form would post them, for editing.
fn flatten(fields: &[Field], values: &Json, prefix: &str, out: &mut Posted) {
    for f in fields {
        let path = format!("{prefix}{}", f.name);
        let name = format!("f.{path}");
        let v = &values[&f.name];
        fn put(out: &mut Posted, k: String, s: String) {
            out.entry(k).or_default().push(s);
        }
        match (f.field_type, v) {
            (_, Json::Null) => {}
            (FieldType::Repeat, Json::Array(list)) => {
                for (i, item) in list.iter().enumerate() {
                    out.insert(format!("f.{path}[{i}]._row"), vec!["1".into()]);
                    flatten(&f.fields, item, &format!("{path}[{i}]."), out);
                }
            }
            (FieldType::Geopoint, Json::Object(p)) => {
                for k in ["lat", "lon"] {
                    if let Some(n) = p.get(k) {
                        put(out, format!("{name}.{k}"), n.to_string());
                    }
                }
            }
            (FieldType::DateTime, Json::String(s)) => {
                // The clock time in the box, and the offset it was recorded
                // with beside it, so the same instant goes back.
                if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                    put(out, format!("{name}._offset"), t.format("%:z").to_string());
                }
                put(out, name, local_input(s))
            }
            (FieldType::Text, Json::Array(list)) => put(
                out,
                name,
                list.iter()
                    .filter_map(Json::as_str)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            (_, Json::Array(list)) => {
                for item in list {
                    put(
                        out,
                        name.clone(),
                        item.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| item.to_string()),
                    );
                }
            }
            (_, Json::String(s)) => put(out, name, s.clone()),
            (_, other) => put(out, name, other.to_string()),
        }
    }
}

/// An RFC 3339 time as a `datetime-local` input shows it (its own clock time).
fn local_input(rfc3339: &str) -> String {
    use chrono::Timelike;
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| match t.second() {
            0 => t.format("%Y-%m-%dT%H:%M").to_string(),
            _ => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
        })
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// The posted form as record fields, with a problem for each value that
/// does not even have the right shape (a word in a number field).
fn fields_of(
    fields: &[Field],
    posted: &Posted,
    prefix: &str,
    tz_minutes: i32,
    problems: &mut Problems,
) -> Map<String, Json> {
    let mut out = Map::new();
    for f in fields {
        let path = format!("{prefix}{}", f.name);
        let name = format!("f.{path}");
        let text = one(posted, &name).trim().to_string();
        let mut problem = |m: &str| {
            problems
                .entry(path.clone())
                .or_default()
                .push(m.to_string())
        };
        let value = match f.field_type {
            FieldType::Note => None,
            FieldType::Repeat => Some(Json::Array(
                items(posted, &path)
                    .into_iter()
                    .map(|i| {
                        Json::Object(fields_of(
                            &f.fields,
                            posted,
                            &format!("{path}[{i}]."),
                            tz_minutes,
                            problems,
                        ))
                    })
                    .collect(),
            )),
            FieldType::Text if f.multiple => {
                let lines: Vec<Json> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| Json::String(l.to_string()))
                    .collect();
                (!lines.is_empty()).then_some(Json::Array(lines))
            }
            // Browsers send a textarea's line breaks as CRLF.
            FieldType::Text => (!text.is_empty()).then(|| Json::String(text.replace("\r\n", "\n"))),
            FieldType::SelectOne | FieldType::Date => {
                (!text.is_empty()).then(|| Json::String(text.clone()))
            }
            FieldType::Integer if text.is_empty() => None,
            FieldType::Integer => match text.parse::<i64>() {
                Ok(n) => Some(Json::from(n)),
                Err(_) => {
                    problem("Enter a whole number, like 4.");
                    None
                }
            },
            FieldType::Decimal if text.is_empty() => None,
            FieldType::Decimal => match text.replace(',', ".").parse::<f64>() {
                Ok(n) if n.is_finite() => serde_json::Number::from_f64(n).map(Json::Number),
                _ => {
                    problem("Enter a number, like 2.5.");
                    None
                }
            },
            FieldType::Boolean => match text.as_str() {
                "true" => Some(Json::Bool(true)),
                "false" => Some(Json::Bool(false)),
                _ => None,
            },
            FieldType::SelectMultiple | FieldType::Image => {
                let list: Vec<Json> = posted
                    .get(&name)
                    .into_iter()
                    .flatten()
                    .filter(|v| !v.is_empty())
                    .map(|v| Json::String(v.clone()))
                    .collect();
                match (f.field_type, f.multiple) {
                    (FieldType::Image, false) => list.into_iter().next(),
                    _ => (!list.is_empty()).then_some(Json::Array(list)),
                }
            }
            FieldType::Geopoint => {
                let lat = one(posted, &format!("{name}.lat")).trim().to_string();
                let lon = one(posted, &format!("{name}.lon")).trim().to_string();
                match (lat.is_empty(), lon.is_empty()) {
                    (true, true) => None,
                    _ => match (lat.parse::<f64>(), lon.parse::<f64>()) {
                        (Ok(a), Ok(o)) if a.is_finite() && o.is_finite() => {
                            Some(serde_json::json!({ "lat": a, "lon": o }))
                        }
                        _ => {
                            problem("Enter both latitude and longitude as decimal degrees, like 13.1 and -59.6.");
                            None
                        }
                    },
                }
            }
            FieldType::DateTime if text.is_empty() => None,
            FieldType::DateTime => match with_offset(
                &text,
                offset_of(one(posted, &format!("{name}._offset"))).unwrap_or(tz_minutes),
            ) {
                Some(t) => Some(Json::String(t)),
                None => {
                    problem("Enter a date and time.");
                    None
                }
            },
        };
        if let Some(v) = value {
            out.insert(f.name.clone(), v);
        }
    }
    out
}

/// `-04:00` as minutes east of UTC.
fn offset_of(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    Some(sign * (h.parse::<i32>().ok()? * 60 + m.parse::<i32>().ok()?))
}

/// A `datetime-local` value with the browser's UTC offset (minutes east of
/// UTC, sent by the page's script; UTC without it). An RFC 3339 value passes.
fn with_offset(local: &str, tz_minutes: i32) -> Option<String> {
    if chrono::DateTime::parse_from_rfc3339(local).is_ok() {
        return Some(local.to_string());
    }
    let naive = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    let offset = chrono::FixedOffset::east_opt(tz_minutes * 60)?;
    let t = naive.and_local_timezone(offset).single()?;
    Some(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
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

fn problem_list(problems: &Problems, path: &str) -> Markup {
    html! {
        @if let Some(list) = problems.get(path) {
            @for m in list {
                span.field-error id=(format!("{}-error", input_id(path))) { (m) }
            }
        }
    }
}

fn described_by(problems: &Problems, path: &str, hint: bool) -> Option<String> {
    let mut ids = Vec::new();
    if hint {
        ids.push(format!("{}-hint", input_id(path)));
    }
    if problems.contains_key(path) {
        ids.push(format!("{}-error", input_id(path)));
    }
    (!ids.is_empty()).then(|| ids.join(" "))
}

/// The inputs for `fields`, filled from `posted`.
fn inputs(
    fields: &[Field],
    posted: &Posted,
    problems: &Problems,
    attachments: &Json,
    prefix: &str,
    action: &str,
) -> Markup {
    html! {
        @for f in fields {
            @let path = format!("{prefix}{}", f.name);
            (input(f, &path, posted, problems, attachments, action))
        }
    }
}

/// Stands for a new item's index in a repeat's template, one per depth of
/// nesting; letters only, so it survives [`input_id`] unchanged.
fn new_item_token(path: &str) -> String {
    format!("NEWITEM{}X", path.matches('[').count())
}

/// One item of a repeat: its inputs and its remove button. `number` counts
/// from 1 as people do; the page's script renumbers after a removal.
#[allow(clippy::too_many_arguments)]
fn repeat_item(
    f: &Field,
    item: &str,
    index: &str,
    number: &str,
    posted: &Posted,
    problems: &Problems,
    attachments: &Json,
    action: &str,
) -> Markup {
    let name = f.item_name();
    let parent = input_id(item.rsplit_once('[').map_or(item, |(p, _)| p));
    html! {
        fieldset.item id=(input_id(item)) data-item=(item) data-index=(index) {
            legend { (name) " " span.n { (number) } }
            input type="hidden" name=(format!("f.{item}._row")) value="1";
            (inputs(&f.fields, posted, problems, attachments, &format!("{item}."), action))
            // Without the script the page comes back at the repeat, not the top.
            button.secondary type="submit" name="_action" value=(format!("remove:{item}"))
                formaction=(format!("{action}#{parent}")) data-remove {
                "Remove " (name.to_lowercase()) " " span.n { (number) }
            }
        }
    }
}

fn input(
    f: &Field,
    path: &str,
    posted: &Posted,
    problems: &Problems,
    attachments: &Json,
    action: &str,
) -> Markup {
    let name = format!("f.{path}");
    let id = input_id(path);
    let value = one(posted, &name);
    let invalid = problems.contains_key(path).then_some("true");
    let described = described_by(problems, path, f.hint.is_some());
    let required = f.required.then_some("true");
    let label = html! {
        (f.label)
        @if f.required { span.required { " (required)" } }
    };
    let hint = html! {
        @if let Some(h) = &f.hint { span.hint id=(format!("{id}-hint")) { (h) } }
    };
    match f.field_type {
        FieldType::Note => html! { p.note { (f.label) } },
        FieldType::Repeat => {
            let indices = items(posted, path);
            let next = indices.last().map_or(0, |i| i + 1);
            let token = new_item_token(path);
            let template_item = format!("{path}[{token}]");
            html! {
                fieldset.repeat id=(id) data-field=(path) {
                    legend { (label) }
                    (hint)
                    (problem_list(problems, path))
                    @for (n, i) in indices.iter().enumerate() {
                        (repeat_item(f, &format!("{path}[{i}]"), &i.to_string(), &(n + 1).to_string(), posted, problems, attachments, action))
                    }
                    // What the page's script adds in place, without a reload.
                    template data-token=(token) {
                        (repeat_item(f, &template_item, &token, "", &Posted::new(), &Problems::new(), &Json::Null, action))
                    }
                    button.secondary type="submit" name="_action" value=(format!("add:{path}")) id=(format!("{id}-add"))
                        formaction=(format!("{action}#{}", input_id(&format!("{path}[{next}]")))) data-add {
                        "Add " (f.item_name().to_lowercase())
                    }
                }
            }
        }
        FieldType::Geopoint => html! {
            fieldset.geopoint id=(id) data-field=(path) aria-invalid=[invalid] aria-describedby=[described] {
                legend { (label) }
                (hint)
                div.row {
                    div.field {
                        label for=(format!("{id}-lat")) { "Latitude" }
                        input id=(format!("{id}-lat")) name=(format!("{name}.lat")) type="text" inputmode="decimal"
                            value=(one(posted, &format!("{name}.lat"))) placeholder="13.1";
                    }
                    div.field {
                        label for=(format!("{id}-lon")) { "Longitude" }
                        input id=(format!("{id}-lon")) name=(format!("{name}.lon")) type="text" inputmode="decimal"
                            value=(one(posted, &format!("{name}.lon"))) placeholder="-59.6";
                    }
                }
                button.secondary type="button" data-geolocate=(id) hidden { "Use this device's position" }
                span.geo-status id=(format!("{id}-geo")) aria-live="polite" {}
                (problem_list(problems, path))
            }
        },
        FieldType::SelectMultiple => {
            let chosen = all(posted, &name);
            html! {
                fieldset id=(id) data-field=(path) aria-invalid=[invalid] aria-describedby=[described] {
                    legend { (label) }
                    (hint)
                    @for (i, c) in f.choices.iter().enumerate() {
                        label.check {
                            input type="checkbox" name=(name) value=(c.value) id=(format!("{id}-{i}")) checked[chosen.contains(&c.value.as_str())];
                            " " (c.label)
                        }
                    }
                    (problem_list(problems, path))
                }
            }
        }
        FieldType::Boolean => html! {
            fieldset id=(id) data-field=(path) aria-invalid=[invalid] aria-describedby=[described] {
                legend { (label) }
                (hint)
                label.check { input type="radio" name=(name) value="true" id=(format!("{id}-yes")) checked[value == "true"]; " Yes" }
                label.check { input type="radio" name=(name) value="false" id=(format!("{id}-no")) checked[value == "false"]; " No" }
                (problem_list(problems, path))
            }
        },
        FieldType::Image => {
            let kept = all(posted, &name);
            html! {
                div.field data-field=(path) {
                    label for=(id) { (label) }
                    (hint)
                    @if !kept.is_empty() {
                        ul.files {
                            @for h in &kept {
                                li {
                                    input type="hidden" name=(name) value=(h);
                                    @let file = attachments.as_array().into_iter().flatten().find(|a| a["sha256"].as_str() == Some(*h));
                                    @match file {
                                        Some(a) if a["waiting"] == true => {
                                            span.upload-name { (a["name"].as_str().unwrap_or("photo")) }
                                            " "
                                            span.upload-state { "uploaded; attached when the report is saved" }
                                        }
                                        Some(a) => { img src=(format!("/api/v1/blobs/{h}")) alt=(a["name"].as_str().unwrap_or("photo")) width="120" loading="lazy"; }
                                        None => { code { (h.get(..12).unwrap_or(h)) "…" } }
                                    }
                                }
                            }
                        }
                    }
                    // With the script, each photo uploads on its own as soon
                    // as it is chosen (app.js), and this input loses its
                    // name so the report's post carries no file.
                    input id=(id) name=(format!("file.{path}")) type="file" accept="image/*" multiple[f.multiple]
                        data-upload=(path)
                        aria-invalid=[invalid] aria-describedby=[described];
                    (problem_list(problems, path))
                }
            }
        }
        _ => html! {
            div.field data-field=(path) {
                label for=(id) { (label) }
                (hint)
                @match f.field_type {
                    FieldType::Text if f.multiple || f.appearance.as_deref() == Some("multiline") => {
                        textarea id=(id) name=(name) rows=(if f.multiple { 3 } else { 6 })
                            aria-required=[required] aria-invalid=[invalid] aria-describedby=[described] { (value) }
                        @if f.multiple { span.hint { "One per line." } }
                    }
                    FieldType::SelectOne => {
                        select id=(id) name=(name) aria-required=[required] aria-invalid=[invalid] aria-describedby=[described] {
                            option value="" { "Choose…" }
                            @for c in &f.choices {
                                option value=(c.value) selected[value == c.value] { (c.label) }
                            }
                        }
                    }
                    _ => {
                        @let kind = match f.field_type {
                            FieldType::Date => "date",
                            FieldType::DateTime => "datetime-local",
                            _ => "text",
                        };
                        @let mode = match f.field_type {
                            FieldType::Integer => Some("numeric"),
                            FieldType::Decimal => Some("decimal"),
                            _ => None,
                        };
                        input id=(id) name=(name) type=(kind) inputmode=[mode] value=(value)
                            step=[(f.field_type == FieldType::DateTime && value.len() > 16).then_some("1")]
                            aria-required=[required] aria-invalid=[invalid] aria-describedby=[described];
                        @if let Some(offset) = posted.get(&format!("{name}._offset")).and_then(|v| v.first()) {
                            input type="hidden" name=(format!("{name}._offset")) value=(offset);
                        }
                    }
                }
                (problem_list(problems, path))
            }
        },
    }
}

/// How an entry page came to be drawn, which the page's script needs to
/// know to keep what is typed (`server/assets/app.js`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drawn {
    /// Opened: a fresh form, or the stored record.
    Opened,
    /// The answer to a post that stored nothing (a redraw, a refusal).
    Posted,
    /// The answer to a post that stored the record (it may still have problems).
    Stored,
}

/// The whole entry page.
#[allow(clippy::too_many_arguments)]
fn entry_page(
    chrome: &Chrome,
    form: &Form,
    action: &str,
    posted: &Posted,
    problems: &Problems,
    attachments: &Json,
    notice: Option<&str>,
    saved: Option<RecordId>,
    drawn: Drawn,
) -> Markup {
    // What is typed is kept in this browser under this name until the
    // server has it: per person, per form or record.
    let keep = format!("tideline:entry:{}:{action}", chrome.username);
    let title = match saved {
        Some(_) => format!("Edit {}", form.title.to_lowercase()),
        None => format!("New {}", form.title.to_lowercase()),
    };
    let known: BTreeSet<String> = all_paths(&form.fields, posted, "");
    let elsewhere: Vec<(&String, &Vec<String>)> = problems
        .iter()
        .filter(|(p, _)| !known.contains(*p))
        .collect();
    let body = html! {
        h1 { (title) }
        @if let Some(d) = &form.description { p.muted { (d) } }
        @if let Some(n) = notice { p.notice role="status" #notice { (n) } }
        @if posted.contains_key("_restored_at") {
            p.notice role="status" #restored {
                "Restored what you typed in this browser ("
                (one(posted, "_restored_at"))
                "). It is not saved yet: press Save draft or Submit. "
                a href=(action) data-discard=(keep) { "Discard it and start afresh" }
            }
        }
        @if !problems.is_empty() {
            div.error-summary role="alert" tabindex="-1" #problems {
                h2 { (problems.values().map(Vec::len).sum::<usize>()) " problem(s) to fix" }
                ul {
                    @for (path, list) in problems {
                        @for m in list {
                            li { a href=(format!("#{}", input_id(path))) { (field_label(Some(form), path)) ": " (m) } }
                        }
                    }
                }
                @for (path, list) in elsewhere { @for m in list { p { (path) ": " (m) } } }
            }
        }
        form.entry method="post" action=(action) enctype="multipart/form-data" novalidate
            data-keep=(keep)
            data-record=[saved] data-form=(form.id)
            data-drawn=(match drawn { Drawn::Opened => "opened", Drawn::Posted => "posted", Drawn::Stored => "stored" }) {
            // Enter in a text box saves a draft rather than pressing the first
            // add or remove button.
            button.visually-hidden type="submit" name="_action" value="draft" tabindex="-1" aria-hidden="true" { "Save draft" }
            input type="hidden" name="_tz" value="" data-tz;
            @if let Some(orig) = posted.get("_orig").and_then(|v| v.first()) {
                input type="hidden" name="_orig" value=(orig);
            }
            (inputs(&form.fields, posted, problems, attachments, "", action))
            div.buttons {
                button.secondary type="submit" name="_action" value="draft" #save-draft { "Save draft" }
                button.primary type="submit" name="_action" value="submit" #submit { "Submit" }
                @if let Some(id) = saved { a href=(format!("/records/{id}")) { "Back to the record" } }
            }
        }
    };
    frame(&title, chrome, &format!("new:{}", form.id), body)
}

/// The top-level fields to write: those that differ from what the page was
/// drawn with (all of them without that), an emptied one as null. A field
/// nobody touched here is not written, so a change that arrived by sync while
/// the page was open is not overwritten with what the page showed.
fn changed_fields(
    names: &[String],
    fields: &Map<String, Json>,
    original: Option<&Map<String, Json>>,
) -> Map<String, Json> {
    let mut patch = Map::new();
    for name in names {
        let new = fields.get(name).cloned().unwrap_or(Json::Null);
        let old = original.map(|o| o.get(name).cloned().unwrap_or(Json::Null));
        if old.as_ref() != Some(&new) {
            patch.insert(name.clone(), new);
        }
    }
    patch
}

/// Every field path the page draws, to tell which problems have a place.
fn all_paths(fields: &[Field], posted: &Posted, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in fields {
        let path = format!("{prefix}{}", f.name);
        if f.field_type == FieldType::Repeat {
            for i in items(posted, &path) {
                out.extend(all_paths(&f.fields, posted, &format!("{path}[{i}].")));
            }
        }
        out.insert(path);
    }
    out
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
        &Posted::new(),
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

/// Read a posted multipart form: text parts into `Posted`, files apart.
/// A file left out of a posted form because it is too large: the report is
/// saved without it and the page says so.
struct Oversized {
    field: String,
    name: String,
    size: usize,
}

/// Files past the limit are read to their end (to reach the fields after
/// them) but not kept, up to this many times the limit in all; past that
/// the post is refused whole.
const OVERSIZED_ALLOWANCE: usize = 8;

async fn read_multipart(
    mut body: Multipart,
    max_text: usize,
    max_file: usize,
) -> Result<(Posted, Vec<Upload>, Vec<Oversized>), ApiError> {
    let mut posted = Posted::new();
    let mut uploads = Vec::new();
    let mut oversized = Vec::new();
    let mut skipped = 0usize;
    let mut text_total = 0usize;
    while let Some(part) = body.next().await {
        let mut part = part.map_err(|e| {
            ApiError::bad_request("bad_form", format!("The form could not be read: {e}."))
        })?;
        let name = part.name().unwrap_or_default().to_string();
        let filename = part
            .content_disposition()
            .and_then(|d| d.get_filename())
            .map(str::to_string);
        let limit = if filename.is_some() {
            max_file
        } else {
            MAX_TEXT_PART
        };
        let mut bytes = Vec::new();
        let mut size = 0usize;
        while let Some(chunk) = part.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::bad_request("bad_form", format!("The form could not be read: {e}."))
            })?;
            size += chunk.len();
            if size > limit {
                // A photo too large must not cost the report: skip it.
                if filename.is_none() {
                    return Err(ApiError::too_large(limit));
                }
                skipped += chunk.len();
                if skipped > OVERSIZED_ALLOWANCE * max_file {
                    return Err(ApiError::too_large(limit));
                }
                bytes.clear();
                continue;
            }
            bytes.extend_from_slice(&chunk);
        }
        if size > limit {
            if let (Some(file), Some(field)) = (&filename, name.strip_prefix("file.")) {
                oversized.push(Oversized {
                    field: field.to_string(),
                    name: file.clone(),
                    size,
                });
            }
            continue;
        }
        match filename {
            Some(file) => {
                if let (Some(field), false) = (name.strip_prefix("file."), bytes.is_empty()) {
                    uploads.push(Upload {
                        field: field.to_string(),
                        name: file,
                        bytes,
                    });
                }
            }
            None => {
                text_total += bytes.len();
                if text_total > max_text {
                    return Err(ApiError::too_large(max_text));
                }
                let text = String::from_utf8(bytes).map_err(|_| {
                    ApiError::bad_request("bad_form", "The form is not valid UTF-8 text.")
                })?;
                posted.entry(name).or_default().push(text);
            }
        }
    }
    Ok((posted, uploads, oversized))
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

/// Handle a posted entry page: redraw for add/remove, else store, attach
/// the photos uploaded for it (and, from a page without the script, the
/// files posted with it), and submit when asked. `attached` lists the
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
    let action = one(&posted, "_action").to_string();
    let tz: i32 = one(&posted, "_tz").parse().unwrap_or(0);
    let chrome = Chrome::new(&state, &access);
    let page_action = match existing {
        Some(id) => format!("/records/{id}/edit"),
        None => format!("/records/new?form={}", form.id),
    };
    let redraw = |posted: &Posted,
                  problems: &Problems,
                  attachments: &Json,
                  notice: Option<&str>,
                  id: Option<RecordId>,
                  stored: bool,
                  status: u16| {
        let action = match id {
            Some(id) => format!("/records/{id}/edit"),
            None => page_action.clone(),
        };
        let mut resp = page(entry_page(
            &chrome,
            &form,
            &action,
            posted,
            problems,
            attachments,
            notice,
            id,
            if stored { Drawn::Stored } else { Drawn::Posted },
        ));
        *resp.status_mut() = actix_web::http::StatusCode::from_u16(status).unwrap_or_default();
        resp
    };
    // What this browser kept of a report whose save never reached the
    // server (an ended session, a closed tab): drawn again, not saved.
    // Drawn again with what was posted; nothing stored.
    // Photos uploaded for a report not saved yet are named as such.
    let waiting = {
        let (st, a) = (state.clone(), access.clone());
        web::block(move || crate::routes::uploads::waiting_as_attachments(&st, &a)).await?
    };
    let mut listed = attached.as_array().cloned().unwrap_or_default();
    listed.extend(waiting.as_array().cloned().unwrap_or_default());
    let listed = Json::Array(listed);
    let again = |posted: &Posted| {
        Ok(redraw(
            posted,
            &Problems::new(),
            &listed,
            None,
            existing,
            false,
            200,
        ))
    };
    if action == "restore" {
        return again(&posted);
    }
    if let Some(path) = action.strip_prefix("add:") {
        let next = items(&posted, path).last().map_or(0, |i| i + 1);
        posted.insert(format!("f.{path}[{next}]._row"), vec!["1".into()]);
        return again(&posted);
    }
    if let Some(item) = action.strip_prefix("remove:") {
        let prefix = format!("f.{item}.");
        posted.retain(|k, _| !k.starts_with(&prefix));
        return again(&posted);
    }
    let submit = action == "submit";
    let mut unreadable = Problems::new();
    let fields = fields_of(&form.fields, &posted, "", tz, &mut unreadable);
    // Everything that can be stored is, now; what cannot stays on the page
    // as typed, and every problem is listed at once (`storable`).
    let (storable, mut problems) = storable::split(&form, &fields, &unreadable, submit);
    // An edit writes only whole top-level fields; one holding a value that
    // cannot be stored yet is held back whole, so the stored value stays
    // rather than being cleared.
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
    let names: Vec<String> = form
        .fields
        .iter()
        .map(|f| f.name.clone())
        .filter(|n| !held_back.contains(n.as_str()))
        .collect();
    let mut fields = storable;
    let st = state.clone();
    let a = access.clone();
    let form_id = form.id.clone();
    let form_of_record = form.clone();
    let original: Option<Map<String, Json>> = posted
        .get("_orig")
        .and_then(|v| v.first())
        .and_then(|o| serde_json::from_str(o).ok());
    let stored = web::block(move || -> Result<_, ApiError> {
        // Photos uploaded before this save are attached after it, which
        // puts their hashes back in their fields.
        let taken =
            crate::routes::uploads::take_waiting(&st, &a, &form_of_record, &attached, &mut fields)?;
        let scoped = a.records(&st);
        let stored = match existing {
            None => scoped.create(&form_id, &fields).map(|w| w.view),
            Some(id) => scoped.patch(
                &id,
                &Patch {
                    fields: Some(changed_fields(&names, &fields, original.as_ref())),
                    status: None,
                },
            ),
        };
        let Ok(view) = stored else {
            return Ok((stored, Vec::new(), taken.missing));
        };
        if taken.waiting.is_empty() {
            return Ok((Ok(view), Vec::new(), taken.missing));
        }
        let id = serde_json::from_str::<Json>(view.get())
            .ok()
            .and_then(|v| v["id"].as_str()?.parse::<RecordId>().ok())
            .ok_or_else(|| ApiError::internal("a stored record without an id"))?;
        let refused = crate::routes::uploads::attach_waiting(&st, &a, &id, taken.waiting)?;
        Ok((scoped.get(&id), refused, taken.missing))
    })
    .await??;
    let (stored, refused, missing) = stored;
    for (field, hash) in missing {
        if let Some(values) = posted.get_mut(&format!("f.{field}")) {
            values.retain(|v| *v != hash);
        }
        problems
            .entry(field)
            .or_default()
            .push("A photo chosen earlier is no longer on the server; choose it again.".into());
    }
    for (field, message) in refused {
        problems.entry(field).or_default().push(message);
    }
    let view = match stored {
        Ok(view) => view,
        // Refused whole (an edit that breaks a rule with a field it did not
        // touch): nothing was stored, everything stays on the page.
        Err(e) if e.status().as_u16() == 422 => {
            problems_of(&e, &mut problems);
            return Ok(redraw(
                &posted,
                &problems,
                &listed,
                Some("Not saved yet: fix the problems below, then save again. What you typed is kept here."),
                existing,
                false,
                422,
            ));
        }
        Err(e) => return Err(e.into()),
    };
    state.local_change();
    let mut view: Json = serde_json::from_str(view.get()).map_err(ApiError::internal)?;
    // From here on the page edits the stored record, as it is stored.
    posted.insert("_orig".into(), vec![view["fields"].to_string()]);
    let id: RecordId = view["id"]
        .as_str()
        .and_then(|i| i.parse().ok())
        .ok_or_else(|| ApiError::internal("a stored record without an id"))?;
    for o in oversized {
        problems.entry(o.field).or_default().push(format!(
            "{} The report is saved without it: choose a smaller photo.",
            ApiError::file_too_large(&o.name, o.size as u64, state.attachments.max_bytes).message()
        ));
    }
    for upload in uploads {
        let Upload { field, name, bytes } = upload;
        let st = state.clone();
        let a = access.clone();
        let (f, n) = (field.clone(), name.clone());
        let attached = web::block(move || {
            crate::routes::attachments::store_attachment(&st, &a, &id, &n, Some(&f), &bytes)
        })
        .await?;
        match attached {
            Ok((v, hash)) => {
                view = serde_json::from_str(v.get()).map_err(ApiError::internal)?;
                posted
                    .entry(format!("f.{field}"))
                    .or_default()
                    .push(hash.to_hex());
            }
            Err(e) if e.status().is_client_error() => problems
                .entry(field)
                .or_default()
                .push(format!("{name}: {}", e.message())),
            Err(e) => return Err(e.into()),
        }
    }
    if !problems.is_empty() {
        let notice = if submit {
            "Saved as a draft. It can be submitted once the problems below are fixed; values marked here are kept as you typed them but not saved yet."
        } else {
            "Saved as a draft. Values marked below are kept as you typed them but not saved yet."
        };
        return Ok(redraw(
            &posted,
            &problems,
            &view["attachments"],
            Some(notice),
            Some(id),
            true,
            422,
        ));
    }
    if submit {
        let st = state.clone();
        let a = access.clone();
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
            Ok(_) => state.local_change(),
            Err(e) if e.status().as_u16() == 422 => {
                problems_of(&e, &mut problems);
                return Ok(redraw(
                    &posted,
                    &problems,
                    &view["attachments"],
                    Some("Saved as a draft. It can be submitted once these are fixed."),
                    Some(id),
                    true,
                    422,
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    // `saved` tells the page's script that the server has what it kept.
    Ok(see_other(&format!("/records/{id}?saved=1")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tideline_schemas::FormRegistry;

    /// Values a person could type into `field`, as the record would hold them.
    fn value(field: &Field) -> BoxedStrategy<Option<Json>> {
        let text = "[A-Za-z0-9][A-Za-z0-9 ,.'/-]{0,20}[A-Za-z0-9]";
        let some = match field.field_type {
            FieldType::Note => return Just(None).boxed(),
            FieldType::Text if field.multiple => prop::collection::vec(text, 1..4)
                .prop_map(|l| Json::Array(l.into_iter().map(Json::String).collect()))
                .boxed(),
            FieldType::Text if field.appearance.as_deref() == Some("multiline") => {
                prop::collection::vec(text, 1..4)
                    .prop_map(|l| Json::String(l.join("\n")))
                    .boxed()
            }
            FieldType::Text => text.prop_map(Json::String).boxed(),
            FieldType::Integer => (-1000i64..100_000).prop_map(Json::from).boxed(),
            FieldType::Decimal => (-1.0e6f64..1.0e6).prop_map(Json::from).boxed(),
            FieldType::Boolean => any::<bool>().prop_map(Json::Bool).boxed(),
            FieldType::SelectOne => prop::sample::select(
                field
                    .choices
                    .iter()
                    .map(|c| c.value.clone())
                    .collect::<Vec<_>>(),
            )
            .prop_map(Json::String)
            .boxed(),
            FieldType::SelectMultiple => prop::sample::subsequence(
                field
                    .choices
                    .iter()
                    .map(|c| c.value.clone())
                    .collect::<Vec<_>>(),
                1..=field.choices.len(),
            )
            .prop_map(|v| Json::Array(v.into_iter().map(Json::String).collect()))
            .boxed(),
            FieldType::Geopoint => (-90.0f64..90.0, -180.0f64..180.0)
                .prop_map(|(lat, lon)| serde_json::json!({ "lat": lat, "lon": lon }))
                .boxed(),
            FieldType::Date => (2000i32..2100, 1u32..13, 1u32..29)
                .prop_map(|(y, m, d)| Json::String(format!("{y:04}-{m:02}-{d:02}")))
                .boxed(),
            FieldType::DateTime => (
                2000i32..2100,
                1u32..13,
                1u32..29,
                0u32..24,
                0u32..60,
                0u32..60,
                prop::sample::select(vec!["-04:00", "Z", "+05:30", "-00:30"]),
            )
                .prop_map(|(y, mo, d, h, mi, sec, z)| {
                    Json::String(format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}{z}"))
                })
                .boxed(),
            FieldType::Image if field.multiple => prop::collection::vec("[0-9a-f]{64}", 1..3)
                .prop_map(|l| Json::Array(l.into_iter().map(Json::String).collect()))
                .boxed(),
            FieldType::Image => "[0-9a-f]{64}".prop_map(Json::String).boxed(),
            // A record always holds its repeats, empty or not.
            FieldType::Repeat => {
                return prop::collection::vec(fields(&field.fields), 0..3)
                    .prop_map(|items| {
                        Some(Json::Array(items.into_iter().map(Json::Object).collect()))
                    })
                    .boxed()
            }
        };
        prop::option::of(some).boxed()
    }

    fn fields(list: &[Field]) -> BoxedStrategy<Map<String, Json>> {
        let names: Vec<String> = list.iter().map(|f| f.name.clone()).collect();
        list.iter()
            .map(value)
            .collect::<Vec<_>>()
            .prop_map(move |values| {
                names
                    .iter()
                    .zip(values)
                    .filter_map(|(n, v)| v.map(|v| (n.clone(), v)))
                    .collect()
            })
            .boxed()
    }

    fn roundtrip(form: &Form, record: &Map<String, Json>) -> (Map<String, Json>, Problems) {
        let mut posted = Posted::new();
        flatten(&form.fields, &Json::Object(record.clone()), "", &mut posted);
        let mut problems = Problems::new();
        let back = fields_of(&form.fields, &posted, "", -240, &mut problems);
        (back, problems)
    }

    proptest! {
        /// The entry page is a codec: a record drawn into the form and posted
        /// back unchanged is the same record, for every field type.
        #[test]
        fn a_record_posted_back_unchanged_is_the_same_record(
            (form, record) in prop::sample::select(vec!["boarding-report", "vessel-sighting"])
                .prop_flat_map(|id| {
                    let form = FormRegistry::builtin().latest(id).unwrap().clone();
                    (Just(form.clone()), fields(&form.fields))
                })
        ) {
            let (back, problems) = roundtrip(&form, &record);
            prop_assert!(problems.is_empty(), "{problems:?}");
            prop_assert_eq!(back, record);
        }
    }

    #[test]
    fn words_in_number_fields_are_problems_at_their_path() {
        let form = FormRegistry::builtin()
            .latest("boarding-report")
            .unwrap()
            .clone();
        let mut posted = Posted::new();
        posted.insert("f.persons_on_board".into(), vec!["four".into()]);
        posted.insert("f.seizures[3]._row".into(), vec!["1".into()]);
        posted.insert("f.seizures[3].quantity".into(), vec!["lots".into()]);
        posted.insert("f.position.lat".into(), vec!["13.1".into()]);
        let mut problems = Problems::new();
        let fields = fields_of(&form.fields, &posted, "", 0, &mut problems);
        assert!(problems.contains_key("persons_on_board"), "{problems:?}");
        assert!(
            problems.contains_key("seizures[3].quantity"),
            "{problems:?}"
        );
        assert!(
            problems.contains_key("position"),
            "a latitude without longitude: {problems:?}"
        );
        assert!(!fields.contains_key("persons_on_board"));
        assert_eq!(
            fields["seizures"].as_array().unwrap().len(),
            1,
            "items are renumbered"
        );
    }

    #[test]
    fn saving_writes_only_what_was_changed_on_the_page() {
        let names: Vec<String> = ["vessel_name", "master_name", "arrests", "findings"]
            .map(String::from)
            .to_vec();
        let shown =
            serde_json::json!({"vessel_name": "Sea Breeze", "master_name": "J. B.", "arrests": 0});
        let posted =
            serde_json::json!({"vessel_name": "Sea Breeze", "arrests": 2, "findings": "Nets"});
        let patch = changed_fields(&names, posted.as_object().unwrap(), shown.as_object());
        // The vessel name was not touched here: a newer value from sync stays.
        assert_eq!(
            Json::Object(patch),
            serde_json::json!({"master_name": null, "arrests": 2, "findings": "Nets"})
        );
        // Without what the page showed, everything is written.
        assert_eq!(
            changed_fields(&names, posted.as_object().unwrap(), None).len(),
            4
        );
    }

    #[test]
    fn a_local_time_takes_the_browsers_offset() {
        assert_eq!(
            with_offset("2026-11-20T14:05", -240).as_deref(),
            Some("2026-11-20T14:05:00-04:00")
        );
        assert_eq!(
            with_offset("2026-11-20T14:05", 0).as_deref(),
            Some("2026-11-20T14:05:00Z")
        );
        assert_eq!(
            with_offset("2026-11-20T14:05:00+01:00", -240).as_deref(),
            Some("2026-11-20T14:05:00+01:00")
        );
        assert_eq!(with_offset("yesterday", 0), None);
    }
}

//! Drawing the entry page from the form definition: every field type,
//! repeats (with a template for adding in place), photos, and each problem
//! beside its field with what was typed still in it.

use crate::web::entry::posted::{all, all_paths, items, one, Posted};
use crate::web::entry::storable::Problems;
use crate::web::layout::{frame, Chrome};
use crate::web::records::field_label;
use maud::{html, Markup};
use serde_json::Value as Json;
use std::collections::BTreeSet;
use tideline_schemas::{Expr, Field, FieldType, Form, RecordId};

pub(super) fn input_id(path: &str) -> String {
    let mut id = String::from("f-");
    for c in path.chars() {
        id.push(if c.is_ascii_alphanumeric() { c } else { '-' });
    }
    id
}

pub(super) fn problem_list(problems: &Problems, path: &str) -> Markup {
    html! {
        @if let Some(list) = problems.get(path) {
            @for m in list {
                span.field-error id=(format!("{}-error", input_id(path))) { (m) }
            }
        }
    }
}

pub(super) fn described_by(problems: &Problems, path: &str, hint: bool) -> Option<String> {
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
pub(super) fn inputs(
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
pub(super) fn new_item_token(path: &str) -> String {
    format!("NEWITEM{}X", path.matches('[').count())
}

/// One item of a repeat: its inputs and its remove button. `number` counts
/// from 1 as people do; the page's script renumbers after a removal.
#[allow(clippy::too_many_arguments)]
pub(super) fn repeat_item(
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

/// One question, wrapped, when it has a condition, in the element the page's script
/// shows and hides (`server/assets/relevance.js`); what is typed in a hidden
/// question stays in the page, and saving clears it only if it still does not apply.
pub(super) fn input(
    f: &Field,
    path: &str,
    posted: &Posted,
    problems: &Problems,
    attachments: &Json,
    action: &str,
) -> Markup {
    let inner = question(f, path, posted, problems, attachments, action);
    match f.relevant.as_deref().and_then(|src| Expr::parse(src).ok()) {
        Some(expr) => html! {
            div.relevant data-relevant=(expr.to_json().to_string()) data-path=(path)
                data-type=(f.field_type.as_str()) {
                (inner)
            }
        },
        None => inner,
    }
}

fn question(
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
        FieldType::Group => html! {
            fieldset.group id=(id) data-field=(path) {
                legend { (label) }
                (hint)
                (problem_list(problems, path))
                (inputs(&f.fields, posted, problems, attachments, &format!("{path}."), action))
            }
        },
        FieldType::Acknowledge => html! {
            div.field data-field=(path) {
                label.check {
                    input type="checkbox" id=(id) name=(name) value="OK" checked[value == "OK"]
                        aria-required=[required] aria-invalid=[invalid] aria-describedby=[described];
                    " " (label)
                }
                (hint)
                (problem_list(problems, path))
            }
        },
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
                            FieldType::Time => "time",
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
pub(super) enum Drawn {
    /// Opened: a fresh form, or the stored record.
    Opened,
    /// The answer to a post that stored nothing (a redraw, a refusal).
    Posted,
    /// The answer to a post that stored the record (it may still have problems).
    Stored,
}

/// The whole entry page.
#[allow(clippy::too_many_arguments)]
pub(super) fn entry_page(
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
            data-logic=[form.has_logic().then(|| form.names_json().to_string())]
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
        @if form.has_logic() { script src="/assets/relevance.js" defer {} }
    };
    frame(&title, chrome, &format!("new:{}", form.id), body)
}

//! A form written as an XLSForm workbook, so that a team can start from a Tideline
//! form in a spreadsheet; importing the workbook gives the same form back.
//!
//! What XLSForm has no column for travels in two extra columns that ODK's tools
//! ignore: `tideline::field` on the survey sheet (a JSON object: `type` boolean,
//! `multiple`, `unique`, `item_label`, and the fixed `constraint` keys such as `min`)
//! and `tideline::form` on the settings sheet (`description`, `checks`). A boolean
//! is written as `select_one tideline_boolean` (choices `true` and `false`), which
//! ODK shows as a yes/no question.

use rust_xlsxwriter::{Workbook, XlsxError};
use serde_json::{json, Map, Value as Json};

use crate::form::{Field, FieldType, Form};

/// The list of choices a boolean is written with.
pub(crate) const BOOLEAN_LIST: &str = "tideline_boolean";
/// The survey column of what XLSForm cannot say about a field.
pub(crate) const FIELD_EXTRAS: &str = "tideline::field";
/// The settings column of what XLSForm cannot say about a form.
pub(crate) const FORM_EXTRAS: &str = "tideline::form";

/// Why a workbook could not be written.
#[derive(Debug, thiserror::Error)]
#[error("the workbook cannot be written: {0}")]
pub struct ExportError(#[from] XlsxError);

/// The form as an XLSForm workbook (.xlsx bytes).
pub fn export(form: &Form) -> Result<Vec<u8>, ExportError> {
    let languages: Vec<String> = form.languages().into_iter().collect();
    let mut header: Vec<String> = vec!["type".into(), "name".into(), "label".into()];
    header.extend(languages.iter().map(|l| format!("label::{l}")));
    header.push("hint".into());
    header.extend(languages.iter().map(|l| format!("hint::{l}")));
    for column in [
        "required",
        "required_message",
        "constraint",
        "constraint_message",
        "relevant",
        "appearance",
        "default",
        FIELD_EXTRAS,
    ] {
        header.push(column.into());
    }
    let mut survey = vec![header.clone()];
    let mut choices = vec![{
        let mut h = vec!["list_name".to_string(), "name".into(), "label".into()];
        h.extend(languages.iter().map(|l| format!("label::{l}")));
        h
    }];
    let mut writer = Rows {
        header: &header,
        languages: &languages,
        survey: &mut survey,
        choices: &mut choices,
        boolean_list: false,
    };
    writer.fields(&form.fields, "");

    let mut settings_header = vec!["form_id", "form_title", "version"];
    let version = form
        .source_version
        .clone()
        .unwrap_or_else(|| form.version.to_string());
    let mut settings_row = vec![form.id.clone(), form.title.clone(), version];
    if let Some(lang) = &form.default_language {
        settings_header.push("default_language");
        settings_row.push(lang.clone());
    }
    let mut extras = Map::new();
    if let Some(d) = &form.description {
        extras.insert("description".into(), json!(d));
    }
    if !form.checks.is_empty() {
        extras.insert("checks".into(), json!(form.checks));
    }
    if !extras.is_empty() {
        settings_header.push(FORM_EXTRAS);
        settings_row.push(Json::Object(extras).to_string());
    }
    let settings = vec![
        settings_header.into_iter().map(String::from).collect(),
        settings_row,
    ];

    workbook(&[
        ("survey", survey),
        ("choices", choices),
        ("settings", settings),
    ])
}

/// A workbook of text cells, one sheet per `(name, rows)`; empty cells are left
/// out. The export's writer, and the tests' way to make XLSForm fixtures.
pub fn workbook<S: AsRef<str>>(sheets: &[(&str, Vec<Vec<S>>)]) -> Result<Vec<u8>, ExportError> {
    let mut book = Workbook::new();
    for (name, rows) in sheets {
        let sheet = book.add_worksheet();
        sheet.set_name(*name)?;
        for (r, row) in rows.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                let cell = cell.as_ref();
                if !cell.is_empty() {
                    sheet.write_string(r as u32, c as u16, cell)?;
                }
            }
        }
    }
    Ok(book.save_to_buffer()?)
}

struct Rows<'a> {
    header: &'a [String],
    languages: &'a [String],
    survey: &'a mut Vec<Vec<String>>,
    choices: &'a mut Vec<Vec<String>>,
    boolean_list: bool,
}

impl Rows<'_> {
    fn fields(&mut self, fields: &[Field], parent: &str) {
        for f in fields {
            let path = if parent.is_empty() {
                f.name.clone()
            } else {
                format!("{parent}_{}", f.name)
            };
            self.field(f, &path);
        }
    }

    fn field(&mut self, f: &Field, path: &str) {
        let mut extras = Map::new();
        let ty = match f.field_type {
            FieldType::Group => "begin_group".to_string(),
            FieldType::Repeat => "begin_repeat".to_string(),
            FieldType::Boolean => {
                extras.insert("type".into(), json!("boolean"));
                if !self.boolean_list {
                    self.boolean_list = true;
                    for (value, label) in [("true", "Yes"), ("false", "No")] {
                        self.choices
                            .push(vec![BOOLEAN_LIST.into(), value.into(), label.into()]);
                    }
                }
                format!("select_one {BOOLEAN_LIST}")
            }
            FieldType::SelectOne | FieldType::SelectMultiple => {
                for c in &f.choices {
                    let mut row = vec![path.to_string(), c.value.clone(), c.label.clone()];
                    row.extend(
                        self.languages
                            .iter()
                            .map(|l| c.labels.get(l).cloned().unwrap_or_default()),
                    );
                    self.choices.push(row);
                }
                format!("{} {path}", f.field_type)
            }
            other => other.to_string(),
        };
        if f.multiple {
            extras.insert("multiple".into(), json!(true));
        }
        if f.unique {
            extras.insert("unique".into(), json!(true));
        }
        if let Some(item) = &f.item_label {
            extras.insert("item_label".into(), json!(item));
        }
        let mut fixed = f
            .constraint
            .as_ref()
            .map(|c| serde_json::to_value(c).unwrap_or(Json::Null))
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        fixed.remove("expression");
        fixed.remove("message");
        // A message with no expression (one for `unique`, or for `min`) needs the
        // constraint said here, or the message would stand alone in its column.
        let bare_message = f
            .constraint
            .as_ref()
            .is_some_and(|c| c.expression.is_none() && c.message.is_some());
        if !fixed.is_empty() || bare_message {
            extras.insert("constraint".into(), Json::Object(fixed));
        }
        let mut row = vec![String::new(); self.header.len()];
        let mut set = |column: &str, value: String| {
            if let Some(i) = self.header.iter().position(|h| h == column) {
                row[i] = value;
            }
        };
        set("type", ty);
        set("name", f.name.clone());
        set("label", f.label.clone());
        set("hint", f.hint.clone().unwrap_or_default());
        for (lang, text) in &f.labels {
            set(&format!("label::{lang}"), text.clone());
        }
        for (lang, text) in &f.hints {
            set(&format!("hint::{lang}"), text.clone());
        }
        if f.required {
            set("required", "yes".into());
        }
        set(
            "required_message",
            f.required_message.clone().unwrap_or_default(),
        );
        if let Some(c) = &f.constraint {
            set("constraint", c.expression.clone().unwrap_or_default());
            set("constraint_message", c.message.clone().unwrap_or_default());
        }
        set("relevant", f.relevant.clone().unwrap_or_default());
        set("appearance", f.appearance.clone().unwrap_or_default());
        if let Some(default) = &f.default {
            set(
                "default",
                match default {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                },
            );
        }
        if !extras.is_empty() {
            set(FIELD_EXTRAS, Json::Object(extras).to_string());
        }
        self.survey.push(row);
        if f.field_type.has_children() {
            self.fields(&f.fields, path);
            let end = if f.field_type == FieldType::Group {
                "end_group"
            } else {
                "end_repeat"
            };
            let mut end_row = vec![String::new(); self.header.len()];
            end_row[0] = end.into();
            self.survey.push(end_row);
        }
    }
}

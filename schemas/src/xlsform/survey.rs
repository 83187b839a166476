//! From the survey, choices and settings rows to a form: types and columns honoured or
//! refused, groups and repeats nested by their begin and end rows, labels by language.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value as Json;

use super::error::ImportError;
use super::export::{BOOLEAN_LIST, FIELD_EXTRAS, FORM_EXTRAS};
use super::sheet::{Row, Sheet, Workbook};
use crate::form::{Check, Choice, Constraint, Field, FieldType, Form, FormError};

/// Survey columns read as they are (besides `label::Language` and `hint::Language`).
const SURVEY_COLUMNS: [&str; 11] = [
    "type",
    "name",
    "label",
    "hint",
    "required",
    "required_message",
    "constraint",
    "constraint_message",
    "relevant",
    "appearance",
    "default",
];

/// What one type cell asks for.
enum Kind {
    Question(FieldType, Option<String>),
    Begin(FieldType),
    End(FieldType),
}

fn kind_of(cell: &str) -> Result<Kind, String> {
    let words: Vec<&str> = cell.split_whitespace().collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let first = lower.first().map_or("", String::as_str);
    // `begin group` and `select one` are accepted spellings, as in pyxform.
    let joined = match (first, lower.get(1).map(String::as_str)) {
        ("begin" | "end", Some(second @ ("group" | "repeat"))) => format!("{first}_{second}"),
        ("select", Some(second @ ("one" | "multiple"))) => format!("select_{second}"),
        _ => first.to_string(),
    };
    let rest: Vec<&str> = if joined == first {
        words[1.min(words.len())..].to_vec()
    } else {
        words[2..].to_vec()
    };
    if rest.iter().any(|w| w.eq_ignore_ascii_case("or_other")) {
        return Err("or_other is not supported; add an \"other\" choice and a text question relevant when it is selected".into());
    }
    let simple = |ty| {
        if rest.is_empty() {
            Ok(Kind::Question(ty, None))
        } else {
            Err(format!("{cell:?} is not a type; write {joined} alone"))
        }
    };
    match joined.as_str() {
        "text" => simple(FieldType::Text),
        "integer" | "int" => simple(FieldType::Integer),
        "decimal" => simple(FieldType::Decimal),
        "date" => simple(FieldType::Date),
        "datetime" => simple(FieldType::DateTime),
        "time" => simple(FieldType::Time),
        "geopoint" => simple(FieldType::Geopoint),
        "image" | "photo" => simple(FieldType::Image),
        "note" => simple(FieldType::Note),
        "acknowledge" => simple(FieldType::Acknowledge),
        "begin_group" => Ok(Kind::Begin(FieldType::Group)),
        "end_group" => Ok(Kind::End(FieldType::Group)),
        "begin_repeat" => Ok(Kind::Begin(FieldType::Repeat)),
        "end_repeat" => Ok(Kind::End(FieldType::Repeat)),
        "select_one" | "select_multiple" => match rest.as_slice() {
            [list] => Ok(Kind::Question(
                if joined == "select_one" { FieldType::SelectOne } else { FieldType::SelectMultiple },
                Some((*list).to_string()),
            )),
            [] => Err(format!("{joined} needs the name of its list of choices, e.g. {joined} yes_no")),
            _ => Err(format!("{cell:?} is not a type; write {joined} and the name of one list")),
        },
        "calculate" => Err("calculate is not supported yet; remove the row or make it a note".into()),
        "select_one_from_file" | "select_multiple_from_file" | "select_one_external" => Err(format!(
            "{joined} is not supported; put the choices on the choices sheet and use {}",
            if joined.starts_with("select_multiple") { "select_multiple" } else { "select_one" }
        )),
        "geotrace" | "geoshape" => Err(format!("{joined} is not supported; record a geopoint instead")),
        "audio" | "video" | "file" | "background-audio" => {
            Err(format!("{joined} is not supported; attach photos with an image question"))
        }
        "barcode" => Err("barcode is not supported; use a text question".into()),
        "range" => Err("range is not supported; use an integer or decimal question with a constraint".into()),
        "rank" => Err("rank is not supported; use select_multiple".into()),
        "start" | "end" | "today" | "deviceid" | "username" | "phonenumber" | "email" | "audit"
        | "simserial" | "subscriberid" | "start-geopoint" => Err(format!(
            "{joined} is recorded by Tideline itself for every record (who, where and when); remove the row"
        )),
        "" => Err("this row has no type; give it one or empty the row".into()),
        _ => Err(format!("the type {cell:?} is not supported; docs/FORMS.md lists the types that are")),
    }
}

/// Why a survey or choices column is refused when a row fills it.
fn unsupported_column(header: &str) -> String {
    let base = header
        .split("::")
        .next()
        .unwrap_or(header)
        .to_ascii_lowercase();
    match base.as_str() {
        "calculation" => "calculate is not supported yet; remove the row or make it a note".into(),
        "choice_filter" => "choice_filter is not supported; list only the choices that apply, or split the question".into(),
        "repeat_count" => "repeat_count is not supported; people add as many items as they need".into(),
        "trigger" => "trigger is not supported (it needs calculate); remove it".into(),
        "required_message" | "constraint_message" => {
            "translated messages are not supported yet; keep the message in the default language column".into()
        }
        "media" | "image" | "audio" | "video" | "big-image" => "media in labels is not supported; remove the column".into(),
        "read_only" => "read_only is not supported; use a note for text people should not change".into(),
        "parameters" => "parameters are not supported; remove them".into(),
        "guidance_hint" => "guidance hints are not supported; put the text in hint".into(),
        _ => format!("the column {header:?} is not supported; remove it or leave it empty"),
    }
}

/// The languages of `label::Language` and `hint::Language` columns, in order.
fn languages(sheet: &Sheet, out: &mut Vec<String>) {
    for h in &sheet.header {
        if let Some((base, lang)) = h.split_once("::") {
            let lang = lang.trim().to_string();
            if matches!(base.trim().to_ascii_lowercase().as_str(), "label" | "hint")
                && !out.contains(&lang)
            {
                out.push(lang);
            }
        }
    }
}

/// The text of `base` (label, hint) in the default language, and in the others.
struct Texts {
    plain: Option<usize>,
    by_language: Vec<(String, usize)>,
}

impl Texts {
    fn of(sheet: &Sheet, base: &str) -> Texts {
        let by_language = sheet
            .header
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                let (b, lang) = h.split_once("::")?;
                b.trim()
                    .eq_ignore_ascii_case(base)
                    .then(|| (lang.trim().to_string(), i))
            })
            .collect();
        Texts {
            plain: sheet.column(base),
            by_language,
        }
    }

    fn read(&self, row: &Row, default: Option<&str>) -> (String, BTreeMap<String, String>) {
        let mut main = row.get(self.plain).to_string();
        let mut others = BTreeMap::new();
        for (lang, col) in &self.by_language {
            let text = row.get(Some(*col));
            if text.is_empty() {
                continue;
            }
            if main.is_empty() && Some(lang.as_str()) == default {
                main = text.to_string();
            } else if Some(lang.as_str()) != default || self.plain.is_some() {
                others.insert(lang.clone(), text.to_string());
            }
        }
        (main, others)
    }
}

/// Refuses every filled cell of a column the importer does not read.
fn check_columns(
    sheet: &Sheet,
    row: &Row,
    known: &dyn Fn(&str) -> bool,
) -> Result<(), ImportError> {
    for (i, header) in sheet.header.iter().enumerate() {
        let filled = row.cells.get(i).is_some_and(|c| !c.is_empty());
        if !filled || known(header) {
            continue;
        }
        let message = if header.is_empty() {
            "this cell has no column header; give the column one or empty it".to_string()
        } else {
            unsupported_column(header)
        };
        return Err(sheet.refuse(row.number, i, message));
    }
    Ok(())
}

fn survey_column(header: &str) -> bool {
    if header.eq_ignore_ascii_case(FIELD_EXTRAS) {
        return true;
    }
    match header.split_once("::") {
        Some((base, _)) => matches!(base.trim().to_ascii_lowercase().as_str(), "label" | "hint"),
        None => SURVEY_COLUMNS
            .iter()
            .any(|c| c.eq_ignore_ascii_case(header)),
    }
}

fn yes(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "true()" | "1" => Some(true),
        "" | "no" | "false" | "false()" | "0" => Some(false),
        _ => None,
    }
}

struct Open {
    field: Field,
    row: usize,
}

pub(crate) fn convert(book: &Workbook, version: u32) -> Result<Form, ImportError> {
    if let Some(entities) = &book.entities {
        if let Some(row) = entities.rows.first() {
            let col = row.cells.iter().position(|c| !c.is_empty()).unwrap_or(0);
            return Err(entities.refuse(
                row.number,
                col,
                "entities are not supported; remove the entities sheet",
            ));
        }
    }
    let settings = read_settings(book.settings.as_ref())?;
    let mut langs = Vec::new();
    languages(&book.survey, &mut langs);
    if let Some(choices) = &book.choices {
        languages(choices, &mut langs);
    }
    let survey = &book.survey;
    let default_language = settings.default_language.clone().or_else(|| {
        (survey.column("label").is_none())
            .then(|| langs.first().cloned())
            .flatten()
    });
    // A type or column the importer refuses is the first thing to say about a row,
    // before the choices it might have used.
    let c_type = survey.column("type");
    for row in &survey.rows {
        kind_of(row.get(c_type)).map_err(|m| survey.refuse(row.number, c_type.unwrap_or(0), m))?;
        check_columns(survey, row, &survey_column)?;
    }
    let lists = read_choices(book.choices.as_ref(), default_language.as_deref())?;

    let col = |key: &str| survey.column(key);
    let c_name = col("name");
    let labels = Texts::of(survey, "label");
    let hints = Texts::of(survey, "hint");
    let mut top: Vec<Field> = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    let mut rows: HashMap<String, usize> = HashMap::new();
    let at = |row: &Row, key: &str, message: String| {
        survey.refuse(row.number, col(key).unwrap_or(0), message)
    };

    for row in &survey.rows {
        let kind = kind_of(row.get(c_type)).map_err(|m| at(row, "type", m))?;
        let (field_type, list) = match kind {
            Kind::End(ty) => {
                let open = stack.pop().filter(|o| o.field.field_type == ty).ok_or_else(|| {
                    at(row, "type", format!("this end_{} closes nothing that is open; check the begin and end rows", ty))
                })?;
                match stack.last_mut() {
                    Some(parent) => parent.field.fields.push(open.field),
                    None => top.push(open.field),
                }
                continue;
            }
            Kind::Begin(ty) => (ty, None),
            Kind::Question(ty, list) => (ty, list),
        };
        let name = row.get(c_name).to_string();
        if name.is_empty() {
            return Err(at(
                row,
                "name",
                "this question has no name; give it one".into(),
            ));
        }
        let (label, label_langs) = labels.read(row, default_language.as_deref());
        let (hint, hint_langs) = hints.read(row, default_language.as_deref());
        let mut field = Field::new(name.clone(), label, field_type);
        field.labels = label_langs;
        field.hints = hint_langs;
        field.hint = (!hint.is_empty()).then_some(hint);
        field.required = yes(row.get(col("required"))).ok_or_else(|| {
            at(
                row,
                "required",
                format!("{:?} is not yes or no", row.get(col("required"))),
            )
        })?;
        let text = |key: &str| Some(row.get(col(key)).to_string()).filter(|s| !s.is_empty());
        field.required_message = text("required_message");
        field.relevant = text("relevant");
        let extras = match text(FIELD_EXTRAS) {
            Some(json) => Some(Extras::parse(&json).map_err(|m| at(row, FIELD_EXTRAS, m))?),
            None => None,
        };
        let fixed = extras.as_ref().and_then(|e| e.constraint.clone());
        match (text("constraint"), text("constraint_message")) {
            (None, Some(message)) if fixed.is_some() => {
                field.constraint = Some(Constraint {
                    message: Some(message),
                    ..Constraint::default()
                })
            }
            (None, Some(_)) => {
                return Err(at(
                    row,
                    "constraint_message",
                    "a constraint_message needs a constraint beside it".into(),
                ))
            }
            (None, None) => {}
            (expression, message) => {
                field.constraint = Some(Constraint {
                    expression,
                    message,
                    ..Constraint::default()
                })
            }
        }
        if let Some(appearance) = text("appearance") {
            field.appearance =
                appearance_of(field_type, &appearance).map_err(|m| at(row, "appearance", m))?;
        }
        if let Some(default) = text("default") {
            field.default =
                Some(default_of(field_type, &default).map_err(|m| at(row, "default", m))?);
        }
        if let Some(extras) = extras {
            extras
                .apply(&mut field, list.as_deref())
                .map_err(|m| at(row, FIELD_EXTRAS, m))?;
        }
        if field.field_type == FieldType::Boolean {
            // Written as select_one tideline_boolean; the choices are true and false.
        } else if let Some(list) = list {
            field.choices = lists.get(&list).cloned().ok_or_else(|| {
                at(
                    row,
                    "type",
                    format!("there is no list {list:?} on the choices sheet"),
                )
            })?;
        }
        let parent_path: Vec<&str> = stack.iter().map(|o| o.field.name.as_str()).collect();
        let mut path = parent_path.join(".");
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(&name);
        // A name used twice is refused at its second row, where the duplicate is.
        rows.insert(path, row.number);
        if field_type.has_children() {
            stack.push(Open {
                field,
                row: row.number,
            });
        } else {
            match stack.last_mut() {
                Some(parent) => parent.field.fields.push(field),
                None => top.push(field),
            }
        }
    }
    if let Some(open) = stack.last() {
        let ty = open.field.field_type;
        return Err(survey.refuse(
            open.row,
            c_type.unwrap_or(0),
            format!("this {ty} is never closed; add an end_{ty} row after its last question"),
        ));
    }

    let mut form = Form {
        id: settings.id,
        version,
        title: settings.title,
        description: settings.description,
        fields: top,
        checks: settings.checks,
        default_language: (!langs.is_empty()).then_some(default_language).flatten(),
        source_version: settings.version,
        logic: Default::default(),
        patterns: Default::default(),
    };
    form.prepare()
        .map_err(|e| locate(&e, survey, &rows, book.settings.as_ref()))?;
    Ok(form)
}

fn appearance_of(ty: FieldType, appearance: &str) -> Result<Option<String>, String> {
    if appearance.contains("search(") {
        return Err(
            "search() appearances are not supported; put the choices on the choices sheet".into(),
        );
    }
    match (ty, appearance.trim()) {
        (FieldType::Text, "multiline") => Ok(Some("multiline".into())),
        // The web form shows a group's questions together already.
        (FieldType::Group, "field-list") => Ok(None),
        (_, other) => Err(format!(
            "the appearance {other:?} has no equivalent in the web form here; remove it"
        )),
    }
}

fn default_of(ty: FieldType, text: &str) -> Result<Json, String> {
    // `today()`, `${other}`, `concat(...)`: computed, not a literal.
    let call = text.split_once('(').is_some_and(|(name, _)| {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
    });
    if text.contains("${") || call {
        return Err(
            "only a literal can be a default (a value, not an expression); remove the expression"
                .into(),
        );
    }
    match ty {
        FieldType::Integer => text
            .parse::<i64>()
            .map(Json::from)
            .map_err(|_| format!("{text:?} is not a whole number")),
        FieldType::Decimal => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
            .ok_or_else(|| format!("{text:?} is not a number")),
        _ => Ok(Json::String(text.to_string())),
    }
}

fn read_choices(
    sheet: Option<&Sheet>,
    default_language: Option<&str>,
) -> Result<HashMap<String, Vec<Choice>>, ImportError> {
    let mut lists: HashMap<String, Vec<Choice>> = HashMap::new();
    let Some(sheet) = sheet else {
        return Ok(lists);
    };
    let (c_list, c_name) = (sheet.column("list_name"), sheet.column("name"));
    let labels = Texts::of(sheet, "label");
    let known = |h: &str| {
        h.eq_ignore_ascii_case("list_name")
            || h.eq_ignore_ascii_case("name")
            || h.eq_ignore_ascii_case("label")
            || h.split_once("::")
                .is_some_and(|(b, _)| b.trim().eq_ignore_ascii_case("label"))
    };
    for row in &sheet.rows {
        for (i, header) in sheet.header.iter().enumerate() {
            if row.cells.get(i).is_some_and(|c| !c.is_empty()) && !known(header) {
                return Err(sheet.refuse(
                    row.number,
                    i,
                    format!(
                        "the column {header:?} is not supported on the choices sheet (extra columns serve choice_filter, which is not supported); remove it"
                    ),
                ));
            }
        }
        let list = row.get(c_list);
        let value = row.get(c_name);
        if list.is_empty() || value.is_empty() {
            let (key, col) = if list.is_empty() {
                ("list_name", c_list)
            } else {
                ("name", c_name)
            };
            return Err(sheet.refuse(
                row.number,
                col.unwrap_or(0),
                format!("this choice has no {key}"),
            ));
        }
        let (label, others) = labels.read(row, default_language);
        let mut choice = Choice::new(value, label);
        choice.labels = others;
        lists.entry(list.to_string()).or_default().push(choice);
    }
    Ok(lists)
}

struct Settings {
    /// `tideline::form`: what XLSForm cannot say about a form.
    description: Option<String>,
    checks: Vec<Check>,
    id: String,
    title: String,
    version: Option<String>,
    default_language: Option<String>,
}

fn read_settings(sheet: Option<&Sheet>) -> Result<Settings, ImportError> {
    let sheet = sheet.ok_or(ImportError::MissingSheet {
        sheet: "settings",
        hint: "add one with form_id, form_title and version, which name the form on every boat",
    })?;
    let row = sheet.rows.first();
    let get = |key: &str| row.map_or("", |r| r.get(sheet.column(key))).to_string();
    if let Some(row) = row {
        let known = |h: &str| {
            [
                "form_id",
                "form_title",
                "version",
                "default_language",
                FORM_EXTRAS,
            ]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(h))
        };
        check_columns(sheet, row, &|h| known(h)).map_err(|e| match e {
            ImportError::At {
                sheet, row, column, ..
            } => ImportError::At {
                message: "this setting is not supported; remove it".to_string(),
                sheet,
                row,
                column,
            },
            other => other,
        })?;
    }
    // XLSForm ids are often written with underscores; Tideline's use hyphens.
    let id = get("form_id").to_ascii_lowercase().replace(['_', ' '], "-");
    if id.is_empty() {
        return Err(sheet.refuse(
            row.map_or(2, |r| r.number),
            sheet.column("form_id").unwrap_or(0),
            "the form needs a form_id",
        ));
    }
    let title = Some(get("form_title"))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| id.clone());
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct FormExtras {
        description: Option<String>,
        #[serde(default)]
        checks: Vec<Check>,
    }
    let extras = get(FORM_EXTRAS);
    let extras: FormExtras = if extras.is_empty() {
        FormExtras {
            description: None,
            checks: Vec::new(),
        }
    } else {
        serde_json::from_str(&extras).map_err(|e| {
            sheet.refuse(
                row.map_or(2, |r| r.number),
                sheet.column(FORM_EXTRAS).unwrap_or(0),
                format!("{FORM_EXTRAS} must be a JSON object with description and checks: {e}"),
            )
        })?
    };
    Ok(Settings {
        description: extras.description,
        checks: extras.checks,
        id,
        title,
        version: Some(get("version")).filter(|v| !v.is_empty()),
        default_language: Some(get("default_language")).filter(|v| !v.is_empty()),
    })
}

/// Where a form-level refusal points: the row of the field it names, and the column
/// of the attribute it is about.
fn locate(
    error: &FormError,
    survey: &Sheet,
    rows: &HashMap<String, usize>,
    settings: Option<&Sheet>,
) -> ImportError {
    use FormError as E;
    let (path, column, message): (Option<&str>, &str, String) = match error {
        E::Expression { path, attribute, message } => (Some(path), attribute, message.clone()),
        E::InvalidDefault { path, .. } => (Some(path), "default", error.to_string()),
        E::InvalidFieldName { path, .. } => (
            Some(path),
            "name",
            format!("{error}; Tideline's names use lowercase letters, digits and _, starting with a letter (rename it, and every ${{...}} that refers to it)"),
        ),
        E::DuplicateField { path } => (Some(path), "name", error.to_string()),
        E::InvalidRegex { path, .. } | E::MinGreaterThanMax { path, .. } | E::NonFiniteBound { path, .. } => {
            (Some(path), "constraint", error.to_string())
        }
        E::NotApplicable { path, attribute, .. } => {
            let column = if attribute.starts_with("constraint") { "constraint" } else if *attribute == "required" { "required" } else { "type" };
            (Some(path), column, error.to_string())
        }
        E::NoChoices { path } | E::EmptyChoiceValue { path } | E::DuplicateChoice { path, .. }
        | E::UnexpectedChoices { path, .. } | E::EmptyRepeat { path } | E::UnexpectedChildren { path, .. }
        | E::UniqueOutsideRepeat { path } => (Some(path), "type", error.to_string()),
        E::InvalidId { .. } | E::InvalidVersion { .. } => {
            if let Some(settings) = settings {
                let row = settings.rows.first().map_or(2, |r| r.number);
                return settings.refuse(row, settings.column("form_id").unwrap_or(0), error.to_string());
            }
            (None, "type", error.to_string())
        }
        _ => (None, "type", error.to_string()),
    };
    let row = path.and_then(|p| rows.get(p)).copied().unwrap_or(1);
    survey.refuse(row, survey.column(column).unwrap_or(0), message)
}

/// What `tideline::field` says about a field beyond XLSForm's columns.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Extras {
    #[serde(rename = "type")]
    field_type: Option<String>,
    #[serde(default)]
    multiple: bool,
    #[serde(default)]
    unique: bool,
    item_label: Option<String>,
    constraint: Option<Constraint>,
}

impl Extras {
    fn parse(json: &str) -> Result<Extras, String> {
        let extras: Extras = serde_json::from_str(json).map_err(|e| {
            format!("{FIELD_EXTRAS} must be a JSON object of type, multiple, unique, item_label and constraint: {e}")
        })?;
        if let Some(c) = &extras.constraint {
            if c.expression.is_some() || c.message.is_some() {
                return Err("write the constraint expression and its message in the constraint and constraint_message columns".into());
            }
        }
        Ok(extras)
    }

    fn apply(self, field: &mut Field, list: Option<&str>) -> Result<(), String> {
        match self.field_type.as_deref() {
            None => {}
            Some("boolean") if field.field_type == FieldType::SelectOne && list == Some(BOOLEAN_LIST) => {
                field.field_type = FieldType::Boolean;
            }
            Some(other) => {
                return Err(format!(
                    "the type {other:?} here needs the type column to say select_one {BOOLEAN_LIST} (a boolean is the only such type)"
                ))
            }
        }
        field.multiple = self.multiple;
        field.unique = self.unique;
        field.item_label = self.item_label;
        if let Some(fixed) = self.constraint {
            let c = field.constraint.get_or_insert_with(Constraint::default);
            c.min = fixed.min;
            c.max = fixed.max;
            c.min_length = fixed.min_length;
            c.max_length = fixed.max_length;
            c.regex = fixed.regex;
            c.min_items = fixed.min_items;
            c.max_items = fixed.max_items;
        }
        Ok(())
    }
}

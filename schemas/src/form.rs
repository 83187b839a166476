//! Form definitions: the JSON shape of a form, parsing it, and the structural checks that
//! make a form safe to validate records against.
//!
//! Field types reuse XLSForm's vocabulary (docs/DESIGN.md §4) so that ODK users recognise them.
//! Forms arrive from outside (HQ publishes them, boats receive them by sync), so parsing is
//! strict: unknown keys are refused rather than ignored, because a mistyped `"minLength"`
//! silently ignored would let bad records through on every boat.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::expr::Expr;

/// Forms larger than this are refused before parsing; the biggest realistic form (long
/// species or port lists) is far smaller, and the cap bounds the work a hostile form can cause.
pub const MAX_FORM_BYTES: usize = 4 * 1024 * 1024;

/// Compiled regexes are capped so that a hostile pattern cannot exhaust memory.
pub(crate) const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A form: a versioned list of fields plus cross-field checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Form {
    pub id: String,
    pub version: u32,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub fields: Vec<Field>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// The language `label` and `hint` are written in, when the form has translations
    /// (XLSForm's `default_language`, e.g. `English (en)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_language: Option<String>,
    /// The version the form was authored under elsewhere, kept as written (an XLSForm's
    /// `settings` version such as `2026112801`); `version` is Tideline's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    /// The form's `relevant` and `constraint.expression` texts, parsed when it is
    /// checked, with the field each `${name}` names.
    #[serde(skip)]
    pub(crate) logic: Logic,
    /// The regexes of the form's constraints, compiled once when the form is
    /// checked and used by every validation against it.
    #[serde(skip)]
    pub(crate) patterns: Patterns,
}

/// Compiled regexes by pattern. Forms holding different sets still compare
/// equal: the set follows from the form's own constraints.
#[derive(Clone, Default)]
pub(crate) struct Patterns(pub(crate) Arc<HashMap<String, regex::Regex>>);

impl Patterns {
    pub(crate) fn get(&self, pattern: &str) -> Option<&regex::Regex> {
        self.0.get(pattern)
    }
}

impl PartialEq for Patterns {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for Patterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Patterns({} compiled)", self.0.len())
    }
}

/// Where a name's field lives, and what type its answer has.
#[derive(Debug, Clone)]
pub(crate) struct Def {
    /// Field names from the top of the record; `true` marks a repeat.
    pub(crate) steps: Vec<(String, bool)>,
    pub(crate) field_type: FieldType,
    /// Enclosing repeats, outermost first, as dotted form paths.
    pub(crate) repeats: Vec<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Compiled {
    pub(crate) exprs: HashMap<String, Expr>,
    pub(crate) names: HashMap<String, Def>,
}

/// A form's compiled logic (schemas/src/logic.rs compiles and reads it; it is held
/// here, with the form, so that the two modules do not import each other). Forms holding different copies still compare equal: the
/// logic follows from the form's own fields.
#[derive(Debug, Clone, Default)]
pub(crate) struct Logic(pub(crate) Option<Arc<Compiled>>);

impl PartialEq for Logic {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// One question of a form. A `repeat` holds child fields in `fields`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<Constraint>,
    /// Choices of a `select_one` / `select_multiple`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<Choice>,
    /// Children of a `repeat`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Field>,
    /// On `text` and `image`: the value is a list of that type.
    #[serde(default, skip_serializing_if = "is_false")]
    pub multiple: bool,
    /// XLSForm-style display hints; `multiline` on text marks long free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appearance: Option<String>,
    /// On a field inside a repeat: no two items of the repeat may share a value.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
    /// On a `repeat`: what one item is called ("Crew member" for "People on
    /// board"), for labels such as "Crew member 2" and "Remove seizure 1".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_label: Option<String>,
    /// When the question applies: an expression (docs/FORMS.md). A question whose
    /// condition is false is not required, not checked, and not kept on save.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relevant: Option<String>,
    /// Shown instead of "X is required." when a required answer is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_message: Option<String>,
    /// The answer a new record starts with: a literal of the field's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// The label in other languages, by language (`Français (fr)`); `label` is the
    /// form's default language.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The hint in other languages, as `labels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hints: BTreeMap<String, String>,
}

// serde's skip_serializing_if needs a function taking a reference.
fn is_false(b: &bool) -> bool {
    !*b
}

/// The XLSForm type vocabulary; serialized names are exactly XLSForm's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FieldType {
    #[serde(rename = "text")]
    Text,
    #[serde(rename = "integer")]
    Integer,
    #[serde(rename = "decimal")]
    Decimal,
    #[serde(rename = "select_one")]
    SelectOne,
    #[serde(rename = "select_multiple")]
    SelectMultiple,
    #[serde(rename = "geopoint")]
    Geopoint,
    #[serde(rename = "date")]
    Date,
    #[serde(rename = "dateTime")]
    DateTime,
    #[serde(rename = "image")]
    Image,
    #[serde(rename = "note")]
    Note,
    #[serde(rename = "boolean")]
    Boolean,
    #[serde(rename = "repeat")]
    Repeat,
    /// Questions shown and stored together: the value is an object of its children.
    #[serde(rename = "group")]
    Group,
    /// A time of day, `HH:MM` or `HH:MM:SS`.
    #[serde(rename = "time")]
    Time,
    /// A statement the officer confirms: the value is `"OK"`, as in ODK.
    #[serde(rename = "acknowledge")]
    Acknowledge,
}

impl FieldType {
    /// The name used in form JSON (XLSForm's).
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Integer => "integer",
            FieldType::Decimal => "decimal",
            FieldType::SelectOne => "select_one",
            FieldType::SelectMultiple => "select_multiple",
            FieldType::Geopoint => "geopoint",
            FieldType::Date => "date",
            FieldType::DateTime => "dateTime",
            FieldType::Image => "image",
            FieldType::Note => "note",
            FieldType::Boolean => "boolean",
            FieldType::Repeat => "repeat",
            FieldType::Group => "group",
            FieldType::Time => "time",
            FieldType::Acknowledge => "acknowledge",
        }
    }

    pub(crate) fn is_select(self) -> bool {
        matches!(self, FieldType::SelectOne | FieldType::SelectMultiple)
    }

    /// Repeats and groups hold child fields rather than an answer of their own.
    pub fn has_children(self) -> bool {
        matches!(self, FieldType::Repeat | FieldType::Group)
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Limits on a field's value. Which keys apply depends on the field type; `Form::parse`
/// refuses keys that would be silently ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraint {
    /// integer / decimal
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// text, counted in characters
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// text; must match the whole value
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// repeat, select_multiple, and `multiple` text/image
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_items: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<usize>,
    /// Any type but note, repeat and group: an expression over `.` (this answer) and
    /// `${name}` that must hold for a non-empty answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// Shown instead of the generated sentence when the constraint fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One option of a select field: `value` is stored, `label` is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    pub value: String,
    pub label: String,
    /// The label in other languages, by language.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Choice {
    pub fn new(value: impl Into<String>, label: impl Into<String>) -> Self {
        Choice {
            value: value.into(),
            label: label.into(),
            labels: BTreeMap::new(),
        }
    }
}

/// A rule spanning several top-level fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// The number of items of list field `count` must be <= integer field `limit`,
    /// when both are present.
    CountAtMost {
        count: String,
        limit: String,
        #[serde(default)]
        message: String,
    },
    /// List field `field` must be empty or absent unless boolean field `when` is true.
    EmptyUnless {
        field: String,
        when: String,
        #[serde(default)]
        message: String,
    },
}

/// Why a form was refused. Paths name fields as `parent.child` (no indices: these are
/// positions in the form, not in a record).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("form is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("form is not valid form JSON: {0}")]
    Json(String),
    #[error("form id {id:?} is invalid: it must be non-empty and use only a-z, 0-9 and '-'")]
    InvalidId { id: String },
    #[error("form {id:?} has version 0: versions start at 1")]
    InvalidVersion { id: String },
    #[error("field name {name:?} at {path:?} is invalid: it must match [a-z][a-z0-9_]*")]
    InvalidFieldName { path: String, name: String },
    #[error("field {path:?} is defined more than once")]
    DuplicateField { path: String },
    #[error("select field {path:?} has no choices")]
    NoChoices { path: String },
    #[error("select field {path:?} has a choice with an empty value")]
    EmptyChoiceValue { path: String },
    #[error("select field {path:?} has the choice value {value:?} more than once")]
    DuplicateChoice { path: String, value: String },
    #[error("field {path:?} is of type {field_type} and cannot have choices")]
    UnexpectedChoices { path: String, field_type: FieldType },
    #[error("{path:?} has no child fields: a repeat or group needs at least one")]
    EmptyRepeat { path: String },
    #[error("field {path:?} is of type {field_type} and cannot have child fields")]
    UnexpectedChildren { path: String, field_type: FieldType },
    #[error("field {path:?} has an invalid regex: {message}")]
    InvalidRegex { path: String, message: String },
    #[error("field {path:?}: constraint {lower} is greater than {upper}")]
    MinGreaterThanMax {
        path: String,
        lower: &'static str,
        upper: &'static str,
    },
    #[error("field {path:?}: constraint {key} must be a finite number")]
    NonFiniteBound { path: String, key: &'static str },
    #[error("field {path:?}: {attribute} does not apply to a {field_type} field")]
    NotApplicable {
        path: String,
        attribute: &'static str,
        field_type: FieldType,
    },
    #[error("field {path:?} is marked unique but is not inside a repeat")]
    UniqueOutsideRepeat { path: String },
    #[error("check {rule} refers to {field:?}, which is not a top-level field of the form")]
    CheckUnknownField { rule: &'static str, field: String },
    #[error("check {rule} refers to {field:?}, which must be {expected}")]
    CheckFieldType {
        rule: &'static str,
        field: String,
        expected: &'static str,
    },
    #[error("field {path:?}: its {attribute} expression is invalid: {message}")]
    Expression {
        path: String,
        attribute: &'static str,
        message: String,
    },
    #[error("field {path:?}: its default {value} is not a valid answer: {message}")]
    InvalidDefault {
        path: String,
        value: String,
        message: String,
    },
    #[error("form {id:?} version {version} is already registered")]
    DuplicateVersion { id: String, version: u32 },
}

impl Form {
    /// Every language the form's labels, hints and choices are translated into,
    /// besides its default one.
    pub fn languages(&self) -> std::collections::BTreeSet<String> {
        fn collect(fields: &[Field], out: &mut std::collections::BTreeSet<String>) {
            for f in fields {
                out.extend(f.labels.keys().cloned());
                out.extend(f.hints.keys().cloned());
                for c in &f.choices {
                    out.extend(c.labels.keys().cloned());
                }
                collect(&f.fields, out);
            }
        }
        let mut out = std::collections::BTreeSet::new();
        collect(&self.fields, &mut out);
        out
    }

    /// Whether any question of the form has a `relevant` condition, which makes
    /// saving clear the answers that do not apply.
    pub fn has_logic(&self) -> bool {
        fn any(fields: &[Field]) -> bool {
            fields
                .iter()
                .any(|f| f.relevant.is_some() || any(&f.fields))
        }
        any(&self.fields)
    }

    /// The top-level field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

impl Check {
    /// The rule name as written in form JSON.
    pub fn rule(&self) -> &'static str {
        match self {
            Check::CountAtMost { .. } => "count_at_most",
            Check::EmptyUnless { .. } => "empty_unless",
        }
    }
}

impl Field {
    /// A field with every optional attribute at its default, for forms built in code.
    pub fn new(name: impl Into<String>, label: impl Into<String>, field_type: FieldType) -> Self {
        Field {
            name: name.into(),
            label: label.into(),
            field_type,
            required: false,
            hint: None,
            constraint: None,
            choices: Vec::new(),
            fields: Vec::new(),
            multiple: false,
            appearance: None,
            unique: false,
            item_label: None,
            relevant: None,
            required_message: None,
            default: None,
            labels: BTreeMap::new(),
            hints: BTreeMap::new(),
        }
    }

    /// What one item of this repeat is called: its `item_label`, else the
    /// label itself.
    pub fn item_name(&self) -> &str {
        self.item_label.as_deref().unwrap_or(&self.label)
    }

    /// Long free text: edited as a document (merged per character) rather than a scalar.
    pub fn is_long_text(&self) -> bool {
        self.field_type == FieldType::Text
            && !self.multiple
            && self
                .appearance
                .as_deref()
                .is_some_and(|a| a.split_whitespace().any(|a| a == "multiline"))
    }

    /// Whether the value is a JSON array: repeats, select_multiple, and `multiple` fields.
    pub fn is_list(&self) -> bool {
        match self.field_type {
            FieldType::Repeat | FieldType::SelectMultiple => true,
            FieldType::Text | FieldType::Image => self.multiple,
            _ => false,
        }
    }

    /// The child field called `name` of a repeat.
    pub fn child(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The label, or the name when the form gives an empty label.
    pub(crate) fn display_name(&self) -> &str {
        if self.label.trim().is_empty() {
            &self.name
        } else {
            &self.label
        }
    }
}

pub(crate) fn compile_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    // Anchored with \A and \z so that the pattern must match the whole value, whatever
    // flags the pattern sets inside its own group.
    regex::RegexBuilder::new(&format!(r"\A(?:{pattern})\z"))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> serde_json::Value {
        json!({
            "id": "test-form",
            "version": 1,
            "title": "Test",
            "fields": [
                {"name": "name", "label": "Name", "type": "text", "required": true},
                {"name": "count", "label": "Count", "type": "integer"},
                {"name": "flag", "label": "Flag", "type": "boolean"},
                {"name": "kind", "label": "Kind", "type": "select_one",
                 "choices": [{"value": "a", "label": "A"}, {"value": "b", "label": "B"}]},
                {"name": "items", "label": "Items", "type": "repeat", "fields": [
                    {"name": "tag", "label": "Tag", "type": "text", "unique": true}
                ]}
            ]
        })
    }

    fn parse(v: &serde_json::Value) -> Result<Form, FormError> {
        Form::parse(&v.to_string())
    }

    fn with_field(field: serde_json::Value) -> serde_json::Value {
        let mut v = base();
        v["fields"].as_array_mut().unwrap().push(field);
        v
    }

    #[test]
    fn parses_a_good_form() {
        let form = parse(&base()).unwrap();
        assert_eq!(form.id, "test-form");
        assert_eq!(form.fields.len(), 5);
        assert_eq!(form.field("kind").unwrap().field_type, FieldType::SelectOne);
        assert!(
            form.field("tag").is_none(),
            "field() looks at the top level only"
        );
        assert!(form.field("items").unwrap().child("tag").unwrap().unique);
    }

    #[test]
    fn field_type_names_are_xlsform_names() {
        let all = [
            FieldType::Text,
            FieldType::Integer,
            FieldType::Decimal,
            FieldType::SelectOne,
            FieldType::SelectMultiple,
            FieldType::Geopoint,
            FieldType::Date,
            FieldType::DateTime,
            FieldType::Image,
            FieldType::Note,
            FieldType::Boolean,
            FieldType::Repeat,
        ];
        let names: Vec<String> = all
            .iter()
            .map(|t| {
                serde_json::to_value(t)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            [
                "text",
                "integer",
                "decimal",
                "select_one",
                "select_multiple",
                "geopoint",
                "date",
                "dateTime",
                "image",
                "note",
                "boolean",
                "repeat"
            ]
        );
        for (t, n) in all.iter().zip(&names) {
            assert_eq!(t.as_str(), n);
            assert_eq!(serde_json::from_value::<FieldType>(json!(n)).unwrap(), *t);
        }
        assert!(serde_json::from_value::<FieldType>(json!("datetime")).is_err());
    }

    #[test]
    fn serialization_round_trips() {
        let form = parse(&base()).unwrap();
        let text = serde_json::to_string(&form).unwrap();
        assert_eq!(Form::parse(&text).unwrap(), form);
        // Defaults are left out so published forms stay small.
        assert!(!text.contains("\"hint\""));
    }

    #[test]
    fn refuses_malformed_json_and_unknown_keys() {
        assert!(matches!(Form::parse("{"), Err(FormError::Json(_))));
        assert!(matches!(Form::parse(""), Err(FormError::Json(_))));
        let mut v = base();
        v["fields"][1]["constraint"] = json!({"minimum": 3});
        assert!(matches!(parse(&v), Err(FormError::Json(_))));
        let mut v = base();
        v["colour"] = json!("blue");
        assert!(matches!(parse(&v), Err(FormError::Json(_))));
        let mut v = base();
        v["fields"][0]["type"] = json!("string");
        assert!(matches!(parse(&v), Err(FormError::Json(_))));
    }

    #[test]
    fn refuses_oversized_input() {
        let big = " ".repeat(MAX_FORM_BYTES + 1);
        assert!(matches!(Form::parse(&big), Err(FormError::TooLarge { .. })));
    }

    #[test]
    fn refuses_bad_ids() {
        for id in ["", "Boarding", "boarding report", "a_b", "é"] {
            let mut v = base();
            v["id"] = json!(id);
            assert_eq!(
                parse(&v),
                Err(FormError::InvalidId { id: id.to_string() }),
                "{id:?}"
            );
        }
    }

    #[test]
    fn refuses_version_zero() {
        let mut v = base();
        v["version"] = json!(0);
        assert!(matches!(parse(&v), Err(FormError::InvalidVersion { .. })));
        v["version"] = json!(-1);
        assert!(matches!(parse(&v), Err(FormError::Json(_))));
    }

    #[test]
    fn refuses_bad_field_names() {
        for name in ["", "Name", "1st", "_x", "a-b", "a b"] {
            let v = with_field(json!({"name": name, "label": "X", "type": "text"}));
            assert!(
                matches!(parse(&v), Err(FormError::InvalidFieldName { .. })),
                "{name:?}"
            );
        }
        let mut v = base();
        v["fields"][4]["fields"][0]["name"] = json!("Tag");
        assert_eq!(
            parse(&v),
            Err(FormError::InvalidFieldName {
                path: "items.Tag".into(),
                name: "Tag".into()
            })
        );
    }

    #[test]
    fn refuses_duplicate_field_names_per_level() {
        let v = with_field(json!({"name": "count", "label": "Again", "type": "decimal"}));
        assert_eq!(
            parse(&v),
            Err(FormError::DuplicateField {
                path: "count".into()
            })
        );
        let mut v = base();
        v["fields"][4]["fields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "tag", "label": "T", "type": "text"}));
        assert_eq!(
            parse(&v),
            Err(FormError::DuplicateField {
                path: "items.tag".into()
            })
        );
        // The same name at different levels is fine.
        let mut v = base();
        v["fields"][4]["fields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "name", "label": "Name", "type": "text"}));
        assert!(parse(&v).is_ok());
    }

    #[test]
    fn refuses_select_without_choices_or_with_duplicates() {
        let v = with_field(json!({"name": "s", "label": "S", "type": "select_multiple"}));
        assert_eq!(parse(&v), Err(FormError::NoChoices { path: "s".into() }));
        let v = with_field(json!({"name": "s", "label": "S", "type": "select_one",
            "choices": [{"value": "x", "label": "X"}, {"value": "x", "label": "X2"}]}));
        assert_eq!(
            parse(&v),
            Err(FormError::DuplicateChoice {
                path: "s".into(),
                value: "x".into()
            })
        );
        let v = with_field(json!({"name": "s", "label": "S", "type": "select_one",
            "choices": [{"value": "", "label": "None"}]}));
        assert_eq!(
            parse(&v),
            Err(FormError::EmptyChoiceValue { path: "s".into() })
        );
    }

    #[test]
    fn refuses_choices_on_non_select() {
        let v = with_field(json!({"name": "t", "label": "T", "type": "text",
            "choices": [{"value": "x", "label": "X"}]}));
        assert_eq!(
            parse(&v),
            Err(FormError::UnexpectedChoices {
                path: "t".into(),
                field_type: FieldType::Text
            })
        );
    }

    #[test]
    fn refuses_empty_repeat_and_children_elsewhere() {
        let v = with_field(json!({"name": "r", "label": "R", "type": "repeat"}));
        assert_eq!(parse(&v), Err(FormError::EmptyRepeat { path: "r".into() }));
        let v = with_field(json!({"name": "t", "label": "T", "type": "text",
            "fields": [{"name": "x", "label": "X", "type": "text"}]}));
        assert_eq!(
            parse(&v),
            Err(FormError::UnexpectedChildren {
                path: "t".into(),
                field_type: FieldType::Text
            })
        );
    }

    #[test]
    fn parsing_compiles_each_regex_once_for_every_validation() {
        let v = with_field(json!({"name": "code", "label": "Code", "type": "text",
            "constraint": {"regex": "[A-Z]{2}"}}));
        let form = parse(&v).unwrap();
        assert!(form.patterns.get("[A-Z]{2}").is_some());
        // A clone shares them, and checking again compiles nothing new.
        let copy = form.clone();
        assert!(Arc::ptr_eq(&copy.patterns.0, &form.patterns.0));
        assert_eq!(copy.checked(&copy.patterns).unwrap().0.len(), 1);
    }

    #[test]
    fn refuses_bad_regex() {
        let v = with_field(json!({"name": "t", "label": "T", "type": "text",
            "constraint": {"regex": "(unclosed"}}));
        assert!(matches!(parse(&v), Err(FormError::InvalidRegex { path, .. }) if path == "t"));
        // Too big once compiled: refused rather than allowed to eat memory.
        let v = with_field(json!({"name": "t", "label": "T", "type": "text",
            "constraint": {"regex": "(\\w{100}){100}"}}));
        assert!(matches!(parse(&v), Err(FormError::InvalidRegex { .. })));
    }

    #[test]
    fn refuses_min_greater_than_max() {
        let cases = [
            (
                json!({"type": "integer", "constraint": {"min": 5, "max": 1}}),
                "min",
            ),
            (
                json!({"type": "text", "constraint": {"min_length": 5, "max_length": 1}}),
                "min_length",
            ),
            (
                json!({"type": "repeat", "fields": [{"name": "x", "label": "X", "type": "text"}],
                   "constraint": {"min_items": 3, "max_items": 2}}),
                "min_items",
            ),
        ];
        for (mut field, lower) in cases {
            field["name"] = json!("f");
            field["label"] = json!("F");
            assert!(
                matches!(parse(&with_field(field)), Err(FormError::MinGreaterThanMax { lower: l, .. }) if l == lower),
                "{lower}"
            );
        }
        let ok = with_field(json!({"name": "f", "label": "F", "type": "decimal",
            "constraint": {"min": 1.5, "max": 1.5}}));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn refuses_multiple_outside_text_and_image() {
        let v = with_field(json!({"name": "n", "label": "N", "type": "integer", "multiple": true}));
        assert_eq!(
            parse(&v),
            Err(FormError::NotApplicable {
                path: "n".into(),
                attribute: "multiple",
                field_type: FieldType::Integer
            })
        );
        for ty in ["text", "image"] {
            let v = with_field(json!({"name": "n", "label": "N", "type": ty, "multiple": true}));
            assert!(parse(&v).is_ok(), "{ty}");
        }
    }

    #[test]
    fn refuses_unique_outside_repeat() {
        let v = with_field(json!({"name": "u", "label": "U", "type": "text", "unique": true}));
        assert_eq!(
            parse(&v),
            Err(FormError::UniqueOutsideRepeat { path: "u".into() })
        );
    }

    #[test]
    fn refuses_constraints_that_would_be_ignored() {
        let cases = [
            json!({"type": "text", "constraint": {"min": 1}}),
            json!({"type": "integer", "constraint": {"regex": "1"}}),
            json!({"type": "integer", "constraint": {"max_length": 3}}),
            json!({"type": "text", "constraint": {"max_items": 3}}),
            json!({"type": "date", "constraint": {"max": 3}}),
        ];
        for mut field in cases {
            field["name"] = json!("f");
            field["label"] = json!("F");
            assert!(
                matches!(
                    parse(&with_field(field.clone())),
                    Err(FormError::NotApplicable { .. })
                ),
                "{field}"
            );
        }
        let v = with_field(json!({"name": "n", "label": "N", "type": "note", "required": true}));
        assert!(matches!(
            parse(&v),
            Err(FormError::NotApplicable {
                attribute: "required",
                ..
            })
        ));
    }

    #[test]
    fn refuses_non_finite_bounds_in_code_built_forms() {
        let mut form = parse(&base()).unwrap();
        form.fields[1].constraint = Some(Constraint {
            max: Some(f64::NAN),
            ..Constraint::default()
        });
        assert!(matches!(
            form.check(),
            Err(FormError::NonFiniteBound { key: "max", .. })
        ));
    }

    #[test]
    fn checks_must_reference_fields_of_the_right_type() {
        let mut v = base();
        v["checks"] = json!([{"rule": "count_at_most", "count": "items", "limit": "count", "message": "m"},
                             {"rule": "empty_unless", "field": "items", "when": "flag", "message": "m"}]);
        let form = parse(&v).unwrap();
        assert_eq!(form.checks.len(), 2);
        assert_eq!(form.checks[0].rule(), "count_at_most");

        let bad = [
            (
                json!({"rule": "count_at_most", "count": "nope", "limit": "count", "message": "m"}),
                "unknown",
            ),
            (
                json!({"rule": "count_at_most", "count": "items", "limit": "nope", "message": "m"}),
                "unknown",
            ),
            (
                json!({"rule": "count_at_most", "count": "name", "limit": "count", "message": "m"}),
                "type",
            ),
            (
                json!({"rule": "count_at_most", "count": "items", "limit": "flag", "message": "m"}),
                "type",
            ),
            (
                json!({"rule": "empty_unless", "field": "items", "when": "count", "message": "m"}),
                "type",
            ),
            (
                json!({"rule": "empty_unless", "field": "kind", "when": "flag", "message": "m"}),
                "type",
            ),
            // Only top-level fields count.
            (
                json!({"rule": "empty_unless", "field": "tag", "when": "flag", "message": "m"}),
                "unknown",
            ),
        ];
        for (check, why) in bad {
            let mut v = base();
            v["checks"] = json!([check.clone()]);
            let err = parse(&v).unwrap_err();
            match why {
                "unknown" => assert!(
                    matches!(err, FormError::CheckUnknownField { .. }),
                    "{check}"
                ),
                _ => assert!(matches!(err, FormError::CheckFieldType { .. }), "{check}"),
            }
        }
        let mut v = base();
        v["checks"] = json!([{"rule": "never_more", "field": "items"}]);
        assert!(matches!(parse(&v), Err(FormError::Json(_))));
        v["checks"] =
            json!([{"rule": "empty_unless", "field": "items", "when": "flag", "extra": 1}]);
        assert!(matches!(parse(&v), Err(FormError::Json(_))));
    }

    #[test]
    fn long_text_is_multiline_single_text() {
        let mut f = Field::new("findings", "Findings", FieldType::Text);
        assert!(!f.is_long_text());
        f.appearance = Some("multiline".into());
        assert!(f.is_long_text());
        f.appearance = Some("multiline w4".into());
        assert!(f.is_long_text());
        f.multiple = true;
        assert!(!f.is_long_text());
        f.multiple = false;
        f.appearance = None;
        assert!(!f.is_long_text());
        f.appearance = Some("multiline".into());
        f.field_type = FieldType::Note;
        assert!(!f.is_long_text());
    }

    #[test]
    fn error_messages_name_the_field() {
        let mut v = base();
        v["fields"][4]["fields"][0]["name"] = json!("Tag");
        let msg = parse(&v).unwrap_err().to_string();
        assert!(msg.contains("items.Tag"), "{msg}");
    }
}

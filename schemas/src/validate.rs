//! Validation of a record's `fields` map against a form: a pure function that reports every
//! violation with the path of the offending value, so a client can mark every bad field at
//! once and the server can flag (never drop) records that arrive invalid by sync.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, FixedOffset};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::form::Logic;
use crate::form::{compile_regex, Check, Constraint, Field, FieldType, Form, Patterns};
use crate::logic::{typed, Answers};

/// One problem with one value of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Where the value is: `vessel_name`, `position.lat`, `seizures[1].quantity`, `officers[2]`.
    pub path: String,
    pub kind: ViolationKind,
    /// A sentence an officer can act on.
    pub message: String,
}

/// What sort of problem a [`Violation`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// A required value is absent, null, or empty.
    Missing,
    /// The value has the wrong JSON type or representation for its field.
    Type,
    /// The value is well-typed but outside what the form allows.
    Constraint,
    /// The record holds a field the form does not define.
    Unknown,
}

impl Violation {
    /// Whether this violation stops a record being saved even as a draft. Drafts may be
    /// incomplete, but never ill-typed: a wrong type saved now becomes a merge problem later.
    pub fn blocks_draft(&self) -> bool {
        self.kind != ViolationKind::Missing
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ViolationKind::Missing => "missing",
            ViolationKind::Type => "type",
            ViolationKind::Constraint => "constraint",
            ViolationKind::Unknown => "unknown",
        })
    }
}

/// Checks `fields` (a record's field map) against `form` and returns every violation, in
/// the form's field order; fields the form does not know come last. An empty result means
/// the record is valid. `today()` and `now()` read this machine's clock and time zone.
pub fn validate(form: &Form, fields: &Map<String, Value>) -> Vec<Violation> {
    validate_at(form, fields, chrono::Local::now().fixed_offset())
}

/// [`validate`] with `today()` and `now()` reading `now`.
pub fn validate_at(
    form: &Form,
    fields: &Map<String, Value>,
    now: DateTime<FixedOffset>,
) -> Vec<Violation> {
    let mut check_violations = run_checks(form, fields);
    let mut v = Validator {
        out: Vec::new(),
        patterns: &form.patterns,
        regexes: HashMap::new(),
        logic: Logic::of(form),
        root: fields,
        items: Vec::new(),
        now,
    };
    for (index, field) in form.fields.iter().enumerate() {
        v.field(field, fields.get(&field.name), &field.name);
        // Cross-field violations sit with the field they are reported on, so the list
        // reads in form order.
        let (here, rest): (Vec<_>, Vec<_>) = check_violations
            .into_iter()
            .partition(|(at, _)| *at == index);
        v.out
            .extend(here.into_iter().map(|(_, violation)| violation));
        check_violations = rest;
    }
    let known: HashSet<&str> = form.fields.iter().map(|f| f.name.as_str()).collect();
    for key in fields.keys() {
        if !known.contains(key.as_str()) {
            v.push(
                key.clone(),
                ViolationKind::Unknown,
                format!("{} is not a field of this form.", quote(key)),
            );
        }
    }
    v.out
}

/// The problems of `value` as an answer to `field` alone: its type and fixed
/// constraints, without relevance, expressions or being required. What a form's
/// `default` is checked against.
pub(crate) fn answer_problems(field: &Field, value: &Value) -> Vec<Violation> {
    let patterns = Patterns::default();
    let root = Map::new();
    let mut v = Validator {
        out: Vec::new(),
        patterns: &patterns,
        regexes: HashMap::new(),
        logic: Cow::Owned(Logic::default()),
        root: &root,
        items: Vec::new(),
        now: chrono::Local::now().fixed_offset(),
    };
    v.answer(field, Some(value), &field.name);
    v.out.retain(|p| p.kind != ViolationKind::Missing);
    v.out
}

struct Validator<'f> {
    out: Vec<Violation>,
    /// The form's regexes, compiled when it was parsed.
    patterns: &'f Patterns,
    /// Regexes the form did not hold compiled (a form built in code, or
    /// changed since it was checked), compiled once per validation.
    regexes: HashMap<&'f str, Option<regex::Regex>>,
    /// The form's expressions, parsed.
    logic: Cow<'f, Logic>,
    /// The whole record, which `${name}` reads.
    root: &'f Map<String, Value>,
    /// The item being validated in each enclosing repeat, outermost first.
    items: Vec<usize>,
    now: DateTime<FixedOffset>,
}

impl<'f> Validator<'f> {
    fn push(&mut self, path: String, kind: ViolationKind, message: String) {
        self.out.push(Violation {
            path,
            kind,
            message,
        });
    }

    fn type_error(&mut self, path: &str, message: String) {
        self.push(path.to_string(), ViolationKind::Type, message);
    }

    fn missing(&mut self, field: &Field, path: &str) {
        let message = field
            .required_message
            .clone()
            .unwrap_or_else(|| format!("{} is required.", field.display_name()));
        self.push(path.to_string(), ViolationKind::Missing, message);
    }

    /// Evaluates `source` with `.` as `value`; `None` when the form's logic holds no
    /// parsed copy of it (a form built in code whose expressions do not compile).
    fn holds(&self, source: &str, field: &Field, value: Option<&Value>) -> Option<bool> {
        let expr = self.logic.expr(source)?;
        let scope = Answers {
            logic: &self.logic,
            root: self.root,
            items: &self.items,
            this: typed(field.field_type, value),
            now: self.now,
        };
        Some(expr.eval_bool(&scope))
    }

    /// Whether the question applies. One whose condition cannot be read is treated as
    /// applying, so that it is still checked.
    fn relevant(&self, field: &Field, value: Option<&Value>) -> bool {
        match &field.relevant {
            Some(source) => self.holds(source, field, value).unwrap_or(true),
            None => true,
        }
    }

    /// The constraint expression of a present, well-typed answer.
    fn expression(&mut self, field: &Field, value: &Value, path: &str) {
        let Some(source) = field
            .constraint
            .as_ref()
            .and_then(|c| c.expression.as_ref())
        else {
            return;
        };
        let label = field.display_name();
        match self.holds(source, field, Some(value)) {
            Some(true) => {}
            Some(false) => {
                self.constraint(field, path, format!("{label} is not an accepted answer."))
            }
            None => self.push(
                path.to_string(),
                ViolationKind::Constraint,
                format!("The form's constraint for {label} is invalid, so it cannot be checked."),
            ),
        }
    }

    /// A failed constraint: the form's own message wins over the generated one.
    fn constraint(&mut self, field: &Field, path: &str, generated: String) {
        let message = field
            .constraint
            .as_ref()
            .and_then(|c| c.message.clone())
            .unwrap_or(generated);
        self.push(path.to_string(), ViolationKind::Constraint, message);
    }

    /// Validates one field's value; returns whether it is present and well-typed, which
    /// is what uniqueness across repeat items compares.
    fn field(&mut self, field: &'f Field, value: Option<&'f Value>, path: &str) -> bool {
        if !self.relevant(field, value) {
            return false;
        }
        if field.field_type == FieldType::Group && matches!(value, None | Some(Value::Null)) {
            // An absent group is a group with no answers: its required questions
            // are still missing.
            static NONE: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
            self.children(field, NONE.get_or_init(Map::new), path);
            return false;
        }
        let ok = self.answer(field, value, path);
        if let (true, Some(value)) = (ok, value) {
            self.expression(field, value, path);
        }
        ok
    }

    /// Validates one answer by its type and its fixed constraints.
    fn answer(&mut self, field: &'f Field, value: Option<&'f Value>, path: &str) -> bool {
        let value = match value {
            None | Some(Value::Null) => {
                if field.required {
                    self.missing(field, path);
                }
                return false;
            }
            Some(value) => value,
        };
        let label = field.display_name();
        match field.field_type {
            FieldType::Note => {
                self.type_error(
                    path,
                    format!("{label} is display-only and cannot hold a value."),
                );
                false
            }
            FieldType::Text | FieldType::Image if field.multiple => {
                let items = match self.list(field, value, path) {
                    Some(items) => items,
                    None => return false,
                };
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    if field.field_type == FieldType::Text {
                        match item.as_str() {
                            Some(s) => self.text_constraints(field, s, &item_path),
                            None => self.type_error(
                                &item_path,
                                format!("Each entry of {label} must be text."),
                            ),
                        }
                    } else if !item.as_str().is_some_and(is_sha256_hex) {
                        self.type_error(&item_path, image_message(label));
                    }
                }
                true
            }
            FieldType::Text => match value.as_str() {
                Some(s) if s.trim().is_empty() => {
                    // An empty answer is no answer: drafts send "" for untouched inputs.
                    if field.required {
                        self.missing(field, path);
                    }
                    false
                }
                Some(s) => {
                    self.text_constraints(field, s, path);
                    true
                }
                None => {
                    self.type_error(path, format!("{label} must be text."));
                    false
                }
            },
            FieldType::Integer => match value {
                Value::Number(n) if n.is_i64() => {
                    if let Some(i) = n.as_i64() {
                        // i64 -> f64 only loses precision beyond 2^53, far outside any
                        // bound a form would set.
                        self.range(field, i as f64, path);
                    }
                    true
                }
                Value::Number(n) if n.is_u64() => {
                    self.type_error(path, format!("{label} is too large a number."));
                    false
                }
                _ => {
                    self.type_error(path, format!("{label} must be a whole number."));
                    false
                }
            },
            FieldType::Decimal => match value.as_f64() {
                Some(x) => {
                    self.range(field, x, path);
                    true
                }
                None => {
                    self.type_error(path, format!("{label} must be a number."));
                    false
                }
            },
            FieldType::SelectOne => match value.as_str() {
                Some(s) => {
                    if !field.choices.iter().any(|c| c.value == s) {
                        self.push(
                            path.to_string(),
                            ViolationKind::Constraint,
                            format!("{label} must be one of the listed choices."),
                        );
                    }
                    true
                }
                None => {
                    self.type_error(path, format!("{label} must be one of the listed choices."));
                    false
                }
            },
            FieldType::SelectMultiple => {
                let items = match self.list(field, value, path) {
                    Some(items) => items,
                    None => return false,
                };
                let mut seen = HashSet::new();
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    match item.as_str() {
                        None => self.type_error(
                            &item_path,
                            format!("Each entry of {label} must be one of the listed choices."),
                        ),
                        Some(s) if !field.choices.iter().any(|c| c.value == s) => self.push(
                            item_path,
                            ViolationKind::Constraint,
                            format!("Each entry of {label} must be one of the listed choices."),
                        ),
                        Some(s) if !seen.insert(s) => self.push(
                            item_path,
                            ViolationKind::Constraint,
                            format!("{label} lists the same choice more than once."),
                        ),
                        Some(_) => {}
                    }
                }
                true
            }
            FieldType::Geopoint => self.geopoint(field, value, path),
            FieldType::Date => {
                let ok = value.as_str().is_some_and(is_date);
                if !ok {
                    self.type_error(
                        path,
                        format!("{label} must be a date written YYYY-MM-DD, e.g. 2024-05-01."),
                    );
                }
                ok
            }
            FieldType::DateTime => {
                let ok = value
                    .as_str()
                    .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok());
                if !ok {
                    self.type_error(
                        path,
                        format!(
                            "{label} must be a date and time with its UTC offset, \
                             e.g. 2024-05-01T14:30:00-04:00."
                        ),
                    );
                }
                ok
            }
            FieldType::Image => {
                let ok = value.as_str().is_some_and(is_sha256_hex);
                if !ok {
                    self.type_error(path, image_message(label));
                }
                ok
            }
            FieldType::Boolean => {
                let ok = value.is_boolean();
                if !ok {
                    self.type_error(path, format!("{label} must be yes or no (true or false)."));
                }
                ok
            }
            FieldType::Repeat => self.repeat(field, value, path),
            FieldType::Group => self.group(field, value, path),
            FieldType::Time => {
                let ok = value.as_str().is_some_and(is_time);
                if !ok {
                    self.type_error(
                        path,
                        format!("{label} must be a time written HH:MM, e.g. 14:30."),
                    );
                }
                ok
            }
            FieldType::Acknowledge => {
                let ok = value.as_str() == Some("OK");
                if !ok {
                    self.type_error(
                        path,
                        format!("{label} is confirmed with \"OK\" or left empty."),
                    );
                }
                ok
            }
        }
    }

    /// A group's answers, kept together as an object.
    fn group(&mut self, field: &'f Field, value: &'f Value, path: &str) -> bool {
        let label = field.display_name();
        let Some(obj) = value.as_object() else {
            self.type_error(path, format!("{label} must be a set of fields."));
            return false;
        };
        self.children(field, obj, path);
        true
    }

    /// The child fields of a group or of one repeat item, then the keys it should not hold.
    fn children(&mut self, field: &'f Field, obj: &'f Map<String, Value>, path: &str) {
        for child in &field.fields {
            let child_path = format!("{path}.{}", child.name);
            self.field(child, obj.get(&child.name), &child_path);
        }
        for key in obj.keys() {
            if field.child(key).is_none() {
                self.push(
                    format!("{path}.{key}"),
                    ViolationKind::Unknown,
                    format!("{} is not a field of {}.", quote(key), field.display_name()),
                );
            }
        }
    }

    /// The shared part of list-valued fields: JSON array, required-ness, item counts.
    /// Returns the items when they should be looked at one by one.
    fn list<'v>(&mut self, field: &Field, value: &'v Value, path: &str) -> Option<&'v Vec<Value>> {
        let label = field.display_name();
        let Some(items) = value.as_array() else {
            let what = if field.field_type == FieldType::Repeat {
                "entries"
            } else {
                "values"
            };
            self.type_error(path, format!("{label} must be a list of {what}."));
            return None;
        };
        if items.is_empty() {
            if field.required {
                self.missing(field, path);
            }
            return None;
        }
        let c = field.constraint.as_ref();
        if let Some(min) = c.and_then(|c| c.min_items) {
            if items.len() < min {
                self.constraint(
                    field,
                    path,
                    format!(
                        "{label} must have at least {}.",
                        plural(min, "entry", "entries")
                    ),
                );
            }
        }
        if let Some(max) = c.and_then(|c| c.max_items) {
            if items.len() > max {
                self.constraint(
                    field,
                    path,
                    format!(
                        "{label} must have at most {}.",
                        plural(max, "entry", "entries")
                    ),
                );
            }
        }
        Some(items)
    }

    fn repeat(&mut self, field: &'f Field, value: &'f Value, path: &str) -> bool {
        let items = match self.list(field, value, path) {
            Some(items) => items,
            None => return value.is_array(),
        };
        let label = field.display_name();
        let known: HashSet<&str> = field.fields.iter().map(|f| f.name.as_str()).collect();
        // For each unique child: canonical value -> index of the first item holding it.
        let mut unique_seen: Vec<HashMap<String, usize>> = vec![HashMap::new(); field.fields.len()];
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            let Some(obj) = item.as_object() else {
                self.type_error(
                    &item_path,
                    format!("Each entry of {label} must be a set of fields."),
                );
                continue;
            };
            // `${name}` inside the item means the sibling in this item.
            self.items.push(i);
            for (child, seen) in field.fields.iter().zip(unique_seen.iter_mut()) {
                let child_path = format!("{item_path}.{}", child.name);
                let child_value = obj.get(&child.name);
                let ok = self.field(child, child_value, &child_path);
                if !(ok && child.unique) {
                    continue;
                }
                if let Some(child_value) = child_value {
                    match seen.get(&unique_key(child_value)) {
                        Some(first) => {
                            let message = format!(
                                "{} must be unique: entry {} of {label} already uses this value.",
                                child.display_name(),
                                first + 1
                            );
                            self.constraint(child, &child_path, message);
                        }
                        None => {
                            seen.insert(unique_key(child_value), i);
                        }
                    }
                }
            }
            self.items.pop();
            for key in obj.keys() {
                if !known.contains(key.as_str()) {
                    self.push(
                        format!("{item_path}.{key}"),
                        ViolationKind::Unknown,
                        format!("{} is not a field of {label} entries.", quote(key)),
                    );
                }
            }
        }
        true
    }

    fn geopoint(&mut self, field: &Field, value: &Value, path: &str) -> bool {
        let Some(obj) = value.as_object() else {
            self.type_error(
                path,
                format!(
                    "{} must be a position with a latitude and a longitude.",
                    field.display_name()
                ),
            );
            return false;
        };
        let mut ok = true;
        for (key, name, limit) in [("lat", "Latitude", 90.0), ("lon", "Longitude", 180.0)] {
            let sub = format!("{path}.{key}");
            match obj.get(key) {
                None | Some(Value::Null) => {
                    // A half position is ill-formed, not merely unfinished: a draft must
                    // not store it.
                    self.type_error(&sub, format!("{name} is missing from the position."));
                    ok = false;
                }
                Some(Value::Number(n)) => {
                    let x = n.as_f64().unwrap_or(f64::NAN);
                    if !(-limit..=limit).contains(&x) {
                        self.push(
                            sub,
                            ViolationKind::Constraint,
                            format!("{name} must be between -{limit} and {limit}."),
                        );
                    }
                }
                Some(_) => {
                    self.type_error(&sub, format!("{name} must be a number."));
                    ok = false;
                }
            }
        }
        for key in obj.keys() {
            if key != "lat" && key != "lon" {
                self.push(
                    format!("{path}.{key}"),
                    ViolationKind::Unknown,
                    format!(
                        "A position has only a latitude (lat) and a longitude (lon); {} is not allowed.",
                        quote(key)
                    ),
                );
            }
        }
        ok
    }

    fn range(&mut self, field: &Field, x: f64, path: &str) {
        let Some(c) = field.constraint.as_ref() else {
            return;
        };
        let below = c.min.is_some_and(|min| x < min);
        let above = c.max.is_some_and(|max| x > max);
        if below || above {
            let message = range_message(field.display_name(), c);
            self.constraint(field, path, message);
        }
    }

    fn text_constraints(&mut self, field: &'f Field, s: &str, path: &str) {
        let Some(c) = field.constraint.as_ref() else {
            return;
        };
        let label = field.display_name();
        let len = s.chars().count();
        if let Some(min) = c.min_length {
            if len < min {
                self.constraint(
                    field,
                    path,
                    format!(
                        "{label} must be at least {} long.",
                        plural(min, "character", "characters")
                    ),
                );
            }
        }
        if let Some(max) = c.max_length {
            if len > max {
                self.constraint(
                    field,
                    path,
                    format!(
                        "{label} must be at most {} long.",
                        plural(max, "character", "characters")
                    ),
                );
            }
        }
        if let Some(pattern) = c.regex.as_deref() {
            let matched = match self.patterns.get(pattern) {
                Some(re) => Some(re.is_match(s)),
                None => self
                    .regexes
                    .entry(pattern)
                    .or_insert_with(|| compile_regex(pattern).ok())
                    .as_ref()
                    .map(|re| re.is_match(s)),
            };
            match matched {
                Some(true) => {}
                Some(false) => self.constraint(
                    field,
                    path,
                    format!("{label} is not in the expected format."),
                ),
                // Only reachable for forms built in code that skipped Form::check; flagging
                // the value keeps such a form from passing everything silently.
                None => self.push(
                    path.to_string(),
                    ViolationKind::Constraint,
                    format!("The form's pattern for {label} is invalid, so it cannot be checked."),
                ),
            }
        }
    }
}

fn run_checks(form: &Form, fields: &Map<String, Value>) -> Vec<(usize, Violation)> {
    let index = |name: &str| form.fields.iter().position(|f| f.name == name);
    let mut out = Vec::new();
    for check in &form.checks {
        match check {
            Check::CountAtMost {
                count,
                limit,
                message,
            } => {
                let (Some(ci), Some(li)) = (index(count), index(limit)) else {
                    continue;
                };
                // Ill-typed values are already reported by their own field.
                let Some(Value::Array(items)) = fields.get(count) else {
                    continue;
                };
                let Some(lim) = fields.get(limit).and_then(Value::as_i64) else {
                    continue;
                };
                if items.len() as i128 > i128::from(lim) {
                    let message = if message.is_empty() {
                        format!(
                            "{} cannot be fewer than the {} listed ({}).",
                            form.fields[li].display_name(),
                            form.fields[ci].display_name(),
                            items.len()
                        )
                    } else {
                        message.clone()
                    };
                    out.push((
                        li,
                        Violation {
                            path: limit.clone(),
                            kind: ViolationKind::Constraint,
                            message,
                        },
                    ));
                }
            }
            Check::EmptyUnless {
                field,
                when,
                message,
            } => {
                let (Some(fi), Some(wi)) = (index(field), index(when)) else {
                    continue;
                };
                let Some(Value::Array(items)) = fields.get(field) else {
                    continue;
                };
                let allowed = match fields.get(when) {
                    Some(Value::Bool(b)) => *b,
                    None | Some(Value::Null) => false,
                    // Ill-typed: reported by its own field, and no basis for judging here.
                    Some(_) => continue,
                };
                if !items.is_empty() && !allowed {
                    let message = if message.is_empty() {
                        format!(
                            "{} must be empty unless {} is yes.",
                            form.fields[fi].display_name(),
                            form.fields[wi].display_name()
                        )
                    } else {
                        message.clone()
                    };
                    out.push((
                        fi,
                        Violation {
                            path: field.clone(),
                            kind: ViolationKind::Constraint,
                            message,
                        },
                    ));
                }
            }
        }
    }
    out
}

fn range_message(label: &str, c: &Constraint) -> String {
    match (c.min, c.max) {
        (Some(min), Some(max)) => format!("{label} must be between {min} and {max}."),
        (Some(min), None) => format!("{label} must be at least {min}."),
        (None, Some(max)) => format!("{label} must be at most {max}."),
        (None, None) => format!("{label} is out of range."),
    }
}

fn image_message(label: &str) -> String {
    format!("{label} must be a photo reference: a SHA-256 written as 64 lowercase hex characters.")
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Quotes a record-supplied name for a message, cut short so a hostile key cannot blow up
/// the error response.
fn quote(key: &str) -> String {
    const MAX: usize = 64;
    if key.chars().count() > MAX {
        let short: String = key.chars().take(MAX).collect();
        format!("“{short}…”")
    } else {
        format!("“{key}”")
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_date(s: &str) -> bool {
    // chrono's %Y also takes signed and 5-digit years; the API promises exactly YYYY-MM-DD.
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
        && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

/// `HH:MM` or `HH:MM:SS`, on a 24-hour clock.
fn is_time(s: &str) -> bool {
    chrono::NaiveTime::parse_from_str(s, "%H:%M").is_ok()
        || chrono::NaiveTime::parse_from_str(s, "%H:%M:%S").is_ok()
}

/// A key under which equal values of a unique field collide: numbers compare by value
/// (so 2 and 2.0 are the same), everything else by its JSON text.
fn unique_key(v: &Value) -> String {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                format!("n:{i}")
            } else if let Some(u) = n.as_u64() {
                format!("n:{u}")
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    format!("n:{}", f as i64)
                } else {
                    format!("n:{f:?}")
                }
            }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A form exercising every type and constraint.
    fn form() -> Form {
        Form::parse(
            &json!({
                "id": "all-types",
                "version": 1,
                "title": "All types",
                "fields": [
                    {"name": "name", "label": "Name", "type": "text", "required": true,
                     "constraint": {"min_length": 2, "max_length": 5}},
                    {"name": "code", "label": "Code", "type": "text",
                     "constraint": {"regex": "[A-Z]{2}[0-9]+", "message": "Code looks like AB123."}},
                    {"name": "count", "label": "Count", "type": "integer",
                     "constraint": {"min": 0, "max": 10}},
                    {"name": "weight", "label": "Weight", "type": "decimal",
                     "constraint": {"min": 0.5}},
                    {"name": "kind", "label": "Kind", "type": "select_one",
                     "choices": [{"value": "a", "label": "A"}, {"value": "b", "label": "B"}]},
                    {"name": "kinds", "label": "Kinds", "type": "select_multiple",
                     "choices": [{"value": "a", "label": "A"}, {"value": "b", "label": "B"}],
                     "constraint": {"max_items": 2}},
                    {"name": "position", "label": "Position", "type": "geopoint"},
                    {"name": "day", "label": "Day", "type": "date"},
                    {"name": "at", "label": "At", "type": "dateTime"},
                    {"name": "photo", "label": "Photo", "type": "image"},
                    {"name": "photos", "label": "Photos", "type": "image", "multiple": true},
                    {"name": "notice", "label": "Notice", "type": "note"},
                    {"name": "ok", "label": "OK", "type": "boolean"},
                    {"name": "names", "label": "Names", "type": "text", "multiple": true,
                     "required": true, "constraint": {"max_length": 3, "min_items": 1, "max_items": 3}},
                    {"name": "items", "label": "Items", "type": "repeat",
                     "constraint": {"max_items": 3},
                     "fields": [
                        {"name": "tag", "label": "Tag", "type": "text", "required": true, "unique": true},
                        {"name": "qty", "label": "Quantity", "type": "decimal", "constraint": {"min": 0}}
                     ]},
                    {"name": "limit", "label": "Limit", "type": "integer"},
                    {"name": "allowed", "label": "Allowed", "type": "boolean"}
                ],
                "checks": [
                    {"rule": "count_at_most", "count": "items", "limit": "limit",
                     "message": "Limit cannot be below the number of items."},
                    {"rule": "empty_unless", "field": "items", "when": "allowed", "message": ""}
                ]
            })
            .to_string(),
        )
        .unwrap()
    }

    fn good() -> Map<String, Value> {
        let hash = "a".repeat(64);
        json!({
            "name": "Ann",
            "code": "AB12",
            "count": 3,
            "weight": 1,
            "kind": "a",
            "kinds": ["a", "b"],
            "position": {"lat": 13.1, "lon": -61.2},
            "day": "2024-02-29",
            "at": "2024-05-01T14:30:00-04:00",
            "photo": hash,
            "photos": [hash, "b".repeat(64)],
            "ok": false,
            "names": ["Al", "Bo"],
            "items": [{"tag": "T1", "qty": 1.5}, {"tag": "T2"}],
            "limit": 2,
            "allowed": true
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn check(edit: impl FnOnce(&mut Map<String, Value>)) -> Vec<Violation> {
        let mut record = good();
        edit(&mut record);
        validate(&form(), &record)
    }

    /// The violations as (path, kind), for compact assertions.
    fn found(vs: &[Violation]) -> Vec<(&str, ViolationKind)> {
        vs.iter().map(|v| (v.path.as_str(), v.kind)).collect()
    }

    fn set(key: &str, value: Value) -> impl FnOnce(&mut Map<String, Value>) {
        let key = key.to_string();
        move |r| {
            r.insert(key, value);
        }
    }

    use ViolationKind::*;

    #[test]
    fn good_record_is_valid() {
        assert_eq!(check(|_| {}), vec![]);
    }

    #[test]
    fn null_means_absent_for_optional_fields() {
        let vs = check(|r| {
            for k in [
                "code", "count", "kind", "position", "notice", "items", "photo",
            ] {
                r.insert(k.into(), Value::Null);
            }
        });
        assert_eq!(vs, vec![]);
        let vs = check(|r| {
            r.retain(|k, _| k == "name" || k == "names");
        });
        assert_eq!(vs, vec![]);
    }

    #[test]
    fn missing_required_absent_null_or_empty() {
        assert_eq!(
            found(&check(|r| drop(r.remove("name")))),
            [("name", Missing)]
        );
        assert_eq!(found(&check(set("name", Value::Null))), [("name", Missing)]);
        assert_eq!(found(&check(set("name", json!("")))), [("name", Missing)]);
        assert_eq!(found(&check(set("name", json!("  ")))), [("name", Missing)]);
        // An empty list is no answer for a required list.
        assert_eq!(found(&check(set("names", json!([])))), [("names", Missing)]);
        let vs = check(|r| drop(r.remove("name")));
        assert_eq!(vs[0].message, "Name is required.");
        assert!(!vs[0].blocks_draft());
    }

    #[test]
    fn optional_empty_text_is_absent() {
        // "" skips the regex and length checks rather than failing them.
        assert_eq!(check(set("code", json!(""))), vec![]);
    }

    #[test]
    fn text_type_and_constraints() {
        assert_eq!(found(&check(set("name", json!(12)))), [("name", Type)]);
        assert_eq!(
            found(&check(set("name", json!("A")))),
            [("name", Constraint)]
        );
        assert_eq!(
            found(&check(set("name", json!("Annabel")))),
            [("name", Constraint)]
        );
        // Length is in characters, not bytes.
        assert_eq!(check(set("name", json!("Zoë"))), vec![]);
        assert_eq!(check(set("name", json!("ééééé"))), vec![]);
        let vs = check(set("name", json!("A")));
        assert_eq!(vs[0].message, "Name must be at least 2 characters long.");
        let vs = check(set("name", json!("Annabel")));
        assert_eq!(vs[0].message, "Name must be at most 5 characters long.");
    }

    #[test]
    fn regex_must_match_the_whole_value() {
        assert_eq!(check(set("code", json!("XY9"))), vec![]);
        for bad in ["ab12", "AB", "xAB12", "AB12x", "AB12\n"] {
            let vs = check(set("code", json!(bad)));
            assert_eq!(found(&vs), [("code", Constraint)], "{bad:?}");
            assert_eq!(vs[0].message, "Code looks like AB123.");
        }
    }

    #[test]
    fn integer_rules() {
        assert_eq!(found(&check(set("count", json!(1.5)))), [("count", Type)]);
        assert_eq!(found(&check(set("count", json!(2.0)))), [("count", Type)]);
        assert_eq!(found(&check(set("count", json!("3")))), [("count", Type)]);
        assert_eq!(
            found(&check(set("count", json!(u64::MAX)))),
            [("count", Type)]
        );
        assert_eq!(
            found(&check(set("count", json!(-1)))),
            [("count", Constraint)]
        );
        assert_eq!(
            found(&check(set("count", json!(11)))),
            [("count", Constraint)]
        );
        assert_eq!(check(set("count", json!(0))), vec![]);
        assert_eq!(check(set("count", json!(10))), vec![]);
        let vs = check(set("count", json!(11)));
        assert_eq!(vs[0].message, "Count must be between 0 and 10.");
    }

    #[test]
    fn decimal_rules() {
        assert_eq!(check(set("weight", json!(0.5))), vec![]);
        assert_eq!(check(set("weight", json!(7))), vec![]);
        assert_eq!(
            found(&check(set("weight", json!(0.4)))),
            [("weight", Constraint)]
        );
        assert_eq!(
            found(&check(set("weight", json!("1.0")))),
            [("weight", Type)]
        );
        assert_eq!(
            found(&check(set("weight", json!(true)))),
            [("weight", Type)]
        );
        let vs = check(set("weight", json!(0.4)));
        assert_eq!(vs[0].message, "Weight must be at least 0.5.");
    }

    #[test]
    fn select_one_rules() {
        assert_eq!(
            found(&check(set("kind", json!("c")))),
            [("kind", Constraint)]
        );
        assert_eq!(
            found(&check(set("kind", json!("A")))),
            [("kind", Constraint)]
        );
        assert_eq!(found(&check(set("kind", json!(["a"])))), [("kind", Type)]);
        assert_eq!(found(&check(set("kind", json!(1)))), [("kind", Type)]);
    }

    #[test]
    fn select_multiple_rules() {
        assert_eq!(check(set("kinds", json!([]))), vec![]);
        assert_eq!(found(&check(set("kinds", json!("a")))), [("kinds", Type)]);
        assert_eq!(
            found(&check(set("kinds", json!(["a", "z"])))),
            [("kinds[1]", Constraint)]
        );
        assert_eq!(
            found(&check(set("kinds", json!(["b", 3])))),
            [("kinds[1]", Type)]
        );
        assert_eq!(
            found(&check(set("kinds", json!(["b", "b"])))),
            [("kinds[1]", Constraint)]
        );
        // max_items 2, and the duplicate is reported too.
        assert_eq!(
            found(&check(set("kinds", json!(["a", "b", "a"])))),
            [("kinds", Constraint), ("kinds[2]", Constraint)]
        );
    }

    #[test]
    fn geopoint_rules() {
        assert_eq!(
            found(&check(set("position", json!("13,-61")))),
            [("position", Type)]
        );
        assert_eq!(
            found(&check(set("position", json!([13, -61])))),
            [("position", Type)]
        );
        assert_eq!(
            found(&check(set("position", json!({"lat": 91, "lon": 0})))),
            [("position.lat", Constraint)]
        );
        assert_eq!(
            found(&check(set("position", json!({"lat": -90.5, "lon": 180.1})))),
            [("position.lat", Constraint), ("position.lon", Constraint)]
        );
        assert_eq!(
            check(set("position", json!({"lat": -90, "lon": 180}))),
            vec![]
        );
        assert_eq!(
            found(&check(set("position", json!({"lat": "13", "lon": 0})))),
            [("position.lat", Type)]
        );
        assert_eq!(
            found(&check(set("position", json!({"lon": 0})))),
            [("position.lat", Type)]
        );
        assert_eq!(
            found(&check(set("position", json!({"lat": 1, "lon": null})))),
            [("position.lon", Type)]
        );
        assert_eq!(
            found(&check(set(
                "position",
                json!({"lat": 1, "lon": 2, "alt": 3})
            ))),
            [("position.alt", Unknown)]
        );
        let vs = check(set("position", json!({"lat": 91, "lon": 0})));
        assert_eq!(vs[0].message, "Latitude must be between -90 and 90.");
        let vs = check(set("position", json!({"lat": 0, "lon": -181})));
        assert_eq!(vs[0].message, "Longitude must be between -180 and 180.");
    }

    #[test]
    fn date_rules() {
        for bad in [
            json!("2024-02-30"),
            json!("2023-02-29"),
            json!("24-05-01"),
            json!("2024-5-1"),
            json!("+2024-05-01"),
            json!("2024-05-01T00:00:00Z"),
            json!("01/05/2024"),
            json!(20240501),
        ] {
            assert_eq!(
                found(&check(set("day", bad.clone()))),
                [("day", Type)],
                "{bad}"
            );
        }
    }

    #[test]
    fn datetime_rules() {
        assert_eq!(check(set("at", json!("2024-05-01T14:30:00Z"))), vec![]);
        assert_eq!(
            check(set("at", json!("2024-05-01T14:30:00.123+05:30"))),
            vec![]
        );
        for bad in [
            json!("2024-05-01T14:30:00"),
            json!("2024-05-01"),
            json!("2024-13-01T14:30:00Z"),
            json!("yesterday"),
            json!(1714573800),
        ] {
            assert_eq!(
                found(&check(set("at", bad.clone()))),
                [("at", Type)],
                "{bad}"
            );
        }
    }

    #[test]
    fn image_rules() {
        for bad in [
            json!("A".repeat(64)),
            json!("a".repeat(63)),
            json!("g".repeat(64)),
            json!(["a".repeat(64)]),
            json!(7),
        ] {
            assert_eq!(
                found(&check(set("photo", bad.clone()))),
                [("photo", Type)],
                "{bad}"
            );
        }
        assert_eq!(
            found(&check(set("photos", json!(["a".repeat(64), "x"])))),
            [("photos[1]", Type)]
        );
        assert_eq!(
            found(&check(set("photos", json!("a".repeat(64))))),
            [("photos", Type)]
        );
    }

    #[test]
    fn note_cannot_hold_a_value() {
        for v in [json!("hello"), json!(false), json!(0), json!({})] {
            assert_eq!(
                found(&check(set("notice", v.clone()))),
                [("notice", Type)],
                "{v}"
            );
        }
    }

    #[test]
    fn boolean_rules() {
        for v in [json!("true"), json!(1), json!(0), json!([])] {
            assert_eq!(found(&check(set("ok", v.clone()))), [("ok", Type)], "{v}");
        }
    }

    #[test]
    fn multiple_text_rules() {
        assert_eq!(found(&check(set("names", json!("Al")))), [("names", Type)]);
        assert_eq!(
            found(&check(set("names", json!(["Al", 2, "Bo"])))),
            [("names[1]", Type)]
        );
        // max_length applies to each entry; max_items to the list.
        assert_eq!(
            found(&check(set("names", json!(["Al", "Bo", "Cyrus", "Di"])))),
            [("names", Constraint), ("names[2]", Constraint)]
        );
    }

    #[test]
    fn repeat_rules() {
        assert_eq!(
            found(&check(set("items", json!({"tag": "x"})))),
            [("items", Type)]
        );
        assert_eq!(
            found(&check(set("items", json!([{"tag": "x"}, "y"])))),
            [("items[1]", Type)]
        );
        assert_eq!(
            found(&check(set("items", json!([{"tag": "x"}, {"qty": -1}])))),
            [("items[1].tag", Missing), ("items[1].qty", Constraint)]
        );
        assert_eq!(
            found(&check(set("items", json!([{"tag": "x", "qty": "lots"}])))),
            [("items[0].qty", Type)]
        );
        // max_items 3 (the count check against limit 2 fires too).
        let vs = check(set(
            "items",
            json!([{"tag": "a"}, {"tag": "b"}, {"tag": "c"}, {"tag": "d"}]),
        ));
        assert_eq!(found(&vs), [("items", Constraint), ("limit", Constraint)]);
        assert_eq!(vs[0].message, "Items must have at most 3 entries.");
    }

    #[test]
    fn unknown_fields_at_every_level() {
        let vs = check(|r| {
            r.insert("colour".into(), json!("blue"));
            r.insert("items".into(), json!([{"tag": "x", "size": 3}]));
        });
        assert_eq!(
            found(&vs),
            [("items[0].size", Unknown), ("colour", Unknown)]
        );
        assert!(vs.iter().all(Violation::blocks_draft));
        // A null unknown field is still unknown: the name is the problem.
        assert_eq!(found(&check(set("zzz", Value::Null))), [("zzz", Unknown)]);
    }

    #[test]
    fn unique_reports_the_later_item() {
        let vs = check(|r| {
            r.insert("limit".into(), json!(10));
            r.insert(
                "items".into(),
                json!([{"tag": "A"}, {"tag": "B"}, {"tag": "A"}]),
            );
        });
        assert_eq!(found(&vs), [("items[2].tag", Constraint)]);
        assert!(vs[0].message.contains("entry 1"), "{}", vs[0].message);
        // Only valid values take part: a type error is not also a duplicate.
        let vs = check(|r| {
            r.insert("items".into(), json!([{"tag": 1}, {"tag": 1}]));
        });
        assert_eq!(found(&vs), [("items[0].tag", Type), ("items[1].tag", Type)]);
    }

    #[test]
    fn unique_numbers_compare_by_value() {
        assert_eq!(unique_key(&json!(2)), unique_key(&json!(2.0)));
        assert_ne!(unique_key(&json!(2)), unique_key(&json!("2")));
        assert_ne!(unique_key(&json!(2.5)), unique_key(&json!(2)));
    }

    #[test]
    fn count_at_most_check() {
        let vs = check(set("limit", json!(1)));
        assert_eq!(found(&vs), [("limit", Constraint)]);
        assert_eq!(vs[0].message, "Limit cannot be below the number of items.");
        // Equal is fine; absent limit or items means nothing to compare.
        assert_eq!(check(set("limit", json!(2))), vec![]);
        assert_eq!(check(|r| drop(r.remove("limit"))), vec![]);
        assert_eq!(check(|r| drop(r.remove("items"))), vec![]);
        // A mistyped limit is reported once, as a type error.
        assert_eq!(found(&check(set("limit", json!("1")))), [("limit", Type)]);
    }

    #[test]
    fn empty_unless_check() {
        let vs = check(set("allowed", json!(false)));
        assert_eq!(found(&vs), [("items", Constraint)]);
        assert_eq!(vs[0].message, "Items must be empty unless Allowed is yes.");
        assert_eq!(
            found(&check(|r| drop(r.remove("allowed")))),
            [("items", Constraint)]
        );
        assert_eq!(
            check(|r| {
                r.insert("allowed".into(), json!(false));
                r.insert("items".into(), json!([]));
            }),
            vec![]
        );
        assert_eq!(
            check(|r| {
                r.insert("allowed".into(), json!(false));
                r.remove("items");
            }),
            vec![]
        );
        assert_eq!(
            found(&check(set("allowed", json!("no")))),
            [("allowed", Type)]
        );
    }

    #[test]
    fn reports_every_violation_in_field_order() {
        let vs = check(|r| {
            r.insert("zzz".into(), json!(1));
            r.insert("ok".into(), json!("yes"));
            r.insert("name".into(), json!(5));
            r.insert("position".into(), json!({"lat": 100, "lon": 0}));
            r.insert("limit".into(), json!(0));
            r.insert("allowed".into(), json!(false));
        });
        assert_eq!(
            found(&vs),
            [
                ("name", Type),
                ("position.lat", Constraint),
                ("ok", Type),
                ("items", Constraint),
                ("limit", Constraint),
                ("zzz", Unknown),
            ]
        );
    }

    #[test]
    fn blocks_draft_for_everything_but_missing() {
        let v = |kind| Violation {
            path: "x".into(),
            kind,
            message: String::new(),
        };
        assert!(!v(Missing).blocks_draft());
        assert!(v(Type).blocks_draft());
        assert!(v(Constraint).blocks_draft());
        assert!(v(Unknown).blocks_draft());
    }

    #[test]
    fn violation_serializes_with_snake_case_kind() {
        let v = Violation {
            path: "position.lat".into(),
            kind: Constraint,
            message: "Latitude must be between -90 and 90.".into(),
        };
        assert_eq!(
            serde_json::to_value(&v).unwrap(),
            json!({"path": "position.lat", "kind": "constraint",
                   "message": "Latitude must be between -90 and 90."})
        );
        assert_eq!(
            v.to_string(),
            "position.lat: Latitude must be between -90 and 90."
        );
    }

    #[test]
    fn long_unknown_names_are_cut_short_in_messages() {
        let key = "k".repeat(10_000);
        let vs = check(set(&key, json!(1)));
        assert_eq!(vs[0].path, key);
        assert!(vs[0].message.len() < 200);
    }

    #[test]
    fn invalid_regex_in_code_built_form_is_flagged_not_panicked() {
        let mut form = form();
        if let Some(c) = form.fields[1].constraint.as_mut() {
            c.regex = Some("(".into());
        }
        let vs = validate(&form, &good());
        assert_eq!(found(&vs), [("code", Constraint)]);
    }

    #[test]
    fn nested_repeats_have_full_paths() {
        let form = Form::parse(
            &json!({"id": "n", "version": 1, "title": "N", "fields": [
                {"name": "outer", "label": "Outer", "type": "repeat", "fields": [
                    {"name": "inner", "label": "Inner", "type": "repeat", "fields": [
                        {"name": "v", "label": "V", "type": "integer", "unique": true}
                    ]}
                ]}
            ]})
            .to_string(),
        )
        .unwrap();
        let record =
            json!({"outer": [{"inner": [{"v": 1}]}, {"inner": [{"v": 1}, {"v": "x"}, {"v": 1}]}]});
        let vs = validate(&form, record.as_object().unwrap());
        assert_eq!(
            found(&vs),
            [
                ("outer[1].inner[1].v", Type),
                ("outer[1].inner[2].v", Constraint)
            ]
        );
    }
}

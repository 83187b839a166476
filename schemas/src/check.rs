//! The structural checks that make a form safe to validate records against, run when
//! a form is parsed and when one built in code is registered: names, types, choices,
//! constraint keys that apply, regexes and expressions that compile, defaults that are
//! answers the field accepts.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::form::{
    compile_regex, Check, Constraint, Field, FieldType, Form, FormError, Patterns, MAX_FORM_BYTES,
};

/// The regexes compiled while a form is checked, reusing those it already had.
struct Compiled<'k> {
    known: &'k Patterns,
    out: HashMap<String, regex::Regex>,
}

impl Compiled<'_> {
    fn add(&mut self, pattern: &str) -> Result<(), regex::Error> {
        if !self.out.contains_key(pattern) {
            let regex = match self.known.get(pattern) {
                Some(regex) => regex.clone(),
                None => compile_regex(pattern)?,
            };
            self.out.insert(pattern.to_string(), regex);
        }
        Ok(())
    }
}

impl Form {
    /// Parses a form from JSON and runs the structural checks of [`Form::check`].
    pub fn parse(json: &str) -> Result<Form, FormError> {
        if json.len() > MAX_FORM_BYTES {
            return Err(FormError::TooLarge {
                max: MAX_FORM_BYTES,
            });
        }
        let mut form: Form =
            serde_json::from_str(json).map_err(|e| FormError::Json(e.to_string()))?;
        form.prepare()?;
        Ok(form)
    }

    /// The structural checks; `parse` runs them, and so does the registry for forms built
    /// in code, so validation can rely on them.
    pub fn check(&self) -> Result<(), FormError> {
        self.checked(&self.patterns)?;
        crate::logic::compile(self).map(drop)
    }

    /// Runs the checks and keeps what they compiled, reusing the regexes the form
    /// already holds.
    pub(crate) fn prepare(&mut self) -> Result<(), FormError> {
        self.patterns = self.checked(&self.patterns)?;
        self.logic = crate::logic::compile(self)?;
        Ok(())
    }

    /// The structural checks, returning the form's compiled regexes (those in
    /// `known` are reused, not compiled again).
    pub(crate) fn checked(&self, known: &Patterns) -> Result<Patterns, FormError> {
        if self.id.is_empty()
            || !self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(FormError::InvalidId {
                id: self.id.clone(),
            });
        }
        if self.version == 0 {
            return Err(FormError::InvalidVersion {
                id: self.id.clone(),
            });
        }
        let mut compiled = Compiled {
            known,
            out: HashMap::new(),
        };
        check_fields(&self.fields, "", false, &mut compiled)?;
        for check in &self.checks {
            self.check_check(check)?;
        }
        Ok(Patterns(Arc::new(compiled.out)))
    }

    fn check_check(&self, check: &Check) -> Result<(), FormError> {
        let rule = check.rule();
        let lookup = |name: &str| {
            self.field(name)
                .ok_or_else(|| FormError::CheckUnknownField {
                    rule,
                    field: name.to_string(),
                })
        };
        let (list, other, other_type, expected) = match check {
            Check::CountAtMost { count, limit, .. } => {
                (count, limit, FieldType::Integer, "an integer field")
            }
            Check::EmptyUnless { field, when, .. } => {
                (field, when, FieldType::Boolean, "a boolean field")
            }
        };
        if !lookup(list)?.is_list() {
            return Err(FormError::CheckFieldType {
                rule,
                field: list.clone(),
                expected: "a repeat or a list field",
            });
        }
        if lookup(other)?.field_type != other_type {
            return Err(FormError::CheckFieldType {
                rule,
                field: other.clone(),
                expected,
            });
        }
        Ok(())
    }
}

fn valid_field_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn check_fields(
    fields: &[Field],
    parent: &str,
    in_repeat: bool,
    compiled: &mut Compiled<'_>,
) -> Result<(), FormError> {
    let mut seen = HashSet::new();
    for field in fields {
        let path = if parent.is_empty() {
            field.name.clone()
        } else {
            format!("{parent}.{}", field.name)
        };
        if !valid_field_name(&field.name) {
            return Err(FormError::InvalidFieldName {
                path,
                name: field.name.clone(),
            });
        }
        if !seen.insert(field.name.as_str()) {
            return Err(FormError::DuplicateField { path });
        }
        check_field(field, &path, in_repeat, compiled)?;
    }
    Ok(())
}

fn check_field(
    field: &Field,
    path: &str,
    in_repeat: bool,
    compiled: &mut Compiled<'_>,
) -> Result<(), FormError> {
    let ty = field.field_type;
    let not_applicable = |attribute| FormError::NotApplicable {
        path: path.to_string(),
        attribute,
        field_type: ty,
    };

    if ty.is_select() {
        if field.choices.is_empty() {
            return Err(FormError::NoChoices {
                path: path.to_string(),
            });
        }
        let mut values = HashSet::new();
        for choice in &field.choices {
            if choice.value.is_empty() {
                return Err(FormError::EmptyChoiceValue {
                    path: path.to_string(),
                });
            }
            if !values.insert(choice.value.as_str()) {
                return Err(FormError::DuplicateChoice {
                    path: path.to_string(),
                    value: choice.value.clone(),
                });
            }
        }
    } else if !field.choices.is_empty() {
        return Err(FormError::UnexpectedChoices {
            path: path.to_string(),
            field_type: ty,
        });
    }

    if ty.has_children() {
        if field.fields.is_empty() {
            return Err(FormError::EmptyRepeat {
                path: path.to_string(),
            });
        }
        // `unique` compares the items of a repeat, so it applies to the repeat's own
        // fields, not to those of a group inside it.
        check_fields(&field.fields, path, ty == FieldType::Repeat, compiled)?;
    } else if !field.fields.is_empty() {
        return Err(FormError::UnexpectedChildren {
            path: path.to_string(),
            field_type: ty,
        });
    }

    if field.item_label.is_some() && ty != FieldType::Repeat {
        return Err(not_applicable("item_label"));
    }
    if field.multiple && !matches!(ty, FieldType::Text | FieldType::Image) {
        return Err(not_applicable("multiple"));
    }
    if field.unique {
        if !in_repeat {
            return Err(FormError::UniqueOutsideRepeat {
                path: path.to_string(),
            });
        }
        // Uniqueness compares single values; notes have none and lists have no obvious
        // notion of "the same".
        if ty == FieldType::Note || field.is_list() || ty.has_children() {
            return Err(not_applicable("unique"));
        }
    }
    // A required note could never be satisfied: notes must not hold a value.
    if matches!(ty, FieldType::Note | FieldType::Group) && field.required {
        return Err(not_applicable("required"));
    }
    if field.default.is_some() {
        check_default(field, path)?;
    }

    if let Some(c) = &field.constraint {
        check_constraint(c, field, path, compiled)?;
    }
    Ok(())
}

/// A default must be an answer the field accepts; lists, groups and files have none.
fn check_default(field: &Field, path: &str) -> Result<(), FormError> {
    let Some(value) = &field.default else {
        return Ok(());
    };
    let invalid = |message: String| FormError::InvalidDefault {
        path: path.to_string(),
        value: value.to_string(),
        message,
    };
    if field.field_type.has_children()
        || matches!(field.field_type, FieldType::Note | FieldType::Image)
        || field.is_list()
    {
        return Err(invalid(format!(
            "a {} field takes no default",
            field.field_type
        )));
    }
    match crate::validate::answer_problems(field, value).first() {
        Some(problem) => Err(invalid(problem.message.clone())),
        None => Ok(()),
    }
}

fn check_constraint(
    c: &Constraint,
    field: &Field,
    path: &str,
    compiled: &mut Compiled<'_>,
) -> Result<(), FormError> {
    let ty = field.field_type;
    let not_applicable = |attribute| FormError::NotApplicable {
        path: path.to_string(),
        attribute,
        field_type: ty,
    };
    if c.expression.is_some()
        && matches!(ty, FieldType::Note | FieldType::Group | FieldType::Repeat)
    {
        return Err(not_applicable("constraint expression"));
    }
    let numeric = matches!(ty, FieldType::Integer | FieldType::Decimal);
    let text = ty == FieldType::Text;
    let list = field.is_list();

    if !numeric {
        if c.min.is_some() {
            return Err(not_applicable("constraint min"));
        }
        if c.max.is_some() {
            return Err(not_applicable("constraint max"));
        }
    }
    if !text {
        if c.min_length.is_some() {
            return Err(not_applicable("constraint min_length"));
        }
        if c.max_length.is_some() {
            return Err(not_applicable("constraint max_length"));
        }
        if c.regex.is_some() {
            return Err(not_applicable("constraint regex"));
        }
    }
    if !list {
        if c.min_items.is_some() {
            return Err(not_applicable("constraint min_items"));
        }
        if c.max_items.is_some() {
            return Err(not_applicable("constraint max_items"));
        }
    }

    for (key, bound) in [("min", c.min), ("max", c.max)] {
        if bound.is_some_and(|b| !b.is_finite()) {
            return Err(FormError::NonFiniteBound {
                path: path.to_string(),
                key,
            });
        }
    }
    let order = |lower, upper| FormError::MinGreaterThanMax {
        path: path.to_string(),
        lower,
        upper,
    };
    if let (Some(lo), Some(hi)) = (c.min, c.max) {
        if lo > hi {
            return Err(order("min", "max"));
        }
    }
    if let (Some(lo), Some(hi)) = (c.min_length, c.max_length) {
        if lo > hi {
            return Err(order("min_length", "max_length"));
        }
    }
    if let (Some(lo), Some(hi)) = (c.min_items, c.max_items) {
        if lo > hi {
            return Err(order("min_items", "max_items"));
        }
    }
    if let Some(pattern) = &c.regex {
        compiled.add(pattern).map_err(|e| FormError::InvalidRegex {
            path: path.to_string(),
            message: e.to_string(),
        })?;
    }
    Ok(())
}

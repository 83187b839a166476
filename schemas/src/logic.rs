//! A form's logic: its `relevant` and `constraint.expression` texts parsed once when the
//! form is checked, every `${name}` resolved to the field it names, and the scope that
//! evaluates them against a record's answers.
//!
//! Name rules (those of XLSForm): a name refers to one field of the whole form, so a
//! name given to two fields cannot be referred to; a field inside a repeat is visible
//! only from inside the same repeat (where it means the sibling in the same item); a
//! repeat is referred to only by `count()`; a group has no answer of its own.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value as Json};

use crate::expr::{Expr, Scope, Value};
use crate::form::{Compiled, Def, Field, FieldType, Form, FormError, Logic};

impl Logic {
    /// The form's logic: the compiled copy it holds, or compiled now for a form built in
    /// code. A form whose logic does not compile gets none; `expr` then answers `None`,
    /// which validation reports rather than passing silently.
    pub(crate) fn of(form: &Form) -> Cow<'_, Logic> {
        if form.logic.0.is_some() {
            Cow::Borrowed(&form.logic)
        } else {
            Cow::Owned(compile(form).unwrap_or(Logic(Some(Arc::default()))))
        }
    }

    pub(crate) fn expr(&self, source: &str) -> Option<&Expr> {
        self.0.as_ref()?.exprs.get(source)
    }

    pub(crate) fn def(&self, name: &str) -> Option<&Def> {
        self.0.as_ref()?.names.get(name)
    }
}

/// Parses every expression of the form and resolves every name, or says which field's
/// expression is wrong and why.
pub(crate) fn compile(form: &Form) -> Result<Logic, FormError> {
    let mut defs: HashMap<String, Vec<Def>> = HashMap::new();
    collect(
        &form.fields,
        &mut Vec::new(),
        &mut Vec::new(),
        "",
        &mut defs,
    );
    let mut out = Compiled::default();
    check(&form.fields, "", &mut Vec::new(), &defs, &mut out)?;
    out.names = defs
        .into_iter()
        .filter_map(|(name, mut list)| (list.len() == 1).then(|| (name, list.remove(0))))
        .collect();
    Ok(Logic(Some(Arc::new(out))))
}

fn collect(
    fields: &[Field],
    steps: &mut Vec<(String, bool)>,
    repeats: &mut Vec<String>,
    parent: &str,
    defs: &mut HashMap<String, Vec<Def>>,
) {
    for field in fields {
        let path = join(parent, &field.name);
        let repeat = field.field_type == FieldType::Repeat;
        steps.push((field.name.clone(), repeat));
        defs.entry(field.name.clone()).or_default().push(Def {
            steps: steps.clone(),
            field_type: field.field_type,
            repeats: repeats.clone(),
        });
        if field.field_type.has_children() {
            if repeat {
                repeats.push(path.clone());
            }
            collect(&field.fields, steps, repeats, &path, defs);
            if repeat {
                repeats.pop();
            }
        }
        steps.pop();
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

fn check(
    fields: &[Field],
    parent: &str,
    repeats: &mut Vec<String>,
    defs: &HashMap<String, Vec<Def>>,
    out: &mut Compiled,
) -> Result<(), FormError> {
    for field in fields {
        let path = join(parent, &field.name);
        let expression = field
            .constraint
            .as_ref()
            .and_then(|c| c.expression.as_ref());
        for (attribute, source) in [
            ("relevant", field.relevant.as_ref()),
            ("constraint", expression),
        ] {
            let Some(source) = source else { continue };
            let fail = |message: String| FormError::Expression {
                path: path.clone(),
                attribute,
                message,
            };
            let expr = Expr::parse(source).map_err(|e| fail(e.to_string()))?;
            resolve(&expr, repeats, defs).map_err(fail)?;
            out.exprs.insert(source.clone(), expr);
        }
        if field.field_type.has_children() {
            let repeat = field.field_type == FieldType::Repeat;
            if repeat {
                repeats.push(path.clone());
            }
            check(&field.fields, &path, repeats, defs, out)?;
            if repeat {
                repeats.pop();
            }
        }
    }
    Ok(())
}

/// Whether every name of `expr`, written in a field inside `repeats`, names one field
/// it can see.
fn resolve(
    expr: &Expr,
    repeats: &[String],
    defs: &HashMap<String, Vec<Def>>,
) -> Result<(), String> {
    let counted = expr.counted();
    let bare = expr.bare_names();
    for name in expr.names() {
        let def = match defs.get(name).map(Vec::as_slice) {
            None | Some([]) => return Err(format!("${{{name}}} is not a field of this form")),
            Some([def]) => def,
            Some(_) => {
                return Err(format!(
                    "${{{name}}} is ambiguous: more than one field is called {name}; rename one"
                ))
            }
        };
        // A repeat's own items are not visible outside it; its count is, from where
        // the repeat itself is visible.
        if !repeats.starts_with(&def.repeats) {
            return Err(format!(
                "${{{name}}} is inside the repeat {}, so only questions of that repeat can refer to it",
                def.repeats.last().map_or("", String::as_str)
            ));
        }
        let in_count = counted.contains(&name);
        match def.field_type {
            FieldType::Repeat if bare.contains(&name) => {
                return Err(format!(
                    "${{{name}}} is a repeat: refer to it as count(${{{name}}})"
                ))
            }
            FieldType::Group => {
                return Err(format!(
                    "${{{name}}} is a group, which has no answer of its own"
                ))
            }
            ty if in_count && ty != FieldType::Repeat => {
                return Err(format!(
                    "count() counts a repeat, and ${{{name}}} is a {ty}"
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The answers an expression sees: the record's fields, the items of the repeats the
/// expression's field sits in, and its own answer as `.`.
pub(crate) struct Answers<'a> {
    pub(crate) logic: &'a Logic,
    pub(crate) root: &'a Map<String, Json>,
    /// The item index in each enclosing repeat, outermost first.
    pub(crate) items: &'a [usize],
    pub(crate) this: Value,
    pub(crate) now: DateTime<FixedOffset>,
}

impl Answers<'_> {
    /// The JSON at `def`, taking the current item of each repeat passed through.
    fn locate(&self, def: &Def, through_last: bool) -> Option<&Json> {
        let mut here = self.root;
        let mut repeat = 0;
        let last = def.steps.len() - 1;
        for (i, (name, is_repeat)) in def.steps.iter().enumerate() {
            let value = here.get(name)?;
            if i == last && !through_last {
                return Some(value);
            }
            let value = if *is_repeat {
                let item = value.as_array()?.get(*self.items.get(repeat)?)?;
                repeat += 1;
                item
            } else {
                value
            };
            if i == last {
                return Some(value);
            }
            here = value.as_object()?;
        }
        None
    }
}

impl Scope for Answers<'_> {
    fn this(&self) -> Value {
        self.this.clone()
    }

    fn answer(&self, name: &str) -> Value {
        match self.logic.def(name) {
            Some(def) => typed(def.field_type, self.locate(def, true)),
            None => Value::empty(),
        }
    }

    fn count(&self, repeat: &str) -> usize {
        self.logic
            .def(repeat)
            .and_then(|def| self.locate(def, false))
            .and_then(Json::as_array)
            .map_or(0, Vec::len)
    }

    fn now(&self) -> DateTime<FixedOffset> {
        self.now
    }
}

/// An answer as ODK types it: numbers and dates by their field, a select_multiple as its
/// values joined by spaces, a position as `lat lon`; an absent answer is `''`, and one
/// of the wrong JSON type is read as its text, as a phone would show it.
pub(crate) fn typed(field_type: FieldType, value: Option<&Json>) -> Value {
    let Some(value) = value else {
        return Value::empty();
    };
    let parsed = match (field_type, value) {
        (FieldType::Integer | FieldType::Decimal, Json::Number(n)) => n.as_f64().map(Value::Num),
        (FieldType::Boolean, Json::Bool(b)) => Some(Value::Bool(*b)),
        (FieldType::Date | FieldType::DateTime, Json::String(s)) => {
            crate::expr::value::parse_temporal(s).or_else(|| Some(Value::Str(s.clone())))
        }
        (FieldType::SelectMultiple, Json::Array(items)) => Some(Value::Str(
            items
                .iter()
                .filter_map(Json::as_str)
                .collect::<Vec<_>>()
                .join(" "),
        )),
        (FieldType::Geopoint, Json::Object(p)) => match (p.get("lat"), p.get("lon")) {
            (Some(lat), Some(lon)) => Some(Value::Str(format!("{lat} {lon}"))),
            _ => None,
        },
        (_, Json::String(s)) => Some(Value::Str(s.clone())),
        (_, Json::Number(n)) => Some(Value::Str(n.to_string())),
        (_, Json::Bool(b)) => Some(Value::Str(b.to_string())),
        _ => None,
    };
    parsed.unwrap_or_else(Value::empty)
}

/// Where an answer sits in a record: keys and repeat item indices.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Item(usize),
}

/// The record's fields with every answer to a question that does not apply removed,
/// as ODK clears them when a form is saved; `None` when nothing applies to clear.
/// Conditions are read again after each clearing, so a question that applied only
/// because of a cleared answer is cleared too.
pub fn clear_irrelevant(
    form: &Form,
    fields: &Map<String, Json>,
    now: DateTime<FixedOffset>,
) -> Option<Map<String, Json>> {
    let logic = Logic::of(form);
    let mut current = fields.clone();
    let mut changed = false;
    // Each pass clears at least one answer or stops; a record holds finitely many.
    loop {
        let mut found = Vec::new();
        let walk = Walk {
            logic: &logic,
            root: &current,
            now,
        };
        walk.fields(
            &form.fields,
            &current,
            &mut Vec::new(),
            &mut Vec::new(),
            &mut found,
        );
        if found.is_empty() {
            break;
        }
        for path in found {
            remove(&mut current, &path);
        }
        changed = true;
    }
    changed.then_some(current)
}

struct Walk<'a> {
    logic: &'a Logic,
    root: &'a Map<String, Json>,
    now: DateTime<FixedOffset>,
}

impl Walk<'_> {
    fn fields(
        &self,
        fields: &[Field],
        here: &Map<String, Json>,
        at: &mut Vec<Step>,
        items: &mut Vec<usize>,
        found: &mut Vec<Vec<Step>>,
    ) {
        for field in fields {
            let Some(value) = here.get(&field.name) else {
                continue;
            };
            at.push(Step::Key(field.name.clone()));
            let applies = field.relevant.as_ref().is_none_or(|source| {
                self.logic.expr(source).is_none_or(|expr| {
                    expr.eval_bool(&Answers {
                        logic: self.logic,
                        root: self.root,
                        items,
                        this: typed(field.field_type, Some(value)),
                        now: self.now,
                    })
                })
            });
            if !applies {
                found.push(at.clone());
            } else if field.field_type == FieldType::Group {
                if let Some(obj) = value.as_object() {
                    self.fields(&field.fields, obj, at, items, found);
                }
            } else if field.field_type == FieldType::Repeat {
                for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                    if let Some(obj) = item.as_object() {
                        at.push(Step::Item(i));
                        items.push(i);
                        self.fields(&field.fields, obj, at, items, found);
                        items.pop();
                        at.pop();
                    }
                }
            }
            at.pop();
        }
    }
}

fn remove(root: &mut Map<String, Json>, path: &[Step]) {
    let Some((Step::Key(last), parents)) = path.split_last() else {
        return;
    };
    let mut here = root;
    let mut steps = parents.iter().peekable();
    while let Some(step) = steps.next() {
        let Step::Key(key) = step else { return };
        let next = match (here.get_mut(key), steps.peek()) {
            (Some(Json::Array(items)), Some(Step::Item(i))) => {
                steps.next();
                items.get_mut(*i)
            }
            (value, _) => value,
        };
        match next.and_then(Json::as_object_mut) {
            Some(obj) => here = obj,
            None => return,
        }
    }
    here.remove(last);
}

impl Form {
    /// Every name an expression of this form can refer to, with where its answer
    /// sits (`[["crew", true], ["age", false]]`, `true` marking a repeat) and its
    /// type: what the web form's script needs to evaluate the same expressions.
    pub fn names_json(&self) -> Json {
        let logic = Logic::of(self);
        let names = logic.0.as_ref().map(|c| &c.names);
        let map: Map<String, Json> = names
            .into_iter()
            .flatten()
            .map(|(name, def)| {
                let entry = serde_json::json!({
                    "steps": def.steps,
                    "type": def.field_type.as_str(),
                });
                (name.clone(), entry)
            })
            .collect();
        Json::Object(map)
    }
}

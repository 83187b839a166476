//! How JSON values map onto Automerge's and back: writing a field as a
//! diff of what is there (lists around their common prefix and suffix,
//! long text spliced), and reading the document into JSON with every
//! conflicting value noted.

use super::error::DocError;
use automerge::transaction::Transactable;
use automerge::ObjId as ExId;
use automerge::{
    AutoCommit, ChangeHash, ObjType, Prop, ReadDoc, ScalarValue, ScalarValueRef, Value, ValueRef,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use tideline_schemas::{Field, FieldType, Form};

/// One concurrent value of a conflicted field and the actor that wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConflictValue {
    pub value: Json,
    pub author: String,
}

/// What is known about the field a JSON value belongs to, so that nested values
/// can be written with the right Automerge type.
#[derive(Clone, Copy)]
pub(super) enum Ctx<'a> {
    None,
    Field(&'a Field),
    Item(&'a Field),
}

impl<'a> Ctx<'a> {
    pub(super) fn long_text(self) -> bool {
        matches!(self, Ctx::Field(f) if f.is_long_text())
    }
    pub(super) fn decimal(self) -> bool {
        matches!(self, Ctx::Field(f) if f.field_type == FieldType::Decimal)
    }
    pub(super) fn element(self) -> Ctx<'a> {
        match self {
            Ctx::Field(f) if f.field_type == FieldType::Repeat => Ctx::Item(f),
            _ => Ctx::None,
        }
    }
    pub(super) fn child(self, key: &str) -> Ctx<'a> {
        match self {
            Ctx::Item(f) => f
                .fields
                .iter()
                .find(|c| c.name == key)
                .map_or(Ctx::None, Ctx::Field),
            _ => Ctx::None,
        }
    }
}

pub(super) fn form_ctx<'a>(form: &'a Form, key: &str) -> Ctx<'a> {
    form.field(key).map_or(Ctx::None, Ctx::Field)
}

/// Where a new value goes.
#[derive(Clone, Copy)]
pub(super) enum Slot<'a> {
    Key(&'a str),
    Put(usize),
    Insert(usize),
}

pub(super) enum PathStep {
    Key(String),
    Index(usize),
}

/// `crew[0].name` -> [Key(crew), Index(0), Key(name)].
pub(super) fn parse_path(path: &str) -> Option<Vec<PathStep>> {
    let mut steps = Vec::new();
    for part in path.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if name.is_empty() {
            return None;
        }
        steps.push(PathStep::Key(name.to_string()));
        while let Some(stripped) = rest.strip_prefix('[') {
            let end = stripped.find(']')?;
            steps.push(PathStep::Index(stripped[..end].parse().ok()?));
            rest = &stripped[end + 1..];
        }
        if !rest.is_empty() {
            return None;
        }
    }
    (!steps.is_empty()).then_some(steps)
}

pub(super) fn scalar_of(v: &Json, ctx: Ctx<'_>) -> ScalarValue {
    match v {
        Json::Null => ScalarValue::Null,
        Json::Bool(b) => ScalarValue::Boolean(*b),
        Json::Number(n) if ctx.decimal() => ScalarValue::F64(n.as_f64().unwrap_or(0.0)),
        Json::Number(n) => match n.as_i64() {
            Some(i) => ScalarValue::Int(i),
            None => ScalarValue::F64(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => ScalarValue::Str(s.as_str().into()),
        // Objects and arrays never reach here: callers create objects for them.
        Json::Array(_) | Json::Object(_) => ScalarValue::Null,
    }
}

pub(super) fn scalar_json(s: &ScalarValue) -> Json {
    match s {
        ScalarValue::Str(s) => Json::String(s.to_string()),
        ScalarValue::Int(i) => Json::from(*i),
        ScalarValue::Uint(u) => Json::from(*u),
        ScalarValue::F64(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        ScalarValue::Boolean(b) => Json::Bool(*b),
        ScalarValue::Counter(c) => Json::from(i64::from(c)),
        ScalarValue::Timestamp(t) => Json::from(*t),
        ScalarValue::Bytes(_) | ScalarValue::Unknown { .. } | ScalarValue::Null => Json::Null,
    }
}

pub(super) fn scalar_eq(s: &ScalarValue, v: &Json, ctx: Ctx<'_>) -> bool {
    match (s, v) {
        (ScalarValue::F64(a), Json::Number(n)) => n.as_f64() == Some(*a),
        (ScalarValue::Int(_), Json::Number(_)) if ctx.decimal() => false,
        (ScalarValue::Int(a), Json::Number(n)) => n.as_i64() == Some(*a),
        _ => scalar_json(s) == *v,
    }
}

pub(super) fn value_json(doc: &AutoCommit, v: Value<'_>, id: &ExId) -> Json {
    match v {
        Value::Object(t) => read_obj(doc, id, t),
        Value::Scalar(s) => scalar_json(&s),
    }
}

pub(super) fn read_obj(doc: &AutoCommit, obj: &ExId, t: ObjType) -> Json {
    match t {
        ObjType::Text => Json::String(doc.text(obj).unwrap_or_default()),
        ObjType::Map | ObjType::Table => {
            let mut m = Map::new();
            for key in doc.keys(obj) {
                if let Ok(Some((v, id))) = doc.get(obj, key.as_str()) {
                    m.insert(key, value_json(doc, v, &id));
                }
            }
            Json::Object(m)
        }
        ObjType::List => {
            let len = doc.length(obj);
            Json::Array(
                (0..len)
                    .map(|i| match doc.get(obj, i) {
                        Ok(Some((v, id))) => value_json(doc, v, &id),
                        _ => Json::Null,
                    })
                    .collect(),
            )
        }
    }
}

pub(super) fn actor_of(id: &ExId) -> String {
    match id {
        ExId::Id(_, actor, _) => actor.to_hex_string(),
        ExId::Root => String::new(),
    }
}

pub(super) type Conflicts = BTreeMap<String, Vec<ConflictValue>>;

/// One pass over an object tree, building its JSON and, when asked, noting the
/// conflicts on the way. Automerge's range iterators flag conflicting entries,
/// so only those pay for a `get_all`; random access by key or index costs far
/// more than iterating.
pub(super) struct Walk<'a, 'c> {
    pub(super) doc: &'a AutoCommit,
    pub(super) conflicts: Option<&'c mut Conflicts>,
    /// Read the document as it was at these heads instead of as it is.
    pub(super) at: Option<&'a [ChangeHash]>,
}

impl Walk<'_, '_> {
    pub(super) fn object(&mut self, obj: &ExId, t: ObjType, path: &str) -> Json {
        let doc = self.doc;
        match t {
            ObjType::Text => Json::String(
                match self.at {
                    Some(heads) => doc.text_at(obj, heads),
                    None => doc.text(obj),
                }
                .unwrap_or_default(),
            ),
            ObjType::Map | ObjType::Table => {
                let mut m = Map::new();
                let items = match self.at {
                    Some(heads) => doc.map_range_at(obj, .., heads),
                    None => doc.map_range(obj, ..),
                };
                for item in items {
                    let child = if path.is_empty() {
                        item.key.to_string()
                    } else {
                        format!("{path}.{}", item.key)
                    };
                    if item.conflict {
                        self.note_conflict(obj, Prop::Map(item.key.to_string()), &child);
                    }
                    let value = self.value(&item.value, || item.id(), &child);
                    m.insert(item.key.into_owned(), value);
                }
                Json::Object(m)
            }
            ObjType::List => {
                let mut items = Vec::new();
                let range = match self.at {
                    Some(heads) => doc.list_range_at(obj, .., heads),
                    None => doc.list_range(obj, ..),
                };
                for item in range {
                    let child = format!("{path}[{}]", item.index);
                    if item.conflict {
                        self.note_conflict(obj, Prop::Seq(item.index), &child);
                    }
                    items.push(self.value(&item.value, || item.id(), &child));
                }
                Json::Array(items)
            }
        }
    }

    pub(super) fn value(
        &mut self,
        v: &ValueRef<'_>,
        id: impl FnOnce() -> ExId,
        path: &str,
    ) -> Json {
        match v {
            // Conflicts inside a losing object are not what anyone sees, and
            // resolving the outer conflict discards them: only the winner is walked.
            ValueRef::Object(t) => self.object(&id(), *t, path),
            ValueRef::Scalar(s) => scalar_ref_json(s),
        }
    }

    pub(super) fn note_conflict(&mut self, obj: &ExId, prop: Prop, path: &str) {
        let Some(out) = self.conflicts.as_deref_mut() else {
            return;
        };
        let all = match self.at {
            Some(heads) => self.doc.get_all_at(obj, prop, heads),
            None => self.doc.get_all(obj, prop),
        };
        let Ok(all) = all else {
            return;
        };
        if all.len() > 1 {
            let values = all
                .iter()
                .map(|(v, id)| ConflictValue {
                    value: value_json(self.doc, v.clone(), id),
                    author: actor_of(id),
                })
                .collect();
            out.insert(path.to_string(), values);
        }
    }
}

pub(super) fn scalar_ref_json(s: &ScalarValueRef<'_>) -> Json {
    match s {
        ScalarValueRef::Str(s) => Json::String(s.to_string()),
        ScalarValueRef::Int(i) => Json::from(*i),
        ScalarValueRef::Uint(u) => Json::from(*u),
        ScalarValueRef::F64(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        ScalarValueRef::Boolean(b) => Json::Bool(*b),
        ScalarValueRef::Counter(c) => Json::from(*c),
        ScalarValueRef::Timestamp(t) => Json::from(*t),
        ScalarValueRef::Bytes(_) | ScalarValueRef::Unknown { .. } | ScalarValueRef::Null => {
            Json::Null
        }
    }
}

pub(super) fn write_new(
    doc: &mut AutoCommit,
    obj: &ExId,
    slot: Slot<'_>,
    v: &Json,
    ctx: Ctx<'_>,
) -> Result<(), DocError> {
    let obj_type = match v {
        Json::String(_) if ctx.long_text() => Some(ObjType::Text),
        Json::Object(_) => Some(ObjType::Map),
        Json::Array(_) => Some(ObjType::List),
        _ => None,
    };
    let Some(obj_type) = obj_type else {
        let s = scalar_of(v, ctx);
        match slot {
            Slot::Key(k) if v.is_null() => {
                if doc.get(obj, k)?.is_some() {
                    doc.delete(obj, k)?;
                }
            }
            Slot::Key(k) => doc.put(obj, k, s)?,
            Slot::Put(i) => doc.put(obj, i, s)?,
            Slot::Insert(i) => doc.insert(obj, i, s)?,
        }
        return Ok(());
    };
    let child = match slot {
        Slot::Key(k) => doc.put_object(obj, k, obj_type)?,
        Slot::Put(i) => doc.put_object(obj, i, obj_type)?,
        Slot::Insert(i) => doc.insert_object(obj, i, obj_type)?,
    };
    match v {
        Json::String(s) => doc.splice_text(&child, 0, 0, s)?,
        Json::Object(m) => {
            for (k, cv) in m {
                if !cv.is_null() {
                    write_new(doc, &child, Slot::Key(k), cv, ctx.child(k))?;
                }
            }
        }
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                write_new(doc, &child, Slot::Insert(i), item, ctx.element())?;
            }
        }
        _ => {}
    }
    Ok(())
}

pub(super) fn update(
    doc: &mut AutoCommit,
    obj: &ExId,
    slot: Slot<'_>,
    new: &Json,
    ctx: Ctx<'_>,
) -> Result<(), DocError> {
    let prop: Prop = match slot {
        Slot::Key(k) => Prop::Map(k.to_string()),
        Slot::Put(i) | Slot::Insert(i) => Prop::Seq(i),
    };
    let current: Vec<(Value<'static>, ExId)> = doc
        .get_all(obj, prop)?
        .into_iter()
        .map(|(v, id)| (v.into_owned(), id))
        .collect();
    // With concurrent values present, any write is a resolution: write afresh.
    if current.len() == 1 {
        let (cur, id) = &current[0];
        match (cur, new) {
            (Value::Object(ObjType::Text), Json::String(s)) if ctx.long_text() => {
                doc.update_text(id, s)?;
                return Ok(());
            }
            (Value::Object(ObjType::Map), Json::Object(m)) => {
                let stale: Vec<String> = doc.keys(id).filter(|k| !m.contains_key(k)).collect();
                for k in stale {
                    doc.delete(id, k.as_str())?;
                }
                for (k, v) in m {
                    update(doc, id, Slot::Key(k), v, ctx.child(k))?;
                }
                return Ok(());
            }
            (Value::Object(ObjType::List), Json::Array(items)) => {
                return update_list(doc, id, items, ctx.element());
            }
            (Value::Scalar(s), v)
                if !v.is_array() && !v.is_object() && scalar_eq(s.as_ref(), v, ctx) =>
            {
                return Ok(());
            }
            _ => {}
        }
    }
    if current.is_empty() && new.is_null() {
        return Ok(());
    }
    write_new(doc, obj, slot, new, ctx)
}

/// Update a list around its common prefix and suffix, so that adding or removing
/// one crew member touches only that item and concurrent edits of the others merge.
pub(super) fn update_list(
    doc: &mut AutoCommit,
    list: &ExId,
    new: &[Json],
    ctx: Ctx<'_>,
) -> Result<(), DocError> {
    let old = match read_obj(doc, list, ObjType::List) {
        Json::Array(a) => a,
        _ => Vec::new(),
    };
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let max_suffix = old.len().min(new.len()) - prefix;
    let suffix = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take(max_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    let old_mid = old.len() - prefix - suffix;
    let new_mid = &new[prefix..new.len() - suffix];
    let common = old_mid.min(new_mid.len());
    for (j, item) in new_mid[..common].iter().enumerate() {
        update(doc, list, Slot::Put(prefix + j), item, ctx)?;
    }
    for (j, item) in new_mid[common..].iter().enumerate() {
        write_new(doc, list, Slot::Insert(prefix + common + j), item, ctx)?;
    }
    for _ in common..old_mid {
        doc.delete(list, prefix + common)?;
    }
    Ok(())
}

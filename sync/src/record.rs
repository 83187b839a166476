//! One record = one Automerge document, with the layout of docs/DESIGN.md §3.
//!
//! [`RecordDoc`] is the only code that knows how a record's JSON maps onto
//! Automerge objects. Writes are diffs, not overwrites: a field is only written
//! when its value changes, lists are updated around their common prefix and
//! suffix, and long free text (`appearance: multiline`) is Automerge Text updated
//! by splicing, so two people editing the narrative both keep their words.
//!
//! ```
//! use automerge::ActorId;
//! use serde_json::json;
//! use tideline_schemas::{FormRegistry, RecordId};
//! use tideline_sync::record::{RecordDoc, RecordMeta};
//!
//! let forms = FormRegistry::builtin();
//! let form = forms.latest("vessel-sighting").unwrap();
//! let meta = RecordMeta::new(RecordId::new(), form, "BB-01", "device-1");
//! let fields = json!({"vessel_name": "Sea Breeze", "description": "Heading north"});
//! let mut boat = RecordDoc::create(ActorId::from([1u8; 16]), &meta, form,
//!     fields.as_object().unwrap(), 0).unwrap();
//!
//! // Headquarters edits a copy while the boat keeps editing its own.
//! let mut hq = boat.fork(ActorId::from([2u8; 16]));
//! hq.update_fields(form, json!({"vessel_name": "Sea Breeze II"}).as_object().unwrap()).unwrap();
//! boat.update_fields(form, json!({"description": "Heading north, fast"}).as_object().unwrap()).unwrap();
//! boat.merge(&mut hq).unwrap();
//!
//! let fields = boat.fields();
//! assert_eq!(fields["vessel_name"], "Sea Breeze II");
//! assert_eq!(fields["description"], "Heading north, fast");
//! assert!(boat.conflicts().is_empty());
//! ```

use automerge::sync::{self, SyncDoc};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::ObjId as ExId;
use automerge::{
    ActorId, AutoCommit, Change, ChangeHash, ObjType, Prop, ReadDoc, ScalarValue, Value, ROOT,
};
use serde::Serialize;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use tideline_schemas::{Form, RecordId};

mod error;
mod meta;
mod values;

pub use error::DocError;
pub use meta::{RecordMeta, Status, UnknownStatus};
pub use values::ConflictValue;
use values::*;

/// A change's message: what was done, and by whom when a person did it
/// (`edit by user:alice`); [`RecordDoc::history`] splits it again.
pub fn change_message(what: &str, by: Option<&str>) -> String {
    match by {
        Some(who) => format!("{what} by {who}"),
        None => what.to_string(),
    }
}

/// One change in a record's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// The actor (device id, hex) that made the change.
    pub author: String,
    /// The person who made it (`user:alice`), when one did.
    pub person: Option<String>,
    /// Seconds since the epoch, as the author's clock said.
    pub time: i64,
    pub message: String,
    /// What it touched: field paths (`vessel_name`, `crew[1].name`), or
    /// `status`, `review`, `attachments`, `meta`.
    pub touched: Vec<String>,
}

/// The field a patch touched, as a path inside `fields` (or the top-level key
/// outside them). Deeper edits name the innermost field, so a splice in a
/// long text names that text.
fn touched_path(patch: &automerge::Patch, in_text: bool) -> String {
    use automerge::{PatchAction, Prop};
    let mut props: Vec<Prop> = patch.path.iter().map(|(_, p)| p.clone()).collect();
    match &patch.action {
        PatchAction::PutMap { key, .. } | PatchAction::DeleteMap { key } => {
            props.push(Prop::Map(key.clone()))
        }
        // Characters of a long text are not worth naming: the text is.
        PatchAction::PutSeq { index, .. }
        | PatchAction::Insert { index, .. }
        | PatchAction::DeleteSeq { index, .. }
            if !in_text =>
        {
            props.push(Prop::Seq(*index))
        }
        PatchAction::PutSeq { .. } | PatchAction::Insert { .. } | PatchAction::DeleteSeq { .. } => {
        }
        PatchAction::Conflict { prop } | PatchAction::Increment { prop, .. } => {
            props.push(prop.clone())
        }
        PatchAction::SpliceText { .. } | PatchAction::Mark { .. } => {}
    }
    let mut props = props.into_iter();
    let Some(Prop::Map(first)) = props.next() else {
        return String::new();
    };
    if first != "fields" {
        return first;
    }
    let mut out = String::new();
    for prop in props {
        match prop {
            Prop::Map(k) if out.is_empty() => out.push_str(&k),
            Prop::Map(k) => {
                out.push('.');
                out.push_str(&k);
            }
            Prop::Seq(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The typed face of a record's Automerge document.
pub struct RecordDoc {
    doc: AutoCommit,
}

impl RecordDoc {
    /// A new record document written by `actor`, its first change committed
    /// at `time` (seconds) and naming the person who created it, if
    /// `meta.created_by_person` does.
    pub fn create(
        actor: ActorId,
        meta: &RecordMeta,
        form: &Form,
        fields: &Map<String, Json>,
        time: i64,
    ) -> Result<Self, DocError> {
        let mut doc = AutoCommit::new().with_actor(actor);
        let m = doc.put_object(ROOT, "meta", ObjType::Map)?;
        doc.put(&m, "id", meta.id.to_string())?;
        doc.put(&m, "form", meta.form.as_str())?;
        doc.put(&m, "form_version", meta.form_version as i64)?;
        doc.put(&m, "station", meta.station.as_str())?;
        doc.put(&m, "created_by", meta.created_by.as_str())?;
        doc.put(&m, "created_at", meta.created_at.as_str())?;
        if let Some(person) = &meta.created_by_person {
            doc.put(&m, "created_by_person", person.as_str())?;
        }
        if let Some(instance) = &meta.odk_instance {
            doc.put(&m, "odk_instance", instance.as_str())?;
        }
        let f = doc.put_object(ROOT, "fields", ObjType::Map)?;
        for (k, v) in fields {
            if !v.is_null() {
                write_new(&mut doc, &f, Slot::Key(k), v, form_ctx(form, k))?;
            }
        }
        doc.put_object(ROOT, "attachments", ObjType::List)?;
        doc.put(ROOT, "status", Status::Draft.as_str())?;
        doc.put_object(ROOT, "review", ObjType::List)?;
        let mut rec = RecordDoc { doc };
        rec.commit(
            &change_message("create", meta.created_by_person.as_deref()),
            time,
        );
        Ok(rec)
    }

    /// Load a stored document (snapshot followed by incremental chunks) and make
    /// `actor` its author for further edits; `AutoCommit::load` would otherwise
    /// pick a random actor and every restart would look like a new device.
    pub fn load(snapshot: &[u8], chunks: &[Vec<u8>], actor: ActorId) -> Result<Self, DocError> {
        let mut doc = AutoCommit::load(snapshot).map_err(|e| DocError::Decode(e.to_string()))?;
        for chunk in chunks {
            doc.load_incremental(chunk)
                .map_err(|e| DocError::Decode(e.to_string()))?;
        }
        doc.set_actor(actor);
        let rec = RecordDoc { doc };
        rec.fields_obj()?;
        Ok(rec)
    }

    /// A document with no history yet, to receive a record from a peer.
    pub fn empty(actor: ActorId) -> Self {
        RecordDoc {
            doc: AutoCommit::new().with_actor(actor),
        }
    }

    /// Whether the document has the record layout (meta and fields); a peer's
    /// changes that do not build one are not a record.
    pub fn has_record_layout(&self) -> bool {
        self.meta().is_ok() && self.fields_obj().is_ok()
    }

    /// Apply changes received from a peer. Changes whose dependencies are
    /// missing are held back by Automerge and show in [`Self::missing_deps`].
    pub fn apply_changes(&mut self, changes: Vec<Change>) -> Result<(), DocError> {
        self.doc.apply_changes(changes)?;
        Ok(())
    }

    /// Dependencies of received changes that this document does not have.
    pub fn missing_deps(&mut self) -> Vec<ChangeHash> {
        self.doc.get_missing_deps(&[])
    }

    /// Every change not already covered by `heads`. Heads this document does not
    /// know are ignored: they cannot make the answer smaller.
    pub fn changes_since(&mut self, heads: &[ChangeHash]) -> Vec<Change> {
        // The metadata lookup answers "is this change here?" in well under a
        // microsecond; fetching the change itself rebuilds it (~250 µs).
        let known: Vec<ChangeHash> = heads
            .iter()
            .filter(|h| self.doc.get_change_meta_by_hash(h).is_some())
            .copied()
            .collect();
        self.doc.get_changes(&known)
    }

    /// Append an entry (a JSON object) to the record's `attachments` list.
    pub fn add_attachment(&mut self, entry: &Json) -> Result<(), DocError> {
        let list = match self.doc.get(ROOT, "attachments")? {
            Some((Value::Object(ObjType::List), id)) => id,
            _ => self.doc.put_object(ROOT, "attachments", ObjType::List)?,
        };
        let at = self.doc.length(&list);
        write_new(&mut self.doc, &list, Slot::Insert(at), entry, Ctx::None)?;
        Ok(())
    }

    /// Append a review comment (`{by, at, comment}`) to the record's `review` list.
    pub fn add_review(&mut self, entry: &Json) -> Result<(), DocError> {
        let list = match self.doc.get(ROOT, "review")? {
            Some((Value::Object(ObjType::List), id)) => id,
            _ => self.doc.put_object(ROOT, "review", ObjType::List)?,
        };
        let at = self.doc.length(&list);
        write_new(&mut self.doc, &list, Slot::Insert(at), entry, Ctx::None)?;
        Ok(())
    }

    /// Every change of the document in causal order: who (the actor, hex),
    /// when, its message, and which field paths it touched (`crew[1].name`;
    /// `status`, `review` and `attachments` outside the fields).
    pub fn history(&mut self) -> Vec<HistoryEntry> {
        let changes = self.doc.get_changes(&[]);
        let mut entries = Vec::with_capacity(changes.len());
        for change in changes {
            let patches = self.doc.diff(change.deps(), &[change.hash()]);
            let mut touched: Vec<String> = Vec::new();
            for patch in patches {
                let in_text = matches!(self.doc.object_type(&patch.obj), Ok(ObjType::Text));
                let path = touched_path(&patch, in_text);
                if !path.is_empty() && !touched.contains(&path) {
                    touched.push(path);
                }
            }
            let text = change.message().unwrap_or_default();
            let (message, person) = match text.split_once(" by ") {
                Some((what, who)) => (what.to_string(), Some(who.to_string())),
                None => (text.to_string(), None),
            };
            entries.push(HistoryEntry {
                author: change.actor_id().to_hex_string(),
                person,
                time: change.timestamp(),
                message,
                touched,
            });
        }
        entries
    }

    /// Whether the change with this hash is part of the document.
    pub fn has_change(&mut self, hash: &ChangeHash) -> bool {
        self.doc.get_change_meta_by_hash(hash).is_some()
    }

    /// The next message of Automerge's own sync protocol for this document.
    pub fn generate_sync_message(&mut self, state: &mut sync::State) -> Option<Vec<u8>> {
        self.doc
            .sync()
            .generate_sync_message(state)
            .map(sync::Message::encode)
    }

    /// Take in a message of Automerge's own sync protocol.
    pub fn receive_sync_message(
        &mut self,
        state: &mut sync::State,
        message: &[u8],
    ) -> Result<(), DocError> {
        let message =
            sync::Message::decode(message).map_err(|e| DocError::Decode(e.to_string()))?;
        self.doc.sync().receive_sync_message(state, message)?;
        Ok(())
    }

    /// A second, independent copy written by another actor (tests, tools).
    pub fn fork(&mut self, actor: ActorId) -> RecordDoc {
        RecordDoc {
            doc: self.doc.fork().with_actor(actor),
        }
    }

    /// Merge another copy of the same record into this one.
    pub fn merge(&mut self, other: &mut RecordDoc) -> Result<(), DocError> {
        self.doc.merge(&mut other.doc)?;
        Ok(())
    }

    /// Apply `fields`, a whole new set of answers made from the record as it
    /// was at `base` (a phone's edit of what it submitted), as concurrent
    /// with everything since: only the answers that differ from those at
    /// `base` are written, on a copy of the document at `base` (and this
    /// actor's own later changes, which must stay in sequence), and the copy
    /// is merged back. So an answer someone else changed meanwhile is kept
    /// where the edit left it alone, and shows as a conflict where both
    /// changed it. Returns the hash of the new change, if anything differed.
    pub fn revise(
        &mut self,
        form: &Form,
        base: &[ChangeHash],
        fields: &Map<String, Json>,
        message: &str,
        time: i64,
    ) -> Result<Option<ChangeHash>, DocError> {
        let before = self.fields_at(base);
        let mut patch: Map<String, Json> = fields
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for k in before.keys().filter(|k| !fields.contains_key(*k)) {
            patch.insert(k.clone(), Json::Null);
        }
        if patch.is_empty() {
            return Ok(None);
        }
        let mut at: Vec<ChangeHash> = base.to_vec();
        if let Some(own) = self.doc.get_last_local_change() {
            at.push(own.hash());
        }
        let actor = self.doc.get_actor().clone();
        let mut copy = RecordDoc {
            doc: self
                .doc
                .fork_at(&at)
                .map_err(|e| DocError::Decode(e.to_string()))?
                .with_actor(actor),
        };
        copy.update_fields(form, &patch)?;
        let hash = copy.commit(message, time);
        self.merge(&mut copy)?;
        Ok(hash)
    }

    /// Apply a partial update of `fields`: keys present are set (null removes
    /// the field), keys absent are left alone. Nothing is written for values
    /// that are already equal, so a no-op patch makes no change.
    pub fn update_fields(
        &mut self,
        form: &Form,
        patch: &Map<String, Json>,
    ) -> Result<(), DocError> {
        let f = self.fields_obj()?;
        for (k, v) in patch {
            update(&mut self.doc, &f, Slot::Key(k), v, form_ctx(form, k))?;
        }
        Ok(())
    }

    /// Write `value` at a path inside `fields` (`outcome`, `crew[0].name`) even
    /// when it equals the current winner: a fresh write is what resolves a
    /// conflict. Without the record's form (a version not known here) values
    /// are written with the types their JSON suggests.
    pub fn resolve(
        &mut self,
        form: Option<&Form>,
        path: &str,
        value: &Json,
    ) -> Result<(), DocError> {
        let steps =
            parse_path(path).ok_or_else(|| DocError::Layout(format!("bad path {path:?}")))?;
        let mut obj = self.fields_obj()?;
        let mut ctx = Ctx::None;
        for (i, step) in steps.iter().enumerate() {
            ctx = match (step, ctx, i) {
                (PathStep::Key(k), _, 0) => form.map_or(Ctx::None, |f| form_ctx(f, k)),
                (PathStep::Key(k), c, _) => c.child(k),
                (PathStep::Index(_), c, _) => c.element(),
            };
            let prop: Prop = match step {
                PathStep::Key(k) => Prop::Map(k.clone()),
                PathStep::Index(n) => Prop::Seq(*n),
            };
            if i + 1 == steps.len() {
                let slot = match step {
                    PathStep::Key(k) => Slot::Key(k),
                    PathStep::Index(n) => Slot::Put(*n),
                };
                return write_new(&mut self.doc, &obj, slot, value, ctx);
            }
            obj = match self.doc.get(&obj, prop)? {
                Some((Value::Object(_), id)) => id,
                _ => return Err(DocError::Layout(format!("no object at {path:?}"))),
            };
        }
        Err(DocError::Layout("empty path".into()))
    }

    pub fn set_status(&mut self, status: Status) -> Result<(), DocError> {
        if self.status() != Some(status) {
            self.doc.put(ROOT, "status", status.as_str())?;
        }
        Ok(())
    }

    /// Commit pending operations as one change; returns None when nothing changed.
    pub fn commit(&mut self, message: &str, time: i64) -> Option<ChangeHash> {
        self.doc.commit_with(
            CommitOptions::default()
                .with_message(message.to_string())
                .with_time(time),
        )
    }

    pub fn heads(&mut self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// The whole document, compacted, its columns not DEFLATEd: that is how
    /// it is stored and sent whole (`integrity::plain_document`). Once a
    /// sync message is compressed, plain columns cost fewer bytes than
    /// DEFLATEd ones, which zstd cannot compress again.
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save_nocompress()
    }

    /// The changes made since `heads`, as an incremental chunk.
    pub fn save_after(&mut self, heads: &[ChangeHash]) -> Vec<u8> {
        self.doc.save_after(heads)
    }

    pub fn automerge(&mut self) -> &mut AutoCommit {
        &mut self.doc
    }

    pub fn meta(&self) -> Result<RecordMeta, DocError> {
        let m = match self.doc.get(ROOT, "meta")? {
            Some((Value::Object(ObjType::Map), id)) => id,
            _ => return Err(DocError::Layout("no meta map".into())),
        };
        let text = |key: &str| -> Result<String, DocError> {
            match self.doc.get(&m, key)? {
                Some((Value::Scalar(s), _)) => match s.as_ref() {
                    ScalarValue::Str(s) => Ok(s.to_string()),
                    other => Ok(other.to_string()),
                },
                _ => Err(DocError::Layout(format!("meta.{key} missing"))),
            }
        };
        let id = text("id")?
            .parse::<RecordId>()
            .map_err(|e| DocError::Layout(e.to_string()))?;
        let form_version = match self.doc.get(&m, "form_version")? {
            Some((Value::Scalar(s), _)) => match s.as_ref() {
                ScalarValue::Int(n) => u32::try_from(*n).ok(),
                ScalarValue::Uint(n) => u32::try_from(*n).ok(),
                _ => None,
            },
            _ => None,
        }
        .ok_or_else(|| DocError::Layout("meta.form_version missing".into()))?;
        Ok(RecordMeta {
            id,
            form: text("form")?,
            form_version,
            station: text("station")?,
            created_by: text("created_by")?,
            created_at: text("created_at")?,
            created_by_person: text("created_by_person").ok(),
            odk_instance: text("odk_instance").ok(),
        })
    }

    /// The current status, or None if the stored value is not a known status.
    pub fn status(&self) -> Option<Status> {
        match self.doc.get(ROOT, "status").ok()?? {
            (Value::Scalar(s), _) => match s.as_ref() {
                ScalarValue::Str(s) => s.parse().ok(),
                _ => None,
            },
            _ => None,
        }
    }

    /// The current field values as JSON (winners where values conflict).
    pub fn fields(&self) -> Map<String, Json> {
        self.read_fields(None, None)
    }

    /// The field values as they were at `heads` (an earlier state of this
    /// document), read without undoing anything since.
    pub fn fields_at(&self, heads: &[ChangeHash]) -> Map<String, Json> {
        self.read_fields(None, Some(heads))
    }

    /// The field values and the conflicts among them, read in one walk over
    /// the document: the view needs both, and walking twice doubles the cost.
    pub fn fields_and_conflicts(
        &self,
    ) -> (Map<String, Json>, BTreeMap<String, Vec<ConflictValue>>) {
        let mut conflicts = BTreeMap::new();
        let fields = self.read_fields(Some(&mut conflicts), None);
        (fields, conflicts)
    }

    fn read_fields(
        &self,
        conflicts: Option<&mut Conflicts>,
        at: Option<&[ChangeHash]>,
    ) -> Map<String, Json> {
        let fields = match at {
            Some(heads) => self.doc.get_at(ROOT, "fields", heads),
            None => self.doc.get(ROOT, "fields"),
        };
        let Ok(Some((Value::Object(ObjType::Map), obj))) = fields else {
            return Map::new();
        };
        let mut walk = Walk {
            doc: &self.doc,
            conflicts,
            at,
        };
        match walk.object(&obj, ObjType::Map, "") {
            Json::Object(m) => m,
            _ => Map::new(),
        }
    }

    pub fn attachments(&self) -> Json {
        self.root_json("attachments")
    }

    pub fn review(&self) -> Json {
        self.root_json("review")
    }

    fn root_json(&self, key: &str) -> Json {
        match self.doc.get(ROOT, key) {
            Ok(Some((v, id))) => value_json(&self.doc, v, &id),
            _ => Json::Array(vec![]),
        }
    }

    /// Every path inside `fields` where concurrent writes left several values,
    /// with each value and the actor (hex) that wrote it. Empty when there are none.
    pub fn conflicts(&self) -> BTreeMap<String, Vec<ConflictValue>> {
        self.fields_and_conflicts().1
    }

    /// Time (seconds) of the newest change in the document.
    pub fn updated_at(&mut self) -> Option<i64> {
        let heads = self.doc.get_heads();
        heads
            .iter()
            .filter_map(|h| self.doc.get_change_meta_by_hash(h).map(|m| m.timestamp))
            .max()
    }

    fn fields_obj(&self) -> Result<ExId, DocError> {
        match self.doc.get(ROOT, "fields")? {
            Some((Value::Object(ObjType::Map), id)) => Ok(id),
            _ => Err(DocError::Layout("no fields map".into())),
        }
    }
}
#[cfg(test)]
mod tests;

//! The record service: creating, editing, reading and listing records on one
//! instance. It joins forms (validation), documents ([`RecordDoc`]) and storage
//! ([`DocStore`]), and owns the rules of docs/DESIGN.md §4: drafts may be incomplete but
//! never ill-typed, and only complete, valid records leave the draft state.
//!
//! Every write loads the document, applies the edit, and stores the change as an
//! incremental chunk together with a fresh JSON view and summary, in one durable
//! store write. Reads and lists never load documents: they serve the cached views.

use crate::blobs::BlobHash;
use crate::record::{ConflictValue, DocError, HistoryEntry, RecordDoc, RecordMeta, Status};
use crate::store::{
    Commit, DocStore, DocWrite, RecordWrite, StateWrite, StoreError, StoredDoc, Summary,
};
use automerge::{sync, ActorId, Change, ChangeHash};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;
use tideline_schemas::{validate, Form, FormRegistry, RecordId, Violation};

/// Compaction thresholds: a document's incremental chunks are folded into a new
/// snapshot once there are more than [`MAX_CHUNKS`] of them or they outweigh the
/// snapshot itself. Chunks make small edits cheap to write; the snapshot keeps
/// loads fast and storage compact (a snapshot is far smaller than its changes).
pub const MAX_CHUNKS: usize = 16;

/// The largest page a list may ask for.
pub const MAX_LIMIT: usize = 10_000;
/// The page size when a list names none.
pub const DEFAULT_LIMIT: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("there is no form called {0:?}")]
    UnknownForm(String),
    #[error("form {form} version {version} is not known on this instance")]
    UnknownFormVersion { form: String, version: u32 },
    #[error("record {0} not found")]
    NotFound(RecordId),
    #[error("the record has {} invalid field(s)", .0.len())]
    Invalid(Vec<Violation>),
    #[error("a record must be complete and valid to be {status}; {} problem(s) remain", .violations.len())]
    Incomplete {
        status: Status,
        violations: Vec<Violation>,
    },
    #[error("a record cannot move from {from} to {to}")]
    Transition { from: Status, to: Status },
    #[error("there is no conflict at {0:?} to resolve")]
    NoConflict(String),
    #[error("the form cannot be published: {0}")]
    InvalidForm(String),
    #[error(
        "version {version} of form {id} is already published with other content; \
         publish the change as the next version"
    )]
    FormVersionTaken { id: String, version: u32 },
    #[error(
        "version {version} of form {id} is older than the latest, {latest}; versions only go up"
    )]
    FormVersionOld {
        id: String,
        version: u32,
        latest: u32,
    },
    #[error("record {0} is outside this peer's scope")]
    Forbidden(RecordId),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Document(#[from] DocError),
}

/// Who this instance is: its device id and the Automerge actor derived from it.
#[derive(Debug, Clone)]
pub struct Identity {
    pub device_id: uuid::Uuid,
    pub actor: ActorId,
}

const DEVICE_ID_KEY: &str = "device_id";

impl Identity {
    /// The instance's identity, created and stored durably on first use. The
    /// actor bytes are the device id, so authorship in a document names the device.
    pub fn load_or_create(store: &dyn DocStore) -> Result<Identity, StoreError> {
        let device_id = match store.get_meta(DEVICE_ID_KEY)? {
            Some(bytes) => uuid::Uuid::from_slice(&bytes)
                .map_err(|_| StoreError::Corrupt("device id".into()))?,
            None => {
                let id = uuid::Uuid::new_v4();
                store.put_meta(DEVICE_ID_KEY, id.as_bytes())?;
                id
            }
        };
        Ok(Identity {
            device_id,
            actor: ActorId::from(*device_id.as_bytes()),
        })
    }
}

/// The JSON view of a record (docs/DESIGN.md §9).
#[derive(Debug, Serialize)]
pub struct RecordView {
    pub id: RecordId,
    pub form: String,
    pub form_version: u32,
    pub station: String,
    pub status: String,
    pub fields: Map<String, Json>,
    pub attachments: Json,
    pub review: Json,
    pub conflicts: BTreeMap<String, Vec<ConflictValue>>,
    pub validation: Vec<Violation>,
    /// The device that created the record...
    pub created_by: String,
    /// ...and the person on it (`user:alice`), when known.
    pub created_by_person: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Which records a list or export covers.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub form: Option<String>,
    pub station: Option<String>,
    pub status: Option<Status>,
    /// Text some text value of the record contains, ignoring case: vessel
    /// name, registration, findings, and inside repeats and lists too (crew
    /// names, evidence tags, officers).
    pub text: Option<String>,
    /// Created at or after this time, and before that one: RFC 3339 UTC or a
    /// prefix of it (`2026-11-20`), compared with `created_at` as text.
    pub created_since: Option<String>,
    pub created_before: Option<String>,
}

impl Filter {
    fn matches(&self, s: &Summary) -> bool {
        self.form.as_ref().is_none_or(|f| *f == s.form)
            && self.station.as_ref().is_none_or(|st| *st == s.station)
            && self.status.is_none_or(|st| st.as_str() == s.status)
    }

    /// Whether matching needs the record's view, not only its summary.
    fn needs_view(&self) -> bool {
        self.text.is_some() || self.created_since.is_some() || self.created_before.is_some()
    }

    fn matches_view(&self, view: &RawValue) -> bool {
        #[derive(serde::Deserialize)]
        struct Searchable {
            created_at: String,
            #[serde(default)]
            fields: Map<String, Json>,
        }
        let Ok(v) = serde_json::from_str::<Searchable>(view.get()) else {
            return false;
        };
        if self
            .created_since
            .as_deref()
            .is_some_and(|since| v.created_at.as_str() < since)
            || self
                .created_before
                .as_deref()
                .is_some_and(|before| v.created_at.as_str() >= before)
        {
            return false;
        }
        match &self.text {
            None => true,
            Some(needle) => {
                let needle = needle.to_lowercase();
                v.fields.values().any(|value| contains_text(value, &needle))
            }
        }
    }
}

/// Whether any string in `value`, however deep in lists and objects,
/// contains `needle` (already lower case).
fn contains_text(value: &Json, needle: &str) -> bool {
    match value {
        Json::String(text) => text.to_lowercase().contains(needle),
        Json::Array(items) => items.iter().any(|v| contains_text(v, needle)),
        Json::Object(map) => map.values().any(|v| contains_text(v, needle)),
        _ => false,
    }
}

/// One page of a list: cached views, newest first, and how many records match.
pub struct Page {
    pub records: Vec<Box<RawValue>>,
    pub total: usize,
}

/// An edit of a record: fields to set (null clears) and/or a new status.
#[derive(Debug, Clone, Default)]
pub struct Patch {
    pub fields: Option<Map<String, Json>>,
    pub status: Option<Status>,
}

/// A record's changes as received from a peer.
pub struct RemoteDoc {
    pub id: RecordId,
    pub changes: Vec<Change>,
}

/// What became of one [`RemoteDoc`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteResult {
    /// Stored (it changed the record, or created it).
    Applied,
    /// Nothing new: every change was already here.
    Unchanged,
    /// Some changes depend on changes this instance does not have; nothing was stored.
    MissingDeps,
    /// The sender may not write this record; nothing was stored.
    Forbidden,
    /// Not decodable, or not a record; nothing was stored.
    Invalid(String),
}

pub struct Records<S: DocStore> {
    store: S,
    /// Replaced whole when a form version is published, so readers keep a
    /// consistent registry for as long as they hold it.
    forms: std::sync::RwLock<std::sync::Arc<FormRegistry>>,
    identity: Identity,
    station: String,
    /// Edits are load-modify-store; one writer at a time keeps them from losing
    /// each other's changes.
    write_lock: Mutex<()>,
}

/// A change's message: what was done, and by whom when a person did it
/// (`edit by user:alice`); `RecordDoc::history` splits it again.
fn message(what: &str, by: Option<&str>) -> String {
    match by {
        Some(who) => format!("{what} by {who}"),
        None => what.to_string(),
    }
}

/// State keys of published forms: `forms/<id>/<version, 10 digits>`.
const PUBLISHED: &[u8] = b"forms/";

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Whether a record may move between two statuses. Forward through review, or
/// one step back (a supervisor returning a report for correction, or reopening).
pub fn transition_allowed(from: Status, to: Status) -> bool {
    use Status::*;
    from == to
        || matches!(
            (from, to),
            (Draft, Submitted)
                | (Submitted, Draft)
                | (Submitted, Reviewed)
                | (Reviewed, Submitted)
                | (Reviewed, Closed)
                | (Closed, Reviewed)
        )
}

impl<S: DocStore> Records<S> {
    pub fn open(store: S, mut forms: FormRegistry, station: &str) -> Result<Self, StoreError> {
        let identity = Identity::load_or_create(&store)?;
        // Versions published here or received by sync, beside the built-in ones.
        for (key, json) in store.scan_state(PUBLISHED)? {
            match std::str::from_utf8(&json)
                .map_err(|e| e.to_string())
                .and_then(|j| Form::parse(j).map_err(|e| e.to_string()))
            {
                Ok(form) => {
                    if forms.get(&form.id, form.version).is_none() {
                        let _ = forms.insert(form);
                    }
                }
                Err(e) => tracing::warn!(
                    key = %String::from_utf8_lossy(&key),
                    error = %e,
                    "a stored form could not be read; skipped"
                ),
            }
        }
        Ok(Records {
            store,
            forms: std::sync::RwLock::new(std::sync::Arc::new(forms)),
            identity,
            station: station.to_string(),
            write_lock: Mutex::new(()),
        })
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// The forms as they are now (a later publication does not change them).
    pub fn forms(&self) -> std::sync::Arc<FormRegistry> {
        self.forms.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every (form, version) known here.
    pub fn form_versions(&self) -> Vec<(String, u32)> {
        let forms = self.forms();
        forms
            .list_latest()
            .iter()
            .flat_map(|f| forms.versions(&f.id))
            .map(|f| (f.id.clone(), f.version))
            .collect()
    }

    /// Publish a new version of a form (its JSON definition), durably: new
    /// records use it; records made with an earlier version keep theirs.
    /// The same version published again with the same content is accepted
    /// (sync delivers forms more than once); any other reuse of a version
    /// number, or a version below the latest, is refused. Returns the form
    /// and whether it was new here.
    pub fn publish_form(&self, json: &str) -> Result<(Form, bool), RecordsError> {
        let form = Form::parse(json).map_err(|e| RecordsError::InvalidForm(e.to_string()))?;
        let mut current = self.forms.write().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = current.get(&form.id, form.version) {
            if *existing == form {
                return Ok((form, false));
            }
            return Err(RecordsError::FormVersionTaken {
                id: form.id,
                version: form.version,
            });
        }
        if let Some(latest) = current.latest(&form.id) {
            if latest.version > form.version {
                return Err(RecordsError::FormVersionOld {
                    id: form.id,
                    version: form.version,
                    latest: latest.version,
                });
            }
        }
        let stored = serde_json::to_vec(&form).map_err(|e| StoreError::Io(e.to_string()))?;
        let key = [
            PUBLISHED,
            form.id.as_bytes(),
            b"/",
            format!("{:010}", form.version).as_bytes(),
        ]
        .concat();
        self.store.commit(crate::store::Commit {
            records: Vec::new(),
            state: vec![crate::store::StateWrite {
                key,
                value: Some(stored),
            }],
        })?;
        let mut next = FormRegistry::clone(&current);
        next.insert(form.clone())
            .map_err(|e| RecordsError::InvalidForm(e.to_string()))?;
        *current = std::sync::Arc::new(next);
        Ok((form, true))
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn station(&self) -> &str {
        &self.station
    }

    /// Create a draft record of the latest version of `form_id`. Refuses type and
    /// constraint errors; missing required fields are only reported in the view.
    pub fn create(
        &self,
        form_id: &str,
        fields: &Map<String, Json>,
    ) -> Result<Box<RawValue>, RecordsError> {
        self.create_by(form_id, fields, None)
    }

    /// [`Records::create`], naming the person (`user:alice`) in the change,
    /// so the record's history can say who did it.
    pub fn create_by(
        &self,
        form_id: &str,
        fields: &Map<String, Json>,
        by: Option<&str>,
    ) -> Result<Box<RawValue>, RecordsError> {
        let forms = self.forms();
        let form = forms
            .latest(form_id)
            .ok_or_else(|| RecordsError::UnknownForm(form_id.to_string()))?;
        let blocking: Vec<Violation> = validate(form, fields)
            .into_iter()
            .filter(Violation::blocks_draft)
            .collect();
        if !blocking.is_empty() {
            return Err(RecordsError::Invalid(blocking));
        }
        let meta = RecordMeta::new(
            RecordId::new(),
            form,
            &self.station,
            &self.identity.device_id.to_string(),
        )
        .by(by);
        let mut doc = RecordDoc::create_with(
            self.identity.actor.clone(),
            &meta,
            form,
            fields,
            now_secs(),
            &message("create", by),
        )?;
        let snapshot = doc.save();
        let _guard = self.lock();
        self.store_doc(&mut doc, Some(form), DocWrite::Replace(snapshot))
    }

    /// Apply an edit. Refuses type and constraint errors the edit would introduce,
    /// transitions the workflow does not allow, and leaving the draft state (or
    /// editing a record that has left it) unless the result is complete and valid.
    pub fn patch(&self, id: &RecordId, patch: &Patch) -> Result<Box<RawValue>, RecordsError> {
        self.patch_by(id, patch, None)
    }

    /// [`Records::patch`], naming the person in the change.
    pub fn patch_by(
        &self,
        id: &RecordId,
        patch: &Patch,
        by: Option<&str>,
    ) -> Result<Box<RawValue>, RecordsError> {
        let _guard = self.lock();
        let stored = self.store.load(id)?.ok_or(RecordsError::NotFound(*id))?;
        let mut doc = self.load_doc(&stored)?;
        let meta = doc.meta()?;
        let forms = self.forms();
        let form = Self::form_of(&forms, &meta)?;
        let from = doc.status().unwrap_or(Status::Draft);
        let to = patch.status.unwrap_or(from);
        if !transition_allowed(from, to) {
            return Err(RecordsError::Transition { from, to });
        }

        let before = doc.fields();
        let mut after = before.clone();
        if let Some(fields) = &patch.fields {
            for (k, v) in fields {
                if v.is_null() {
                    after.remove(k);
                } else {
                    after.insert(k.clone(), v.clone());
                }
            }
        }
        let violations = validate(form, &after);
        let introduced = introduced_violations(form, &before, &violations);
        if !introduced.is_empty() {
            return Err(RecordsError::Invalid(introduced));
        }
        let changes_fields = after != before;
        if to != Status::Draft && (to != from || changes_fields) && !violations.is_empty() {
            return Err(RecordsError::Incomplete {
                status: to,
                violations,
            });
        }

        let heads = doc.heads();
        if let Some(fields) = &patch.fields {
            doc.update_fields(form, fields)?;
        }
        doc.set_status(to)?;
        if doc.commit(&message("edit", by), now_secs()).is_none() {
            // Nothing changed: acknowledge without a write or a feed entry.
            return self.view_of(id);
        }
        let chunk = doc.save_after(&heads);
        let write = if stored.chunks.len() >= MAX_CHUNKS
            || stored.chunk_bytes() + chunk.len() > stored.snapshot.len()
        {
            DocWrite::Replace(doc.save())
        } else {
            DocWrite::Append(chunk)
        };
        self.store_doc(&mut doc, Some(form), write)
    }

    /// Attach a stored file to a record: append it to `attachments` (once per
    /// hash) and, when `field` names an image field of the record's form, put
    /// its hash there too (appended when the field takes several).
    pub fn add_attachment(
        &self,
        id: &RecordId,
        attachment: &Attachment,
        field: Option<&str>,
    ) -> Result<Box<RawValue>, RecordsError> {
        self.add_attachment_by(id, attachment, field, None)
    }

    /// [`Records::add_attachment`], naming the person in the change.
    pub fn add_attachment_by(
        &self,
        id: &RecordId,
        attachment: &Attachment,
        field: Option<&str>,
        by: Option<&str>,
    ) -> Result<Box<RawValue>, RecordsError> {
        let _guard = self.lock();
        let stored = self.store.load(id)?.ok_or(RecordsError::NotFound(*id))?;
        let mut doc = self.load_doc(&stored)?;
        let meta = doc.meta()?;
        let forms = self.forms();
        let form = Self::form_of(&forms, &meta)?;
        let hash = attachment.sha256.to_hex();
        let mut fields_patch = Map::new();
        if let Some(name) = field {
            let target = image_field(form, name)?;
            let value = if target.multiple {
                let mut list = doc
                    .fields()
                    .get(name)
                    .and_then(Json::as_array)
                    .cloned()
                    .unwrap_or_default();
                if !list.iter().any(|v| v.as_str() == Some(hash.as_str())) {
                    list.push(Json::String(hash.clone()));
                }
                Json::Array(list)
            } else {
                Json::String(hash.clone())
            };
            fields_patch.insert(name.to_string(), value);
        }
        let heads = doc.heads();
        if !fields_patch.is_empty() {
            doc.update_fields(form, &fields_patch)?;
        }
        let listed = doc.attachments().as_array().is_some_and(|list| {
            list.iter()
                .any(|a| a["sha256"].as_str() == Some(hash.as_str()))
        });
        if !listed {
            let entry =
                serde_json::to_value(attachment).map_err(|e| StoreError::Io(e.to_string()))?;
            doc.add_attachment(&entry)?;
        }
        if doc.commit(&message("attach", by), now_secs()).is_none() {
            return self.view_of(id);
        }
        let write = DocWrite::Append(doc.save_after(&heads));
        self.store_doc(&mut doc, Some(form), write)
    }

    /// Append a review comment by `by` (`user:alice`) to a record.
    pub fn add_review(
        &self,
        id: &RecordId,
        by: &str,
        comment: &str,
    ) -> Result<Box<RawValue>, RecordsError> {
        let _guard = self.lock();
        let stored = self.store.load(id)?.ok_or(RecordsError::NotFound(*id))?;
        let mut doc = self.load_doc(&stored)?;
        let meta = doc.meta()?;
        let forms = self.forms();
        let form = forms.get(&meta.form, meta.form_version);
        let heads = doc.heads();
        let now = now_secs();
        doc.add_review(&serde_json::json!({ "by": by, "at": rfc3339(now), "comment": comment }))?;
        doc.commit(&message("review", Some(by)), now);
        let chunk = doc.save_after(&heads);
        self.store_doc(&mut doc, form, DocWrite::Append(chunk))
    }

    /// Check the whole store: every record's document loads, its summary's
    /// heads and cached view agree with it, and the change feed names each
    /// record exactly once and nothing else. Returns the records checked and
    /// one sentence per problem found; repairs nothing.
    pub fn check(&self) -> Result<(usize, Vec<String>), RecordsError> {
        let mut problems = Vec::new();
        let mut in_feed: BTreeMap<RecordId, usize> = BTreeMap::new();
        for entry in self.store.changes_since(0, usize::MAX)? {
            *in_feed.entry(entry.id).or_default() += 1;
        }
        let mut summaries = Vec::new();
        self.store.scan_summaries(&mut |id, summary| {
            summaries.push((id, summary));
            true
        })?;
        for (id, summary) in &summaries {
            match in_feed.remove(id) {
                Some(1) => {}
                Some(n) => problems.push(format!("record {id}: {n} entries in the change feed")),
                None => problems.push(format!("record {id}: missing from the change feed")),
            }
            let Some(stored) = self.store.load(id)? else {
                problems.push(format!("record {id}: its summary has no document"));
                continue;
            };
            // A damaged document must be reported, not take the check down.
            let loaded = catch_unwind(AssertUnwindSafe(|| self.load_doc(&stored)));
            let mut doc = match loaded {
                Ok(Ok(doc)) => doc,
                Ok(Err(e)) => {
                    problems.push(format!("record {id}: the document does not load ({e})"));
                    continue;
                }
                Err(_) => {
                    problems.push(format!(
                        "record {id}: the document does not load (decoder panic)"
                    ));
                    continue;
                }
            };
            let mut heads = doc.heads();
            heads.sort();
            let mut listed = summary.change_hashes();
            listed.sort();
            if heads != listed {
                problems.push(format!(
                    "record {id}: the summary's heads differ from the document's"
                ));
            }
            match self.store.view(id)? {
                Some(v) if serde_json::from_slice::<Json>(&v).is_ok() => {}
                Some(_) => problems.push(format!("record {id}: the cached view is not JSON")),
                None => problems.push(format!("record {id}: no cached view")),
            }
        }
        for id in in_feed.keys() {
            problems.push(format!(
                "the change feed names record {id}, which is not stored"
            ));
        }
        Ok((summaries.len(), problems))
    }

    /// Every change of one record, oldest first (`RecordDoc::history`).
    pub fn history(&self, id: &RecordId) -> Result<Vec<HistoryEntry>, RecordsError> {
        let stored = self.store.load(id)?.ok_or(RecordsError::NotFound(*id))?;
        let mut doc = self.load_doc(&stored)?;
        Ok(doc.history())
    }

    /// Every attachment file referenced by a record of one of `forms` (of
    /// any form when None), from the summaries.
    pub fn referenced_files(
        &self,
        forms: Option<&[String]>,
    ) -> Result<std::collections::BTreeSet<BlobHash>, RecordsError> {
        let mut files = std::collections::BTreeSet::new();
        self.store.scan_summaries(&mut |_, s| {
            if forms.is_none_or(|forms| forms.contains(&s.form)) {
                files.extend(s.attachments.iter().copied().map(BlobHash::from));
            }
            true
        })?;
        Ok(files)
    }

    /// Whether a record of `station` (of any station when None) references
    /// the file `hash`; this decides who may read or upload it.
    pub fn references(&self, hash: &BlobHash, station: Option<&str>) -> Result<bool, RecordsError> {
        let mut found = false;
        self.store.scan_summaries(&mut |_, s| {
            found = s.attachments.contains(hash.as_bytes())
                && station.is_none_or(|own| own == s.station);
            !found
        })?;
        Ok(found)
    }

    /// Check, before a file is stored for it, that `field` (if any) is an
    /// image field of the record's form.
    pub fn check_image_field(
        &self,
        id: &RecordId,
        field: Option<&str>,
    ) -> Result<(), RecordsError> {
        let Some(name) = field else {
            return Ok(());
        };
        let stored = self.store.load(id)?.ok_or(RecordsError::NotFound(*id))?;
        let meta = self.load_doc(&stored)?.meta()?;
        let forms = self.forms();
        let form = Self::form_of(&forms, &meta)?;
        image_field(form, name).map(|_| ())
    }

    /// The cached JSON view of one record.
    pub fn get(&self, id: &RecordId) -> Result<Box<RawValue>, RecordsError> {
        self.view_of(id)
    }

    /// The record's whole Automerge document, compacted into one file.
    pub fn automerge_bytes(&self, id: &RecordId) -> Result<Vec<u8>, RecordsError> {
        let stored = self.store.load(id)?.ok_or(RecordsError::NotFound(*id))?;
        Ok(self.load_doc(&stored)?.save())
    }

    /// A page of records matching `filter`, newest first.
    pub fn list(&self, filter: &Filter, limit: usize, offset: usize) -> Result<Page, RecordsError> {
        let limit = limit.min(MAX_LIMIT);
        let mut total = 0usize;
        let mut ids = Vec::new();
        if filter.needs_view() {
            // Every candidate's view is read to count the matches.
            let mut candidates = Vec::new();
            self.store.scan_summaries(&mut |id, summary| {
                if filter.matches(&summary) {
                    candidates.push(id);
                }
                true
            })?;
            let mut records = Vec::new();
            for id in candidates {
                let view = self.view_of(&id)?;
                if filter.matches_view(&view) {
                    if total >= offset && records.len() < limit {
                        records.push(view);
                    }
                    total += 1;
                }
            }
            return Ok(Page { records, total });
        }
        self.store.scan_summaries(&mut |id, summary| {
            if filter.matches(&summary) {
                if total >= offset && ids.len() < limit {
                    ids.push(id);
                }
                total += 1;
            }
            true
        })?;
        let records = ids
            .iter()
            .map(|id| self.view_of(id))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page { records, total })
    }

    /// Visit every matching record's view, newest first, without holding them all.
    pub fn for_each<E: From<RecordsError>>(
        &self,
        filter: &Filter,
        mut visit: impl FnMut(Box<RawValue>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut ids = Vec::new();
        self.store
            .scan_summaries(&mut |id, summary| {
                if filter.matches(&summary) {
                    ids.push(id);
                }
                true
            })
            .map_err(RecordsError::from)?;
        for id in ids {
            let view = self.view_of(&id)?;
            if !filter.needs_view() || filter.matches_view(&view) {
                visit(view)?;
            }
        }
        Ok(())
    }

    /// Write `value` at a conflicted `path` (`outcome`, `crew[0].name`), which
    /// resolves the conflict for everyone once it syncs.
    pub fn resolve(
        &self,
        id: &RecordId,
        path: &str,
        value: &Json,
    ) -> Result<Box<RawValue>, RecordsError> {
        self.resolve_by(id, path, value, None)
    }

    /// [`Records::resolve`], naming the person in the change.
    pub fn resolve_by(
        &self,
        id: &RecordId,
        path: &str,
        value: &Json,
        by: Option<&str>,
    ) -> Result<Box<RawValue>, RecordsError> {
        let _guard = self.lock();
        let stored = self.store.load(id)?.ok_or(RecordsError::NotFound(*id))?;
        let mut doc = self.load_doc(&stored)?;
        if !doc.conflicts().contains_key(path) {
            return Err(RecordsError::NoConflict(path.to_string()));
        }
        let meta = doc.meta()?;
        let forms = self.forms();
        let form = forms.get(&meta.form, meta.form_version);
        let before = doc.fields();
        let heads = doc.heads();
        doc.resolve_with(form, path, value)?;
        if let Some(form) = form {
            let introduced = introduced_violations(form, &before, &validate(form, &doc.fields()));
            if !introduced.is_empty() {
                return Err(RecordsError::Invalid(introduced));
            }
        }
        doc.commit(&message("resolve", by), now_secs());
        let chunk = doc.save_after(&heads);
        self.store_doc(&mut doc, form, DocWrite::Append(chunk))
    }

    /// The changes of a record not covered by `heads`, or None if the record is unknown.
    pub fn changes_since(
        &self,
        id: &RecordId,
        heads: &[ChangeHash],
    ) -> Result<Option<Vec<Change>>, RecordsError> {
        let Some(stored) = self.store.load(id)? else {
            return Ok(None);
        };
        Ok(Some(self.load_doc(&stored)?.changes_since(heads)))
    }

    /// Whether this instance already has every one of `hashes` in the record
    /// (false when the record is unknown).
    pub fn has_changes(&self, id: &RecordId, hashes: &[ChangeHash]) -> Result<bool, RecordsError> {
        let Some(stored) = self.store.load(id)? else {
            return Ok(hashes.is_empty());
        };
        let mut doc = self.load_doc(&stored)?;
        Ok(hashes.iter().all(|h| doc.has_change(h)))
    }

    /// Apply records received from a peer and commit them, with the state writes
    /// `finish` derives from the outcomes, in one durable commit. Records are
    /// never refused for failing validation (they are stored and flagged in
    /// their view); they are refused when `allowed` rejects their meta, when
    /// their dependencies are missing, or when they are not records at all.
    pub fn apply_remote(
        &self,
        docs: Vec<RemoteDoc>,
        allowed: impl Fn(&RecordMeta) -> bool,
        finish: impl FnOnce(&[(RecordId, RemoteResult)]) -> Vec<StateWrite>,
    ) -> Result<Vec<(RecordId, RemoteResult)>, RecordsError> {
        let _guard = self.lock();
        let mut results = Vec::with_capacity(docs.len());
        let mut writes = Vec::new();
        for RemoteDoc { id, changes } in docs {
            let result = match self.merge_remote(&id, changes, &allowed)? {
                Merged::Write(w) => {
                    writes.push(*w);
                    RemoteResult::Applied
                }
                Merged::Result(r) => r,
            };
            results.push((id, result));
        }
        let state = finish(&results);
        if !writes.is_empty() || !state.is_empty() {
            self.store.commit(Commit {
                records: writes,
                state,
            })?;
        } else {
            // Nothing new to write, but what is acknowledged as already here
            // must be durable too, even if an earlier flush failed.
            self.store.ensure_durable()?;
        }
        Ok(results)
    }

    fn merge_remote(
        &self,
        id: &RecordId,
        changes: Vec<Change>,
        allowed: &impl Fn(&RecordMeta) -> bool,
    ) -> Result<Merged, RecordsError> {
        let stored = self.store.load(id)?;
        let mut doc = match &stored {
            Some(stored) => self.load_doc(stored)?,
            None => RecordDoc::empty(self.identity.actor.clone()),
        };
        if let Some(meta) = stored.as_ref().and_then(|_| doc.meta().ok()) {
            if !allowed(&meta) {
                return Ok(Merged::Result(RemoteResult::Forbidden));
            }
        }
        let heads = doc.heads();
        // Automerge's decoder and op application have panicked on hostile input
        // before; a panic here refuses this record instead of the whole server.
        let applied = catch_unwind(AssertUnwindSafe(|| {
            doc.apply_changes(changes)?;
            Ok::<_, DocError>(doc.missing_deps())
        }));
        let missing = match applied {
            Ok(Ok(missing)) => missing,
            Ok(Err(e)) => return Ok(Merged::Result(RemoteResult::Invalid(e.to_string()))),
            Err(_) => {
                return Ok(Merged::Result(RemoteResult::Invalid(
                    "the changes could not be applied".into(),
                )))
            }
        };
        if !missing.is_empty() {
            return Ok(Merged::Result(RemoteResult::MissingDeps));
        }
        if doc.heads() == heads {
            return Ok(Merged::Result(RemoteResult::Unchanged));
        }
        self.finish_remote(id, doc, stored.as_ref(), &heads, allowed)
    }

    fn finish_remote(
        &self,
        id: &RecordId,
        mut doc: RecordDoc,
        stored: Option<&StoredDoc>,
        heads_before: &[ChangeHash],
        allowed: &impl Fn(&RecordMeta) -> bool,
    ) -> Result<Merged, RecordsError> {
        let meta = match doc.meta() {
            Ok(meta) if doc.has_record_layout() && meta.id == *id => meta,
            _ => {
                return Ok(Merged::Result(RemoteResult::Invalid(
                    "the changes do not form this record".into(),
                )))
            }
        };
        if !allowed(&meta) {
            return Ok(Merged::Result(RemoteResult::Forbidden));
        }
        let forms = self.forms();
        let form = forms.get(&meta.form, meta.form_version);
        let write = match stored {
            Some(stored) => {
                let chunk = doc.save_after(heads_before);
                if stored.chunks.len() >= MAX_CHUNKS
                    || stored.chunk_bytes() + chunk.len() > stored.snapshot.len()
                {
                    DocWrite::Replace(doc.save())
                } else {
                    DocWrite::Append(chunk)
                }
            }
            None => DocWrite::Replace(doc.save()),
        };
        Ok(Merged::Write(Box::new(
            self.record_write(&mut doc, form, write)?,
        )))
    }

    /// One step of Automerge's sync protocol for a record whose heads show
    /// missing dependencies: take in the peer's message (if any), store what it
    /// brought, and return the reply to send (None when nothing is left to say).
    pub fn fallback_step(
        &self,
        id: &RecordId,
        state: &mut sync::State,
        incoming: Option<&[u8]>,
        allowed: impl Fn(&RecordMeta) -> bool,
        may_author: &dyn Fn(&ActorId) -> bool,
    ) -> Result<Option<Vec<u8>>, RecordsError> {
        let _guard = self.lock();
        let stored = self.store.load(id)?;
        let mut doc = match &stored {
            Some(stored) => self.load_doc(stored)?,
            None => RecordDoc::empty(self.identity.actor.clone()),
        };
        // Scope first: a repair must not become a way to read another station's records.
        if stored.is_some() {
            let meta = doc.meta()?;
            if !allowed(&meta) {
                return Err(RecordsError::Forbidden(*id));
            }
        }
        let heads = doc.heads();
        if let Some(message) = incoming {
            let received = catch_unwind(AssertUnwindSafe(|| {
                doc.receive_sync_message(state, message)
            }));
            match received {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(RecordsError::Document(e)),
                Err(_) => {
                    return Err(RecordsError::Document(DocError::Decode(
                        "the sync message could not be applied".into(),
                    )))
                }
            }
            // What the message brought is checked before any of it is stored.
            if doc
                .changes_since(&heads)
                .iter()
                .any(|c| !may_author(c.actor_id()))
            {
                return Err(RecordsError::Forbidden(*id));
            }
            if doc.heads() != heads && doc.missing_deps().is_empty() {
                match self.finish_remote(
                    id,
                    doc.fork(self.identity.actor.clone()),
                    stored.as_ref(),
                    &heads,
                    &allowed,
                )? {
                    Merged::Write(w) => {
                        self.store.commit(Commit {
                            records: vec![*w],
                            state: Vec::new(),
                        })?;
                    }
                    Merged::Result(RemoteResult::Forbidden) => {
                        return Err(RecordsError::Forbidden(*id))
                    }
                    Merged::Result(r) => {
                        return Err(RecordsError::Document(DocError::Layout(format!(
                            "fallback for {id} refused: {r:?}"
                        ))))
                    }
                }
            }
        }
        // What this step tells the peer it has must be on disk, even when the
        // step itself wrote nothing and an earlier flush failed.
        self.store.ensure_durable()?;
        Ok(doc.generate_sync_message(state))
    }

    /// The form version a record was made with; editing needs it.
    fn form_of<'f>(forms: &'f FormRegistry, meta: &RecordMeta) -> Result<&'f Form, RecordsError> {
        forms
            .get(&meta.form, meta.form_version)
            .ok_or_else(|| RecordsError::UnknownFormVersion {
                form: meta.form.clone(),
                version: meta.form_version,
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn load_doc(&self, stored: &StoredDoc) -> Result<RecordDoc, RecordsError> {
        Ok(RecordDoc::load(
            &stored.snapshot,
            &stored.chunks,
            self.identity.actor.clone(),
        )?)
    }

    fn view_of(&self, id: &RecordId) -> Result<Box<RawValue>, RecordsError> {
        let bytes = self.store.view(id)?.ok_or(RecordsError::NotFound(*id))?;
        let text = String::from_utf8(bytes).map_err(|_| StoreError::Corrupt("view".into()))?;
        RawValue::from_string(text)
            .map_err(|e| RecordsError::Store(StoreError::Corrupt(format!("view: {e}"))))
    }

    fn record_write(
        &self,
        doc: &mut RecordDoc,
        form: Option<&Form>,
        write: DocWrite,
    ) -> Result<RecordWrite, RecordsError> {
        let view = build_view(doc, form)?;
        let summary = Summary {
            form: view.form.clone(),
            station: view.station.clone(),
            status: view.status.clone(),
            heads: doc.heads().iter().map(|h| h.0).collect(),
            attachments: attachment_hashes(&view.attachments),
        };
        let json = serde_json::to_vec(&view).map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(RecordWrite {
            id: view.id,
            doc: write,
            view: json,
            summary,
        })
    }

    fn store_doc(
        &self,
        doc: &mut RecordDoc,
        form: Option<&Form>,
        write: DocWrite,
    ) -> Result<Box<RawValue>, RecordsError> {
        let write = self.record_write(doc, form, write)?;
        let json =
            String::from_utf8(write.view.clone()).map_err(|e| StoreError::Io(e.to_string()))?;
        self.store.write(write)?;
        RawValue::from_string(json).map_err(|e| RecordsError::Store(StoreError::Io(e.to_string())))
    }
}

/// The hashes an `attachments` list references (entries without a valid one
/// are ignored: a peer's malformed entry cannot grant access to anything).
fn attachment_hashes(list: &Json) -> Vec<[u8; 32]> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["sha256"].as_str()?.parse::<BlobHash>().ok())
        .map(|h| *h.as_bytes())
        .collect()
}

fn image_field<'f>(
    form: &'f Form,
    name: &str,
) -> Result<&'f tideline_schemas::Field, RecordsError> {
    form.fields
        .iter()
        .find(|f| f.name == name && f.field_type == tideline_schemas::FieldType::Image)
        .ok_or_else(|| {
            RecordsError::Invalid(vec![Violation {
                path: name.to_string(),
                kind: tideline_schemas::ViolationKind::Unknown,
                message: format!("{name:?} is not an image field of this form."),
            }])
        })
}

/// A file attached to a record, as its `attachments` list holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub sha256: BlobHash,
    pub name: String,
    pub mime: String,
    pub size: u64,
}

enum Merged {
    Write(Box<RecordWrite>),
    Result(RemoteResult),
}

/// The draft-blocking violations in `after` that the record did not already
/// have. Records that arrived by sync may already be invalid; an edit is
/// refused only for the problems it introduces, so people can fix one thing at
/// a time. The old fields are validated only when there is something to compare.
fn introduced_violations(
    form: &Form,
    before: &Map<String, Json>,
    after: &[Violation],
) -> Vec<Violation> {
    if !after.iter().any(Violation::blocks_draft) {
        return Vec::new();
    }
    let known: HashSet<(String, String)> = validate(form, before)
        .into_iter()
        .map(|v| (v.path, v.message))
        .collect();
    after
        .iter()
        .filter(|v| v.blocks_draft() && !known.contains(&(v.path.clone(), v.message.clone())))
        .cloned()
        .collect()
}

/// Build a record's view. Without its form (a version this instance has not
/// received) the record is still shown, flagged as unvalidated.
pub fn build_view(doc: &mut RecordDoc, form: Option<&Form>) -> Result<RecordView, DocError> {
    let meta = doc.meta()?;
    let (fields, conflicts) = doc.fields_and_conflicts();
    let validation = match form {
        Some(form) => validate(form, &fields),
        None => vec![Violation {
            path: String::new(),
            kind: tideline_schemas::ViolationKind::Unknown,
            message: format!(
                "Form {} version {} is not known here; the record was not validated.",
                meta.form, meta.form_version
            ),
        }],
    };
    let updated_at = doc
        .updated_at()
        .map(rfc3339)
        .unwrap_or_else(|| meta.created_at.clone());
    Ok(RecordView {
        id: meta.id,
        form: meta.form,
        form_version: meta.form_version,
        station: meta.station,
        status: doc.status().unwrap_or(Status::Draft).as_str().to_string(),
        fields,
        attachments: doc.attachments(),
        review: doc.review(),
        conflicts,
        validation,
        created_by: meta.created_by,
        created_by_person: meta.created_by_person,
        created_at: meta.created_at,
        updated_at,
    })
}

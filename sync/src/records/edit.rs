//! Writing records on this instance. Every local write — create, patch,
//! attach, review, resolve — takes the one path of [`Records::write`]: open
//! the record (or start it), check the author's scope and the record's form,
//! apply the edit, validate once, decide compaction, commit. It owns the
//! rules of docs/DESIGN.md §4: drafts may be incomplete but never ill-typed,
//! and only complete, valid records leave the draft state.

use crate::blobs::BlobHash;
use crate::record::{change_message, RecordDoc, RecordMeta, Status};
use crate::records::cache::Opened;
use crate::records::service::{now_secs, Records, RecordsError};
use crate::records::stored::{doc_write, record_write, rfc3339, Content};
use crate::store::{DocStore, StoreError, StoredDoc};
use automerge::ChangeHash;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value as Json};
use std::collections::HashSet;
use tideline_schemas::{validate, Field, FieldType, Form, RecordId, Violation, ViolationKind};

/// Who is writing: named in the record's history, and limited to their scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author<'a> {
    /// The instance itself (the command line, tools): it names nobody and
    /// may write every record stored here.
    Instance,
    /// A person signed in here (`user:alice`), named in every change they
    /// make; when `station` is given, only that station's records are theirs.
    Person {
        name: &'a str,
        station: Option<&'a str>,
    },
}

impl<'a> Author<'a> {
    pub fn person(name: &'a str, station: Option<&'a str>) -> Self {
        Author::Person { name, station }
    }

    /// The person writing, if a person is.
    pub fn name(&self) -> Option<&'a str> {
        match self {
            Author::Instance => None,
            Author::Person { name, .. } => Some(name),
        }
    }

    fn may_write(&self, station: &str) -> bool {
        match self {
            Author::Instance | Author::Person { station: None, .. } => true,
            Author::Person {
                station: Some(own), ..
            } => *own == station,
        }
    }
}

/// What a write returns: the record's id and its view after the write.
#[derive(Debug)]
pub struct Written {
    pub id: RecordId,
    pub view: Box<RawValue>,
}

/// An edit of a record: fields to set (null clears) and/or a new status.
#[derive(Debug, Clone, Default)]
pub struct Patch {
    pub fields: Option<Map<String, Json>>,
    pub status: Option<Status>,
}

/// A file attached to a record, as its `attachments` list holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub sha256: BlobHash,
    pub name: String,
    pub mime: String,
    pub size: u64,
}

/// A phone's submission (ODK Collect) as a new record: its id chosen before
/// the write (so a resend after a lost answer finds it), the form version the
/// phone filled, its answers, the files it sent, and its ODK instance id.
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    pub id: RecordId,
    pub form: &'a str,
    pub version: u32,
    pub fields: &'a Map<String, Json>,
    pub attachments: &'a [Attachment],
    pub instance: &'a str,
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

/// One write, as the write path carries it out.
enum Edit<'a> {
    Create {
        form: &'a str,
        fields: &'a Map<String, Json>,
    },
    Patch(&'a RecordId, &'a Patch),
    Submit(Submission<'a>),
    Revise {
        id: &'a RecordId,
        base: &'a [ChangeHash],
        fields: &'a Map<String, Json>,
        attachments: &'a [Attachment],
    },
    Attach {
        id: &'a RecordId,
        attachment: &'a Attachment,
        field: Option<&'a str>,
    },
    Review(&'a RecordId, &'a str),
    Resolve {
        id: &'a RecordId,
        path: &'a str,
        value: &'a Json,
    },
}

impl Edit<'_> {
    /// What the change's message calls it.
    fn what(&self) -> &'static str {
        match self {
            Edit::Create { .. } | Edit::Submit(_) => "create",
            Edit::Patch(..) | Edit::Revise { .. } => "edit",
            Edit::Attach { .. } => "attach",
            Edit::Review(..) => "review",
            Edit::Resolve { .. } => "resolve",
        }
    }

    /// The record written, or None for a new one.
    fn record(&self) -> Option<&RecordId> {
        match self {
            Edit::Create { .. } => None,
            Edit::Submit(s) => Some(&s.id),
            Edit::Patch(id, _) | Edit::Review(id, _) => Some(id),
            Edit::Attach { id, .. } | Edit::Resolve { id, .. } | Edit::Revise { id, .. } => {
                Some(id)
            }
        }
    }

    /// Whether it is a phone's (ODK Collect's) form, sent finished.
    fn is_phones(&self) -> bool {
        matches!(self, Edit::Submit(_) | Edit::Revise { .. })
    }

    /// Edits refused for the problems they introduce compare the fields
    /// before and after; the others do not read them.
    fn compares_fields(&self) -> bool {
        matches!(
            self,
            Edit::Patch(..) | Edit::Resolve { .. } | Edit::Revise { .. }
        )
    }
}

/// The record as it was before the edit.
struct Before {
    /// Whether the edit compares the fields before and after (not for a
    /// new record, nor for edits that are never refused for their content).
    compared: bool,
    status: Status,
    heads: Vec<ChangeHash>,
}

impl Before {
    /// The fields before the edit, read from the edited document at its
    /// earlier heads: only a write whose result has problems needs them,
    /// so most writes never walk the fields twice.
    fn fields(&self, doc: &RecordDoc) -> Option<Map<String, Json>> {
        self.compared.then(|| doc.fields_at(&self.heads))
    }
}

impl<S: DocStore> Records<S> {
    /// Create a draft record of the latest version of `form`. Refuses type and
    /// constraint errors; missing required fields are only reported in the view.
    pub fn create(
        &self,
        author: Author<'_>,
        form: &str,
        fields: &Map<String, Json>,
    ) -> Result<Written, RecordsError> {
        self.write(author, Edit::Create { form, fields })
    }

    /// Apply an edit. Refuses type and constraint errors the edit would introduce,
    /// transitions the workflow does not allow, and leaving the draft state (or
    /// editing a record that has left it) unless the result is complete and valid.
    pub fn patch(
        &self,
        author: Author<'_>,
        id: &RecordId,
        patch: &Patch,
    ) -> Result<Written, RecordsError> {
        self.write(author, Edit::Patch(id, patch))
    }

    /// Store a phone's submission as a new record, with its files in its
    /// `attachments`. It is submitted when it is complete and valid, and a
    /// draft otherwise; type errors refuse it, as for any write.
    pub fn submit(
        &self,
        author: Author<'_>,
        submission: Submission<'_>,
    ) -> Result<Written, RecordsError> {
        self.write(author, Edit::Submit(submission))
    }

    /// Apply a phone's edit of what it submitted: `fields` is the whole new
    /// set of answers, made from the record as it was at `base`; only what
    /// the phone changed is written, concurrently with everything since
    /// (see [`RecordDoc::revise`]), and `attachments` are added.
    pub fn revise(
        &self,
        author: Author<'_>,
        id: &RecordId,
        base: &[ChangeHash],
        fields: &Map<String, Json>,
        attachments: &[Attachment],
    ) -> Result<Written, RecordsError> {
        self.write(
            author,
            Edit::Revise {
                id,
                base,
                fields,
                attachments,
            },
        )
    }

    /// Attach a stored file to a record: append it to `attachments` (once per
    /// hash) and, when `field` names an image field of the record's form, put
    /// its hash there too (appended when the field takes several).
    pub fn attach(
        &self,
        author: Author<'_>,
        id: &RecordId,
        attachment: &Attachment,
        field: Option<&str>,
    ) -> Result<Written, RecordsError> {
        self.write(
            author,
            Edit::Attach {
                id,
                attachment,
                field,
            },
        )
    }

    /// Append a review comment to a record, signed by the author (the
    /// instance signs with its device id).
    pub fn review(
        &self,
        author: Author<'_>,
        id: &RecordId,
        comment: &str,
    ) -> Result<Written, RecordsError> {
        self.write(author, Edit::Review(id, comment))
    }

    /// Write `value` at a conflicted `path` (`outcome`, `crew[0].name`), which
    /// resolves the conflict for everyone once it syncs.
    pub fn resolve(
        &self,
        author: Author<'_>,
        id: &RecordId,
        path: &str,
        value: &Json,
    ) -> Result<Written, RecordsError> {
        self.write(author, Edit::Resolve { id, path, value })
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

    /// The write path every local write takes.
    fn write(&self, author: Author<'_>, edit: Edit<'_>) -> Result<Written, RecordsError> {
        let _guard = self.lock_record(edit.record());
        let forms = self.forms();
        let now = now_secs();
        let (stored, mut doc, opened) = self.target(&forms, author, &edit, now)?;
        let meta = doc.meta()?;
        if !author.may_write(&meta.station) {
            return Err(RecordsError::Forbidden(meta.id));
        }
        let form = forms.get(&meta.form, meta.form_version);
        let before = Before {
            compared: stored.is_some() && edit.compares_fields(),
            status: doc.status().unwrap_or(Status::Draft),
            heads: doc.heads(),
        };
        self.apply(&mut doc, &meta, form, author, &edit, now)?;
        let content = Content::of(&doc, form);
        check(&edit, form, &before, &doc, &content)?;
        // A phone sends its form finished: once complete and valid (the last
        // file of a split upload, or a correction), it is submitted.
        if edit.is_phones()
            && doc.status() == Some(Status::Draft)
            && content.validation.as_ref().is_some_and(Vec::is_empty)
        {
            doc.set_status(Status::Submitted)?;
        }
        let committed = doc
            .commit(&change_message(edit.what(), author.name()), now)
            .is_some();
        // A revision commits on a copy and merges it in.
        let changed = committed || doc.heads() != before.heads;
        if !changed && stored.is_some() {
            // Nothing changed: acknowledge without a write or a feed entry.
            let view = self.view_of(&meta.id)?;
            return Ok(Written { id: meta.id, view });
        }
        let write = doc_write(stored.as_ref(), opened, &mut doc, &before.heads);
        let id = meta.id;
        let record = record_write(&mut doc, meta, content, write)?;
        let json =
            String::from_utf8(record.view.clone()).map_err(|e| StoreError::Io(e.to_string()))?;
        self.store.write(record)?;
        self.cache.put(id, doc);
        let view = RawValue::from_string(json)
            .map_err(|e| RecordsError::Store(StoreError::Io(e.to_string())))?;
        Ok(Written { id, view })
    }

    /// The stored record an edit is for, loaded; or, for a create, the new
    /// record's document, made with its fields in its first change.
    fn target(
        &self,
        forms: &tideline_schemas::FormRegistry,
        author: Author<'_>,
        edit: &Edit<'_>,
        now: i64,
    ) -> Result<(Option<StoredDoc>, RecordDoc, Opened), RecordsError> {
        let new = match edit {
            Edit::Create { form, fields } => {
                let form = forms
                    .latest(form)
                    .ok_or_else(|| RecordsError::UnknownForm(form.to_string()))?;
                Some((RecordId::new(), form, *fields, None))
            }
            Edit::Submit(s) => {
                let form = forms.get(s.form, s.version).ok_or_else(|| {
                    RecordsError::UnknownFormVersion {
                        form: s.form.to_string(),
                        version: s.version,
                    }
                })?;
                // The id was chosen by the caller: never write over a record.
                if self.store.summary(&s.id)?.is_some() {
                    return Err(RecordsError::Exists(s.id));
                }
                Some((s.id, form, s.fields, Some(s.instance)))
            }
            _ => None,
        };
        if let Some((id, form, fields, odk)) = new {
            let device = self.identity.device_id.to_string();
            let meta = RecordMeta::new(id, form, self.station(), &device)
                .by(author.name())
                .odk(odk);
            let actor = self.identity.actor.clone();
            let doc = RecordDoc::create(actor, &meta, form, fields, now)?;
            return Ok((None, doc, Opened::Loaded));
        }
        let Some(id) = edit.record() else {
            unreachable!("only a create names no record, and it was made above")
        };
        let stored = self.store.load(id)?.ok_or(RecordsError::NotFound(*id))?;
        let (doc, opened) = self.open_doc(id, &stored)?;
        Ok((Some(stored), doc, opened))
    }

    /// Carry out the edit on the document, refusing what its own rules forbid
    /// (a transition, a resolution without a conflict, a field that takes no file).
    fn apply(
        &self,
        doc: &mut RecordDoc,
        meta: &RecordMeta,
        form: Option<&Form>,
        author: Author<'_>,
        edit: &Edit<'_>,
        now: i64,
    ) -> Result<(), RecordsError> {
        let needed = || {
            form.ok_or_else(|| RecordsError::UnknownFormVersion {
                form: meta.form.clone(),
                version: meta.form_version,
            })
        };
        match *edit {
            // The document was made with its fields.
            Edit::Create { .. } => clear_irrelevant(doc, form)?,
            Edit::Submit(s) => phone_answers(doc, needed()?, s.attachments)?,
            Edit::Revise {
                base,
                fields,
                attachments,
                ..
            } => {
                let form = needed()?;
                let message = change_message(edit.what(), author.name());
                doc.revise(form, base, fields, &message, now)?;
                phone_answers(doc, form, attachments)?;
            }
            Edit::Patch(_, patch) => {
                let form = needed()?;
                let from = doc.status().unwrap_or(Status::Draft);
                let to = patch.status.unwrap_or(from);
                if !transition_allowed(from, to) {
                    return Err(RecordsError::Transition { from, to });
                }
                if let Some(fields) = &patch.fields {
                    doc.update_fields(form, fields)?;
                    clear_irrelevant(doc, Some(form))?;
                }
                doc.set_status(to)?;
            }
            Edit::Attach {
                attachment, field, ..
            } => attach(doc, needed()?, attachment, field)?,
            Edit::Review(_, comment) => {
                let by = match author.name() {
                    Some(name) => name.to_string(),
                    None => self.identity.device_id.to_string(),
                };
                let entry = serde_json::json!({ "by": by, "at": rfc3339(now), "comment": comment });
                doc.add_review(&entry)?;
            }
            Edit::Resolve { path, value, .. } => {
                if !doc.conflicts().contains_key(path) {
                    return Err(RecordsError::NoConflict(path.to_string()));
                }
                doc.resolve(form, path, value)?;
            }
        }
        Ok(())
    }
}

/// Empty the answers to questions that do not apply (their `relevant` is false),
/// as ODK does when a form is saved: what a person saves is only what the form
/// asks in their case. Records that arrive by sync are left as they came.
fn clear_irrelevant(doc: &mut RecordDoc, form: Option<&Form>) -> Result<(), RecordsError> {
    let Some(form) = form.filter(|f| f.has_logic()) else {
        return Ok(());
    };
    let fields = doc.fields();
    let now = chrono::Local::now().fixed_offset();
    let Some(kept) = tideline_schemas::clear_irrelevant(form, &fields, now) else {
        return Ok(());
    };
    let changed: Map<String, Json> = fields
        .keys()
        .filter(|k| kept.get(*k) != fields.get(*k))
        .map(|k| (k.clone(), kept.get(k).cloned().unwrap_or(Json::Null)))
        .collect();
    doc.update_fields(form, &changed)?;
    Ok(())
}

/// A phone's answers once in the document: those that do not apply
/// cleared, as for any save, and the files it sent attached.
fn phone_answers(
    doc: &mut RecordDoc,
    form: &Form,
    attachments: &[Attachment],
) -> Result<(), RecordsError> {
    clear_irrelevant(doc, Some(form))?;
    for a in attachments {
        attach(doc, form, a, None)?;
    }
    Ok(())
}

/// Append `attachment` to the record's list (once per hash) and put its hash
/// in the image field `field`, if one is named.
fn attach(
    doc: &mut RecordDoc,
    form: &Form,
    attachment: &Attachment,
    field: Option<&str>,
) -> Result<(), RecordsError> {
    let hash = attachment.sha256.to_hex();
    if let Some(name) = field {
        let value = if image_field(form, name)?.multiple {
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
        let mut patch = Map::new();
        patch.insert(name.to_string(), value);
        doc.update_fields(form, &patch)?;
    }
    let listed = doc.attachments().as_array().is_some_and(|list| {
        list.iter()
            .any(|a| a["sha256"].as_str() == Some(hash.as_str()))
    });
    if !listed {
        let entry = serde_json::to_value(attachment).map_err(|e| StoreError::Io(e.to_string()))?;
        doc.add_attachment(&entry)?;
    }
    Ok(())
}

fn image_field<'f>(form: &'f Form, name: &str) -> Result<&'f Field, RecordsError> {
    form.fields
        .iter()
        .find(|f| f.name == name && f.field_type == FieldType::Image)
        .ok_or_else(|| {
            RecordsError::Invalid(vec![Violation {
                path: name.to_string(),
                kind: ViolationKind::Unknown,
                message: format!("{name:?} is not an image field of this form."),
            }])
        })
}

/// The rules an edit must pass once applied, from the one validation of
/// the write. A record whose form is not known here is not validated, so
/// nothing is refused for it. Attachments and review comments touch no
/// value a person typed, so they are never refused for the record's problems.
fn check(
    edit: &Edit<'_>,
    form: Option<&Form>,
    before: &Before,
    doc: &RecordDoc,
    content: &Content,
) -> Result<(), RecordsError> {
    let (Some(form), Some(violations)) = (form, &content.validation) else {
        return Ok(());
    };
    if matches!(edit, Edit::Attach { .. } | Edit::Review(..)) {
        return Ok(());
    }
    // Read once, and only by the rules below that need it.
    let earlier = std::cell::OnceCell::new();
    let before_fields = || earlier.get_or_init(|| before.fields(doc)).as_ref();
    if violations.iter().any(Violation::blocks_draft) {
        let introduced = introduced_violations(form, before_fields(), violations);
        if !introduced.is_empty() {
            return Err(RecordsError::Invalid(introduced));
        }
    }
    if let Edit::Patch(..) = edit {
        let (from, to) = (before.status, doc.status().unwrap_or(Status::Draft));
        if to != Status::Draft
            && !violations.is_empty()
            && (to != from || before_fields() != Some(&content.fields))
        {
            return Err(RecordsError::Incomplete {
                status: to,
                violations: violations.clone(),
            });
        }
    }
    Ok(())
}

/// The draft-blocking violations in `after` that the record did not already
/// have (a new record had none). Records that arrived by sync may already be
/// invalid; an edit is refused only for the problems it introduces, so people
/// can fix one thing at a time.
fn introduced_violations(
    form: &Form,
    before: Option<&Map<String, Json>>,
    after: &[Violation],
) -> Vec<Violation> {
    let known: HashSet<(String, String)> = before
        .map(|fields| validate(form, fields))
        .unwrap_or_default()
        .into_iter()
        .map(|v| (v.path, v.message))
        .collect();
    after
        .iter()
        .filter(|v| v.blocks_draft() && !known.contains(&(v.path.clone(), v.message.clone())))
        .cloned()
        .collect()
}

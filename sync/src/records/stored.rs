//! What a write stores beside a record's document: its JSON view and
//! summary, and whether the document is appended to or compacted. Every
//! write of a record, local or from a peer, is built here, so the view and
//! the compaction rule are the same for all of them.

use crate::blobs::BlobHash;
use crate::record::{ConflictValue, DocError, RecordDoc, RecordMeta, Status};
use crate::records::cache::Opened;
use crate::records::service::RecordsError;
use crate::store::{DocWrite, RecordWrite, StoreError, StoredDoc, Summary};
use automerge::ChangeHash;
use serde::Serialize;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use tideline_schemas::{validate, Form, RecordId, Violation, ViolationKind};

/// Compaction thresholds: a document's incremental chunks are folded into a new
/// snapshot once there are more than [`MAX_CHUNKS`] of them or they outweigh the
/// snapshot itself. Chunks make small edits cheap to write; the snapshot keeps
/// loads fast and storage compact (a snapshot is far smaller than its changes).
pub const MAX_CHUNKS: usize = 16;

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
    /// The ODK instance it was submitted as, for a record from ODK Collect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub odk_instance: Option<String>,
}

/// A record's fields and conflicts, read in one walk, and its validation
/// against its form (None when the form is not known here).
pub struct Content {
    pub fields: Map<String, Json>,
    pub conflicts: BTreeMap<String, Vec<ConflictValue>>,
    pub validation: Option<Vec<Violation>>,
}

impl Content {
    /// Read and validate a document's content: the one validation of a write.
    pub fn of(doc: &RecordDoc, form: Option<&Form>) -> Content {
        let (fields, conflicts) = doc.fields_and_conflicts();
        let validation = form.map(|form| validate(form, &fields));
        Content {
            fields,
            conflicts,
            validation,
        }
    }
}

/// How a write changes the stored document `stored` (None for a new
/// record): the changes since `since` appended as a chunk, or the whole
/// document compacted once the chunks have grown too many or too large.
///
/// A document that had to be loaded from its chunks is compacted too:
/// applying a chunk on load costs more than saving the whole document
/// once, so the next write that has to load it reads one snapshot. A
/// document kept open between writes pays no load, and appends.
pub fn doc_write(
    stored: Option<&StoredDoc>,
    opened: Opened,
    doc: &mut RecordDoc,
    since: &[ChangeHash],
) -> DocWrite {
    let Some(stored) = stored else {
        return DocWrite::Replace(doc.save());
    };
    if opened == Opened::Loaded && !stored.chunks.is_empty() {
        return DocWrite::Replace(doc.save());
    }
    let chunk = doc.save_after(since);
    if stored.chunks.len() >= MAX_CHUNKS
        || stored.chunk_bytes() + chunk.len() > stored.snapshot.len()
    {
        DocWrite::Replace(doc.save())
    } else {
        DocWrite::Append(chunk)
    }
}

/// A stored document as one plain snapshot (data format 2), or None when
/// it can already be sent as it is stored: snapshots DEFLATEd by earlier
/// binaries are loaded, which verifies them, and saved again.
pub fn plain_snapshot(stored: &StoredDoc) -> Result<Option<Vec<u8>>, DocError> {
    if crate::integrity::plain_document(&stored.clone().into_bytes()).is_some() {
        return Ok(None);
    }
    let actor = automerge::ActorId::from([0u8; 16]);
    Ok(Some(
        RecordDoc::load(&stored.snapshot, &stored.chunks, actor)?.save(),
    ))
}

/// The store write of a record: its document write, with the view and
/// summary of `content`.
pub fn record_write(
    doc: &mut RecordDoc,
    meta: RecordMeta,
    content: Content,
    write: DocWrite,
) -> Result<RecordWrite, RecordsError> {
    let view = view_of(doc, meta, content);
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

pub fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Build a record's view. Without its form (a version this instance has not
/// received) the record is still shown, flagged as unvalidated.
pub fn build_view(doc: &mut RecordDoc, form: Option<&Form>) -> Result<RecordView, DocError> {
    let meta = doc.meta()?;
    let content = Content::of(doc, form);
    Ok(view_of(doc, meta, content))
}

/// The view of a document whose meta the caller has already read (every
/// writer checks it first, and reading it again costs a tenth of a view).
fn view_of(doc: &mut RecordDoc, meta: RecordMeta, content: Content) -> RecordView {
    let validation = content.validation.unwrap_or_else(|| {
        vec![Violation {
            path: String::new(),
            kind: ViolationKind::Unknown,
            message: format!(
                "Form {} version {} is not known here; the record was not validated.",
                meta.form, meta.form_version
            ),
        }]
    });
    let updated_at = doc
        .updated_at()
        .map(rfc3339)
        .unwrap_or_else(|| meta.created_at.clone());
    RecordView {
        id: meta.id,
        form: meta.form,
        form_version: meta.form_version,
        station: meta.station,
        status: doc.status().unwrap_or(Status::Draft).as_str().to_string(),
        fields: content.fields,
        attachments: doc.attachments(),
        review: doc.review(),
        conflicts: content.conflicts,
        validation,
        created_by: meta.created_by,
        created_by_person: meta.created_by_person,
        created_at: meta.created_at,
        updated_at,
        odk_instance: meta.odk_instance,
    }
}

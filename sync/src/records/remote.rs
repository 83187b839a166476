//! Records from peers: applying the changes sync brings, in one durable
//! commit with the bookkeeping that goes with them, and Automerge's own sync
//! protocol for records whose history one side is missing.

use crate::integrity::PlainDocument;
use crate::record::{DocError, RecordDoc, RecordMeta};
use crate::records::cache::Opened;
use crate::records::service::{Records, RecordsError};
use crate::records::stored::{doc_write, record_write, Content};
use crate::store::{Commit, DocStore, DocWrite, RecordWrite, StateWrite};
use automerge::{sync, ActorId, AutoCommit, Change, ChangeHash};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tideline_schemas::RecordId;

/// A record as received from a peer, its bytes checked
/// ([`crate::integrity`]) but not yet loaded.
pub struct RemoteDoc {
    pub id: RecordId,
    pub payload: Payload,
}

/// What a peer sent of a record.
pub enum Payload {
    /// The changes it believed this instance lacks.
    Changes(Vec<Change>),
    /// The whole document, for a record it believed this instance has none
    /// of, with what its bytes say of it.
    Document { bytes: Vec<u8>, read: PlainDocument },
}

impl RemoteDoc {
    pub fn changes(id: RecordId, changes: Vec<Change>) -> Self {
        RemoteDoc {
            id,
            payload: Payload::Changes(changes),
        }
    }

    /// Every actor that may have authored a change in what was sent.
    pub fn authors(&self) -> Vec<ActorId> {
        match &self.payload {
            Payload::Changes(changes) => change_authors(changes),
            Payload::Document { read, .. } => read.authors(),
        }
    }

    /// The change graph sent, as (hash, dependencies): enough to tell the
    /// heads both sides share once it is applied.
    pub fn graph(&self) -> Vec<(ChangeHash, Vec<ChangeHash>)> {
        match &self.payload {
            Payload::Changes(changes) => change_graph(changes),
            Payload::Document { read, .. } => read.change_graph(),
        }
    }

    /// The changes of what was sent: a document is loaded and taken apart,
    /// for the rare record that must be merged change by change (one this
    /// instance has after all, or one with authors to check one by one).
    /// None when the document does not load.
    pub fn into_changes(self) -> Option<(RecordId, Vec<Change>)> {
        match self.payload {
            Payload::Changes(changes) => Some((self.id, changes)),
            Payload::Document { bytes, .. } => Some((self.id, document_changes(&bytes)?)),
        }
    }
}

/// Each change's (hash, dependencies).
pub fn change_graph(changes: &[Change]) -> Vec<(ChangeHash, Vec<ChangeHash>)> {
    changes
        .iter()
        .map(|c| (c.hash(), c.deps().to_vec()))
        .collect()
}

/// The authors of `changes`, each once, in the order they first appear.
pub fn change_authors(changes: &[Change]) -> Vec<ActorId> {
    let mut authors: Vec<ActorId> = Vec::new();
    for c in changes {
        if !authors.contains(c.actor_id()) {
            authors.push(c.actor_id().clone());
        }
    }
    authors
}

/// Every change of a document, or None when it does not load (Automerge's
/// panics included).
pub fn document_changes(bytes: &[u8]) -> Option<Vec<Change>> {
    catch_unwind(AssertUnwindSafe(|| {
        AutoCommit::load(bytes)
            .ok()
            .map(|mut doc| doc.get_changes(&[]))
    }))
    .ok()
    .flatten()
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

impl<S: DocStore> Records<S> {
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
        allowed: impl Fn(&RecordMeta) -> bool + Sync,
        finish: impl FnOnce(&[(RecordId, RemoteResult)]) -> Vec<StateWrite>,
    ) -> Result<Vec<(RecordId, RemoteResult)>, RecordsError> {
        let _guard = self.lock();
        let mut results = Vec::with_capacity(docs.len());
        let mut writes = Vec::new();
        for (id, merged) in self.merge_all(docs, &allowed) {
            let result = match merged? {
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

    /// Merge each record into what is stored, on as many threads as there
    /// are cores when there are enough records to share: loading and
    /// viewing documents is nearly all of a page's cost, and reads only the
    /// store. Results keep the order received. A message names each record
    /// once, so no two threads touch one record.
    fn merge_all(
        &self,
        docs: Vec<RemoteDoc>,
        allowed: &(impl Fn(&RecordMeta) -> bool + Sync),
    ) -> Vec<(RecordId, Result<Merged, RecordsError>)> {
        let merge = |doc: RemoteDoc| (doc.id, self.merge_remote(&doc.id, doc.payload, allowed));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if threads < 2 || docs.len() < PARALLEL_FROM {
            return docs.into_iter().map(merge).collect();
        }
        let per_thread = docs.len().div_ceil(threads);
        let mut docs = docs.into_iter();
        let parts: Vec<Vec<RemoteDoc>> = (0..threads)
            .map(|_| docs.by_ref().take(per_thread).collect())
            .collect();
        std::thread::scope(|scope| {
            let merge = &merge;
            let running: Vec<_> = parts
                .into_iter()
                .map(|part| scope.spawn(move || part.into_iter().map(merge).collect::<Vec<_>>()))
                .collect();
            running
                .into_iter()
                .flat_map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    }

    fn merge_remote(
        &self,
        id: &RecordId,
        payload: Payload,
        allowed: &impl Fn(&RecordMeta) -> bool,
    ) -> Result<Merged, RecordsError> {
        let stored = self.store.load(id)?;
        let changes = match payload {
            Payload::Changes(changes) => changes,
            Payload::Document { bytes, .. } if stored.is_none() => {
                return self.take_document(id, bytes, allowed)
            }
            Payload::Document { bytes, .. } => match document_changes(&bytes) {
                Some(changes) => changes,
                None => {
                    return Ok(Merged::Result(RemoteResult::Invalid(
                        "the document could not be loaded".into(),
                    )))
                }
            },
        };
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
        let write = doc_write(stored.as_ref(), Opened::Loaded, &mut doc, &heads);
        self.finish_remote(id, doc, write, allowed)
    }

    /// A record new here, sent whole: loading it verifies every change's
    /// hash, and its bytes are then stored as they came, so that passing it
    /// on costs no Automerge work either.
    fn take_document(
        &self,
        id: &RecordId,
        bytes: Vec<u8>,
        allowed: &impl Fn(&RecordMeta) -> bool,
    ) -> Result<Merged, RecordsError> {
        let actor = self.identity.actor.clone();
        // As with changes: a panic in Automerge refuses this record only.
        let loaded = catch_unwind(AssertUnwindSafe(|| {
            let mut doc = RecordDoc::load(&bytes, &[], actor)?;
            let missing = doc.missing_deps();
            Ok::<_, DocError>((doc, missing))
        }));
        let doc = match loaded {
            Ok(Ok((doc, missing))) if missing.is_empty() => doc,
            Ok(Ok(_)) => return Ok(Merged::Result(RemoteResult::MissingDeps)),
            Ok(Err(e)) => return Ok(Merged::Result(RemoteResult::Invalid(e.to_string()))),
            Err(_) => {
                return Ok(Merged::Result(RemoteResult::Invalid(
                    "the document could not be loaded".into(),
                )))
            }
        };
        self.finish_remote(id, doc, DocWrite::Replace(bytes), allowed)
    }

    fn finish_remote(
        &self,
        id: &RecordId,
        mut doc: RecordDoc,
        write: DocWrite,
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
        let content = Content::of(&doc, form);
        Ok(Merged::Write(Box::new(record_write(
            &mut doc, meta, content, write,
        )?)))
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
        unsigned: &dyn Fn(&[Change]) -> bool,
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
            if unsigned(&doc.changes_since(&heads)) {
                return Err(RecordsError::Forbidden(*id));
            }
            if doc.heads() != heads && doc.missing_deps().is_empty() {
                let mut copy = doc.fork(self.identity.actor.clone());
                let write = doc_write(stored.as_ref(), Opened::Loaded, &mut copy, &heads);
                match self.finish_remote(id, copy, write, &allowed)? {
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
}

/// Fewer records than this are merged on the calling thread: starting
/// threads would cost more than it saves.
const PARALLEL_FROM: usize = 16;

enum Merged {
    Write(Box<RecordWrite>),
    Result(RemoteResult),
}

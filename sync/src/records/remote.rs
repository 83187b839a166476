//! Records from peers: applying the changes sync brings, in one durable
//! commit with the bookkeeping that goes with them, and Automerge's own sync
//! protocol for records whose history one side is missing.

use crate::record::{DocError, RecordDoc, RecordMeta};
use crate::records::service::{Records, RecordsError};
use crate::records::stored::{doc_write, record_write, Content};
use crate::store::{Commit, DocStore, RecordWrite, StateWrite, StoredDoc};
use automerge::{sync, ActorId, Change, ChangeHash};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tideline_schemas::RecordId;

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
        let write = doc_write(stored, &mut doc, heads_before);
        let content = Content::of(&doc, form);
        Ok(Merged::Write(Box::new(record_write(
            &mut doc, content, write,
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
}

enum Merged {
    Write(Box<RecordWrite>),
    Result(RemoteResult),
}

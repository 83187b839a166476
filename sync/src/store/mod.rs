//! Durable storage of record documents behind the [`DocStore`] trait.
//!
//! A store keeps, per record, the Automerge document (a compacted snapshot plus
//! incremental chunks appended since), a cached JSON view, a small summary used
//! for filtering lists without loading documents, and the change feed: a local
//! monotonic sequence number pointing at the record's latest write. One
//! [`RecordWrite`] commits all of these atomically and is durable when `write`
//! returns.
//!
//! Two implementations share one conformance suite: [`SledStore`] on disk and
//! [`MemoryStore`] for tests and tools.

mod memory;
mod sled;
#[cfg(test)]
mod suite;

pub use self::memory::MemoryStore;
pub use self::sled::SledStore;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tideline_schemas::RecordId;

/// Position in a store's change feed. Strictly increasing per store; gaps are allowed.
pub type Seq = u64;

/// The stored form of one record's document: load the snapshot, then apply the
/// chunks in order. Concatenated, the bytes are also a valid Automerge file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredDoc {
    pub snapshot: Vec<u8>,
    pub chunks: Vec<Vec<u8>>,
}

impl StoredDoc {
    /// Bytes held in chunks; compaction is decided from this.
    pub fn chunk_bytes(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    /// The snapshot followed by the chunks: one Automerge file.
    pub fn into_bytes(self) -> Vec<u8> {
        let mut bytes = self.snapshot;
        for chunk in &self.chunks {
            bytes.extend_from_slice(chunk);
        }
        bytes
    }
}

/// How a write changes the stored document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocWrite {
    /// Append one incremental chunk (the changes made since the stored state).
    Append(Vec<u8>),
    /// Replace snapshot and chunks with one compacted snapshot.
    Replace(Vec<u8>),
}

/// The few fields lists are filtered by, kept beside each record so that a
/// list never has to load documents, and the document's heads, so that sync
/// can tell a peer already has a record without loading it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub form: String,
    pub station: String,
    pub status: String,
    pub heads: Vec<[u8; 32]>,
    /// SHA-256 of every attachment the record references: who may read a
    /// blob is decided from these without loading documents.
    pub attachments: Vec<[u8; 32]>,
}

impl Summary {
    /// The document's heads as Automerge hashes.
    pub fn change_hashes(&self) -> Vec<automerge::ChangeHash> {
        self.heads
            .iter()
            .map(|h| automerge::ChangeHash(*h))
            .collect()
    }
}

/// One atomic, durable update of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordWrite {
    pub id: RecordId,
    pub doc: DocWrite,
    /// The record's JSON view after this write.
    pub view: Vec<u8>,
    pub summary: Summary,
}

/// A change to sync bookkeeping (checkpoints, acknowledged heads), stored beside
/// the records so it commits atomically with them. `None` deletes the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateWrite {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// Record writes and state writes that commit together, atomically and durably.
/// A record appears at most once in a commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commit {
    pub records: Vec<RecordWrite>,
    pub state: Vec<StateWrite>,
}

/// State entries as (key, value) pairs, in key order.
pub type StateEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// One entry of the change feed: the record's latest write has this seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedEntry {
    pub seq: Seq,
    pub id: RecordId,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the data directory {0} is in use by another running tideline process")]
    InUse(PathBuf),
    #[error("could not open the data directory {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("record {0} appears twice in one commit")]
    DuplicateInCommit(RecordId),
}

/// What [`DocStore::export`] calls with each stored (tree, key, value).
pub type ExportVisit<'a> = dyn FnMut(&str, &[u8], &[u8]) -> Result<(), StoreError> + 'a;
/// What `SledStore::import` takes: (tree, key, value) entries in export order.
pub type ImportEntries<'a> =
    dyn Iterator<Item = Result<(String, Vec<u8>, Vec<u8>), StoreError>> + 'a;

/// Storage for record documents and their change feed.
///
/// Invariants every implementation keeps (checked by the shared suite):
/// - `write` is atomic: after a crash either all of a write is visible or none.
/// - `write` is durable on return; nothing is acknowledged earlier.
/// - Each record appears in the feed exactly once, at the seq of its latest write,
///   and seqs only grow.
pub trait DocStore: Send + Sync + 'static {
    /// Commit record and state writes atomically and durably; returns each
    /// record's new seq, in order.
    fn commit(&self, commit: Commit) -> Result<Vec<Seq>, StoreError>;
    /// Commit one record write; returns its new seq.
    fn write(&self, write: RecordWrite) -> Result<Seq, StoreError> {
        let seqs = self.commit(Commit {
            records: vec![write],
            state: Vec::new(),
        })?;
        seqs.first()
            .copied()
            .ok_or_else(|| StoreError::Io("commit returned no seq".into()))
    }
    /// The summary of one record.
    fn summary(&self, id: &RecordId) -> Result<Option<Summary>, StoreError>;
    /// Sync bookkeeping by key.
    fn get_state(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// All state entries whose key starts with `prefix`, in key order.
    fn scan_state(&self, prefix: &[u8]) -> Result<StateEntries, StoreError>;
    /// Make everything written so far durable; a no-op unless an earlier
    /// flush failed after its batch became visible.
    fn ensure_durable(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Apply state writes atomically but without waiting for durability: for
    /// advisory state whose loss only costs a resend.
    fn put_state_lazy(&self, writes: Vec<StateWrite>) -> Result<(), StoreError>;
    /// The stored document of a record.
    fn load(&self, id: &RecordId) -> Result<Option<StoredDoc>, StoreError>;
    /// The cached JSON view of a record.
    fn view(&self, id: &RecordId) -> Result<Option<Vec<u8>>, StoreError>;
    /// Visit summaries newest record first (ids are time-ordered UUIDv7) until `visit` returns false.
    fn scan_summaries(
        &self,
        visit: &mut dyn FnMut(RecordId, Summary) -> bool,
    ) -> Result<(), StoreError>;
    /// Feed entries with seq greater than `after`, oldest first, at most `limit`.
    fn changes_since(&self, after: Seq, limit: usize) -> Result<Vec<FeedEntry>, StoreError>;
    /// The highest seq written so far (0 for an empty store).
    fn last_seq(&self) -> Result<Seq, StoreError>;
    /// Number of records stored.
    fn count(&self) -> Result<usize, StoreError>;
    /// Instance metadata (identity, format version).
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Set instance metadata durably.
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Visit everything stored, as (tree, key, value), at one consistent
    /// moment: for backups, which `SledStore::import` restores.
    fn export(&self, _visit: &mut ExportVisit<'_>) -> Result<(), StoreError> {
        Err(StoreError::Io("this store cannot be exported".into()))
    }
}

impl<S: DocStore + ?Sized> DocStore for std::sync::Arc<S> {
    fn commit(&self, commit: Commit) -> Result<Vec<Seq>, StoreError> {
        (**self).commit(commit)
    }
    fn write(&self, write: RecordWrite) -> Result<Seq, StoreError> {
        (**self).write(write)
    }
    fn summary(&self, id: &RecordId) -> Result<Option<Summary>, StoreError> {
        (**self).summary(id)
    }
    fn get_state(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get_state(key)
    }
    fn scan_state(&self, prefix: &[u8]) -> Result<StateEntries, StoreError> {
        (**self).scan_state(prefix)
    }
    fn put_state_lazy(&self, writes: Vec<StateWrite>) -> Result<(), StoreError> {
        (**self).put_state_lazy(writes)
    }
    fn ensure_durable(&self) -> Result<(), StoreError> {
        (**self).ensure_durable()
    }
    fn load(&self, id: &RecordId) -> Result<Option<StoredDoc>, StoreError> {
        (**self).load(id)
    }
    fn view(&self, id: &RecordId) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).view(id)
    }
    fn scan_summaries(
        &self,
        visit: &mut dyn FnMut(RecordId, Summary) -> bool,
    ) -> Result<(), StoreError> {
        (**self).scan_summaries(visit)
    }
    fn changes_since(&self, after: Seq, limit: usize) -> Result<Vec<FeedEntry>, StoreError> {
        (**self).changes_since(after, limit)
    }
    fn last_seq(&self) -> Result<Seq, StoreError> {
        (**self).last_seq()
    }
    fn count(&self) -> Result<usize, StoreError> {
        (**self).count()
    }
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get_meta(key)
    }
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        (**self).put_meta(key, value)
    }
    fn export(&self, visit: &mut ExportVisit<'_>) -> Result<(), StoreError> {
        (**self).export(visit)
    }
}

//! Documents kept open between writes. Loading a document rebuilds its op
//! set and change graph, and that cost grows with its history (a record
//! edited 1,000 times takes milliseconds to load), while the record an
//! officer edits now is most likely the one they edited a moment ago. A
//! write therefore leaves its document here, and the next write of the
//! same record takes it back instead of loading it.
//!
//! A cached document is used only while its heads are the record's stored
//! heads (the summary's): any write that did not come through the cache —
//! a peer's changes, a restore — makes the entry stale, and a stale entry
//! is dropped, never used. Taking a document removes it, so a write that
//! fails half-way (an edit refused after its operations were made) leaves
//! nothing behind to be reused.

use crate::record::RecordDoc;
use automerge::ChangeHash;
use std::collections::HashMap;
use std::sync::Mutex;
use tideline_schemas::RecordId;

/// How many documents stay open: the records being worked on at once on
/// one instance, with room to spare; a few megabytes at most.
pub const CAPACITY: usize = 64;

/// Where the document a write edits came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// Loaded from the store for this write, every chunk applied.
    Loaded,
    /// Still open from an earlier write of the same record.
    Cached,
}

#[derive(Default)]
pub struct DocCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Each document with the tick of its last use.
    docs: HashMap<RecordId, (u64, RecordDoc)>,
    tick: u64,
}

impl DocCache {
    /// The open document of `id`, if one is cached and its heads are `heads`.
    pub fn take(&self, id: &RecordId, heads: &[ChangeHash]) -> Option<RecordDoc> {
        let (_, mut doc) = self.lock().docs.remove(id)?;
        (doc.heads() == heads).then_some(doc)
    }

    /// Whether a document of `id` is open here (at whatever heads).
    pub fn holds(&self, id: &RecordId) -> bool {
        self.lock().docs.contains_key(id)
    }

    /// Keep `doc` open as the current state of `id`, dropping the least
    /// recently used document when full.
    pub fn put(&self, id: RecordId, doc: RecordDoc) {
        let evicted = {
            let mut inner = self.lock();
            inner.tick += 1;
            let tick = inner.tick;
            inner.docs.insert(id, (tick, doc));
            if inner.docs.len() > CAPACITY {
                let oldest = inner
                    .docs
                    .iter()
                    .min_by_key(|(_, (used, _))| *used)
                    .map(|(id, _)| *id);
                oldest.and_then(|oldest| inner.docs.remove(&oldest))
            } else {
                None
            }
        };
        // Freeing a document takes a while; other writers need not wait for it.
        drop(evicted);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Entries are whole documents or absent; a panic elsewhere leaves
        // nothing half-written here.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::ActorId;

    fn doc(n: u8) -> RecordDoc {
        let mut doc = RecordDoc::empty(ActorId::from([n; 16]));
        doc.automerge()
            .put(automerge::ROOT, "n", n as i64)
            .map(|_| ())
            .unwrap();
        doc.automerge().commit();
        doc
    }

    use automerge::transaction::Transactable;

    #[test]
    fn a_document_is_given_back_only_at_the_heads_it_was_left_at() {
        let cache = DocCache::default();
        let id = RecordId::new();
        let mut d = doc(1);
        let heads = d.heads();
        cache.put(id, d);
        assert!(cache.take(&id, &[]).is_none(), "stale: dropped");
        assert!(cache.take(&id, &heads).is_none(), "and gone");
        let mut d = doc(1);
        let heads = d.heads();
        cache.put(id, d);
        assert!(cache.take(&id, &heads).is_some());
        assert!(cache.take(&id, &heads).is_none(), "taking removes it");
    }

    #[test]
    fn the_least_recently_used_document_goes_first() {
        let cache = DocCache::default();
        let ids: Vec<RecordId> = (0..=CAPACITY).map(|_| RecordId::new()).collect();
        let mut heads = Vec::new();
        for id in &ids {
            let mut d = doc(1);
            heads.push(d.heads());
            cache.put(*id, d);
        }
        assert!(cache.take(&ids[0], &heads[0]).is_none(), "evicted");
        assert!(cache.take(&ids[CAPACITY], &heads[CAPACITY]).is_some());
        assert!(cache.take(&ids[1], &heads[1]).is_some());
    }
}

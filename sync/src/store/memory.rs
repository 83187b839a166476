//! An in-memory [`DocStore`] with the same semantics as the sled one, for tests
//! and for tools that need a scratch store.

use super::{
    Commit, DocStore, DocWrite, FeedEntry, Seq, StateEntries, StateWrite, StoreError, StoredDoc,
    Summary,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use tideline_schemas::RecordId;

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default, Clone)]
struct Inner {
    docs: HashMap<RecordId, StoredDoc>,
    views: HashMap<RecordId, Vec<u8>>,
    summaries: BTreeMap<RecordId, Summary>,
    feed: BTreeMap<Seq, RecordId>,
    seq_of: HashMap<RecordId, Seq>,
    last_seq: Seq,
    meta: HashMap<String, Vec<u8>>,
    state: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Inner {
    fn apply_state(&mut self, writes: Vec<StateWrite>) {
        for w in writes {
            match w.value {
                Some(v) => self.state.insert(w.key, v),
                None => self.state.remove(&w.key),
            };
        }
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// An independent copy of everything stored, as a backup would be.
    pub fn snapshot(&self) -> MemoryStore {
        MemoryStore {
            inner: Mutex::new(self.lock().clone()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl DocStore for MemoryStore {
    fn commit(&self, commit: Commit) -> Result<Vec<Seq>, StoreError> {
        let mut inner = self.lock();
        let mut seen = HashSet::new();
        if let Some(w) = commit.records.iter().find(|w| !seen.insert(w.id)) {
            return Err(StoreError::DuplicateInCommit(w.id));
        }
        let mut seqs = Vec::with_capacity(commit.records.len());
        for w in commit.records {
            let seq = inner.last_seq + 1;
            inner.last_seq = seq;
            if let Some(old) = inner.seq_of.insert(w.id, seq) {
                inner.feed.remove(&old);
            }
            inner.feed.insert(seq, w.id);
            let doc = inner.docs.entry(w.id).or_default();
            match w.doc {
                DocWrite::Append(chunk) => doc.chunks.push(chunk),
                DocWrite::Replace(snapshot) => {
                    doc.snapshot = snapshot;
                    doc.chunks.clear();
                }
            }
            inner.views.insert(w.id, w.view);
            inner.summaries.insert(w.id, w.summary);
            seqs.push(seq);
        }
        inner.apply_state(commit.state);
        Ok(seqs)
    }

    fn summary(&self, id: &RecordId) -> Result<Option<Summary>, StoreError> {
        Ok(self.lock().summaries.get(id).cloned())
    }

    fn get_state(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().state.get(key).cloned())
    }

    fn scan_state(&self, prefix: &[u8]) -> Result<StateEntries, StoreError> {
        Ok(self
            .lock()
            .state
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn put_state_lazy(&self, writes: Vec<StateWrite>) -> Result<(), StoreError> {
        self.lock().apply_state(writes);
        Ok(())
    }

    fn load(&self, id: &RecordId) -> Result<Option<StoredDoc>, StoreError> {
        Ok(self.lock().docs.get(id).cloned())
    }

    fn view(&self, id: &RecordId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().views.get(id).cloned())
    }

    fn scan_summaries(
        &self,
        visit: &mut dyn FnMut(RecordId, Summary) -> bool,
    ) -> Result<(), StoreError> {
        let snapshot: Vec<_> = self
            .lock()
            .summaries
            .iter()
            .rev()
            .map(|(id, s)| (*id, s.clone()))
            .collect();
        for (id, s) in snapshot {
            if !visit(id, s) {
                break;
            }
        }
        Ok(())
    }

    fn changes_since(&self, after: Seq, limit: usize) -> Result<Vec<FeedEntry>, StoreError> {
        Ok(self
            .lock()
            .feed
            .range(after.saturating_add(1)..)
            .take(limit)
            .map(|(seq, id)| FeedEntry { seq: *seq, id: *id })
            .collect())
    }

    fn last_seq(&self) -> Result<Seq, StoreError> {
        Ok(self.lock().last_seq)
    }

    fn count(&self) -> Result<usize, StoreError> {
        Ok(self.lock().seq_of.len())
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().meta.get(key).cloned())
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.lock().meta.insert(key.to_string(), value.to_vec());
        Ok(())
    }
}

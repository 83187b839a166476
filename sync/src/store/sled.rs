//! The on-disk [`DocStore`]: one sled database per data directory.
//!
//! Everything about a record lives in one sled tree under one-byte key prefixes,
//! so that a write is a single `apply_batch`, which sled applies atomically:
//!
//! ```text
//! d<id>        compacted Automerge snapshot
//! c<id><n:u32> incremental chunk n (big-endian, so chunks scan in order)
//! v<id>        cached JSON view
//! s<id>        summary (postcard)
//! f<seq:u64>   change feed: seq -> id
//! i<id>        the record's current seq (so a rewrite removes its old feed entry)
//! y<key>       sync bookkeeping (checkpoints, acknowledged heads)
//! ```
//!
//! Durability: sled 0.34.7's `flush` ends in `sync_file_range`, which survives a
//! process crash but not a power cut, and sled writes oversized pages to files
//! under `blobs/` without syncing them. After every flush this store therefore
//! fsyncs the database file and any blob file it has not synced yet.
//!
//! Group commit: writers apply their batches one at a time (seqs must be
//! allocated in order), then wait for durability outside that lock. One
//! waiter flushes for everyone whose batch was applied before its flush
//! began; the others find their batch already covered. Concurrent writers
//! thus share device flushes instead of queueing for one each.

use super::{
    Commit, DocStore, DocWrite, FeedEntry, Seq, StateEntries, StateWrite, StoreError, StoredDoc,
    Summary,
};
use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tideline_schemas::RecordId;

const DOC: u8 = b'd';
const CHUNK: u8 = b'c';
const VIEW: u8 = b'v';
const SUMMARY: u8 = b's';
const FEED: u8 = b'f';
const SEQ_OF: u8 = b'i';
const STATE: u8 = b'y';

/// Default page cache: sled's own default (1 GiB) is far more than a boat laptop
/// can spare, and documents are read rarely enough that a small cache suffices.
pub const DEFAULT_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// What [`SledStore::rewrite_documents`] calls with each stored document:
/// the snapshot to replace it with, or None to leave it.
pub type Rewrite<'a> = dyn FnMut(&RecordId, &StoredDoc) -> Result<Option<Vec<u8>>, StoreError> + 'a;

pub struct SledStore {
    db: sled::Db,
    records: sled::Tree,
    meta: sled::Tree,
    path: PathBuf,
    db_file: File,
    /// Serialises writers: seq allocation, chunk numbering and the old feed entry
    /// are read outside sled's batch and must not race.
    writer: Mutex<WriterState>,
    /// Serialises flushes, and says how far they have reached.
    flusher: Mutex<FlushState>,
}

struct WriterState {
    last_seq: Seq,
    /// Batches applied so far: each write's ticket for [`SledStore::wait_durable`].
    applied: u64,
}

struct FlushState {
    /// Every batch up to this ticket is on disk. Below `applied` after a
    /// failed flush, so the next acknowledgement flushes first and cannot
    /// acknowledge data that is not on disk.
    flushed: u64,
    synced_blobs: HashSet<std::ffi::OsString>,
}

fn key(prefix: u8, id: &RecordId) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = prefix;
    k[1..].copy_from_slice(id.as_bytes());
    k
}

fn chunk_key(id: &RecordId, n: u32) -> [u8; 21] {
    let mut k = [0u8; 21];
    k[..17].copy_from_slice(&key(CHUNK, id));
    k[17..].copy_from_slice(&n.to_be_bytes());
    k
}

fn feed_key(seq: Seq) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = FEED;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn state_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(STATE);
    k.extend_from_slice(key);
    k
}

fn add_state(batch: &mut sled::Batch, writes: Vec<StateWrite>) {
    for w in writes {
        let key = state_key(&w.key);
        match w.value {
            Some(v) => batch.insert(key, v),
            None => batch.remove(key),
        }
    }
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

fn id_from(bytes: &[u8]) -> Result<RecordId, StoreError> {
    let arr: [u8; 16] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("record id of {} bytes", bytes.len())))?;
    Ok(RecordId::from_bytes(arr))
}

fn seq_from(bytes: &[u8]) -> Result<Seq, StoreError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("seq of {} bytes", bytes.len())))?;
    Ok(Seq::from_be_bytes(arr))
}

impl SledStore {
    /// Fill a new store at `dir` with `entries` (tree, key, value) as an
    /// export produced them, and make it durable. `dir` must not hold a store.
    pub fn import(dir: &Path, entries: &mut super::ImportEntries<'_>) -> Result<(), StoreError> {
        let store = SledStore::open(dir)?;
        if !store.records.is_empty() || !store.meta.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "{} already holds a store; restore only into an empty directory",
                dir.display()
            )));
        }
        let ticket = {
            let mut state = store.lock();
            for entry in entries {
                let (tree, k, v) = entry?;
                let target = match tree.as_str() {
                    "records" => &store.records,
                    "meta" => &store.meta,
                    other => return Err(StoreError::Corrupt(format!("unknown tree {other:?}"))),
                };
                target.insert(k, v).map_err(io)?;
            }
            state.ticket()
        };
        store.wait_durable(ticket)
    }

    /// Open (or create) the store in `dir`. Fails with [`StoreError::InUse`] when
    /// another process holds it; never deletes or rewrites an existing store.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let open_err = |message: String| StoreError::Open {
            path: dir.to_path_buf(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        // sled reports a held lock only as a generic I/O error; check first so the
        // user hears "in use" rather than a lock errno.
        if let Ok(f) = File::open(dir.join("db")) {
            if f.try_lock().is_err() {
                return Err(StoreError::InUse(dir.to_path_buf()));
            }
        }
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|e| {
                let message = e.to_string();
                if message.contains("could not acquire lock") {
                    StoreError::InUse(dir.to_path_buf())
                } else {
                    open_err(message)
                }
            })?;
        let records = db
            .open_tree("records")
            .map_err(|e| open_err(e.to_string()))?;
        let meta = db.open_tree("meta").map_err(|e| open_err(e.to_string()))?;
        let db_file = File::open(dir.join("db")).map_err(|e| open_err(e.to_string()))?;
        // Make the directory entries of a new store durable too.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| open_err(e.to_string()))?;
        let last_seq = match records.scan_prefix([FEED]).next_back() {
            Some(Ok((k, _))) => seq_from(&k[1..])?,
            Some(Err(e)) => return Err(open_err(e.to_string())),
            None => 0,
        };
        Ok(SledStore {
            db,
            records,
            meta,
            path: dir.to_path_buf(),
            db_file,
            writer: Mutex::new(WriterState {
                last_seq,
                applied: 0,
            }),
            flusher: Mutex::new(FlushState {
                flushed: 0,
                synced_blobs: HashSet::new(),
            }),
        })
    }

    /// Rewrite stored documents in place, for a data format migration:
    /// `rewrite` is shown each record's stored document and returns the
    /// snapshot to replace it (its chunks folded in), or None to leave it.
    /// Views, summaries and the feed are untouched, so the replacement must
    /// hold the same changes. Each record's rewrite is atomic, and all are
    /// durable on return; a migration cut short is simply run again.
    /// Returns how many documents were rewritten.
    pub fn rewrite_documents(&self, rewrite: &mut Rewrite<'_>) -> Result<usize, StoreError> {
        let mut state = self.lock();
        let ids: Vec<RecordId> = self
            .records
            .scan_prefix([DOC])
            .keys()
            .map(|k| id_from(&k.map_err(io)?[1..]))
            .collect::<Result<_, _>>()?;
        let mut rewritten = 0;
        for id in ids {
            let Some(stored) = self.load(&id)? else {
                continue;
            };
            let Some(snapshot) = rewrite(&id, &stored)? else {
                continue;
            };
            let mut batch = sled::Batch::default();
            self.replace_doc(&mut batch, &id, snapshot)?;
            self.records.apply_batch(batch).map_err(io)?;
            rewritten += 1;
        }
        let ticket = state.ticket();
        drop(state);
        self.wait_durable(ticket)?;
        Ok(rewritten)
    }

    /// Add to `batch` what replaces a record's document with one snapshot:
    /// its chunks removed, the snapshot written.
    fn replace_doc(
        &self,
        batch: &mut sled::Batch,
        id: &RecordId,
        snapshot: Vec<u8>,
    ) -> Result<(), StoreError> {
        for kv in self.records.scan_prefix(key(CHUNK, id)) {
            batch.remove(kv.map_err(io)?.0);
        }
        batch.insert(&key(DOC, id)[..], snapshot);
        Ok(())
    }

    /// Return once every batch up to `ticket` is durable: at once if a
    /// flush already covered it, else after one flush that covers every
    /// batch applied so far.
    fn wait_durable(&self, ticket: u64) -> Result<(), StoreError> {
        let mut state = self.flusher.lock().unwrap_or_else(|p| p.into_inner());
        if state.flushed >= ticket {
            return Ok(());
        }
        // Read before flushing: every batch with a ticket up to here was
        // applied before the flush begins, so the flush covers it.
        let reach = self.lock().applied;
        self.make_durable(&mut state)?;
        state.flushed = reach;
        Ok(())
    }

    /// Flush sled, then fsync what `flush` leaves exposed to a power cut.
    fn make_durable(&self, state: &mut FlushState) -> Result<(), StoreError> {
        self.db.flush().map_err(io)?;
        self.db_file.sync_data().map_err(io)?;
        let blobs = self.path.join("blobs");
        if let Ok(entries) = std::fs::read_dir(&blobs) {
            let mut synced_any = false;
            for entry in entries.flatten() {
                let name = entry.file_name();
                if state.synced_blobs.contains(&name) {
                    continue;
                }
                // A blob sled removed meanwhile needs no syncing.
                if let Ok(f) = File::open(entry.path()) {
                    f.sync_all().map_err(io)?;
                }
                state.synced_blobs.insert(name);
                synced_any = true;
            }
            if synced_any {
                File::open(&blobs).and_then(|d| d.sync_all()).map_err(io)?;
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WriterState> {
        // A panic while holding the lock leaves no half-applied batch behind
        // (apply_batch is atomic), so the state is still usable.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl WriterState {
    /// Count one more applied batch; its ticket.
    fn ticket(&mut self) -> u64 {
        self.applied += 1;
        self.applied
    }
}

impl DocStore for SledStore {
    fn commit(&self, commit: Commit) -> Result<Vec<Seq>, StoreError> {
        let mut state = self.lock();
        let mut batch = sled::Batch::default();
        let mut seen = HashSet::new();
        let mut seqs = Vec::with_capacity(commit.records.len());
        let mut seq = state.last_seq;
        for w in commit.records {
            if !seen.insert(w.id) {
                return Err(StoreError::DuplicateInCommit(w.id));
            }
            seq += 1;
            if let Some(old) = self.records.get(key(SEQ_OF, &w.id)).map_err(io)? {
                batch.remove(&feed_key(seq_from(&old)?)[..]);
            }
            let chunk_prefix = key(CHUNK, &w.id);
            match w.doc {
                DocWrite::Append(chunk) => {
                    let next = match self.records.scan_prefix(chunk_prefix).next_back() {
                        Some(kv) => {
                            let (k, _) = kv.map_err(io)?;
                            let n: [u8; 4] = k[17..]
                                .try_into()
                                .map_err(|_| StoreError::Corrupt("chunk key".into()))?;
                            u32::from_be_bytes(n) + 1
                        }
                        None => 0,
                    };
                    batch.insert(&chunk_key(&w.id, next)[..], chunk);
                }
                DocWrite::Replace(snapshot) => self.replace_doc(&mut batch, &w.id, snapshot)?,
            }
            let summary = postcard::to_stdvec(&w.summary).map_err(io)?;
            batch.insert(&key(VIEW, &w.id)[..], w.view);
            batch.insert(&key(SUMMARY, &w.id)[..], summary);
            batch.insert(&feed_key(seq)[..], &w.id.as_bytes()[..]);
            batch.insert(&key(SEQ_OF, &w.id)[..], &seq.to_be_bytes()[..]);
            seqs.push(seq);
        }
        add_state(&mut batch, commit.state);

        self.records.apply_batch(batch).map_err(io)?;
        // The batch is visible now, so its seqs are spent even if the flush fails.
        state.last_seq = seq;
        let ticket = state.ticket();
        drop(state);
        self.wait_durable(ticket)?;
        Ok(seqs)
    }

    fn summary(&self, id: &RecordId) -> Result<Option<Summary>, StoreError> {
        match self.records.get(key(SUMMARY, id)).map_err(io)? {
            Some(v) => postcard::from_bytes(&v)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("summary: {e}"))),
            None => Ok(None),
        }
    }

    fn get_state(&self, k: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .records
            .get(state_key(k))
            .map_err(io)?
            .map(|v| v.to_vec()))
    }

    fn scan_state(&self, prefix: &[u8]) -> Result<StateEntries, StoreError> {
        self.records
            .scan_prefix(state_key(prefix))
            .map(|kv| {
                let (k, v) = kv.map_err(io)?;
                Ok((k[1..].to_vec(), v.to_vec()))
            })
            .collect()
    }

    fn put_state_lazy(&self, writes: Vec<StateWrite>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        add_state(&mut batch, writes);
        // Under the writer lock like every write, so an export sees none half-way.
        let _state = self.lock();
        self.records.apply_batch(batch).map_err(io)
    }

    fn export(&self, visit: &mut super::ExportVisit<'_>) -> Result<(), StoreError> {
        // Every write takes this lock, so what is visited is one moment's
        // state: each write entirely in or entirely out.
        let _state = self.lock();
        for (name, tree) in [("records", &self.records), ("meta", &self.meta)] {
            for entry in tree.iter() {
                let (k, v) = entry.map_err(io)?;
                visit(name, &k, &v)?;
            }
        }
        Ok(())
    }

    fn ensure_durable(&self) -> Result<(), StoreError> {
        let applied = self.lock().applied;
        self.wait_durable(applied)
    }

    fn load(&self, id: &RecordId) -> Result<Option<StoredDoc>, StoreError> {
        let Some(snapshot) = self.records.get(key(DOC, id)).map_err(io)? else {
            return Ok(None);
        };
        let chunks = self
            .records
            .scan_prefix(key(CHUNK, id))
            .values()
            .map(|v| v.map(|v| v.to_vec()).map_err(io))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(StoredDoc {
            snapshot: snapshot.to_vec(),
            chunks,
        }))
    }

    fn view(&self, id: &RecordId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .records
            .get(key(VIEW, id))
            .map_err(io)?
            .map(|v| v.to_vec()))
    }

    fn scan_summaries(
        &self,
        visit: &mut dyn FnMut(RecordId, Summary) -> bool,
    ) -> Result<(), StoreError> {
        for kv in self.records.scan_prefix([SUMMARY]).rev() {
            let (k, v) = kv.map_err(io)?;
            let summary: Summary = postcard::from_bytes(&v)
                .map_err(|e| StoreError::Corrupt(format!("summary: {e}")))?;
            if !visit(id_from(&k[1..])?, summary) {
                break;
            }
        }
        Ok(())
    }

    fn changes_since(&self, after: Seq, limit: usize) -> Result<Vec<FeedEntry>, StoreError> {
        let start = feed_key(after.saturating_add(1));
        let end = feed_key(Seq::MAX);
        let mut out = Vec::new();
        for kv in self.records.range(start..=end).take(limit) {
            let (k, v) = kv.map_err(io)?;
            out.push(FeedEntry {
                seq: seq_from(&k[1..])?,
                id: id_from(&v)?,
            });
        }
        Ok(out)
    }

    fn last_seq(&self) -> Result<Seq, StoreError> {
        Ok(self.lock().last_seq)
    }

    fn count(&self) -> Result<usize, StoreError> {
        Ok(self.records.scan_prefix([SEQ_OF]).count())
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(key).map_err(io)?.map(|v| v.to_vec()))
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let ticket = {
            let mut state = self.lock();
            self.meta.insert(key, value).map_err(io)?;
            state.ticket()
        };
        self.wait_durable(ticket)
    }
}

//! The sync engine: both ends of one exchange of protocol v1 (docs/SYNC.md),
//! over a [`Records`] service and without any network code. The server moves
//! the bytes; tests call these functions directly.
//!
//! Downstream (a boat, or a station towards HQ): [`Downstream::prepare`] builds
//! a request from the local change feed, [`Downstream::absorb`] stores the
//! response. Upstream: [`Upstream::handle`] applies a request and answers it.
//!
//! Bookkeeping, in the store's state space:
//! - `ds/checkpoint`: the downstream's push and pull checkpoints and the
//!   upstream's epoch;
//! - `ds/acked/<record>`: heads the upstream is known to have, per record;
//! - `us/known/<peer><record>`: heads a downstream is known to have;
//! - `us/pending/<peer>`: the last pull page sent, until the peer confirms it;
//! - `us/served/<peer>`: the highest pull checkpoint handed to the peer.

use crate::plan::{check_checkpoint, frontier, page_confirmed, CheckpointVerdict};
use crate::protocol::{DocChanges, DocSyncMessage, Rejected, Rejection, SyncRequest, SyncResponse};
use crate::record::RecordMeta;
use crate::records::{Records, RecordsError, RemoteDoc, RemoteResult};
use crate::store::{DocStore, StateWrite, StoreError};
use automerge::{sync, Change, ChangeHash};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;
use tideline_schemas::RecordId;

/// Default bound on the change bytes of one push or pull page. Large enough that
/// steady-state syncs take one round trip, small enough that a cut link loses
/// little and a page is a bounded amount of memory on both sides.
pub const DEFAULT_PAGE_BYTES: u64 = 1024 * 1024;
/// Feed entries one page may examine, so a page's time is bounded even when
/// most entries are out of scope or unchanged.
const MAX_SCAN: usize = 20_000;

const CHECKPOINT_KEY: &[u8] = b"ds/checkpoint";
const ACKED: &[u8] = b"ds/acked/";
const KNOWN: &[u8] = b"us/known/";
const PENDING: &[u8] = b"us/pending/";
const SERVED: &[u8] = b"us/served/";
const EPOCH_KEY: &str = "epoch";

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Records(#[from] RecordsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("sync bookkeeping is corrupt: {0}")]
    Corrupt(String),
}

/// The downstream's checkpoints towards its upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Local seq up to which every change has been pushed and acknowledged.
    pub push_seq: u64,
    /// Upstream seq up to which every change has been pulled and stored.
    pub pull_seq: u64,
    pub epoch: Option<[u8; 16]>,
    pub upstream: Option<[u8; 16]>,
}

fn encode_heads(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

fn decode_heads(bytes: &[u8]) -> Result<Vec<ChangeHash>, SyncError> {
    if bytes.len() % 32 != 0 {
        return Err(SyncError::Corrupt("heads".into()));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            ChangeHash(h)
        })
        .collect())
}

fn key(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

fn heads_at(store: &dyn DocStore, k: &[u8]) -> Result<Vec<ChangeHash>, SyncError> {
    match store.get_state(k)? {
        Some(bytes) => decode_heads(&bytes),
        None => Ok(Vec::new()),
    }
}

fn hashes_and_deps(changes: &[Change]) -> Vec<(ChangeHash, Vec<ChangeHash>)> {
    changes
        .iter()
        .map(|c| (c.hash(), c.deps().to_vec()))
        .collect()
}

/// Decode peer changes, refusing (not panicking on) anything malformed.
fn decode_changes(raw: Vec<Vec<u8>>) -> Option<Vec<Change>> {
    catch_unwind(AssertUnwindSafe(|| {
        raw.into_iter()
            .map(|bytes| Change::from_bytes(bytes).ok())
            .collect::<Option<Vec<_>>>()
    }))
    .ok()
    .flatten()
}

fn raw_changes(changes: &[Change]) -> Vec<Vec<u8>> {
    changes.iter().map(|c| c.raw_bytes().to_vec()).collect()
}

fn changes_size(changes: &[Change]) -> u64 {
    changes.iter().map(|c| c.raw_bytes().len() as u64).sum()
}

fn record_id(bytes: [u8; 16]) -> RecordId {
    RecordId::from_bytes(bytes)
}

/// Counts of one exchange, for progress reporting and status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exchange {
    pub pushed: usize,
    pub pulled: usize,
    pub rejected: usize,
    /// More exchanges are needed to finish (paging, fallback or reset).
    pub more: bool,
    /// The upstream did not recognise our checkpoint; bookkeeping was reset.
    pub reset: bool,
}

/// What `prepare` promised, kept until the response arrives.
pub struct Pending {
    push_upto: u64,
    more_push: bool,
    acked_after: Vec<(RecordId, Vec<ChangeHash>)>,
}

/// The downstream side of sync. Holds the in-flight state of Automerge
/// sync-protocol repairs between exchanges of one sync.
pub struct Downstream<'a, S: DocStore> {
    records: &'a Records<S>,
    page_bytes: u64,
    repairs: HashMap<RecordId, (sync::State, Option<Vec<u8>>)>,
}

impl<'a, S: DocStore> Downstream<'a, S> {
    pub fn new(records: &'a Records<S>) -> Self {
        Downstream {
            records,
            page_bytes: DEFAULT_PAGE_BYTES,
            repairs: HashMap::new(),
        }
    }

    pub fn with_page_bytes(mut self, bytes: u64) -> Self {
        self.page_bytes = bytes.max(1);
        self
    }

    pub fn checkpoint(records: &Records<S>) -> Result<Checkpoint, SyncError> {
        match records.store().get_state(CHECKPOINT_KEY)? {
            Some(bytes) => {
                postcard::from_bytes(&bytes).map_err(|e| SyncError::Corrupt(e.to_string()))
            }
            None => Ok(Checkpoint::default()),
        }
    }

    /// Local changes not yet acknowledged by the upstream (an upper bound:
    /// records touched only by pulls count until the next push passes them).
    pub fn pending_changes(records: &Records<S>) -> Result<usize, SyncError> {
        let cp = Self::checkpoint(records)?;
        Ok(records
            .store()
            .changes_since(cp.push_seq, usize::MAX)?
            .len())
    }

    /// Build the next request: a page of local changes and the pull checkpoint.
    pub fn prepare(&mut self) -> Result<(SyncRequest, Pending), SyncError> {
        let store = self.records.store();
        let cp = Self::checkpoint(self.records)?;
        let mut push = Vec::new();
        let mut acked_after = Vec::new();
        let mut bytes = 0u64;
        let mut upto = cp.push_seq;
        let mut more_push = false;
        let mut scanned = 0usize;
        'scan: loop {
            let entries = store.changes_since(upto, 512)?;
            if entries.is_empty() {
                break;
            }
            for entry in entries {
                scanned += 1;
                if scanned > MAX_SCAN {
                    more_push = true;
                    break 'scan;
                }
                if self.repairs.contains_key(&entry.id) {
                    upto = entry.seq;
                    continue;
                }
                let acked = heads_at(store, &key(ACKED, &[entry.id.as_bytes()]))?;
                let changes = self
                    .records
                    .changes_since(&entry.id, &acked)?
                    .unwrap_or_default();
                if changes.is_empty() {
                    upto = entry.seq;
                    continue;
                }
                let size = changes_size(&changes);
                if !push.is_empty() && bytes + size > self.page_bytes {
                    more_push = true;
                    break 'scan;
                }
                bytes += size;
                upto = entry.seq;
                acked_after.push((entry.id, frontier(&acked, &hashes_and_deps(&changes))));
                push.push(DocChanges {
                    id: *entry.id.as_bytes(),
                    changes: raw_changes(&changes),
                });
            }
        }
        let mut fallback = Vec::new();
        for (id, (state, outgoing)) in self.repairs.iter_mut() {
            let message = match outgoing.take() {
                Some(m) => Some(m),
                None => self.records.fallback_step(id, state, None, |_| true)?,
            };
            if let Some(message) = message {
                fallback.push(DocSyncMessage {
                    id: *id.as_bytes(),
                    message,
                });
            }
        }
        let identity = self.records.identity();
        let request = SyncRequest {
            instance: *identity.device_id.as_bytes(),
            station: self.records.station().to_string(),
            epoch: cp.epoch,
            pull_since: cp.pull_seq,
            max_pull_bytes: self.page_bytes,
            push,
            fallback,
        };
        Ok((
            request,
            Pending {
                push_upto: upto,
                more_push,
                acked_after,
            },
        ))
    }

    /// Store a response: acknowledgements, pulled records and the new
    /// checkpoints, in one durable commit.
    pub fn absorb(
        &mut self,
        pending: Pending,
        response: SyncResponse,
    ) -> Result<Exchange, SyncError> {
        let store = self.records.store();
        let cp = Self::checkpoint(self.records)?;
        if response.reset || cp.epoch.is_some_and(|e| e != response.epoch) {
            self.reset(response.epoch)?;
            return Ok(Exchange {
                more: true,
                reset: true,
                ..Default::default()
            });
        }

        let rejected: HashMap<RecordId, Rejection> = response
            .rejected
            .iter()
            .map(|r| (record_id(r.id), r.reason))
            .collect();
        for (id, reason) in &rejected {
            match reason {
                Rejection::MissingDeps => {
                    self.repairs
                        .entry(*id)
                        .or_insert_with(|| (sync::State::new(), None));
                }
                other => tracing::warn!(record = %id, reason = ?other, "upstream refused a record"),
            }
        }
        let mut acked: HashMap<RecordId, Vec<ChangeHash>> = pending
            .acked_after
            .into_iter()
            .filter(|(id, _)| !rejected.contains_key(id))
            .collect();
        let pushed = acked.len();

        let mut docs = Vec::with_capacity(response.pull.len());
        let mut pulled_heads = HashMap::new();
        for dc in response.pull {
            let id = record_id(dc.id);
            let Some(changes) = decode_changes(dc.changes) else {
                tracing::warn!(record = %id, "upstream sent changes that do not decode");
                continue;
            };
            let base = match acked.get(&id) {
                Some(h) => h.clone(),
                None => heads_at(store, &key(ACKED, &[id.as_bytes()]))?,
            };
            pulled_heads.insert(id, frontier(&base, &hashes_and_deps(&changes)));
            docs.push(RemoteDoc { id, changes });
        }
        let next = Checkpoint {
            push_seq: pending.push_upto,
            pull_seq: response.pull_seq,
            epoch: Some(response.epoch),
            upstream: Some(response.instance),
        };
        let next_bytes =
            postcard::to_stdvec(&next).map_err(|e| SyncError::Corrupt(e.to_string()))?;
        let mut missing = Vec::new();
        let results = self.records.apply_remote(
            docs,
            |_| true,
            |results| {
                for (id, result) in results {
                    match result {
                        RemoteResult::Applied | RemoteResult::Unchanged => {
                            if let Some(h) = pulled_heads.remove(id) {
                                acked.insert(*id, h);
                            }
                        }
                        RemoteResult::MissingDeps => missing.push(*id),
                        _ => {}
                    }
                }
                let mut writes: Vec<StateWrite> = acked
                    .iter()
                    .map(|(id, heads)| StateWrite {
                        key: key(ACKED, &[id.as_bytes()]),
                        value: Some(encode_heads(heads)),
                    })
                    .collect();
                writes.push(StateWrite {
                    key: CHECKPOINT_KEY.to_vec(),
                    value: Some(next_bytes),
                });
                writes
            },
        )?;
        for id in missing {
            self.repairs
                .entry(id)
                .or_insert_with(|| (sync::State::new(), None));
        }
        let pulled = results
            .iter()
            .filter(|(_, r)| *r == RemoteResult::Applied)
            .count();

        for msg in response.fallback {
            let id = record_id(msg.id);
            let Some((state, outgoing)) = self.repairs.get_mut(&id) else {
                continue;
            };
            *outgoing = self
                .records
                .fallback_step(&id, state, Some(&msg.message), |_| true)?;
        }
        self.finish_repairs()?;

        Ok(Exchange {
            pushed,
            pulled,
            rejected: rejected.len(),
            more: pending.more_push || response.more || !self.repairs.is_empty(),
            reset: false,
        })
    }

    /// A repair is done when neither side has anything left to say; the heads
    /// both sides then share become the record's acknowledged heads.
    fn finish_repairs(&mut self) -> Result<(), SyncError> {
        let mut done = Vec::new();
        for (id, (state, outgoing)) in self.repairs.iter_mut() {
            if outgoing.is_none() {
                *outgoing = self.records.fallback_step(id, state, None, |_| true)?;
                if outgoing.is_none() && state.their_heads.is_some() {
                    done.push((*id, state.shared_heads.clone()));
                }
            }
        }
        let writes: Vec<StateWrite> = done
            .iter()
            .map(|(id, heads)| StateWrite {
                key: key(ACKED, &[id.as_bytes()]),
                value: Some(encode_heads(heads)),
            })
            .collect();
        if !writes.is_empty() {
            self.records.store().commit(crate::store::Commit {
                records: Vec::new(),
                state: writes,
            })?;
        }
        for (id, _) in done {
            self.repairs.remove(&id);
        }
        Ok(())
    }

    /// Forget everything known about the upstream: the next exchanges push
    /// every record in full and pull everything in scope.
    fn reset(&mut self, epoch: [u8; 16]) -> Result<(), SyncError> {
        let store = self.records.store();
        let mut writes: Vec<StateWrite> = store
            .scan_state(ACKED)?
            .into_iter()
            .map(|(key, _)| StateWrite { key, value: None })
            .collect();
        let fresh = Checkpoint {
            epoch: Some(epoch),
            ..Default::default()
        };
        writes.push(StateWrite {
            key: CHECKPOINT_KEY.to_vec(),
            value: Some(
                postcard::to_stdvec(&fresh).map_err(|e| SyncError::Corrupt(e.to_string()))?,
            ),
        });
        store.commit(crate::store::Commit {
            records: Vec::new(),
            state: writes,
        })?;
        self.repairs.clear();
        tracing::warn!("upstream did not recognise our checkpoint; resending everything");
        Ok(())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PendingPage {
    upto: u64,
    entries: Vec<([u8; 16], Vec<u8>)>,
}

/// The upstream side of sync. Holds in-memory Automerge sync states for
/// records being repaired with each downstream.
#[derive(Default)]
pub struct Upstream {
    repairs: Mutex<HashMap<([u8; 16], RecordId), sync::State>>,
}

impl Upstream {
    pub fn new() -> Self {
        Self::default()
    }

    /// This store's epoch, made on first use. A store restored by `tideline
    /// restore` gets a new one, so downstreams know to start over.
    pub fn epoch<S: DocStore>(records: &Records<S>) -> Result<[u8; 16], SyncError> {
        let store = records.store();
        if let Some(bytes) = store.get_meta(EPOCH_KEY)? {
            return bytes
                .try_into()
                .map_err(|_| SyncError::Corrupt("epoch".into()));
        }
        let epoch = *uuid::Uuid::new_v4().as_bytes();
        store.put_meta(EPOCH_KEY, &epoch)?;
        Ok(epoch)
    }

    /// Apply one request and build its response. Pushed records are durable
    /// before this returns.
    pub fn handle<S: DocStore>(
        &self,
        records: &Records<S>,
        request: SyncRequest,
    ) -> Result<SyncResponse, SyncError> {
        let store = records.store();
        let epoch = Self::epoch(records)?;
        let instance = *records.identity().device_id.as_bytes();
        let peer = request.instance;
        let served_key = key(SERVED, &[&peer]);
        let served = match store.get_state(&served_key)? {
            Some(b) => u64::from_be_bytes(
                b.try_into()
                    .map_err(|_| SyncError::Corrupt("served".into()))?,
            ),
            None => 0,
        };
        if check_checkpoint(request.epoch, epoch, request.pull_since, served)
            == CheckpointVerdict::Reset
        {
            // Start this peer afresh: what we thought it had no longer counts.
            let mut forget: Vec<StateWrite> = store
                .scan_state(&key(KNOWN, &[&peer]))?
                .into_iter()
                .map(|(key, _)| StateWrite { key, value: None })
                .collect();
            forget.push(StateWrite {
                key: served_key,
                value: None,
            });
            forget.push(StateWrite {
                key: key(PENDING, &[&peer]),
                value: None,
            });
            store.put_state_lazy(forget)?;
            return Ok(SyncResponse {
                instance,
                epoch,
                reset: true,
                pull_seq: 0,
                ..Default::default()
            });
        }
        let station = request.station.clone();
        let in_scope = |meta: &RecordMeta| meta.station == station;

        // Confirm (or drop) the previous pull page.
        let pending_key = key(PENDING, &[&peer]);
        let mut lazy = Vec::new();
        if let Some(bytes) = store.get_state(&pending_key)? {
            let page: PendingPage =
                postcard::from_bytes(&bytes).map_err(|e| SyncError::Corrupt(e.to_string()))?;
            if page_confirmed(page.upto, request.pull_since) {
                for (id, heads) in page.entries {
                    lazy.push(StateWrite {
                        key: key(KNOWN, &[&peer, &id]),
                        value: Some(heads),
                    });
                }
            }
            lazy.push(StateWrite {
                key: pending_key.clone(),
                value: None,
            });
        }
        if !lazy.is_empty() {
            store.put_state_lazy(std::mem::take(&mut lazy))?;
        }

        // Apply pushes.
        let mut rejected = Vec::new();
        let mut docs = Vec::new();
        let mut sent_heads = HashMap::new();
        for dc in request.push {
            let id = record_id(dc.id);
            match decode_changes(dc.changes) {
                Some(changes) => {
                    sent_heads.insert(id, hashes_and_deps(&changes));
                    docs.push(RemoteDoc { id, changes });
                }
                None => rejected.push(Rejected {
                    id: dc.id,
                    reason: Rejection::Invalid,
                }),
            }
        }
        let results = records.apply_remote(docs, in_scope, |_| Vec::new())?;
        for (id, result) in &results {
            let reason = match result {
                RemoteResult::Applied | RemoteResult::Unchanged => {
                    // The peer has what it sent: remember it, so pulls do not echo it back.
                    let known_key = key(KNOWN, &[&peer, id.as_bytes()]);
                    let known = heads_at(store, &known_key)?;
                    let sent = sent_heads.remove(id).unwrap_or_default();
                    lazy.push(StateWrite {
                        key: known_key,
                        value: Some(encode_heads(&frontier(&known, &sent))),
                    });
                    continue;
                }
                RemoteResult::MissingDeps => Rejection::MissingDeps,
                RemoteResult::Forbidden => Rejection::Forbidden,
                RemoteResult::Invalid(_) => Rejection::Invalid,
            };
            rejected.push(Rejected {
                id: *id.as_bytes(),
                reason,
            });
        }
        if !lazy.is_empty() {
            store.put_state_lazy(std::mem::take(&mut lazy))?;
        }

        // Repairs with Automerge's sync protocol.
        let mut fallback = Vec::new();
        for msg in request.fallback {
            let id = record_id(msg.id);
            let mut repairs = self.repairs.lock().unwrap_or_else(|p| p.into_inner());
            let state = repairs.entry((peer, id)).or_insert_with(sync::State::new);
            match records.fallback_step(&id, state, Some(&msg.message), in_scope) {
                Ok(Some(reply)) => fallback.push(DocSyncMessage {
                    id: msg.id,
                    message: reply,
                }),
                Ok(None) => {
                    lazy.push(StateWrite {
                        key: key(KNOWN, &[&peer, id.as_bytes()]),
                        value: Some(encode_heads(&state.shared_heads)),
                    });
                    repairs.remove(&(peer, id));
                }
                Err(e) => {
                    tracing::warn!(record = %id, error = %e, "repair refused");
                    repairs.remove(&(peer, id));
                    rejected.push(Rejected {
                        id: msg.id,
                        reason: Rejection::Invalid,
                    });
                }
            }
        }

        // The pull page: records in the peer's scope changed since its checkpoint.
        let budget = if request.max_pull_bytes == 0 {
            DEFAULT_PAGE_BYTES
        } else {
            request.max_pull_bytes
        };
        let mut pull = Vec::new();
        let mut page = PendingPage::default();
        let mut bytes = 0u64;
        let mut upto = request.pull_since;
        let mut more = false;
        let mut scanned = 0usize;
        'scan: loop {
            let entries = store.changes_since(upto, 512)?;
            if entries.is_empty() {
                break;
            }
            for entry in entries {
                scanned += 1;
                if scanned > MAX_SCAN {
                    more = true;
                    break 'scan;
                }
                let visible = store
                    .summary(&entry.id)?
                    .is_some_and(|s| s.station == request.station);
                if !visible {
                    upto = entry.seq;
                    continue;
                }
                let known = heads_at(store, &key(KNOWN, &[&peer, entry.id.as_bytes()]))?;
                let changes = records
                    .changes_since(&entry.id, &known)?
                    .unwrap_or_default();
                if changes.is_empty() {
                    upto = entry.seq;
                    continue;
                }
                let size = changes_size(&changes);
                if !pull.is_empty() && bytes + size > budget {
                    more = true;
                    break 'scan;
                }
                bytes += size;
                upto = entry.seq;
                page.entries.push((
                    *entry.id.as_bytes(),
                    encode_heads(&frontier(&known, &hashes_and_deps(&changes))),
                ));
                pull.push(DocChanges {
                    id: *entry.id.as_bytes(),
                    changes: raw_changes(&changes),
                });
            }
        }
        if upto > served {
            lazy.push(StateWrite {
                key: served_key,
                value: Some(upto.to_be_bytes().to_vec()),
            });
        }
        if !page.entries.is_empty() {
            page.upto = upto;
            lazy.push(StateWrite {
                key: pending_key,
                value: Some(
                    postcard::to_stdvec(&page).map_err(|e| SyncError::Corrupt(e.to_string()))?,
                ),
            });
        }
        if !lazy.is_empty() {
            store.put_state_lazy(lazy)?;
        }
        Ok(SyncResponse {
            instance,
            epoch,
            reset: false,
            rejected,
            pull,
            pull_seq: upto,
            more,
            fallback,
        })
    }
}

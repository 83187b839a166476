//! The sync bookkeeping: what each side of sync knows of the other, kept in
//! the store's state space under keys only this module reads or writes.
//!
//! A downstream keeps, about its upstream:
//! - `ds/checkpoint`: its push and pull checkpoints and the upstream's epoch;
//! - `ds/acked/<record>`: heads the upstream is known to have, per record;
//! - `ds/repair/<record>`: records to repair with Automerge's sync protocol,
//!   kept until the repair completes so a cut sync resumes it;
//! - `ds/file/<sha256>`: attachment files the upstream has accepted;
//! - `ds/relayed/<batch id>`, `ds/cert/<device>`: other devices' batches and
//!   certificates the upstream has accepted from us (docs/EVIDENCE.md);
//! - `ds/anchor/<seq>`: the hash of our audit entry `seq`, for each audit
//!   head the upstream acknowledged (so `audit verify` can compare).
//!
//! An upstream keeps, per downstream (`<peer>` is its instance id):
//! - `us/known/<peer><record>`: heads the downstream is known to have;
//! - `us/pending/<peer>`: the last pull page sent, until the peer confirms it;
//! - `us/served/<peer>`: the highest pull checkpoint handed to the peer;
//!
//! and, in the store's meta, its `epoch`.
//!
//! A [`Ledger`] gathers the writes of one exchange and reads through them, so
//! that each exchange commits its bookkeeping once.

use crate::engine::error::SyncError;
use crate::evidence::AuditHead;
use crate::store::{Commit, DocStore, StateWrite};
use automerge::ChangeHash;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use tideline_schemas::RecordId;

const CHECKPOINT: &[u8] = b"ds/checkpoint";
const ACKED: &[u8] = b"ds/acked/";
const REPAIR: &[u8] = b"ds/repair/";
const FILE_SENT: &[u8] = b"ds/file/";
const RELAYED: &[u8] = b"ds/relayed/";
const CERT_SENT: &[u8] = b"ds/cert/";
const ANCHOR: &[u8] = b"ds/anchor/";
const KNOWN: &[u8] = b"us/known/";
const PENDING: &[u8] = b"us/pending/";
const SERVED: &[u8] = b"us/served/";
const EPOCH: &str = "epoch";

/// A downstream instance, as its upstream names it: its device id.
pub type PeerId = [u8; 16];

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

/// The last pull page an upstream sent a peer: how far it reached, and the
/// heads the peer will share for each record once it has stored the page.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PendingPage {
    pub upto: u64,
    pub entries: Vec<([u8; 16], Vec<u8>)>,
}

/// One store's sync bookkeeping, read through the writes not yet committed.
pub struct Ledger<'s> {
    store: &'s dyn DocStore,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

fn key(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

pub fn encode_heads(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

fn decode_heads(bytes: &[u8]) -> Result<Vec<ChangeHash>, SyncError> {
    if !bytes.len().is_multiple_of(32) {
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

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, SyncError> {
    postcard::to_stdvec(value).map_err(|e| SyncError::Corrupt(e.to_string()))
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, SyncError> {
    postcard::from_bytes(bytes).map_err(|e| SyncError::Corrupt(e.to_string()))
}

impl<'s> Ledger<'s> {
    pub fn new(store: &'s dyn DocStore) -> Self {
        Ledger {
            store,
            writes: BTreeMap::new(),
        }
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, SyncError> {
        match self.writes.get(key) {
            Some(value) => Ok(value.clone()),
            None => Ok(self.store.get_state(key)?),
        }
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// The keys under `prefix`, as they will be once the writes commit.
    fn keys(&self, prefix: &[u8]) -> Result<BTreeSet<Vec<u8>>, SyncError> {
        let mut keys: BTreeSet<Vec<u8>> = self
            .store
            .scan_state(prefix)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let written = self.writes.range(prefix.to_vec()..);
        for (k, v) in written.take_while(|(k, _)| k.starts_with(prefix)) {
            match v {
                Some(_) => keys.insert(k.clone()),
                None => keys.remove(k),
            };
        }
        Ok(keys)
    }

    fn delete_all(&mut self, prefix: &[u8]) -> Result<(), SyncError> {
        for k in self.keys(prefix)? {
            self.delete(k);
        }
        Ok(())
    }

    fn heads(&self, key: &[u8]) -> Result<Vec<ChangeHash>, SyncError> {
        match self.get(key)? {
            Some(bytes) => decode_heads(&bytes),
            None => Ok(Vec::new()),
        }
    }

    /// The writes gathered so far, to commit with the records they go with.
    pub fn take_writes(&mut self) -> Vec<StateWrite> {
        std::mem::take(&mut self.writes)
            .into_iter()
            .map(|(key, value)| StateWrite { key, value })
            .collect()
    }

    /// Commit the writes durably, on their own.
    pub fn commit(mut self) -> Result<(), SyncError> {
        let state = self.take_writes();
        if !state.is_empty() {
            self.store.commit(Commit {
                records: Vec::new(),
                state,
            })?;
        }
        Ok(())
    }

    /// Commit the writes without waiting for durability: for bookkeeping
    /// whose loss costs a resend, never data.
    pub fn commit_lazy(mut self) -> Result<(), SyncError> {
        let state = self.take_writes();
        if !state.is_empty() {
            self.store.put_state_lazy(state)?;
        }
        Ok(())
    }

    // The downstream's bookkeeping.

    pub fn checkpoint(&self) -> Result<Checkpoint, SyncError> {
        match self.get(CHECKPOINT)? {
            Some(bytes) => decode(&bytes),
            None => Ok(Checkpoint::default()),
        }
    }

    pub fn set_checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), SyncError> {
        let bytes = encode(checkpoint)?;
        self.put(CHECKPOINT.to_vec(), bytes);
        Ok(())
    }

    /// Heads of `id` the upstream is known to have.
    pub fn acked(&self, id: &RecordId) -> Result<Vec<ChangeHash>, SyncError> {
        self.heads(&key(ACKED, &[id.as_bytes()]))
    }

    pub fn set_acked(&mut self, id: &RecordId, heads: &[ChangeHash]) {
        self.put(key(ACKED, &[id.as_bytes()]), encode_heads(heads));
    }

    /// Records waiting for a repair.
    pub fn repairs(&self) -> Result<Vec<RecordId>, SyncError> {
        Ok(self
            .keys(REPAIR)?
            .iter()
            .filter_map(|k| <[u8; 16]>::try_from(&k[REPAIR.len()..]).ok())
            .map(RecordId::from_bytes)
            .collect())
    }

    pub fn add_repair(&mut self, id: &RecordId) {
        self.put(key(REPAIR, &[id.as_bytes()]), Vec::new());
    }

    pub fn drop_repair(&mut self, id: &RecordId) {
        self.delete(key(REPAIR, &[id.as_bytes()]));
    }

    /// Whether the upstream has accepted the file with this SHA-256.
    pub fn file_sent(&self, hash: &[u8; 32]) -> Result<bool, SyncError> {
        Ok(self.get(&key(FILE_SENT, &[hash]))?.is_some())
    }

    pub fn mark_file_sent(&mut self, hash: &[u8; 32]) {
        self.put(key(FILE_SENT, &[hash]), Vec::new());
    }

    pub fn relayed(&self, batch: &[u8; 32]) -> Result<bool, SyncError> {
        Ok(self.get(&key(RELAYED, &[batch]))?.is_some())
    }

    pub fn mark_relayed(&mut self, batch: &[u8; 32]) {
        self.put(key(RELAYED, &[batch]), Vec::new());
    }

    pub fn certificate_sent(&self, device: &[u8; 16]) -> Result<bool, SyncError> {
        Ok(self.get(&key(CERT_SENT, &[device]))?.is_some())
    }

    pub fn mark_certificate_sent(&mut self, device: &[u8; 16]) {
        self.put(key(CERT_SENT, &[device]), Vec::new());
    }

    /// The audit heads the upstream acknowledged, oldest first.
    pub fn anchors(&self) -> Result<Vec<AuditHead>, SyncError> {
        self.keys(ANCHOR)?
            .into_iter()
            .map(|k| {
                let seq = k[ANCHOR.len()..]
                    .try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| SyncError::Corrupt("anchor".into()))?;
                let hash = self
                    .get(&k)?
                    .and_then(|v| v.try_into().ok())
                    .ok_or_else(|| SyncError::Corrupt("anchor".into()))?;
                Ok(AuditHead { seq, hash })
            })
            .collect()
    }

    pub fn add_anchor(&mut self, head: &AuditHead) {
        if head.seq > 0 {
            self.put(key(ANCHOR, &[&head.seq.to_be_bytes()]), head.hash.to_vec());
        }
    }

    /// Forget everything known about the upstream, keeping only its epoch:
    /// what it acknowledged, the repairs under way and the files it accepted
    /// may all be gone from it.
    pub fn forget_upstream(&mut self, epoch: [u8; 16]) -> Result<(), SyncError> {
        for prefix in [ACKED, REPAIR, FILE_SENT, RELAYED, CERT_SENT] {
            self.delete_all(prefix)?;
        }
        self.set_checkpoint(&Checkpoint {
            epoch: Some(epoch),
            ..Default::default()
        })
    }

    // The upstream's bookkeeping.

    /// This store's epoch, made on first use. A restore that knows it is one
    /// should give the store a new epoch; a copy put back by hand is caught by
    /// the per-peer served marker instead (see docs/SYNC.md).
    pub fn epoch(&self) -> Result<[u8; 16], SyncError> {
        if let Some(bytes) = self.store.get_meta(EPOCH)? {
            return bytes
                .try_into()
                .map_err(|_| SyncError::Corrupt("epoch".into()));
        }
        let epoch = *uuid::Uuid::new_v4().as_bytes();
        self.store.put_meta(EPOCH, &epoch)?;
        Ok(epoch)
    }

    /// The highest pull checkpoint handed to `peer`.
    pub fn served(&self, peer: &PeerId) -> Result<u64, SyncError> {
        match self.get(&key(SERVED, &[peer]))? {
            Some(bytes) => Ok(u64::from_be_bytes(
                bytes
                    .try_into()
                    .map_err(|_| SyncError::Corrupt("served".into()))?,
            )),
            None => Ok(0),
        }
    }

    pub fn set_served(&mut self, peer: &PeerId, upto: u64) {
        self.put(key(SERVED, &[peer]), upto.to_be_bytes().to_vec());
    }

    /// Heads of `id` the peer is known to have.
    pub fn known(&self, peer: &PeerId, id: &RecordId) -> Result<Vec<ChangeHash>, SyncError> {
        self.heads(&key(KNOWN, &[peer, id.as_bytes()]))
    }

    pub fn set_known(&mut self, peer: &PeerId, id: &RecordId, heads: &[ChangeHash]) {
        self.put(key(KNOWN, &[peer, id.as_bytes()]), encode_heads(heads));
    }

    pub fn pending_page(&self, peer: &PeerId) -> Result<Option<PendingPage>, SyncError> {
        self.get(&key(PENDING, &[peer]))?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    /// Remember the page sent to `peer` until it confirms it (an empty page
    /// has nothing to confirm).
    pub fn set_pending_page(&mut self, peer: &PeerId, page: &PendingPage) -> Result<(), SyncError> {
        let k = key(PENDING, &[peer]);
        if page.entries.is_empty() {
            // Most exchanges have no page and no page pending: write nothing.
            if self.get(&k)?.is_some() {
                self.delete(k);
            }
        } else {
            let bytes = encode(page)?;
            self.put(k, bytes);
        }
        Ok(())
    }

    /// The peer stored the pending page: it has what the page held.
    pub fn confirm_pending_page(&mut self, peer: &PeerId, page: PendingPage) {
        for (id, heads) in page.entries {
            self.put(key(KNOWN, &[peer, &id]), heads);
        }
    }

    /// Start `peer` afresh: what it was known to have no longer counts.
    pub fn forget_peer(&mut self, peer: &PeerId) -> Result<(), SyncError> {
        self.delete_all(&key(KNOWN, &[peer]))?;
        self.delete(key(SERVED, &[peer]));
        self.delete(key(PENDING, &[peer]));
        Ok(())
    }
}

//! Where signatures are kept: in the store's state space, committed with
//! the records they cover, so a record is never stored without them.
//!
//! - `sig/batch/<batch id>`: a [`Batch`], postcard;
//! - `sig/tip/<change hash><signer>`: the id of a batch in which `signer`
//!   signed that hash (what the upstream asks when checking a change);
//! - `sig/rec/<record><batch id>`: the signer of a batch that signed tips
//!   of that record (what a relay asks when it passes a record on);
//! - `sig/cert/<device>`: the [`Certificate`] a downstream presented for a
//!   device it enrolled; the first one for a device is kept.

use crate::evidence::signed::{Batch, Certificate};
use crate::store::{DocStore, StateWrite, StoreError};
use automerge::ChangeHash;
use tideline_schemas::RecordId;

const BATCH: &[u8] = b"sig/batch/";
const TIP: &[u8] = b"sig/tip/";
const RECORD: &[u8] = b"sig/rec/";
const CERTIFICATE: &[u8] = b"sig/cert/";

fn key(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// A device id (an Automerge actor) and a batch id.
pub type DeviceId = [u8; 16];
pub type BatchId = [u8; 32];

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("stored {what}"))
}

/// The writes that keep `batch`, signing tips of `records`.
pub fn batch_writes(batch: &Batch, records: &[RecordId]) -> Result<Vec<StateWrite>, StoreError> {
    let id = batch.id();
    let bytes = postcard::to_stdvec(batch).map_err(|_| corrupt("batch"))?;
    let mut writes = Vec::with_capacity(1 + batch.tips.len() + records.len());
    writes.push(StateWrite {
        key: key(BATCH, &[&id]),
        value: Some(bytes),
    });
    for tip in &batch.tips {
        writes.push(StateWrite {
            key: key(TIP, &[tip, &batch.signer]),
            value: Some(id.to_vec()),
        });
    }
    for record in records {
        writes.push(StateWrite {
            key: key(RECORD, &[record.as_bytes(), &id]),
            value: Some(batch.signer.to_vec()),
        });
    }
    Ok(writes)
}

/// Whether `signer` signed `hash` in a kept batch.
pub fn signed_by(
    store: &dyn DocStore,
    hash: &ChangeHash,
    signer: &[u8; 16],
) -> Result<bool, StoreError> {
    Ok(store.get_state(&key(TIP, &[&hash.0, signer]))?.is_some())
}

pub fn batch(store: &dyn DocStore, id: &[u8; 32]) -> Result<Option<Batch>, StoreError> {
    store
        .get_state(&key(BATCH, &[id]))?
        .map(|bytes| postcard::from_bytes(&bytes).map_err(|_| corrupt("batch")))
        .transpose()
}

/// The (batch id, signer) of every kept batch that signed tips of `record`.
pub fn record_batches(
    store: &dyn DocStore,
    record: &RecordId,
) -> Result<Vec<(BatchId, DeviceId)>, StoreError> {
    store
        .scan_state(&key(RECORD, &[record.as_bytes()]))?
        .into_iter()
        .map(|(k, v)| {
            let id = k[RECORD.len() + 16..]
                .try_into()
                .map_err(|_| corrupt("index"))?;
            let signer = v.as_slice().try_into().map_err(|_| corrupt("index"))?;
            Ok((id, signer))
        })
        .collect()
}

pub fn certificate(
    store: &dyn DocStore,
    device: &[u8; 16],
) -> Result<Option<Certificate>, StoreError> {
    store
        .get_state(&key(CERTIFICATE, &[device]))?
        .map(|bytes| postcard::from_bytes(&bytes).map_err(|_| corrupt("certificate")))
        .transpose()
}

pub fn certificate_write(cert: &Certificate) -> Result<StateWrite, StoreError> {
    Ok(StateWrite {
        key: key(CERTIFICATE, &[&cert.enrolment.device]),
        value: Some(postcard::to_stdvec(cert).map_err(|_| corrupt("certificate"))?),
    })
}

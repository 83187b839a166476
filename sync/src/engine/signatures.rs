//! Signatures in sync (docs/EVIDENCE.md): how a request is signed, and how
//! an upstream checks one before anything of it is stored.
//!
//! The sender signs one [`Batch`]: the tips of every record it pushes (the
//! receiver computes them from what it receives, so they do not travel),
//! the heads of records under repair, and its audit head. A station also
//! passes on its boats' batches as they signed them, with the certificate
//! it signed when it enrolled each boat. The upstream then accepts a new
//! change only when its own author signed it or a change after it.

use crate::engine::error::SyncError;
use crate::engine::transfer::receive;
use crate::evidence::{self, Attestor, Batch, Certificate, SignatureError};
use crate::protocol::SyncRequest;
use crate::store::{DocStore, StateWrite};
use automerge::{ActorId, ChangeHash};
use ed25519_dalek::VerifyingKey;
use std::collections::{HashMap, HashSet};
use tideline_schemas::RecordId;

/// The authenticated sender of a request, as the upstream knows it.
pub struct Peer<'a> {
    /// The key registered when it enrolled here.
    pub key: VerifyingKey,
    /// A station: it may pass on its devices' batches and present their
    /// certificates. A boat speaks only for itself.
    pub relays: bool,
    /// Whether a device enrolled here directly: nobody else may present a
    /// certificate for it.
    pub enrolled_here: &'a dyn Fn(&[u8; 16]) -> bool,
}

/// Sign `request` as its sender would: over the tips of what it pushes as
/// the receiver will compute them, its `signed_heads` and its `audit`.
/// For requests built by hand (the engine's own requests are signed by
/// `Downstream::prepare` from what it already decoded).
pub fn sign_request(request: &mut SyncRequest, attestor: &dyn Attestor) {
    let mut tips: Vec<[u8; 32]> = receive(request.push.clone(), "a request")
        .tips
        .iter()
        .map(|h| h.0)
        .collect();
    tips.extend(request.signed_heads.iter().copied());
    let batch = Batch::sign(attestor, request.instance, request.audit, tips);
    request.signature = batch.signature;
}

/// What the check needs of one pushed record.
pub(super) struct Pushed {
    pub id: RecordId,
    /// The hashes of its change graph as sent.
    pub hashes: Vec<ChangeHash>,
    pub authors: Vec<ActorId>,
}

/// A request's signatures, checked.
pub(super) struct Verified {
    sender: [u8; 16],
    /// Every (tip, signer) signed in the request.
    signed: HashSet<([u8; 32], [u8; 16])>,
    /// The batches to keep, with the records they sign tips of.
    batches: Vec<(Batch, Vec<RecordId>)>,
    /// Certificates seen for the first time.
    certificates: Vec<Certificate>,
}

/// What of a request the signature check reads, taken out of it.
pub(super) struct Signing {
    pub signature: Vec<u8>,
    pub signed_heads: Vec<[u8; 32]>,
    pub audit: evidence::AuditHead,
    pub relayed: Vec<Batch>,
    pub certificates: Vec<Certificate>,
    /// Records named by repair messages: their heads are among `signed_heads`.
    pub repaired: Vec<RecordId>,
}

impl Signing {
    pub fn take(request: &mut SyncRequest) -> Self {
        Signing {
            signature: std::mem::take(&mut request.signature),
            signed_heads: std::mem::take(&mut request.signed_heads),
            audit: request.audit,
            relayed: std::mem::take(&mut request.relayed),
            certificates: std::mem::take(&mut request.certificates),
            repaired: request
                .fallback
                .iter()
                .filter_map(|m| m.id.parse().ok())
                .collect(),
        }
    }
}

fn refused(what: String) -> SyncError {
    SyncError::Signature(what)
}

fn device(id: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*id).to_string()
}

/// Devices' keys by id.
type Keys = HashMap<[u8; 16], VerifyingKey>;

/// Check the certificates a request presents: each signed by the sender,
/// or by a device whose certificate is known (a boat enrolled at a station
/// below the sender), and none for a device already known with another
/// key. Returns every presented device's key, and the certificates new here.
fn check_certificates(
    store: &dyn DocStore,
    peer: &Peer<'_>,
    sender: [u8; 16],
    presented: Vec<Certificate>,
) -> Result<(Keys, Vec<Certificate>), SyncError> {
    let mut keys = Keys::new();
    let mut new = Vec::new();
    let mut waiting = presented;
    // Issuers before the devices they enrolled, whatever the order sent.
    while !waiting.is_empty() {
        let before = waiting.len();
        let mut later = Vec::new();
        for cert in waiting {
            let e = &cert.enrolment;
            let issuer_key = if e.issuer == sender {
                Some(peer.key)
            } else if let Some(key) = keys.get(&e.issuer) {
                Some(*key)
            } else {
                evidence::certificate(store, &e.issuer)?
                    .map(|c| c.key())
                    .transpose()
                    .map_err(|err| refused(format!("device {}: {err}", device(&e.issuer))))?
            };
            let Some(issuer_key) = issuer_key else {
                later.push(cert);
                continue;
            };
            let who = device(&e.device);
            if e.device == sender || (peer.enrolled_here)(&e.device) {
                return Err(refused(format!(
                    "device {who} is enrolled here; nobody else may present its key"
                )));
            }
            cert.verify(&issuer_key).map_err(|err| {
                refused(format!(
                    "the certificate of device {who} is not valid ({err})"
                ))
            })?;
            let key = cert
                .key()
                .map_err(|err| refused(format!("device {who}: {err}")))?;
            match evidence::certificate(store, &e.device)? {
                Some(kept) if kept.enrolment.key != e.key => {
                    return Err(refused(format!(
                        "device {who} is already enrolled here with another key"
                    )))
                }
                Some(_) => {}
                None => new.push(cert.clone()),
            }
            keys.insert(e.device, key);
        }
        if later.len() == before {
            return Err(refused(format!(
                "the certificate of device {} is issued by an instance unknown here",
                device(&later[0].enrolment.device)
            )));
        }
        waiting = later;
    }
    Ok((keys, new))
}

impl Verified {
    /// Check the sender's batch over `tips` (of what it pushed: the hashes
    /// of each record's part are in `pushed`), the certificates it presents
    /// and the batches it relays. Any failure refuses the whole request.
    pub fn check(
        store: &dyn DocStore,
        peer: &Peer<'_>,
        sender: [u8; 16],
        signing: Signing,
        tips: &[ChangeHash],
        pushed: &[Pushed],
    ) -> Result<Self, SyncError> {
        let mut tips: Vec<[u8; 32]> = tips.iter().map(|h| h.0).collect();
        tips.extend(signing.signed_heads.iter().copied());
        tips.sort_unstable();
        tips.dedup();
        let own = Batch {
            signer: sender,
            audit: signing.audit,
            tips,
            signature: signing.signature,
        };
        own.verify(&peer.key).map_err(|e| {
            refused(format!(
                "the request's signature does not cover what it carries ({e})"
            ))
        })?;
        let relays = !(signing.relayed.is_empty() && signing.certificates.is_empty());
        if relays && !peer.relays {
            return Err(refused(
                "a boat passed on other devices' signatures; only a station relays".into(),
            ));
        }
        let (keys, certificates) = check_certificates(store, peer, sender, signing.certificates)?;
        // Which record each pushed hash belongs to, to index relayed batches.
        let mut record_of: HashMap<[u8; 32], RecordId> = HashMap::new();
        for p in pushed {
            for h in &p.hashes {
                record_of.insert(h.0, p.id);
            }
        }
        let mut records: Vec<RecordId> = pushed.iter().map(|p| p.id).collect();
        records.extend(signing.repaired.iter().copied());
        records.sort_unstable();
        records.dedup();
        let mut signed: HashSet<([u8; 32], [u8; 16])> =
            own.tips.iter().map(|t| (*t, sender)).collect();
        let mut batches = vec![(own, records)];
        for batch in signing.relayed {
            let who = device(&batch.signer);
            let key = match keys.get(&batch.signer) {
                Some(key) => *key,
                None => match evidence::certificate(store, &batch.signer)? {
                    Some(cert) => cert
                        .key()
                        .map_err(|err| refused(format!("device {who}: {err}")))?,
                    None => {
                        return Err(refused(format!(
                            "no enrolment of device {who} is known here, and none came with \
                             its signatures"
                        )))
                    }
                },
            };
            batch.verify(&key).map_err(|e: SignatureError| {
                refused(format!("a signature of device {who} is not valid ({e})"))
            })?;
            signed.extend(batch.tips.iter().map(|t| (*t, batch.signer)));
            // The records it signed tips of, and those its signer wrote in
            // (a whole document shows only its own tips, which may be
            // later changes than the ones this batch signed).
            let signer = ActorId::from(&batch.signer[..]);
            let mut covered: Vec<RecordId> = batch
                .tips
                .iter()
                .filter_map(|t| record_of.get(t).copied())
                .chain(
                    pushed
                        .iter()
                        .filter(|p| p.authors.contains(&signer))
                        .map(|p| p.id),
                )
                .collect();
            covered.sort_unstable();
            covered.dedup();
            batches.push((batch, covered));
        }
        Ok(Verified {
            sender,
            signed,
            batches,
            certificates,
        })
    }

    /// Whether `actor` signed `hash`, in this request or before.
    pub fn signed(
        &self,
        store: &dyn DocStore,
        hash: &ChangeHash,
        actor: &ActorId,
    ) -> Result<bool, SyncError> {
        let Ok(signer) = <[u8; 16]>::try_from(actor.to_bytes()) else {
            return Ok(false);
        };
        if self.signed.contains(&(hash.0, signer)) {
            return Ok(true);
        }
        // The sender's earlier signatures count too, but what it pushes now
        // is always under its signature of now.
        Ok(evidence::signed_by(store, hash, &signer)?)
    }

    pub fn sender(&self) -> [u8; 16] {
        self.sender
    }

    /// The writes that keep the request's signatures, committed with the
    /// records they cover.
    pub fn writes(&self) -> Result<Vec<StateWrite>, SyncError> {
        let mut writes = Vec::new();
        for cert in &self.certificates {
            writes.push(evidence::certificate_write(cert)?);
        }
        // A batch over nothing covers nothing (its audit head is anchored
        // by the server, docs/EVIDENCE.md).
        for (batch, records) in self.batches.iter().filter(|(b, _)| !b.tips.is_empty()) {
            writes.extend(evidence::batch_writes(batch, records)?);
        }
        Ok(writes)
    }
}

//! The signed objects of docs/EVIDENCE.md: a batch (an instance's signature
//! over change hashes and its audit head) and an enrolment certificate (an
//! instance's signature over a device it enrolled and that device's key).
//!
//! Each is signed over a byte string built here and nowhere else
//! ([`Batch::message`], [`Certificate::message`]): a fixed domain line, then
//! fixed-width fields and length-prefixed text, so an independent verifier
//! can rebuild it from the bundle's JSON. Signatures are ed25519, checked
//! with `verify_strict` (no malleable or small-order forms).
//!
//! ```
//! use ed25519_dalek::SigningKey;
//! use tideline_sync::evidence::{Attestor, AuditHead, Batch, KeyAttestor};
//!
//! let key = KeyAttestor::new(SigningKey::from_bytes(&[7; 32]));
//! let batch = Batch::sign(&key, [1; 16], AuditHead::default(), vec![[9; 32], [3; 32]]);
//! assert_eq!(batch.tips, vec![[3; 32], [9; 32]]); // sorted: the set is what is signed
//! assert!(batch.verify(&key.public_key()).is_ok());
//! let mut forged = batch.clone();
//! forged.tips.push([10; 32]);
//! assert!(forged.verify(&key.public_key()).is_err());
//! ```

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// First bytes of every batch's signed message.
pub const BATCH_DOMAIN: &[u8] = b"tideline batch v1\n";
/// First bytes of every certificate's signed message.
pub const CERTIFICATE_DOMAIN: &[u8] = b"tideline enrolment v1\n";

/// An audit log's head: its last entry's seq and hash (zeros when empty).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: [u8; 32],
}

/// One instance's signature over a set of Automerge change hashes (the
/// tips of what it sent in one sync request) and its audit head at the
/// time. A change is covered by a batch of its author when it is one of the
/// tips or an ancestor of one: a change hash covers its dependencies' hashes,
/// so a tip pins its whole history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The signing instance's device id (its Automerge actor).
    pub signer: [u8; 16],
    pub audit: AuditHead,
    /// Sorted, no repeats.
    pub tips: Vec<[u8; 32]>,
    /// 64 bytes; a `Vec` so that a short one decodes and is refused by name.
    pub signature: Vec<u8>,
}

/// Why a signed object does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature is {0} bytes long, not 64")]
    Length(usize),
    #[error("the hashes are not sorted without repeats")]
    Unsorted,
    #[error("the signature does not match the signer's key")]
    Mismatch,
    #[error("the public key is not a valid ed25519 key")]
    BadKey,
}

/// What signs for an instance: its key, and what it knows of its own audit
/// log and of the devices it enrolled.
pub trait Attestor {
    /// An ed25519 signature of `message` by the instance key.
    fn sign(&self, message: &[u8]) -> [u8; 64];
    /// The instance's public key.
    fn public_key(&self) -> VerifyingKey;
    /// The audit log's head now.
    fn audit_head(&self) -> AuditHead {
        AuditHead::default()
    }
    /// The hash of audit entry `seq` as the log holds it now, if it exists.
    fn audit_hash_at(&self, _seq: u64) -> Option<[u8; 32]> {
        None
    }
    /// The certificate of a device enrolled at this instance.
    fn certificate(&self, _device: &[u8; 16]) -> Option<Certificate> {
        None
    }
}

/// An [`Attestor`] that is a key and nothing else: an instance without an
/// audit log or devices of its own.
pub struct KeyAttestor {
    key: SigningKey,
}

impl KeyAttestor {
    pub fn new(key: SigningKey) -> Self {
        KeyAttestor { key }
    }
}

impl Attestor for KeyAttestor {
    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }
}

fn check_signature(
    key: &VerifyingKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let bytes: [u8; 64] = signature
        .try_into()
        .map_err(|_| SignatureError::Length(signature.len()))?;
    key.verify_strict(message, &Signature::from_bytes(&bytes))
        .map_err(|_| SignatureError::Mismatch)
}

impl Batch {
    /// The bytes signed: the domain, the signer, the audit seq (u64
    /// big-endian) and hash, the number of tips (u32 big-endian), the tips.
    pub fn message(signer: &[u8; 16], audit: &AuditHead, tips: &[[u8; 32]]) -> Vec<u8> {
        let mut m = Vec::with_capacity(BATCH_DOMAIN.len() + 16 + 8 + 32 + 4 + 32 * tips.len());
        m.extend_from_slice(BATCH_DOMAIN);
        m.extend_from_slice(signer);
        m.extend_from_slice(&audit.seq.to_be_bytes());
        m.extend_from_slice(&audit.hash);
        m.extend_from_slice(&(tips.len() as u32).to_be_bytes());
        for tip in tips {
            m.extend_from_slice(tip);
        }
        m
    }

    /// Sign `tips` (sorted and deduplicated here) with the attestor's key.
    pub fn sign(
        attestor: &dyn Attestor,
        signer: [u8; 16],
        audit: AuditHead,
        mut tips: Vec<[u8; 32]>,
    ) -> Batch {
        tips.sort_unstable();
        tips.dedup();
        let signature = attestor
            .sign(&Self::message(&signer, &audit, &tips))
            .to_vec();
        Batch {
            signer,
            audit,
            tips,
            signature,
        }
    }

    pub fn verify(&self, key: &VerifyingKey) -> Result<(), SignatureError> {
        if !self.tips.windows(2).all(|w| w[0] < w[1]) {
            return Err(SignatureError::Unsorted);
        }
        check_signature(
            key,
            &Self::message(&self.signer, &self.audit, &self.tips),
            &self.signature,
        )
    }

    /// The batch's name: SHA-256 of its signed message and signature.
    pub fn id(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(Self::message(&self.signer, &self.audit, &self.tips));
        h.update(&self.signature);
        h.finalize().into()
    }
}

/// What an enrolment certificate states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolment {
    pub device: [u8; 16],
    pub station: String,
    /// `boat` or `station`.
    pub kind: String,
    /// The device's ed25519 public key.
    pub key: [u8; 32],
    /// RFC 3339, as the issuer recorded it.
    pub enrolled_at: String,
    /// The instance that accepted the enrolment and signs this.
    pub issuer: [u8; 16],
}

/// An instance's signed statement that it enrolled a device with a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub enrolment: Enrolment,
    pub signature: Vec<u8>,
}

fn push_text(m: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    m.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    m.extend_from_slice(bytes);
}

impl Certificate {
    /// The bytes signed: the domain, device, issuer, key, then station,
    /// kind and enrolment time, each as a u16 big-endian length and UTF-8.
    pub fn message(e: &Enrolment) -> Vec<u8> {
        let mut m = Vec::with_capacity(CERTIFICATE_DOMAIN.len() + 64 + 64);
        m.extend_from_slice(CERTIFICATE_DOMAIN);
        m.extend_from_slice(&e.device);
        m.extend_from_slice(&e.issuer);
        m.extend_from_slice(&e.key);
        push_text(&mut m, &e.station);
        push_text(&mut m, &e.kind);
        push_text(&mut m, &e.enrolled_at);
        m
    }

    pub fn sign(attestor: &dyn Attestor, enrolment: Enrolment) -> Certificate {
        let signature = attestor.sign(&Self::message(&enrolment)).to_vec();
        Certificate {
            enrolment,
            signature,
        }
    }

    /// Check the issuer's signature.
    pub fn verify(&self, issuer_key: &VerifyingKey) -> Result<(), SignatureError> {
        check_signature(issuer_key, &Self::message(&self.enrolment), &self.signature)
    }

    /// The device key it certifies.
    pub fn key(&self) -> Result<VerifyingKey, SignatureError> {
        VerifyingKey::from_bytes(&self.enrolment.key).map_err(|_| SignatureError::BadKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_or_foreign_signature_is_refused_by_name() {
        let a = KeyAttestor::new(SigningKey::from_bytes(&[1; 32]));
        let b = KeyAttestor::new(SigningKey::from_bytes(&[2; 32]));
        let batch = Batch::sign(&a, [5; 16], AuditHead::default(), vec![[1; 32]]);
        assert_eq!(batch.verify(&b.public_key()), Err(SignatureError::Mismatch));
        let mut short = batch.clone();
        short.signature.truncate(63);
        assert_eq!(
            short.verify(&a.public_key()),
            Err(SignatureError::Length(63))
        );
        let mut moved = batch.clone();
        moved.audit.seq += 1;
        assert_eq!(moved.verify(&a.public_key()), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_certificate_binds_device_key_and_issuer() {
        let hq = KeyAttestor::new(SigningKey::from_bytes(&[1; 32]));
        let boat = SigningKey::from_bytes(&[3; 32]).verifying_key();
        let cert = Certificate::sign(
            &hq,
            Enrolment {
                device: [4; 16],
                station: "BB-01".into(),
                kind: "boat".into(),
                key: boat.to_bytes(),
                enrolled_at: "2026-12-01T10:00:00Z".into(),
                issuer: [1; 16],
            },
        );
        assert!(cert.verify(&hq.public_key()).is_ok());
        assert_eq!(cert.key().unwrap(), boat);
        let mut other = cert.clone();
        other.enrolment.station = "BB-02".into();
        assert!(other.verify(&hq.public_key()).is_err());
    }
}

//! The instance signing for sync (docs/EVIDENCE.md): its key, the head of
//! its audit log, and certificates for the devices it enrolled, signed on
//! demand from their device entries.

use crate::auth::devices;
use crate::auth::{audit, InstanceKey};
use tideline_sync::evidence::{Attestor, AuditHead, Certificate};
use tideline_sync::DocStore;

pub struct InstanceAttestor<'a> {
    key: &'a InstanceKey,
    store: &'a dyn DocStore,
}

impl<'a> InstanceAttestor<'a> {
    pub fn new(key: &'a InstanceKey, store: &'a dyn DocStore) -> Self {
        InstanceAttestor { key, store }
    }
}

impl Attestor for InstanceAttestor<'_> {
    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message)
    }

    fn public_key(&self) -> ed25519_dalek::VerifyingKey {
        self.key.public_key()
    }

    fn audit_head(&self) -> AuditHead {
        audit::head(self.store).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the audit head could not be read; anchoring none");
            AuditHead::default()
        })
    }

    fn audit_hash_at(&self, seq: u64) -> Option<[u8; 32]> {
        audit::hash_at(self.store, seq).ok().flatten()
    }

    fn certificate(&self, device: &[u8; 16]) -> Option<Certificate> {
        let id = uuid::Uuid::from_bytes(*device);
        let found = devices::get(self.store, &id).ok().flatten()?;
        let enrolment = devices::enrolment(&found, &self.key.instance)?;
        Some(Certificate::sign(self, enrolment))
    }
}

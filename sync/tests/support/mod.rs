//! What the engine's tests need to sign as an instance: a key per device
//! derived from its id (so any test can name any device's key), and an
//! attestor that certifies whichever device it is asked about, as a
//! station would for the boats it enrolled.

#![allow(dead_code)]

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use tideline_sync::engine::Peer;
use tideline_sync::evidence::{Attestor, Certificate, Enrolment};
use tideline_sync::{DocStore, Records};

/// The test key of a device.
pub fn key_for(device: &[u8; 16]) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(device);
    seed[16..].copy_from_slice(device);
    SigningKey::from_bytes(&seed)
}

pub struct Signer {
    pub id: [u8; 16],
    key: SigningKey,
}

impl Attestor for Signer {
    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    fn certificate(&self, device: &[u8; 16]) -> Option<Certificate> {
        Some(Certificate::sign(
            self,
            Enrolment {
                device: *device,
                station: "BB-01".into(),
                kind: "boat".into(),
                key: key_for(device).verifying_key().to_bytes(),
                enrolled_at: "2026-12-01T00:00:00Z".into(),
                issuer: self.id,
            },
        ))
    }
}

pub fn device_id<S: DocStore>(records: &Records<S>) -> [u8; 16] {
    *records.identity().device_id.as_bytes()
}

/// How `records`' instance signs.
pub fn signer<S: DocStore>(records: &Records<S>) -> Signer {
    let id = device_id(records);
    Signer {
        id,
        key: key_for(&id),
    }
}

fn nobody(_: &[u8; 16]) -> bool {
    false
}

/// `records`' instance as its upstream knows it: a station, which may relay.
pub fn peer<S: DocStore>(records: &Records<S>) -> Peer<'static> {
    Peer {
        key: key_for(&device_id(records)).verifying_key(),
        relays: true,
        enrolled_here: &nobody,
    }
}

/// The signer of the device `id`.
pub fn signer_for(id: [u8; 16]) -> Signer {
    Signer {
        id,
        key: key_for(&id),
    }
}

/// The device `id` as its upstream knows it.
pub fn peer_for(id: [u8; 16]) -> Peer<'static> {
    Peer {
        key: key_for(&id).verifying_key(),
        relays: true,
        enrolled_here: &nobody,
    }
}

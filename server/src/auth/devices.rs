//! Instances that sync with this one: one-time enrollment codes, the devices
//! they enrolled, and the credential each downstream keeps for its upstream.
//!
//! On the upstream, a device is its instance id, station, kind, public key and
//! the SHA-256 of its credential (`auth/device/<id>`); a code is kept only as
//! its SHA-256 (`auth/code/<hash>`). On the downstream, the credential it was
//! given is kept in the store's metadata, inside the owner-only data directory.

use super::sessions::random_token;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tideline_sync::evidence::Enrolment;
use tideline_sync::store::{Commit, StateWrite};
use tideline_sync::{DocStore, StoreError};

const DEVICE_PREFIX: &[u8] = b"auth/device/";
const CODE_PREFIX: &[u8] = b"auth/code/";
const CREDENTIAL_META: &str = "upstream_credential";
/// Prefix of device credentials as sent in `Authorization: Bearer`.
pub const CREDENTIAL_PREFIX: &str = "tld.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Boat,
    Station,
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceKind::Boat => "boat",
            DeviceKind::Station => "station",
        })
    }
}

impl std::str::FromStr for DeviceKind {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, DeviceError> {
        match s {
            "boat" => Ok(DeviceKind::Boat),
            "station" => Ok(DeviceKind::Station),
            other => Err(DeviceError::BadKind(other.to_string())),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Device {
    pub id: uuid::Uuid,
    pub station: String,
    pub kind: DeviceKind,
    /// ed25519, base64.
    pub public_key: String,
    /// Hex SHA-256 of the credential.
    credential_hash: String,
    pub enrolled_at: String,
    pub revoked: bool,
    /// What people call it ("Kestrel"), given at enrolment.
    #[serde(default)]
    pub name: Option<String>,
}

impl Device {
    /// The device as people should read it: `Kestrel (boat of BB-01)`, or
    /// without a name `boat of BB-01 (8d7fc473)`.
    pub fn label(&self) -> String {
        let short = self.id.simple().to_string();
        match &self.name {
            Some(name) => format!("{name} ({} of {})", self.kind, self.station),
            None => format!("{} of {} ({})", self.kind, self.station, &short[..8]),
        }
    }
}

/// A device name as given: trimmed, at most 64 characters, no control
/// characters; empty is none.
pub fn device_name(name: Option<&str>) -> Result<Option<String>, DeviceError> {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(DeviceError::BadName);
    }
    Ok(Some(name.to_string()))
}

#[derive(Serialize, Deserialize)]
struct Code {
    station: String,
    kind: DeviceKind,
    /// Unix seconds.
    expires_at: i64,
    used: bool,
}

/// What a downstream keeps after enrolling.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpstreamCredential {
    pub upstream: String,
    pub station: String,
    pub secret: String,
    /// The upstream's instance id: its changes may come back up through us.
    pub upstream_instance: uuid::Uuid,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device kind {0:?}: use boat or station")]
    BadKind(String),
    #[error("the enrollment code is wrong, already used or expired; ask the upstream's admin for a new one")]
    BadCode,
    #[error("the public key is not an ed25519 key in base64")]
    BadKey,
    #[error("device {0} was revoked and cannot enrol again; set it up as a new instance")]
    Revoked(uuid::Uuid),
    #[error("the code enrols a device of station {code}, not {asked}; nothing was used up")]
    WrongStation { code: String, asked: String },
    #[error("no device {0} is enrolled here")]
    Unknown(uuid::Uuid),
    #[error("a device name has at most 64 characters and no control characters")]
    BadName,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a device's credential was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed, unknown device, or wrong secret.
    Invalid,
    Revoked(uuid::Uuid),
}

/// Whether `secret` is the one whose SHA-256 (hex) is `stored`, compared in
/// constant time.
pub(super) fn secret_matches(secret: &str, stored: &str) -> bool {
    bool::from(sha256_hex(secret).as_bytes().ct_eq(stored.as_bytes()))
}

pub(super) fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn key(prefix: &[u8], part: &[u8]) -> Vec<u8> {
    [prefix, part].concat()
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Io(e.to_string()))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn normalise_code(code: &str) -> String {
    code.trim().to_ascii_uppercase()
}

/// Issue a one-time code enrolling one device of `kind` for `station`.
pub fn issue_code(
    store: &dyn DocStore,
    station: &str,
    kind: DeviceKind,
    valid_for: Duration,
) -> Result<(String, i64), StoreError> {
    let code = super::sessions::readable_code(4);
    let expires_at = now() + valid_for.as_secs() as i64;
    let entry = Code {
        station: station.to_string(),
        kind,
        expires_at,
        used: false,
    };
    store.commit(Commit {
        records: Vec::new(),
        state: vec![StateWrite {
            key: key(CODE_PREFIX, sha256_hex(&normalise_code(&code)).as_bytes()),
            value: Some(to_json(&entry)?),
        }],
    })?;
    Ok((code, expires_at))
}

pub fn get(store: &dyn DocStore, id: &uuid::Uuid) -> Result<Option<Device>, StoreError> {
    match store.get_state(&key(DEVICE_PREFIX, id.as_bytes()))? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("device {id}"))),
        None => Ok(None),
    }
}

pub fn list(store: &dyn DocStore) -> Result<Vec<Device>, StoreError> {
    store
        .scan_state(DEVICE_PREFIX)?
        .into_iter()
        .map(|(_, b)| serde_json::from_slice(&b).map_err(|_| StoreError::Corrupt("device".into())))
        .collect()
}

/// Enrol the instance `id` with the key `public_key` using `code`; returns the
/// device and the credential to hand it (kept here only as a hash).
pub fn enroll(
    store: &dyn DocStore,
    code: &str,
    id: uuid::Uuid,
    public_key: &str,
    station: Option<&str>,
    name: Option<&str>,
) -> Result<(Device, String), DeviceError> {
    let name = device_name(name)?;
    let key_bytes: [u8; 32] = B64
        .decode(public_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(DeviceError::BadKey)?;
    ed25519_dalek::VerifyingKey::from_bytes(&key_bytes).map_err(|_| DeviceError::BadKey)?;
    let code_key = key(CODE_PREFIX, sha256_hex(&normalise_code(code)).as_bytes());
    let mut entry: Code = match store.get_state(&code_key)? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|_| DeviceError::BadCode)?,
        None => return Err(DeviceError::BadCode),
    };
    if entry.used || entry.expires_at <= now() {
        return Err(DeviceError::BadCode);
    }
    // A fresh data directory has no station of its own yet and takes the
    // code's; one that has a station must match it.
    if let Some(station) = station.filter(|s| *s != entry.station) {
        return Err(DeviceError::WrongStation {
            code: entry.station,
            asked: station.to_string(),
        });
    }
    if get(store, &id)?.is_some_and(|d| d.revoked) {
        return Err(DeviceError::Revoked(id));
    }
    let secret = random_token("");
    let device = Device {
        id,
        station: entry.station.clone(),
        kind: entry.kind,
        public_key: B64.encode(key_bytes),
        credential_hash: sha256_hex(&secret),
        enrolled_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        revoked: false,
        name,
    };
    entry.used = true;
    store.commit(Commit {
        records: Vec::new(),
        state: vec![
            StateWrite {
                key: code_key,
                value: Some(to_json(&entry)?),
            },
            StateWrite {
                key: key(DEVICE_PREFIX, id.as_bytes()),
                value: Some(to_json(&device)?),
            },
        ],
    })?;
    Ok((device, secret))
}

/// The device presenting `token` (`tld.<id>.<secret>`), if its credential is
/// valid and it is not revoked.
pub fn authenticate(
    store: &dyn DocStore,
    token: &str,
) -> Result<Result<Device, Refusal>, StoreError> {
    let Some((id, secret)) = token
        .strip_prefix(CREDENTIAL_PREFIX)
        .and_then(|rest| rest.split_once('.'))
    else {
        return Ok(Err(Refusal::Invalid));
    };
    let Ok(id) = id.parse::<uuid::Uuid>() else {
        return Ok(Err(Refusal::Invalid));
    };
    let Some(device) = get(store, &id)? else {
        return Ok(Err(Refusal::Invalid));
    };
    if !secret_matches(secret, &device.credential_hash) {
        return Ok(Err(Refusal::Invalid));
    }
    if device.revoked {
        return Ok(Err(Refusal::Revoked(id)));
    }
    Ok(Ok(device))
}

pub fn revoke(store: &dyn DocStore, id: &uuid::Uuid) -> Result<Device, DeviceError> {
    let mut device = get(store, id)?.ok_or(DeviceError::Unknown(*id))?;
    device.revoked = true;
    store.commit(Commit {
        records: Vec::new(),
        state: vec![StateWrite {
            key: key(DEVICE_PREFIX, id.as_bytes()),
            value: Some(to_json(&device)?),
        }],
    })?;
    Ok(device)
}

/// What this instance states about a device it enrolled, for the
/// certificate it signs (docs/EVIDENCE.md). None for a key that is not an
/// ed25519 key (it could not have enrolled).
pub fn enrolment(device: &Device, issuer: &uuid::Uuid) -> Option<Enrolment> {
    Some(Enrolment {
        device: *device.id.as_bytes(),
        station: device.station.clone(),
        kind: device.kind.to_string(),
        key: verifying_key(device)?.to_bytes(),
        enrolled_at: device.enrolled_at.clone(),
        issuer: *issuer.as_bytes(),
    })
}

/// The device's public key, as sync verifies its signatures with it.
pub fn verifying_key(device: &Device) -> Option<ed25519_dalek::VerifyingKey> {
    let key: [u8; 32] = B64.decode(&device.public_key).ok()?.try_into().ok()?;
    ed25519_dalek::VerifyingKey::from_bytes(&key).ok()
}

/// The credential this instance holds for its upstream, if it has enrolled.
pub fn credential(store: &dyn DocStore) -> Result<Option<UpstreamCredential>, StoreError> {
    match store.get_meta(CREDENTIAL_META)? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| StoreError::Corrupt("upstream credential".into())),
        None => Ok(None),
    }
}

pub fn save_credential(store: &dyn DocStore, c: &UpstreamCredential) -> Result<(), StoreError> {
    store.put_meta(CREDENTIAL_META, &to_json(c)?)
}

/// The bearer token for a credential of instance `id`.
pub fn bearer(id: &uuid::Uuid, secret: &str) -> String {
    format!("{CREDENTIAL_PREFIX}{id}.{secret}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tideline_sync::MemoryStore;

    fn key_b64() -> String {
        let k = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
        B64.encode(k.verifying_key().as_bytes())
    }

    #[test]
    fn a_code_enrols_one_device_once_and_revocation_ends_it() {
        let store = MemoryStore::default();
        let (code, _) =
            issue_code(&store, "BB-01", DeviceKind::Boat, Duration::from_secs(3600)).unwrap();
        let id = uuid::Uuid::new_v4();
        let (device, secret) = enroll(
            &store,
            &code.to_lowercase(),
            id,
            &key_b64(),
            Some("BB-01"),
            None,
        )
        .unwrap();
        assert_eq!(device.station, "BB-01");
        assert!(matches!(
            enroll(
                &store,
                &code,
                uuid::Uuid::new_v4(),
                &key_b64(),
                Some("BB-01"),
                None,
            ),
            Err(DeviceError::BadCode)
        ));
        let token = bearer(&id, &secret);
        assert_eq!(authenticate(&store, &token).unwrap().unwrap().id, id);
        assert_eq!(
            authenticate(&store, &bearer(&id, "wrong"))
                .unwrap()
                .unwrap_err(),
            Refusal::Invalid
        );
        assert_eq!(
            authenticate(&store, "tld.garbage").unwrap().unwrap_err(),
            Refusal::Invalid
        );
        revoke(&store, &id).unwrap();
        assert_eq!(
            authenticate(&store, &token).unwrap().unwrap_err(),
            Refusal::Revoked(id)
        );
        let (code, _) =
            issue_code(&store, "BB-01", DeviceKind::Boat, Duration::from_secs(3600)).unwrap();
        assert!(matches!(
            enroll(&store, &code, id, &key_b64(), Some("BB-01"), None),
            Err(DeviceError::Revoked(_))
        ));
    }

    #[test]
    fn expired_codes_and_bad_keys_are_refused() {
        let store = MemoryStore::default();
        let (code, _) = issue_code(&store, "BB-01", DeviceKind::Boat, Duration::ZERO).unwrap();
        assert!(matches!(
            enroll(
                &store,
                &code,
                uuid::Uuid::new_v4(),
                &key_b64(),
                Some("BB-01"),
                None,
            ),
            Err(DeviceError::BadCode)
        ));
        let (code, _) =
            issue_code(&store, "BB-01", DeviceKind::Boat, Duration::from_secs(60)).unwrap();
        assert!(matches!(
            enroll(
                &store,
                &code,
                uuid::Uuid::new_v4(),
                &key_b64(),
                Some("LC-01"),
                None,
            ),
            Err(DeviceError::WrongStation { .. })
        ));
        assert!(matches!(
            enroll(
                &store,
                &code,
                uuid::Uuid::new_v4(),
                "not a key",
                Some("BB-01"),
                None,
            ),
            Err(DeviceError::BadKey)
        ));
    }
}

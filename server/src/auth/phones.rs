//! Phones running ODK Collect: a credential an admin issues for one person,
//! carried in the server URL the phone is given (docs/ODK.md). A phone is a
//! device of this instance: what it submits is written by this instance and
//! names the person and the phone.
//!
//! The token is shown once, when it is issued, and kept only as its SHA-256
//! (`auth/phone/<id>`); revoking it keeps the entry, so a revoked phone is
//! told so rather than that its link is unknown.

use super::devices::{secret_matches, sha256_hex, Refusal};
use super::sessions::random_token;
use super::users::{Role, User};
use serde::{Deserialize, Serialize};
use tideline_sync::store::{Commit, StateWrite};
use tideline_sync::{DocStore, StoreError};

const PHONE_PREFIX: &[u8] = b"auth/phone/";
/// Prefix of phone tokens, as they appear in a phone's server URL.
pub const TOKEN_PREFIX: &str = "tlp.";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phone {
    pub id: uuid::Uuid,
    /// The person it submits for.
    pub username: String,
    /// What people call it ("Kestrel handset 2"), if given.
    pub name: Option<String>,
    pub issued_at: String,
    pub revoked: bool,
    /// Hex SHA-256 of the token.
    token_hash: String,
}

impl Phone {
    /// The phone as the API lists it (without its token's hash).
    pub fn public(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "user": self.username,
            "name": self.name,
            "issued_at": self.issued_at,
            "revoked": self.revoked,
        })
    }

    /// The phone as its history names it: `phone Kestrel 2`, or its short id.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("phone {name}"),
            None => format!("phone {}", &self.id.simple().to_string()[..8]),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PhoneError {
    #[error("{0}'s role is {1}; a phone submits records, which only officers and supervisors do")]
    Role(String, Role),
    #[error("{0}'s account is disabled")]
    Disabled(String),
    #[error("no phone {0} is registered here")]
    Unknown(uuid::Uuid),
    #[error("a phone name has at most 64 characters and no control characters")]
    BadName,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn key(id: &uuid::Uuid) -> Vec<u8> {
    [PHONE_PREFIX, id.as_bytes()].concat()
}

fn save(store: &dyn DocStore, phone: &Phone) -> Result<(), StoreError> {
    let value = serde_json::to_vec(phone).map_err(|e| StoreError::Io(e.to_string()))?;
    store
        .commit(Commit {
            records: Vec::new(),
            state: vec![StateWrite {
                key: key(&phone.id),
                value: Some(value),
            }],
        })
        .map(|_| ())
}

/// Whether a person of `role` may have a phone: it exists to submit records.
pub fn may_have_phone(role: Role) -> bool {
    matches!(role, Role::Officer | Role::Supervisor)
}

/// Issue a phone credential for `user`; returns the phone and its token
/// (shown once: only its hash is kept).
pub fn issue(
    store: &dyn DocStore,
    user: &User,
    name: Option<&str>,
) -> Result<(Phone, String), PhoneError> {
    if !may_have_phone(user.role) {
        return Err(PhoneError::Role(user.username.to_string(), user.role));
    }
    if user.disabled {
        return Err(PhoneError::Disabled(user.username.to_string()));
    }
    let name = super::devices::device_name(name).map_err(|_| PhoneError::BadName)?;
    let id = uuid::Uuid::new_v4();
    let secret = random_token("");
    let phone = Phone {
        id,
        username: user.username.to_string(),
        name,
        issued_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        revoked: false,
        token_hash: sha256_hex(&secret),
    };
    save(store, &phone)?;
    Ok((phone, format!("{TOKEN_PREFIX}{}.{secret}", id.simple())))
}

pub fn get(store: &dyn DocStore, id: &uuid::Uuid) -> Result<Option<Phone>, StoreError> {
    match store.get_state(&key(id))? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("phone {id}"))),
        None => Ok(None),
    }
}

pub fn list(store: &dyn DocStore) -> Result<Vec<Phone>, StoreError> {
    let mut phones: Vec<Phone> = store
        .scan_state(PHONE_PREFIX)?
        .into_iter()
        .map(|(_, b)| serde_json::from_slice(&b).map_err(|_| StoreError::Corrupt("phone".into())))
        .collect::<Result<_, _>>()?;
    phones.sort_by(|a, b| a.issued_at.cmp(&b.issued_at));
    Ok(phones)
}

pub fn revoke(store: &dyn DocStore, id: &uuid::Uuid) -> Result<Phone, PhoneError> {
    let mut phone = get(store, id)?.ok_or(PhoneError::Unknown(*id))?;
    phone.revoked = true;
    save(store, &phone)?;
    Ok(phone)
}

/// The phone presenting `token` (`tlp.<id>.<secret>`), if it is valid and
/// not revoked.
pub fn authenticate(
    store: &dyn DocStore,
    token: &str,
) -> Result<Result<Phone, Refusal>, StoreError> {
    let Some((id, secret)) = token
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|rest| rest.split_once('.'))
    else {
        return Ok(Err(Refusal::Invalid));
    };
    let Ok(id) = uuid::Uuid::parse_str(id) else {
        return Ok(Err(Refusal::Invalid));
    };
    let Some(phone) = get(store, &id)? else {
        return Ok(Err(Refusal::Invalid));
    };
    if !secret_matches(secret, &phone.token_hash) {
        return Ok(Err(Refusal::Invalid));
    }
    if phone.revoked {
        return Ok(Err(Refusal::Revoked(id)));
    }
    Ok(Ok(phone))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::users;
    use tideline_sync::MemoryStore;

    fn user(store: &MemoryStore, name: &str, role: Role) -> User {
        let name = users::Username::try_from(name.to_string()).unwrap();
        users::create(store, name, role, "BB-01", "a long enough password").unwrap()
    }

    #[test]
    fn a_phone_token_works_until_revoked_and_is_kept_only_as_a_hash() {
        let store = MemoryStore::default();
        let ann = user(&store, "ann", Role::Officer);
        let (phone, token) = issue(&store, &ann, Some("Kestrel 2")).unwrap();
        assert_eq!(phone.label(), "phone Kestrel 2");
        let stored = store.get_state(&key(&phone.id)).unwrap().unwrap();
        let secret = token.rsplit('.').next().unwrap();
        assert!(!String::from_utf8_lossy(&stored).contains(secret));
        assert_eq!(authenticate(&store, &token).unwrap().unwrap().id, phone.id);
        let wrong = format!("{}x", &token[..token.len() - 1]);
        assert_eq!(
            authenticate(&store, &wrong).unwrap().unwrap_err(),
            Refusal::Invalid
        );
        assert_eq!(
            authenticate(&store, "tlp.nonsense").unwrap().unwrap_err(),
            Refusal::Invalid
        );
        revoke(&store, &phone.id).unwrap();
        assert_eq!(
            authenticate(&store, &token).unwrap().unwrap_err(),
            Refusal::Revoked(phone.id)
        );
    }

    #[test]
    fn only_people_who_submit_records_get_phones() {
        let store = MemoryStore::default();
        let analyst = user(&store, "ana", Role::Analyst);
        assert!(matches!(
            issue(&store, &analyst, None),
            Err(PhoneError::Role(_, Role::Analyst))
        ));
    }
}
